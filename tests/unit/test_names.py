import pytest

from silnode.errors import InvalidName
from silnode.names import safe_file_name, validate_file_name, validate_name


@pytest.mark.parametrize("name", ["org/model", "TheBloke/Llama-2-7B-GGUF", "a/b", "bartowski/qwen2.5-0.5b_q4"])
def test_good_names(name):
    assert validate_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "model",
        "org/",
        "/model",
        "org/model/extra",
        "../etc",
        "org/..",
        "org/.hidden",
        "./x",
        "org/a..b",
        "org/model.",
        "org/mo del",
        "org/mo\x00del",
        "/abs/path",
        "org\\model",
        "org/" + "x" * 97,
        "-org/x",
        12,
        None,
        "org/m\u00e9",
        "org/model\n",
    ],
)
def test_bad_names(name):
    with pytest.raises(InvalidName):
        validate_name(name)


@pytest.mark.parametrize("name", ["../x.gguf", "a/b.gguf", "x.bin", ".x.gguf", "x\x00.gguf", "", "x..gguf"])
def test_bad_file_names(name):
    with pytest.raises(InvalidName):
        validate_file_name(name)


def test_safe_file_name():
    assert safe_file_name("my model.gguf") == "my-model.gguf"
    assert safe_file_name("sha256-abc") == "sha256-abc.gguf"
    assert safe_file_name("../../etc/passwd") == "etc-passwd.gguf"
    assert safe_file_name("X.GGUF") == "X.gguf"

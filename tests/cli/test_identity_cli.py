"""`silnode identity …` and `silnode secrets …` as a script would run them: no terminal, password from the
environment or a file, phrase and secret values on stdin."""

from __future__ import annotations

import json
import stat

import pytest
from click.testing import CliRunner

from silnode.cli import cli

PW = "correct horse battery staple 42"


@pytest.fixture
def run(monkeypatch):
    monkeypatch.setenv("SILNODE_PASSWORD", PW)
    runner = CliRunner()

    def invoke(*args: str, code: int = 0, input: str | None = None, env: dict | None = None):
        r = runner.invoke(cli, list(args), input=input, env=env, catch_exceptions=False)
        assert r.exit_code == code, (args, r.exit_code, r.output)
        return r

    return invoke


def test_init_creates_identity_and_shows_phrase_once(run, clean_env):
    r = run("init")
    words = r.stdout.split("\n")[0].split()
    assert len(words) == 12
    info = json.loads(run("identity", "show", "--json").stdout)
    assert info["npub"].startswith("npub1") and len(info["catalog_pubkey"]) == 64
    assert info["nostr_path"] == "m/44'/1237'/0'/0/0"
    ks = clean_env / "identity.enc"
    assert stat.S_IMODE(ks.stat().st_mode) == 0o600 and stat.S_IMODE(clean_env.stat().st_mode) == 0o700
    assert " ".join(words) == run("identity", "backup").stdout.strip()
    again = json.loads(run("init", "--json").stdout)  # keeps the identity
    assert again["npub"] == info["npub"] and str(ks) not in again["created"]


def test_init_without_password_skips_identity(run, clean_env):
    r = run("init", env={"SILNODE_PASSWORD": None})
    assert "no identity created" in r.stderr
    assert not (clean_env / "identity.enc").exists()
    r = run("identity", "show", code=1)
    assert "identity" in r.stderr.lower()


def test_new_refuses_to_overwrite_and_force_backs_up(run, clean_env):
    first = json.loads(run("identity", "new", "--json").stdout)
    r = run("identity", "new", code=1)
    assert "--force" in r.stderr
    second = json.loads(run("identity", "new", "--force", "--words", "24", "--json").stdout)
    assert second["npub"] != first["npub"]
    assert (clean_env / "identity.enc.bak").exists()
    assert len(run("identity", "backup").stdout.split()) == 24


def test_json_output_never_carries_the_phrase(run):
    out = run("identity", "new", "--json")
    phrase = run("identity", "backup").stdout.strip()
    assert phrase not in out.stdout and phrase not in out.stderr
    assert "identity backup" in out.stderr


def test_import_from_stdin_with_vectors(run):
    # NIP-06 test vector 1 (research/protocols-and-peers.md)
    phrase = "leader monkey parrot ring guide accident before fence cannon height naive bean"
    info = json.loads(run("identity", "import", "--json", input=phrase + "\n").stdout)
    assert info["nostr_pubkey"] == "17162c921dc4d2518f9a101db33695df1afb56ab82f5ff3e5da6eec3ca5cd917"


@pytest.mark.parametrize(
    "phrase, word",
    [
        ("leader monkey parrot ring guide accident before fence cannon height naive", "11 words"),
        ("leader monkey parrot ring guide accident before fence cannon height naive zzzz", "word 12"),
        ("leader monkey parrot ring guide accident before fence cannon height naive naive", "checksum"),
    ],
)
def test_import_bad_phrases(run, clean_env, phrase, word):
    r = run("identity", "import", input=phrase + "\n", code=1)
    assert word in r.stderr and "zzzz" not in r.stderr
    assert not (clean_env / "identity.enc").exists()


def test_wrong_password_is_one_line(run):
    run("identity", "new")
    r = run("identity", "backup", env={"SILNODE_PASSWORD": "nope"}, code=1)
    assert r.stderr.splitlines()[0].startswith("error: wrong password") and "Traceback" not in r.stderr


def test_change_password_and_password_file(run, tmp_path):
    run("identity", "new")
    phrase = run("identity", "backup").stdout.strip()
    newf = tmp_path / "new.pw"
    newf.write_text("a much better password 2026\n")
    run("identity", "change-password", "--new-password-file", str(newf))
    run("identity", "backup", code=1)  # old password no longer works
    assert run("identity", "backup", "--password-file", str(newf)).stdout.strip() == phrase


def test_weak_password_warned(run):
    r = run("identity", "new", env={"SILNODE_PASSWORD": "abc"})
    warnings = [line for line in r.stderr.splitlines() if line.startswith("warning:")]
    assert warnings and all("abc" not in line for line in warnings)


def test_secrets_set_list_rm(run):
    run("identity", "new")
    run("secrets", "set", "lnbits_key", input="s3cr3t-value\n")
    out = run("secrets", "list", "--json")
    assert json.loads(out.stdout)["secrets"] == ["lnbits_key"] and "s3cr3t-value" not in out.stdout
    run("secrets", "rm", "lnbits_key")
    assert json.loads(run("secrets", "list", "--json").stdout)["secrets"] == []
    r = run("secrets", "rm", "lnbits_key", code=1)
    assert "lnbits_key" in r.stderr

import dataclasses

import pytest

from silnode.config import load_config
from silnode.errors import ConfigError


def test_defaults(tmp_path):
    c = load_config(tmp_path, environ={})
    assert c.daemon.bind_address == "127.0.0.1"
    assert c.daemon.port == 8737
    assert c.base_dir == tmp_path
    assert c.network.utp_enabled is False
    assert c.loopback_bind
    assert c.token_file == tmp_path / "api.token"


def test_precedence_file_env_flags(tmp_path):
    (tmp_path / "config.yaml").write_text("daemon:\n  port: 9000\n  log_level: debug\nnetwork:\n  lan_only: true\n")
    c = load_config(tmp_path, environ={})
    assert (c.daemon.port, c.daemon.log_level, c.network.lan_only) == (9000, "debug", True)
    env = {"SILNODE_DAEMON__PORT": "9100", "SILNODE_NETWORK__DHT_BOOTSTRAP": "a:1, b:2"}
    c = load_config(tmp_path, environ=env)
    assert c.daemon.port == 9100
    assert c.network.dht_bootstrap == ("a:1", "b:2")
    c = load_config(tmp_path, environ=env, overrides={"daemon.port": 9200, "daemon.bind_address": None})
    assert c.daemon.port == 9200
    assert c.daemon.bind_address == "127.0.0.1"  # None = flag not given


def test_frozen(tmp_path):
    c = load_config(tmp_path, environ={})
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.daemon.port = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    "text, word",
    [
        ("daemon:\n  prot: 1\n", "daemon.prot"),
        ("deamon:\n  port: 1\n", "deamon"),
        ("daemon:\n  port: notanumber\n", "integer"),
        ("daemon:\n  port: 70000\n", "0-65535"),
        ("network:\n  lan_only: maybe\n", "true or false"),
        ("network:\n  dht_bootstrap: [nohostport]\n", "host:port"),
        ("daemon: [1, 2]\n", "mapping"),
        ("- a\n- b\n", "mapping"),
        ("daemon: {port: [}\n", "YAML"),
        ("daemon:\n  log_level: loud\n", "log_level"),
    ],
)
def test_bad_config_file_names_the_problem(tmp_path, text, word):
    (tmp_path / "config.yaml").write_text(text)
    with pytest.raises(ConfigError) as e:
        load_config(tmp_path, environ={})
    assert word in str(e.value)


def test_unknown_env_key_rejected(tmp_path):
    with pytest.raises(ConfigError, match="daemon.bogus"):
        load_config(tmp_path, environ={"SILNODE_DAEMON__BOGUS": "1"})
    with pytest.raises(ConfigError, match="SILNODE_PORT"):
        load_config(tmp_path, environ={"SILNODE_PORT": "1"})
    # reserved names are not config keys
    load_config(tmp_path, environ={"SILNODE_DEBUG": "1", "SILNODE_PASSWORD": "x", "SILNODE_API_URL": "http://x"})


def test_bad_env_value(tmp_path):
    with pytest.raises(ConfigError, match="environment"):
        load_config(tmp_path, environ={"SILNODE_DAEMON__PORT": "eighty"})


def test_home_from_env(tmp_path):
    c = load_config(environ={"SILNODE_HOME": str(tmp_path / "h")})
    assert c.home == tmp_path / "h"
    c = load_config(tmp_path, environ={}, overrides={"storage.base_dir": str(tmp_path / "big")})
    assert c.base_dir == tmp_path / "big"


def test_example_config_lists_every_key(tmp_path):
    """config.yaml.example must load as-is and mention every key."""
    import dataclasses
    from pathlib import Path

    from silnode.config import SECTIONS

    example = Path(__file__).resolve().parents[2] / "config.yaml.example"
    text = example.read_text()
    (tmp_path / "config.yaml").write_text(text)
    load_config(tmp_path, environ={})
    for section, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            assert f"  {f.name}:" in text or f"  # {f.name}:" in text, f"{section}.{f.name} missing from example"

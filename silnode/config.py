"""Configuration: defaults < config.yaml < SILNODE_<SECTION>__<KEY> env < flags, resolved once.

The result is one frozen :class:`Config`. Every path derives from ``SILNODE_HOME`` (default
``~/.silnode``), so a test isolates a whole node by pointing one variable at a temp dir. Unknown keys are an
error naming the key: a typo in config.yaml must not be silently ignored.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from silnode.errors import ConfigError

ENV_PREFIX = "SILNODE_"
# SILNODE_* names that are not config keys (see design.md, Conventions)
RESERVED_ENV = {"SILNODE_HOME", "SILNODE_PASSWORD", "SILNODE_NEW_PASSWORD", "SILNODE_DEBUG", "SILNODE_API_URL"}


@dataclass(frozen=True)
class DaemonConfig:
    bind_address: str = "127.0.0.1"
    port: int = 8737
    log_level: str = "info"
    # extra Host header values accepted besides localhost/127.0.0.1/[::1]/the bind address (DNS-rebinding guard)
    allowed_hosts: tuple[str, ...] = ()


@dataclass(frozen=True)
class StorageConfig:
    base_dir: str = ""  # empty: SILNODE_HOME
    # an import or download refuses to start when it would leave less than this free
    min_free_bytes: int = 256 * 1024 * 1024


@dataclass(frozen=True)
class NetworkConfig:
    listen_port: int = 6881
    listen_address: str = "0.0.0.0"
    dht_enabled: bool = True
    dht_bootstrap: tuple[str, ...] = (
        "dht.libtorrent.org:25401",
        "router.bittorrent.com:6881",
        "dht.transmissionbt.com:6881",
    )
    lan_only: bool = False
    lsd_enabled: bool = True
    upnp_enabled: bool = True
    natpmp_enabled: bool = True
    utp_enabled: bool = False
    upload_rate_limit: int = 0  # bytes/s, 0 = unlimited
    download_rate_limit: int = 0
    seed_ratio_limit: float = 0.0  # 0 = seed forever
    seed_time_limit: int = 0  # seconds, 0 = forever
    resume_save_interval: int = 30  # seconds between resume-data saves of running downloads
    recheck_interval: int = 0  # seconds between light rechecks of seeded models (0 = off)
    web_seed_max_seeds: int = 3  # drop a transfer's HTTP web seed once this many peers seed it (0 = never)
    dht_private: bool = False  # relax DHT anti-abuse limits for a private/LAN DHT where nodes share an IP


@dataclass(frozen=True)
class HardwareConfig:
    # caps on what the probes report (bytes; 0 = use the probe). For machines whose probes lie or fail, or to
    # keep part of the memory for other programs
    ram_bytes: int = 0
    vram_bytes: int = 0


@dataclass(frozen=True)
class ServeConfig:
    n_ctx: int = 4096  # context per loaded model (0: the model's trained context); `serve --ctx` overrides
    n_threads: int = 0  # llama.cpp threads per worker (0: the CPUs this process may run on)
    n_batch: int = 512  # prompt batch; big-vocabulary models on a GPU need less VRAM with a smaller one
    queue_size: int = 16  # requests waiting per model; one more gets 429 + Retry-After
    max_tokens: int = 1024  # default max_tokens of a request that names none
    chat_format: str = "chatml"  # the chat format of a GGUF that carries no chat template
    restart_limit: int = 3  # crashes within restart_window before a model stays down (`models load` again)
    restart_window: int = 300  # seconds
    starter_model: bool = True  # `serve` with an empty store imports and serves the Gemma-3-270M package
    max_n: int = 4  # OpenAI `n`: the most choices one request may ask for (generated in turn)


SECTIONS: dict[str, type] = {
    "daemon": DaemonConfig,
    "storage": StorageConfig,
    "network": NetworkConfig,
    "hardware": HardwareConfig,
    "serve": ServeConfig,
}


def default_home() -> Path:
    return Path(os.environ.get("SILNODE_HOME") or Path.home() / ".silnode").expanduser()


@dataclass(frozen=True)
class Config:
    home: Path
    daemon: DaemonConfig = field(default_factory=DaemonConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    hardware: HardwareConfig = field(default_factory=HardwareConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)

    # --- paths (all under home or storage.base_dir) ---
    @property
    def config_file(self) -> Path:
        return self.home / "config.yaml"

    @property
    def token_file(self) -> Path:
        return self.home / "api.token"

    @property
    def daemon_file(self) -> Path:
        return self.home / "daemon.json"

    @property
    def lock_file(self) -> Path:
        return self.home / "daemon.lock"

    @property
    def log_file(self) -> Path:
        return self.home / "logs" / "daemon.log"

    @property
    def state_dir(self) -> Path:
        return self.home / "state"

    @property
    def base_dir(self) -> Path:
        return Path(self.storage.base_dir).expanduser() if self.storage.base_dir else self.home

    @property
    def loopback_bind(self) -> bool:
        return is_loopback(self.daemon.bind_address)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"home": str(self.home)}
        for name in SECTIONS:
            sec = dataclasses.asdict(getattr(self, name))
            out[name] = {k: list(v) if isinstance(v, tuple) else v for k, v in sec.items()}
        return out


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _coerce(section: str, key: str, value: Any, default: Any, origin: str) -> Any:
    """Convert ``value`` to the type of ``default``; strings (env vars) are parsed as YAML scalars."""
    where = f"{section}.{key} (from {origin})"
    if isinstance(value, str) and not isinstance(default, str):
        try:
            value = yaml.safe_load(value) if value.strip() else ([] if isinstance(default, tuple) else value)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{where}: cannot parse {value!r}") from exc
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if isinstance(default, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if isinstance(default, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if isinstance(default, tuple):
        if isinstance(value, str):  # comma-separated in env vars: "a:1,b:2"
            value = [v.strip() for v in value.split(",") if v.strip()]
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            return tuple(value)
        raise ConfigError(f"{where}: expected a list of strings, got {value!r}")
    if isinstance(default, str):
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    raise ConfigError(f"{where}: unsupported value {value!r}")  # pragma: no cover


def _apply(layers: dict[str, dict[str, Any]], data: Mapping[str, Any], origin: str) -> None:
    for section, values in data.items():
        if section not in SECTIONS:
            raise ConfigError(f"unknown config section {section!r} (from {origin}); known: {', '.join(SECTIONS)}")
        if values is None:
            continue
        if not isinstance(values, Mapping):
            raise ConfigError(f"config section {section!r} (from {origin}) must be a mapping")
        known = {f.name: f for f in dataclasses.fields(SECTIONS[section])}
        for key, value in values.items():
            if key not in known:
                raise ConfigError(
                    f"unknown config key {section}.{key} (from {origin}); known: {', '.join(sorted(known))}"
                )
            default = known[key].default
            layers[section][key] = _coerce(section, key, value, default, origin)


def env_overrides(environ: Mapping[str, str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name in RESERVED_ENV:
            continue
        rest = name[len(ENV_PREFIX) :]
        if "__" not in rest:
            raise ConfigError(
                f"unknown environment variable {name}; config keys are set as SILNODE_<SECTION>__<KEY>, "
                f"e.g. SILNODE_DAEMON__PORT"
            )
        section, key = rest.split("__", 1)
        out.setdefault(section.lower(), {})[key.lower()] = value
    return out


def load_config(
    home: str | os.PathLike[str] | None = None,
    *,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Resolve the configuration once.

    Args:
        home: SILNODE_HOME; default from the environment, else ~/.silnode.
        overrides: flag values as ``{"daemon.port": 9000}``; ``None`` values are skipped.
        environ: the environment to read (default ``os.environ``).
    """
    environ = os.environ if environ is None else environ
    home_path = Path(home).expanduser() if home else Path(environ.get("SILNODE_HOME") or Path.home() / ".silnode")
    home_path = home_path.expanduser().absolute()
    layers: dict[str, dict[str, Any]] = {s: {} for s in SECTIONS}

    cfg_file = home_path / "config.yaml"
    if cfg_file.is_file():
        try:
            data = yaml.safe_load(cfg_file.read_text(encoding="utf-8")) or {}
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{cfg_file}: not valid YAML: {exc}") from exc
        if not isinstance(data, Mapping):
            raise ConfigError(f"{cfg_file}: expected a mapping of sections at the top level")
        _apply(layers, data, str(cfg_file))
    _apply(layers, env_overrides(environ), "environment")
    if overrides:
        flag_data: dict[str, dict[str, Any]] = {}
        for dotted, value in overrides.items():
            if value is None:
                continue
            if "." not in dotted:
                raise ConfigError(f"override {dotted!r} must look like section.key")
            section, key = dotted.split(".", 1)
            flag_data.setdefault(section, {})[key] = value
        _apply(layers, flag_data, "command line")

    sections = {name: cls(**layers[name]) for name, cls in SECTIONS.items()}
    config = Config(home=home_path, **sections)
    _validate(config)
    return config


def _validate(config: Config) -> None:
    d = config.daemon
    if not 0 <= d.port <= 65535:
        raise ConfigError(f"daemon.port must be 0-65535, got {d.port}")
    if not 0 <= config.network.listen_port <= 65535:
        raise ConfigError(f"network.listen_port must be 0-65535, got {config.network.listen_port}")
    if d.log_level.lower() not in {"debug", "info", "warning", "error"}:
        raise ConfigError(f"daemon.log_level must be debug, info, warning or error, got {d.log_level!r}")
    for item in config.network.dht_bootstrap:
        host, sep, port = item.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ConfigError(f"network.dht_bootstrap entry {item!r} must be host:port")
    for section, name in (("hardware", "ram_bytes"), ("hardware", "vram_bytes")):
        if getattr(getattr(config, section), name) < 0:
            raise ConfigError(f"{section}.{name} must be >= 0")
    for name in (
        "upload_rate_limit",
        "download_rate_limit",
        "seed_time_limit",
        "recheck_interval",
        "web_seed_max_seeds",
    ):
        if getattr(config.network, name) < 0:
            raise ConfigError(f"network.{name} must be >= 0")
    if config.network.resume_save_interval < 1:
        raise ConfigError("network.resume_save_interval must be >= 1 second")
    if config.network.seed_ratio_limit < 0:
        raise ConfigError("network.seed_ratio_limit must be >= 0")
    sv = config.serve
    for name in ("n_ctx", "n_threads", "restart_limit"):
        if getattr(sv, name) < 0:
            raise ConfigError(f"serve.{name} must be >= 0")
    for name in ("n_batch", "queue_size", "max_tokens", "restart_window"):
        if getattr(sv, name) < 1:
            raise ConfigError(f"serve.{name} must be >= 1")

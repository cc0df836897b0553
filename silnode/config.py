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
RESERVED_ENV.add("SILNODE_TEST_HANG_FILE")  # test-only: makes a model worker hang (silnode/serving/hang.py)


@dataclass(frozen=True)
class DaemonConfig:
    bind_address: str = "127.0.0.1"
    port: int = 8737
    log_level: str = "info"
    # extra Host header values accepted besides localhost/127.0.0.1/[::1]/the bind address (DNS-rebinding guard)
    allowed_hosts: tuple[str, ...] = ()
    # slow or idle clients: a connection that has not sent a whole request (headers) within idle_timeout
    # seconds is closed (slow-loris guard, also idle keep-alive); a body must arrive within body_timeout
    idle_timeout: int = 15
    body_timeout: int = 30
    max_body_bytes: int = 1 << 20  # a bigger request body gets 413
    # the daemon's log and each model worker's log rotate past log_max_bytes, keeping log_backups old files
    log_max_bytes: int = 10 << 20
    log_backups: int = 3


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
    # a web seed from elsewhere (a magnet's ws=) is fetched through the gate: seconds to connect and per read
    web_seed_timeout: int = 30
    recheck_timeout: float = 600.0  # seconds `recheck` waits for libtorrent's re-hash before answering 504


@dataclass(frozen=True)
class HardwareConfig:
    # caps on what the probes report (bytes; 0 = use the probe). For machines whose probes lie or fail, or to
    # keep part of the memory for other programs
    ram_bytes: int = 0
    vram_bytes: int = 0
    # the CPU's memory read bandwidth (bytes/s) for the speed estimate; 0 = measure once and cache it
    cpu_bandwidth: int = 0


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
    # layers on the GPU: -1 = auto (all when they fit, else the largest split that fits, the rest on the CPU);
    # 0 = CPU only; N = the last N layers (n_layer + 1 also puts the output layer there)
    n_gpu_layers: int = -1
    main_gpu: int = -1  # -1: the GPU with the most free memory, or a split over several; N pins CUDA<N>
    max_n: int = 4  # OpenAI `n`: the most choices one request may ask for (generated in turn)
    # watchdogs (0 = off): a worker not "ready" after load_timeout seconds is killed; a generation that makes
    # no progress (no prompt batch, no token) for stall_timeout seconds is cancelled (504) and its worker restarted
    load_timeout: int = 600
    stall_timeout: int = 120


@dataclass(frozen=True)
class FitConfig:
    # `recommend` and `--auto` rank by quality only among the models estimated to generate at least this
    # many tokens per second on this machine (the slower ones are listed after them, marked "slow")
    min_tokens_per_s: float = 5.0


@dataclass(frozen=True)
class DiscoveryConfig:
    enabled: bool = True  # catalogs over the DHT (needs network.dht_enabled)
    publish: bool = True  # publish this node's catalog (needs an unlocked identity)
    salt: str = "silnode-catalog-v1"  # BEP 44 salt of the catalog pointer
    publishers: tuple[str, ...] = ()  # catalog pubkeys (hex) or btpk magnets always merged, like followed ones
    curates: tuple[str, ...] = ()  # catalog pubkeys this node's catalog vouches for (it becomes a curator catalog)
    refresh_interval: int = 600  # seconds between pointer lookups of the followed catalogs
    reput_interval: int = 3600  # seconds between re-puts of the pointers (BEP 44 items expire after ~2 h)
    fetch_timeout: int = 60  # seconds a catalog lookup or catalog-torrent fetch may take
    max_follow: int = 50  # followed catalogs at most (the merge never fetches everyone)
    rendezvous: bool = True  # announce our key in, and learn publisher keys from, the shared rendezvous (hints)
    rendezvous_interval: int = 3600  # seconds between reads of the rendezvous shards
    rendezvous_max: int = 50  # publishers learned from hints (rendezvous, NIP-89) merged at most


@dataclass(frozen=True)
class NostrConfig:
    # relays the node sells on; empty (or none answering): the embedded relay on relay_port (loopback only)
    relays: tuple[str, ...] = ()
    sell: bool = True  # answer NIP-90 jobs and announce (NIP-89) while models are served; needs an identity
    relay_port: int = 7447  # the embedded relay's port (0: a free one); `silnode relay` uses it too
    # untargeted jobs (no #p) fan out to every seller on a relay; beyond small networks only #p-targeted
    # jobs scale, so they are off by default (README: Selling on Nostr)
    untargeted: bool = False
    max_input_bytes: int = 20000  # results echo the request, events cap at 64 KiB and NIP-44 grows text ~1.45x
    max_tokens: int = 1024  # the most tokens one job may ask for (also the default of a job that names none)
    rate_per_minute: int = 30  # jobs per customer pubkey per minute; more get an error feedback
    partial_interval: float = 0.5  # seconds between `partial` feedbacks of a streaming job (0: none)
    announce_interval: int = 3600  # seconds between NIP-89 re-announcements (and whenever the served set changes)
    lookback: int = 600  # seconds of past jobs asked for at start (jobs sent while the node was down)
    name: str = ""  # the provider's name in its announcement (default: silnode <npub prefix>)
    about: str = ""
    reply_relays: int = 3  # the most relays of a job's `relays` tag its feedback and result also go to (0: none)
    # a job's relays may be loopback/private addresses (one-machine setups, tests); off: public ones only, as
    # for any URL a stranger names (silnode.netpolicy; network.lan_only lets private ones through)
    reply_relays_local: bool = False
    # demand that moved since the last announcement (a model's requests per minute changed by half, and by one
    # request in the 5-minute window) is announced again after this many seconds, not at announce_interval (0: off)
    demand_reannounce: int = 600


@dataclass(frozen=True)
class PaymentsConfig:
    # off: every job runs free (and is still recorded in the earnings ledger)
    require_payment: bool = False
    require_payment_http: bool = False  # /v1 requests must carry ecash too (X-Cashu or a cashu API key)
    price_msats_per_job: int = 0
    price_msats_per_1k_tokens: int = 0  # times the job's max_tokens / 1000; the sum is rounded up to whole sats
    backend: str = "cashu"  # where invoices come from: cashu (a mint's NUT-04 quote) | lnbits | nwc
    mint_url: str = ""  # the cashu backend's mint (default: the first of mints)
    mints: tuple[str, ...] = ()  # allow-list: ecash prepayments (["cashu", token]) from these mints only
    lnbits_url: str = ""  # the key is the keystore secret lnbits_invoice_key (`silnode secrets set`)
    # nwc: the connection URI is the keystore secret nwc_uri
    invoice_expiry: int = 600  # seconds a payment-required invoice stays open
    poll_interval: float = 0.5  # seconds between checks of an open invoice (LNbits allows 200 requests/min)


SECTIONS: dict[str, type] = {
    "daemon": DaemonConfig,
    "storage": StorageConfig,
    "network": NetworkConfig,
    "hardware": HardwareConfig,
    "serve": ServeConfig,
    "fit": FitConfig,
    "discovery": DiscoveryConfig,
    "nostr": NostrConfig,
    "payments": PaymentsConfig,
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
    fit: FitConfig = field(default_factory=FitConfig)
    discovery: DiscoveryConfig = field(default_factory=DiscoveryConfig)
    nostr: NostrConfig = field(default_factory=NostrConfig)
    payments: PaymentsConfig = field(default_factory=PaymentsConfig)

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
    if config.network.web_seed_timeout < 1:
        raise ConfigError("network.web_seed_timeout must be >= 1 second")
    if config.network.resume_save_interval < 1:
        raise ConfigError("network.resume_save_interval must be >= 1 second")
    if config.network.seed_ratio_limit < 0:
        raise ConfigError("network.seed_ratio_limit must be >= 0")
    dc = config.discovery
    for name in ("refresh_interval", "reput_interval", "fetch_timeout", "max_follow", "rendezvous_interval"):
        if getattr(dc, name) < 1:
            raise ConfigError(f"discovery.{name} must be >= 1")
    if not 0 < len(dc.salt.encode()) <= 64:
        raise ConfigError("discovery.salt must be 1-64 bytes (BEP 44)")
    sv = config.serve
    for name in ("n_ctx", "n_threads", "restart_limit"):
        if getattr(sv, name) < 0:
            raise ConfigError(f"serve.{name} must be >= 0")
    for name in ("idle_timeout", "body_timeout", "max_body_bytes"):
        if getattr(d, name) < 1:
            raise ConfigError(f"daemon.{name} must be >= 1")
    for name in ("n_batch", "queue_size", "max_tokens", "restart_window"):
        if getattr(sv, name) < 1:
            raise ConfigError(f"serve.{name} must be >= 1")
    ns = config.nostr
    for url in ns.relays:
        if not url.startswith(("ws://", "wss://")):
            raise ConfigError(f"nostr.relays entry {url!r} must be a ws:// or wss:// URL")
    if not 0 <= ns.relay_port <= 65535:
        raise ConfigError(f"nostr.relay_port must be 0-65535, got {ns.relay_port}")
    for name in ("max_input_bytes", "max_tokens", "rate_per_minute", "announce_interval"):
        if getattr(ns, name) < 1:
            raise ConfigError(f"nostr.{name} must be >= 1")
    if ns.partial_interval < 0 or ns.lookback < 0 or ns.demand_reannounce < 0:
        raise ConfigError("nostr.partial_interval, nostr.lookback and nostr.demand_reannounce must be >= 0")
    if not 0 <= ns.reply_relays <= 10:  # each is a connection a stranger makes the node open
        raise ConfigError(f"nostr.reply_relays must be 0-10, got {ns.reply_relays}")
    _validate_payments(config.payments)
    _validate_watchdogs(config)


def _validate_watchdogs(config: Config) -> None:
    for section, name in (("serve", "load_timeout"), ("serve", "stall_timeout"), ("daemon", "log_backups")):
        if getattr(getattr(config, section), name) < 0:
            raise ConfigError(f"{section}.{name} must be >= 0")
    if config.daemon.log_max_bytes < 4096:
        raise ConfigError("daemon.log_max_bytes must be >= 4096")
    if not config.network.recheck_timeout > 0:
        raise ConfigError("network.recheck_timeout must be > 0 seconds")


def _validate_payments(pc: PaymentsConfig) -> None:
    if pc.backend not in ("cashu", "lnbits", "nwc"):
        raise ConfigError(f"payments.backend must be cashu, lnbits or nwc, got {pc.backend!r}")
    for name in ("price_msats_per_job", "price_msats_per_1k_tokens"):
        if getattr(pc, name) < 0:
            raise ConfigError(f"payments.{name} must be >= 0")
    if pc.invoice_expiry < 1:
        raise ConfigError("payments.invoice_expiry must be >= 1 second")
    if pc.poll_interval <= 0:
        raise ConfigError("payments.poll_interval must be > 0 seconds")
    for url in (pc.mint_url, pc.lnbits_url, *pc.mints):
        if url and not url.startswith(("http://", "https://")):
            raise ConfigError(f"payments: {url!r} is not an http(s) URL")
    if pc.require_payment and pc.backend == "cashu" and not (pc.mint_url or pc.mints):
        raise ConfigError("payments.backend cashu needs payments.mint_url or payments.mints")
    if pc.require_payment_http and not (pc.mints or pc.mint_url):
        raise ConfigError("payments.require_payment_http needs payments.mints (where the ecash may come from)")
    if pc.require_payment and pc.backend == "lnbits" and not pc.lnbits_url:
        raise ConfigError("payments.backend lnbits needs payments.lnbits_url")

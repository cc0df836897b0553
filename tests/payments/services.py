"""Real payment services on loopback for the tests: a nutshell cashu mint and LNbits, each with its FakeWallet,
each from its own venv (scripts/test_services.py builds them once under ~/.cache/silnode-test-services)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import test_services  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status < 500
    except urllib.error.HTTPError as exc:
        return exc.code < 500  # LNbits answers 307 before first_install: it is up
    except (OSError, ValueError):
        return False


def _wait(proc: subprocess.Popen, url: str, log: Path, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout  # a hang guard, not a speed limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited ({proc.returncode}): {log.read_text()[-3000:]}")
        if _ready(url):
            return
        time.sleep(0.1)
    _kill(proc)
    raise RuntimeError(f"{what} did not answer {url} within {timeout:.0f} s: {log.read_text()[-3000:]}")


def _kill(proc: subprocess.Popen) -> None:
    """Both services fork (LNbits leaves a uvicorn child behind on SIGTERM): end the whole process group."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        except ProcessLookupError:
            pass
    try:  # stray children of the group
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


@dataclass
class Mint:
    """A nutshell mint; ``restart(brr=...)`` keeps its DB and key (same keysets) on the same port."""

    workdir: Path
    port: int = field(default_factory=free_port)
    brr: bool = True
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Mint:
        venv = test_services.ensure("cashu")
        self.workdir.mkdir(parents=True, exist_ok=True)
        env = dict(
            os.environ,
            MINT_BACKEND_BOLT11_SAT="FakeWallet",
            MINT_PRIVATE_KEY="silnode-test-mint",
            MINT_LISTEN_HOST="127.0.0.1",
            MINT_LISTEN_PORT=str(self.port),
            MINT_DATABASE=str(self.workdir / "db"),
            CASHU_DIR=str(self.workdir / "home"),
            MINT_INPUT_FEE_PPK="0",
            FAKEWALLET_DELAY_INCOMING_PAYMENT="0",
            FAKEWALLET_DELAY_OUTGOING_PAYMENT="0",
            # true: every invoice reports paid when checked (funding the customers); false: only a melt pays one
            FAKEWALLET_BRR="true" if self.brr else "false",
            DEBUG="false",
        )
        log = self.workdir / "mint.log"
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                [str(venv / "bin" / "mint")], env=env, stdout=out, stderr=out, cwd=self.workdir, start_new_session=True
            )
        _wait(self.proc, f"{self.url}/v1/info", log, "the cashu mint")
        return self

    def stop(self) -> None:
        if self.proc is not None:
            _kill(self.proc)
            self.proc = None

    def restart(self, *, brr: bool) -> None:
        self.stop()
        self.brr = brr
        self.start()


@dataclass
class LNbits:
    workdir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LNbits:
        venv = test_services.ensure("lnbits")
        self.workdir.mkdir(parents=True, exist_ok=True)
        site = Path(
            subprocess.run(
                # find_spec, not import: importing lnbits writes data/.lnbits_auth_key into the working directory
                [
                    str(venv / "bin" / "python"),
                    "-c",
                    "import importlib.util as u, os; print(os.path.dirname(u.find_spec('lnbits').origin))",
                ],
                check=True,
                capture_output=True,
                text=True,
                cwd=self.workdir,
            ).stdout.strip()
        )
        (self.workdir / "lnbits").mkdir(parents=True, exist_ok=True)
        (self.workdir / "data").mkdir(exist_ok=True)
        for name in ("static", "templates"):  # LNbits wants ./lnbits/static in its working directory
            link = self.workdir / "lnbits" / name
            if not link.exists():
                link.symlink_to(site / name)
        env = dict(
            os.environ,
            LNBITS_BACKEND_WALLET_CLASS="FakeWallet",
            FAKE_WALLET_SECRET="silnode-test",
            LNBITS_DATA_FOLDER=str(self.workdir / "data"),
            LNBITS_ADMIN_UI="true",
            LNBITS_RATE_LIMIT_NO="100000",
        )
        log = self.workdir / "lnbits.log"
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                [str(venv / "bin" / "lnbits"), "--host", "127.0.0.1", "--port", str(self.port)],
                env=env,
                stdout=out,
                stderr=out,
                cwd=self.workdir,
                start_new_session=True,
            )
        _wait(self.proc, f"{self.url}/api/v1/health", log, "LNbits")
        return self

    def stop(self) -> None:
        if self.proc is not None:
            _kill(self.proc)
            self.proc = None

    # ---- setup through its REST API, as an operator would
    def _call(
        self, method: str, path: str, body: dict | None = None, *, key: str | None = None, bearer: str | None = None
    ) -> dict:
        req = urllib.request.Request(self.url + path, method=method, data=json.dumps(body).encode() if body else None)
        req.add_header("Content-Type", "application/json")
        if key:
            req.add_header("X-Api-Key", key)
        if bearer:
            req.add_header("Authorization", f"Bearer {bearer}")
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read() or b"{}")

    def first_install(self) -> str:
        data = self._call(
            "PUT",
            "/api/v1/auth/first_install",
            {"username": "admin", "password": "silnode-test-pw", "password_repeat": "silnode-test-pw"},
        )
        return data["access_token"]

    def new_wallet(self, bearer: str, name: str) -> dict:
        return self._call("POST", "/api/v1/account", {"name": name}, bearer=bearer)

    def credit(self, bearer: str, wallet_id: str, sats: int) -> None:
        self._call("PUT", "/users/api/v1/balance", {"id": wallet_id, "amount": sats}, bearer=bearer)

    def pay(self, admin_key: str, bolt11: str) -> dict:
        return self._call("POST", "/api/v1/payments", {"out": True, "bolt11": bolt11}, key=admin_key)


# ---- NWC (NIP-47): @getalby/sdk's wallet service bridged to LNbits (nwc_bridge.mjs), node + npm from the system
NWC_PACKAGES = ["@getalby/sdk@8.0.3", "ws@8.18.3"]


def ensure_nwc() -> Path:
    """node_modules with the pinned SDK under the test-services cache (npm install once, ~10 s)."""
    import fcntl
    import hashlib
    import shutil

    tag = hashlib.sha256(json.dumps(NWC_PACKAGES).encode()).hexdigest()[:10]
    root = test_services.cache_dir() / f"nwc-{tag}"
    stamp = root / ".silnode-ready"
    if stamp.is_file():
        return root
    test_services.cache_dir().mkdir(parents=True, exist_ok=True)
    with open(test_services.cache_dir() / "nwc.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        if stamp.is_file():
            return root
        if root.exists():
            shutil.rmtree(root)
        root.mkdir(parents=True)
        (root / "package.json").write_text('{"name": "silnode-nwc-bridge", "private": true, "type": "module"}\n')
        npm = shutil.which("npm")
        if npm is None:
            raise RuntimeError("the NWC test bridge needs node and npm (apt-get install nodejs npm)")
        subprocess.run([npm, "install", "--no-audit", "--no-fund", "--silent", *NWC_PACKAGES], cwd=root, check=True)
        stamp.write_text(json.dumps({"packages": NWC_PACKAGES}))
    return root


@dataclass
class NWCBridge:
    """A NIP-47 wallet service on ``relay`` whose connections are LNbits wallets. ``connect(key)`` before
    ``start()`` adds one and returns its ``nostr+walletconnect://`` URI (the client's secret is in it)."""

    workdir: Path
    relay: str
    lnbits_url: str
    connections: list = field(default_factory=list)
    proc: subprocess.Popen | None = None

    def connect(self, lnbits_key: str) -> str:
        from nostr_sdk import Keys

        wallet, client = Keys.generate(), Keys.generate()
        self.connections.append(
            {
                "wallet_secret": wallet.secret_key().to_hex(),
                "client_pubkey": client.public_key().to_hex(),
                "key": lnbits_key,
            }
        )
        return (
            f"nostr+walletconnect://{wallet.public_key().to_hex()}?relay={self.relay}"
            f"&secret={client.secret_key().to_hex()}"
        )

    def start(self) -> NWCBridge:
        root = ensure_nwc()
        self.workdir.mkdir(parents=True, exist_ok=True)
        script = root / "nwc_bridge.mjs"  # beside its node_modules, so the imports resolve
        script.write_text((Path(__file__).parent / "nwc_bridge.mjs").read_text())
        cfg = json.dumps({"relay": self.relay, "lnbits": self.lnbits_url, "connections": self.connections})
        log = self.workdir / "nwc.log"
        self._log = open(log, "ab")
        self.proc = subprocess.Popen(
            ["node", str(script), cfg], stdout=subprocess.PIPE, stderr=self._log, cwd=root, start_new_session=True
        )
        line = self.proc.stdout.readline().decode().strip()  # blocks until ready or exit
        if line != "ready":
            _kill(self.proc)
            raise RuntimeError(f"the NWC bridge did not start ({line!r}): {log.read_text()[-3000:]}")
        return self

    def stop(self) -> None:
        if self.proc is not None:
            _kill(self.proc)
            if self.proc.stdout is not None:
                self.proc.stdout.close()
            self.proc = None
            self._log.close()

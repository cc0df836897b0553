"""Session fixtures: one real nutshell mint per session (funded customers first with FakeWallet brr=true, then
restarted with brr=false so an invoice is paid only when someone really pays it), and LNbits."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from services import LNbits, Mint  # noqa: E402


@pytest.fixture(scope="session")
def mint_brr(tmp_path_factory: pytest.TempPathFactory):
    """A mint where every invoice reports paid: customers fund their wallets here."""
    m = Mint(tmp_path_factory.mktemp("mint-brr"), brr=True).start()
    yield m
    m.stop()


@pytest.fixture(scope="session")
def lnbits(tmp_path_factory: pytest.TempPathFactory):
    ln = LNbits(tmp_path_factory.mktemp("lnbits")).start()
    yield ln
    ln.stop()

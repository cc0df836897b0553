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


@pytest.fixture(scope="session")
def mint(tmp_path_factory: pytest.TempPathFactory):
    """A real nutshell mint with FakeWallet brr=false: an invoice is paid only when a customer melts ecash
    into it. The customers' ecash is minted first, while the same mint (same DB, same keys) runs brr=true.
    Yields the mint; ``mint.purses`` holds funded proof sets (200 sats each), one per test that needs money."""
    import asyncio

    from wallet import Customer

    m = Mint(tmp_path_factory.mktemp("mint"), brr=True).start()

    async def fund() -> list[list]:
        purses = []
        for _ in range(32):  # one per test that needs money (a test run fails loudly when they run out)
            c = Customer(m.url)
            await c.fund(200)
            purses.append(c.proofs)
            await c.close()
        return purses

    try:
        m.purses = asyncio.run(fund())
        m.restart(brr=False)
        yield m
    finally:
        m.stop()


@pytest.fixture
async def customer(mint):
    from wallet import Customer

    if not mint.purses:
        pytest.fail("the session's funded purses ran out: raise their count in the mint fixture")
    c = Customer(mint.url, mint.purses.pop())
    yield c
    await c.close()

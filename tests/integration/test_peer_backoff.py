"""A transfer with no peers redials its explicit peers and asks the DHT with a backoff, not every 5 s."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.timeout(120)


async def test_no_peer_transfer_backs_off_dials_and_announces(make_node):
    node = await make_node("n")
    dist = node.distribution
    dist._ticker.cancel()  # we drive the clock ourselves
    t = await dist.download("ab" * 20, peers=("127.0.0.1:9",), name="bob/nobody", force=True)
    calls: list[tuple[str, float]] = []
    clock = [0.0]
    real_announce, real_redial = dist.session.announce, dist.session.redial
    dist.session.announce = lambda tid: (calls.append(("announce", clock[0])), real_announce(tid))
    dist.session.redial = lambda tid: (calls.append(("dial", clock[0])), real_redial(tid))
    for second in range(0, 121):
        clock[0] = float(second)
        dist._look_for_peers(float(second))
    assert t.state == "metadata"
    assert [at for kind, at in calls if kind == "announce"] == [5.0, 15.0, 35.0, 75.0]
    assert [at for kind, at in calls if kind == "dial"] == [0.0, 1.0, 3.0, 7.0, 15.0, 31.0, 61.0, 91.0]

"""The settings pack: built from NetworkConfig, never libtorrent's internet-facing defaults."""

from __future__ import annotations

import libtorrent as lt
import pytest

from silnode.config import NetworkConfig, load_config
from silnode.torrent.settings import PRIVATE_DHT, dht_bootstrap_nodes, is_local_address, session_settings

pytestmark = pytest.mark.timeout(60)


def test_defaults_follow_the_config():
    net = NetworkConfig()  # the shipped defaults (the test environment itself is private, see below)
    s = session_settings(net)
    assert s["listen_interfaces"] == f"{net.listen_address}:{net.listen_port}" == "0.0.0.0:6881"
    assert s["enable_dht"] is True
    assert s["dht_bootstrap_nodes"] == ",".join(net.dht_bootstrap)
    assert s["enable_lsd"] and s["enable_upnp"] and s["enable_natpmp"]
    # uTP off by default: TCP is 10-20x faster on loopback/LAN
    assert s["enable_outgoing_utp"] is False and s["enable_incoming_utp"] is False
    assert s["enable_outgoing_tcp"] and s["enable_incoming_tcp"]
    assert s["allow_multiple_connections_per_ip"] is True
    assert s["upload_rate_limit"] == 0 and s["download_rate_limit"] == 0
    assert s["ignore_limits_on_local_network"] is True
    mask = s["alert_mask"]
    for cat in ("status", "error", "storage", "peer", "dht", "performance_warning"):
        assert mask & int(getattr(lt.alert_category, cat))
    assert not mask & int(lt.alert_category.session_log)
    assert not set(PRIVATE_DHT) & set(s)


def test_the_test_environment_resolves_to_a_private_loopback_node(clean_env):
    s = session_settings(load_config(clean_env).network)
    assert s["listen_interfaces"] == "127.0.0.1:0"
    assert not (s["enable_dht"] or s["enable_lsd"] or s["enable_upnp"] or s["enable_natpmp"])


def test_lan_only_keeps_everything_local():
    net = NetworkConfig(
        lan_only=True,
        dht_bootstrap=(
            "dht.libtorrent.org:25401",
            "8.8.8.8:6881",
            "192.168.1.5:6881",
            "10.0.0.7:6882",
            "[fd00::1]:6881",
        ),
    )
    s = session_settings(net)
    assert s["enable_upnp"] is False and s["enable_natpmp"] is False
    nodes = s["dht_bootstrap_nodes"].split(",")
    assert nodes == ["192.168.1.5:6881", "10.0.0.7:6882", "[fd00::1]:6881"]
    assert "libtorrent.org" not in s["dht_bootstrap_nodes"] and "8.8.8.8" not in s["dht_bootstrap_nodes"]
    assert s["enable_dht"] is True
    # only public bootstrap nodes: no DHT at all under lan_only
    s = session_settings(NetworkConfig(lan_only=True))
    assert s["enable_dht"] is False and s["dht_bootstrap_nodes"] == ""
    assert s["enable_upnp"] is False and s["enable_natpmp"] is False
    assert s["enable_lsd"] is True  # local multicast stays, as configured
    assert session_settings(NetworkConfig(lan_only=True, lsd_enabled=False))["enable_lsd"] is False


def test_switches_and_limits():
    s = session_settings(
        NetworkConfig(
            dht_enabled=False,
            lsd_enabled=False,
            upnp_enabled=False,
            natpmp_enabled=False,
            utp_enabled=True,
            listen_address="::1",
            listen_port=0,
            upload_rate_limit=1000,
            download_rate_limit=0,
        )
    )
    assert s["enable_dht"] is False and s["dht_bootstrap_nodes"] == ""
    assert not (s["enable_lsd"] or s["enable_upnp"] or s["enable_natpmp"])
    assert s["enable_outgoing_utp"] and s["enable_incoming_utp"]
    assert s["listen_interfaces"] == "[::1]:0"
    assert s["upload_rate_limit"] == 1000
    assert s["ignore_limits_on_local_network"] is False  # a limit holds for LAN peers too


def test_private_adds_the_private_dht_settings_and_libtorrent_accepts_them():
    net = NetworkConfig(
        listen_address="127.0.0.1",
        listen_port=0,
        dht_bootstrap=(),
        lsd_enabled=False,
        upnp_enabled=False,
        natpmp_enabled=False,
    )
    s = session_settings(net, private=True)
    assert s["dht_restrict_routing_ips"] is False and s["dht_block_ratelimit"] >= 10_000
    ses = lt.session(s)  # every key is a real libtorrent setting
    got = ses.get_settings()
    for key, value in s.items():
        assert got[key] == value, key


def test_is_local_address():
    assert is_local_address("127.0.0.1") and is_local_address("[::1]") and is_local_address("169.254.1.1")
    assert not is_local_address("8.8.8.8") and not is_local_address("localhost")
    assert dht_bootstrap_nodes(NetworkConfig(dht_bootstrap=("a:1",))) == ["a:1"]


async def test_lan_only_live_session_has_nothing_public():
    """What libtorrent itself runs with (get_settings of a real session), not just the dict we pass."""
    from silnode.torrent.session import TorrentSession

    net = NetworkConfig(
        lan_only=True,
        listen_address="127.0.0.1",
        listen_port=0,
        dht_bootstrap=("45.33.32.156:6881", "router.bittorrent.com:6881", "10.1.2.3:6881"),
    )
    s = TorrentSession(net)
    await s.start()
    try:
        live = s._ses.get_settings()
        assert live["dht_bootstrap_nodes"] == "10.1.2.3:6881"  # only the private one survives
        assert live["enable_upnp"] is False and live["enable_natpmp"] is False
        assert live["enable_outgoing_utp"] is False
    finally:
        await s.stop()
    s = TorrentSession(NetworkConfig(lan_only=True, listen_address="127.0.0.1", listen_port=0))
    await s.start()
    try:
        live = s._ses.get_settings()
        assert live["enable_dht"] is False and live["dht_bootstrap_nodes"] == ""
    finally:
        await s.stop()

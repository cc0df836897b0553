"""The libtorrent settings pack, always built by us from :class:`~silnode.config.NetworkConfig`.

A default ``lt.session()`` listens on every interface (0.0.0.0:6881 and [::]:6881), bootstraps into the
public DHT (dht.libtorrent.org), multicasts LSD and asks the router for port mappings (UPnP, NAT-PMP).
So every key that decides what the node talks to is set here explicitly, never left to libtorrent's defaults
(libtorrent-notes, pitfall 1).

Rules:

* ``listen_interfaces`` = ``listen_address:listen_port`` (IPv6 literals bracketed). Port 0 = any free port
  (tests); :meth:`TorrentSession.listen_port` tells which one was taken.
* DHT on iff ``dht_enabled``; its bootstrap nodes are ``dht_bootstrap`` joined with ``,``.
* ``lan_only``: announce nothing outside the local network. UPnP and NAT-PMP are off (they open a port on
  the router towards the internet). The DHT keeps only bootstrap entries that are IP *literals* in
  private, loopback or link-local ranges (10/8, 172.16/12, 192.168/16, 127/8, 169.254/16, fc00::/7, ::1,
  fe80::/10); host names are dropped because a name can resolve to anything. With no such entry left the
  DHT is switched off, so a LAN-only node never joins the public DHT. LSD (local multicast) follows
  ``lsd_enabled``.
* uTP is off unless ``utp_enabled``: on loopback/LAN libtorrent picks uTP and moves 10-20x less than TCP
  (libtorrent-notes §3). TCP is always on.
* Rate limits are bytes/s (0 = unlimited). libtorrent exempts LAN/loopback peers from the global limits by
  default, so ``ignore_limits_on_local_network`` is False whenever a limit is set: a limit the user set
  must hold on the LAN too (notes §5).
* ``allow_multiple_connections_per_ip`` = True: several nodes behind one NAT (or on one test host)
  must be able to connect to us (notes §4).
* ``seed_ratio_limit`` / ``seed_time_limit`` are not libtorrent settings here: libtorrent only applies its
  ratio/time limits to auto-managed torrents and silnode's torrents are not auto-managed (the queue would
  stop seeding after ``active_seeds`` = 5 models). :class:`TorrentSession` enforces them itself.

``private=True`` (tests and LAN swarms where many nodes share one IP or one /24) adds the settings a
private DHT needs (notes §6): no per-/24 routing restriction, no 5-packets/s per-IP block, a higher DHT
upload budget.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from silnode import __version__
from silnode.config import NetworkConfig
from silnode.torrent._lt import libtorrent

# what the alert pump converts (see session.py); everything else is left out so libtorrent never builds it
# status: state changes, finished, checked, metadata, hash failures, resume data, paused/resumed, removed
# error: file/torrent errors, listen failures; storage: file renamed/deleted; peer: bans;
# ip_block: blocked peers; dht: put/get results; performance_warning: misconfiguration hints.
_ALERT_CATEGORIES = ("status", "error", "storage", "peer", "ip_block", "dht", "performance_warning")

PRIVATE_DHT: dict[str, Any] = {
    "dht_restrict_routing_ips": False,  # else one routing-table node per /24: a one-IP DHT never forms
    "dht_restrict_search_ips": False,
    "dht_prefer_verified_node_ids": False,
    "dht_ignore_dark_internet": False,
    "dht_enforce_node_id": False,
    "dht_block_ratelimit": 100_000,  # default 5 packets/s per source IP, then a 300 s block
    "dht_upload_rate_limit": 1_000_000,  # default 8000 B/s
}


def _listen_interfaces(address: str, port: int) -> str:
    host = address.strip()
    if ":" in host and not host.startswith("["):  # an IPv6 literal
        host = f"[{host}]"
    return f"{host}:{port}"


def is_local_address(host: str) -> bool:
    """True for an IP literal in a private, loopback or link-local range; False for names and public IPs."""
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return ip.is_private or ip.is_loopback or ip.is_link_local


LAN_RANGES = tuple(
    ipaddress.ip_network(n)
    for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8", "169.254.0.0/16",
              "::1/128", "fc00::/7", "fe80::/10")
)  # fmt: skip


def lan_ip_filter() -> Any:
    """``network.lan_only`` at the packet level: an ``lt.ip_filter`` that blocks every address but the private,
    loopback and link-local ranges above. Set on the session, it binds peers (in and out), web seeds and
    trackers (libtorrent applies it to each, ``apply_ip_filter`` is on for every torrent)."""
    lt = libtorrent()
    f = lt.ip_filter()
    f.add_rule("0.0.0.0", "255.255.255.255", 1)  # 1 = blocked
    f.add_rule("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 1)
    for net in LAN_RANGES:
        f.add_rule(str(net.network_address), str(net.broadcast_address), 0)
    return f


def dht_bootstrap_nodes(net: NetworkConfig) -> list[str]:
    """The bootstrap entries the session may use (all of them, or the LAN ones under ``lan_only``)."""
    nodes = [n.strip() for n in net.dht_bootstrap if n.strip()]
    if net.lan_only:
        nodes = [n for n in nodes if is_local_address(n.rpartition(":")[0])]
    return nodes


def alert_mask() -> int:
    lt = libtorrent()
    mask = 0
    for name in _ALERT_CATEGORIES:
        mask |= int(getattr(lt.alert_category, name))
    return mask


def session_settings(net: NetworkConfig, *, private: bool = False) -> dict[str, Any]:
    """A complete settings dict for ``lt.session(settings)``; see the module docstring for the rules."""
    bootstrap = dht_bootstrap_nodes(net)
    # lan_only with no LAN bootstrap node left: no DHT at all rather than a DHT that finds the internet
    dht = net.dht_enabled and (bool(bootstrap) or not net.lan_only)
    limited = net.upload_rate_limit > 0 or net.download_rate_limit > 0
    settings: dict[str, Any] = {
        "listen_interfaces": _listen_interfaces(net.listen_address, net.listen_port),
        "enable_dht": dht,
        "dht_bootstrap_nodes": ",".join(bootstrap) if dht else "",
        "enable_lsd": net.lsd_enabled,
        "enable_upnp": net.upnp_enabled and not net.lan_only,
        "enable_natpmp": net.natpmp_enabled and not net.lan_only,
        "enable_outgoing_utp": net.utp_enabled,
        "enable_incoming_utp": net.utp_enabled,
        "enable_outgoing_tcp": True,
        "enable_incoming_tcp": True,
        "upload_rate_limit": net.upload_rate_limit,
        "download_rate_limit": net.download_rate_limit,
        "ignore_limits_on_local_network": not limited,
        "allow_multiple_connections_per_ip": True,
        "alert_mask": alert_mask(),
        # room for bursts (one finished/state/resume alert per torrent at shutdown); the default 2000
        # would drop alerts silently on a node that seeds many models
        "alert_queue_size": 10_000,
        # a download fetches its metadata with no file wanted (see session.py); the seed that served it then
        # drops us as redundant, and libtorrent would wait min_reconnect_time (default 60 s) before dialling
        # a peer found through the DHT again once we do want data. Measured: 60 s -> 5 s for a bare
        # infohash over a private DHT. Repeated failures still back off (the wait is multiplied by failcount).
        "min_reconnect_time": 5,
        "user_agent": f"silnode/{__version__} libtorrent/{libtorrent().__version__}",
    }
    if private:
        settings.update(PRIVATE_DHT)
    return settings

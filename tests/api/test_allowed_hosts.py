"""daemon.allowed_hosts: a name the node is reached through (a reverse proxy, /etc/hosts) is accepted as
Host and as Origin; any other name is still refused (the DNS-rebinding guard stays on)."""

from __future__ import annotations

from silnode.api import make_app
from silnode.config import load_config
from silnode.node import Node


async def test_allowed_hosts_extends_the_host_and_origin_checks(clean_env, aiohttp_client):
    cfg = load_config(clean_env, overrides={"daemon.port": 0, "daemon.allowed_hosts": ["silnode.home:8737"]})
    node = Node(cfg)
    await node.start()
    try:
        client = await aiohttp_client(make_app(node))
        r = await client.get("/api/v1/health", headers={"Host": "silnode.home:8737"})
        assert r.status == 200
        r = await client.get("/api/v1/health", headers={"Host": "silnode.home"})  # the port is not part of it
        assert r.status == 200
        r = await client.get("/api/v1/health", headers={"Host": "silnode.home", "Origin": "http://silnode.home:8737"})
        assert r.status == 200
        r = await client.get("/api/v1/health", headers={"Host": "other.home"})
        body = await r.json()
        assert r.status == 403 and "daemon.allowed_hosts" in body["hint"]
        r = await client.get("/api/v1/health", headers={"Host": "silnode.home", "Origin": "http://other.home"})
        assert r.status == 403
    finally:
        await node.stop()


async def test_without_allowed_hosts_the_name_is_refused(clean_env, aiohttp_client):
    # the control case: the same name is refused when not configured, so the test above can fail
    node = Node(load_config(clean_env, overrides={"daemon.port": 0}))
    await node.start()
    try:
        client = await aiohttp_client(make_app(node))
        assert (await client.get("/api/v1/health", headers={"Host": "silnode.home"})).status == 403
    finally:
        await node.stop()

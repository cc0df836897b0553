"""`silnode status`: the whole node on one screen (identity, store, serving, transfers, discovery, selling,
earnings), from one `GET /api/v1/status` plus the identity and earnings endpoints. `daemon status` stays the
short liveness answer."""

from __future__ import annotations

from typing import Any

import click

from silnode.cli.context import Ctx, json_option
from silnode.cli.output import human_size

pass_ctx = click.make_pass_decorator(Ctx, ensure=True)


def _sats(msats: Any) -> str:
    return f"{int(msats or 0) // 1000} sat"


def render(st: dict[str, Any], ident: dict[str, Any] | None, earned: dict[str, Any] | None) -> str:
    lines = [f"silnode {st.get('version')} (pid {st.get('pid')}), up {int(st.get('uptime_s') or 0)} s"]
    if ident:
        lock = "unlocked" if ident.get("unlocked") else "locked (keys off: start with SILNODE_PASSWORD)"
        lines.append(f"identity   {ident.get('npub')} ({lock})")
    else:
        lines.append("identity   none (`silnode identity new`)")
    store = st.get("store") or {}
    lines.append(
        f"store      {store.get('models', 0)} model(s), {human_size(store.get('bytes'))}, "
        f"{human_size(store.get('free_bytes'))} free"
    )
    serving = st.get("serving") or {}
    if serving:
        for name, m in serving.items():
            tps = m.get("tokens_per_second")
            rate = ((m.get("demand") or {}).get("per_minute")) or {}
            lines.append(
                f"serving    {name}: {m.get('state')}, {m.get('requests', 0)} request(s)"
                + (f", {tps} tok/s" if tps else "")
                + (
                    f"; demand {rate.get('total', 0):g}/min (HTTP {rate.get('http', 0):g}, "
                    f"NIP-90 {rate.get('nip90', 0):g}, last 5 min)"
                    if rate
                    else ""
                )
            )
    else:
        lines.append("serving    nothing (`silnode serve`)")
    t = st.get("torrents") or {}
    lines.append(
        f"transfers  {t.get('downloads', 0)} downloading, {t.get('seeding', 0)} seeding, {t.get('peers', 0)} peer(s), "
        f"DHT {'on, ' + str(t.get('dht_nodes', 0)) + ' nodes' if t.get('dht_enabled') else 'off'}"
    )
    d = st.get("discovery")
    if d:
        lines.append(
            f"discovery  following {d.get('following', 0)}, {d.get('catalogs', 0)} catalog(s), "
            f"{d.get('entries', 0)} model(s) known, {d.get('learned', 0)} hinted"
        )
    dvm = st.get("dvm")
    if dvm:
        if dvm.get("state") == "selling":
            relays = dvm.get("relays") or []
            up = sum(1 for r in relays if isinstance(r, dict) and r.get("status") == "connected")
            per_min = dvm.get("jobs_per_minute") or {}
            rate = ", ".join(f"{k} {v}/min" for k, v in per_min.items()) or "no jobs in the last 5 min"
            lines.append(f"selling    on {len(relays)} relay(s) ({up} connected); {rate}")
        else:
            lines.append(f"selling    {dvm.get('state')}: {dvm.get('reason') or ''}".rstrip(": "))
    if earned:
        paid = ((earned.get("totals") or {}).get("paid") or {}).get("msats", 0)
        lines.append(f"earnings   {_sats(paid)} paid (`silnode earnings`)")
    return "\n".join(lines)


@click.command()
@json_option
@pass_ctx
def status(ctx: Ctx) -> None:
    """The whole node on one screen: identity, store, serving, transfers, discovery, selling, earnings."""
    client = ctx.client()
    st = client.status()
    st.pop("ok", None)
    try:
        ident = client.identity()
    except Exception:  # noqa: BLE001 - a node without an identity answers 404: shown as none
        ident = None
    try:
        earned = client.request("GET", "/api/v1/earnings")["earnings"]
    except Exception:  # noqa: BLE001 - an older daemon without payments: the line is left out
        earned = None
    screen = render(st, ident, earned) + (
        f"\ndashboard  {client.base_url}/ (read-only; `silnode dashboard login` prints a one-time login link)"
    )
    ctx.out.data({"status": st, "identity": ident, "earnings": earned}, screen)


COMMANDS = [status]

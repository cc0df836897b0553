"""Slow and greedy clients against a real daemon: a slow-loris that trickles its headers is cut off, a body
that trickles in gets 408, an oversized body 413, and the daemon keeps answering everyone else."""

from __future__ import annotations

import socket
import time

import pytest

from tests.daemons import start_daemon, stop_daemon

pytestmark = pytest.mark.timeout(180)
GUARD = 60.0  # seconds: a hang guard, not a speed limit


@pytest.fixture
def slow_daemon(clean_env):
    d = start_daemon(clean_env, env={"SILNODE_DAEMON__IDLE_TIMEOUT": "2", "SILNODE_DAEMON__BODY_TIMEOUT": "2"})
    yield d
    stop_daemon(d)


def _connect(d) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", d.port), timeout=GUARD)
    return s


def _closed_by_peer(s: socket.socket) -> bytes:
    """Read until the daemon closes the connection (or the guard runs out); what it sent."""
    got = b""
    deadline = time.monotonic() + GUARD
    while time.monotonic() < deadline:
        try:
            chunk = s.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            return got
        if not chunk:
            return got
        got += chunk
    raise AssertionError(f"the daemon kept the connection open for {GUARD:.0f} s")


def _health_ok(d) -> bool:
    s = _connect(d)
    s.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    reply = _closed_by_peer(s)
    s.close()
    return reply.startswith(b"HTTP/1.1 200")


def test_a_slow_loris_is_cut_off_and_others_are_served(slow_daemon):
    s = _connect(slow_daemon)
    s.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # headers never finished
    trickled = 0
    deadline = time.monotonic() + GUARD
    closed = False
    while time.monotonic() < deadline:
        try:
            s.sendall(b"X-a: b\r\n")  # one more header line every half second: each alone is "activity"
            trickled += 1
        except (BrokenPipeError, ConnectionResetError):
            closed = True
            break
        s.settimeout(0.5)
        try:
            if s.recv(1) == b"":
                closed = True
                break
        except TimeoutError:
            pass
        except (ConnectionResetError, BrokenPipeError):
            closed = True
            break
    s.close()
    assert closed, "a client that never finished its headers kept its connection"
    assert trickled >= 1
    assert _health_ok(slow_daemon)


def test_a_trickling_body_gets_408(slow_daemon):
    s = _connect(slow_daemon)
    head = (
        "POST /api/v1/gc HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {slow_daemon.token}\r\nContent-Type: application/json\r\n"
        "Content-Length: 100\r\n\r\n"
    )
    s.sendall(head.encode() + b"{")  # 1 of 100 bytes, then nothing
    reply = _closed_by_peer(s)
    s.close()
    assert reply.startswith(b"HTTP/1.1 408"), reply[:200]
    assert b'"code": "request_timeout"' in reply and b"daemon.body_timeout" in reply
    assert _health_ok(slow_daemon)


def test_an_oversized_body_gets_413(slow_daemon):
    s = _connect(slow_daemon)
    body = b"{" + b" " * (2 << 20) + b"}"
    head = (
        "POST /api/v1/gc HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {slow_daemon.token}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    s.sendall(head.encode())
    try:
        s.sendall(body)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the daemon may answer and close before it has read it all
    reply = _closed_by_peer(s)
    s.close()
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]

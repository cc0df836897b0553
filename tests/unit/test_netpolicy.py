"""Address classes and URL checks for URLs that come from elsewhere."""

from __future__ import annotations

import pytest

from silnode.errors import AddressRefused
from silnode.netpolicy import Policy, check_hop, classify, literal_ip, redirect_target


@pytest.mark.parametrize(
    "ip, kind",
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("100.64.0.1", "private"),
        ("fd00::2", "private"),
        ("::ffff:192.168.0.1", "private"),
        ("0.0.0.0", "other"),
        ("224.0.0.1", "other"),
        ("8.8.8.8", "public"),
        ("2606:4700:4700::1111", "public"),
    ],
)
def test_classify(ip, kind):
    assert classify(ip) == kind


def test_inet_aton_forms_are_addresses_too():
    assert str(literal_ip("127.1")) == "127.0.0.1"
    assert str(literal_ip("2130706433")) == "127.0.0.1"
    assert str(literal_ip("[::1]")) == "::1"
    assert literal_ip("example.com") is None


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8737/api/v1/admin/shutdown",
        "http://localhost/x.gguf",
        "http://127.1/x.gguf",
        "http://[::1]/x.gguf",
        "http://169.254.169.254/latest/meta-data/",
        "http://192.168.1.1/x.gguf",
        "ftp://8.8.8.8/x.gguf",
        "file:///etc/passwd",
        "http:///nohost",
    ],
)
def test_refused_without_lan_only(url):
    with pytest.raises(AddressRefused):
        Policy().check_url(url)


def test_lan_only_allows_the_lan_but_never_loopback():
    lan = Policy(lan_only=True)
    assert [str(a) for a in lan.check_url("http://192.168.1.1/x.gguf")] == ["192.168.1.1"]
    assert [str(a) for a in lan.check_url("http://169.254.1.1/x")] == ["169.254.1.1"]
    for url in ("http://127.0.0.1/x", "http://localhost/x", "http://0.0.0.0/x"):
        with pytest.raises(AddressRefused, match="loopback|other"):
            lan.check_url(url)


def test_public_literals_pass_and_hops_are_checked():
    assert [str(a) for a in Policy().check_url("https://8.8.8.8/x.gguf")] == ["8.8.8.8"]
    check_hop(Policy(), "http://8.8.8.8/x")
    with pytest.raises(AddressRefused, match=r"127\.0\.0\.1 \(loopback\)"):
        check_hop(Policy(), "http://127.1:9/x")
    assert redirect_target("http://a.example/d/x", "/y") == "http://a.example/y"
    with pytest.raises(AddressRefused):
        redirect_target("http://a.example/x", "file:///etc/passwd")

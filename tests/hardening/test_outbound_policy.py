"""The outbound destination policy judged as a function: private, link-local, public and the other
ranges are checked here without any network (nothing is connected to, names are not looked up
except `localhost`-style ones the resolver answers from the hosts file)."""

from __future__ import annotations

import asyncio
from ipaddress import ip_address

import pytest

from fhir_server.config import SettingInvalid
from fhir_server.outbound import Policy, Refused

UNSET = Policy.parse("")

REFUSED = {
    "127.0.0.1": "loopback", "127.8.9.10": "loopback", "::1": "loopback",
    "10.0.0.1": "private", "172.16.5.4": "private", "172.31.255.255": "private", "192.168.1.1": "private",
    "fc00::1": "private", "fd12:3456::1": "private",
    "169.254.169.254": "link-local", "169.254.0.1": "link-local", "fe80::1": "link-local",
    "224.0.0.1": "multicast", "239.255.255.250": "multicast", "ff02::1": "multicast",
    "0.0.0.0": "unspecified", "::": "unspecified",
    "100.64.0.1": "not globally routable",  # RFC 6598 shared address space (carrier NAT)
    "192.0.2.10": "private",  # documentation (TEST-NET-1)
    "255.255.255.255": "reserved",
    "240.0.0.1": "reserved",
    # IPv6 addresses that stand for an IPv4 one are judged by it.
    "::ffff:127.0.0.1": "loopback", "::ffff:10.1.2.3": "private", "::ffff:169.254.169.254": "link-local",
    "64:ff9b::7f00:1": "loopback", "64:ff9b::a9fe:a9fe": "link-local", "2002:a00:1::1": "private",
}
PUBLIC = ["8.8.8.8", "93.184.216.34", "1.1.1.1", "2001:4860:4860::8888", "2606:4700:4700::1111", "::ffff:8.8.8.8"]


@pytest.mark.parametrize("address,kind", sorted(REFUSED.items()))
def test_non_global_addresses_are_refused(address: str, kind: str) -> None:
    refusal = UNSET.address_refusal("receiver.example", ip_address(address))
    assert refusal is not None and kind in refusal


@pytest.mark.parametrize("address", PUBLIC)
def test_global_unicast_addresses_are_allowed(address: str) -> None:
    assert UNSET.address_refusal("receiver.example", ip_address(address)) is None


@pytest.mark.parametrize("url", [
    "https://127.0.0.1:8443/hook", "https://localhost:8443/hook", "https://api.localhost/hook",
    "https://[::1]:8443/hook", "https://[::ffff:127.0.0.1]/hook", "http://169.254.169.254/latest/meta-data/",
    "https://10.0.0.5/hook", "https://[fe80::1]/hook", "https://0.0.0.0/hook",
    "http://receiver.example/hook",  # plain http to a destination nobody allowed
    "ftp://receiver.example/hook", "https:///hook", "https://receiver.example:0/hook", "https://host:99999/x",
])
def test_urls_the_unset_policy_refuses(url: str) -> None:
    assert UNSET.url_refusal(url) is not None


def test_https_to_a_public_destination_is_allowed() -> None:
    assert UNSET.url_refusal("https://receiver.example/hook") is None
    assert UNSET.url_refusal("https://93.184.216.34:8443/hook") is None


def test_the_allow_list_opens_what_it_names_and_only_that() -> None:
    policy = Policy.parse("127.0.0.1/32, 10.20.0.0/16 ,Receiver.Internal.")
    assert policy.url_refusal("http://127.0.0.1:9000/hook") is None
    assert policy.url_refusal("http://[::ffff:127.0.0.1]:9000/hook") is None
    assert policy.url_refusal("http://10.20.3.4/hook") is None
    assert policy.url_refusal("http://receiver.internal/hook") is None
    assert policy.address_refusal("receiver.internal", ip_address("192.168.0.9")) is None
    for refused in ("http://127.0.0.2:9000/hook", "https://[::1]:9000/hook", "http://10.21.0.1/hook",
                    "https://169.254.169.254/", "http://other.internal/hook"):
        assert policy.url_refusal(refused) is not None, refused
    # A name not listed is resolved at connection time; then only its addresses count.
    assert policy.address_refusal("other.internal", ip_address("192.168.0.9")) is not None


@pytest.mark.parametrize("allow", ["10.0.0.0/33", "not a host!", "10.0.0.0/8,http://x", "::1/129"])
def test_a_wrong_allow_list_is_refused_at_start(allow: str) -> None:
    with pytest.raises(SettingInvalid):
        Policy.parse(allow)


@pytest.mark.parametrize("host", ["localhost", "127.1", "2130706433"])
def test_names_are_judged_by_what_they_resolve_to_when_connecting(host: str) -> None:
    """`127.1` and `2130706433` are not addresses to Python but the resolver makes them 127.0.0.1,
    as DNS could make any name: the check at connection time sees the address."""
    with pytest.raises(Refused, match="loopback"):
        asyncio.run(UNSET.connectable(host, 443))
    assert asyncio.run(Policy.parse("127.0.0.0/8").connectable(host, 443)) == "127.0.0.1"

"""Which resolved addresses count as public for an allow-listed host."""

from __future__ import annotations

import pytest

from nocodb_guard.addresses import is_public_address


def test_only_global_unicast_addresses_count_as_public() -> None:
    assert is_public_address("93.184.216.34")
    assert is_public_address("2606:2800:220:1::1")
    for address in ("127.0.0.1", "::1", "10.0.0.1", "172.16.0.1", "fe80::1", "::ffff:127.0.0.1"):
        assert not is_public_address(address), address
    assert not is_public_address("224.0.0.1")
    assert not is_public_address("not an address")


@pytest.mark.parametrize(
    "address",
    [
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254, the cloud metadata service
        "64:ff9b:1::a00:1",  # local-use NAT64 of 10.0.0.1
        "2002:a00:1::1",  # 6to4 of 10.0.0.1
        "2002:7f00:1::1",  # 6to4 of 127.0.0.1
        "::127.0.0.1",  # IPv4-compatible 127.0.0.1
        "::a9fe:a9fe",  # IPv4-compatible 169.254.169.254
        "2001:0:4136:e378:8000:63bf:f5ff:fffe",  # Teredo, client 10.0.0.1
        "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo, client 127.0.0.1
        "2001:0:4136:e378:8000:63bf:a247:27dd",  # Teredo, even to the public 93.184.216.34
        "fec0::1",  # site-local
        "fec0:0:0:ffff::1",
        "::ffff:169.254.169.254",
    ],
)
def test_ipv6_forms_of_non_public_ipv4_addresses_and_tunnels_are_not_public(address: str) -> None:
    assert not is_public_address(address)


@pytest.mark.parametrize(
    "address",
    [
        "2606:2800:220:1::1",
        "2a00:1450:4001:82a::200e",
        "64:ff9b::5db8:d822",  # NAT64 of 93.184.216.34
        "2002:5db8:d822::1",  # 6to4 of 93.184.216.34
        "::ffff:93.184.216.34",
    ],
)
def test_an_ipv6_address_leading_to_a_public_address_stays_public(address: str) -> None:
    assert is_public_address(address)

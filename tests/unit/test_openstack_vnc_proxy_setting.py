"""openstack_vnc_proxy_cidr: required on a networked cloud, parsed into normalised prefixes."""

from __future__ import annotations

from typing import Any

import pytest

from daaas.portal.backends import BackendUnavailable
from daaas.portal.config import load_settings
from daaas.portal.providers import PROVIDERS
from daaas.portal.providers.openstack import OpenStackProvider


def build(**settings: Any) -> OpenStackProvider:
    chosen = {"provider": "openstack", "openstack_cloud": "site", **settings}
    provider = PROVIDERS.build(load_settings(chosen, environ={}))
    assert isinstance(provider, OpenStackProvider)
    return provider


def test_a_networked_cloud_needs_the_proxy_address() -> None:
    with pytest.raises(BackendUnavailable, match="openstack_vnc_proxy_cidr must be the address "
                                                 "the desktop proxy reaches the VMs from"):
        build()  # openstack_network defaults to auto


def test_addresses_become_prefixes() -> None:
    provider = build(openstack_vnc_proxy_cidr=" 192.0.2.10, 198.51.100.7/24,2001:db8::7 ")
    assert provider.vnc_proxy_cidrs == ["192.0.2.10/32", "198.51.100.0/24", "2001:db8::7/128"]


def test_none_or_no_network_makes_no_groups() -> None:
    assert build(openstack_vnc_proxy_cidr="none").vnc_proxy_cidrs == []
    assert build(openstack_network="none").vnc_proxy_cidrs == []
    assert build(openstack_network="none",
                 openstack_vnc_proxy_cidr="192.0.2.10").vnc_proxy_cidrs == []


def test_a_malformed_address_is_a_configuration_error() -> None:
    with pytest.raises(BackendUnavailable, match="does not appear to be an IPv4 or IPv6"):
        build(openstack_vnc_proxy_cidr="proxy.example.org")

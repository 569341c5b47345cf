"""Hosts as `ip` prints them, replayed in the kernel and compared hop by hop.

A host profile pasted from a real node carries what `ip` shows: `proto kernel
scope link` routes (which the kernel creates itself from the addresses),
link-local IPv6 addresses, `linkdown`, `onlink`, multipath next hops, routes
in other tables. The kernel check must rebuild such a host without errors.
"""

from __future__ import annotations

from typing import Any

import pytest

from netviz.engine.iproute import ip_interfaces, ip_routes
from netviz.engine.pipeline import trace_scenario
from netviz.kernel import replay
from netviz.scenario import scenario_from_dict
from netviz.testing.compare import hops_diff

# A node's `ip -br addr` and `ip route`, as a user pastes them.
BRIEF_ADDR = """lo               UNKNOWN        127.0.0.1/8 ::1/128
eth0             UP             10.61.0.5/24 fe80::5054:ff:fe12:3456/64
docker0          DOWN           172.29.0.1/16
"""
IP_ROUTE = """default via 10.61.0.1 dev eth0 proto dhcp src 10.61.0.5 metric 100
10.61.0.0/24 dev eth0 proto kernel scope link src 10.61.0.5 metric 100
10.61.0.1 dev eth0 proto dhcp scope link src 10.61.0.5 metric 100
172.29.0.0/16 dev docker0 proto kernel scope link src 172.29.0.1 linkdown
10.62.0.0/16 via 10.61.0.9 dev eth0 onlink
"""
RULES = """*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -i eth0 -p tcp --dport 22 -j ACCEPT
-A FORWARD -o docker0 -j ACCEPT
-A FORWARD -o eth0 -j ACCEPT
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -s 172.29.0.0/16 ! -o docker0 -j MASQUERADE
COMMIT
"""


def _pasted_host() -> dict[str, Any]:
    # What the upload form stores (netviz.web.forms.parse_interfaces/parse_routes).
    interfaces = ip_interfaces(BRIEF_ADDR)
    return {"interfaces": interfaces, "routes": ip_routes(IP_ROUTE, interfaces)}


def _check(host: dict[str, Any], packet: dict[str, Any], family: str = "ipv4") -> None:
    sc = scenario_from_dict({"ruleset": RULES, "family": family, "host": host, "packet": packet})
    engine = trace_scenario(sc)
    kernel = replay(sc)
    diff = hops_diff(kernel.hops, engine.hops())
    assert not diff, diff


@pytest.mark.parametrize(
    "packet",
    [
        {"proto": "tcp", "src": "10.61.0.7", "dst": "10.61.0.5", "dport": 22, "in_iface": "eth0"},
        {"proto": "tcp", "src": "10.61.0.7", "dst": "172.29.0.2", "dport": 80, "in_iface": "eth0"},
        {"proto": "tcp", "src": "172.29.0.2", "dst": "10.62.3.4", "dport": 443, "in_iface": "docker0"},
        {"proto": "udp", "src": "10.61.0.5", "dst": "10.62.3.4", "dport": 53},
    ],
    ids=["input", "to-bridge", "onlink-masq", "local-out"],
)
def test_pasted_ip_output_replays(kernel: None, packet: dict[str, Any]) -> None:
    _check(_pasted_host(), packet)

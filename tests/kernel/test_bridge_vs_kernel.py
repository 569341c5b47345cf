"""The bridge path with a real Linux bridge in namespaces, hop by hop.

A Docker-like node: docker0 with three container ports (one in hairpin
mode), published ports DNATed to containers, MASQUERADE for the hairpin;
-m physdev in every table that can see it.  With net.bridge.bridge-nf-call-
iptables (ip6tables) 1 a bridged frame passes PREROUTING, FORWARD and
POSTROUTING; with 0 no IP hook sees it.
"""

from __future__ import annotations

from typing import Any

import pytest

from netviz.engine.pipeline import trace_scenario
from netviz.kernel import replay
from netviz.scenario import scenario_from_dict
from netviz.testing.compare import hops_diff

HOST4: dict[str, Any] = {
    "interfaces": [
        {"name": "eth0", "addrs": ["10.61.0.5/24"]},
        {"name": "docker0", "type": "bridge", "addrs": ["172.29.0.1/16"]},
        {"name": "veth1", "master": "docker0", "neighbors": ["172.29.0.2"]},
        {"name": "veth2", "master": "docker0", "neighbors": ["172.29.0.3"]},
        {"name": "veth3", "master": "docker0", "neighbors": ["172.29.0.4"], "hairpin": True},
    ],
    "routes": ["default via 10.61.0.1 dev eth0"],
}
HOST6: dict[str, Any] = {
    "interfaces": [
        {"name": "eth0", "addrs": ["2001:db8:61::5/64"]},
        {"name": "br0", "type": "bridge", "addrs": ["2001:db8:29::1/64"]},
        {"name": "tap1", "master": "br0", "neighbors": ["2001:db8:29::2"]},
        {"name": "tap2", "master": "br0", "neighbors": ["2001:db8:29::3"]},
    ],
    "routes": ["default via 2001:db8:61::1 dev eth0"],
}

RULES4 = """*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -m physdev --physdev-in veth+ -j LOG
-A PREROUTING -i docker0 -j LOG
-A POSTROUTING -m physdev --physdev-out veth2 -j LOG
-A POSTROUTING -m physdev --physdev-is-out -j LOG
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:DOCKER - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER
-A POSTROUTING -s 172.29.0.0/16 ! -o docker0 -j MASQUERADE
-A POSTROUTING -s 172.29.0.3/32 -d 172.29.0.3/32 -p tcp -m tcp --dport 80 -j MASQUERADE
-A POSTROUTING -s 172.29.0.4/32 -d 172.29.0.4/32 -p tcp -m tcp --dport 80 -j MASQUERADE
-A DOCKER -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.29.0.3:80
-A DOCKER -p tcp -m tcp --dport 8081 -j DNAT --to-destination 172.29.0.4:80
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -m physdev --physdev-in veth1 -j LOG
-A INPUT -m physdev --physdev-is-in -j LOG
-A INPUT -i docker0 -j ACCEPT
-A FORWARD -m physdev --physdev-is-bridged -j LOG
-A FORWARD -m physdev --physdev-in veth1 --physdev-out veth2 -j LOG
-A FORWARD -m physdev --physdev-is-in ! --physdev-is-bridged -j LOG
-A FORWARD -m physdev ! --physdev-is-in -j LOG
-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -i docker0 ! -o docker0 -j ACCEPT
-A FORWARD -i docker0 -o docker0 -j ACCEPT
-A FORWARD -i eth0 -o docker0 -d 172.29.0.3 -j ACCEPT
COMMIT
"""
RULES6 = """*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -m physdev --physdev-in tap1 -j LOG
-A FORWARD -m physdev --physdev-is-bridged --physdev-out tap2 -j LOG
-A FORWARD -i br0 -o br0 -j ACCEPT
-A FORWARD -i br0 -o eth0 -j ACCEPT
COMMIT
*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -m physdev --physdev-in tap+ -j LOG
-A POSTROUTING -m physdev --physdev-out tap2 -j LOG
COMMIT
"""

TCP = {"proto": "tcp", "sport": 40000}
CASES4: dict[str, tuple[dict[str, Any], str, str]] = {
    # name: (packet, expected fate, expected path)
    "container-to-container": ({**TCP, "src": "172.29.0.2", "dst": "172.29.0.3", "dport": 80, "in_iface": "veth1"}, "ACCEPT", "bridge"),
    "container-to-host": ({**TCP, "src": "172.29.0.2", "dst": "172.29.0.1", "dport": 22, "in_iface": "veth1"}, "ACCEPT", "input"),
    "container-to-internet": ({**TCP, "src": "172.29.0.2", "dst": "192.0.2.80", "dport": 443, "in_iface": "veth1"}, "ACCEPT", "forward"),
    "container-to-published-port": (
        {**TCP, "src": "172.29.0.2", "dst": "10.61.0.5", "dport": 8080, "in_iface": "veth1"}, "ACCEPT", "bridge"),
    "hairpin-to-itself": (
        {**TCP, "src": "172.29.0.4", "dst": "172.29.0.1", "dport": 8081, "in_iface": "veth3"}, "ACCEPT", "bridge"),
    "hairpin-off": (
        {**TCP, "src": "172.29.0.3", "dst": "10.61.0.5", "dport": 8080, "in_iface": "veth2"}, "DROP", "bridge"),
    "internet-to-published-port": (
        {**TCP, "src": "192.0.2.7", "dst": "10.61.0.5", "dport": 8080, "in_iface": "eth0"}, "ACCEPT", "forward"),
    "udp-container-to-container": (
        {"proto": "udp", "src": "172.29.0.3", "dst": "172.29.0.2", "sport": 5000, "dport": 53, "in_iface": "veth2"},
        "ACCEPT", "bridge"),
}
CASES6: dict[str, tuple[dict[str, Any], str, str]] = {
    "v6-bridged": ({**TCP, "src": "2001:db8:29::2", "dst": "2001:db8:29::3", "dport": 80, "in_iface": "tap1"}, "ACCEPT", "bridge"),
    "v6-to-host": ({**TCP, "src": "2001:db8:29::2", "dst": "2001:db8:29::1", "dport": 22, "in_iface": "tap1"}, "ACCEPT", "input"),
    "v6-routed-out": ({**TCP, "src": "2001:db8:29::2", "dst": "2001:db8:99::1", "dport": 443, "in_iface": "tap1"}, "ACCEPT", "forward"),
}


def _compare(host: dict[str, Any], rules: str, family: str, packet: dict[str, Any], sysctls: dict[str, str]) -> Any:
    sc = scenario_from_dict({"ruleset": rules, "family": family, "host": {**host, "sysctls": sysctls}, "packet": packet})
    engine = trace_scenario(sc)
    kernel = replay(sc)
    diff = hops_diff(kernel.hops, engine.hops())
    assert not diff, f"{engine.summary}\n{diff}"
    return engine


@pytest.mark.parametrize("name", sorted(CASES4))
@pytest.mark.parametrize("nf", ["1", "0"])
def test_ipv4_bridge_agrees_with_the_kernel(kernel: None, name: str, nf: str) -> None:
    packet, fate, path = CASES4[name]
    engine = _compare(HOST4, RULES4, "ipv4", packet, {"net.bridge.bridge-nf-call-iptables": nf})
    if nf == "1":
        assert (engine.verdict, engine.path) == (fate, path), engine.summary
    if name == "container-to-container":
        # Bridged: with br_netfilter every IP hook but INPUT/OUTPUT; without, none.
        assert engine.hooks == (("PREROUTING", "FORWARD", "POSTROUTING") if nf == "1" else ())


@pytest.mark.parametrize("name", sorted(CASES6))
@pytest.mark.parametrize("nf", ["1", "0"])
def test_ipv6_bridge_agrees_with_the_kernel(kernel: None, name: str, nf: str) -> None:
    packet, fate, path = CASES6[name]
    engine = _compare(HOST6, RULES6, "ipv6", packet, {"net.bridge.bridge-nf-call-ip6tables": nf})
    if nf == "1":
        assert (engine.verdict, engine.path) == (fate, path), engine.summary

"""host.sysctls (scenario-v2.md §1) replayed in the kernel, hop for hop.

rp_filter strict and loose (all or device, src_valid_mark), accept_local,
route_localnet (arriving 127/8 and kube-proxy's localhost NodePort), IPv4
forwarding off globally and per input device, IPv6 forwarding.
"""

from __future__ import annotations

from typing import Any

import pytest

from netviz.engine.pipeline import trace_scenario
from netviz.kernel import replay
from netviz.scenario import scenario_from_dict
from netviz.testing.compare import hops_diff
from netviz.testing.randomsysctl import HOST as HOST4
from netviz.testing.randomsysctl import RULES as RULES4

HOST6: dict[str, Any] = {
    "interfaces": [
        {"name": "eth0", "addrs": ["2001:db8:81::1/64"]},
        {"name": "eth1", "addrs": ["2001:db8:82::1/64"]},
    ],
    "routes": ["default via 2001:db8:82::fe dev eth1"],
}

RULES6 = """*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -j LOG
-A FORWARD -j LOG
COMMIT
*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -j LOG
COMMIT
"""

TCP = {"proto": "tcp", "sport": 40000, "dport": 80}
ON_ETH1_FROM_ETH0_NET = {**TCP, "src": "10.90.0.5", "dst": "10.81.0.1", "in_iface": "eth1"}
FWD_FROM_ETH1 = {**TCP, "src": "10.90.0.5", "dst": "10.83.0.9", "in_iface": "eth1"}
MARKED_ON_ETH2 = {**TCP, "src": "10.91.0.5", "dst": "10.81.0.1", "in_iface": "eth2", "mark": 1}
OWN_SRC_ON_ETH0 = {**TCP, "src": "10.82.0.1", "dst": "10.81.0.1", "in_iface": "eth0"}
TO_127_ON_ETH0 = {**TCP, "src": "10.81.0.2", "dst": "127.0.0.1", "in_iface": "eth0"}
FWD_ETH0_TO_ETH2 = {**TCP, "src": "10.81.0.2", "dst": "10.83.0.9", "in_iface": "eth0"}
FWD_ETH1_TO_ETH2 = {**TCP, "src": "10.82.0.2", "dst": "10.83.0.9", "in_iface": "eth1"}
LOCAL_IN_ETH0 = {**TCP, "src": "10.81.0.2", "dst": "10.81.0.1", "in_iface": "eth0"}
NODEPORT_LOCALHOST = {**TCP, "src": "127.0.0.1", "dst": "127.0.0.1", "dport": 30080}

CASES4: dict[str, tuple[dict[str, str], dict[str, Any], str]] = {
    "rpf-off": ({}, ON_ETH1_FROM_ETH0_NET, "ACCEPT"),
    "rpf-strict-all": ({"net.ipv4.conf.all.rp_filter": "1"}, ON_ETH1_FROM_ETH0_NET, "DROP"),
    "rpf-strict-dev": ({"net.ipv4.conf.eth1.rp_filter": "1"}, ON_ETH1_FROM_ETH0_NET, "DROP"),
    "rpf-strict-other-dev": ({"net.ipv4.conf.eth0.rp_filter": "1"}, ON_ETH1_FROM_ETH0_NET, "ACCEPT"),
    "rpf-strict-fwd": ({"net.ipv4.conf.all.rp_filter": "1"}, FWD_FROM_ETH1, "DROP"),
    "rpf-loose": ({"net.ipv4.conf.all.rp_filter": "2"}, ON_ETH1_FROM_ETH0_NET, "ACCEPT"),
    "rpf-max-of-all-and-dev": (
        {"net.ipv4.conf.all.rp_filter": "2", "net.ipv4.conf.eth1.rp_filter": "1"}, FWD_FROM_ETH1, "ACCEPT"),
    "rpf-default-inherited": ({"net.ipv4.conf.default.rp_filter": "1"}, FWD_FROM_ETH1, "DROP"),
    "rpf-strict-mark-ignored": ({"net.ipv4.conf.all.rp_filter": "1"}, MARKED_ON_ETH2, "DROP"),
    "rpf-strict-src-valid-mark": (
        {"net.ipv4.conf.all.rp_filter": "1", "net.ipv4.conf.eth2.src_valid_mark": "1"}, MARKED_ON_ETH2, "ACCEPT"),
    "accept-local-0": ({}, OWN_SRC_ON_ETH0, "DROP"),
    "accept-local-1": ({"net.ipv4.conf.eth0.accept_local": "1"}, OWN_SRC_ON_ETH0, "ACCEPT"),
    "accept-local-1-strict": (
        {"net.ipv4.conf.all.accept_local": "1", "net.ipv4.conf.all.rp_filter": "1"}, OWN_SRC_ON_ETH0, "DROP"),
    "route-localnet-0": ({}, TO_127_ON_ETH0, "DROP"),
    "route-localnet-1": ({"net.ipv4.conf.eth0.route_localnet": "1"}, TO_127_ON_ETH0, "ACCEPT"),
    "ip-forward-0": ({"net.ipv4.ip_forward": "0"}, FWD_ETH0_TO_ETH2, "DROP"),
    "ip-forward-0-local": ({"net.ipv4.ip_forward": "0"}, LOCAL_IN_ETH0, "ACCEPT"),
    "forwarding-off-on-input-dev": ({"net.ipv4.conf.eth0.forwarding": "0"}, FWD_ETH0_TO_ETH2, "DROP"),
    "forwarding-off-other-dev": ({"net.ipv4.conf.eth0.forwarding": "0"}, FWD_ETH1_TO_ETH2, "ACCEPT"),
    "forwarding-off-output-dev": ({"net.ipv4.conf.eth2.forwarding": "0"}, FWD_ETH1_TO_ETH2, "ACCEPT"),
    "forwarding-all-0-dev-1": (
        {"net.ipv4.conf.all.forwarding": "0", "net.ipv4.conf.eth1.forwarding": "1"}, FWD_ETH1_TO_ETH2, "ACCEPT"),
    "nodeport-localhost-route-localnet-0": ({}, NODEPORT_LOCALHOST, "DROP"),
    "nodeport-localhost-route-localnet-all": (
        {"net.ipv4.conf.all.route_localnet": "1"}, NODEPORT_LOCALHOST, "ACCEPT"),
    "nodeport-localhost-route-localnet-out-dev": (
        {"net.ipv4.conf.eth1.route_localnet": "1"}, NODEPORT_LOCALHOST, "ACCEPT"),
    "nodeport-localhost-route-localnet-lo-only": (
        {"net.ipv4.conf.lo.route_localnet": "1"}, NODEPORT_LOCALHOST, "DROP"),
}

FWD6 = {**TCP, "src": "2001:db8:81::5", "dst": "2001:db8:99::1", "in_iface": "eth0"}
IN6 = {**TCP, "src": "2001:db8:81::5", "dst": "2001:db8:81::1", "in_iface": "eth0"}
CASES6: dict[str, tuple[dict[str, str], dict[str, Any], str]] = {
    "v6-forwarding-default": ({}, FWD6, "ACCEPT"),
    "v6-forwarding-0": ({"net.ipv6.conf.all.forwarding": "0"}, FWD6, "DROP"),
    "v6-forwarding-0-local": ({"net.ipv6.conf.all.forwarding": "0"}, IN6, "ACCEPT"),
    "v6-forwarding-dev-0": ({"net.ipv6.conf.eth0.forwarding": "0"}, FWD6, "ACCEPT"),
}


def _compare(host: dict[str, Any], rules: str, family: str, sysctls: dict[str, str], packet: dict[str, Any], fate: str) -> None:
    sc = scenario_from_dict(
        {"ruleset": rules, "family": family, "host": {**host, "sysctls": sysctls}, "packet": packet}
    )
    engine = trace_scenario(sc)
    kernel = replay(sc)
    diff = hops_diff(kernel.hops, engine.hops())
    assert not diff, diff
    assert engine.verdict == fate, engine.summary
    if fate == "DROP" and kernel.verdict is None:
        # A sysctl stopped it in the routing decision: the trace names it.
        assert "net.ipv" in engine.summary, engine.summary


@pytest.mark.parametrize("name", sorted(CASES4))
def test_ipv4_sysctls_agree_with_the_kernel(kernel: None, name: str) -> None:
    sysctls, packet, fate = CASES4[name]
    _compare(HOST4, RULES4, "ipv4", sysctls, packet, fate)


@pytest.mark.parametrize("name", sorted(CASES6))
def test_ipv6_forwarding_agrees_with_the_kernel(kernel: None, name: str) -> None:
    sysctls, packet, fate = CASES6[name]
    _compare(HOST6, RULES6, "ipv6", sysctls, packet, fate)

"""Packet kinds and NAT paths, each replayed in the kernel and compared hop by hop.

The rulesets log in every chain of every table (conntrack state, address
type, TTL, length, interfaces), so any difference in which tables a packet
passes, in what order, in what state, shows up as a differing hop.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from netviz.engine.pipeline import trace_scenario
from netviz.kernel import replay
from netviz.scenario import scenario_from_dict
from netviz.testing.compare import hops_diff

DATA = Path(__file__).parent / "data"

HOST4 = {
    "interfaces": [
        {"name": "eth0", "addrs": ["10.77.0.1/24"]},
        {"name": "eth1", "addrs": ["10.78.0.1/24"]},
    ],
    "routes": ["default via 10.78.0.254 dev eth1", "10.99.0.0/16 via 10.77.0.254"],
}
HOST6 = {
    "interfaces": [
        {"name": "eth0", "addrs": ["2001:db8:77::1/64"]},
        {"name": "eth1", "addrs": ["2001:db8:78::1/64"]},
    ],
    "routes": ["default via 2001:db8:78::fe dev eth1"],
}
BASE4 = {"proto": "tcp", "src": "10.77.0.2", "sport": 40000, "dport": 80}
BASE6 = {"proto": "tcp", "src": "2001:db8:77::2", "sport": 40000, "dport": 80}

KINDS4 = {
    "syn-fwd": {"dst": "198.51.100.1", "in_iface": "eth0"},
    "ack-fwd": {"dst": "198.51.100.1", "in_iface": "eth0", "tcp_flags": "A"},
    "synack-fwd": {"dst": "198.51.100.1", "in_iface": "eth0", "tcp_flags": "SA"},
    "rst-in": {"dst": "10.77.0.1", "in_iface": "eth0", "tcp_flags": "R"},
    "fin-in": {"dst": "10.77.0.1", "in_iface": "eth0", "tcp_flags": "FA"},
    "pa-in": {"dst": "10.77.0.1", "in_iface": "eth0", "tcp_flags": "PA"},
    "none-in": {"dst": "10.77.0.1", "in_iface": "eth0", "tcp_flags": ""},
    "syn-in-other-if": {"dst": "10.78.0.1", "in_iface": "eth0"},
    "udp-in": {"proto": "udp", "dst": "10.77.0.1", "in_iface": "eth0"},
    "icmp-echo-in": {"proto": "icmp", "dst": "10.77.0.1", "in_iface": "eth0"},
    "icmp-reply-in": {
        "proto": "icmp",
        "dst": "10.77.0.1",
        "in_iface": "eth0",
        "icmp_type": 0,
    },
    "icmp-unreach-in": {
        "proto": "icmp",
        "dst": "10.77.0.1",
        "in_iface": "eth0",
        "icmp_type": 3,
        "icmp_code": 1,
    },
    "gre-fwd": {"proto": "gre", "dst": "198.51.100.1", "in_iface": "eth0"},
    "ttl1-fwd": {"dst": "198.51.100.1", "in_iface": "eth0", "ttl": 1},
    "ttl1-in": {"dst": "10.77.0.1", "in_iface": "eth0", "ttl": 1},
    "bcast-in": {"proto": "udp", "dst": "10.77.0.255", "in_iface": "eth0"},
    "lbcast-in": {"proto": "udp", "dst": "255.255.255.255", "in_iface": "eth0"},
    "mcast-in": {"proto": "udp", "dst": "224.0.0.251", "in_iface": "eth0"},
    "martian-src-local": {"src": "10.78.0.1", "dst": "10.77.0.1", "in_iface": "eth0"},
    "martian-src-127": {"src": "127.0.0.5", "dst": "10.77.0.1", "in_iface": "eth0"},
    "fwd-same-if": {"dst": "10.99.1.1", "in_iface": "eth0"},
    "src-zero": {
        "src": "0.0.0.0",
        "proto": "udp",
        "dst": "10.77.0.1",
        "in_iface": "eth0",
    },
    "local-out": {"src": "10.78.0.1", "dst": "198.51.100.1"},
    "local-out-udp": {"proto": "udp", "src": "10.78.0.1", "dst": "198.51.100.1"},
    "local-out-icmp": {"proto": "icmp", "src": "10.78.0.1", "dst": "198.51.100.1"},
    "local-local": {"src": "10.78.0.1", "dst": "10.77.0.1"},
    "local-lo": {"src": "127.0.0.1", "dst": "127.0.0.1"},
    "local-bcast": {"proto": "udp", "src": "10.77.0.1", "dst": "10.77.0.255"},
    "local-nonlocal-src": {"src": "10.55.0.1", "dst": "198.51.100.1"},
    "local-ack": {"src": "10.78.0.1", "dst": "198.51.100.1", "tcp_flags": "A"},
    "in-to-127": {"dst": "127.0.0.1", "in_iface": "eth0"},
    "unreach": {"dst": "10.200.0.1", "in_iface": "eth1"},
}

KINDS6 = {
    "syn-fwd": {"dst": "2001:db8:99::1", "in_iface": "eth0"},
    "syn-in": {"dst": "2001:db8:77::1", "in_iface": "eth0"},
    "syn-in-other": {"dst": "2001:db8:78::1", "in_iface": "eth0"},
    "udp-in": {"proto": "udp", "dst": "2001:db8:77::1", "in_iface": "eth0"},
    "icmp6-echo-in": {"proto": "icmpv6", "dst": "2001:db8:77::1", "in_iface": "eth0"},
    "icmp6-echo-fwd": {"proto": "icmpv6", "dst": "2001:db8:99::1", "in_iface": "eth0"},
    "icmp6-reply-in": {
        "proto": "icmpv6",
        "dst": "2001:db8:77::1",
        "in_iface": "eth0",
        "icmp_type": 129,
    },
    "hl1-fwd": {"dst": "2001:db8:99::1", "in_iface": "eth0", "ttl": 1},
    "local-out": {"src": "2001:db8:78::1", "dst": "2001:db8:99::1"},
    "local-local": {"src": "2001:db8:78::1", "dst": "2001:db8:77::1"},
    "local-lo": {"src": "::1", "dst": "::1"},
    "martian-src-local": {
        "src": "2001:db8:78::1",
        "dst": "2001:db8:77::1",
        "in_iface": "eth0",
    },
    "ack-in": {"dst": "2001:db8:77::1", "in_iface": "eth0", "tcp_flags": "A"},
    "rst-in": {"dst": "2001:db8:77::1", "in_iface": "eth0", "tcp_flags": "R"},
    "unreach": {"dst": "2001:db8:99::1", "in_iface": "eth1"},
}

LOG_EVERYWHERE = """*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A INPUT -d 10.77.0.1 -j LOG
-A INPUT -d 10.78.0.1 -j LOG
-A INPUT -d 127.0.0.1 -j LOG
-A INPUT -i lo -j LOG
-A FORWARD -d 10.77.0.5 -j LOG
-A FORWARD -o eth0 -j LOG
-A POSTROUTING -o eth0 -j LOG
-A POSTROUTING -o eth1 -j LOG
-A POSTROUTING -o lo -j LOG
-A POSTROUTING -d 10.77.0.5 -j LOG
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A OUTPUT -o eth1 -j LOG
-A OUTPUT -o eth0 -j LOG
-A OUTPUT -o lo -j LOG
-A OUTPUT -d 10.77.0.5 -j LOG
-A INPUT -m conntrack --ctstate DNAT -j LOG
-A INPUT -m conntrack --ctorigdst 198.51.100.7 -j LOG
-A FORWARD -m conntrack --ctstate DNAT -j LOG
-A FORWARD -m conntrack --ctstate SNAT -j LOG
-A OUTPUT -m conntrack --ctstate DNAT -j LOG
COMMIT
"""


def nat(rules: str) -> str:
    return (
        "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n"
        + rules.lstrip("\n")
        + "COMMIT\n"
    )


NAT_CASES = {
    "dnat-pre-to-fwd": (
        nat("""
-A PREROUTING -p tcp --dport 80 -j DNAT --to-destination 10.77.0.5:8080
-A POSTROUTING -o eth0 -j MASQUERADE
"""),
        {
            "proto": "tcp",
            "src": "10.78.0.9",
            "dst": "10.78.0.1",
            "dport": 80,
            "in_iface": "eth1",
        },
    ),
    "dnat-out-reroute": (
        nat("""
-A OUTPUT -d 198.51.100.7 -p tcp -j DNAT --to-destination 10.77.0.5
-A POSTROUTING -o eth0 -j SNAT --to-source 10.77.0.1
"""),
        {"proto": "tcp", "src": "10.78.0.1", "dst": "198.51.100.7", "dport": 80},
    ),
    "dnat-out-to-local": (
        nat("""
-A OUTPUT -d 198.51.100.7 -p tcp -j DNAT --to-destination 127.0.0.1:8080
-A INPUT -j LOG
-A PREROUTING -j LOG
"""),
        {"proto": "tcp", "src": "10.78.0.1", "dst": "198.51.100.7", "dport": 80},
    ),
    "redirect-out": (
        nat("""
-A OUTPUT -p tcp -j REDIRECT --to-ports 3128
-A POSTROUTING -j LOG
-A INPUT -j LOG
"""),
        {"proto": "tcp", "src": "10.78.0.1", "dst": "198.51.100.7", "dport": 80},
    ),
    "redirect-pre": (
        nat("""
-A PREROUTING -p tcp -j REDIRECT --to-ports 3128
-A INPUT -j LOG
"""),
        {
            "proto": "tcp",
            "src": "10.77.0.9",
            "dst": "198.51.100.7",
            "dport": 80,
            "in_iface": "eth0",
        },
    ),
    "snat-input": (
        nat("""
-A INPUT -p tcp -j SNAT --to-source 10.77.0.200
-A INPUT -j LOG
"""),
        {
            "proto": "tcp",
            "src": "10.77.0.9",
            "dst": "10.77.0.1",
            "dport": 80,
            "in_iface": "eth0",
        },
    ),
    "notrack-nat": (
        """*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A PREROUTING -p tcp -j CT --notrack
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -p tcp -j DNAT --to-destination 10.77.0.5
-A POSTROUTING -j LOG
COMMIT
""",
        {
            "proto": "tcp",
            "src": "10.78.0.9",
            "dst": "10.78.0.1",
            "dport": 80,
            "in_iface": "eth1",
        },
    ),
    "mark-out-mangle": (
        """*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A OUTPUT -j MARK --set-xmark 0x10/0xff
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -m mark --mark 0x11/0xff -j MASQUERADE
-A POSTROUTING -m mark --mark 0x10/0xff -j LOG
COMMIT
""",
        {"proto": "udp", "src": "10.78.0.1", "dst": "198.51.100.7", "dport": 53},
    ),
    "local-dnat-loop": (
        nat("""
-A OUTPUT -p udp -j DNAT --to-destination 10.77.0.1:5353
-A PREROUTING -j LOG
-A INPUT -j LOG
-A POSTROUTING -j LOG
"""),
        {"proto": "udp", "src": "10.78.0.1", "dst": "198.51.100.7", "dport": 53},
    ),
    "masq-fwd": (
        nat("""
-A POSTROUTING -o eth1 -j MASQUERADE --random-fully
-A POSTROUTING -j LOG
"""),
        {
            "proto": "udp",
            "src": "10.77.0.9",
            "dst": "198.51.100.7",
            "dport": 53,
            "in_iface": "eth0",
        },
    ),
}


def _check(data: dict[str, Any]) -> None:
    scenario = scenario_from_dict(data)
    kernel = replay(scenario)
    engine = trace_scenario(scenario)
    diff = hops_diff(kernel.hops, engine.hops())
    assert not diff, "\n" + diff


@pytest.mark.parametrize("name", sorted(KINDS4))
def test_ipv4_packet_kind_matches_kernel(kernel: None, name: str) -> None:
    rules = (DATA / "every-table-log.rules").read_text()
    _check({"ruleset": rules, "host": HOST4, "packet": {**BASE4, **KINDS4[name]}})


@pytest.mark.parametrize("name", sorted(KINDS6))
def test_ipv6_packet_kind_matches_kernel(kernel: None, name: str) -> None:
    rules = (DATA / "every-table-log6.rules").read_text()
    _check(
        {
            "ruleset": rules,
            "family": "ipv6",
            "host": HOST6,
            "packet": {**BASE6, **KINDS6[name]},
        }
    )


@pytest.mark.parametrize("name", sorted(NAT_CASES))
def test_nat_path_matches_kernel(kernel: None, name: str) -> None:
    nat, packet = NAT_CASES[name]
    _check({"ruleset": LOG_EVERYWHERE + nat, "host": HOST4, "packet": packet})


NAT_WITHOUT_CONNTRACK = nat("""
-A PREROUTING -j LOG
-A POSTROUTING -j LOG
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
%s
""")


@pytest.mark.parametrize(
    "filter_rule",
    ["", "-A FORWARD -m conntrack --ctstate INVALID -j DROP", "-A FORWARD -j CONNMARK --set-xmark 0x1/0x1"],
)
def test_nat_is_consulted_only_when_a_rule_enables_conntrack(kernel: None, filter_rule: str) -> None:
    packet = {"proto": "tcp", "src": "10.77.0.9", "dst": "198.51.100.7", "dport": 80, "in_iface": "eth0"}
    _check({"ruleset": NAT_WITHOUT_CONNTRACK % filter_rule, "host": HOST4, "packet": packet})

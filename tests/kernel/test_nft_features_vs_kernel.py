"""Hand-written nftables features against the kernel: limit, quota, numgen,
dynamic sets, ct status, notrack, redirect, route chains, reject, maps for
dnat and marks, goto/return, fib, tcp flag masks; and a node with an
iptables-save dump beside a listing with a table iptables-nft manages."""

from __future__ import annotations

from typing import Any

import pytest

from netviz.engine.pipeline import trace_scenario
from netviz.kernel import replay
from netviz.scenario import scenario_from_dict
from netviz.testing import hops_diff

pytestmark = [pytest.mark.usefixtures("kernel"), pytest.mark.slow]

HOST = {"interfaces": [{"name": "eth0", "addrs": ["10.0.1.1/24"]}, {"name": "eth1", "addrs": ["10.0.2.1/24"]}], "routes": []}
def T(body: str, fam: str = "inet") -> str:
    return f"table {fam} t {{\n\tset dyn {{\n\t\ttype ipv4_addr\n\t\tflags dynamic\n\t}}\n{body}}}\n"
FWD = {"proto": "tcp", "src": "10.0.1.7", "dst": "10.0.2.5", "sport": 40000, "dport": 80, "in_iface": "eth0"}
IN = {"proto": "tcp", "src": "10.0.1.7", "dst": "10.0.1.1", "sport": 40000, "dport": 22, "in_iface": "eth0"}
OUT = {"proto": "tcp", "src": "10.0.1.1", "dst": "10.0.2.5", "sport": 40000, "dport": 80}
CASES: dict[str, tuple[str, dict[str, Any]]] = {
 "limit": (T("\tchain c {\n\t\ttype filter hook forward priority 0; policy accept;\n\t\tlimit rate 1/second burst 2 packets accept\n\t\tdrop\n\t}\n"), FWD),
 "limit-over": (T("\tchain c {\n\t\ttype filter hook forward priority 0; policy accept;\n\t\tlimit rate over 1/second burst 2 packets drop\n\t\tcounter\n\t}\n"), FWD),
 "quota": (T("\tchain c {\n\t\ttype filter hook forward priority 0; policy accept;\n\t\tquota over 10 bytes drop\n\t}\n"), FWD),
 "quota-under": (T("\tchain c {\n\t\ttype filter hook forward priority 0; policy accept;\n\t\tquota 100 bytes counter\n\t}\n"), FWD),
 "numgen-inc": (T("\tchain c {\n\t\ttype filter hook forward priority 0; policy accept;\n\t\tnumgen inc mod 2 vmap { 0 : jump a, 1 : drop }\n\t}\n\tchain a {\n\t\tcounter\n\t}\n"), FWD),
 "dynset": (T("\tchain c {\n\t\ttype filter hook prerouting priority 0; policy accept;\n\t\tupdate @dyn { ip saddr }\n\t\tip saddr @dyn counter\n\t}\n"), FWD),
 "ctstatus": (T("\tchain p {\n\t\ttype nat hook prerouting priority -100; policy accept;\n\t\ttcp dport 80 dnat ip to 10.0.2.6\n\t}\n\tchain f {\n\t\ttype filter hook forward priority 0; policy drop;\n\t\tct status dnat accept\n\t}\n"), FWD),
 "notrack": (T("\tchain r {\n\t\ttype filter hook prerouting priority -300; policy accept;\n\t\tnotrack\n\t}\n\tchain f {\n\t\ttype filter hook forward priority 0; policy accept;\n\t\tct state untracked counter\n\t\tct state invalid drop\n\t}\n"), FWD),
 "redirect": (T("\tchain p {\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n\t\ttcp dport 80 redirect to :22\n\t}\n\tchain i {\n\t\ttype filter hook input priority 0; policy drop;\n\t\ttcp dport 22 ip daddr 10.0.1.1 accept\n\t}\n"), FWD),
 "route-mark": (T("\tchain o {\n\t\ttype route hook output priority -150; policy accept;\n\t\tmeta mark set 0x00000001\n\t}\n\tchain p {\n\t\ttype filter hook postrouting priority 0; policy accept;\n\t\toifname \"eth1\" meta mark 0x00000001 counter\n\t}\n"), OUT),
 "reject-fwd": (T("\tchain f {\n\t\ttype filter hook forward priority 0; policy accept;\n\t\treject with icmp type host-prohibited\n\t}\n"), FWD),
 "icmp": (T("\tchain i {\n\t\ttype filter hook input priority 0; policy drop;\n\t\ticmp type echo-request limit rate 5/second accept\n\t}\n"), {"proto": "icmp", "src": "10.0.1.7", "dst": "10.0.1.1", "in_iface": "eth0"}),
 "map-dnat": (T("\tchain p {\n\t\ttype nat hook prerouting priority -100; policy accept;\n\t\tdnat ip to ip daddr . tcp dport map { 10.0.2.5 . 80 : 10.0.2.9 . 8080 }\n\t}\n\tchain f {\n\t\ttype filter hook forward priority 0; policy drop;\n\t\tip daddr 10.0.2.9 tcp dport 8080 accept\n\t}\n"), FWD),
 "mark-map": (T("\tchain p {\n\t\ttype filter hook prerouting priority 0; policy accept;\n\t\tmeta mark set ip saddr map { 10.0.1.0/24 : 0x00000007 }\n\t\tmeta mark 0x00000007 counter\n\t}\n"), FWD),
 "goto-return": (T("\tchain f {\n\t\ttype filter hook forward priority 0; policy drop;\n\t\tjump a\n\t\taccept\n\t}\n\tchain a {\n\t\tgoto b\n\t}\n\tchain b {\n\t\treturn\n\t}\n"), FWD),
 "fib-oif": (T("\tchain p {\n\t\ttype filter hook prerouting priority 0; policy accept;\n\t\tfib daddr oif \"eth1\" counter\n\t\tfib saddr . iif oif missing drop\n\t\tfib daddr . iif type local counter\n\t}\n"), FWD),
 "tcpflags": (T("\tchain f {\n\t\ttype filter hook forward priority 0; policy accept;\n\t\ttcp flags syn counter\n\t\ttcp flags != syn drop\n\t\ttcp flags & (syn|ack) == syn counter\n\t}\n"), FWD),
}

MANAGED = (
    "# Warning: table ip filter is managed by iptables-nft, do not touch!\n"
    "table ip filter {\n\tchain INPUT {\n\t\ttype filter hook input priority filter; policy accept;\n"
    "\t\tcounter packets 0 bytes 0 accept\n\t}\n}\n"
    "table inet firewalld {\n\tchain filter_INPUT {\n\t\ttype filter hook input priority filter + 10; policy accept;\n"
    "\t\tct state established,related accept\n\t\ttcp dport 22 reject with icmpx type admin-prohibited\n\t}\n}\n"
)
IPTABLES = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A INPUT -p tcp -j ACCEPT\nCOMMIT\n"


def check(data: dict[str, Any]) -> None:
    sc = scenario_from_dict(data)
    kernel = replay(sc)
    engine = trace_scenario(sc)
    diff = hops_diff(list(kernel.hops), engine.hops())
    assert not diff, f"{diff}\nkernel trace:\n" + "\n".join(kernel.raw)
    if kernel.verdict is not None:
        assert kernel.verdict == engine.verdict


@pytest.mark.parametrize("name", sorted(CASES))
def test_engine_matches_kernel(name: str) -> None:
    nft, packet = CASES[name]
    check({"nftables": nft, "family": "ipv4", "host": HOST, "packet": packet})


def test_a_firewalld_drop_beside_an_iptables_dump_and_a_managed_table() -> None:
    # The listing's `ip filter` copy is left out: the dump's filter table runs.
    check({"ruleset": IPTABLES, "nftables": MANAGED, "family": "ipv4", "host": HOST, "packet": IN})

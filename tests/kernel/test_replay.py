"""replay() against hand-written rulesets whose kernel hops are known.

Each expected hop list was predicted from the netfilter rules (and confirmed on
a 6.x kernel); the comments say what the kernel reports for each target.
"""

from __future__ import annotations

from typing import Any

import pytest

from netviz.kernel import KernelTrace, ReplayUnsupported, replay
from netviz.testing import hops_diff
from netviz.testing.scenarios import scenario

pytestmark = pytest.mark.usefixtures("kernel")

FWD_TCP: dict[str, Any] = {
    "proto": "tcp", "src": "10.88.1.2", "sport": 40000, "dst": "10.88.2.5", "dport": 80,
    "in_iface": "eth0",
}
FWD_UDP: dict[str, Any] = {
    "proto": "udp", "src": "10.88.1.2", "sport": 40001, "dst": "10.88.2.5", "dport": 53,
    "in_iface": "eth0",
}
IN_TCP: dict[str, Any] = {
    "proto": "tcp", "src": "10.88.1.2", "sport": 40002, "dst": "10.88.1.1", "dport": 22,
    "in_iface": "eth0",
}
OUT_UDP: dict[str, Any] = {
    "proto": "udp", "src": "192.0.2.1", "sport": 40003, "dst": "198.51.100.7", "dport": 53,
}


def H(table: str, chain: str, rule: int, verdict: str) -> dict[str, Any]:
    return {"table": table, "chain": chain, "rule": rule, "verdict": verdict}


def P(table: str, chain: str, policy: str) -> dict[str, Any]:
    return {"table": table, "chain": chain, "policy": policy}


def check(trace: KernelTrace, hops: list[dict[str, Any]], verdict: str | None) -> None:
    diff = hops_diff(hops, list(trace.hops), "expected", "kernel")
    assert not diff, "\n" + diff + "\n" + "\n".join(trace.raw)
    assert trace.verdict == verdict, "\n".join(trace.raw)


FILTER_JUMP = """*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:web - [0:0]
-A FORWARD -p udp -j ACCEPT
-A FORWARD -p tcp -j web
-A FORWARD -j DROP
-A web -p tcp --dport 443 -j ACCEPT
-A web -p tcp --dport 80 -j ACCEPT
COMMIT
"""


def test_it_reports_a_jump_and_the_accept_inside() -> None:
    trace = replay(scenario(FILTER_JUMP, FWD_TCP))
    check(trace, [H("filter", "FORWARD", 2, "JUMP:web"), H("filter", "web", 2, "ACCEPT")], "ACCEPT")
    assert trace.sent_with == "frame"
    assert trace.packets and trace.packets[0]["iif"] == "eth0"


GOTO_RETURN = """*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:outer - [0:0]
:inner - [0:0]
-A FORWARD -j outer
-A FORWARD -p tcp -j ACCEPT
-A outer -g inner
-A outer -j DROP
-A inner -p tcp --dport 80 -j RETURN
-A inner -j DROP
COMMIT
"""


def test_it_reports_goto_then_return_to_the_jumping_chain() -> None:
    # RETURN in a chain entered by -g returns to the chain that *jumped* to
    # the goto-ing chain (FORWARD), skipping the rest of `outer`.
    trace = replay(scenario(GOTO_RETURN, FWD_TCP))
    check(
        trace,
        [
            H("filter", "FORWARD", 1, "JUMP:outer"),
            H("filter", "outer", 1, "GOTO:inner"),
            H("filter", "inner", 1, "RETURN"),
            H("filter", "FORWARD", 2, "ACCEPT"),
        ],
        "ACCEPT",
    )


def test_it_reports_a_policy_drop() -> None:
    ruleset = """*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -p udp -j ACCEPT
COMMIT
"""
    trace = replay(scenario(ruleset, FWD_TCP))
    check(trace, [P("filter", "FORWARD", "DROP")], "DROP")


DNAT_FORWARD = """*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -d 10.88.1.1/32 -p tcp --dport 8080 -j DNAT --to-destination 10.88.2.5:80
-A POSTROUTING -o eth1 -j MASQUERADE
COMMIT
*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -d 10.88.2.5/32 -p tcp --dport 80 -j LOG --log-prefix "fwd "
-A FORWARD -d 10.88.2.5/32 -p tcp --dport 80 -j ACCEPT
COMMIT
"""


def test_it_follows_dnat_into_forward() -> None:
    # DNAT and MASQUERADE end their nat chain: the kernel reports `accept`.
    # LOG is not terminal: `continue`.  The packet was for the host, DNAT made
    # it a forwarded one, so filter INPUT is never consulted.
    pkt = {**IN_TCP, "dport": 8080}
    trace = replay(scenario(DNAT_FORWARD, pkt))
    check(
        trace,
        [
            H("nat", "PREROUTING", 1, "ACCEPT"),
            H("filter", "FORWARD", 1, "CONTINUE"),
            H("filter", "FORWARD", 2, "ACCEPT"),
            H("nat", "POSTROUTING", 1, "ACCEPT"),
        ],
        "ACCEPT",
    )
    last = trace.packets[-1]
    assert (last["saddr"], last["daddr"], last["dport"]) == ("10.88.2.1", "10.88.2.5", 80)


def test_it_traces_a_locally_generated_packet() -> None:
    ruleset = """*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A OUTPUT -p udp --dport 53 -j MARK --set-xmark 0x10/0xff
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT DROP [0:0]
-A OUTPUT -m mark --mark 0x10/0xff -j ACCEPT
COMMIT
"""
    trace = replay(scenario(ruleset, OUT_UDP))
    check(
        trace,
        [
            H("mangle", "OUTPUT", 1, "CONTINUE"),
            P("mangle", "OUTPUT", "ACCEPT"),
            H("filter", "OUTPUT", 1, "ACCEPT"),
            P("mangle", "POSTROUTING", "ACCEPT"),
        ],
        "ACCEPT",
    )
    assert trace.sent_with == "socket"
    # 198.51.100.0/24 is routed via 10.88.2.254 on eth1.
    assert trace.packets[0].get("oif") == "eth1"


def test_it_reports_reject_as_drop() -> None:
    ruleset = """*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p tcp --dport 22 -j REJECT --reject-with tcp-reset
-A INPUT -j ACCEPT
COMMIT
"""
    trace = replay(scenario(ruleset, IN_TCP))
    # The RST that REJECT sends back is another skb (another trace id) and
    # must not leak into this packet's hops.
    check(trace, [H("filter", "INPUT", 1, "DROP")], "DROP")


def test_a_declared_empty_table_gives_its_policies() -> None:
    ruleset = """*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
COMMIT
*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
COMMIT
"""
    trace = replay(scenario(ruleset, FWD_UDP))
    check(
        trace,
        [
            P("raw", "PREROUTING", "ACCEPT"),
            P("mangle", "PREROUTING", "ACCEPT"),
            P("mangle", "FORWARD", "ACCEPT"),
            P("mangle", "POSTROUTING", "ACCEPT"),
        ],
        "ACCEPT",
    )


VERDICT_KINDS = """*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A PREROUTING -p udp --dport 53 -j CT --zone 0
-A PREROUTING -p udp --dport 53
COMMIT
*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -j MARK --set-xmark 0x1/0xffffffff
-A PREROUTING -j CONNMARK --save-mark --nfmask 0xffffffff --ctmask 0xffffffff
-A PREROUTING -j LOG
-A PREROUTING -m comment --comment "no target"
-A PREROUTING -j RETURN
-A PREROUTING -j DROP
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -p udp -j REDIRECT --to-ports 5353
-A INPUT -p udp -j SNAT --to-source 10.88.1.1:1000-2000
COMMIT
"""


def test_what_the_kernel_reports_per_target() -> None:
    # Observed: CT, MARK, CONNMARK, LOG and a rule without target → continue;
    # RETURN in a built-in chain → return, then the chain's policy applies;
    # REDIRECT and SNAT (nat INPUT) → accept.
    pkt = {**FWD_UDP, "dst": "10.88.1.1"}
    trace = replay(scenario(VERDICT_KINDS, pkt))
    check(
        trace,
        [
            H("raw", "PREROUTING", 1, "CONTINUE"),
            H("raw", "PREROUTING", 2, "CONTINUE"),
            P("raw", "PREROUTING", "ACCEPT"),
            H("mangle", "PREROUTING", 1, "CONTINUE"),
            H("mangle", "PREROUTING", 2, "CONTINUE"),
            H("mangle", "PREROUTING", 3, "CONTINUE"),
            H("mangle", "PREROUTING", 4, "CONTINUE"),
            H("mangle", "PREROUTING", 5, "RETURN"),
            P("mangle", "PREROUTING", "ACCEPT"),
            H("nat", "PREROUTING", 1, "ACCEPT"),
            P("mangle", "INPUT", "ACCEPT"),
            H("nat", "INPUT", 1, "ACCEPT"),
        ],
        "ACCEPT",
    )


def test_loopback_delivery_comes_back_in_on_lo() -> None:
    ruleset = """*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -i lo -p tcp --dport 22 -j DROP
-A OUTPUT -m conntrack --ctstate INVALID -j DROP
COMMIT
"""
    pkt = {"proto": "tcp", "src": "10.88.2.1", "sport": 40004, "dst": "10.88.1.1", "dport": 22}
    trace = replay(scenario(ruleset, pkt))
    # nat is consulted in OUTPUT and POSTROUTING only: the connection's NAT
    # binding is set up, so nat PREROUTING/INPUT do not see it on lo.
    check(
        trace,
        [
            P("nat", "OUTPUT", "ACCEPT"),
            P("filter", "OUTPUT", "ACCEPT"),
            P("nat", "POSTROUTING", "ACCEPT"),
            H("filter", "INPUT", 1, "DROP"),
        ],
        "DROP",
    )


NAT_ONLY = """*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -j LOG
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
%s
COMMIT
"""


def test_nat_is_silent_until_something_enables_conntrack() -> None:
    # Observed with the nf_tables backend in a fresh namespace: nat chains are
    # only called for packets with a conntrack entry, and conntrack is switched
    # on in a namespace only by a rule that needs it (conntrack/state/connmark
    # matches, NAT targets, CONNMARK, CT other than --notrack).  A nat table of
    # LOG rules and empty chains therefore produces no events at all.
    silent = replay(scenario(NAT_ONLY % "", FWD_TCP))
    check(silent, [P("filter", "FORWARD", "ACCEPT")], "ACCEPT")
    enabled = replay(scenario(NAT_ONLY % "-A FORWARD -m state --state INVALID -j DROP", FWD_TCP))
    check(
        enabled,
        [
            H("nat", "PREROUTING", 1, "CONTINUE"),
            P("nat", "PREROUTING", "ACCEPT"),
            P("filter", "FORWARD", "ACCEPT"),
            P("nat", "POSTROUTING", "ACCEPT"),
        ],
        "ACCEPT",
    )


def test_it_traces_ipv6() -> None:
    ruleset = """*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -s 2001:db8:1::/64 -p tcp --dport 80 -j ACCEPT
COMMIT
"""
    pkt = {"proto": "tcp", "src": "2001:db8:1::2", "sport": 40005, "dst": "2001:db8:2::5", "dport": 80,
           "in_iface": "eth0"}
    trace = replay(scenario(ruleset, pkt, family="ipv6"))
    check(trace, [H("filter", "FORWARD", 1, "ACCEPT")], "ACCEPT")


def test_it_refuses_what_one_packet_cannot_reproduce() -> None:
    with pytest.raises(ReplayUnsupported):
        replay(scenario(FILTER_JUMP, {**FWD_TCP, "ctstate": "ESTABLISHED"}))


def test_it_leaves_no_namespace_behind() -> None:
    import subprocess

    def ours() -> set[str]:
        out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
        return {line.split()[0] for line in out.splitlines() if line.startswith("nvz-")}

    before = ours()
    replay(scenario(FILTER_JUMP, FWD_TCP))
    assert ours() <= before

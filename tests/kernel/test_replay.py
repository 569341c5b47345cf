"""replay() against hand-written rulesets whose kernel hops are known.

Each expected hop list was predicted from the netfilter rules (and confirmed on
a 6.x kernel); the comments say what the kernel reports for each target.
"""

from __future__ import annotations

from typing import Any

import pytest

from netviz.kernel import KernelTrace, ReplayError, ReplayUnsupported, replay
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
    import os
    import subprocess

    # Only this process's namespaces: other replays may be running in parallel.
    prefix = f"nvz-{os.getpid()}-"

    def ours() -> set[str]:
        out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
        return {line.split()[0] for line in out.splitlines() if line.startswith(prefix)}

    replay(scenario(FILTER_JUMP, FWD_TCP))
    assert ours() == set()
    # …also when the replay fails half-way (a dump the kernel refuses).
    with pytest.raises(ReplayError):
        replay(scenario(FILTER_JUMP.replace("-j web", "-j nowhere"), FWD_TCP))
    assert ours() == set()


LENGTHS = """*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -m length --length 60 -j MARK --set-xmark 0x60/0xffffffff
-A PREROUTING -m length --length 28 -j MARK --set-xmark 0x28/0xffffffff
-A PREROUTING -m length --length 84 -j MARK --set-xmark 0x84/0xffffffff
-A PREROUTING -m length --length 100 -j MARK --set-xmark 0x100/0xffffffff
-A PREROUTING -m mark --mark 0x4001 -j LOG
COMMIT
"""


@pytest.mark.parametrize(
    ("packet", "rule"),
    [
        (FWD_TCP, 1),  # a SYN as long as Linux's, with its 20 bytes of options
        (FWD_UDP, 2),  # an empty UDP payload
        ({"proto": "icmp", "src": "10.88.1.2", "dst": "10.88.2.5", "in_iface": "eth0"}, 3),  # ping's 56 bytes
        ({**FWD_UDP, "length": 100}, 4),
    ],
    ids=["tcp", "udp", "icmp", "explicit"],
)
def test_injected_packets_have_the_scenario_length(packet: dict[str, Any], rule: int) -> None:
    trace = replay(scenario(LENGTHS, packet))
    assert trace.hops[0] == H("mangle", "PREROUTING", rule, "CONTINUE"), "\n".join(trace.raw)


def test_an_arriving_mark_is_set_before_raw() -> None:
    ruleset = """*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A PREROUTING -m mark --mark 0x1 -j DROP
-A PREROUTING -m mark --mark 0x4001 -j ACCEPT
COMMIT
"""
    trace = replay(scenario(ruleset, {**FWD_UDP, "mark": 0x4001}))
    check(trace, [H("raw", "PREROUTING", 2, "ACCEPT")], "ACCEPT")


IPV6_FILTER = """*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT DROP [0:0]
-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT
-A OUTPUT -p udp -m udp --dport 53 -j ACCEPT
-A OUTPUT -p ipv6-icmp -m icmp6 --icmpv6-type echo-request -j ACCEPT
COMMIT
"""


@pytest.mark.parametrize(
    ("packet", "hops"),
    [
        ({"proto": "tcp", "src": "2001:db8:1::2", "sport": 40006, "dst": "2001:db8:1::1", "dport": 22,
          "in_iface": "eth0"}, [H("filter", "INPUT", 1, "ACCEPT")]),
        ({"proto": "udp", "src": "2001:db8:2::1", "sport": 40007, "dst": "2001:db8:9::53", "dport": 53},
         [H("filter", "OUTPUT", 1, "ACCEPT")]),
        ({"proto": "icmpv6", "src": "2001:db8:2::1", "dst": "2001:db8:9::1"},
         [H("filter", "OUTPUT", 2, "ACCEPT")]),
    ],
    ids=["input", "output-udp", "output-ping"],
)
def test_ipv6_input_and_output(packet: dict[str, Any], hops: list[dict[str, Any]]) -> None:
    trace = replay(scenario(IPV6_FILTER, packet, family="ipv6"))
    check(trace, hops, "ACCEPT")


def test_local_ping_and_a_foreign_source_address() -> None:
    ruleset = """*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT DROP [0:0]
-A OUTPUT -p icmp -m icmp --icmp-type 8 -s 192.0.2.1 -j ACCEPT
-A OUTPUT -s 198.51.100.99 -p udp -j ACCEPT
COMMIT
"""
    ping = replay(scenario(ruleset, {"proto": "icmp", "src": "192.0.2.1", "dst": "203.0.113.9"}))
    check(ping, [H("filter", "OUTPUT", 1, "ACCEPT")], "ACCEPT")
    assert ping.sent_with == "socket"
    # A source the host does not own cannot be bound: sent through a raw
    # IP_HDRINCL socket instead.
    spoofed = replay(scenario(ruleset, {**OUT_UDP, "src": "198.51.100.99"}))
    check(spoofed, [H("filter", "OUTPUT", 2, "ACCEPT")], "ACCEPT")
    assert spoofed.sent_with == "raw"


def test_a_packet_dropped_in_output_is_still_traced() -> None:
    ruleset = """*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A OUTPUT -p udp -j DROP
COMMIT
"""
    trace = replay(scenario(ruleset, OUT_UDP))
    # sendto() fails with EPERM when netfilter drops the packet on its way out.
    check(trace, [H("filter", "OUTPUT", 1, "DROP")], "DROP")
    assert trace.sent_with == "socket-eperm"


def test_broadcast_and_multicast_arrive_as_such_at_layer_2() -> None:
    ruleset = """*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -m pkttype --pkt-type broadcast -j MARK --set-xmark 0x1/0xffffffff
-A PREROUTING -m pkttype --pkt-type multicast -j MARK --set-xmark 0x2/0xffffffff
-A PREROUTING -m pkttype --pkt-type unicast -j MARK --set-xmark 0x3/0xffffffff
COMMIT
"""
    for dst, rule in (("10.88.1.255", 1), ("255.255.255.255", 1), ("224.0.0.251", 2), ("10.88.1.1", 3)):
        trace = replay(scenario(ruleset, {**FWD_UDP, "dst": dst}))
        assert trace.hops[0] == H("mangle", "PREROUTING", rule, "CONTINUE"), "\n".join(trace.raw)


def test_the_scenario_mac_is_the_source_mac() -> None:
    ruleset = """*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m mac --mac-source 52:54:00:12:34:56 -j ACCEPT
COMMIT
"""
    trace = replay(scenario(ruleset, {**FWD_UDP, "mac": "52:54:00:12:34:56"}))
    check(trace, [H("filter", "FORWARD", 1, "ACCEPT")], "ACCEPT")
    other = replay(scenario(ruleset, FWD_UDP))
    check(other, [P("filter", "FORWARD", "DROP")], "DROP")

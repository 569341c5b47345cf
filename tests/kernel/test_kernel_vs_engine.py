"""One hand-written scenario per netfilter semantic point: the kernel first, then
the engine against the kernel.

Each test asserts the hops the kernel reports (so the scenario is known to
exercise what it claims), then that trace_scenario() gives the same hops, hop
by hop, and the same fate.  Where NAT rewrites the packet, the header the
kernel showed last is compared with the engine's packet_out.
"""

from __future__ import annotations

from typing import Any

import pytest

from netviz.engine.pipeline import trace_scenario
from netviz.kernel import KernelTrace, replay
from netviz.scenario import Scenario
from netviz.testing import hops_diff
from netviz.testing.scenarios import HOST, scenario

pytestmark = pytest.mark.usefixtures("kernel")


def H(table: str, chain: str, rule: int, verdict: str) -> dict[str, Any]:
    return {"table": table, "chain": chain, "rule": rule, "verdict": verdict}


def P(table: str, chain: str, policy: str) -> dict[str, Any]:
    return {"table": table, "chain": chain, "policy": policy}


def kernel_then_engine(
    sc: Scenario,
    expected: list[dict[str, Any]],
    verdict: str,
    packet_out: dict[str, Any] | None = None,
) -> KernelTrace:
    kernel = replay(sc)
    raw = "\n".join(kernel.raw)
    diff = hops_diff(expected, list(kernel.hops), "expected", "kernel")
    assert not diff, "the kernel does not do what this test expects:\n" + diff + "\n" + raw
    assert kernel.verdict == verdict, raw
    if packet_out is not None:
        assert kernel.packet_out == packet_out, raw
    engine = trace_scenario(sc)
    diff = hops_diff(list(kernel.hops), engine.hops())
    assert not diff, "engine differs from the kernel:\n" + diff + "\n" + raw
    assert engine.verdict == kernel.verdict
    if packet_out is not None:
        assert engine.packet_out.header() == packet_out
    return kernel


def table(name: str, policies: dict[str, str], rules: str = "", chains: tuple[str, ...] = ()) -> str:
    lines = [f"*{name}"]
    lines += [f":{chain} {policy} [0:0]" for chain, policy in policies.items()]
    lines += [f":{chain} - [0:0]" for chain in chains]
    lines += [line.strip() for line in rules.strip().splitlines() if line.strip()]
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def RAW(rules: str = "", chains: tuple[str, ...] = (), pre: str = "ACCEPT") -> str:
    return table("raw", {"PREROUTING": pre, "OUTPUT": "ACCEPT"}, rules, chains)


def MANGLE(rules: str = "", chains: tuple[str, ...] = ()) -> str:
    hooks = ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING")
    return table("mangle", dict.fromkeys(hooks, "ACCEPT"), rules, chains)


def NAT(rules: str = "", chains: tuple[str, ...] = ()) -> str:
    hooks = ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING")
    return table("nat", dict.fromkeys(hooks, "ACCEPT"), rules, chains)


def FILTER(rules: str = "", chains: tuple[str, ...] = (), inp: str = "ACCEPT", fwd: str = "ACCEPT",
           out: str = "ACCEPT") -> str:
    return table("filter", {"INPUT": inp, "FORWARD": fwd, "OUTPUT": out}, rules, chains)


def SECURITY(rules: str = "") -> str:
    return table("security", dict.fromkeys(("INPUT", "FORWARD", "OUTPUT"), "ACCEPT"), rules)


# nat chains are only called for packets with a conntrack entry, and the
# nf_tables backend turns conntrack on in a namespace only when a rule needs
# it; this rule never matches a NEW packet but makes sure conntrack is on.
CT_ON = "-A FORWARD -m conntrack --ctstate INVALID -j DROP"

FWD = {"proto": "tcp", "src": "10.88.1.2", "sport": 40000, "dst": "10.88.2.5", "dport": 80, "in_iface": "eth0"}
FWD_UDP = {"proto": "udp", "src": "10.88.1.2", "sport": 40001, "dst": "10.88.2.5", "dport": 53, "in_iface": "eth0"}
IN = {"proto": "tcp", "src": "10.88.1.2", "sport": 40002, "dst": "10.88.1.1", "dport": 22, "in_iface": "eth0"}
OUT = {"proto": "udp", "src": "192.0.2.1", "sport": 40003, "dst": "203.0.113.9", "dport": 53}


# -- built-in policies ------------------------------------------------------


@pytest.mark.parametrize(
    ("packet", "expected", "verdict"),
    [
        (
            FWD_UDP,
            [P("mangle", "PREROUTING", "ACCEPT"), P("mangle", "FORWARD", "ACCEPT"),
             P("filter", "FORWARD", "ACCEPT"), P("mangle", "POSTROUTING", "ACCEPT")],
            "ACCEPT",
        ),
        (
            IN,
            [P("mangle", "PREROUTING", "ACCEPT"), P("mangle", "INPUT", "ACCEPT"),
             P("filter", "INPUT", "DROP")],
            "DROP",
        ),
        (
            OUT,
            [P("mangle", "OUTPUT", "ACCEPT"), P("filter", "OUTPUT", "ACCEPT"),
             P("mangle", "POSTROUTING", "ACCEPT")],
            "ACCEPT",
        ),
    ],
    ids=["forward", "input", "output"],
)
def test_builtin_policies(packet: dict[str, Any], expected: list[dict[str, Any]], verdict: str) -> None:
    ruleset = MANGLE() + FILTER(inp="DROP")
    kernel_then_engine(scenario(ruleset, packet), expected, verdict)


# -- user chains, jump, goto, return -----------------------------------------


def test_user_chains_nest_and_fall_back() -> None:
    ruleset = FILTER(
        """
        -A FORWARD -p tcp -j A
        -A FORWARD -j DROP
        -A A -p udp -j DROP
        -A A -j B
        -A A -p tcp --dport 80 -j ACCEPT
        -A B -j LOG --log-prefix "in B "
        """,
        chains=("A", "B"),
        fwd="DROP",
    )
    kernel_then_engine(
        scenario(ruleset, FWD),
        [H("filter", "FORWARD", 1, "JUMP:A"), H("filter", "A", 2, "JUMP:B"),
         H("filter", "B", 1, "CONTINUE"), H("filter", "A", 3, "ACCEPT")],
        "ACCEPT",
    )


def test_goto_from_a_builtin_chain_returns_to_its_policy() -> None:
    # -g does not push a return address: falling off the end of G goes back
    # past FORWARD's remaining rules, to the built-in chain's policy.
    ruleset = FILTER(
        """
        -A FORWARD -g G
        -A FORWARD -j ACCEPT
        -A G -j LOG
        """,
        chains=("G",),
        fwd="DROP",
    )
    kernel_then_engine(
        scenario(ruleset, FWD),
        [H("filter", "FORWARD", 1, "GOTO:G"), H("filter", "G", 1, "CONTINUE"),
         P("filter", "FORWARD", "DROP")],
        "DROP",
    )


def test_jump_returns_to_the_next_rule() -> None:
    ruleset = FILTER(
        """
        -A FORWARD -j J
        -A FORWARD -j ACCEPT
        -A J -j LOG
        """,
        chains=("J",),
        fwd="DROP",
    )
    kernel_then_engine(
        scenario(ruleset, FWD),
        [H("filter", "FORWARD", 1, "JUMP:J"), H("filter", "J", 1, "CONTINUE"),
         H("filter", "FORWARD", 2, "ACCEPT")],
        "ACCEPT",
    )


def test_goto_inside_a_jump_returns_to_the_jumping_chain() -> None:
    ruleset = FILTER(
        """
        -A FORWARD -j A
        -A FORWARD -j ACCEPT
        -A A -g B
        -A A -j DROP
        -A B -p tcp -j RETURN
        -A B -j DROP
        """,
        chains=("A", "B"),
        fwd="DROP",
    )
    kernel_then_engine(
        scenario(ruleset, FWD),
        [H("filter", "FORWARD", 1, "JUMP:A"), H("filter", "A", 1, "GOTO:B"),
         H("filter", "B", 1, "RETURN"), H("filter", "FORWARD", 2, "ACCEPT")],
        "ACCEPT",
    )


def test_explicit_return_in_a_builtin_chain_applies_the_policy() -> None:
    ruleset = FILTER(
        """
        -A FORWARD -p tcp -j RETURN
        -A FORWARD -j ACCEPT
        """,
        fwd="DROP",
    )
    kernel_then_engine(
        scenario(ruleset, FWD),
        [H("filter", "FORWARD", 1, "RETURN"), P("filter", "FORWARD", "DROP")],
        "DROP",
    )


def test_implicit_return_is_not_a_hop() -> None:
    ruleset = FILTER(
        """
        -A FORWARD -j X
        -A FORWARD -j EMPTY
        -A FORWARD -j ACCEPT
        -A X -p udp -j DROP
        """,
        chains=("X", "EMPTY"),
        fwd="DROP",
    )
    kernel_then_engine(
        scenario(ruleset, FWD),
        [H("filter", "FORWARD", 1, "JUMP:X"), H("filter", "FORWARD", 2, "JUMP:EMPTY"),
         H("filter", "FORWARD", 3, "ACCEPT")],
        "ACCEPT",
    )


# -- verdicts across tables ---------------------------------------------------


def test_accept_ends_only_the_current_table() -> None:
    ruleset = (
        MANGLE("""
            -A PREROUTING -j ACCEPT
            -A PREROUTING -j MARK --set-xmark 0x1/0xffffffff
        """)
        + NAT("-A PREROUTING -j LOG")
        + FILTER("""
            -A INPUT -m conntrack --ctstate INVALID -j DROP
            -A INPUT -p tcp -j ACCEPT
            -A INPUT -j DROP
        """)
        + SECURITY("-A INPUT -j LOG")
    )
    # INPUT runs mangle (-150), filter (0), nat (NAT_SRC, 100), security (150).
    kernel_then_engine(
        scenario(ruleset, IN),
        [
            H("mangle", "PREROUTING", 1, "ACCEPT"),
            H("nat", "PREROUTING", 1, "CONTINUE"),
            P("nat", "PREROUTING", "ACCEPT"),
            P("mangle", "INPUT", "ACCEPT"),
            H("filter", "INPUT", 2, "ACCEPT"),
            P("nat", "INPUT", "ACCEPT"),
            H("security", "INPUT", 1, "CONTINUE"),
            P("security", "INPUT", "ACCEPT"),
        ],
        "ACCEPT",
    )


def test_drop_ends_everything() -> None:
    ruleset = MANGLE("-A PREROUTING -p tcp -j DROP") + FILTER()
    kernel_then_engine(scenario(ruleset, FWD), [H("mangle", "PREROUTING", 1, "DROP")], "DROP")


def test_reject_ends_everything_and_reads_as_drop() -> None:
    ruleset = FILTER("-A INPUT -p tcp -j REJECT --reject-with tcp-reset") + SECURITY("-A INPUT -j LOG")
    kernel_then_engine(scenario(ruleset, IN), [H("filter", "INPUT", 1, "DROP")], "DROP")


# -- conntrack and nat -------------------------------------------------------


@pytest.mark.parametrize("notrack", ["-j CT --notrack", "-j NOTRACK"])
def test_nat_is_skipped_for_untracked_packets(notrack: str) -> None:
    ruleset = (
        RAW(f"-A PREROUTING -p udp {notrack}")
        + MANGLE("-A PREROUTING -m conntrack --ctstate UNTRACKED -j MARK --set-xmark 0x7/0xffffffff")
        + NAT("""
            -A PREROUTING -p udp -j DNAT --to-destination 10.88.1.1
            -A POSTROUTING -j MASQUERADE
        """)
        + FILTER(CT_ON)
    )
    kernel_then_engine(
        scenario(ruleset, FWD_UDP),
        [
            H("raw", "PREROUTING", 1, "CONTINUE"),
            P("raw", "PREROUTING", "ACCEPT"),
            H("mangle", "PREROUTING", 1, "CONTINUE"),
            P("mangle", "PREROUTING", "ACCEPT"),
            P("mangle", "FORWARD", "ACCEPT"),
            P("filter", "FORWARD", "ACCEPT"),
            P("mangle", "POSTROUTING", "ACCEPT"),
        ],
        "ACCEPT",
        {"src": "10.88.1.2", "dst": "10.88.2.5", "sport": 40001, "dport": 53},
    )


def test_ctstate_in_raw_is_invalid_and_new_after_conntrack() -> None:
    # raw (-300) runs before conntrack (-200): no entry yet, so xt_conntrack
    # reports INVALID there; mangle sees the NEW entry.
    ruleset = RAW("""
        -A PREROUTING -m conntrack --ctstate NEW -j MARK --set-xmark 0x2/0x2
        -A PREROUTING -m conntrack --ctstate INVALID -j MARK --set-xmark 0x1/0x1
        -A PREROUTING -m state --state INVALID
    """) + MANGLE("""
        -A PREROUTING -m conntrack --ctstate INVALID -j DROP
        -A PREROUTING -m conntrack --ctstate NEW -m mark --mark 0x1 -j ACCEPT
    """)
    kernel_then_engine(
        scenario(ruleset, FWD),
        [
            H("raw", "PREROUTING", 2, "CONTINUE"),
            H("raw", "PREROUTING", 3, "CONTINUE"),
            P("raw", "PREROUTING", "ACCEPT"),
            H("mangle", "PREROUTING", 2, "ACCEPT"),
            P("mangle", "FORWARD", "ACCEPT"),
            P("mangle", "POSTROUTING", "ACCEPT"),
        ],
        "ACCEPT",
    )


def test_ctstate_in_raw_output_is_invalid() -> None:
    ruleset = RAW("-A OUTPUT -m state --state INVALID -j MARK --set-xmark 0x1/0x1") + FILTER(
        "-A OUTPUT -m mark --mark 0x1/0x1 -m conntrack --ctstate NEW -j ACCEPT", out="DROP"
    )
    kernel_then_engine(
        scenario(ruleset, OUT),
        [H("raw", "OUTPUT", 1, "CONTINUE"), P("raw", "OUTPUT", "ACCEPT"), H("filter", "OUTPUT", 1, "ACCEPT")],
        "ACCEPT",
    )


def test_mark_arithmetic_and_connmark_save_restore() -> None:
    # MARK --set-xmark v/m: mark = (mark & ~m) ^ v.
    # CONNMARK --save-mark: ctmark = (ctmark & ~ctmask) ^ (mark & nfmask).
    # CONNMARK --restore-mark: mark = (mark & ~nfmask) ^ (ctmark & ctmask).
    ruleset = MANGLE("""
        -A PREROUTING -j MARK --set-xmark 0x10/0xf0
        -A PREROUTING -m mark --mark 0x4011 -j MARK --set-xmark 0x100/0x100
        -A PREROUTING -m mark --mark 0x4111 -j CONNMARK --save-mark --nfmask 0xff00 --ctmask 0xffff
        -A PREROUTING -j MARK --set-xmark 0x0/0xffffffff
        -A PREROUTING -m connmark --mark 0x4100 -j CONNMARK --restore-mark --nfmask 0xffffffff --ctmask 0xff00
        -A PREROUTING -m mark --mark 0x4100 -j MARK --set-xmark 0x1/0x0
        -A PREROUTING -m mark ! --mark 0x4101 -j DROP
        -A PREROUTING -m mark --mark 0x1/0x1 -j ACCEPT
    """)
    kernel_then_engine(
        scenario(ruleset, {**FWD, "mark": 0x4001}),
        [
            H("mangle", "PREROUTING", 1, "CONTINUE"),
            H("mangle", "PREROUTING", 2, "CONTINUE"),
            H("mangle", "PREROUTING", 3, "CONTINUE"),
            H("mangle", "PREROUTING", 4, "CONTINUE"),
            H("mangle", "PREROUTING", 5, "CONTINUE"),
            H("mangle", "PREROUTING", 6, "CONTINUE"),
            H("mangle", "PREROUTING", 8, "ACCEPT"),
            P("mangle", "FORWARD", "ACCEPT"),
            P("mangle", "POSTROUTING", "ACCEPT"),
        ],
        "ACCEPT",
    )


# -- NAT rewrites and re-routing ---------------------------------------------


def test_dnat_with_port_turns_input_into_forward() -> None:
    ruleset = NAT("-A PREROUTING -d 10.88.1.1 -p tcp --dport 8080 -j DNAT --to-destination 10.88.2.5:80") + FILTER(
        """
        -A INPUT -j DROP
        -A FORWARD -d 10.88.2.5 -p tcp --dport 80 -j ACCEPT
        """,
        fwd="DROP",
    )
    kernel_then_engine(
        scenario(ruleset, {**IN, "dport": 8080}),
        [H("nat", "PREROUTING", 1, "ACCEPT"), H("filter", "FORWARD", 1, "ACCEPT"), P("nat", "POSTROUTING", "ACCEPT")],
        "ACCEPT",
        {"src": "10.88.1.2", "dst": "10.88.2.5", "sport": 40002, "dport": 80},
    )


def test_dnat_to_a_local_address_turns_forward_into_input() -> None:
    ruleset = NAT("-A PREROUTING -p tcp --dport 80 -j DNAT --to-destination 10.88.2.1:22") + FILTER(
        """
        -A INPUT -p tcp --dport 22 -j ACCEPT
        -A FORWARD -j DROP
        """
    )
    kernel_then_engine(
        scenario(ruleset, FWD),
        [H("nat", "PREROUTING", 1, "ACCEPT"), H("filter", "INPUT", 1, "ACCEPT"), P("nat", "INPUT", "ACCEPT")],
        "ACCEPT",
        {"src": "10.88.1.2", "dst": "10.88.2.1", "sport": 40000, "dport": 22},
    )


def test_redirect_sends_a_forwarded_packet_to_a_local_port() -> None:
    ruleset = NAT("-A PREROUTING -i eth0 -p tcp --dport 80 -j REDIRECT --to-ports 3128") + FILTER(
        "-A INPUT -p tcp --dport 3128 -j ACCEPT", inp="DROP", fwd="DROP"
    )
    # REDIRECT picks the primary address of the incoming interface.
    kernel_then_engine(
        scenario(ruleset, {**FWD, "dst": "198.51.100.7"}),
        [H("nat", "PREROUTING", 1, "ACCEPT"), H("filter", "INPUT", 1, "ACCEPT"), P("nat", "INPUT", "ACCEPT")],
        "ACCEPT",
        {"src": "10.88.1.2", "dst": "10.88.1.1", "sport": 40000, "dport": 3128},
    )


def test_snat_with_a_port() -> None:
    ruleset = NAT("-A POSTROUTING -o eth1 -p tcp -j SNAT --to-source 10.88.2.1:1000") + FILTER(CT_ON)
    kernel_then_engine(
        scenario(ruleset, FWD),
        [P("nat", "PREROUTING", "ACCEPT"), P("filter", "FORWARD", "ACCEPT"), H("nat", "POSTROUTING", 1, "ACCEPT")],
        "ACCEPT",
        {"src": "10.88.2.1", "dst": "10.88.2.5", "sport": 1000, "dport": 80},
    )


def test_masquerade_takes_the_out_interface_address() -> None:
    ruleset = NAT("""
        -A POSTROUTING -o eth1 -j RETURN
        -A POSTROUTING -o eth2 -j MASQUERADE
    """) + FILTER(CT_ON)
    kernel_then_engine(
        scenario(ruleset, {**FWD, "dst": "203.0.113.9"}),
        [P("nat", "PREROUTING", "ACCEPT"), P("filter", "FORWARD", "ACCEPT"), H("nat", "POSTROUTING", 2, "ACCEPT")],
        "ACCEPT",
        {"src": "192.0.2.1", "dst": "203.0.113.9", "sport": 40000, "dport": 80},
    )


def test_dnat_in_output_reroutes() -> None:
    # nf_nat_ipv4_local_fn re-routes after DNAT in nat OUTPUT, but the OUTPUT
    # hook's out device was fixed when the hook started (__ip_local_out passes
    # skb_dst(skb)->dev): `-o` in filter OUTPUT still sees the old interface;
    # POSTROUTING sees the new one.
    ruleset = (
        MANGLE("-A POSTROUTING -o eth1 -j LOG")
        + NAT("-A OUTPUT -p udp --dport 53 -j DNAT --to-destination 10.88.2.53:5353")
        + FILTER(
            """
            -A OUTPUT -o eth2 -j LOG
            -A OUTPUT -o eth1 -j DROP
            -A OUTPUT -d 10.88.2.53 -p udp --dport 5353 -j ACCEPT
            """,
            out="DROP",
        )
    )
    kernel = kernel_then_engine(
        scenario(ruleset, OUT),
        [
            P("mangle", "OUTPUT", "ACCEPT"),
            H("nat", "OUTPUT", 1, "ACCEPT"),
            H("filter", "OUTPUT", 1, "CONTINUE"),
            H("filter", "OUTPUT", 3, "ACCEPT"),
            H("mangle", "POSTROUTING", 1, "CONTINUE"),
            P("mangle", "POSTROUTING", "ACCEPT"),
            P("nat", "POSTROUTING", "ACCEPT"),
        ],
        "ACCEPT",
        {"src": "192.0.2.1", "dst": "10.88.2.53", "sport": 40003, "dport": 5353},
    )
    assert kernel.packets[-1]["oif"] == "eth1"


def test_mangle_output_mark_reroutes() -> None:
    # Needs policy routing: `host.rules` (ip rule lines) is an extension of the
    # scenario format that replay() understands.  As with DNAT, the re-route
    # (ipt_mangle_out → ip_route_me_harder) shows in POSTROUTING's -o only.
    host = {
        **HOST,
        "routes": [*HOST["routes"], "default via 10.88.2.254 dev eth1 table 100"],
        "rules": ["fwmark 0x1 lookup 100"],
    }
    ruleset = MANGLE("""
        -A OUTPUT -p udp --dport 53 -j MARK --set-xmark 0x1/0xffffffff
        -A POSTROUTING -o eth2 -j DROP
        -A POSTROUTING -o eth1 -j ACCEPT
    """) + FILTER("-A OUTPUT -o eth2 -j LOG")
    kernel = kernel_then_engine(
        scenario(ruleset, OUT, host=host),
        [
            H("mangle", "OUTPUT", 1, "CONTINUE"),
            P("mangle", "OUTPUT", "ACCEPT"),
            H("filter", "OUTPUT", 1, "CONTINUE"),
            P("filter", "OUTPUT", "ACCEPT"),
            H("mangle", "POSTROUTING", 2, "ACCEPT"),
        ],
        "ACCEPT",
    )
    assert kernel.packets[-1]["oif"] == "eth1"


def test_loopback_delivery() -> None:
    ruleset = (
        RAW()
        + MANGLE()
        + NAT("-A PREROUTING -j LOG\n-A INPUT -j LOG")
        + FILTER("-A INPUT -i lo -m conntrack --ctstate NEW -j ACCEPT", inp="DROP")
    )
    pkt = {"proto": "tcp", "src": "10.88.1.1", "sport": 40010, "dst": "192.0.2.1", "dport": 22}
    # The packet leaves through lo (OUTPUT, POSTROUTING) and comes back in on
    # lo (PREROUTING, INPUT); its NAT binding was made on the way out, so the
    # nat table is not consulted again on the way in.
    kernel_then_engine(
        scenario(ruleset, pkt),
        [
            P("raw", "OUTPUT", "ACCEPT"),
            P("mangle", "OUTPUT", "ACCEPT"),
            P("nat", "OUTPUT", "ACCEPT"),
            P("filter", "OUTPUT", "ACCEPT"),
            P("mangle", "POSTROUTING", "ACCEPT"),
            P("nat", "POSTROUTING", "ACCEPT"),
            P("raw", "PREROUTING", "ACCEPT"),
            P("mangle", "PREROUTING", "ACCEPT"),
            P("mangle", "INPUT", "ACCEPT"),
            H("filter", "INPUT", 1, "ACCEPT"),
        ],
        "ACCEPT",
    )


# -- matches ----------------------------------------------------------------


def test_addrtype_with_limit_iface() -> None:
    # 10.88.2.1 is local, but not on eth0: --limit-iface-in asks about the
    # incoming interface only.
    ruleset = MANGLE("""
        -A PREROUTING -m addrtype --dst-type LOCAL --limit-iface-in -j DROP
        -A PREROUTING -m addrtype --dst-type LOCAL
        -A PREROUTING -m addrtype --src-type UNICAST --dst-type UNICAST -j DROP
        -A PREROUTING -m addrtype ! --src-type LOCAL -j ACCEPT
    """)
    kernel_then_engine(
        scenario(ruleset, {**IN, "dst": "10.88.2.1"}),
        [H("mangle", "PREROUTING", 2, "CONTINUE"), H("mangle", "PREROUTING", 4, "ACCEPT"), P("mangle", "INPUT", "ACCEPT")],
        "ACCEPT",
    )


IPSETS = """create s-ip hash:ip family inet hashsize 1024 maxelem 65536
add s-ip 10.88.2.5
create s-net hash:net family inet hashsize 1024 maxelem 65536
add s-net 10.88.1.0/24
create s-ipport hash:ip,port family inet hashsize 1024 maxelem 65536
add s-ipport 10.88.2.5,tcp:80
create s-netport hash:net,port family inet hashsize 1024 maxelem 65536
add s-netport 10.88.1.0/24,tcp:40000
create s-netif hash:net,iface family inet hashsize 1024 maxelem 65536
add s-netif 10.88.1.0/24,eth0
create s-ports bitmap:port range 0-1024
add s-ports 80
create s-nomatch hash:net family inet hashsize 1024 maxelem 65536
add s-nomatch 10.88.2.0/24
add s-nomatch 10.88.2.5 nomatch
create s-list list:set size 8
add s-list s-ip
add s-list s-net
"""


def test_ipset_matches() -> None:
    ruleset = FILTER(
        """
        -A FORWARD -m set --match-set s-ip dst -j LOG
        -A FORWARD -m set --match-set s-ip src -j DROP
        -A FORWARD -m set --match-set s-net src -j LOG
        -A FORWARD -m set --match-set s-ipport dst,dst -j LOG
        -A FORWARD -m set --match-set s-ipport dst,src -j DROP
        -A FORWARD -m set --match-set s-netport src,src -j LOG
        -A FORWARD -m set --match-set s-netif src,src -j LOG
        -A FORWARD -m set --match-set s-netif src,dst -j DROP
        -A FORWARD -m set --match-set s-ports dst -j LOG
        -A FORWARD -m set --match-set s-nomatch dst -j DROP
        -A FORWARD -m set ! --match-set s-nomatch dst -j LOG
        -A FORWARD -m set --match-set s-list src -j LOG
        -A FORWARD -m set --match-set s-list dst -j ACCEPT
        """,
        fwd="DROP",
    )
    kernel_then_engine(
        scenario(ruleset, FWD, ipsets=IPSETS),
        [H("filter", "FORWARD", n, "CONTINUE") for n in (1, 3, 4, 6, 7, 9, 11, 12)]
        + [H("filter", "FORWARD", 13, "ACCEPT")],
        "ACCEPT",
    )


def test_multiport_iprange_and_tcp_flags() -> None:
    ruleset = FILTER(
        """
        -A FORWARD -p tcp -m multiport --dports 22,80,443 -j LOG
        -A FORWARD -p tcp -m multiport --sports 1:1000 -j DROP
        -A FORWARD -p tcp -m multiport --ports 80 -j LOG
        -A FORWARD -m iprange --src-range 10.88.1.1-10.88.1.10 -j LOG
        -A FORWARD -m iprange ! --dst-range 10.88.2.1-10.88.2.4 -j LOG
        -A FORWARD -m iprange --dst-range 10.88.2.6-10.88.2.9 -j DROP
        -A FORWARD -p tcp -m tcp --tcp-flags SYN,ACK SYN -j LOG
        -A FORWARD -p tcp -m tcp --syn -j LOG
        -A FORWARD -p tcp -m tcp --tcp-flags ALL NONE -j DROP
        -A FORWARD -p tcp -m tcp ! --tcp-flags FIN,SYN,RST,ACK SYN -j DROP
        -A FORWARD -p tcp -m tcp --tcp-flags ACK ACK -j DROP
        -A FORWARD -p tcp -m tcp --sport 39000:41000 --dport 80 -j ACCEPT
        """,
        fwd="DROP",
    )
    kernel_then_engine(
        scenario(ruleset, FWD),
        [H("filter", "FORWARD", n, "CONTINUE") for n in (1, 3, 4, 5, 7, 8)]
        + [H("filter", "FORWARD", 12, "ACCEPT")],
        "ACCEPT",
    )


def test_icmp_types() -> None:
    ruleset = FILTER(
        """
        -A INPUT -p icmp -m icmp --icmp-type 0 -j DROP
        -A INPUT -p icmp -m icmp --icmp-type echo-request -j LOG
        -A INPUT -p icmp -m icmp --icmp-type 8/0 -j LOG
        -A INPUT -p icmp -m icmp --icmp-type 8/1 -j DROP
        -A INPUT -p icmp -m icmp --icmp-type any -j LOG
        -A INPUT -p icmp -m icmp ! --icmp-type 3 -j LOG
        -A INPUT -p icmp -m icmp --icmp-type 3/3 -j DROP
        -A INPUT -p icmp -j ACCEPT
        """,
        inp="DROP",
    )
    pkt = {"proto": "icmp", "src": "10.88.1.2", "dst": "10.88.1.1", "icmp_type": 8, "icmp_code": 0, "in_iface": "eth0"}
    kernel_then_engine(
        scenario(ruleset, pkt),
        [H("filter", "INPUT", n, "CONTINUE") for n in (2, 3, 5, 6)] + [H("filter", "INPUT", 8, "ACCEPT")],
        "ACCEPT",
    )


def test_ipv6() -> None:
    ruleset = """*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A PREROUTING -p ipv6-icmp -m icmp6 --icmpv6-type 128 -j MARK --set-xmark 0x1/0xffffffff
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:icmp6 - [0:0]
-A FORWARD -s 2001:db8:1::/64 -d 2001:db8:2::/64 -p ipv6-icmp -j icmp6
-A FORWARD -p tcp -j ACCEPT
-A icmp6 -p ipv6-icmp -m icmp6 --icmpv6-type 129 -j ACCEPT
-A icmp6 -m mark --mark 0x1 -p ipv6-icmp -m icmp6 --icmpv6-type echo-request -j ACCEPT
COMMIT
"""
    pkt = {"proto": "icmpv6", "src": "2001:db8:1::2", "dst": "2001:db8:2::5", "icmp_type": 128, "in_iface": "eth0"}
    kernel_then_engine(
        scenario(ruleset, pkt, family="ipv6"),
        [H("raw", "PREROUTING", 1, "CONTINUE"), P("raw", "PREROUTING", "ACCEPT"),
         H("filter", "FORWARD", 1, "JUMP:icmp6"), H("filter", "icmp6", 2, "ACCEPT")],
        "ACCEPT",
    )

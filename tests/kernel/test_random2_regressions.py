"""Hand-written scenarios for every difference the second random generator
(netviz/testing/randomrules2.py) found between the engine and the kernel.

Each test asserts the kernel's hops first (so the scenario shows the point it
claims), then the engine's against the kernel's, hop by hop, and the fate.
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


def P(table: str, chain: str, policy: str = "ACCEPT") -> dict[str, Any]:
    return {"table": table, "chain": chain, "policy": policy}


def table(name: str, chains: tuple[str, ...], rules: str = "", users: tuple[str, ...] = ()) -> str:
    lines = [f"*{name}"]
    lines += [f":{chain} ACCEPT [0:0]" for chain in chains]
    lines += [f":{chain} - [0:0]" for chain in users]
    lines += [line.strip() for line in rules.strip().splitlines() if line.strip()]
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def RAW(rules: str = "", users: tuple[str, ...] = ()) -> str:
    return table("raw", ("PREROUTING", "OUTPUT"), rules, users)


def MANGLE(rules: str = "", users: tuple[str, ...] = ()) -> str:
    return table("mangle", ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"), rules, users)


def NAT(rules: str = "", users: tuple[str, ...] = ()) -> str:
    return table("nat", ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"), rules, users)


def FILTER(rules: str = "", users: tuple[str, ...] = ()) -> str:
    return table("filter", ("INPUT", "FORWARD", "OUTPUT"), rules, users)


IN = {"proto": "udp", "src": "10.88.1.2", "sport": 40002, "dst": "10.88.1.1", "dport": 53, "in_iface": "eth0"}
SYN_FWD = {"proto": "tcp", "src": "10.88.1.2", "sport": 40000, "dst": "10.88.2.5", "dport": 80, "in_iface": "eth0"}
OUT = {"proto": "udp", "src": "192.0.2.1", "sport": 40003, "dst": "203.0.113.9", "dport": 53}


def check(sc: Scenario, expected: list[dict[str, Any]], verdict: str | None) -> KernelTrace:
    kernel = replay(sc)
    raw = "\n".join(kernel.raw)
    diff = hops_diff(expected, list(kernel.hops), "expected", "kernel")
    assert not diff, "the kernel does not do what this test expects:\n" + diff + "\n" + raw
    assert kernel.verdict == verdict, raw
    engine = trace_scenario(sc)
    diff = hops_diff(list(kernel.hops), engine.hops())
    assert not diff, "engine differs from the kernel:\n" + diff + "\n" + raw
    if kernel.verdict is not None:
        assert engine.verdict == kernel.verdict
    else:
        # vanished without a netfilter verdict (routing dropped it)
        assert engine.verdict == "DROP"
    return kernel


# -- routing ---------------------------------------------------------------------


def test_a_broadcast_from_one_of_our_addresses_is_a_martian() -> None:
    # ip_route_input_slow(): brd_input still runs fib_validate_source().
    pkt = {**IN, "src": "10.88.1.1", "dst": "255.255.255.255"}
    check(scenario(MANGLE(), pkt), [P("mangle", "PREROUTING")], None)


def test_a_multicast_frame_dnated_to_unicast_is_not_forwarded() -> None:
    # ip_forward(): skb->pkt_type != PACKET_HOST → drop, before FORWARD.
    ruleset = NAT("-A PREROUTING -d 224.0.0.251 -j DNAT --to-destination 10.88.2.5") + MANGLE()
    pkt = {**IN, "dst": "224.0.0.251"}
    check(scenario(ruleset, pkt), [P("mangle", "PREROUTING"), H("nat", "PREROUTING", 1, "ACCEPT")], None)


def test_dnat_to_an_unroutable_address_in_output_drops_after_nat() -> None:
    # The re-route after nat OUTPUT finds no route: the sender gets
    # ENETUNREACH, but nat OUTPUT has been traversed.
    host = {"interfaces": HOST["interfaces"], "routes": []}
    ruleset = NAT("-A OUTPUT -j DNAT --to-destination 100.64.9.9")
    pkt = {"proto": "udp", "src": "10.88.1.1", "sport": 40004, "dst": "10.88.1.5", "dport": 53}
    check(scenario(ruleset, pkt, host=host), [H("nat", "OUTPUT", 1, "ACCEPT")], "DROP")


def test_a_local_packet_with_ttl_0_is_sent() -> None:
    ruleset = FILTER("-A OUTPUT -m ttl --ttl-eq 0 -j DROP")
    check(scenario(ruleset, {**OUT, "ttl": 0}), [H("filter", "OUTPUT", 1, "DROP")], "DROP")


# -- matches ---------------------------------------------------------------------


def test_mac_source_of_an_unnamed_sender_is_another_hosts() -> None:
    ruleset = FILTER("""
        -A INPUT -m mac --mac-source 02:00:00:00:00:aa -j DROP
        -A INPUT -m mac ! --mac-source 02:00:00:00:00:aa -j ACCEPT
    """)
    check(scenario(ruleset, IN), [H("filter", "INPUT", 2, "ACCEPT")], "ACCEPT")


def test_limit_burst_is_used_up_by_a_second_evaluation() -> None:
    ruleset = FILTER("""
        -A INPUT -j A
        -A INPUT -j A
        -A INPUT -j B
        -A INPUT -j B
        -A A -m limit --limit 1/s --limit-burst 1 -j LOG
        -A B -m hashlimit --hashlimit-above 1/sec --hashlimit-burst 1 --hashlimit-mode srcip --hashlimit-name nvz -j LOG
    """, users=("A", "B"))
    expected = [
        H("filter", "INPUT", 1, "JUMP:A"), H("filter", "A", 1, "CONTINUE"),
        H("filter", "INPUT", 2, "JUMP:A"),
        H("filter", "INPUT", 3, "JUMP:B"),
        H("filter", "INPUT", 4, "JUMP:B"), H("filter", "B", 1, "CONTINUE"),
        P("filter", "INPUT"),
    ]
    check(scenario(ruleset, IN), expected, "ACCEPT")


def test_connlimit_counts_the_packets_own_connection() -> None:
    ruleset = FILTER("""
        -A INPUT -m connlimit --connlimit-upto 0 -j DROP
        -A INPUT -m connlimit --connlimit-above 0 -j LOG
        -A INPUT -m connlimit --connlimit-upto 1 -j LOG
        -A INPUT -m connlimit --connlimit-above 1 -j DROP
    """)
    expected = [H("filter", "INPUT", 2, "CONTINUE"), H("filter", "INPUT", 3, "CONTINUE"), P("filter", "INPUT")]
    check(scenario(ruleset, IN), expected, "ACCEPT")


def test_connbytes_sees_the_first_packet_once_conntrack_ran() -> None:
    rule = "-m connbytes --connbytes 1:1 --connbytes-dir original --connbytes-mode packets -j MARK --set-mark 0x1"
    ruleset = RAW(f"-A PREROUTING {rule}") + MANGLE(f"""
        -A PREROUTING {rule}
        -A PREROUTING -m connbytes --connbytes 29: --connbytes-dir both --connbytes-mode bytes -j LOG
        -A PREROUTING -m connbytes --connbytes 28: --connbytes-dir both --connbytes-mode bytes -j LOG
        -A PREROUTING -m connbytes --connbytes 1: --connbytes-dir reply --connbytes-mode packets -j LOG
    """)
    expected = [
        P("raw", "PREROUTING"), H("mangle", "PREROUTING", 1, "CONTINUE"), H("mangle", "PREROUTING", 3, "CONTINUE"),
        P("mangle", "PREROUTING"), P("mangle", "INPUT"),
    ]
    check(scenario(ruleset, IN), expected, "ACCEPT")


def test_devgroup_ecn_tcpmss_and_tcp_options_of_a_linux_syn() -> None:
    ruleset = MANGLE("""
        -A FORWARD -m devgroup --src-group 0 --dst-group 0 -j LOG
        -A FORWARD -m devgroup --src-group 1 -j DROP
        -A FORWARD -m ecn --ecn-ip-ect 3 -j LOG
        -A FORWARD -p tcp -m ecn --ecn-tcp-cwr -j DROP
        -A FORWARD -p tcp -m tcpmss --mss 1460 -j LOG
        -A FORWARD -p tcp -m tcpmss --mss 1461:65535 -j DROP
        -A FORWARD -p tcp -m tcp --tcp-option 8 -j LOG
        -A FORWARD -p tcp -m tcp --tcp-option 5 -j DROP
    """)
    expected = [P("mangle", "PREROUTING")] + [H("mangle", "FORWARD", n, "CONTINUE") for n in (1, 3, 5, 7)] + [
        P("mangle", "FORWARD"), P("mangle", "POSTROUTING"),
    ]
    check(scenario(ruleset, {**SYN_FWD, "tos": 3}), expected, "ACCEPT")


def test_owner_of_a_locally_sent_packet_is_root() -> None:
    ruleset = FILTER("""
        -A OUTPUT -m owner --uid-owner 1000 -j DROP
        -A OUTPUT -m owner --uid-owner 0 --gid-owner 0 -j LOG
        -A OUTPUT -m owner --socket-exists -j LOG
    """)
    pkt = {"proto": "udp", "src": "192.0.2.1", "sport": 40005, "dst": "203.0.113.9", "dport": 53}
    expected = [H("filter", "OUTPUT", 2, "CONTINUE"), H("filter", "OUTPUT", 3, "CONTINUE"), P("filter", "OUTPUT")]
    check(scenario(ruleset, pkt), expected, "ACCEPT")


@pytest.mark.parametrize(("in_iface", "hit"), [("eth0", True), ("eth1", False)])
def test_rpfilter_accept_local_still_wants_the_input_device(in_iface: str, hit: bool) -> None:
    # rpfilter_lookup_reverse(): RTN_LOCAL is allowed with --accept-local,
    # then fib_info_nh_uses_dev() must hold ("local 10.88.1.1 dev eth0").
    ruleset = RAW("-A PREROUTING -m rpfilter --accept-local -j MARK --set-mark 0x1")
    pkt = {**IN, "src": "10.88.1.1", "dst": "10.88.2.1", "in_iface": in_iface}
    # the source is ours, so routing drops it as a martian after raw
    expected = [H("raw", "PREROUTING", 1, "CONTINUE")] if hit else []
    check(scenario(ruleset, pkt), expected + [P("raw", "PREROUTING")], None)


# -- targets ---------------------------------------------------------------------


def test_notrack_after_ct_zone_does_nothing() -> None:
    # notrack_tg()/xt_ct_target(): `if (skb->_nfct != 0) return XT_CONTINUE`.
    ruleset = RAW("""
        -A PREROUTING -j CT --zone 3
        -A PREROUTING -j NOTRACK
    """) + FILTER("-A INPUT -m conntrack --ctstate UNTRACKED -j DROP")
    expected = [H("raw", "PREROUTING", 1, "CONTINUE"), H("raw", "PREROUTING", 2, "CONTINUE"),
                P("raw", "PREROUTING"), P("filter", "INPUT")]
    check(scenario(ruleset, IN), expected, "ACCEPT")


def test_set_add_and_del_are_seen_by_later_set_matches() -> None:
    ipsets = """
create a hash:ip family inet
create b hash:ip,port family inet
add b 10.88.1.2,udp:40002
create n hash:net family inet
add n 10.0.0.0/8
add n 10.88.0.0/16
"""
    ruleset = MANGLE("""
        -A PREROUTING -m set --match-set a src -j DROP
        -A PREROUTING -j SET --add-set a src
        -A PREROUTING -j SET --del-set b src,src
        -A PREROUTING -j SET --del-set n src
        -A INPUT -m set --match-set a src -j LOG
        -A INPUT -m set --match-set b src,src -j DROP
        -A INPUT -m set --match-set n src -j LOG
    """)
    expected = [
        H("mangle", "PREROUTING", 2, "CONTINUE"), H("mangle", "PREROUTING", 3, "CONTINUE"),
        H("mangle", "PREROUTING", 4, "CONTINUE"), P("mangle", "PREROUTING"),
        H("mangle", "INPUT", 1, "CONTINUE"), H("mangle", "INPUT", 3, "CONTINUE"), P("mangle", "INPUT"),
    ]
    check(scenario(ruleset, IN, ipsets=ipsets), expected, "ACCEPT")


def test_a_multicast_from_one_of_our_addresses_is_a_martian() -> None:
    # ip_mc_validate_source() → fib_validate_source(): a local source fails.
    pkt = {**IN, "src": "10.88.2.1", "dst": "224.0.0.1"}
    check(scenario(MANGLE(), pkt), [P("mangle", "PREROUTING")], None)


def test_pkttype_is_the_link_layer_type_even_after_dnat() -> None:
    ruleset = NAT("-A PREROUTING -d 255.255.255.255 -j DNAT --to-destination 10.88.1.1") + MANGLE(
        "-A INPUT -m pkttype --pkt-type broadcast -j DROP"
    )
    pkt = {**IN, "dst": "255.255.255.255"}
    expected = [P("mangle", "PREROUTING"), H("nat", "PREROUTING", 1, "ACCEPT"), H("mangle", "INPUT", 1, "DROP")]
    check(scenario(ruleset, pkt), expected, "DROP")


def test_mac_never_matches_on_lo_even_negated() -> None:
    # mac_mt(): lo is not ARPHRD_ETHER → false before the inversion.
    ruleset = MANGLE("-A INPUT -m mac ! --mac-source 02:00:00:00:00:aa -j LOG")
    pkt = {"proto": "udp", "src": "10.88.1.1", "sport": 40006, "dst": "10.88.2.1", "dport": 53}
    expected = [P("mangle", "OUTPUT"), P("mangle", "POSTROUTING"), P("mangle", "PREROUTING"), P("mangle", "INPUT")]
    check(scenario(ruleset, pkt), expected, "ACCEPT")


def test_ecn_bits_of_a_local_tcp_syn() -> None:
    # A TCP socket ignores the ECN bits of IP_TOS, so the kernel check sends
    # this SYN with a hand-built header; the engine keeps tos as given.
    ruleset = MANGLE("-A OUTPUT -m tos --tos 0x03/0xff -j LOG")
    pkt = {"proto": "tcp", "src": "192.0.2.1", "sport": 40007, "dst": "203.0.113.9", "dport": 80, "tos": 3}
    expected = [H("mangle", "OUTPUT", 1, "CONTINUE"), P("mangle", "OUTPUT"), P("mangle", "POSTROUTING")]
    check(scenario(ruleset, pkt), expected, "ACCEPT")


def test_hash_net_iface_the_most_specific_net_decides_whatever_its_iface() -> None:
    # mtype_test_cidrs() stops at the first CIDR whose net is present
    # (`multi` is bumped before the interface is compared).
    ipsets = """
create wide hash:net,iface family inet
add wide 10.0.0.0/8,eth0
create both hash:net,iface family inet
add both 10.0.0.0/8,eth0
add both 10.88.0.0/16,eth1
"""
    ruleset = MANGLE("""
        -A PREROUTING -m set --match-set wide src,src -j LOG
        -A PREROUTING -m set --match-set both src,src -j DROP
    """)
    expected = [H("mangle", "PREROUTING", 1, "CONTINUE"), P("mangle", "PREROUTING"), P("mangle", "INPUT")]
    check(scenario(ruleset, IN, ipsets=ipsets), expected, "ACCEPT")


def test_conntrack_matches_see_the_ct_template_in_raw() -> None:
    # After CT --zone, nf_ct_get() returns the template (ctinfo NEW, zero
    # tuple, status CONFIRMED): --ctstate NEW holds in raw already.
    ruleset = RAW("""
        -A PREROUTING -m conntrack --ctstate NEW -j DROP
        -A PREROUTING -j CT --zone 2
        -A PREROUTING -m conntrack --ctstate NEW -j LOG
        -A PREROUTING -m conntrack ! --ctorigsrc 10.0.0.0/8 -j LOG
        -A PREROUTING -m conntrack --ctstatus CONFIRMED -j LOG
        -A PREROUTING -m conntrack --ctproto udp -j DROP
    """)
    expected = [H("raw", "PREROUTING", n, "CONTINUE") for n in (2, 3, 4, 5)] + [P("raw", "PREROUTING")]
    check(scenario(ruleset, IN), expected, "ACCEPT")


def test_an_icmp_redirect_runs_through_output_before_forward() -> None:
    # ip_forward(): out by the interface it came in on, from an on-link
    # sender → ip_rt_send_redirect() before the FORWARD hook; the redirect
    # (to the sender) is locally generated and traverses OUTPUT first.
    ipsets = "create seen hash:ip family inet\n"
    ruleset = MANGLE("""
        -A OUTPUT -p icmp -j SET --add-set seen dst
        -A OUTPUT -p icmp -j A
        -A FORWARD -m set --match-set seen src -j LOG
        -A FORWARD -j A
        -A A -m statistic --mode nth --every 2 --packet 0 -j LOG
    """, users=("A",))
    pkt = {**IN, "dst": "10.88.1.77"}
    expected = [P("mangle", "PREROUTING"), H("mangle", "FORWARD", 1, "CONTINUE"), H("mangle", "FORWARD", 2, "JUMP:A"),
                P("mangle", "FORWARD"), P("mangle", "POSTROUTING")]
    check(scenario(ruleset, pkt, ipsets=ipsets), expected, "ACCEPT")


def test_bitmap_port_only_looks_up_tcp_and_udp_ports() -> None:
    ipsets = "create ports bitmap:port range 0-65535\nadd ports 80\ncreate ipports hash:ip,port family inet\nadd ipports 10.88.1.1,sctp:80\n"
    ruleset = MANGLE("""
        -A INPUT -m set --match-set ports dst -j DROP
        -A INPUT -m set --match-set ipports dst,dst -j LOG
    """)
    pkt = {"proto": "sctp", "src": "10.88.1.2", "sport": 40008, "dst": "10.88.1.1", "dport": 80, "in_iface": "eth0"}
    expected = [P("mangle", "PREROUTING"), H("mangle", "INPUT", 2, "CONTINUE"), P("mangle", "INPUT")]
    check(scenario(ruleset, pkt, ipsets=ipsets), expected, "ACCEPT")


def test_a_looped_back_entry_is_confirmed() -> None:
    ruleset = FILTER("""
        -A OUTPUT -m conntrack --ctstatus CONFIRMED -j DROP
        -A INPUT -m conntrack --ctstatus CONFIRMED -j LOG
    """)
    pkt = {"proto": "udp", "src": "10.88.1.1", "sport": 40009, "dst": "10.88.2.1", "dport": 53}
    expected = [P("filter", "OUTPUT"), H("filter", "INPUT", 1, "CONTINUE"), P("filter", "INPUT")]
    check(scenario(ruleset, pkt), expected, "ACCEPT")


@pytest.mark.parametrize(("dst", "delivered"), [("224.0.0.1", True), ("255.255.255.255", True), ("239.1.1.1", False)])
def test_an_unconfigured_source_may_reach_link_local_multicast(dst: str, delivered: bool) -> None:
    # ip_mc_validate_source(): 0.0.0.0 is allowed towards 224.0.0.0/24.
    pkt = {"proto": "udp", "src": "0.0.0.0", "sport": 68, "dst": dst, "dport": 67, "in_iface": "eth0"}
    expected = [P("mangle", "PREROUTING")] + ([P("mangle", "INPUT")] if delivered else [])
    check(scenario(MANGLE(), pkt), expected, "ACCEPT" if delivered else None)


def test_a_subnet_broadcast_source_passes_the_fast_source_check() -> None:
    # fib_validate_source() without rp_filter or ip rules only refuses one
    # of the host's own addresses (inet_lookup_ifaddr_rcu).
    pkt = {**IN, "src": "10.88.1.255"}
    check(scenario(MANGLE(), pkt), [P("mangle", "PREROUTING"), P("mangle", "INPUT")], "ACCEPT")


@pytest.mark.parametrize(("src", "dst"), [("0.1.2.3", "10.88.1.1"), ("10.88.1.2", "0.0.0.1")])
def test_only_0_0_0_0_is_the_zero_network(src: str, dst: str) -> None:
    # Linux 5.3 "Allow 0.0.0.0/8 as a valid address range": routing and
    # addrtype treat 0.x.y.z (other than 0.0.0.0) as ordinary unicast.
    ruleset = MANGLE("""
        -A PREROUTING -m addrtype --src-type BROADCAST -j DROP
        -A PREROUTING -m addrtype --dst-type BROADCAST -j DROP
        -A PREROUTING -m addrtype --src-type UNICAST -j LOG
    """)
    pkt = {**IN, "src": src, "dst": dst}
    after = [P("mangle", "INPUT")] if dst == "10.88.1.1" else [P("mangle", "FORWARD"), P("mangle", "POSTROUTING")]
    check(scenario(ruleset, pkt), [H("mangle", "PREROUTING", 3, "CONTINUE"), P("mangle", "PREROUTING")] + after, "ACCEPT")


def test_dnat_of_a_loopback_packet_to_a_remote_address_is_dropped() -> None:
    # ip_route_me_harder() → __mkroute_output(): 127.0.0.1 may not leave by eth2.
    ruleset = NAT("-A OUTPUT -j DNAT --to-destination 203.0.113.9")
    pkt = {"proto": "udp", "src": "127.0.0.1", "sport": 40010, "dst": "127.0.0.1", "dport": 53}
    check(scenario(ruleset, pkt), [H("nat", "OUTPUT", 1, "ACCEPT")], "DROP")


def test_a_loopback_source_to_a_remote_address_never_reaches_netfilter() -> None:
    pkt = {"proto": "udp", "src": "127.0.0.1", "sport": 40011, "dst": "203.0.113.9", "dport": 53}
    check(scenario(MANGLE(), pkt), [], "DROP")


def test_connlimit_counts_again_when_the_rule_is_met_again() -> None:
    # __nf_conncount_add(): within one jiffy the duplicate check is skipped,
    # so a second evaluation of the same rule counts the tuple twice.
    ruleset = RAW("""
        -A PREROUTING -j A
        -A PREROUTING -j A
        -A A -m connlimit --connlimit-upto 1 -j LOG
    """, users=("A",))
    expected = [H("raw", "PREROUTING", 1, "JUMP:A"), H("raw", "A", 1, "CONTINUE"), H("raw", "PREROUTING", 2, "JUMP:A"),
                P("raw", "PREROUTING")]
    check(scenario(ruleset, IN), expected, "ACCEPT")

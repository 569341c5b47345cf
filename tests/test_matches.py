from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from netviz.engine.context import EvalContext, MatchOutcome, Result, TraceState
from netviz.engine.host import Host
from netviz.engine.matches import MATCHES, evaluate_match, evaluate_rule
from netviz.engine.packet import Conntrack, Packet
from netviz.engine.parser import parse_ruleset
from netviz.engine.ruleset import Family, Match, Option, Rule, Ruleset

HOST = Host.from_dict(
    {
        "interfaces": [
            {"name": "eth0", "addrs": ["10.9.1.1/24"]},
            {"name": "eth1", "addrs": ["10.9.2.1/24", "10.9.2.7/24"]},
            {"name": "cali0a1b", "addrs": ["10.9.3.1/24"]},
        ],
        "routes": ["default via 10.9.2.254 dev eth1", "10.244.7.0/24 dev cali0a1b"],
    }
)
BUILTIN = {"INPUT", "OUTPUT", "FORWARD", "PREROUTING", "POSTROUTING"}


def load(lines: str, table: str = "filter", ipsets: str | None = None, family: Family = Family.IPV4) -> Ruleset:
    chains = []
    for line in lines.strip().splitlines():
        name = line.split()[1]
        if name not in chains:
            chains.append(name)
    head = "\n".join(f":{c} {'ACCEPT' if c in BUILTIN else '-'} [0:0]" for c in chains)
    return parse_ruleset(f"*{table}\n{head}\n{lines.strip()}\nCOMMIT\n", ipsets, family=family)


def pkt(**kw: Any) -> Packet:
    base: dict[str, Any] = {
        "family": Family.IPV4,
        "proto": 6,
        "src": "10.9.1.2",
        "dst": "10.244.7.5",
        "sport": 40000,
        "dport": 80,
        "in_iface": "eth0",
        "out_iface": "cali0a1b",
    }
    base.update(kw)
    for k in ("src", "dst"):
        base[k] = ipaddress.ip_address(base[k])
    if isinstance(base.get("tcp_flags"), str):
        letters = {"S": "SYN", "A": "ACK", "F": "FIN", "R": "RST", "P": "PSH", "U": "URG"}
        base["tcp_flags"] = frozenset(letters[c] for c in base["tcp_flags"])
    return Packet(**base)


def ct(state: str = "NEW", p: Packet | None = None, **kw: Any) -> Conntrack:
    p = p or pkt()
    fields: dict[str, Any] = {
        "orig_src": p.src, "orig_dst": p.dst, "orig_sport": p.sport, "orig_dport": p.dport,
        "reply_src": p.dst, "reply_dst": p.src, "reply_sport": p.dport, "reply_dport": p.sport,
    }
    fields.update(kw)
    return Conntrack(state=state, **fields)


def run(
    rule_text: str,
    packet: Packet | None = None,
    hook: str = "FORWARD",
    table: str = "filter",
    ipsets: str | None = None,
    host: Host = HOST,
    state: TraceState | None = None,
    family: Family = Family.IPV4,
) -> MatchOutcome:
    rs = load(rule_text, table, ipsets, family)
    rule = rs.rules()[0]
    return evaluate_rule(rule, ctx_for(rs, rule, packet or pkt(), hook, host, state))


def ctx_for(
    rs: Ruleset, rule: Rule, packet: Packet, hook: str = "FORWARD", host: Host = HOST, state: TraceState | None = None
) -> EvalContext:
    return EvalContext(
        ruleset=rs, host=host, hook=hook, table=rule.table, chain=rule.chain,
        rule_index=rule.index, packet=packet, state=state or TraceState(),
    )


M, N, U = Result.MATCH, Result.NOMATCH, Result.UNKNOWN


# -- basic criteria ---------------------------------------------------------------


def test_it_matches_source_with_prefix_and_reports_mismatch() -> None:
    assert run("-A FORWARD -s 10.9.1.0/24 -j ACCEPT").result is M
    out = run("-A FORWARD -s 10.9.5.0/24 -j ACCEPT")
    assert out.result is N
    assert out.clause == "-s 10.9.5.0/24"
    assert out.reason == "-s 10.9.5.0/24: source is 10.9.1.2"


def test_it_negates_destination() -> None:
    out = run("-A FORWARD ! -d 10.244.0.0/16 -j ACCEPT")
    assert out.result is N
    assert out.clause == "! -d 10.244.0.0/16"
    assert "10.244.7.5 is in 10.244.0.0/16" in out.reason
    assert run("-A FORWARD ! -d 10.245.0.0/16 -j ACCEPT").result is M


def test_it_honours_non_contiguous_dotted_masks() -> None:
    # 10.0.0.5/255.0.0.255: first and last octet matter only.
    rule = "-A FORWARD -s 10.0.0.2/255.0.0.255 -j ACCEPT"
    assert run(rule, pkt(src="10.77.33.2")).result is M
    assert run(rule, pkt(src="10.77.33.3")).result is N
    assert run(rule, pkt(src="11.77.33.2")).result is N


def test_it_matches_interfaces_with_plus_wildcard_and_negation() -> None:
    assert run("-A FORWARD -o cali+ -j ACCEPT").result is M
    assert run("-A FORWARD -i cali+ -j ACCEPT").result is N
    out = run("-A FORWARD -i eth1 -j ACCEPT")
    assert out.reason == "-i eth1: packet came in on eth0"
    out = run("-A FORWARD ! -i eth0 -j ACCEPT")
    assert (out.result, out.clause) == (N, "! -i eth0")
    assert run("-A FORWARD -i + -j ACCEPT").result is M


def test_input_interface_is_empty_for_local_packets_and_output_empty_before_routing() -> None:
    local = pkt(in_iface=None, out_iface="eth1")
    out = run("-A OUTPUT -i eth0 -j ACCEPT", local, hook="OUTPUT")
    assert out.result is N
    assert "no input interface" in out.reason
    assert run("-A OUTPUT ! -i eth0 -j ACCEPT", local, hook="OUTPUT").result is M
    # PREROUTING: no output interface yet even if the packet carries one.
    out = run("-A PREROUTING -o cali0a1b -j ACCEPT", pkt(), hook="PREROUTING", table="raw")
    assert out.result is N
    assert "no output interface at PREROUTING" in out.reason
    # POSTROUTING gets in=NULL from ip_output even for forwarded packets.
    assert run("-A POSTROUTING -i eth0 -j ACCEPT", pkt(), hook="POSTROUTING", table="nat").result is N
    # Looped-back packets come in on lo.
    lo_pkt = pkt(src="10.9.1.1", dst="10.9.1.1", in_iface="lo", out_iface=None)
    assert run("-A INPUT -i lo -j ACCEPT", lo_pkt, hook="INPUT").result is M


def test_it_matches_protocol_by_name_number_and_all() -> None:
    assert run("-A FORWARD -p 6 -j ACCEPT").result is M
    assert run("-A FORWARD -p all -j ACCEPT").result is M
    out = run("-A FORWARD -p udp -j ACCEPT")
    assert out.reason == "-p udp: packet is tcp"
    assert run("-A FORWARD ! -p udp -j ACCEPT").result is M


def test_unfragmented_packets_never_match_dash_f() -> None:
    assert run("-A FORWARD -f -j ACCEPT").result is N
    assert run("-A FORWARD ! -f -j ACCEPT").result is M


# -- tcp / udp ---------------------------------------------------------------------------


def test_dport_mismatch_reason_names_rule_and_packet_values() -> None:
    out = run("-A FORWARD -p tcp -m tcp --dport 443 -j ACCEPT")
    assert out.result is N
    assert out.clause == "--dport 443"
    assert out.reason == "--dport 443 ≠ 80"


@pytest.mark.parametrize(
    ("spec", "port", "expected"),
    [("1000:2000", 1500, M), ("1000:2000", 999, N), (":1024", 80, M), ("1024:", 80, N), ("1024:", 65535, M)],
)
def test_port_ranges(spec: str, port: int, expected: Result) -> None:
    assert run(f"-A FORWARD -p tcp -m tcp --sport {spec} -j ACCEPT", pkt(sport=port)).result is expected


def test_negated_port() -> None:
    out = run("-A FORWARD -p tcp -m tcp ! --dport 80 -j ACCEPT")
    assert (out.result, out.reason) == (N, "! --dport 80: dport is 80")


def test_tcp_flags_and_syn() -> None:
    rule = "-A FORWARD -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -j ACCEPT"
    assert run(rule, pkt(tcp_flags="S")).result is M
    out = run(rule, pkt(tcp_flags="SA"))
    assert out.result is N
    assert out.reason.endswith("packet flags are SYN,ACK")
    # --syn is saved in the expanded form; the parser may keep either.
    assert run("-A FORWARD -p tcp -m tcp --syn -j ACCEPT", pkt(tcp_flags="A")).result is N
    assert run("-A FORWARD -p tcp -m tcp ! --syn -j ACCEPT", pkt(tcp_flags="A")).result is M
    assert run("-A FORWARD -p tcp -m tcp --tcp-flags ALL NONE -j DROP", pkt(tcp_flags="")).result is M


def test_tcp_option_assumes_linux_syn_options() -> None:
    # A 60-byte SYN carries MSS, SACK_PERM, timestamps, NOP, wscale.
    out = run("-A FORWARD -p tcp -m tcp --tcp-option 2 -j ACCEPT")
    assert (out.result, out.assumed) == (M, True)
    out = run("-A FORWARD -p tcp -m tcp --tcp-option 2 -j ACCEPT", pkt(length=40))
    assert (out.result, out.assumed) == (N, True)


def test_udp_rule_does_not_match_tcp_packet() -> None:
    out = run("-A FORWARD -p udp -m udp --dport 53 -j ACCEPT", pkt(proto=17, dport=53))
    assert out.result is M
    out = run("-A FORWARD -p udp -m udp --dport 53 -j ACCEPT", pkt(dport=53))
    assert out.result is N
    assert out.clause == "-p udp"


# -- icmp ---------------------------------------------------------------------------


def test_icmp_types_numbers_names_codes_any() -> None:
    echo = pkt(proto=1, sport=None, dport=None, icmp_type=8, icmp_code=0)
    assert run("-A FORWARD -p icmp -m icmp --icmp-type 8 -j ACCEPT", echo).result is M
    assert run("-A FORWARD -p icmp -m icmp --icmp-type echo-request -j ACCEPT", echo).result is M
    assert run("-A FORWARD -p icmp -m icmp --icmp-type any -j ACCEPT", echo).result is M
    unreach = pkt(proto=1, sport=None, dport=None, icmp_type=3, icmp_code=3)
    assert run("-A FORWARD -p icmp -m icmp --icmp-type 3/3 -j ACCEPT", unreach).result is M
    out = run("-A FORWARD -p icmp -m icmp --icmp-type 3/1 -j ACCEPT", unreach)
    assert (out.result, out.reason) == (N, "--icmp-type 3/1: packet is type 3 code 3")
    assert run("-A FORWARD -p icmp -m icmp ! --icmp-type 8 -j ACCEPT", echo).result is N


def test_icmpv6_type() -> None:
    ns = Packet(
        family=Family.IPV6, proto=58, src=ipaddress.ip_address("fe80::1"),
        dst=ipaddress.ip_address("ff02::1:ff00:1"), icmp_type=135, icmp_code=0, in_iface="eth0",
    )
    rule = "-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type 135 -m hl --hl-eq 255 -j ACCEPT"
    assert run(rule, ns.with_(ttl=255), hook="INPUT", family=Family.IPV6).result is M
    out = run(rule, ns.with_(ttl=64), hook="INPUT", family=Family.IPV6)
    assert (out.result, out.reason) == (N, "--hl-eq 255: hop limit is 64")
    rule = "-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type neighbour-solicitation -j ACCEPT"
    assert run(rule, ns, hook="INPUT", family=Family.IPV6).result is M


# -- multiport / iprange -----------------------------------------------------------------


def test_multiport() -> None:
    assert run("-A FORWARD -p tcp -m multiport --dports 22,80,8000:8080 -j ACCEPT").result is M
    assert run("-A FORWARD -p tcp -m multiport --dports 22,8000:8080 -j ACCEPT", pkt(dport=8042)).result is M
    out = run("-A FORWARD -p tcp -m multiport --dports 22,443 -j ACCEPT")
    assert (out.result, out.reason) == (N, "--dports 22,443: dport is 80")
    assert run("-A FORWARD -p tcp -m multiport ! --dports 22,443 -j ACCEPT").result is M
    assert run("-A FORWARD -p tcp -m multiport --ports 40000 -j ACCEPT").result is M
    assert run("-A FORWARD -p tcp -m multiport --sports 1:1023 -j ACCEPT").result is N


def test_iprange() -> None:
    assert run("-A FORWARD -m iprange --src-range 10.9.1.1-10.9.1.10 -j ACCEPT").result is M
    out = run("-A FORWARD -m iprange --dst-range 10.244.7.10-10.244.7.20 -j ACCEPT")
    assert out.result is N
    assert out.reason == "--dst-range 10.244.7.10-10.244.7.20: destination is 10.244.7.5"


# -- conntrack / state ----------------------------------------------------------------------


def test_ctstate_reason_and_raw_table_invalid() -> None:
    new = pkt(ct=ct("NEW"))
    out = run("-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT", new)
    assert (out.result, out.clause) == (N, "--ctstate RELATED,ESTABLISHED")
    assert out.reason == "--ctstate RELATED,ESTABLISHED: state is NEW"
    est = pkt(ct=ct("ESTABLISHED"))
    assert run("-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT", est).result is M
    # raw PREROUTING: conntrack has not run → INVALID.
    raw = run("-A PREROUTING -m conntrack --ctstate INVALID -j DROP", pkt(), hook="PREROUTING", table="raw")
    assert raw.result is M
    raw = run("-A PREROUTING -m state --state NEW -j DROP", pkt(), hook="PREROUTING", table="raw")
    assert raw.result is N
    assert "conntrack has not seen the packet yet" in raw.reason


def test_untracked_state() -> None:
    p = pkt(ct=Conntrack(state="UNTRACKED"))
    assert run("-A FORWARD -m conntrack --ctstate UNTRACKED -j ACCEPT", p).result is M
    assert run("-A FORWARD -m state --state NEW -j ACCEPT", p).result is N
    # No entry: with --ctstate present the other options are not looked at.
    assert run("-A FORWARD -m conntrack --ctstate UNTRACKED --ctorigdst 1.2.3.4 -j ACCEPT", p).result is M
    assert run("-A FORWARD -m conntrack --ctorigdst 10.244.7.5 -j ACCEPT", p).result is N


def test_dnat_virtual_state_and_ctorigdst() -> None:
    # Packet after DNAT 10.96.0.10:53 → 10.244.7.5:8053.
    p = pkt(dport=8053)
    c = ct("NEW", p, orig_dst=ipaddress.ip_address("10.96.0.10"), orig_dport=53, dnat_done=True)
    p = p.with_(ct=c)
    assert run("-A FORWARD -m conntrack --ctstate DNAT -j ACCEPT", p).result is M
    out = run("-A FORWARD -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP", p)
    assert out.result is N
    assert out.reason.endswith("state is NEW+DNAT")
    assert run("-A FORWARD -m conntrack --ctorigdst 10.96.0.10/32 --ctorigdstport 53 -j ACCEPT", p).result is M
    out = run("-A FORWARD -m conntrack --ctorigdst 10.96.0.11 -j ACCEPT", p)
    assert (out.result, out.reason) == (N, "--ctorigdst 10.96.0.11: original destination is 10.96.0.10")
    plain = pkt(ct=ct("NEW"))
    assert run("-A FORWARD -m conntrack --ctstate DNAT -j ACCEPT", plain).result is N
    assert run("-A FORWARD -m conntrack --ctstate SNAT -j ACCEPT", plain).result is N


def test_ctdir_ctproto_ctstatus_ctexpire() -> None:
    p = pkt(ct=ct("ESTABLISHED"))
    assert run("-A FORWARD -m conntrack --ctdir ORIGINAL -j ACCEPT", p).result is M
    assert run("-A FORWARD -m conntrack --ctdir REPLY -j ACCEPT", p).result is N
    assert run("-A FORWARD -m conntrack --ctproto tcp -j ACCEPT", p).result is M
    assert run("-A FORWARD -m conntrack --ctproto udp -j ACCEPT", p).result is N
    assert run("-A FORWARD -m conntrack --ctstatus SEEN_REPLY -j ACCEPT", p).result is M
    assert run("-A FORWARD -m conntrack --ctstatus ASSURED -j ACCEPT", p).result is U
    assert run("-A FORWARD -m conntrack --ctstatus ASSURED -j ACCEPT", pkt(ct=ct("NEW"))).result is N
    assert run("-A FORWARD -m conntrack --ctexpire 10:100 -j ACCEPT", p).result is U


# -- mark / connmark ----------------------------------------------------------------------


def test_mark_with_mask() -> None:
    rule = "-A FORWARD -m mark --mark 0x4000/0x4000 -j ACCEPT"
    assert run(rule, pkt(mark=0x4001)).result is M
    out = run(rule, pkt(mark=0x1))
    assert (out.result, out.reason) == (N, "--mark 0x4000/0x4000: mark 0x1 & 0x4000 = 0x0")
    assert run("-A FORWARD -m mark ! --mark 0x4000/0x4000 -j ACCEPT", pkt(mark=0x1)).result is M
    assert run("-A FORWARD -m mark --mark 0x1 -j ACCEPT", pkt(mark=0x1)).result is M
    assert run("-A FORWARD -m mark --mark 0x1 -j ACCEPT", pkt(mark=0x3)).result is N


def test_connmark_needs_an_entry() -> None:
    rule = "-A FORWARD -m connmark --mark 0x1/0x1 -j ACCEPT"
    assert run(rule, pkt(ct=ct("ESTABLISHED", mark=0x3))).result is M
    assert run(rule, pkt(ct=ct("ESTABLISHED", mark=0x2))).result is N
    # connmark_mt(): no entry → false even when negated.
    out = run("-A FORWARD -m connmark ! --mark 0x1/0x1 -j ACCEPT", pkt())
    assert out.result is N
    assert "no conntrack entry" in out.reason


# -- addrtype ------------------------------------------------------------------------------


def test_addrtype_local_and_limit_iface() -> None:
    to_host = pkt(dst="10.9.2.1", out_iface=None)
    assert run("-A PREROUTING -m addrtype --dst-type LOCAL -j ACCEPT", to_host, hook="PREROUTING", table="nat").result is M
    out = run("-A PREROUTING -m addrtype --dst-type LOCAL -j ACCEPT", pkt(), hook="PREROUTING", table="nat")
    assert (out.result, out.reason) == (N, "--dst-type LOCAL: 10.244.7.5 is UNICAST")
    # 10.9.2.1 lives on eth1; the packet came in on eth0.
    out = run(
        "-A PREROUTING -m addrtype --dst-type LOCAL --limit-iface-in -j ACCEPT", to_host, hook="PREROUTING", table="nat"
    )
    assert (out.result, out.reason) == (N, "--dst-type LOCAL: 10.9.2.1 is UNICAST on eth0")
    own = pkt(dst="10.9.1.1", out_iface=None)
    assert run(
        "-A PREROUTING -m addrtype --dst-type LOCAL --limit-iface-in -j ACCEPT", own, hook="PREROUTING", table="nat"
    ).result is M
    assert run("-A FORWARD -m addrtype ! --src-type LOCAL -j ACCEPT").result is M
    bcast = pkt(proto=17, dst="10.9.1.255", out_iface=None)
    assert run("-A INPUT -m addrtype --dst-type BROADCAST -j DROP", bcast, hook="INPUT").result is M
    mcast = pkt(proto=17, dst="224.0.0.251", out_iface=None)
    assert run("-A INPUT -m addrtype --dst-type MULTICAST,BROADCAST -j DROP", mcast, hook="INPUT").result is M


def test_calico_masquerade_pair_of_addrtype_matches() -> None:
    # -o vxlan ! --src-type LOCAL --limit-iface-out, --src-type LOCAL
    local_src = pkt(src="10.9.1.1", in_iface=None, out_iface="eth1")
    rule = (
        "-A POSTROUTING -o eth1 -m addrtype ! --src-type LOCAL --limit-iface-out "
        "-m addrtype --src-type LOCAL -j MASQUERADE"
    )
    # 10.9.1.1 is local, but on eth0, not on the out interface eth1.
    assert run(rule, local_src, hook="POSTROUTING", table="nat").result is M
    own = pkt(src="10.9.2.1", in_iface=None, out_iface="eth1")
    out = run(rule, own, hook="POSTROUTING", table="nat")
    assert (out.result, out.clause) == (N, "! --src-type LOCAL")


# -- set ----------------------------------------------------------------------------------------

IPSETS = """create KUBE-CLUSTER-IP hash:ip,port family inet hashsize 1024 maxelem 65536
add KUBE-CLUSTER-IP 10.96.0.10,udp:53
add KUBE-CLUSTER-IP 10.96.0.10,tcp:53
add KUBE-CLUSTER-IP 10.96.0.1,tcp:443
create NETS hash:net family inet hashsize 1024 maxelem 65536
add NETS 10.0.0.0/8
add NETS 10.9.0.0/16 nomatch
add NETS 10.9.1.0/24
create PLAIN hash:ip family inet hashsize 1024 maxelem 65536
add PLAIN 10.9.1.2
create PORTS bitmap:port range 0-1024
add PORTS 22
add PORTS 80
create IFNET hash:net,iface family inet hashsize 1024 maxelem 65536
add IFNET 10.9.0.0/16,eth0
create LIST list:set size 8
add LIST PLAIN
add LIST NETS
create V6 hash:ip family inet6 hashsize 1024 maxelem 65536
add V6 fe80::1
create IPPORTIP hash:ip,port,ip family inet hashsize 1024 maxelem 65536
add IPPORTIP 10.244.7.5,tcp:80,10.9.1.2
create IPPORTNET hash:ip,port,net family inet hashsize 1024 maxelem 65536
add IPPORTNET 10.244.7.5,tcp:80,10.9.0.0/16
"""


def set_rule(spec: str, table: str = "filter") -> str:
    return f"-A FORWARD -m set {spec} -j ACCEPT"


def test_set_hash_ip_port() -> None:
    dns = pkt(proto=17, dst="10.96.0.10", dport=53)
    out = run(set_rule("--match-set KUBE-CLUSTER-IP dst,dst"), dns, ipsets=IPSETS)
    assert out.result is M
    out = run(set_rule("--match-set KUBE-CLUSTER-IP dst,dst"), pkt(dst="10.96.0.1", dport=80), ipsets=IPSETS)
    assert out.result is N
    assert out.reason == "--match-set KUBE-CLUSTER-IP dst,dst: 10.96.0.1,tcp:80 is not in KUBE-CLUSTER-IP"
    assert run(set_rule("! --match-set KUBE-CLUSTER-IP dst,dst"), dns, ipsets=IPSETS).result is N
    # One flag for a two-dimension set never matches (ip_set_test).
    assert run(set_rule("--match-set KUBE-CLUSTER-IP dst"), dns, ipsets=IPSETS).result is N


def test_set_hash_net_longest_prefix_and_nomatch() -> None:
    rule = set_rule("--match-set NETS src")
    assert run(rule, pkt(src="10.1.2.3"), ipsets=IPSETS).result is M
    # 10.9.1.0/24 is more specific than the nomatch 10.9.0.0/16.
    assert run(rule, pkt(src="10.9.1.2"), ipsets=IPSETS).result is M
    out = run(rule, pkt(src="10.9.5.5"), ipsets=IPSETS)
    assert out.result is N
    assert "nomatch element" in out.reason
    ret = set_rule("--match-set NETS src --return-nomatch")
    assert run(ret, pkt(src="10.9.5.5"), ipsets=IPSETS).result is M
    assert run(ret, pkt(src="10.1.2.3"), ipsets=IPSETS).result is N
    assert run(rule, pkt(src="192.168.1.1"), ipsets=IPSETS).result is N


def test_set_other_types() -> None:
    assert run(set_rule("--match-set PLAIN src"), ipsets=IPSETS).result is M
    assert run(set_rule("--match-set PLAIN dst"), ipsets=IPSETS).result is N
    assert run(set_rule("--match-set PORTS dst"), ipsets=IPSETS).result is M
    assert run(set_rule("--match-set PORTS dst"), pkt(dport=443), ipsets=IPSETS).result is N
    assert run(set_rule("--match-set IFNET src,src"), ipsets=IPSETS).result is M
    # dst flag on the iface dimension = output interface (cali0a1b).
    assert run(set_rule("--match-set IFNET src,dst"), ipsets=IPSETS).result is N
    assert run(set_rule("--match-set LIST src"), pkt(src="10.2.0.1"), ipsets=IPSETS).result is M
    assert run(set_rule("--match-set LIST src"), pkt(src="192.168.0.1"), ipsets=IPSETS).result is N
    assert run(set_rule("--match-set V6 src"), ipsets=IPSETS).result is N
    assert run(set_rule("--match-set IPPORTIP dst,dst,src"), ipsets=IPSETS).result is M
    assert run(set_rule("--match-set IPPORTIP dst,dst,dst"), ipsets=IPSETS).result is N
    assert run(set_rule("--match-set IPPORTNET dst,dst,src"), ipsets=IPSETS).result is M


def test_set_not_uploaded_is_unknown() -> None:
    out = run(set_rule("--match-set MISSING src"))
    assert out.result is U
    assert "MISSING is not in the uploaded sets" in out.reason


# -- statistic / recent / limit ---------------------------------------------------------------


def test_statistic_random_uses_forced_choice_and_records_it() -> None:
    rs = load("-A KUBE-SVC-X -m statistic --mode random --probability 0.50000000000 -j ACCEPT", table="nat")
    rule = rs.rules()[0]
    state = TraceState(seed=1)
    state.statistic_choices[("nat", "KUBE-SVC-X", 1)] = False
    out = evaluate_rule(rule, ctx_for(rs, rule, pkt(), "PREROUTING", state=state))
    assert (out.result, out.assumed) == (N, True)
    assert state.statistic_seen == [("nat", "KUBE-SVC-X", 1, 0.5, False)]
    state.statistic_choices[("nat", "KUBE-SVC-X", 1)] = True
    assert evaluate_rule(rule, ctx_for(rs, rule, pkt(), "PREROUTING", state=state)).result is M


def test_statistic_random_draws_reproducibly_from_the_seed() -> None:
    rs = load("-A X -m statistic --mode random --probability 0.5 -j ACCEPT", table="nat")
    rule = rs.rules()[0]

    def draws(seed: int) -> list[bool]:
        state = TraceState(seed=seed)
        return [
            evaluate_rule(rule, ctx_for(rs, rule, pkt(), "PREROUTING", state=state)).result is M for _ in range(40)
        ]

    first = draws(7)
    assert first == draws(7)
    assert 5 < sum(first) < 35  # both outcomes occur at p=0.5
    never = load("-A X -m statistic --mode random --probability 0.0 -j ACCEPT", table="nat")
    r0 = never.rules()[0]
    assert evaluate_rule(r0, ctx_for(never, r0, pkt(), "PREROUTING")).result is N


def test_statistic_nth_counts_like_the_kernel() -> None:
    # --every 3 --packet 0: first evaluated packet matches, then every 3rd.
    rs = load("-A X -m statistic --mode nth --every 3 --packet 0 -j ACCEPT", table="nat")
    rule = rs.rules()[0]
    state = TraceState()
    got = [evaluate_rule(rule, ctx_for(rs, rule, pkt(), "PREROUTING", state=state)).result is M for _ in range(6)]
    assert got == [True, False, False, True, False, False]
    rs = load("-A X -m statistic --mode nth --every 3 --packet 2 -j ACCEPT", table="nat")
    rule = rs.rules()[0]
    state = TraceState()
    got = [evaluate_rule(rule, ctx_for(rs, rule, pkt(), "PREROUTING", state=state)).result is M for _ in range(4)]
    assert got == [False, False, True, False]


def test_recent_set_then_rcheck() -> None:
    rs = load(
        "-A X -m recent --set --name KUBE-SEP-A --mask 255.255.255.255 --rsource -j ACCEPT\n"
        "-A X -m recent --rcheck --seconds 10800 --reap --name KUBE-SEP-A --mask 255.255.255.255 --rsource -j ACCEPT",
        table="nat",
    )
    set_rule_, check_rule = rs.rules()
    state = TraceState()
    out = evaluate_rule(check_rule, ctx_for(rs, check_rule, pkt(), "PREROUTING", state=state))
    assert (out.result, out.assumed) == (N, True)
    assert evaluate_rule(set_rule_, ctx_for(rs, set_rule_, pkt(), "PREROUTING", state=state)).result is M
    assert state.recent["KUBE-SEP-A"] == {"10.9.1.2"}
    out = evaluate_rule(check_rule, ctx_for(rs, check_rule, pkt(), "PREROUTING", state=state))
    assert (out.result, out.assumed) == (M, True)


def test_limit_is_assumed_not_exceeded() -> None:
    out = run("-A INPUT -m limit --limit 3/min --limit-burst 10 -j LOG", hook="INPUT")
    assert (out.result, out.assumed) == (M, True)
    assert out.reason == "assuming the rate limit is not exceeded (first packet)"
    above = "-A INPUT -m hashlimit --hashlimit-above 10/sec --hashlimit-name x --hashlimit-mode srcip -j DROP"
    out = run(above, hook="INPUT")
    assert (out.result, out.assumed) == (N, True)
    upto = "-A INPUT -m hashlimit --hashlimit-upto 10/sec --hashlimit-name x --hashlimit-mode srcip -j ACCEPT"
    assert run(upto, hook="INPUT").result is M


# -- the rest ----------------------------------------------------------------------------------


def test_comment_always_matches_and_summary_counts_criteria() -> None:
    out = run('-A FORWARD -s 10.9.1.2/32 -p tcp -m comment --comment "hi there" -m tcp --dport 80 -j ACCEPT')
    assert (out.result, out.assumed) == (M, False)
    assert out.reason == "all 3 criteria matched"
    assert run('-A FORWARD -m comment --comment "only a comment"').reason == "no criteria: matches every packet"


def test_physdev_never_matches_routed_packets_unless_negated() -> None:
    out = run("-A FORWARD -m physdev --physdev-in tap839737e6 -j ACCEPT")
    assert out.result is N
    assert "not bridged" in out.reason
    assert run("-A FORWARD -m physdev ! --physdev-is-bridged -j ACCEPT").result is M


def test_physdev_sees_the_bridge_ports_br_netfilter_recorded() -> None:
    bridged = pkt(extra=(("physin", "veth1a"), ("physout", "veth2b")))
    routed_up = pkt(extra=(("physin", "veth1a"),))
    assert run("-A FORWARD -m physdev --physdev-in veth1+ --physdev-out veth2b -j ACCEPT", bridged).result is M
    assert run("-A FORWARD -m physdev --physdev-is-bridged -j ACCEPT", bridged).result is M
    assert run("-A FORWARD -m physdev --physdev-is-bridged -j ACCEPT", routed_up).result is N
    assert run("-A FORWARD -m physdev --physdev-is-in ! --physdev-is-out -j ACCEPT", routed_up).result is M
    assert run("-A FORWARD -m physdev ! --physdev-in veth1a -j ACCEPT", bridged).result is N
    # xt_physdev: without an output port --physdev-out never matches, negated or not.
    assert run("-A FORWARD -m physdev --physdev-out veth9 -j ACCEPT", routed_up).result is N
    assert run("-A FORWARD -m physdev ! --physdev-out veth9 -j ACCEPT", routed_up).result is N
    assert run("-A FORWARD -m physdev --physdev-out veth9 -j ACCEPT", bridged).result is N


def test_mac_source() -> None:
    with_mac = pkt(extra=(("mac", "fa:16:3e:99:44:9e"),))
    rule = "-A FORWARD -m mac --mac-source FA:16:3E:99:44:9E -j ACCEPT"
    assert run(rule, with_mac).result is M
    # Not given: some other host's MAC, assumed.
    assert (run(rule, pkt()).result, run(rule, pkt()).assumed) == (N, True)
    assert run(rule, pkt(extra=(("mac", "00:00:00:00:00:01"),))).result is N


def test_pkttype_length_ttl_tos_dscp() -> None:
    assert run("-A FORWARD -m pkttype --pkt-type unicast -j ACCEPT").result is M
    assert run("-A INPUT -m pkttype --pkt-type broadcast -j ACCEPT", pkt(dst="10.9.1.255"), hook="INPUT").result is M
    assert run("-A FORWARD -m length --length 0:100 -j ACCEPT", pkt(length=60)).result is M
    assert run("-A FORWARD -m length --length 1000:1500 -j ACCEPT", pkt(length=60)).result is N
    assert run("-A FORWARD -m ttl --ttl-lt 10 -j ACCEPT", pkt(ttl=5)).result is M
    assert run("-A FORWARD -m ttl --ttl-gt 10 -j ACCEPT", pkt(ttl=5)).result is N
    assert run("-A FORWARD -m tos --tos 0x10/0x3f -j ACCEPT", pkt(tos=0x10)).result is M
    assert run("-A FORWARD -m dscp --dscp 0x2e -j ACCEPT", pkt(tos=0xB8)).result is M
    assert run("-A FORWARD -m dscp --dscp-class EF -j ACCEPT", pkt(tos=0xB8)).result is M
    assert run("-A FORWARD -m dscp --dscp-class AF11 -j ACCEPT", pkt(tos=0xB8)).result is N


def test_owner_only_for_local_packets() -> None:
    local = pkt(in_iface=None, out_iface="eth1", extra=(("uid", 1000),))
    assert run("-A OUTPUT -m owner --uid-owner 1000 -j ACCEPT", local, hook="OUTPUT").result is M
    assert run("-A OUTPUT -m owner --uid-owner 0 -j ACCEPT", local, hook="OUTPUT").result is N
    no_uid = pkt(in_iface=None, out_iface="eth1")
    # Not given: root, assumed (the sender of a scenario packet is root).
    out = run("-A OUTPUT -m owner --uid-owner 0 -j ACCEPT", no_uid, hook="OUTPUT")
    assert (out.result, out.assumed) == (M, True)
    # Forwarded: no socket → matches only if negated (owner_mt).
    assert run("-A POSTROUTING -m owner --uid-owner 0 -j ACCEPT", pkt(), hook="POSTROUTING", table="nat").result is N
    assert run("-A POSTROUTING -m owner ! --uid-owner 0 -j ACCEPT", pkt(), hook="POSTROUTING", table="nat").result is M


def test_rpfilter() -> None:
    ok = pkt(src="10.9.1.2", in_iface="eth0")
    assert run("-A PREROUTING -m rpfilter -j ACCEPT", ok, hook="PREROUTING", table="raw").result is M
    spoofed = pkt(src="10.244.7.9", in_iface="eth0")
    out = run("-A PREROUTING -m rpfilter -j ACCEPT", spoofed, hook="PREROUTING", table="raw")
    assert out.result is N
    assert out.reason.endswith("reverse route to 10.244.7.9 is via cali0a1b, packet came in on eth0")
    assert run("-A PREROUTING -m rpfilter --loose -j ACCEPT", spoofed, hook="PREROUTING", table="raw").result is M
    assert run("-A PREROUTING -m rpfilter --validmark --invert -j DROP", spoofed, hook="PREROUTING", table="raw").result is M
    assert run("-A PREROUTING -m rpfilter --invert -j DROP", ok, hook="PREROUTING", table="raw").result is N


def test_ipv6_extension_headers_are_absent() -> None:
    p6 = Packet(
        family=Family.IPV6, proto=6, src=ipaddress.ip_address("2001:db8::1"),
        dst=ipaddress.ip_address("2001:db8::2"), sport=1, dport=2, in_iface="eth0",
    )
    assert run("-A INPUT -m rt --rt-type 0 -j DROP", p6, hook="INPUT", family=Family.IPV6).result is N


def test_helper_and_unregistered_modules() -> None:
    assert run('-A FORWARD -m helper --helper "ftp" -j ACCEPT', pkt(ct=ct("NEW"))).result is N
    out = run("-A FORWARD -m time --timestart 09:00 -j ACCEPT")
    assert out.result is U
    assert out.clause.startswith("-m time")
    # A module the engine has never heard of (built by hand: the parser
    # may refuse unknown modules).
    rule = Rule("filter", "FORWARD", 1, 1, "-A FORWARD -m frobnicate --x 1", matches=(Match("frobnicate", (Option("--x", ("1",)),)),))
    rs = Ruleset()
    out = evaluate_rule(rule, ctx_for(rs, rule, pkt()))
    assert (out.result, out.reason) == (U, "netviz does not evaluate -m frobnicate")


def test_first_nomatch_wins_over_earlier_unknown_and_unknown_over_match() -> None:
    out = run("-A FORWARD -m time --timestart 09:00 -p tcp -m tcp --dport 443 -j ACCEPT")
    assert (out.result, out.clause) == (N, "--dport 443")
    out = run("-A FORWARD -p tcp -m time --timestart 09:00 -m tcp --dport 80 -j ACCEPT")
    assert out.result is U


def test_registry_evaluates_single_matches() -> None:
    for module in ("", "tcp", "udp", "conntrack", "mark", "set", "multiport", "addrtype", "comment"):
        assert module in MATCHES
    m = Match("tcp", (Option("--dport", ("80",)),))
    rs = Ruleset()
    rule = Rule("filter", "FORWARD", 1, 1, "")
    assert MATCHES["tcp"](m, ctx_for(rs, rule, pkt())).result is M
    assert evaluate_match(Match("tcp", (Option("--dport", ("81",)),)), ctx_for(rs, rule, pkt())).result is N


RANGE_SETS = """create R hash:ip family inet hashsize 1024 maxelem 65536
add R 10.9.1.1-10.9.1.5
add R 10.20.0.0/30
create RP hash:ip,port family inet hashsize 1024 maxelem 65536
add RP 10.244.7.5,tcp:70-90
add RP 10.244.7.5,icmp:echo-request
create NP hash:net,port family inet hashsize 1024 maxelem 65536
add NP 10.244.0.0/16,tcp:80
add NP 10.244.7.0/24,tcp:80 nomatch
create BIG hash:ip,port family inet hashsize 1024 maxelem 65536
add BIG 10.0.0.0/16,tcp:1-65535
create BIP bitmap:ip range 10.9.1.0-10.9.1.255
add BIP 10.9.1.2
"""


def test_set_elements_given_as_ranges_and_cidrs() -> None:
    assert run(set_rule("--match-set R src"), pkt(src="10.9.1.3"), ipsets=RANGE_SETS).result is M
    assert run(set_rule("--match-set R src"), pkt(src="10.9.1.6"), ipsets=RANGE_SETS).result is N
    assert run(set_rule("--match-set R src"), pkt(src="10.20.0.3"), ipsets=RANGE_SETS).result is M
    assert run(set_rule("--match-set RP dst,dst"), ipsets=RANGE_SETS).result is M
    assert run(set_rule("--match-set RP dst,dst"), pkt(dport=91), ipsets=RANGE_SETS).result is N
    assert run(set_rule("--match-set RP dst,dst"), pkt(proto=17), ipsets=RANGE_SETS).result is N
    echo = pkt(proto=1, sport=None, dport=None, icmp_type=8, icmp_code=0)
    assert run(set_rule("--match-set RP dst,dst"), echo, ipsets=RANGE_SETS).result is M
    # The /24 nomatch entry is more specific than the /16 one.
    assert run(set_rule("--match-set NP dst,dst"), ipsets=RANGE_SETS).result is N
    assert run(set_rule("--match-set NP dst,dst"), pkt(dst="10.244.9.1"), ipsets=RANGE_SETS).result is M
    # Too wide to expand: kept as a range entry.
    assert run(set_rule("--match-set BIG src,dst"), pkt(src="10.0.200.1"), ipsets=RANGE_SETS).result is M
    assert run(set_rule("--match-set BIG src,dst"), pkt(src="10.1.0.1"), ipsets=RANGE_SETS).result is N
    assert run(set_rule("--match-set BIP src"), ipsets=RANGE_SETS).result is M


def test_addrtype_ipv6_semantics() -> None:
    host6 = Host.from_dict(
        {"interfaces": [{"name": "eth0", "addrs": ["2001:db8:1::1/64"]}, {"name": "eth1", "addrs": ["2001:db8:2::1/64"]}],
         "routes": ["default via 2001:db8:2::fe dev eth1"]},
        Family.IPV6,
    )
    p6 = Packet(
        family=Family.IPV6, proto=6, src=ipaddress.ip_address("2001:db8:1::5"),
        dst=ipaddress.ip_address("2001:db8:1::1"), sport=1, dport=22, in_iface="eth0",
    )
    rule = "-A INPUT -m addrtype --dst-type LOCAL -j ACCEPT"
    assert run(rule, p6, hook="INPUT", host=host6, family=Family.IPV6).result is M
    # match_type6(): UNICAST and LOCAL must both hold when both are listed.
    rule = "-A INPUT -m addrtype --dst-type UNICAST,LOCAL -j ACCEPT"
    assert run(rule, p6, hook="INPUT", host=host6, family=Family.IPV6).result is M
    mc = p6.with_(dst=ipaddress.ip_address("ff02::1"))
    assert run(rule, mc, hook="INPUT", host=host6, family=Family.IPV6).result is N
    rule = "-A INPUT -m addrtype --dst-type LOCAL --limit-iface-in -j ACCEPT"
    other = p6.with_(dst=ipaddress.ip_address("2001:db8:2::1"))
    assert run(rule, other, hook="INPUT", host=host6, family=Family.IPV6).result is N

from __future__ import annotations

import ipaddress
from typing import Any

from netviz.engine.context import EvalContext, TargetOutcome, TraceState
from netviz.engine.host import Host
from netviz.engine.packet import Conntrack, Packet
from netviz.engine.parser import parse_ruleset
from netviz.engine.ruleset import Family, Rule, Ruleset, Target
from netviz.engine.targets import TARGETS, apply_target, mark_operation, parse_nat_range

ip = ipaddress.ip_address
HOST = Host.from_dict(
    {
        "interfaces": [
            {"name": "eth0", "addrs": ["10.9.1.1/24"]},
            {"name": "eth1", "addrs": ["192.168.7.1/24", "10.9.2.1/24"]},
            {"name": "docker0", "addrs": ["172.17.0.1/16"]},
            {"name": "bare"},
        ],
        "routes": ["default via 10.9.2.254 dev eth1"],
    }
)
BUILTIN = {"INPUT", "OUTPUT", "FORWARD", "PREROUTING", "POSTROUTING"}


def pkt(**kw: Any) -> Packet:
    base: dict[str, Any] = {
        "family": Family.IPV4, "proto": 6, "src": "10.9.1.2", "dst": "10.9.1.1",
        "sport": 40000, "dport": 8080, "in_iface": "eth0",
    }
    base.update(kw)
    for k in ("src", "dst"):
        base[k] = ip(base[k])
    p = Packet(**base)
    if "ct" not in kw:
        p = p.with_(ct=Conntrack(
            state="NEW", orig_src=p.src, orig_dst=p.dst, orig_sport=p.sport, orig_dport=p.dport,
            reply_src=p.dst, reply_dst=p.src, reply_sport=p.dport, reply_dport=p.sport,
        ))
    return p


def apply(rule_text: str, packet: Packet, hook: str, table: str = "nat", host: Host = HOST) -> TargetOutcome:
    chain = rule_text.split()[1]
    head = f":{chain} {'ACCEPT' if chain in BUILTIN else '-'} [0:0]"
    rs = parse_ruleset(f"*{table}\n{head}\n{rule_text}\nCOMMIT\n")
    rule = rs.rules()[0]
    ctx = EvalContext(rs, host, hook, table, chain, rule.index, packet, TraceState())
    return apply_target(rule, ctx)


def test_standard_verdicts() -> None:
    p = pkt()
    assert apply("-A INPUT -j ACCEPT", p, "INPUT", "filter").verdict == "ACCEPT"
    assert apply("-A INPUT -j DROP", p, "INPUT", "filter").verdict == "DROP"
    assert apply("-A INPUT -j RETURN", p, "INPUT", "filter").verdict == "RETURN"
    out = apply("-A INPUT -j NFQUEUE --queue-num 3", p, "INPUT", "filter")
    assert (out.verdict, out.assumed) == ("QUEUE", True)


def test_reject_is_drop_with_a_note() -> None:
    out = apply("-A INPUT -p tcp -j REJECT --reject-with tcp-reset", pkt(), "INPUT", "filter")
    assert (out.verdict, out.note) == ("DROP", "rejected with tcp-reset")
    out = apply("-A INPUT -j REJECT", pkt(), "INPUT", "filter")
    assert out.note == "rejected with icmp-port-unreachable"


def test_log_continues() -> None:
    out = apply('-A INPUT -j LOG --log-prefix "[UFW BLOCK] "', pkt(), "INPUT", "filter")
    assert (out.verdict, out.note, out.unknown) == ("CONTINUE", "logged with prefix '[UFW BLOCK] '", False)


def test_mark_set_xmark_as_saved_by_iptables() -> None:
    # kube-proxy's --or-mark 0x4000 is saved as --set-xmark 0x4000/0x4000.
    out = apply("-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000", pkt(mark=0x1), "PREROUTING")
    assert (out.verdict, out.packet.mark) == ("CONTINUE", 0x4001)
    assert out.note == "mark 0x1 → 0x4001"
    # --xor-mark 0x4000 → --set-xmark 0x4000/0x0: toggles the bit.
    out = apply("-A X -j MARK --set-xmark 0x4000/0x0", pkt(mark=0x4001), "POSTROUTING")
    assert out.packet.mark == 0x1
    # Calico's clear: --set-xmark 0x0/0x1b0000.
    out = apply("-A X -j MARK --set-xmark 0x0/0x1b0000", pkt(mark=0x1F0001), "FORWARD", "mangle")
    assert out.packet.mark == 0x040001


def test_mark_operation_mapping() -> None:
    def op(name: str, value: str) -> tuple[int, int]:
        from netviz.engine.ruleset import Option

        return mark_operation(Target("MARK", (Option(name, (value,)),)))

    assert op("--set-mark", "0x5") == (0x5, 0xFFFFFFFF)
    assert op("--set-mark", "0x5/0xf0") == (0x5, 0xF5)
    assert op("--or-mark", "0x4000") == (0x4000, 0x4000)
    assert op("--and-mark", "0xff") == (0, 0xFFFFFF00)
    assert op("--xor-mark", "0x4000") == (0x4000, 0)


def test_connmark_save_restore_set() -> None:
    p = pkt(mark=0x55)
    out = apply("-A X -j CONNMARK --save-mark --nfmask 0xffffffff --ctmask 0xffffffff", p, "PREROUTING", "mangle")
    assert out.packet.ct is not None and out.packet.ct.mark == 0x55
    assert out.packet.mark == 0x55
    with_ct = p.with_(mark=0, ct=Conntrack(state="ESTABLISHED", mark=0xAB))
    out = apply("-A X -j CONNMARK --restore-mark --nfmask 0xf --ctmask 0xff", with_ct, "PREROUTING", "mangle")
    # nfmark = (0 & ~0xf) ^ (0xab & 0xff) = 0xab
    assert out.packet.mark == 0xAB
    out = apply("-A X -j CONNMARK --set-xmark 0x10/0xf0", with_ct, "PREROUTING", "mangle")
    assert out.packet.ct is not None and out.packet.ct.mark == 0x1B
    # No entry (raw, untracked): nothing changes.
    out = apply("-A X -j CONNMARK --set-xmark 0x10/0xf0", p.with_(ct=None), "PREROUTING", "mangle")
    assert (out.verdict, out.packet.ct) == ("CONTINUE", None)


def test_ct_notrack_and_notrack_target() -> None:
    raw_pkt = pkt(ct=None)
    out = apply("-A PREROUTING -j CT --notrack", raw_pkt, "PREROUTING", "raw")
    assert out.verdict == "CONTINUE"
    assert out.packet.ct == Conntrack(state="UNTRACKED")
    out = apply("-A PREROUTING -j NOTRACK", raw_pkt, "PREROUTING", "raw")
    assert out.packet.ct is not None and out.packet.ct.state == "UNTRACKED"
    out = apply("-A PREROUTING -j CT --zone 2", raw_pkt, "PREROUTING", "raw")
    assert (out.verdict, out.note, out.packet.ct) == ("CONTINUE", "conntrack zone 2", None)
    # A looped-back packet already carries its entry: CT leaves it alone.
    tracked = pkt(in_iface="lo")
    out = apply("-A PREROUTING -j CT --notrack", tracked, "PREROUTING", "raw")
    assert out.packet.ct == tracked.ct
    assert "already has a conntrack entry" in out.note


def test_dnat_rewrites_packet_and_reply_tuple() -> None:
    p = pkt(dst="10.96.0.10", dport=53, proto=17)
    out = apply("-A KUBE-SEP-X -p udp -j DNAT --to-destination 10.244.7.5:8053", p, "PREROUTING")
    assert out.verdict == "ACCEPT"
    q = out.packet
    assert (q.dst, q.dport) == (ip("10.244.7.5"), 8053)
    assert q.ct is not None
    assert (q.ct.orig_dst, q.ct.orig_dport) == (ip("10.96.0.10"), 53)
    assert (q.ct.reply_src, q.ct.reply_sport, q.ct.dnat_done) == (ip("10.244.7.5"), 8053, True)
    assert q.ct.is_dnat
    assert out.note == "DNAT: destination 10.96.0.10:53 → 10.244.7.5:8053"
    assert not out.assumed


def test_dnat_address_only_and_ranges() -> None:
    out = apply("-A X -j DNAT --to-destination 1.1.1.1", pkt(), "PREROUTING")
    assert (out.packet.dst, out.packet.dport) == (ip("1.1.1.1"), 8080)
    out = apply("-A X -p tcp -j DNAT --to-destination 1.1.1.1-1.1.1.10:1025-2000", pkt(dport=80), "PREROUTING")
    assert (out.packet.dst, out.packet.dport, out.assumed) == (ip("1.1.1.1"), 1025, True)
    # A port already inside the range is kept (get_unique_tuple).
    out = apply("-A X -p tcp -j DNAT --to-destination 1.1.1.1:8000-9000", pkt(dport=8080), "PREROUTING")
    assert (out.packet.dport, out.assumed) == (8080, False)
    # /base: port = min + (orig - base) mod size.
    out = apply("-A X -p tcp -j DNAT --to-destination 1.1.1.1:1000-2000/1000", pkt(dport=1500), "PREROUTING")
    assert out.packet.dport == 1500
    out = apply("-A X -p tcp -j DNAT --to-destination 1.1.1.1:1000-1099/5000", pkt(dport=5010), "PREROUTING")
    assert out.packet.dport == 1010


def test_parse_nat_range_ipv6() -> None:
    assert parse_nat_range("[fd00::1]:80") == (ip("fd00::1"), ip("fd00::1"), 80, 80, None)
    assert parse_nat_range("fd00::1-fd00::9") == (ip("fd00::1"), ip("fd00::9"), None, None, None)
    assert parse_nat_range("1.2.3.4:ssh") == (ip("1.2.3.4"), ip("1.2.3.4"), 22, 22, None)


def test_snat_rewrites_source_and_keeps_port() -> None:
    p = pkt(dst="8.8.8.8", out_iface="eth1")
    out = apply("-A POSTROUTING -j SNAT --to-source 192.168.7.1", p, "POSTROUTING")
    q = out.packet
    assert (out.verdict, q.src, q.sport) == ("ACCEPT", ip("192.168.7.1"), 40000)
    assert q.ct is not None and (q.ct.reply_dst, q.ct.snat_done, q.ct.is_snat) == (ip("192.168.7.1"), True, True)
    out = apply("-A POSTROUTING -j SNAT --to-source 10.9.1.1-10.9.1.9", p, "POSTROUTING")
    assert (out.packet.src, out.assumed) == (ip("10.9.1.2"), False)  # already in range: kept


def test_masquerade_picks_out_interface_address_on_gateway_subnet() -> None:
    p = pkt(dst="8.8.8.8", out_iface="eth1")
    out = apply("-A POSTROUTING -o eth1 -j MASQUERADE", p, "POSTROUTING")
    # eth1 has 192.168.7.1 first, but the gateway 10.9.2.254 is on 10.9.2.0/24.
    assert (out.verdict, out.packet.src, out.packet.sport) == ("ACCEPT", ip("10.9.2.1"), 40000)
    assert out.note == "MASQUERADE: source 10.9.1.2:40000 → 10.9.2.1:40000 (address of eth1)"
    out = apply("-A POSTROUTING -j MASQUERADE --random-fully", p, "POSTROUTING")
    assert out.assumed and "random" in out.note
    out = apply("-A POSTROUTING -p tcp -j MASQUERADE --to-ports 1024-2000", p, "POSTROUTING")
    assert (out.packet.sport, out.assumed) == (1024, True)
    # inet_select_addr(): a device without an address borrows the first
    # universe-scope address of another device (lo's 127/8 is host scope).
    out = apply("-A POSTROUTING -j MASQUERADE", pkt(dst="8.8.8.8", out_iface="bare"), "POSTROUTING")
    assert (out.verdict, out.packet.src) == ("ACCEPT", ip("10.9.1.1"))
    lonely = Host.from_dict({"interfaces": [{"name": "bare"}]})
    out = apply("-A POSTROUTING -j MASQUERADE", pkt(dst="8.8.8.8", out_iface="bare"), "POSTROUTING", host=lonely)
    assert out.verdict == "DROP"
    assert out.note == "MASQUERADE: no IPv4 address to use on bare, packet dropped"
    # Looped back through lo: the original source is kept.
    out = apply("-A POSTROUTING -j MASQUERADE", pkt(src="10.9.1.1", dst="127.0.0.1", out_iface="lo"), "POSTROUTING")
    assert out.packet.src == ip("10.9.1.1")


def test_redirect() -> None:
    out = apply("-A PREROUTING -p tcp -j REDIRECT --to-ports 3128", pkt(dst="1.2.3.4", dport=80), "PREROUTING")
    assert (out.packet.dst, out.packet.dport) == (ip("10.9.1.1"), 3128)
    local = pkt(dst="1.2.3.4", dport=80, in_iface=None, out_iface="eth1")
    out = apply("-A OUTPUT -p tcp -j REDIRECT --to-ports 3128", local, "OUTPUT")
    assert (out.packet.dst, out.packet.dport) == (ip("127.0.0.1"), 3128)
    out = apply("-A PREROUTING -p tcp -j REDIRECT", pkt(dst="1.2.3.4", dport=80, in_iface="bare"), "PREROUTING")
    assert out.verdict == "DROP"


def test_netmap() -> None:
    out = apply("-A PREROUTING -j NETMAP --to 192.168.0.0/16", pkt(dst="10.5.6.7"), "PREROUTING")
    assert out.packet.dst == ip("192.168.6.7")
    out = apply("-A POSTROUTING -j NETMAP --to 172.20.0.0/24", pkt(src="10.5.6.7"), "POSTROUTING")
    assert out.packet.src == ip("172.20.0.7")


def test_header_rewriting_targets() -> None:
    out = apply("-A X -j DSCP --set-dscp 0x2e", pkt(tos=0x01), "FORWARD", "mangle")
    assert out.packet.tos == 0xB9
    out = apply("-A X -j TOS --set-tos 0x10/0x3f", pkt(tos=0xC0), "FORWARD", "mangle")
    assert out.packet.tos == 0xD0
    out = apply("-A X -j TTL --ttl-set 9", pkt(), "FORWARD", "mangle")
    assert out.packet.ttl == 9
    out = apply("-A X -j TTL --ttl-dec 1", pkt(ttl=64), "FORWARD", "mangle")
    assert out.packet.ttl == 63


def test_non_terminating_misc_and_unknown_targets() -> None:
    for text in ("-j CHECKSUM --checksum-fill", "-j TRACE", "-p tcp -j TCPMSS --clamp-mss-to-pmtu", "-j NFLOG --nflog-group 5"):
        out = apply(f"-A X {text}", pkt(), "FORWARD", "mangle")
        assert (out.verdict, out.unknown) == ("CONTINUE", False), text
    out = apply("-A X -j SET --add-set foo src", pkt(), "FORWARD", "mangle")
    assert out.verdict == "CONTINUE" and "added to set foo" in out.note
    rs = Ruleset()
    rule = Rule("filter", "X", 1, 1, "", target=Target("FROBNICATE"))
    ctx = EvalContext(rs, HOST, "FORWARD", "filter", "X", 1, pkt(), TraceState())
    out = apply_target(rule, ctx)
    assert (out.verdict, out.unknown, out.note) == ("CONTINUE", True, "netviz does not evaluate -j FROBNICATE")
    assert "TPROXY" in TARGETS


def test_ipv6_dnat_and_masquerade() -> None:
    host6 = Host.from_dict(
        {"interfaces": [{"name": "eth0", "addrs": ["2001:db8::1/64"]}], "routes": ["default via 2001:db8::fe dev eth0"]},
        Family.IPV6,
    )
    p = Packet(family=Family.IPV6, proto=6, src=ip("fd00::5"), dst=ip("2001:db9::1"), sport=1234, dport=80,
               in_iface="docker0", out_iface="eth0", ct=Conntrack(state="NEW"))
    out = apply("-A POSTROUTING -j MASQUERADE", p, "POSTROUTING", host=host6)
    assert out.packet.src == ip("2001:db8::1")

"""Reading `nft -a monitor trace` output, without a kernel: lines as seen on a
6.x kernel with iptables-nft 1.8.9."""

from __future__ import annotations

import pytest

from netviz.kernel.replay import (
    events_to_hops,
    parse_event,
    parse_handles,
    parse_packet_line,
    select_events,
)

LISTING = """table ip filter { # handle 1
\tchain INPUT { # handle 1
\t\ttype filter hook input priority filter; policy accept;
\t\tmeta l4proto tcp counter packets 0 bytes 0 log # handle 4
\t\tmeta l4proto tcp counter packets 0 bytes 0 comment "a # handle 99" accept # handle 5
\t}
\tchain X { # handle 2
\t\tcounter packets 0 bytes 0 return # handle 9
\t}
}
table ip nat { # handle 2
\tchain PREROUTING { # handle 1
\t\ttype nat hook prerouting priority dstnat; policy accept;
\t\ttcp dport 80 counter packets 0 bytes 0 dnat to 10.88.2.5:8080 # handle 5
\t}
}
"""

PKT = {"proto": "tcp", "src": "10.88.2.1", "sport": 40000, "dst": "10.88.1.1", "dport": 22}

LOOPBACK = """\
trace id d48e4aa6 inet netviz_trace out packet: oif "lo" ip saddr 127.0.0.1 ip daddr 127.0.0.254 ip protocol udp ip length 33 udp sport 7 udp dport 7 udp length 13
trace id d48e4aa6 inet netviz_trace out rule ip daddr 127.0.0.254 udp sport 7 udp dport 7 meta nftrace set 1 drop # handle 7 (verdict drop)
trace id 8b91bad0 inet netviz_trace out packet: oif "lo" ip saddr 10.88.2.1 ip daddr 10.88.1.1 ip protocol tcp ip length 60 tcp sport 40000 tcp dport 22 tcp flags == syn
trace id 8b91bad0 inet netviz_trace out rule meta nftrace set 1 # handle 8 (verdict continue)
trace id 8b91bad0 inet netviz_trace out policy accept
trace id 8b91bad0 ip filter OUTPUT packet: oif "lo" ip saddr 10.88.2.1 ip daddr 10.88.1.1 ip length 60 tcp sport 40000 tcp dport 22 tcp flags == syn
trace id 8b91bad0 ip filter OUTPUT policy accept
trace id 8b91bad0 inet netviz_trace fin_post packet: oif "lo" ip saddr 10.88.2.1 ip daddr 10.88.1.1 ip protocol tcp ip length 60 tcp sport 40000 tcp dport 22
trace id 8b91bad0 inet netviz_trace fin_post policy accept
trace id 29eb1e23 inet netviz_trace pre packet: iif "lo" @ll,0,112 0x800 ip saddr 10.88.2.1 ip daddr 10.88.1.1 ip protocol tcp ip length 60 tcp sport 40000 tcp dport 22
trace id 29eb1e23 inet netviz_trace pre rule meta nftrace set 1 # handle 6 (verdict continue)
trace id 29eb1e23 ip filter INPUT packet: iif "lo" @ll,0,112 0x800 ip saddr 10.88.2.1 ip daddr 10.88.1.1 ip length 60 tcp sport 40000 tcp dport 22
trace id 29eb1e23 ip filter INPUT rule meta l4proto tcp counter packets 0 bytes 0 log # handle 4 (verdict continue)
trace id 29eb1e23 ip filter INPUT rule meta l4proto tcp counter packets 0 bytes 0 comment "a # handle 99" accept # handle 5 (verdict accept)
trace id 29eb1e23 inet netviz_trace fin_in packet: iif "lo" ip saddr 10.88.2.1 ip daddr 10.88.1.1 ip protocol tcp ip length 60 tcp sport 40000 tcp dport 22
trace id 29eb1e23 inet netviz_trace fin_in policy accept
trace id 58d7389c inet netviz_trace out packet: oif "lo" ip saddr 10.88.1.1 ip daddr 10.88.2.1 ip protocol tcp ip length 40 tcp sport 22 tcp dport 40000 tcp flags == 0x14
trace id 58d7389c ip filter OUTPUT policy accept
trace id 29eb1e23 inet netviz_trace pre packet: iif "lo" ip saddr 127.0.0.1 ip daddr 127.0.0.254 ip protocol udp udp sport 7 udp dport 7
trace id 29eb1e23 ip filter INPUT policy drop
"""


def test_handles_map_to_positions_and_ignore_handles_inside_comments() -> None:
    handles = parse_handles(LISTING)
    assert handles[("ip", "filter", 4)] == ("INPUT", 1)
    assert handles[("ip", "filter", 5)] == ("INPUT", 2)
    assert handles[("ip", "filter", 9)] == ("X", 1)
    assert handles[("ip", "nat", 5)] == ("PREROUTING", 1)
    assert ("ip", "filter", 99) not in handles


def test_packet_lines_give_interfaces_addresses_ports() -> None:
    ev = parse_event(LOOPBACK.splitlines()[9])
    assert ev is not None and ev.kind == "packet"
    info = parse_packet_line(ev.body)
    assert info["iif"] == "lo"
    assert (info["saddr"], info["daddr"], info["sport"], info["dport"]) == ("10.88.2.1", "10.88.1.1", 40000, 22)
    assert info["proto"] == "tcp"


def test_loopback_delivery_is_followed_under_its_new_trace_id() -> None:
    events = [ev for ev in map(parse_event, LOOPBACK.splitlines()) if ev is not None]
    ours = select_events(events, PKT)
    ids = [ev.id for ev in ours]
    # the probe before, the RST reply (another id) and a reused id's later
    # probe packet are all left out
    assert set(ids) == {"8b91bad0", "29eb1e23"}
    assert not any("127.0.0.254" in ev.line for ev in ours)
    hops, verdict = events_to_hops(ours, parse_handles(LISTING))
    assert hops == (
        {"table": "filter", "chain": "OUTPUT", "policy": "ACCEPT"},
        {"table": "filter", "chain": "INPUT", "rule": 1, "verdict": "CONTINUE"},
        {"table": "filter", "chain": "INPUT", "rule": 2, "verdict": "ACCEPT"},
    )
    assert verdict == "ACCEPT"


def test_verdict_words() -> None:
    lines = [
        "trace id 1 ip filter INPUT packet: iif \"eth0\" ip saddr 10.88.2.1 ip daddr 10.88.1.1 tcp sport 40000 tcp dport 22",
        "trace id 1 ip filter INPUT rule counter packets 0 bytes 0 jump X # handle 4 (verdict jump X)",
        "trace id 1 ip filter X rule counter packets 0 bytes 0 return # handle 9 (verdict return)",
        "trace id 1 ip filter INPUT rule counter packets 0 bytes 0 goto X # handle 5 (verdict goto X)",
        "trace id 1 ip filter INPUT policy drop meta mark 0x00000010",
    ]
    events = [ev for ev in map(parse_event, lines) if ev is not None]
    hops, verdict = events_to_hops(events, parse_handles(LISTING))
    assert [h.get("verdict", h.get("policy")) for h in hops] == ["JUMP:X", "RETURN", "GOTO:X", "DROP"]
    assert verdict == "DROP"


def test_kernel_available_says_why_not(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    replay_module = sys.modules["netviz.kernel.replay"]
    monkeypatch.setattr(replay_module.os, "geteuid", lambda: 1000)
    assert replay_module._probe_kernel() == (
        False,
        "not root (network namespaces and netfilter need CAP_NET_ADMIN)",
    )
    monkeypatch.setattr(replay_module.os, "geteuid", lambda: 0)
    monkeypatch.setattr(replay_module.shutil, "which", lambda tool: None if tool == "ipset" else "/x")
    ok, why = replay_module._probe_kernel()
    assert not ok and why == "missing tools: ipset"

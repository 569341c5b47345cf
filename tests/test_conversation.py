"""Conversations in the engine: the conntrack table across packets, RELATED
answers, the fate in the sender's words, the JSON of `trace` (no kernel here;
tests/kernel/test_conversation_vs_kernel.py holds the kernel's word)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from netviz.engine.conversation import trace_conversation
from netviz.engine.parser import parse_ruleset
from netviz.engine.pipeline import PacketError, trace_dicts
from netviz.scenario import ScenarioError, scenario_from_dict
from netviz.testing.scenarios import HOST

CLIENT = "10.88.1.2"
SERVER = "10.88.2.5"
VIP = "198.18.0.10"
NAT = ":PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n"


def run(ruleset: str, packet: dict[str, Any], packets: list[dict[str, Any]]) -> Any:
    return trace_conversation(parse_ruleset(ruleset), HOST, packet, packets)


def tcp(dport: int = 80, dst: str = SERVER, **kw: Any) -> dict[str, Any]:
    return {"proto": "tcp", "src": CLIENT, "sport": 40000, "dst": dst, "dport": dport, "in_iface": "eth0", **kw}


FILTER = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"


def test_rst_answering_the_syn_deletes_the_entry() -> None:
    ruleset = FILTER + "-A FORWARD -m conntrack --ctstate NEW -j LOG\nCOMMIT\n"
    conv = run(ruleset, tcp(), [{"dir": "reply", "tcp_flags": "RA"}, {"dir": "reply", "tcp_flags": "RA"}])
    rst, again = conv.packets[1], conv.packets[2]
    assert rst.ctstate == "ESTABLISHED" and rst.ctdir == "REPLY"
    assert rst.entry == ""  # deleted at once
    # The next RST finds no entry and cannot start one.
    assert again.ctstate == "INVALID"


def test_second_datagram_before_a_reply_is_new_and_skips_nat() -> None:
    ruleset = ("*nat\n" + NAT + f"-A PREROUTING -d {VIP}/32 -p udp -j DNAT --to-destination {SERVER}\nCOMMIT\n"
               + FILTER + "COMMIT\n")
    conv = run(ruleset, {"proto": "udp", "src": CLIENT, "sport": 5000, "dst": VIP, "dport": 53, "in_iface": "eth0"},
               [{"dir": "original"}, {"dir": "reply"}, {"dir": "original"}])
    second, reply, third = conv.packets[1:]
    assert second.ctstate == "NEW" and second.ctdir == "ORIGINAL" and "CONFIRMED" in second.ctstatus
    assert not [h for h in second.trace.hops() if h["table"] == "nat"]
    assert second.trace.packet_out.header()["dst"] == SERVER  # the binding, applied without a chain
    assert reply.trace.packet_out.header()["src"] == VIP
    assert third.ctstate == "ESTABLISHED"
    assert conv.packets[3].entry == (
        f"udp 17 src={CLIENT} dst={VIP} sport=5000 dport=53 src={SERVER} dst={CLIENT} sport=53 dport=5000 mark=0 use=1"
    )


def test_reject_answers_with_a_related_icmp_error_un_dnated() -> None:
    ruleset = ("*nat\n" + NAT + f"-A PREROUTING -d {VIP}/32 -p udp -j DNAT --to-destination {SERVER}:5353\nCOMMIT\n"
               + FILTER + "-A FORWARD -p udp -j REJECT --reject-with icmp-port-unreachable\n"
               + "-A OUTPUT -m conntrack --ctstate RELATED -j LOG\nCOMMIT\n")
    conv = run(ruleset, {"proto": "udp", "src": CLIENT, "sport": 5000, "dst": VIP, "dport": 53, "in_iface": "eth0"},
               [{"dir": "reply"}])
    first = conv.packets[0].trace
    assert first.verdict == "DROP"
    assert first.hops()[-1] == {"table": "filter", "chain": "FORWARD", "rule": 1, "verdict": "DROP"}
    assert first.fate.target == "REJECT" and (first.fate.icmp_type, first.fate.icmp_code) == (3, 3)
    assert first.fate.summary.startswith("connection refused")
    error = first.related
    assert error.ctstate() == "RELATED"
    # No nat chain runs for it; filter OUTPUT sees it RELATED.
    assert error.hops() == [{"table": "filter", "chain": "OUTPUT", "rule": 1, "verdict": "CONTINUE"},
                            {"table": "filter", "chain": "OUTPUT", "policy": "ACCEPT"}]
    out = error.packet_dict()["packet_out"]
    assert out["src"] == VIP and out["dst"] == CLIENT  # un-DNATed at POSTROUTING
    assert out["quoted"]["dst"] == VIP and out["quoted"]["dport"] == 53
    assert conv.packets[1].not_sent == "packet 1 was dropped"


def test_tcp_reset_is_related_and_runs_nat_postrouting() -> None:
    ruleset = ("*nat\n" + NAT + f"-A PREROUTING -d {VIP}/32 -p tcp -j DNAT --to-destination {SERVER}:8080\nCOMMIT\n"
               + FILTER + "-A FORWARD -p tcp -j REJECT --reject-with tcp-reset\nCOMMIT\n")
    trace = trace_dicts(parse_ruleset(ruleset), HOST, tcp(dst=VIP), "ipv4")
    assert trace.fate.summary.startswith("connection refused")
    rst = trace.related
    # Seen in the kernel: the RST carries the SYN's unconfirmed entry (RELATED,
    # reply direction); its SRC binding is not set yet, so nat POSTROUTING runs.
    assert rst.hops() == [{"table": "filter", "chain": "OUTPUT", "policy": "ACCEPT"},
                          {"table": "nat", "chain": "POSTROUTING", "policy": "ACCEPT"}]
    assert rst.packet_out.header() == {"src": VIP, "dst": CLIENT, "sport": 80, "dport": 40000}


def test_drop_fate_and_host_prohibited() -> None:
    ruleset = FILTER + "-A FORWARD -p tcp --dport 22 -j REJECT --reject-with icmp-host-prohibited\n" \
        "-A FORWARD -p tcp --dport 23 -j DROP\nCOMMIT\n"
    prohibited = trace_dicts(parse_ruleset(ruleset), HOST, tcp(22), "ipv4").fate
    assert prohibited.summary.startswith("no route to host") and prohibited.icmp_code == 10
    dropped = trace_dicts(parse_ruleset(ruleset), HOST, tcp(23), "ipv4").fate
    assert dropped.target == "DROP" and "timeout" in dropped.summary


def test_local_to_local_conversation_over_lo() -> None:
    ruleset = ("*nat\n" + NAT + "-A OUTPUT -d 198.18.0.10/32 -p tcp -j REDIRECT --to-ports 8080\nCOMMIT\n"
               + FILTER + "-A INPUT -m conntrack --ctstate ESTABLISHED -j LOG\nCOMMIT\n")
    conv = run(ruleset, {"proto": "tcp", "src": "10.88.1.1", "sport": 40000, "dst": VIP, "dport": 80},
               [{"dir": "reply", "tcp_flags": "SA"}])
    reply = conv.packets[1].trace
    assert reply.path == "output-local"
    # un-DNAT of the reply to a local client happens at nat INPUT, after filter INPUT.
    assert reply.packet_out.header()["src"] == VIP
    assert {"table": "filter", "chain": "INPUT", "rule": 1, "verdict": "CONTINUE"} in reply.hops()


def test_recent_and_nth_state_carry_across_packets() -> None:
    ruleset = FILTER + ("-A FORWARD -m recent --rcheck --name seen -j LOG\n"
                        "-A FORWARD -m recent --set --name seen\n"
                        "-A FORWARD -m statistic --mode nth --every 2 --packet 1 -j LOG\nCOMMIT\n")
    conv = run(ruleset, {"proto": "udp", "src": CLIENT, "sport": 5000, "dst": SERVER, "dport": 53, "in_iface": "eth0"},
               [{"dir": "original"}])
    first, second = conv.packets[0].trace.hops(), conv.packets[1].trace.hops()
    assert {"table": "filter", "chain": "FORWARD", "rule": 1, "verdict": "CONTINUE"} not in first
    assert {"table": "filter", "chain": "FORWARD", "rule": 1, "verdict": "CONTINUE"} in second
    assert {"table": "filter", "chain": "FORWARD", "rule": 3, "verdict": "CONTINUE"} in second


def test_packets_are_validated() -> None:
    base = {"ruleset": FILTER + "COMMIT\n", "host": HOST, "packet": tcp()}
    with pytest.raises(ScenarioError, match="dir"):
        scenario_from_dict({**base, "packets": [{"dir": "sideways"}]})
    with pytest.raises(ScenarioError, match="unknown key 'dst'"):
        scenario_from_dict({**base, "packets": [{"dir": "reply", "dst": "1.2.3.4"}]})
    with pytest.raises(PacketError):
        run(FILTER + "COMMIT\n", tcp(), [{"dir": "reply", "tcp_flags": "SX"}])


def test_trace_command_prints_packets(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ruleset = FILTER.replace(":FORWARD ACCEPT", ":FORWARD DROP") + \
        "-A FORWARD -m conntrack --ctstate NEW -j ACCEPT\nCOMMIT\n"
    path = tmp_path / "conv.json"
    path.write_text(json.dumps({"ruleset": ruleset, "host": HOST, "packet": tcp(),
                                "packets": [{"dir": "reply", "tcp_flags": "SA"}, {"dir": "original", "tcp_flags": "A"}]}))
    call_command("trace", str(path), "--json")
    out = json.loads(capsys.readouterr().out)
    assert out["verdict"] == "ACCEPT" and out["ctstate"] == "NEW"
    reply, ack = out["packets"]
    assert reply["dir"] == "reply" and reply["verdict"] == "DROP" and reply["ctstate"] == "ESTABLISHED"
    assert reply["hops"] == [{"table": "filter", "chain": "FORWARD", "policy": "DROP"}]
    assert reply["fate"]["summary"].startswith("the client sees a timeout")
    assert ack == {"dir": "original", "sent": False, "not_sent": "packet 2 was dropped", "hops": [],
                   "verdict": None, "packet_out": None, "ctstate": None, "spec": {"dir": "original", "tcp_flags": "A"}}
    call_command("trace", str(path))
    text = capsys.readouterr().out
    assert "packet 3 (original)" in text and "not sent: packet 2 was dropped" in text


def test_echo_to_oneself_finds_its_entry_by_icmp_type() -> None:
    # Random conversation 9: request and reply have the same addresses; the
    # reply is ESTABLISHED only if the lookup tells them apart by type.
    ruleset = FILTER + "-A INPUT -m conntrack --ctstate ESTABLISHED -j LOG\nCOMMIT\n"
    conv = run(ruleset, {"proto": "icmp", "src": "192.0.2.1", "dst": "192.0.2.1"},
               [{"dir": "reply", "icmp_type": 0}, {"dir": "original", "icmp_type": 8}])
    assert [p.ctstate for p in conv.packets] == ["NEW", "ESTABLISHED", "ESTABLISHED"]
    assert [p.ctdir for p in conv.packets] == ["ORIGINAL", "REPLY", "ORIGINAL"]


def test_ctproto_reads_the_entry_not_the_icmp_error() -> None:
    # Random conversation 2/213: an ICMP error RELATED to a UDP connection
    # has --ctproto udp (the entry's tuple), not icmp.
    ruleset = (FILTER + "-A FORWARD -p udp -j REJECT\n"
               "-A OUTPUT -m conntrack --ctproto icmp -j LOG\n-A OUTPUT -m conntrack --ctproto udp -j LOG\nCOMMIT\n")
    conv = run(ruleset, {"proto": "udp", "src": CLIENT, "sport": 5000, "dst": SERVER, "dport": 53, "in_iface": "eth0"},
               [])
    assert conv.first.related.hops()[0] == {"table": "filter", "chain": "OUTPUT", "rule": 2, "verdict": "CONTINUE"}


def test_the_hosts_answers_have_no_owner() -> None:
    # Random conversations 2/216, 2/233, 2/241: an RST from nf_send_reset has
    # no socket; an ICMP error leaves by the kernel's ICMP socket, which
    # exists but has no file, so no uid/gid owns it.
    ruleset = (FILTER + "-A FORWARD -p tcp --dport 80 -j REJECT --reject-with tcp-reset\n"
               "-A FORWARD -p tcp -j REJECT\n"
               "-A OUTPUT -m owner --uid-owner 0 -j LOG\n-A OUTPUT -m owner ! --gid-owner 0 -j LOG\n"
               "-A OUTPUT -m owner --socket-exists -j LOG\nCOMMIT\n")
    rst = trace_dicts(parse_ruleset(ruleset), HOST, tcp(80), "ipv4").related
    icmp = trace_dicts(parse_ruleset(ruleset), HOST, tcp(81), "ipv4").related
    assert [h.get("rule") for h in rst.hops()] == [2, None]
    assert [h.get("rule") for h in icmp.hops()] == [2, 3, None]


def test_a_syn_over_lo_keeps_its_lo_mss_on_the_way_in() -> None:
    # Random conversation 2/171: the SYN and SYN-ACK of a local connection
    # over lo carry MSS 65495 in PREROUTING/INPUT too, not 1460.
    ruleset = ("*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
               "-A PREROUTING -p tcp -m tcpmss --mss 1000:1500 -j LOG\n"
               "-A PREROUTING -p tcp -m tcpmss --mss 65495 -j LOG\nCOMMIT\n")
    conv = run(ruleset, {"proto": "tcp", "src": "127.0.0.1", "sport": 18528, "dst": "127.0.0.1", "dport": 8080},
               [{"dir": "reply", "tcp_flags": "SA"}])
    for cp in conv.packets:
        assert {"table": "raw", "chain": "PREROUTING", "rule": 2, "verdict": "CONTINUE"} in cp.trace.hops()
        assert {"table": "raw", "chain": "PREROUTING", "rule": 1, "verdict": "CONTINUE"} not in cp.trace.hops()


def test_connbytes_counts_every_packet_of_the_connection() -> None:
    # Random conversation 2/171: -m connbytes reads the entry's accounting,
    # which grows with each packet, each way.
    ruleset = (FILTER + "-A INPUT -m connbytes --connbytes 2:100 --connbytes-dir reply --connbytes-mode bytes -j LOG\n"
               "-A INPUT -m connbytes --connbytes 2 --connbytes-dir original --connbytes-mode packets -j LOG\nCOMMIT\n")
    conv = run(ruleset, {"proto": "tcp", "src": "127.0.0.1", "sport": 18528, "dst": "127.0.0.1", "dport": 8080},
               [{"dir": "reply", "tcp_flags": "SA"}, {"dir": "original", "tcp_flags": "A"}])
    rules = [[h.get("rule") for h in cp.trace.hops() if h["chain"] == "INPUT"] for cp in conv.packets]
    assert rules == [[None], [1, None], [1, 2, None]]


def test_connlimit_counts_a_connection_once_across_packets() -> None:
    # Random conversation 2/124: a later packet of a counted connection adds
    # nothing; evaluating the rule twice in one traversal adds it twice.
    ruleset = FILTER + "-A FORWARD -m connlimit --connlimit-above 1 -j LOG\nCOMMIT\n"
    conv = run(ruleset, {"proto": "udp", "src": CLIENT, "sport": 5000, "dst": SERVER, "dport": 53, "in_iface": "eth0"},
               [{"dir": "original"}, {"dir": "original"}])
    assert [len(cp.trace.hops()) for cp in conv.packets] == [1, 1, 1]
    twice = FILTER + ("-A FORWARD -j C\n-A FORWARD -j C\n-A C -m connlimit --connlimit-above 1 -j LOG\nCOMMIT\n")
    twice = twice.replace(":OUTPUT ACCEPT [0:0]\n", ":OUTPUT ACCEPT [0:0]\n:C - [0:0]\n")
    conv = run(twice, {"proto": "udp", "src": CLIENT, "sport": 5000, "dst": SERVER, "dport": 53, "in_iface": "eth0"},
               [])
    assert [h.get("rule") for h in conv.first.hops() if h["chain"] == "C"] == [1]


def test_a_local_echo_reply_has_no_owner() -> None:
    # Random conversation 2/412: the host's own echo reply leaves by the
    # kernel's ICMP socket; `-m owner --gid-owner 0` does not match it.
    ruleset = FILTER + "-A OUTPUT -m owner --gid-owner 0 -j LOG\nCOMMIT\n"
    conv = run(ruleset, {"proto": "icmp", "src": CLIENT, "dst": "10.88.1.1", "in_iface": "eth0"},
               [{"dir": "reply", "icmp_type": 0}])
    assert conv.packets[1].trace.hops() == [{"table": "filter", "chain": "OUTPUT", "policy": "ACCEPT"}]

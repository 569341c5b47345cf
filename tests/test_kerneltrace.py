"""Parsing the kernel's own trace output (engine/kerneltrace.py).

The sample texts below were captured from a 6.x kernel in a network namespace
(xtables-monitor 1.8.9, nft 1.0.x, nf_log_syslog); tests/kernel/
test_trace_import_capture.py captures fresh ones on every run.
"""

from __future__ import annotations

import pytest

from netviz.engine.context import Result
from netviz.engine.dot_trace import chain_dot, flow_dot
from netviz.engine.kerneltrace import (
    KernelTraceError,
    TraceFormat,
    detect_format,
    group_packets,
    import_trace,
    packet_hops,
    parse_kernel_trace,
    to_trace,
)
from netviz.engine.parser import parse_ruleset
from netviz.engine.trace import StepKind

RULES = """*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A OUTPUT -p udp -j TRACE
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:X - [0:0]
-A OUTPUT -p tcp -j ACCEPT
-A OUTPUT -j X
-A X -p udp -m udp --dport 5 -j DROP
-A X -p udp -j MARK --set-xmark 0x7/0xffffffff
-A X -p udp -m udp --dport 9 -j RETURN
COMMIT
"""

XT = """\
PACKET: 2 55f22595 OUT=lo SRC=127.0.0.1 DST=127.0.0.1 LEN=29 TOS=0x0 TTL=64 ID=55248 DF SPORT=58930 DPORT=9
 TRACE: 2 55f22595 raw:OUTPUT:rule:0x3:CONTINUE  -4 -t raw -A OUTPUT -p udp -j TRACE
 TRACE: 2 55f22595 raw:OUTPUT:policy:ACCEPT
PACKET: 2 55f22595 OUT=lo SRC=127.0.0.1 DST=127.0.0.1 LEN=29 TOS=0x0 TTL=64 ID=55248 DF SPORT=58930 DPORT=9
 TRACE: 2 55f22595 filter:OUTPUT:rule:0x6:JUMP:X  -4 -t filter -A OUTPUT -j X
 TRACE: 2 55f22595 filter:X:rule:0x8:CONTINUE  -4 -t filter -A X -p udp -j MARK --set-xmark 0x7/0xffffffff
 TRACE: 2 55f22595 filter:X:rule:0x9:0xfffffffb  -4 -t filter -A X -p udp -m udp --dport 9 -j RETURN
 TRACE: 2 55f22595 filter:OUTPUT:policy:ACCEPT
PACKET: 2 cb9c96c1 IN=lo LOOPBACK SRC=127.0.0.1 DST=127.0.0.1 LEN=29 TOS=0x0 TTL=64 ID=55248 DF SPORT=58930 DPORT=9 MARK=0x7
 TRACE: 2 cb9c96c1 raw:PREROUTING:policy:ACCEPT
PACKET: 2 cb9c96c1 IN=lo LOOPBACK SRC=127.0.0.1 DST=127.0.0.1 LEN=29 TOS=0x0 TTL=64 ID=55248 DF SPORT=58930 DPORT=9 MARK=0x7
 TRACE: 2 cb9c96c1 filter:INPUT:policy:ACCEPT
PACKET: 2 733993b2 OUT=lo SRC=127.0.0.1 DST=127.0.0.1 LEN=29 TOS=0x0 TTL=64 ID=55119 DF SPORT=47614 DPORT=5
 TRACE: 2 733993b2 raw:OUTPUT:rule:0x3:CONTINUE  -4 -t raw -A OUTPUT -p udp -j TRACE
 TRACE: 2 733993b2 raw:OUTPUT:policy:ACCEPT
PACKET: 2 733993b2 OUT=lo SRC=127.0.0.1 DST=127.0.0.1 LEN=29 TOS=0x0 TTL=64 ID=55119 DF SPORT=47614 DPORT=5
 TRACE: 2 733993b2 filter:OUTPUT:rule:0x6:JUMP:X  -4 -t filter -A OUTPUT -j X
 TRACE: 2 733993b2 filter:X:rule:0x7:DROP  -4 -t filter -A X -p udp -m udp --dport 5 -j DROP
"""

LEGACY = """\
[ 1085.941971] TRACE: raw:OUTPUT:policy:3 IN= OUT=lo SRC=127.0.0.1 DST=127.0.0.1 LEN=29 TOS=0x00 PREC=0x00 TTL=64 ID=64628 DF PROTO=UDP SPT=60685 DPT=9 LEN=9 UID=0 GID=0
[ 1085.941982] TRACE: filter:OUTPUT:rule:2 IN= OUT=lo SRC=127.0.0.1 DST=127.0.0.1 LEN=29 TOS=0x00 PREC=0x00 TTL=64 ID=64628 DF PROTO=UDP SPT=60685 DPT=9 LEN=9 UID=0 GID=0
[ 1085.941983] some other kernel message
[ 1085.941986] TRACE: filter:X:rule:1 IN= OUT=lo SRC=127.0.0.1 DST=127.0.0.1 LEN=29 TOS=0x00 PREC=0x00 TTL=64 ID=64628 DF PROTO=UDP SPT=60685 DPT=9 LEN=9 UID=0 GID=0
Nov 25 17:40:29 node kernel: TRACE: nat:PREROUTING:rule:1 IN=eth0 OUT= MAC=02:0a:00:00:00:00:02:0b:00:00:00:00:08:00 SRC=10.0.0.2 DST=10.0.0.1 LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=4242 DF PROTO=TCP SPT=40000 DPT=80 WINDOW=64240 RES=0x00 SYN URGP=0
Nov 25 17:40:29 node kernel: TRACE: filter:INPUT:policy:1 IN=eth0 OUT= MAC=02:0a:00:00:00:00:02:0b:00:00:00:00:08:00 SRC=10.0.0.2 DST=10.0.0.1 LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=4242 DF PROTO=TCP SPT=40000 DPT=8080 WINDOW=64240 RES=0x00 SYN URGP=0 MARK=0x2
"""

LEGACY_RULES = """*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:X - [0:0]
-A OUTPUT -p tcp -j ACCEPT
-A OUTPUT -j X
-A X -p udp -j DROP
COMMIT
"""

NFT = """\
trace id 55f2a73a ip filter OUTPUT packet: oif "lo" ip saddr 127.0.0.1 ip daddr 127.0.0.1 ip dscp cs0 ip ecn not-ect ip ttl 64 ip id 55249 ip length 29 udp sport 58930 udp dport 11 udp length 9 @th,64,8 0x78
trace id 55f2a73a ip filter OUTPUT rule counter packets 3 bytes 115 jump X (verdict jump X)
trace id 55f2a73a ip filter X rule meta l4proto udp counter packets 1 bytes 29 meta mark set 0x7 (verdict continue)
trace id 55f2a73a ip filter OUTPUT policy accept meta mark 0x00000007
trace id 0badcafe inet netviz_trace pre policy accept
"""


def test_it_detects_each_format() -> None:
    assert detect_format(XT) is TraceFormat.XTABLES_MONITOR
    assert detect_format(LEGACY) is TraceFormat.KERNEL_LOG
    assert detect_format(NFT) is TraceFormat.NFT_MONITOR
    assert detect_format("hello\nworld\n") is None


def test_it_refuses_text_without_trace_lines() -> None:
    with pytest.raises(KernelTraceError):
        parse_kernel_trace("Nov 25 kernel: eth0: link up\n")


def test_it_reads_xtables_monitor_hops_with_positions_from_rule_text() -> None:
    ruleset = parse_ruleset(RULES)
    parsed, packets = import_trace(XT, ruleset)
    assert parsed.format is TraceFormat.XTABLES_MONITOR
    # The lo round trip (new trace id cb9c96c1) continues the first packet.
    assert len(packets) == 2
    assert packets[0].ids == ["55f22595", "cb9c96c1"]
    assert packet_hops(packets[0], ruleset) == [
        {"table": "raw", "chain": "OUTPUT", "rule": 1, "verdict": "CONTINUE"},
        {"table": "raw", "chain": "OUTPUT", "policy": "ACCEPT"},
        {"table": "filter", "chain": "OUTPUT", "rule": 2, "verdict": "JUMP:X"},
        {"table": "filter", "chain": "X", "rule": 2, "verdict": "CONTINUE"},
        {"table": "filter", "chain": "X", "rule": 3, "verdict": "RETURN"},
        {"table": "filter", "chain": "OUTPUT", "policy": "ACCEPT"},
        {"table": "raw", "chain": "PREROUTING", "policy": "ACCEPT"},
        {"table": "filter", "chain": "INPUT", "policy": "ACCEPT"},
    ]
    assert packet_hops(packets[1], ruleset)[-1] == {
        "table": "filter", "chain": "X", "rule": 1, "verdict": "DROP"}


def test_it_keeps_unresolved_positions_none_without_a_ruleset() -> None:
    _, packets = import_trace(XT)
    hops = packet_hops(packets[1])
    assert hops[-1] == {"table": "filter", "chain": "X", "rule": None, "verdict": "DROP"}


def test_it_builds_a_trace_with_implied_non_matches() -> None:
    ruleset = parse_ruleset(RULES)
    _, packets = import_trace(XT, ruleset)
    trace = to_trace(packets[1], ruleset)
    assert trace.verdict == "DROP"
    assert trace.path == "output"
    x_steps = [s for s in trace.steps if s.chain == "X"]
    assert [(s.rule, s.result) for s in x_steps] == [(1, Result.MATCH)]
    out_steps = [s for s in trace.steps if s.table == "filter" and s.chain == "OUTPUT"]
    assert [(s.rule, s.result) for s in out_steps] == [(1, Result.NOMATCH), (2, Result.MATCH)]
    assert out_steps[1].text == "-A OUTPUT -j X"
    assert out_steps[1].line == 12
    assert x_steps[0].depth == 1
    assert trace.hops() == packet_hops(packets[1], ruleset)
    accepted = to_trace(packets[0], ruleset)
    assert accepted.verdict == "ACCEPT"
    assert accepted.path == "output-local"
    assert accepted.packet_out.mark == 7
    assert accepted.hooks == ("OUTPUT", "PREROUTING", "INPUT")


def test_it_groups_legacy_lines_by_packet_identity_across_nat() -> None:
    parsed = parse_kernel_trace(LEGACY)
    assert parsed.format is TraceFormat.KERNEL_LOG
    assert parsed.ignored == 1
    packets = group_packets(parsed.events)
    # The DNAT changed DPT 80 → 8080; the IP ID keeps the lines together.
    assert len(packets) == 2
    assert [e.chain for e in packets[1].events] == ["PREROUTING", "INPUT"]
    fields = packets[1].first_fields
    assert fields["proto_name"] == "tcp"
    assert fields["tcp_flags"] == "S"
    assert fields["in_iface"] == "eth0"
    assert packets[1].last_fields["mark"] == 2


def test_it_takes_legacy_verdicts_from_the_ruleset() -> None:
    ruleset = parse_ruleset(LEGACY_RULES)
    _, packets = import_trace(LEGACY, ruleset)
    assert packet_hops(packets[0], ruleset) == [
        {"table": "raw", "chain": "OUTPUT", "policy": None},  # raw is not in this dump
        {"table": "filter", "chain": "OUTPUT", "rule": 2, "verdict": "JUMP:X"},
        {"table": "filter", "chain": "X", "rule": 1, "verdict": "DROP"},
    ]
    trace = to_trace(packets[0], ruleset)
    assert trace.verdict == "DROP"
    assert trace.packet_in.proto == 17 and trace.packet_in.dport == 9
    # Without the ruleset the log has no verdicts: hops say so with None.
    _, bare = import_trace(LEGACY)
    assert packet_hops(bare[0])[1] == {"table": "filter", "chain": "OUTPUT", "rule": 2, "verdict": None}
    assert to_trace(bare[0]).uncertain


def test_it_reads_nft_monitor_trace_and_ignores_native_tables() -> None:
    ruleset = parse_ruleset(RULES)
    parsed, packets = import_trace(NFT, ruleset)
    assert parsed.format is TraceFormat.NFT_MONITOR
    assert len(packets) == 2
    hops = packet_hops(packets[0], ruleset)
    assert hops[0] == {"table": "filter", "chain": "OUTPUT", "rule": None, "verdict": "JUMP:X"}
    assert hops[-1] == {"table": "filter", "chain": "OUTPUT", "policy": "ACCEPT"}
    assert packet_hops(packets[1], ruleset) == []


def test_it_guesses_positions_from_fresh_restore_handles() -> None:
    ruleset = parse_ruleset(RULES)
    text = NFT.replace("(verdict jump X)", "(verdict jump X) # handle 6")
    _, packets = import_trace(text, ruleset)
    trace = to_trace(packets[0], ruleset)
    jump = next(s for s in trace.steps if s.verdict == "JUMP:X")
    assert jump.rule == 2
    assert "guessed" in jump.note and jump.uncertain


def test_it_draws_an_imported_trace_with_the_flow_and_chain_graphs() -> None:
    ruleset = parse_ruleset(RULES)
    _, packets = import_trace(XT, ruleset)
    trace = to_trace(packets[1], ruleset)
    flow = flow_dot(trace, ruleset)
    assert "flow-OUTPUT-filter" in flow
    chains = chain_dot(trace, "filter", "OUTPUT", "OUTPUT", ruleset)
    assert "jump" in chains
    assert any(s.kind is StepKind.POLICY for s in to_trace(packets[0], ruleset).steps)


def test_it_stays_a_pure_module() -> None:
    import ast
    from pathlib import Path

    import netviz.engine.kerneltrace as mod

    tree = ast.parse(Path(mod.__file__).read_text(encoding="utf-8"))
    imported = {
        (node.module or "").split(".")[0] if isinstance(node, ast.ImportFrom) and node.level == 0
        else alias.name.split(".")[0]
        for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in node.names
        if not (isinstance(node, ast.ImportFrom) and node.level > 0)
    }
    assert imported <= {"__future__", "ipaddress", "re", "dataclasses", "enum", "typing"}

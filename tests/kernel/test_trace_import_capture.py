"""Trace import from real kernel output, captured here in a namespace.

The rules are loaded through each iptables backend with a `-j TRACE` rule in
raw; the nf_tables backend's trace is read with `xtables-monitor --trace`, the
legacy backend's TRACE lines from the kernel log (/dev/kmsg, with
net.netfilter.nf_log_all_netns=1 so a non-init namespace may log).  The
imported hops must equal the engine's own trace of the same packet.
"""

from __future__ import annotations

import os

import pytest

from netviz.engine.host import Host
from netviz.engine.kerneltrace import TraceFormat, import_trace, packet_hops, to_trace
from netviz.engine.parser import parse_ruleset
from netviz.engine.pipeline import packet_from_dict, trace_packet
from netviz.engine.ruleset import Family
from netviz.kernel import netns
from netviz.kernel.replay import parse_handles

RULES = """*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A PREROUTING -p udp -j TRACE
-A OUTPUT -p udp -j TRACE
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:X - [0:0]
-A INPUT -p udp -m udp --dport 9 -j ACCEPT
-A OUTPUT -p tcp -j ACCEPT
-A OUTPUT -j X
-A X -p udp -m udp --dport 5 -j DROP
-A X -p udp -j MARK --set-xmark 0x7/0xffffffff
COMMIT
"""

SENT = ((40009, 9), (40005, 5))


def _engine_hops(sport: int, dport: int) -> tuple[list[dict[str, object]], str]:
    ruleset = parse_ruleset(RULES)
    host = Host.from_dict({}, Family.IPV4)
    pkt = packet_from_dict(
        {"proto": "udp", "src": "127.0.0.1", "dst": "127.0.0.1", "sport": sport, "dport": dport},
        Family.IPV4,
    )
    trace = trace_packet(ruleset, host, pkt)
    return trace.hops(), trace.verdict


def _check(text: str, fmt: TraceFormat) -> None:
    ruleset = parse_ruleset(RULES)
    parsed, packets = import_trace(text, ruleset)
    assert parsed.format is fmt, text
    assert len(packets) == len(SENT), text
    for pkt, (sport, dport) in zip(packets, SENT):
        assert pkt.first_fields["sport"] == sport and pkt.first_fields["dport"] == dport
        hops = packet_hops(pkt, ruleset)
        want, verdict = _engine_hops(sport, dport)
        if fmt is TraceFormat.KERNEL_LOG:
            # ip_tables logs only once nf_trace is set: the TRACE rule that
            # set it (raw OUTPUT rule 1) is not in the log; on the way back
            # in over lo the flag is already set and raw PREROUTING's is.
            want = [h for h in want if h != {"table": "raw", "chain": "OUTPUT", "rule": 1,
                                             "verdict": "CONTINUE"}]
        assert hops == want, text
        trace = to_trace(pkt, ruleset)
        assert trace.verdict == verdict
        assert trace.hops() == hops


@pytest.fixture
def legacy_ok(kernel: None) -> None:
    missing = netns.missing_tools("iptables-legacy-restore")
    if missing:
        pytest.skip(f"legacy backend unavailable: missing {', '.join(missing)}")
    if not os.path.exists("/dev/kmsg") or not os.path.exists(netns.NF_LOG_ALL_NETNS):
        pytest.skip("no /dev/kmsg or net.netfilter.nf_log_all_netns: cannot read TRACE lines")


def test_it_imports_xtables_monitor_output_captured_from_the_kernel(kernel: None) -> None:
    if netns.missing_tools("xtables-monitor", "iptables-nft-restore"):
        pytest.skip("xtables-monitor / iptables-nft-restore not installed")
    with netns.namespace() as ns:
        netns.load(ns, RULES, backend="nft")
        with netns.trace_monitor(ns) as mon:
            for sport, dport in SENT:
                netns.send_udp(ns, "127.0.0.1", dport, sport, "127.0.0.1")
            lines = mon.settle()
    _check("\n".join(lines) + "\n", TraceFormat.XTABLES_MONITOR)


def test_it_imports_nft_monitor_trace_captured_from_the_kernel(kernel: None) -> None:
    with netns.namespace() as ns:
        netns.load(ns, RULES, backend="nft")
        with netns.trace_monitor(ns, ("nft", "-a", "monitor", "trace")) as mon:
            netns.send_udp(ns, "127.0.0.1", 5, 40005, "127.0.0.1")
            lines = mon.settle()
        handles = parse_handles(netns.in_ns(ns, ["nft", "-a", "list", "ruleset"]))
    ruleset = parse_ruleset(RULES)
    parsed, packets = import_trace("\n".join(lines) + "\n", ruleset)
    assert parsed.format is TraceFormat.NFT_MONITOR
    assert len(packets) == 1
    want, _ = _engine_hops(40005, 5)
    # nft prints rules in its own syntax: positions come from the handle
    # listing, or without it from the handle numbering of a fresh restore.
    assert packet_hops(packets[0], handles=handles) == want
    assert packet_hops(packets[0], ruleset) == want
    trace = to_trace(packets[0], ruleset, handles=handles)
    assert not any("guessed" in s.note for s in trace.steps)


def test_it_imports_legacy_trace_lines_from_the_kernel_log(legacy_ok: None) -> None:
    with netns.namespace() as ns:
        netns.load(ns, RULES, backend="legacy")
        with netns.kernel_log(ns) as log:
            for sport, dport in SENT:
                netns.send_udp(ns, "127.0.0.1", dport, sport, "127.0.0.1")
            lines = log.read(wait=0.5)
    trace_lines = [ln for ln in lines if "TRACE:" in ln]
    assert trace_lines, f"no TRACE lines in the kernel log: {lines!r}"
    _check("\n".join(trace_lines) + "\n", TraceFormat.KERNEL_LOG)

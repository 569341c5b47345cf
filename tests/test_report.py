"""render_text: the packet-tracer text of a Trace.

Hand-built traces pin the format; traces of real dumps (once the pipeline is
importable) are checked against golden files.  NETVIZ_REGEN_GOLDEN=1 rewrites
the golden files instead of comparing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from trace_samples import dnat_trace, ip

from netviz.engine.packet import Packet
from netviz.engine.report import packet_changes, packet_line, render_text, summary_rows
from netviz.engine.ruleset import Family

GOLDEN = Path(__file__).resolve().parent / "golden" / "report"
REALWORLD = Path(__file__).resolve().parent / "data" / "realworld"


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("NETVIZ_REGEN_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return
    if not path.exists():
        pytest.fail(f"golden file {path.name} missing: run with NETVIZ_REGEN_GOLDEN=1")
    assert text == path.read_text(encoding="utf-8")


def test_it_prints_every_rule_with_line_and_result() -> None:
    text = render_text(dnat_trace())
    assert "#1 line 20: -A KUBE-SERVICES -d 10.96.0.1/32" in text
    assert "not matched: 10.96.0.10 ∉ 10.96.0.1/32" in text
    assert "matched → GOTO:KUBE-SEP-Y" in text
    assert "unknown: match foo is not evaluated — result uncertain" in text
    assert "not matched: --dport 443 ≠ 8053" in text
    assert "policy DROP" in text


def test_it_shows_nat_and_mark_changes_as_arrows() -> None:
    text = render_text(dnat_trace())
    assert "mark 0x0 → 0x4000" in text
    assert "dst 10.96.0.10:53 → 10.244.7.5:8053" in text
    assert "out - → cali0a1b" in text
    assert text.index("mark 0x0 → 0x4000") < text.index("dst 10.96.0.10:53 → 10.244.7.5:8053")


def test_it_prints_phases_in_order_with_routing_between() -> None:
    lines = render_text(dnat_trace()).splitlines()
    pre = lines.index("PREROUTING")
    fwd = lines.index("FORWARD")
    route = next(i for i, line in enumerate(lines) if "routing decision" in line)
    assert pre < route < fwd


def test_it_ends_with_verdict_packet_out_and_summary() -> None:
    text = render_text(dnat_trace())
    assert "Verdict:    DROP at filter FORWARD policy" in text
    assert "Packet out: tcp 10.9.1.2:40000 → 10.244.7.5:8053 [S] in eth0 out cali0a1b" in text
    assert "Uncertain:  nat KUBE-SEP-Y rule 3" in text
    assert "Random:     nat KUBE-SVC-X rule 1 p=0.5 taken" in text
    summary = text.split("\nSummary\n", 1)[1]
    assert "JUMP:KUBE-SERVICES" in summary
    assert "policy DROP" in summary


def test_it_matches_the_golden_text() -> None:
    check_golden("hand-dnat-forward.txt", render_text(dnat_trace()))


def test_it_lists_hops_and_unknowns_in_the_summary() -> None:
    rows = summary_rows(dnat_trace())
    results = [r.result for r in rows]
    assert results[0] == "policy ACCEPT"
    assert "unknown: match foo is not evaluated" in results
    assert results[-1] == "policy DROP"
    assert any(r.phase == "routing" for r in rows)


def test_it_brackets_ipv6_addresses_with_ports() -> None:
    p = Packet(family=Family.IPV6, proto=17, src=ip("2001:db8::1"), dst=ip("2001:db8::2"),
               sport=5353, dport=53, in_iface=None)
    assert "udp [2001:db8::1]:5353 → [2001:db8::2]:53 from local process" in packet_line(p)
    q = p.with_(src=ip("2001:db8::9"), sport=1024)
    assert [c.text() for c in packet_changes(p, q)] == ["src [2001:db8::1]:5353 → [2001:db8::9]:1024"]


# --- real dumps through the real pipeline -------------------------------------------

REAL_CASES = [
    (
        "docker-published-port",
        "docker-default-published-port.rules",
        {"interfaces": [{"name": "eth0", "addrs": ["192.0.2.10/24"]},
                        {"name": "docker0", "addrs": ["172.17.0.1/16"]}],
         "routes": ["default via 192.0.2.1 dev eth0"]},
        {"proto": "tcp", "src": "198.51.100.7", "sport": 40000, "dst": "192.0.2.10",
         "dport": 10080, "in_iface": "eth0"},
    ),
    (
        "centos7-broken-reject",
        "kube-proxy-flannel-centos7-BROKEN.rules",
        {"interfaces": [{"name": "eth0", "addrs": ["192.168.56.11/24"]},
                        {"name": "cni0", "addrs": ["10.244.0.1/24"]}],
         "routes": ["default via 192.168.56.1 dev eth0"]},
        {"proto": "tcp", "src": "10.244.0.5", "sport": 40000, "dst": "10.96.0.1",
         "dport": 443, "in_iface": "cni0"},
    ),
]


@pytest.mark.parametrize(("name", "dump", "host", "packet"), REAL_CASES)
def test_it_renders_real_dump_traces_like_the_golden_file(
    name: str, dump: str, host: dict, packet: dict
) -> None:
    path = REALWORLD / dump
    pipeline = pytest.importorskip("netviz.engine.pipeline")
    scenario_mod = pytest.importorskip("netviz.scenario")
    sc = scenario_mod.scenario_from_dict(
        {"ruleset": path.read_text(encoding="utf-8"), "family": "ipv4", "host": host,
         "packet": packet}
    )
    trace = pipeline.trace_scenario(sc)
    text = render_text(trace)
    # Every hop of the kernel contract appears in the text.
    for hop in trace.hops():
        if "policy" in hop:
            assert f"policy {hop['policy']}" in text
        else:
            assert f"#{hop['rule']} " in text
    assert f"Verdict:    {trace.verdict}" in text
    assert json.dumps(trace.to_dict())  # the same trace is serialisable
    check_golden(f"{name}.txt", text)


def test_it_groups_steps_into_chain_sections_for_the_page() -> None:
    from netviz.engine.report import sections

    secs = sections(dnat_trace(), fold_over=0, keep=0)
    assert [(s.kind, s.chain) for s in secs] == [
        ("chain", "PREROUTING"), ("conntrack", ""), ("chain", "PREROUTING"),
        ("chain", "KUBE-SERVICES"), ("chain", "KUBE-SVC-X"), ("chain", "KUBE-SEP-Y"),
        ("route", ""), ("chain", "FORWARD"), ("chain", "KUBE-FORWARD"), ("chain", "FORWARD"),
    ]
    assert secs[3].entered_by == "JUMP from nat PREROUTING rule 1"
    assert secs[5].entered_by == "GOTO from nat KUBE-SVC-X rule 1"
    assert secs[9].entered_by == "back from KUBE-FORWARD"
    assert secs[0].new_hook and secs[7].new_hook and not secs[3].new_hook
    # With fold_over=0 every not-matched rule is folded; each row keeps its index.
    folded = [i for i in secs[3].items if i.collapsed]
    assert folded and folded[0].rows[0].index == 3
    assert [r.index for r in secs[5].rows] == [6, 7, 8, 9]
    # Header changes are attached to the step that made them.
    mark_row = next(r for r in secs[5].rows if r.step.rule == 2)
    assert [c.text() for c in mark_row.changes] == ["mark 0x0 → 0x4000"]


def test_it_keeps_short_runs_unfolded() -> None:
    from netviz.engine.report import sections

    assert not any(i.collapsed for s in sections(dnat_trace()) for i in s.items)


def test_it_explains_each_clause_of_a_rule_the_kernel_way() -> None:
    from netviz.engine.context import Result
    from netviz.engine.parser import parse_ruleset
    from netviz.engine.report import clause_rows
    from netviz.engine.trace import Step, StepKind

    rs = parse_ruleset(
        "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
        '-A INPUT -s 10.0.0.0/8 -p tcp -m comment --comment "ssh only" -m tcp --dport 22 '
        "-m conntrack --ctstate NEW -j ACCEPT\nCOMMIT\n",
        family=Family.IPV4,
    )
    rule = rs.table("filter").chain("INPUT").rules[0]  # type: ignore[union-attr]
    step = Step(StepKind.RULE, "INPUT", "filter", "INPUT", rule=1, line=5, text=rule.text,
                result=Result.NOMATCH, clause="--dport 22", reason="--dport 22 ≠ 443")
    rows = [(r.text, r.status) for r in clause_rows(rule, step)]
    assert ("-s 10.0.0.0/8", "match") in rows
    assert ("--dport 22", "nomatch") in rows
    assert ("--ctstate NEW", "not-evaluated") in rows
    assert ('--comment "ssh only"', "comment") in rows
    matched = Step(StepKind.RULE, "INPUT", "filter", "INPUT", rule=1, result=Result.MATCH,
                   verdict="ACCEPT")
    assert {r.status for r in clause_rows(rule, matched)} <= {"match", "comment"}
    # A deciding clause the rule does not show: nothing is claimed true.
    odd = Step(StepKind.RULE, "INPUT", "filter", "INPUT", rule=1, result=Result.UNKNOWN,
               clause="--weird", reason="not evaluated")
    statuses = [r.status for r in clause_rows(rule, odd)]
    assert "match" not in statuses and statuses[-1] == "unknown"


def test_it_keeps_index_skips_inside_their_chain() -> None:
    from netviz.engine.context import Result
    from netviz.engine.dot_trace import chain_dot
    from netviz.engine.report import sections
    from netviz.engine.trace import Step, StepKind, Trace

    p = dnat_trace().packet_in
    steps = (
        Step(StepKind.RULE, "INPUT", "filter", "INPUT", rule=1, line=5, text="-A INPUT -i lo -j ACCEPT",
             result=Result.NOMATCH, clause="-i lo", reason="-i lo: packet came in on eth0", packet=p),
        Step(StepKind.SKIP, "INPUT", "filter", "INPUT", rule=2, line=6,
             text="rules 2–40 not matched: their -d, -i/-o, -p or --dport rule out this packet", packet=p),
        Step(StepKind.POLICY, "INPUT", "filter", "INPUT", verdict="DROP", packet=p),
    )
    trace = Trace(packet_in=p, steps=steps, verdict="DROP", packet_out=p, path="input",
                  hooks=("PREROUTING", "INPUT"))
    text = render_text(trace)
    lines = text.splitlines()
    skip = next(i for i, line in enumerate(lines) if "rules 2–40 not matched" in line)
    assert lines[skip].startswith("      … rules 2–40")
    assert lines[skip - 2].strip().startswith("· #1")
    assert "skipped" not in text.split("\nSummary\n", 1)[1]
    secs = sections(trace)
    assert len(secs) == 1 and [r.step.kind for r in secs[0].rows] == [
        StepKind.RULE, StepKind.SKIP, StepKind.POLICY]
    assert "… rules 2–40 not matched" in chain_dot(trace, "filter", "INPUT")

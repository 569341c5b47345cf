"""flow_dot / chain_dot: the DOT text of a trace, checked structurally, by
graphviz itself (the DOT must render) and against golden files
(NETVIZ_REGEN_GOLDEN=1 rewrites them)."""

from __future__ import annotations

import itertools
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from trace_samples import dnat_trace

from netviz.engine.context import Result
from netviz.engine.dot_trace import COLLAPSE_RUN, chain_dot, flow_dot
from netviz.engine.hooks import HOOKS, IPTABLES_HOOKS, hook_order
from netviz.engine.parser import parse_ruleset
from netviz.engine.ruleset import Family
from netviz.engine.trace import Step, StepKind, Trace

GOLDEN = Path(__file__).resolve().parent / "golden" / "dot_trace"
REALWORLD = Path(__file__).resolve().parent / "data" / "realworld"


def check_golden(name: str, text: str) -> None:
    import os

    path = GOLDEN / name
    if os.environ.get("NETVIZ_REGEN_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return
    if not path.exists():
        pytest.fail(f"golden file {path.name} missing: run with NETVIZ_REGEN_GOLDEN=1")
    assert text == path.read_text(encoding="utf-8")


def render(dot: str) -> str:
    if shutil.which("dot") is None:
        pytest.skip("graphviz `dot` not installed")
    done = subprocess.run(["dot", "-Tsvg"], input=dot.encode(), capture_output=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr.decode()
    assert not done.stderr.strip(), done.stderr.decode()
    return done.stdout.decode()


def node_line(dot: str, node_id: str) -> str:
    return next(line for line in dot.splitlines() if line.strip().startswith(f'"{node_id}" ['))


def test_it_draws_every_hook_and_table_in_kernel_order_without_a_trace() -> None:
    dot = flow_dot(None)
    for hook, tables in {
        "PREROUTING": ["raw", "conntrack", "mangle", "nat"],
        # iptables-nft: nat INPUT (100) runs before security (150).
        "INPUT": ["mangle", "filter", "nat", "security"],
        "FORWARD": ["mangle", "filter", "security"],
        "OUTPUT": ["raw", "conntrack", "mangle", "nat", "filter", "security"],
        "POSTROUTING": ["mangle", "nat"],
    }.items():
        for a, b in itertools.pairwise(tables):
            assert f'"flow-{hook}-{a}" -> "flow-{hook}-{b}"' in dot
    assert '"flow-INPUT-security" -> "flow-local-in"' in dot
    assert '"flow-PREROUTING-nat" -> "flow-route-in"' in dot
    assert '"flow-route-in" -> "flow-INPUT-mangle"' in dot
    assert '"flow-route-in" -> "flow-FORWARD-mangle"' in dot
    assert '"flow-local-out" -> "flow-route-out"' in dot
    assert "lit" not in dot
    svg = render(dot)
    assert 'id="flow&#45;POSTROUTING&#45;nat"' in svg


def test_it_lights_the_way_numbers_it_and_marks_the_drop() -> None:
    dot = flow_dot(dnat_trace())
    assert "hop-1" in node_line(dot, "flow-PREROUTING-raw")
    assert "hop-2" in node_line(dot, "flow-PREROUTING-conntrack")
    assert "hop-3" in node_line(dot, "flow-PREROUTING-nat")
    assert "hop-4" in node_line(dot, "flow-route-in")
    drop = node_line(dot, "flow-FORWARD-filter")
    assert "hop-5" in drop and " drop" in drop and "✗ DROP" in drop
    # Not on the way: INPUT, OUTPUT; after the drop: FORWARD security, POSTROUTING.
    for off in ("flow-INPUT-filter", "flow-OUTPUT-raw", "flow-FORWARD-security", "flow-POSTROUTING-nat"):
        assert " lit" not in node_line(dot, off)
    lit_edges = re.findall(r'"([^"]+)" -> "([^"]+)" \[id="[^"]+" class="flow-edge lit"', dot)
    assert ("flow-net-in", "flow-PREROUTING-raw") in lit_edges
    assert ("flow-route-in", "flow-FORWARD-mangle") in lit_edges
    assert ("flow-FORWARD-mangle", "flow-FORWARD-filter") in lit_edges
    assert ("flow-FORWARD-filter", "flow-FORWARD-security") not in lit_edges
    render(dot)
    check_golden("hand-dnat-flow.dot", dot)


def test_it_greys_tables_the_dump_does_not_declare() -> None:
    ruleset = parse_ruleset("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n",
                            family=Family.IPV4)
    dot = flow_dot(dnat_trace(), ruleset)
    assert "absent" in node_line(dot, "flow-PREROUTING-mangle")
    assert "dashed" in node_line(dot, "flow-INPUT-security")
    assert "absent" not in node_line(dot, "flow-FORWARD-filter")


def test_it_draws_chains_entered_with_jumps_gotos_and_rows() -> None:
    dot = chain_dot(dnat_trace(), "nat", "PREROUTING")
    for title in ("nat PREROUTING", "nat KUBE-SERVICES", "nat KUBE-SVC-X", "nat KUBE-SEP-Y"):
        assert title in dot
    assert dot.count("class=\"chain-jump\"") == 2
    assert dot.count("class=\"chain-goto\"") == 1
    assert "10.96.0.10 ∉ 10.96.0.1/32" in dot  # the failing clause of a not-matched rule
    assert "#fff8c5" in dot  # the unknown rule is amber
    assert "FORWARD" not in dot  # only chains this table visit entered
    render(dot)
    check_golden("hand-dnat-chains.dot", dot)


def test_it_draws_returns_back_to_the_caller() -> None:
    dot = chain_dot(dnat_trace(), "filter", "FORWARD")
    assert 'class="chain-return"' in dot
    assert "policy DROP" in dot
    render(dot)


def test_it_says_so_when_the_packet_never_entered_the_chain() -> None:
    dot = chain_dot(dnat_trace(), "mangle", "OUTPUT")
    assert "did not enter mangle OUTPUT" in dot
    render(dot)


def test_it_collapses_long_runs_of_unmatched_rules() -> None:
    base = dnat_trace()
    packet = base.packet_in
    steps = tuple(
        Step(StepKind.RULE, "INPUT", "filter", "INPUT", rule=i, line=100 + i,
             text=f"-A INPUT -p tcp -m tcp --dport {1000 + i} -j ACCEPT", result=Result.NOMATCH,
             clause=f"--dport {1000 + i}", reason=f"--dport {1000 + i} ≠ 22", packet=packet)
        for i in range(1, 1500)
    ) + (Step(StepKind.POLICY, "INPUT", "filter", "INPUT", verdict="DROP", packet=packet),)
    trace = Trace(packet_in=packet, steps=steps, verdict="DROP", packet_out=packet, path="input",
                  hooks=("PREROUTING", "INPUT"))
    dot = chain_dot(trace, "filter", "INPUT")
    assert "… 1,494 rules not matched …" in dot
    assert dot.count("<TR>") < COLLAPSE_RUN + 6
    render(dot)


def test_it_escapes_user_text_in_labels() -> None:
    base = dnat_trace()
    evil = 'x" [label=<<B>pwn</B>>] & "\\N'
    step = Step(StepKind.RULE, "INPUT", "filter", "INPUT", rule=1, line=3,
                text=f'-A INPUT -m comment --comment "{evil}" -j EVIL<chain>',
                result=Result.MATCH, verdict="JUMP:EVIL<chain>", packet=base.packet_in)
    inner = Step(StepKind.RULE, "INPUT", "filter", "EVIL<chain>", rule=1, line=9,
                 text="-A EVIL<chain> -j DROP", result=Result.MATCH, verdict="DROP",
                 packet=base.packet_in, depth=1)
    trace = Trace(packet_in=base.packet_in, steps=(step, inner), verdict="DROP",
                  packet_out=base.packet_in, path="input", hooks=("PREROUTING", "INPUT"))
    dot = chain_dot(trace, "filter", "INPUT")
    assert "<B>pwn</B>" not in dot
    assert "&lt;B&gt;pwn&lt;/B&gt;" in dot
    assert "EVIL&lt;chain&gt;" in dot
    svg = render(dot)
    assert "<B>" not in svg
    flow = flow_dot(trace)
    render(flow)


REAL = [
    ("docker", "docker-default-published-port.rules",
     {"interfaces": [{"name": "eth0", "addrs": ["192.0.2.10/24"]},
                     {"name": "docker0", "addrs": ["172.17.0.1/16"]}],
      "routes": ["default via 192.0.2.1 dev eth0"]},
     {"proto": "tcp", "src": "198.51.100.7", "sport": 40000, "dst": "192.0.2.10",
      "dport": 10080, "in_iface": "eth0"}),
    ("docker-local", "docker-default-published-port.rules",
     {"interfaces": [{"name": "eth0", "addrs": ["192.0.2.10/24"]},
                     {"name": "docker0", "addrs": ["172.17.0.1/16"]}],
      "routes": ["default via 192.0.2.1 dev eth0"]},
     {"proto": "tcp", "src": "192.0.2.10", "sport": 40000, "dst": "192.0.2.10",
      "dport": 22}),
]


@pytest.mark.parametrize(("name", "dump", "host", "packet"), REAL)
def test_it_draws_real_traces_like_the_golden_files(name: str, dump: str, host: dict, packet: dict) -> None:
    from netviz.engine.pipeline import trace_scenario
    from netviz.scenario import scenario_from_dict

    path = REALWORLD / dump
    text = path.read_text(encoding="utf-8")
    trace = trace_scenario(scenario_from_dict({"ruleset": text, "host": host, "packet": packet}))
    ruleset = parse_ruleset(text, family=Family.IPV4)
    flow = flow_dot(trace, ruleset)
    render(flow)
    # Every table with a hop is lit.
    for hop in trace.hops():
        for step in trace.steps:
            if step.is_hop and step.table == hop["table"] and step.chain == hop["chain"]:
                assert " lit" in node_line(flow, f"flow-{step.hook}-{step.table}")
    check_golden(f"{name}-flow.dot", flow)
    first = next(s for s in trace.steps if s.kind in (StepKind.RULE, StepKind.POLICY))
    chains = chain_dot(trace, first.table, first.chain, first.hook, ruleset)
    render(chains)
    check_golden(f"{name}-{first.table}-{first.chain}.dot", chains)


def test_it_draws_each_hook_in_the_order_the_engine_runs_it() -> None:
    dot = flow_dot(None)
    for hook in HOOKS:
        names = [e.label for e in hook_order(hook, IPTABLES_HOOKS)]
        for a, b in itertools.pairwise(names):
            assert f'"flow-{hook}-{a}" -> "flow-{hook}-{b}"' in dot


# --- native nftables base chains in the flow ------------------------------------


def _firewalld_flow() -> str:
    from netviz.engine.nft.evaluate import compile_nft
    from netviz.engine.nft.parse_json import parse_nft
    from netviz.engine.pipeline import trace_scenario
    from netviz.scenario import load_scenario

    node = Path(__file__).resolve().parents[1] / "fixtures" / "demo" / "rhel-firewalld-node"
    scenario = load_scenario(node / "scenarios" / "port-8080-rejected-by-firewalld.json")
    assert scenario.nftables_text
    trace = trace_scenario(scenario)
    ruleset = parse_ruleset(scenario.ruleset_text, None, Family.IPV4)
    return flow_dot(trace, ruleset, compile_nft(parse_nft(scenario.nftables_text), Family.IPV4))


def test_it_places_nft_base_chains_at_their_hook_by_priority() -> None:
    dot = _firewalld_flow()
    kube = "flow-INPUT-nft-ip-kube-proxy-filter-input"  # priority -110
    fw = "flow-INPUT-nft-inet-firewalld-filter_INPUT"  # priority filter + 10
    # mangle (-150), kube-proxy (-110), the iptables filter table (0),
    # firewalld (10), then the NAT hook (100) and security (150).
    for a, b in [("flow-INPUT-mangle", kube), (kube, "flow-INPUT-filter"),
                 ("flow-INPUT-filter", fw), (fw, "flow-INPUT-nat")]:
        assert f'"{a}" -> "{b}"' in dot
    assert "filter, priority filter + 10" in node_line(dot, fw)


def test_the_packet_lights_the_iptables_table_and_the_firewalld_chain_that_drops_it() -> None:
    dot = _firewalld_flow()
    fw = "flow-INPUT-nft-inet-firewalld-filter_INPUT"
    assert " lit" in node_line(dot, "flow-INPUT-filter")
    assert " lit" in node_line(dot, fw) and "drop" in node_line(dot, fw)
    assert 'tooltip="filter_INPUT rule 7: DROP"' in node_line(dot, fw)
    lit_edges = re.findall(r'"([^"]+)" -> "([^"]+)" \[id="[^"]+" class="flow-edge lit"', dot)
    assert ("flow-INPUT-filter", fw) in lit_edges
    assert (fw, "flow-INPUT-nat") not in lit_edges
    render(dot)


def test_the_flow_diagram_shows_the_bridge_decision() -> None:
    from netviz.engine.parser import parse_ruleset
    from netviz.engine.pipeline import trace_dicts

    host = {"interfaces": [{"name": "br0", "type": "bridge", "addrs": ["172.30.0.1/24"]},
                           {"name": "v1", "master": "br0", "neighbors": ["172.30.0.2"]},
                           {"name": "v<2>", "master": "br0", "neighbors": ["172.30.0.3"]}]}
    rules = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n"
    packet = {"proto": "udp", "src": "172.30.0.2", "dst": "172.30.0.3", "in_iface": "v1"}
    for nf in ("1", "0"):
        trace = trace_dicts(parse_ruleset(rules), {**host, "sysctls": {"net.bridge.bridge-nf-call-iptables": nf}}, packet, "ipv4")
        assert trace.path == "bridge" and trace.summary == "accepted: bridged v1 → v<2>"
        node = next(ln for ln in flow_dot(trace).splitlines() if ln.strip().startswith('"flow-route-in" ['))
        assert "bridge /" in node and "bridged v1 → v\\<2\\>" in node and " lit" in node

"""compare_traces: two real traces side by side, computed by the engine."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from netviz.engine.compare import HopMark, compare_traces
from netviz.engine.pipeline import trace_scenario
from netviz.engine.trace import Trace
from netviz.scenario import Scenario

ROOT = Path(__file__).resolve().parents[1]
NATOUT = ROOT / "fixtures" / "demo" / "calico-natoutgoing"


def natout_meta() -> dict[str, Any]:
    return json.loads((NATOUT / "compare.json").read_text())


def natout_trace(side: str, packet: dict[str, Any]) -> Trace:
    d = NATOUT / side
    return trace_scenario(Scenario(
        ruleset_text=(d / "ruleset.rules").read_text(),
        ipsets_text=(d / "ipsets.ipset").read_text(),
        host=json.loads((NATOUT / "host.json").read_text()),
        packet=packet,
    ))


def natout_packet(slug: str) -> dict[str, Any]:
    return next(c["packet"] for c in natout_meta()["comparisons"] if c["slug"] == slug)


def test_it_finds_the_masquerade_that_natoutgoing_adds() -> None:
    packet = natout_packet("pod-to-internet")
    cmp = compare_traces(natout_trace("on", packet), natout_trace("off", packet))
    assert not cmp.identical and cmp.same_verdict
    first = cmp.hops[cmp.first_difference or 0]
    assert first.mark is HopMark.DIFFERS
    assert first.left is not None and first.left.chain == "cali-nat-outgoing" and first.left.rule == 1
    # Every hop before the first difference is the same on both sides.
    assert all(h.same for h in cmp.hops[: cmp.first_difference])
    left_deciding = [d for d in cmp.deciding if d.side == "left"]
    assert [(d.step.table, d.step.chain, d.step.rule) for d in left_deciding] == [
        ("nat", "cali-nat-outgoing", 1)
    ]
    assert left_deciding[0].effect == "rewrote the source 10.244.0.10 → 10.240.0.4"
    assert {(f.field, f.left, f.right) for f in cmp.packet_out_diff} == {
        ("src", "10.240.0.4", "10.244.0.10")
    }
    text = " ".join(cmp.explain("the left (natOutgoing on)", "the right (natOutgoing off)"))
    assert (
        "On the left (natOutgoing on), nat POSTROUTING rule 1 in cali-nat-outgoing (MASQUERADE) "
        "rewrote the source 10.244.0.10 → 10.240.0.4; on the right (natOutgoing off) "
        "cali-nat-outgoing was empty, so the packet leaves with its source unchanged, 10.244.0.10."
    ) in text


def test_it_masquerades_service_traffic_to_endpoints_outside_the_pools() -> None:
    packet = natout_packet("pod-to-clusterip")
    on, off = natout_trace("on", packet), natout_trace("off", packet)
    cmp = compare_traces(on, off)
    # kube-proxy's DNAT happens on both sides; only the source differs.
    assert on.packet_out.header()["dst"] == off.packet_out.header()["dst"] == "192.168.100.1"
    assert [f.field for f in cmp.packet_out_diff] == ["src"]
    assert "cali-nat-outgoing" in " ".join(cmp.explain())


@pytest.mark.parametrize("slug", ["pod-to-remote-pod", "host-to-internet"])
def test_it_says_when_natoutgoing_changes_nothing(slug: str) -> None:
    packet = natout_packet(slug)
    cmp = compare_traces(natout_trace("on", packet), natout_trace("off", packet))
    assert cmp.identical
    assert cmp.first_difference is None and cmp.deciding == ()
    [sentence] = cmp.explain()
    assert sentence.startswith("Both sides treat the packet the same way")


FILTER = """*filter
:INPUT DROP [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p tcp --dport 22 -j ACCEPT
COMMIT
"""
LOGGED = """*filter
:INPUT DROP [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p tcp -j LOG --log-prefix "in: "
-A INPUT -p tcp --dport 22 -j ACCEPT
COMMIT
"""
HOST = {"interfaces": [{"name": "eth0", "addrs": ["192.0.2.1/24"]}], "routes": []}


def trace(ruleset: str, dport: int) -> Trace:
    return trace_scenario(Scenario(ruleset_text=ruleset, host=HOST, packet={
        "proto": "tcp", "src": "192.0.2.7", "sport": 40000, "dst": "192.0.2.1", "dport": dport,
        "in_iface": "eth0",
    }))


def test_it_compares_two_packets_on_one_ruleset() -> None:
    cmp = compare_traces(trace(FILTER, 22), trace(FILTER, 80))
    assert [(f.field, f.left, f.right) for f in cmp.packet_in_diff] == [("dport", "22", "80")]
    assert not cmp.same_verdict
    assert [h.mark for h in cmp.hops] == [HopMark.DIFFERS]
    text = cmp.explain()
    assert text[0] == "The two packets differ: destination port 22 on the left, 80 on the right."
    assert text[1] == (
        "On the left, filter INPUT rule 1 (ACCEPT) accepted the packet; "
        "on the right, the filter INPUT policy dropped the packet (policy DROP)."
    )
    assert text[-1].startswith("The left: the packet is delivered to a local process")
    assert "The right: it is dropped" in text[-1]


def test_it_aligns_hops_when_a_rule_was_inserted_above() -> None:
    # The ACCEPT is rule 1 on the left and rule 2 on the right: still "same".
    cmp = compare_traces(trace(FILTER, 22), trace(LOGGED, 22))
    assert [h.mark for h in cmp.hops] == [HopMark.RIGHT_ONLY, HopMark.SAME]
    same = cmp.hops[1]
    assert same.left is not None and same.right is not None
    assert (same.left.rule, same.right.rule) == (1, 2)
    assert cmp.first_difference == 0 and cmp.same_verdict and not cmp.packet_out_diff
    assert cmp.explain() == [
        ("The paths part at hop 1: on the left, nothing matched here; "
        "on the right, filter INPUT rule 1 (LOG) let the packet continue."),
        ("In the end both sides accept the packet and it leaves as 192.0.2.7:40000 → 192.0.2.1:22: "
        "the paths differ, the result does not."),
    ]


def test_it_finds_no_difference_between_a_trace_and_itself() -> None:
    t = trace(LOGGED, 80)
    cmp = compare_traces(t, t)
    assert cmp.identical and all(h.same for h in cmp.hops)
    assert cmp.differing_steps("left") == frozenset()


def test_it_serialises_to_json() -> None:
    packet = natout_packet("pod-to-internet")
    data = compare_traces(natout_trace("on", packet), natout_trace("off", packet)).to_dict()
    again = json.loads(json.dumps(data))
    assert again["identical"] is False
    assert again["deciding"][0]["hop"] == {
        "table": "nat", "chain": "cali-nat-outgoing", "rule": 1, "verdict": "ACCEPT"
    }
    assert again["packet_out_diff"] == [{"field": "src", "left": "10.240.0.4", "right": "10.244.0.10"}]

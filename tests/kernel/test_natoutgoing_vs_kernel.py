"""The prepared natOutgoing comparisons against the kernel: each side's trace
(hops, fate, header after NAT) must equal what netfilter reports when the same
dump, ipsets, host and packet are replayed in a network namespace."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from netviz.engine.compare import compare_traces
from netviz.engine.pipeline import trace_scenario
from netviz.kernel import replay
from netviz.scenario import Scenario
from netviz.testing import hops_diff

pytestmark = pytest.mark.usefixtures("kernel")

NATOUT = Path(__file__).resolve().parents[2] / "fixtures" / "demo" / "calico-natoutgoing"
META: dict[str, Any] = json.loads((NATOUT / "compare.json").read_text())
HOST: dict[str, Any] = json.loads((NATOUT / "host.json").read_text())
CASES = [(c["slug"], side) for c in META["comparisons"] for side in ("on", "off")]


def scenario(slug: str, side: str) -> Scenario:
    packet = next(c["packet"] for c in META["comparisons"] if c["slug"] == slug)
    d = NATOUT / side
    return Scenario(
        ruleset_text=(d / "ruleset.rules").read_text(),
        ipsets_text=(d / "ipsets.ipset").read_text(),
        host=HOST,
        packet=packet,
        name=f"natOutgoing {side}: {slug}",
    )


@pytest.mark.parametrize(("slug", "side"), CASES)
def test_each_side_equals_the_kernel(slug: str, side: str) -> None:
    sc = scenario(slug, side)
    kernel = replay(sc)
    engine = trace_scenario(sc)
    diff = hops_diff(list(kernel.hops), engine.hops(), "kernel", "engine")
    assert not diff, f"{sc.name}\n{diff}\nkernel trace:\n" + "\n".join(kernel.raw)
    assert kernel.verdict == engine.verdict, "\n".join(kernel.raw)
    out = kernel.packet_out
    assert out is not None
    # The kernel's last view of the header: source rewritten or not by MASQUERADE.
    assert (out["src"], out["dst"]) == (str(engine.packet_out.src), str(engine.packet_out.dst))


@pytest.mark.parametrize("slug", [c["slug"] for c in META["comparisons"]])
def test_the_kernel_agrees_on_what_natoutgoing_changes(slug: str) -> None:
    on, off = replay(scenario(slug, "on")), replay(scenario(slug, "off"))
    assert on.packet_out is not None and off.packet_out is not None
    cmp = compare_traces(trace_scenario(scenario(slug, "on")), trace_scenario(scenario(slug, "off")))
    kernel_changed = on.packet_out["src"] != off.packet_out["src"]
    assert kernel_changed == any(f.field == "src" for f in cmp.packet_out_diff)
    if slug in ("pod-to-internet", "pod-to-clusterip"):
        # natOutgoing on: MASQUERADE to eth0's address; off: the pod address.
        assert (on.packet_out["src"], off.packet_out["src"]) == ("10.240.0.4", "10.244.0.10")
        assert {"table": "nat", "chain": "cali-nat-outgoing", "rule": 1, "verdict": "ACCEPT"} in on.hops
        assert not any(h.get("chain") == "cali-nat-outgoing" for h in off.hops)

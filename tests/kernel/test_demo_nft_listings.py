"""The demo nodes' nft listings are ones the kernel takes: `nft -c -f` (and,
where the node has one, after its iptables-save dump) in a fresh namespace."""

from __future__ import annotations

from pathlib import Path

import pytest

from netviz.kernel import netns
from netviz.kernel.replay import ReplayError

DEMO = Path(__file__).resolve().parents[2] / "fixtures" / "demo"
LISTINGS = sorted(DEMO.glob("*/ruleset.nft"))


def test_there_are_nft_demo_nodes() -> None:
    assert len(LISTINGS) >= 3


@pytest.mark.parametrize("listing", LISTINGS, ids=lambda p: p.parent.name)
def test_it_loads_the_listing(kernel: None, listing: Path) -> None:
    dump = listing.parent / "ruleset.rules"
    with netns.namespace("nvz-demo-nft") as ns:
        if dump.exists():
            netns.load(ns, dump.read_text())
        netns.in_ns(ns, ["nft", "-c", "-f", str(listing)])
        netns.in_ns(ns, ["nft", "-f", str(listing)])
        listed = netns.in_ns(ns, ["nft", "list", "tables"])
    for line in listing.read_text().splitlines():
        if line.startswith("table "):
            assert line.removesuffix(" {") in listed


def test_it_refuses_a_broken_listing(kernel: None, tmp_path: Path) -> None:
    # The check above can fail: a listing nft does not accept raises.
    bad = tmp_path / "bad.nft"
    bad.write_text("table inet t {\n\tchain c {\n\t\ttype filter hook input priority filter; policy accept;\n\t\ttcp dport frobnicate accept\n\t}\n}\n")
    with netns.namespace("nvz-demo-nft") as ns, pytest.raises(ReplayError):
        netns.in_ns(ns, ["nft", "-c", "-f", str(bad)])


SCENARIOS = sorted(p for listing in LISTINGS for p in (listing.parent / "scenarios").glob("*.json"))


@pytest.mark.slow
@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: f"{p.parent.parent.name}/{p.stem}")
def test_the_demo_traces_agree_with_the_kernel(kernel: None, path: Path) -> None:
    from netviz.engine.pipeline import trace_scenario
    from netviz.kernel import replay
    from netviz.scenario import load_scenario
    from netviz.testing import hops_diff

    scenario = load_scenario(path)
    observed = replay(scenario)
    engine = trace_scenario(scenario)
    diff = hops_diff(list(observed.hops), engine.hops())
    assert not diff, f"{path.name}\n{diff}\nkernel trace:\n" + "\n".join(observed.raw)
    if observed.verdict is not None:
        assert observed.verdict == engine.verdict

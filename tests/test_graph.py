"""The chain call graph against real dumps: fixtures/demo and
tests/data/realworld."""

from __future__ import annotations

from pathlib import Path

from netviz.engine import graph
from netviz.engine.parser import parse_ruleset
from netviz.engine.ruleset import Ruleset

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "fixtures" / "demo"
REALWORLD = ROOT / "tests" / "data" / "realworld"


def demo(node: str) -> Ruleset:
    return parse_ruleset((DEMO / node / "ruleset.rules").read_text())


def shared(name: str) -> Ruleset:
    return parse_ruleset((REALWORLD / name).read_text())


def test_it_has_one_node_per_chain_and_one_edge_per_jump() -> None:
    rs = demo("docker-host")
    g = graph.call_graph(rs)
    assert g.number_of_nodes() == sum(len(t.chains) for t in rs.tables)
    # filter: FORWARD→DOCKER-USER, FORWARD→DOCKER-ISOLATION-STAGE-1, FORWARD→DOCKER,
    # STAGE-1→STAGE-2; nat: PREROUTING→DOCKER, OUTPUT→DOCKER.
    assert g.number_of_edges() == 6
    edges = {(s, d, data["rule"], data["goto"]) for s, d, data in g.edges(data=True)}
    assert (("filter", "FORWARD"), ("filter", "DOCKER"), 4, False) in edges
    assert (("nat", "OUTPUT"), ("nat", "DOCKER"), 1, False) in edges


def test_it_marks_goto_edges() -> None:
    rs = demo("calico-node")
    g = graph.call_graph(rs)
    gotos = {(s[1], d[1]) for s, d, data in g.edges(data=True) if data["goto"]}
    assert ("cali-from-wl-dispatch", "cali-fw-cali112d888c0c2") in gotos
    assert ("cali-to-wl-dispatch", "cali-tw-cali112d888c0c2") in gotos
    jumps = {(s[1], d[1]) for s, d, data in g.edges(data=True) if not data["goto"]}
    assert ("cali-FORWARD", "cali-from-wl-dispatch") in jumps


def test_it_never_links_chains_across_tables() -> None:
    rs = demo("kube-proxy-node")
    g = graph.call_graph(rs)
    assert all(s[0] == d[0] for s, d in g.edges())
    # DOCKER exists in filter and nat; each table's jumps go to its own.
    assert ("nat", "DOCKER") in g and ("filter", "DOCKER") in g
    assert {s for s, _ in g.in_edges(("nat", "DOCKER"))} == {("nat", "PREROUTING"), ("nat", "OUTPUT")}


def test_it_finds_unreachable_chains() -> None:
    rs = demo("kube-proxy-node")
    unreachable = graph.unreachable_chains(rs)
    # Nothing jumps to the kubelet/kube-proxy canaries or to KUBE-MARK-DROP here.
    assert ("nat", "KUBE-KUBELET-CANARY") in unreachable
    assert ("nat", "KUBE-MARK-DROP") in unreachable
    assert ("nat", "KUBE-SERVICES") not in unreachable
    assert all(not rs.table(t).chain(c).builtin for t, c in unreachable)  # type: ignore[union-attr]
    assert graph.reachable_chains(rs) | unreachable == set(graph.call_graph(rs).nodes)


def test_it_finds_empty_chains() -> None:
    rs = demo("kube-proxy-node")
    empty = graph.empty_chains(rs)
    assert ("nat", "KUBE-NODEPORTS") in empty
    assert ("nat", "INPUT") in empty  # built-in, only its policy applies
    assert ("nat", "KUBE-SERVICES") not in empty


def test_it_measures_depth_from_builtin_chains() -> None:
    depths = graph.chain_depths(demo("kube-proxy-node"))
    assert depths[("nat", "PREROUTING")] == 0
    assert depths[("nat", "KUBE-SERVICES")] == 1
    assert depths[("nat", "KUBE-SVC-NPX46M4PTMTKRN6Y")] == 2
    assert depths[("nat", "KUBE-SEP-EMMXYKITEUOEZBH3")] == 3
    assert ("nat", "KUBE-MARK-DROP") not in depths


def test_it_lists_callers() -> None:
    callers = graph.callers(demo("docker-host"), ("nat", "DOCKER"))
    assert callers == [(("nat", "OUTPUT"), 1, False), (("nat", "PREROUTING"), 1, False)]


def test_it_finds_the_stale_calico_chain_in_the_felix_dump() -> None:
    # felix FV input: a leftover cali-old-chain nobody jumps to.
    rs = shared("kube-proxy-docker-felix-fv.rules")
    names = {c for _, c in graph.unreachable_chains(rs)}
    assert any(n.startswith("cali-old") for n in names), names


def test_it_has_no_cycles_in_loadable_dumps() -> None:
    rs = shared("calico-aks-kubenet-policy-only-filter.rules")
    assert graph.jump_cycles(rs) == []

"""The chain call graph of a ruleset, and what can be read off it.

Nodes are `(table, chain)`; an edge is one rule whose target is a user chain
of the same table (`-j CHAIN` or `-g CHAIN`).  Jumps never cross tables: a
target name is looked up in the rule's own table (iptables-restore rejects a
jump to a chain the table does not declare).

Native nftables tables join the same graph with `"<family> <table>"` as the
table part of the key (`("inet firewalld", "filter_INPUT")`: no iptables
table name holds a space); base chains count as built-in, and besides
`jump`/`goto` every `jump`/`goto` element of a verdict map is an edge.
"""

from __future__ import annotations

from collections import deque
from typing import Union

import networkx as nx

from .nft.model import NftRuleset, SetLit, SetRef, Verdict, VMap
from .nft.model import Table as NftTable
from .ruleset import Ruleset

ChainKey = tuple[str, str]
GraphOrRuleset = Union[Ruleset, "nx.MultiDiGraph[ChainKey]"]


def nft_table_key(family: str, table: str) -> str:
    return f"{family} {table}"


def call_graph(ruleset: Ruleset, nft: NftRuleset | None = None) -> nx.MultiDiGraph:
    graph: nx.MultiDiGraph = nx.MultiDiGraph()
    for table in ruleset.tables:
        for chain in table.chains:
            graph.add_node(
                (table.name, chain.name),
                table=table.name,
                chain=chain.name,
                builtin=chain.builtin,
                policy=chain.policy,
                rules=len(chain.rules),
                line=chain.line,
            )
    for table in ruleset.tables:
        for chain in table.chains:
            for rule in chain.rules:
                target = rule.target
                if target is None or table.chain(target.name) is None:
                    continue  # ACCEPT, DNAT, LOG …: not a chain
                graph.add_edge(
                    (table.name, chain.name),
                    (table.name, target.name),
                    rule=rule.index,
                    line=rule.line,
                    goto=target.goto,
                )
    if nft is not None:
        add_nft_chains(graph, nft)
    return graph


def add_nft_chains(graph: nx.MultiDiGraph, nft: NftRuleset) -> None:
    # iptables-nft's own tables are in the graph already, from the dump.
    tables = [t for t in nft.tables if not t.managed]
    for table in tables:
        key = nft_table_key(table.family, table.name)
        for chain in table.chains:
            graph.add_node(
                (key, chain.name),
                table=key,
                chain=chain.name,
                builtin=chain.base is not None,
                policy=chain.base.policy if chain.base is not None else "",
                rules=len(chain.rules),
                line=chain.line,
            )
    for table in tables:
        key = nft_table_key(table.family, table.name)
        for chain in table.chains:
            for rule in chain.rules:
                for verdict in _rule_verdicts(table, rule.statements):
                    if verdict.kind in ("jump", "goto") and table.chain(verdict.chain) is not None:
                        graph.add_edge(
                            (key, chain.name),
                            (key, verdict.chain),
                            rule=rule.index,
                            line=rule.line,
                            goto=verdict.kind == "goto",
                        )


def _rule_verdicts(table: NftTable, statements: tuple[object, ...]) -> list[Verdict]:
    out: list[Verdict] = []
    for stmt in statements:
        if isinstance(stmt, Verdict):
            out.append(stmt)
        elif isinstance(stmt, VMap):
            elements = stmt.map.elements if isinstance(stmt.map, SetLit) else ()
            if isinstance(stmt.map, SetRef):
                named = table.set(stmt.map.name)
                elements = named.elements if named is not None else ()
            out.extend(e.data for e in elements if isinstance(e.data, Verdict))
    return out


def _graph(source: GraphOrRuleset) -> nx.MultiDiGraph:
    return call_graph(source) if isinstance(source, Ruleset) else source


def builtin_chains(source: GraphOrRuleset) -> list[ChainKey]:
    graph = _graph(source)
    return [node for node, data in graph.nodes(data=True) if data["builtin"]]


def chain_depths(source: GraphOrRuleset) -> dict[ChainKey, int]:
    """Fewest jumps from a built-in chain (0 for the built-ins themselves);
    chains no built-in reaches are absent."""
    graph = _graph(source)
    depths: dict[ChainKey, int] = {}
    queue: deque[ChainKey] = deque()
    for node in builtin_chains(graph):
        depths[node] = 0
        queue.append(node)
    while queue:
        node = queue.popleft()
        for succ in graph.successors(node):
            if succ not in depths:
                depths[succ] = depths[node] + 1
                queue.append(succ)
    return depths


def reachable_chains(source: GraphOrRuleset) -> set[ChainKey]:
    return set(chain_depths(source))


def unreachable_chains(source: GraphOrRuleset) -> set[ChainKey]:
    """User chains no packet can enter: nothing reachable from a built-in
    chain jumps or goes to them (stale chains left behind by a controller)."""
    graph = _graph(source)
    return set(graph.nodes) - reachable_chains(graph)


def empty_chains(source: GraphOrRuleset) -> set[ChainKey]:
    """Chains with no rules: a user chain that only returns, or a built-in
    chain where only the policy applies."""
    graph = _graph(source)
    return {node for node, data in graph.nodes(data=True) if data["rules"] == 0}


def callers(source: GraphOrRuleset, key: ChainKey) -> list[tuple[ChainKey, int, bool]]:
    """(calling chain, rule index, goto) for every rule that targets `key`."""
    graph = _graph(source)
    if key not in graph:
        return []
    return sorted(
        (src, int(data["rule"]), bool(data["goto"]))
        for src, _dst, data in graph.in_edges(key, data=True)
    )


def jump_cycles(source: GraphOrRuleset) -> list[list[ChainKey]]:
    """Loops of jumps.  The kernel refuses to load them (ELOOP from
    mark_source_chains in net/ipv4/netfilter/ip_tables.c), so a dump that
    has one was edited by hand."""
    graph = _graph(source)
    simple: nx.DiGraph[ChainKey] = nx.DiGraph(graph)
    return [sorted(cycle) for cycle in nx.simple_cycles(simple)]

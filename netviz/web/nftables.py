"""The nftables part of the ruleset page: tables by family, base chains at
their hooks, regular chains with their rules, sets and maps with their
elements, all from the parsed listing (store.load_nftables).  Search (`nq`)
narrows rules and set elements to those that contain the text."""

from __future__ import annotations

import re
from typing import Any

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from netviz import models, store
from netviz.engine import graph as engine_graph
from netviz.engine.dot import chain_anchor, nft_key, priority_words
from netviz.engine.nft.model import Chain, NftRuleset, NftSet, Rule, Table, Verdict
from netviz.engine.nft.printer import element_text

# Above this many rules (and without a search) chains are listed without
# their rules; the search finds any rule.
INLINE_RULES = 1500
ELEMENTS_SHOWN = 200
CHAINS_SHOWN = 400
TRACED = ("ip", "ip6", "inet")
_TRAILING_COMMENT = re.compile(r'\s+comment\s+"(?:[^"\\]|\\.)*"\s*$')


def highlight(text: str, query: str) -> SafeString:
    if not query:
        return escape(text)
    out: list[str] = []
    pos = 0
    for m in re.finditer(re.escape(query), text, flags=re.IGNORECASE):
        out.append(escape(text[pos : m.start()]))
        out.append(f"<mark>{escape(m.group(0))}</mark>")
        pos = m.end()
    out.append(escape(text[pos:]))
    # Every piece of user text went through escape() above.
    return mark_safe("".join(out))


def _table_note(table: Table) -> str:
    if table.managed:
        return "managed by iptables-nft: taken from the iptables dump; this copy is shown, not traced"
    if table.family not in TRACED:
        return f"{table.family} family: shown, not traced"
    return ""


def _nft_graph(ruleset: models.Ruleset, nft: NftRuleset) -> dict[str, Any]:
    def compute() -> dict[str, Any]:
        graph = engine_graph.call_graph(store.load_ruleset(ruleset), nft)
        callers: dict[tuple[str, str], list[tuple[str, int, bool]]] = {}
        for src, dst, data in graph.edges(data=True):
            if " " in dst[0]:
                callers.setdefault(dst, []).append((src[1], int(data["rule"]), bool(data["goto"])))
        for entries in callers.values():
            entries.sort()
        return {
            "callers": callers,
            "unreachable": engine_graph.unreachable_chains(graph),
            "empty": engine_graph.empty_chains(graph),
        }

    return store.derived(ruleset, "nft_graph", compute)


def _rule_row(table: Table, rule: Rule, query: str) -> dict[str, Any]:
    key = engine_graph.nft_table_key(table.family, table.name)
    targets = [
        {"verdict": v.kind, "chain": v.chain, "url": "#" + chain_anchor(key, v.chain)}
        for v in rule.statements
        if isinstance(v, Verdict) and v.kind in ("jump", "goto") and table.chain(v.chain) is not None
    ]
    # The comment has its own line under the rule: not twice.
    text = _TRAILING_COMMENT.sub("", rule.text) if rule.comment else rule.text
    return {
        "rule": rule,
        "text_html": highlight(text, query),
        "comment_html": highlight(rule.comment, query) if rule.comment else "",
        "packets": rule.counter[0] if rule.counter else None,
        "bytes": rule.counter[1] if rule.counter else None,
        "targets": targets,
        "anchor": chain_anchor(key, rule.chain) + f"-rule-{rule.index}",
    }


def _matches(rule: Rule, query: str) -> bool:
    q = query.lower()
    return q in rule.text.lower() or q in rule.comment.lower()


def _chain_block(
    table: Table, chain: Chain, query: str, inline: bool, analysis: dict[str, Any]
) -> dict[str, Any] | None:
    key = (engine_graph.nft_table_key(table.family, table.name), chain.name)
    rules = [r for r in chain.rules if _matches(r, query)] if query else list(chain.rules)
    if query and not rules and query.lower() not in chain.name.lower():
        return None
    base = chain.base
    return {
        "chain": chain,
        "anchor": chain_anchor(*key),
        "base": base,
        "priority_words": priority_words(table.family, base.priority, base.hook) if base else "",
        "rule_count": len(chain.rules),
        "rows": [_rule_row(table, r, query) for r in rules] if inline or query else [],
        "matched": len(rules),
        "callers": [
            {"chain": src, "rule": idx, "goto": goto, "url": "#" + chain_anchor(key[0], src)}
            for src, idx, goto in analysis["callers"].get(key, [])[:12]
        ],
        "unreachable": key in analysis["unreachable"],
        "empty": key in analysis["empty"],
    }


def _set_block(nft_set: NftSet, query: str) -> dict[str, Any] | None:
    texts = [element_text(e) + (f' comment "{e.comment}"' if e.comment else "") for e in nft_set.elements]
    shown = texts
    if query and query.lower() not in nft_set.name.lower():
        shown = [t for t in texts if query.lower() in t.lower()]
        if not shown:
            return None
    key_type = " . ".join(nft_set.key_type) or nft_set.typeof
    return {
        "set": nft_set,
        "kind": "map" if nft_set.is_map else "set",
        "type": f"{key_type} : {nft_set.data_type}" if nft_set.data_type else key_type,
        "count": len(texts),
        "elements": [highlight(t, query) for t in shown[:ELEMENTS_SHOWN]],
        "more": max(len(shown) - ELEMENTS_SHOWN, 0),
        "matched": len(shown),
    }


def nftables_context(ruleset: models.Ruleset, query: str = "") -> dict[str, Any] | None:
    nft = store.load_nftables(ruleset)
    if nft is None:
        return None
    analysis = _nft_graph(ruleset, nft)
    total = sum(len(c.rules) for t in nft.tables for c in t.chains)
    inline = total <= INLINE_RULES
    tables: list[dict[str, Any]] = []
    chains_shown = 0
    for table in nft.tables:
        chains = []
        for chain in table.chains:
            if chains_shown >= CHAINS_SHOWN:
                break
            block = _chain_block(table, chain, query, inline, analysis)
            if block is not None:
                chains.append(block)
                chains_shown += 1
        sets = [b for b in (_set_block(s, query) for s in table.sets) if b is not None]
        if query and not chains and not sets:
            continue
        tables.append(
            {
                "table": table,
                "label": f"table {table.family} {table.name}",
                "id": "table-" + nft_key(table.family, table.name, ""),
                "note": _table_note(table),
                "base_chains": [c for c in chains if c["base"] is not None],
                "chains": chains,
                "sets": sets,
            }
        )
    return {
        "tables": tables,
        "query": query,
        "inline": inline,
        "total_rules": total,
        "table_count": len(nft.tables),
        "notes": nft.notes,
        "truncated": chains_shown >= CHAINS_SHOWN,
        "chains_shown": CHAINS_SHOWN,
        "matched_rules": sum(c["matched"] for t in tables for c in t["chains"]) if query else None,
        "matched_elements": sum(s["matched"] for t in tables for s in t["sets"]) if query else None,
        "table_keys": [engine_graph.nft_table_key(t.family, t.name) for t in nft.tables if not t.managed],
    }

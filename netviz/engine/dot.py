"""Ruleset → DOT text.  Rendering to SVG happens elsewhere (netviz/render.py).

Everything a user uploaded (chain names, comments, ipset names) reaches DOT
only through `escape_dot_label` / `escape_html_label` / `quote`, so no upload
can break out of a label or inject DOT attributes, and graphviz then writes
it XML-escaped into the SVG.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import quote as url_quote

from .graph import ChainKey, call_graph, chain_depths, empty_chains, unreachable_chains
from .hooks import NAMED_PRIORITY
from .nft.model import NftRuleset
from .ruleset import Ruleset

# Characters DOT cannot carry inside a quoted string as such.  Graphviz reads
# `\` as the start of an escape (\N, \G, \n, \l, \r …, lib/common/labels.c
# strdup_and_subst_obj / make_label), a bare `"` ends the string, and a raw
# newline is kept but renders unpredictably; NUL truncates the C string.
_CONTROL = {chr(c): "" for c in range(0x20) if chr(c) not in "\n\r\t"}


def escape_dot_label(text: str) -> str:
    """Escape `text` for use inside a double-quoted DOT string (no quotes added).

    Newlines become graphviz's `\\n` (centred line break); `{ } | < >` are
    escaped too, so the result is also safe in a `shape=record` label, where
    those characters separate fields.
    """
    out: list[str] = []
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\r":
            continue
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append(" ")
        elif ch == "&":
            # graphviz decodes entities in labels: `&amp;` must stay literal.
            out.append("&amp;")
        elif ch in "{}|<>":
            out.append("\\" + ch)
        elif ch in _CONTROL:
            continue
        else:
            out.append(ch)
    return "".join(out)


def escape_html_label(text: str) -> str:
    """Escape `text` for a graphviz HTML-like label (`label=<…>`).

    HTML-like labels are XML: `& < > "` must be entities.  Newlines become
    `<br/>` — the only line break those labels know.  Graphviz still expands
    `\\N`, `\\G` … in the text of HTML labels (the node's / graph's name) and
    reads `\\\\` as one backslash, so a backslash is doubled; a tab, which
    graphviz drops, becomes a space.
    """
    out: list[str] = []
    for ch in text:
        if ch == "&":
            out.append("&amp;")
        elif ch == "<":
            out.append("&lt;")
        elif ch == ">":
            out.append("&gt;")
        elif ch == '"':
            out.append("&quot;")
        elif ch == "'":
            out.append("&#39;")
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\t":
            out.append(" ")
        elif ch == "\r":
            continue
        elif ch == "\n":
            out.append("<br/>")
        elif ch in _CONTROL:
            continue
        else:
            out.append(ch)
    return "".join(out)


def quote(text: str) -> str:
    """A DOT ID or attribute value: the escaped text in double quotes.

    Unlike `escape_dot_label` this leaves `{ } | < >` alone: they are plain
    characters in IDs and in URL/tooltip attributes.
    """
    escaped = (
        text.replace("\\", "\\\\").replace('"', '\\"').replace("\r", "").replace("\n", "\\n")
    )
    return '"' + "".join(ch for ch in escaped if ch not in _CONTROL) + '"'


def nft_key(family: str, table: str, chain: str) -> str:
    # nft names may hold any character (quoted in the listing): percent-encode
    # them and turn `%` into `~` (which quote() itself always encodes), so the
    # key is unique, readable and safe in an HTML/SVG id and a CSS selector.
    def part(text: str) -> str:
        return url_quote(text, safe="-_.").replace("%", "~")

    return f"nft-{part(family)}-{part(table)}-{part(chain)}"


def priority_words(family: str, priority: int, hook: str = "") -> str:
    """10 → "filter + 10", -100 → "dstnat": the nearest of nft's names
    (nft(8), table of standard priority names) when it is within 20.
    As nft lists them, `dstnat` is a name at prerouting only and `srcnat`
    at postrouting only (elsewhere -100 stays -100)."""
    if family not in ("ip", "ip6", "inet"):
        return ""
    hook = hook.lower()
    names = {
        k: v for k, v in NAMED_PRIORITY.items()
        if not hook or (k != "dstnat" or hook == "prerouting") and (k != "srcnat" or hook == "postrouting")
    }
    name, value = min(names.items(), key=lambda kv: (abs(priority - kv[1]), kv[1]))
    diff = priority - value
    if abs(diff) > 20:
        return ""
    return name if diff == 0 else f"{name} {'+' if diff > 0 else '-'} {abs(diff)}"


def chain_anchor(table: str, chain: str) -> str:
    """The HTML id of a chain's section on the ruleset page."""
    if " " in table:
        # A native nft table, keyed "<family> <table>" (graph.nft_table_key).
        family, name = table.split(" ", 1)
        return "chain-" + nft_key(family, name, chain)
    # iptables chain names hold no whitespace (xtables: max 28 chars, no
    # spaces), so "<table>-<chain>" is a valid, unique id.
    return f"chain-{table}-{chain}"


def _node_id(key: ChainKey) -> str:
    return quote(f"{key[0]}:{key[1]}")


# Colours: built-in chains blue, user chains white, unreachable ones amber,
# empty ones drawn dotted in grey (legend on the ruleset page mirrors this).
STYLE_BUILTIN = 'shape=box style="filled,bold" fillcolor="#dbeafe" color="#1d4ed8"'
STYLE_USER = 'shape=box style="filled,rounded" fillcolor="#ffffff" color="#57606a"'
STYLE_UNREACHABLE = 'shape=box style="filled,rounded,dashed" fillcolor="#fff1c2" color="#9a6700"'
STYLE_EMPTY = 'shape=box style="rounded,dotted" color="#8c959f" fontcolor="#57606a"'


def callgraph_dot(
    ruleset: Ruleset,
    table: str | None = None,
    *,
    nft: NftRuleset | None = None,
    describe: Callable[[str, str], str | None] | None = None,
    href: Callable[[str, str], str] | None = None,
) -> str:
    """The chain call graph as DOT: one node per chain, one edge per
    (caller, callee, -j/-g) with the rule numbers in its tooltip.

    `describe(table, chain)` may return a readable subtitle for a node (the
    kube-proxy service of a KUBE-SVC chain, …); `href(table, chain)` the link
    a node points to (default: the chain's anchor on the ruleset page).
    """
    graph = call_graph(ruleset, nft)
    unreachable = unreachable_chains(graph)
    empty = empty_chains(graph)
    depths = chain_depths(graph)
    # Graphviz copies URLs into the SVG as they are: percent-encode the chain
    # part so a name can never close the attribute.
    link = href or (lambda t, c: "#" + url_quote(chain_anchor(t, c), safe="-_.~"))

    lines = [
        "digraph callgraph {",
        '  graph [rankdir=LR fontname="Helvetica" fontsize=11 nodesep=0.25 ranksep=0.6];',
        '  node [fontname="Helvetica" fontsize=10 margin="0.12,0.04" height=0.3];',
        '  edge [color="#57606a" arrowsize=0.6];',
    ]
    clusters: dict[str, list[ChainKey]] = {}
    for key in graph.nodes:
        clusters.setdefault(key[0], []).append(key)
    for name, keys in clusters.items():
        if table is not None and name != table:
            continue
        lines.append(f"  subgraph {quote('cluster_' + name)} {{")
        lines.append(
            f'    label={quote(name)} fontname="Helvetica-Bold" fontsize=12 '
            'style="rounded" color="#d0d7de";'
        )
        for key in keys:
            chain = graph.nodes[key]
            if chain["builtin"]:
                style = STYLE_BUILTIN
            elif key in unreachable:
                style = STYLE_UNREACHABLE
            elif key in empty:
                style = STYLE_EMPTY
            else:
                style = STYLE_USER
            label = key[1]
            subtitle = describe(*key) if describe else None
            if subtitle:
                label += "\n" + subtitle
            count = chain["rules"]
            if chain["builtin"] and chain["policy"]:
                label += f"\npolicy {chain['policy']}, {count} rule{'s' if count != 1 else ''}"
            else:
                label += f"\n{count} rule{'s' if count != 1 else ''}"
            tooltip = key[1]
            if key in unreachable:
                tooltip += " (unreachable from any built-in chain)"
            elif key in depths and not chain["builtin"]:
                tooltip += f" (depth {depths[key]})"
            if key in empty:
                tooltip += " (empty)"
            lines.append(
                f"    {_node_id(key)} [label=\"{escape_dot_label(label)}\" {style} "
                f"URL={quote(link(*key))} target=\"_top\" "
                f"tooltip={quote(tooltip)}];"
            )
        lines.append("  }")

    # One edge per (caller, callee, kind); the rules that make it go in the
    # tooltip, so a KUBE-SERVICES with 500 jumps stays readable.
    grouped: dict[tuple[ChainKey, ChainKey, bool], list[int]] = {}
    for src, dst, data in graph.edges(data=True):
        if table is not None and src[0] != table:
            continue
        grouped.setdefault((src, dst, bool(data["goto"])), []).append(int(data["rule"]))
    order = {key: i for i, key in enumerate(graph.nodes)}
    for (src, dst, goto), rules in sorted(
        grouped.items(), key=lambda kv: (order[kv[0][0]], order[kv[0][1]], kv[0][2])
    ):
        rules.sort()
        if " " in src[0]:  # nft words
            flag = "goto" if goto else "jump"
        else:
            flag = "-g" if goto else "-j"
        shown = ", ".join(f"#{r}" for r in rules[:20])
        if len(rules) > 20:
            shown += f" … ({len(rules)} rules)"
        attrs = [f"tooltip={quote(f'{src[1]} {shown} {flag} {dst[1]}')}"]
        if goto:
            attrs.append('style="dashed"')
        if len(rules) > 1:
            attrs.append(f'penwidth={min(1 + len(rules) / 10, 3):.1f}')
        lines.append(f"  {_node_id(src)} -> {_node_id(dst)} [{' '.join(attrs)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"

"""A Trace as Graphviz DOT: the netfilter flow diagram and the chains entered.

Pure text generation, no rendering (netviz/render.py turns DOT into SVG).
Every user-derived string goes through an escaping function: quoted labels
via escape_dot_label, HTML-like labels via _html (XML entities).  Node and
edge ids are stable (`flow-<hook>-<table>`, `flow-route-in`, `chain-<n>`), so
CSS and the presenter mode can address them in the SVG.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field

from .context import Result
from .dot import escape_dot_label, escape_html_label, nft_key, priority_words
from .hooks import HOOKS, IPTABLES_HOOKS, HookEntry, hook_order
from .nft.evaluate import NftEval
from .report import drop_step, in_chain
from .ruleset import BUILTIN_CHAINS, Ruleset
from .trace import Step, StepKind, Trace

# Colours (GitHub Primer palette: AA contrast on white for the text colours).
BLUE = "#0969da"
GREEN = "#1a7f37"
GREEN_BG = "#dafbe1"
GREY = "#6e7781"
GREY_BG = "#f6f8fa"
LIGHT = "#d0d7de"
AMBER = "#9a6700"
AMBER_BG = "#fff8c5"
RED = "#cf222e"
RED_BG = "#ffebe9"
LIT_BG = "#ddf4ff"
FONT = "Helvetica,Arial,sans-serif"
MONO = "DejaVu Sans Mono,Menlo,Consolas,monospace"

# Tables per hook in the order the engine runs them (netviz/engine/hooks.py),
# for a diagram drawn without a ruleset: every iptables table.
FLOW: dict[str, tuple[str, ...]] = {
    hook: tuple(
        member.table or entry.label
        for entry in hook_order(hook, IPTABLES_HOOKS)
        for member in (entry.members or (entry,))
    )
    for hook in HOOKS
}

NET_IN = "flow-net-in"
NET_OUT = "flow-net-out"
LOCAL_IN = "flow-local-in"
LOCAL_OUT = "flow-local-out"
ROUTE_IN = "flow-route-in"
ROUTE_OUT = "flow-route-out"
ROUTE_LABEL = "routing\ndecision"
LOCAL_IN_LABEL = "local process\n(receives)"
LOCAL_OUT_LABEL = "local process\n(sends)"


def flow_node_id(hook: str, table: str) -> str:
    return f"flow-{hook}-{table}"


@dataclass(frozen=True)
class FlowBox:
    """One function the packet meets at a hook: an iptables table, conntrack,
    or a native nftables base chain."""

    hook: str
    key: str  # the node id is flow_node_id(hook, key)
    caption: str
    kind: str  # "table", "conntrack", "chain"
    table: str = ""
    family: str = ""  # nft family; "" for iptables tables
    chain: str = ""  # the nft base chain
    declared: bool = True

    @property
    def node(self) -> str:
        return flow_node_id(self.hook, self.key)


def _priority_text(family: str, priority: int, hook: str) -> str:
    # firewalld's filter_INPUT: "priority filter + 10", as nft lists it.
    return f"priority {priority_words(family, priority, hook) or priority}"


def _box(hook: str, entry: HookEntry, declared: set[str] | None) -> FlowBox:
    if entry.kind == "conntrack":
        return FlowBox(hook, "conntrack", "conntrack", "conntrack")
    if entry.family:
        caption = f"{entry.family} {entry.table}\n{entry.chain}\n{entry.type}, {_priority_text(entry.family, entry.priority, hook)}"
        return FlowBox(
            hook, nft_key(entry.family, entry.table, entry.chain), caption, "chain",
            table=entry.table, family=entry.family, chain=entry.chain,
        )
    return FlowBox(
        hook, entry.table, _table_caption(hook, entry.table), "table", table=entry.table,
        declared=declared is None or entry.table in declared,
    )


def flow_layout(ruleset: Ruleset | None = None, nft: NftEval | None = None) -> dict[str, tuple[FlowBox, ...]]:
    """Every hook's boxes in the order the kernel calls them: the engine's
    hook registry (hooks.hook_order) for this ruleset's nft base chains, with
    every iptables table drawn (the undeclared ones marked), and the NAT hook
    opened up into its nat chains."""
    declared = {t.name for t in ruleset.tables} if ruleset is not None else None
    entries = nft.entries if nft is not None else {}
    layout: dict[str, tuple[FlowBox, ...]] = {}
    for hook in HOOKS:
        boxes: list[FlowBox] = []
        for entry in hook_order(hook, IPTABLES_HOOKS, entries.get(hook, ())):
            for member in entry.members or (entry,):
                boxes.append(_box(hook, member, declared))
        layout[hook] = tuple(boxes)
    return layout


def _table_caption(hook: str, table: str) -> str:
    if table == "nat":
        return "nat (DNAT)" if hook in ("PREROUTING", "OUTPUT") else "nat (SNAT)"
    return table


def _q(text: str) -> str:
    return f'"{escape_dot_label(text)}"'


def _attrs(**attrs: str | None) -> str:
    parts = []
    for key, value in attrs.items():
        if value is None:
            continue
        if value.startswith("<") and value.endswith(">"):
            parts.append(f"{key}={value}")  # HTML-like label, already escaped
        else:
            parts.append(f'{key}="{value}"')
    return "[" + " ".join(parts) + "]"


def _html(text: str) -> str:
    # HTML-like labels are XML for graphviz; rule text never holds a newline.
    return escape_html_label(text.replace("\n", " "))


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- the flow diagram -----------------------------------------------------------


@dataclass
class _FlowState:
    # node id → "consulted" / "skipped"
    status: dict[str, str] = field(default_factory=dict)
    order: dict[str, int] = field(default_factory=dict)  # node id → hop number
    path: list[str] = field(default_factory=list)  # node ids in order of passage
    drop: str | None = None  # node id of the drop point
    drop_text: str = ""


def _route_node_for(steps: tuple[Step, ...], i: int) -> str:
    # The routing decision after PREROUTING decides INPUT vs FORWARD; the one
    # for locally generated packets precedes OUTPUT (and re-routing after
    # mangle/nat OUTPUT is shown on the same node).
    for later in steps[i + 1 :]:
        if later.kind is not StepKind.ROUTE and later.hook:
            return ROUTE_IN if later.hook in ("INPUT", "FORWARD") else ROUTE_OUT
    for earlier in reversed(steps[:i]):
        if earlier.hook:
            return ROUTE_IN if earlier.hook == "PREROUTING" else ROUTE_OUT
    return ROUTE_OUT


def step_flow_nodes(trace: Trace, layout: dict[str, tuple[FlowBox, ...]] | None = None) -> list[str | None]:
    """The flow diagram node each step happens in (None: none of them).

    An nft step belongs to the base chain the packet entered at that hook: a
    step at depth 0 is in a base chain, deeper ones in chains it jumped to."""
    # Without a layout every node a step names is kept (the caller draws
    # the diagram of the same ruleset).
    nodes_of = {hook: {b.node for b in boxes} for hook, boxes in layout.items()} if layout else None
    out: list[str | None] = []
    base: tuple[str, str, str, str] | None = None  # hook, family, table, chain
    for i, step in enumerate(trace.steps):
        family = getattr(step, "family", "") or ""
        node: str | None = None
        if step.kind is StepKind.ROUTE:
            bridge = step.text.startswith("bridge decision")
            node = ROUTE_IN if bridge else _route_node_for(trace.steps, i)
        elif step.kind is StepKind.DROP and not step.table and step.hook in ("PREROUTING", ""):
            # Stopped by the routing decision itself (a sysctl such as
            # rp_filter or forwarding, a martian address, no route).
            node = ROUTE_IN if step.hook == "PREROUTING" else ROUTE_OUT
        elif step.kind is StepKind.CONNTRACK:
            node = flow_node_id(step.hook, "conntrack")
        elif family and step.table:
            if step.depth == 0 or base is None or base[:3] != (step.hook, family, step.table):
                base = (step.hook, family, step.table, step.chain)
            node = flow_node_id(step.hook, nft_key(family, step.table, base[3]))
        elif step.table:
            node = flow_node_id(step.hook, step.table)
        if nodes_of is not None and node not in nodes_of.get(step.hook, set()) and node not in (ROUTE_IN, ROUTE_OUT):
            node = None
        out.append(node)
    return out


def _hook_nodes(layout: dict[str, tuple[FlowBox, ...]], hook: str) -> list[str]:
    nodes = [b.node for b in layout[hook]]
    if hook == "PREROUTING":
        nodes.append(ROUTE_IN)
    if hook == "OUTPUT":
        nodes.insert(0, ROUTE_OUT)
    return nodes


def _flow_state(trace: Trace, layout: dict[str, tuple[FlowBox, ...]]) -> _FlowState:
    st = _FlowState()
    counter = 0
    nodes = step_flow_nodes(trace, layout)
    for step, node in zip(trace.steps, nodes, strict=True):
        if node is None:
            continue
        if step.kind is StepKind.SKIP and step.rule is None:
            st.status.setdefault(node, "skipped")
            continue
        if step.kind is not StepKind.ROUTE:
            st.status[node] = "consulted"
        if node not in st.order:
            counter += 1
            st.order[node] = counter

    dropped = drop_step(trace)
    if dropped is not None:
        idx = trace.steps.index(dropped)
        node = nodes[idx]
        if node is None and idx > 0:
            node = nodes[idx - 1]
        if node is None and dropped.hook in layout:
            node = _hook_nodes(layout, dropped.hook)[0]
        st.drop = node
        st.drop_text = dropped.text if dropped.kind is StepKind.DROP else (
            f"{dropped.chain} policy DROP" if dropped.kind is StepKind.POLICY
            else f"{dropped.chain} rule {dropped.rule}: {dropped.verdict}"
        )

    hooks = list(trace.hooks) or _hooks_from_steps(trace)
    path: list[str] = [LOCAL_OUT if trace.packet_in.in_iface is None else NET_IN]
    for n, hook in enumerate(hooks):
        if hook not in layout:
            continue
        path.extend(_hook_nodes(layout, hook))
        if hook == "INPUT":
            path.append(LOCAL_IN)
        if hook == "POSTROUTING" and (n + 1 == len(hooks) or hooks[n + 1] != "PREROUTING"):
            path.append(NET_OUT)
    if st.drop is not None and st.drop in path:
        path = path[: path.index(st.drop) + 1]
    elif trace.verdict == "DROP" and st.order:
        last = max(st.order, key=lambda k: st.order[k])
        if last in path:
            path = path[: path.index(last) + 1]
    st.path = path
    return st


def _hooks_from_steps(trace: Trace) -> list[str]:
    hooks: list[str] = []
    for step in trace.steps:
        if step.hook in HOOKS and (not hooks or hooks[-1] != step.hook):
            hooks.append(step.hook)
    return hooks


def _base_edges(layout: dict[str, tuple[FlowBox, ...]]) -> list[tuple[str, str]]:
    edges: list[tuple[str, str]] = []

    def chain(nodes: list[str]) -> None:
        edges.extend(itertools.pairwise(nodes))

    def at(hook: str) -> list[str]:
        return [b.node for b in layout[hook]]

    chain([NET_IN, *at("PREROUTING"), ROUTE_IN])
    chain([ROUTE_IN, *at("INPUT"), LOCAL_IN])
    chain([ROUTE_IN, *at("FORWARD")])
    chain([LOCAL_OUT, ROUTE_OUT, *at("OUTPUT")])
    post = at("POSTROUTING")
    edges.append((at("FORWARD")[-1], post[0]))
    edges.append((at("OUTPUT")[-1], post[0]))
    chain([*post, NET_OUT])
    return edges


def flow_dot(trace: Trace | None, ruleset: Ruleset | None = None, nft: NftEval | None = None) -> str:
    layout = flow_layout(ruleset, nft)
    st = _flow_state(trace, layout) if trace is not None else _FlowState()
    lit_edges = set(zip(st.path, st.path[1:]))
    on_path = set(st.path)

    out: list[str] = [
        "digraph netfilter {",
        (f'  graph [rankdir=LR fontname="{FONT}" fontsize=11 nodesep=0.15 ranksep=0.28 '
        'bgcolor="transparent" id="flow" newrank=true];'),
        (f'  node [fontname="{FONT}" fontsize=11 shape=box style="rounded,filled" '
        f'fillcolor="white" color="{GREY}" fontcolor="#24292f" height=0.3 margin="0.1,0.04"];'),
        f'  edge [color="{LIGHT}" arrowsize=0.6 penwidth=1.2];',
    ]

    def node_attrs(node: str, label: str, kind: str, declared: bool = True) -> str:
        classes = ["flow-node", f"flow-{kind}"]
        fill, color, fontcolor, style, penwidth = "white", GREY, "#24292f", "rounded,filled", "1"
        status = st.status.get(node)
        absent = kind == "table" and not declared
        if absent:
            classes.append("absent")
            fill, color, fontcolor, style = GREY_BG, LIGHT, GREY, "rounded,filled,dashed"
            label += "\n(not in dump)"
        if kind == "chain":
            # A native nftables base chain: told apart from iptables tables.
            fill = "#fbefff" if trace is None else fill
        if trace is not None:
            if node in st.order or status == "consulted":
                classes.append("lit")
                fill, color, penwidth = LIT_BG, BLUE, "2"
            elif status == "skipped":
                classes.append("skipped")
                fill, color, fontcolor, style = GREY_BG, LIGHT, GREY, "rounded,filled,dashed"
                label += "\n(skipped)"
            elif node in on_path and kind in ("end", "route"):
                classes.append("lit")
                fill, color, penwidth = LIT_BG, BLUE, "2"
            elif node in on_path:
                classes.append("passed")
            elif not absent:
                classes.append("off")
                color, fontcolor = LIGHT, GREY
        if node in st.order:
            classes.append(f"hop-{st.order[node]}")
            label = f"{st.order[node]} · {label}"
        if st.drop == node:
            classes.append("drop")
            fill, color, fontcolor, penwidth = RED_BG, RED, RED, "2.5"
            label += "\n✗ DROP"
        return _attrs(
            id=escape_dot_label(node),
            label=escape_dot_label(label),
            tooltip=escape_dot_label(st.drop_text) if st.drop == node and st.drop_text else None,
            **{"class": " ".join(classes)},
            fillcolor=fill,
            color=color,
            fontcolor=fontcolor,
            style=style,
            penwidth=penwidth,
        )

    out.append(f"  {_q(NET_IN)} {node_attrs(NET_IN, 'network in', 'end')};")
    out.append(f"  {_q(NET_OUT)} {node_attrs(NET_OUT, 'network out', 'end')};")
    out.append(f"  {_q(LOCAL_IN)} {node_attrs(LOCAL_IN, LOCAL_IN_LABEL, 'end')};")
    out.append(f"  {_q(LOCAL_OUT)} {node_attrs(LOCAL_OUT, LOCAL_OUT_LABEL, 'end')};")
    # A frame entering a Linux bridge port: the bridge decides first (bridged
    # to another port, or up to IP routing); its decision is the tooltip.
    bridge = next((s.text for s in trace.steps if s.kind is StepKind.ROUTE and s.text.startswith("bridge decision")),
                  "") if trace is not None else ""
    route_in = node_attrs(ROUTE_IN, "bridge /\nrouting\ndecision" if bridge else ROUTE_LABEL, "route")[:-1]
    if bridge and st.drop != ROUTE_IN:
        route_in += f' tooltip="{escape_dot_label(bridge)}"'
    out.append(f"  {_q(ROUTE_IN)} {route_in} shape=diamond];")
    out.append(
        f"  {_q(ROUTE_OUT)} {node_attrs(ROUTE_OUT, ROUTE_LABEL, 'route')[:-1]} shape=diamond];"
    )
    for hook in HOOKS:
        hook_lit = trace is not None and any(b.node in on_path for b in layout[hook])
        out.append(f'  subgraph "cluster_{hook}" {{')
        out.append(
            f'    graph [id="flow-{hook}" label="{hook}" labeljust=l fontsize=12 '
            f'fontname="{FONT}" style="rounded{",bold" if hook_lit else ""}" '
            f'color="{BLUE if hook_lit else LIGHT}" fontcolor="{BLUE if hook_lit else GREY}"];'
        )
        for box in layout[hook]:
            text = node_attrs(box.node, box.caption, box.kind, box.declared)
            if box.kind == "conntrack":
                text = text[:-1] + " shape=ellipse]"
            out.append(f"    {_q(box.node)} {text};")
        out.append("  }")

    # Keep the drawing in the kernel's reading order: the hooks on the receive
    # side, the local process in the middle, the send side after it.
    out.append(f"  {{ rank=same; {_q(layout['INPUT'][0].node)}; {_q(layout['FORWARD'][0].node)}; }}")

    for a, b in _base_edges(layout):
        lit = (a, b) in lit_edges
        edge: dict[str, str | None] = {
            "id": escape_dot_label(f"{a}--{b}"), "class": "flow-edge lit" if lit else "flow-edge"
        }
        if lit:
            edge.update(color=BLUE, penwidth="2.5")
        out.append(f"  {_q(a)} -> {_q(b)} {_attrs(**edge)};")
    # The loopback leg of a local → local packet (POSTROUTING → lo → PREROUTING).
    loop = (layout["POSTROUTING"][-1].node, layout["PREROUTING"][0].node)
    if loop in lit_edges:
        out.append(
            f"  {_q(loop[0])} -> {_q(loop[1])} "
            + _attrs(id="flow-loopback", label="lo", color=BLUE, penwidth="2.5", fontname=FONT,
                     fontcolor=BLUE,
                     style="dashed", constraint="false", **{"class": "flow-edge lit"})
            + ";"
        )
    out.append("}")
    return "\n".join(out) + "\n"


# --- chains, rule by rule ----------------------------------------------------------

COLLAPSE_RUN = 8  # runs of more not-matched rules than this are collapsed
KEEP_HEAD = 3
KEEP_TAIL = 2


@dataclass
class _Row:
    step: Step
    port: str


@dataclass
class _Entry:
    chain: str
    depth: int
    node: str
    rows: list[_Row] = field(default_factory=list)


def _segment(trace: Trace, table: str, chain: str, hook: str | None) -> list[Step]:
    steps = [s for s in trace.steps if s.table == table and in_chain(s)]
    if hook is None:
        hook = next((s.hook for s in steps if s.chain == chain), None)
        if hook is None:
            return []
    steps = [s for s in steps if s.hook == hook]
    start = next((i for i, s in enumerate(steps) if s.chain == chain), None)
    if start is None:
        return []
    first = steps[start]
    if first.depth == 0:
        return steps[start:]
    # A user chain: from its entry until the traversal falls back below it.
    seg = [first]
    for s in steps[start + 1 :]:
        if s.depth < first.depth or (s.depth == first.depth and s.chain != chain
                                     and seg[-1].verdict not in (f"GOTO:{s.chain}",)):
            break
        seg.append(s)
    return seg


def _jump_target(verdict: str | None) -> tuple[str, bool] | None:
    if verdict and verdict.startswith(("JUMP:", "GOTO:")):
        return verdict.split(":", 1)[1], verdict.startswith("GOTO:")
    return None


def chain_dot(
    trace: Trace,
    table: str,
    chain: str,
    hook: str | None = None,
    ruleset: Ruleset | None = None,
) -> str:
    steps = _segment(trace, table, chain, hook)
    entries: list[_Entry] = []
    edges: list[str] = []
    stack: dict[int, _Entry] = {}
    pending: tuple[_Entry, _Row, str, bool] | None = None  # from, row, target, goto

    def new_entry(name: str, depth: int) -> _Entry:
        entry = _Entry(name, depth, f"chain-{len(entries) + 1}")
        entries.append(entry)
        return entry

    current: _Entry | None = None
    for step in steps:
        if current is not None and step.chain == current.chain and step.depth == current.depth:
            entry = current
        elif step.depth in stack and stack[step.depth].chain == step.chain and (
            current is None or step.depth < current.depth
        ):
            entry = stack[step.depth]
            if current is not None and current.rows:
                edges.append(_edge(current.node, current.rows[-1].port, entry.node, None,
                                   "return", "dotted", GREY, "chain-return"))
        else:
            entry = new_entry(step.chain, step.depth)
            if pending is not None and pending[2] == step.chain:
                src, row, _, goto = pending
                edges.append(_edge(src.node, row.port, entry.node, "title",
                                   "goto" if goto else "jump", "dashed", BLUE,
                                   "chain-goto" if goto else "chain-jump"))
        pending = None
        stack[step.depth] = entry
        for d in [d for d in stack if d > step.depth]:
            del stack[d]
        current = entry
        row = _Row(step, f"r{len(entry.rows) + 1}")
        entry.rows.append(row)
        target = _jump_target(step.verdict) if step.result is Result.MATCH else None
        if target is not None:
            pending = (entry, row, target[0], target[1])

    hook_name = steps[0].hook if steps else (hook or "")
    out = [
        "digraph chains {",
        (f'  graph [rankdir=TB fontname="{FONT}" fontsize=11 bgcolor="transparent" '
        f'nodesep=0.3 ranksep=0.45 id="chains"];'),
        f'  node [shape=plaintext fontname="{FONT}" fontsize=10];',
        f'  edge [fontname="{FONT}" fontsize=9 arrowsize=0.7];',
    ]
    if not entries:
        msg = f"The packet did not enter {table} {chain}" + (f" in {hook}" if hook else "") + "."
        out.append(f'  empty [id="chain-empty" shape=note label={_q(msg)}];')
    for entry in entries:
        out.append(f"  {_q(entry.node)} [id={_q(entry.node)} "
                   f'class="chain-node" label=<{_chain_label(entry, table, hook_name, ruleset)}>];')
    out.extend(edges)
    out.append("}")
    return "\n".join(out) + "\n"


def _edge(a: str, port: str, b: str, bport: str | None, label: str, style: str,
          color: str, cls: str) -> str:
    head = f"{_q(b)}:{bport}" if bport else _q(b)
    return (f"  {_q(a)}:{port}:e -> {head} [label={_q(label)} style={style} "
            f'color="{color}" fontcolor="{color}" class="{cls}"];')


def _collapsed(rows: list[_Row]) -> Iterable[_Row | int]:
    """Rows, with long runs of not-matched rules replaced by their count."""
    run: list[_Row] = []

    def flush() -> Iterable[_Row | int]:
        if len(run) > COLLAPSE_RUN:
            yield from run[:KEEP_HEAD]
            yield len(run) - KEEP_HEAD - KEEP_TAIL
            yield from run[-KEEP_TAIL:]
        else:
            yield from run

    for row in rows:
        if row.step.kind is StepKind.RULE and row.step.result is Result.NOMATCH:
            run.append(row)
            continue
        yield from flush()
        run = []
        yield row
    yield from flush()


def _chain_label(entry: _Entry, table: str, hook: str, ruleset: Ruleset | None) -> str:
    builtin = entry.chain in BUILTIN_CHAINS.get(table, ())
    title = f"{table} {entry.chain}" + (f" · {hook}" if builtin and hook and hook != entry.chain else "")
    total = ""
    if ruleset is not None:
        t = ruleset.table(table)
        c = t.chain(entry.chain) if t else None
        if c is not None:
            total = f"{len(c.rules)} rule{'s' if len(c.rules) != 1 else ''}"
            if c.policy:
                total += f", policy {c.policy}"
    rows = [
        ('<TABLE BORDER="1" CELLBORDER="0" CELLSPACING="0" CELLPADDING="4" '
        f'COLOR="{GREY}" BGCOLOR="white">'),
        f'<TR><TD PORT="title" COLSPAN="3" ALIGN="LEFT" BGCOLOR="{GREY_BG}">'
        f'<B>{_html(title)}</B>'
        + (f' <FONT COLOR="{GREY}">({_html(total)})</FONT>' if total else "")
        + "</TD></TR>",
    ]
    for item in _collapsed(entry.rows):
        if isinstance(item, int):
            rows.append(
                f'<TR><TD COLSPAN="3" ALIGN="CENTER"><FONT COLOR="{GREY}">'
                f"… {item:,} rules not matched …</FONT></TD></TR>"
            )
            continue
        rows.append(_row_html(item))
    if ruleset is not None and entry.rows:
        last = entry.rows[-1].step
        t = ruleset.table(table)
        c = t.chain(entry.chain) if t else None
        if c is not None and last.kind is StepKind.RULE and last.rule is not None:
            rest = len(c.rules) - last.rule
            if rest > 0:
                rows.append(
                    f'<TR><TD COLSPAN="3" ALIGN="CENTER"><FONT COLOR="{GREY}">'
                    f"… {rest:,} rule{'s' if rest != 1 else ''} not reached …</FONT></TD></TR>"
                )
    rows.append("</TABLE>")
    return "".join(rows)


def _row_html(row: _Row) -> str:
    step = row.step
    if step.kind is StepKind.POLICY:
        bg, fg = (RED_BG, RED) if step.verdict == "DROP" else (GREEN_BG, GREEN)
        return (f'<TR><TD PORT="{row.port}" COLSPAN="3" ALIGN="LEFT" BGCOLOR="{bg}">'
                f'<FONT COLOR="{fg}"><B>policy {_html(step.verdict or "")}</B></FONT></TD></TR>')
    if step.kind is StepKind.RETURN:
        return (f'<TR><TD PORT="{row.port}" COLSPAN="3" ALIGN="LEFT">'
                f'<FONT COLOR="{GREY}">end of chain: return</FONT></TD></TR>')
    if step.kind is StepKind.SKIP:
        return (f'<TR><TD PORT="{row.port}" COLSPAN="3" ALIGN="CENTER">'
                f'<FONT COLOR="{GREY}">… {_html(step.text)} …</FONT></TD></TR>')
    num = f"#{step.rule}" if step.rule is not None else ""
    text = _html(_short(step.text, 90))
    if step.result is Result.MATCH:
        bg, fg = GREEN_BG, GREEN
        verdict = step.verdict or "CONTINUE"
        if verdict == "DROP":
            bg, fg = RED_BG, RED
        what = f"matched → {verdict}"
    elif step.result is Result.UNKNOWN:
        bg, fg = AMBER_BG, AMBER
        what = "unknown" + (f": {step.reason}" if step.reason else "")
    else:
        bg, fg = "white", GREY
        what = step.reason or step.clause or "not matched"
    if step.uncertain and step.result is not Result.UNKNOWN:
        what += " (uncertain)"
    line = f"line {step.line}" if step.line else ""
    return (
        f'<TR><TD ALIGN="RIGHT" BGCOLOR="{bg}"><FONT COLOR="{fg}">{_html(num)}</FONT>'
        f'<BR/><FONT COLOR="{GREY}" POINT-SIZE="8">{_html(line)}</FONT></TD>'
        f'<TD ALIGN="LEFT" BGCOLOR="{bg}"><FONT FACE="{MONO}" POINT-SIZE="9">{text}</FONT></TD>'
        f'<TD PORT="{row.port}" ALIGN="LEFT" BGCOLOR="{bg}"><FONT COLOR="{fg}">'
        f"{_html(_short(what, 60))}</FONT></TD></TR>"
    )

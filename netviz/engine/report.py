"""A Trace as plain text, the way a firewall vendor's packet tracer prints it.

Pure: takes a Trace (and optionally the Ruleset it came from) and returns a
string.  Used by `manage.py trace` and the web app's text download.  The
helpers here (packet_line, packet_changes, verdict_words, summary_rows) are
shared with the trace page so the page and the text never disagree.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, ClassVar

from .context import Result
from .packet import TCP_FLAG_LETTERS, Packet, proto_name
from .ruleset import Rule, Ruleset
from .trace import Step, StepKind, Trace

# Kernel hook order, for the path line (include/uapi/linux/netfilter.h).
HOOKS = ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING")

PATH_WORDS = {
    "input": "delivered to a local process",
    "forward": "forwarded",
    "output": "sent by a local process",
    "output-local": "sent by a local process and delivered locally (loopback)",
    "bridge": "bridged between two ports of a Linux bridge",
}


@dataclass(frozen=True)
class Change:
    field: str  # "src", "dst", "mark", "ctmark", "out", "ctstate", "in"
    before: str
    after: str

    def text(self) -> str:
        return f"{self.field} {self.before} → {self.after}"


if TYPE_CHECKING:
    from .conversation import Conversation


def _addr_port(addr: object, port: int | None) -> str:
    text = str(addr)
    if port is None:
        return text
    # RFC 3986 style so an IPv6 address and its port stay readable.
    if isinstance(addr, ipaddress.IPv6Address):
        return f"[{text}]:{port}"
    return f"{text}:{port}"


def tcp_flag_letters(packet: Packet) -> str:
    return "".join(
        letter for letter, name in TCP_FLAG_LETTERS.items() if name in packet.tcp_flags
    )


def packet_line(packet: Packet) -> str:
    """One line: `tcp 10.0.0.1:1234 → 192.0.2.1:80 [S] in eth0 mark 0x0 ctstate NEW`."""
    sport = packet.sport if packet.has_ports else None
    dport = packet.dport if packet.has_ports else None
    parts = [
        proto_name(packet.proto),
        f"{_addr_port(packet.src, sport)} → {_addr_port(packet.dst, dport)}",
    ]
    if packet.proto == 6:
        parts.append(f"[{tcp_flag_letters(packet) or '-'}]")
    if packet.proto in (1, 58):
        parts.append(f"type {packet.icmp_type} code {packet.icmp_code}")
    parts.append(f"in {packet.in_iface}" if packet.in_iface else "from local process")
    if packet.out_iface:
        parts.append(f"out {packet.out_iface}")
    parts.append(f"mark {packet.mark:#x}")
    if packet.ct is not None:
        parts.append(f"ctstate {packet.ct.state}")
        if packet.ct.mark:
            parts.append(f"ctmark {packet.ct.mark:#x}")
    else:
        parts.append(f"ctstate {packet.ctstate_in} (expected)")
    return " ".join(parts)


def packet_changes(before: Packet | None, after: Packet | None) -> list[Change]:
    """What a step changed in the header, mark, interfaces or conntrack state."""
    if before is None or after is None:
        return []
    out: list[Change] = []
    bsport = before.sport if before.has_ports else None
    asport = after.sport if after.has_ports else None
    bdport = before.dport if before.has_ports else None
    adport = after.dport if after.has_ports else None
    if before.src != after.src or bsport != asport:
        out.append(Change("src", _addr_port(before.src, bsport), _addr_port(after.src, asport)))
    if before.dst != after.dst or bdport != adport:
        out.append(Change("dst", _addr_port(before.dst, bdport), _addr_port(after.dst, adport)))
    if before.mark != after.mark:
        out.append(Change("mark", f"{before.mark:#x}", f"{after.mark:#x}"))
    bctmark = before.ct.mark if before.ct else 0
    actmark = after.ct.mark if after.ct else 0
    if bctmark != actmark:
        out.append(Change("ctmark", f"{bctmark:#x}", f"{actmark:#x}"))
    bstate = before.ct.state if before.ct else None
    astate = after.ct.state if after.ct else None
    if bstate != astate:
        out.append(Change("ctstate", bstate or "-", astate or "-"))
    if before.in_iface != after.in_iface:
        out.append(Change("in", before.in_iface or "-", after.in_iface or "-"))
    if before.out_iface != after.out_iface:
        out.append(Change("out", before.out_iface or "-", after.out_iface or "-"))
    return out


def result_word(step: Step) -> str:
    if step.result is Result.MATCH:
        return "matched"
    if step.result is Result.NOMATCH:
        return "not matched"
    if step.result is Result.UNKNOWN:
        return "unknown"
    return ""


def in_chain(step: Step) -> bool:
    """A step that belongs inside a chain listing: a rule, a policy, an
    implicit return, or a run of rules the engine's chain index ruled out at
    once (a SKIP step with a rule number)."""
    if step.kind in (StepKind.RULE, StepKind.POLICY, StepKind.RETURN):
        return True
    return step.kind is StepKind.SKIP and step.rule is not None


def hook_sequence(trace: Trace) -> list[str]:
    if trace.hooks:
        return list(trace.hooks)
    seen: list[str] = []
    for step in trace.steps:
        if step.hook and (not seen or seen[-1] != step.hook):
            seen.append(step.hook)
    return seen


def drop_step(trace: Trace) -> Step | None:
    """The step that decided a DROP: the last step whose verdict is DROP."""
    if trace.verdict != "DROP":
        return None
    for step in reversed(trace.steps):
        if step.kind is StepKind.DROP:
            return step
        if step.verdict == "DROP" and (step.kind is StepKind.POLICY or step.is_hop):
            return step
    return None


def verdict_words(trace: Trace) -> str:
    """The banner: "DROP at filter FORWARD rule 7 (line 96)", "ACCEPT — forwarded …"."""
    where = drop_step(trace)
    if where is not None and where.kind in (StepKind.RULE, StepKind.POLICY):
        return f"DROP at {step_location(where)}"
    if where is not None:
        return f"DROP — {event_text(where)}"
    summary = trace.summary
    for prefix in ("accepted: ", "dropped: "):
        summary = summary.removeprefix(prefix)
    if not summary:
        summary = PATH_WORDS.get(trace.path, trace.path)
    return f"{trace.verdict} — {summary}"


_EVENT_PREFIX = {
    StepKind.ROUTE: "routing decision: ",
    StepKind.CONNTRACK: "conntrack: ",
}


def event_text(step: Step) -> str:
    """A ROUTE/CONNTRACK/SKIP/DROP step's sentence without the label the
    page and the text already print in front of it."""
    prefix = _EVENT_PREFIX.get(step.kind, "")
    if prefix and step.text.startswith(prefix):
        return step.text[len(prefix):]
    return step.text


def step_location(step: Step) -> str:
    # An nft table goes by its family too ("inet firewalld"), as nft lists it.
    table = f"{step.family} {step.table}" if step.family else step.table
    if step.kind is StepKind.POLICY:
        return f"{table} {step.chain} policy"
    if step.kind is StepKind.RULE:
        line = f" (line {step.line})" if step.line else ""
        return f"{table} {step.chain} rule {step.rule}{line}"
    return f"{step.hook} ({step.kind.value})"


@dataclass(frozen=True)
class SummaryRow:
    phase: str  # the hook, or "routing"
    table: str
    chain: str
    rule: str  # "3 (line 45)", "policy", "" for routing
    result: str  # ACCEPT, DROP, JUMP:X, "skipped", the route sentence…
    uncertain: bool = False
    index: int = -1  # the step's position in trace.steps


def summary_rows(trace: Trace) -> list[SummaryRow]:
    """The packet tracer's summary: one row per hop, routing decision, skipped
    table or drop outside a rule — what the kernel's own trace would print plus
    the decisions it does not log."""
    rows: list[SummaryRow] = []
    for index, step in enumerate(trace.steps):
        if step.is_hop:
            if step.kind is StepKind.POLICY:
                rule = "policy"
                result = f"policy {step.verdict}"
            else:
                rule = f"{step.rule}" + (f" (line {step.line})" if step.line else "")
                result = step.verdict or "CONTINUE"
            rows.append(
                SummaryRow(step.hook, step.table, step.chain, rule, result, step.uncertain, index)
            )
        elif step.kind is StepKind.ROUTE:
            rows.append(SummaryRow("routing", "", "", "", event_text(step), step.uncertain, index))
        elif step.kind is StepKind.SKIP and not in_chain(step):
            rows.append(SummaryRow(step.hook, step.table, step.chain, "", "skipped: " + step.text,
                                   index=index))
        elif step.kind is StepKind.DROP:
            rows.append(SummaryRow(step.hook, step.table, step.chain, "", "DROP: " + step.text,
                                   index=index))
        elif step.kind is StepKind.RULE and step.result is Result.UNKNOWN:
            rule = f"{step.rule}" + (f" (line {step.line})" if step.line else "")
            rows.append(
                SummaryRow(step.hook, step.table, step.chain, rule, "unknown: " + step.reason, True,
                           index)
            )
    return rows


def _rule_text(step: Step, ruleset: Ruleset | None) -> str:
    if step.text:
        return step.text
    if ruleset is None or step.rule is None:
        return ""
    table = ruleset.table(step.table)
    chain = table.chain(step.chain) if table else None
    if chain is None or not 1 <= step.rule <= len(chain.rules):
        return ""
    return chain.rules[step.rule - 1].text


def _chain_size(ruleset: Ruleset | None, table: str, chain: str) -> str:
    if ruleset is None:
        return ""
    t = ruleset.table(table)
    c = t.chain(chain) if t else None
    if c is None:
        return ""
    n = len(c.rules)
    policy = f", policy {c.policy}" if c.policy else ""
    return f" ({n} rule{'s' if n != 1 else ''}{policy})"


def render_text(trace: Trace, ruleset: Ruleset | None = None) -> str:
    out: list[str] = []
    add = out.append
    add(f"Packet in:  {packet_line(trace.packet_in)}")
    hooks = hook_sequence(trace)
    add(f"Path:       {trace.path} ({' → '.join(hooks)})" if hooks else f"Path:       {trace.path}")
    if trace.seed:
        add(f"Seed:       {trace.seed}")
    add("")

    previous: Packet | None = trace.packet_in
    hook = None
    table_key: tuple[str, str] | None = None
    chain_key: tuple[str, str] | None = None
    for step in trace.steps:
        if step.kind is StepKind.ROUTE:
            add(f"  ◆ routing decision: {event_text(step)}" + ("  [uncertain]" if step.uncertain else ""))
            previous = _emit_changes(add, "      ", previous, step.packet)
            continue
        if step.hook != hook:
            hook = step.hook
            table_key = None
            chain_key = None
            add(f"{hook}")
        if step.kind is StepKind.SKIP and not in_chain(step):
            label = f"{step.table} " if step.table else ""
            add(f"  {label}skipped: {step.text}")
            previous = _emit_changes(add, "      ", previous, step.packet)
            continue
        if step.kind is StepKind.CONNTRACK:
            add(f"  conntrack: {event_text(step)}")
            previous = _emit_changes(add, "      ", previous, step.packet)
            continue
        if step.kind is StepKind.DROP:
            add(f"  ✗ dropped: {step.text}")
            previous = _emit_changes(add, "      ", previous, step.packet)
            continue
        if (step.hook, step.table) != table_key:
            table_key = (step.hook, step.table)
            chain_key = None
            add(f"  table {step.table}")
        indent = "    " + "  " * step.depth
        if (step.table, step.chain) != chain_key:
            chain_key = (step.table, step.chain)
            add(f"{indent}chain {step.chain}{_chain_size(ruleset, step.table, step.chain)}")
        if step.kind is StepKind.POLICY:
            add(f"{indent}  policy {step.verdict}")
        elif step.kind is StepKind.RETURN:
            add(f"{indent}  {step.text or 'end of chain: implicit RETURN'}")
        elif step.kind is StepKind.RULE:
            _emit_rule(add, indent + "  ", step, ruleset)
        elif step.kind is StepKind.SKIP:
            add(f"{indent}  … {step.text}")
        previous = _emit_changes(add, indent + "      ", previous, step.packet)

    add("")
    add(f"Verdict:    {verdict_words(trace)}")
    if trace.fate is not None and trace.verdict == "DROP":
        add(f"Fate:       {trace.fate.summary}")
    add(f"Packet out: {packet_line(trace.packet_out)}")
    changes = packet_changes(trace.packet_in, trace.packet_out)
    if changes:
        add("Changed:    " + "; ".join(c.text() for c in changes))
    if trace.uncertain:
        add("Uncertain:  " + ", ".join(f"{t} {c} rule {r}" for (t, c, r) in trace.uncertain))
    if trace.statistic:
        add("Random:     " + ", ".join(
            f"{t} {c} rule {r} p={p:g} {'taken' if m else 'not taken'}"
            for (t, c, r, p, m) in trace.statistic
        ))
    rows = summary_rows(trace)
    if rows:
        add("")
        add("Summary")
        header = ("phase", "table", "chain", "rule", "result")
        cells = [header] + [
            (r.phase, r.table, r.chain, r.rule, r.result + (" ?" if r.uncertain else ""))
            for r in rows
        ]
        widths = [max(len(row[i]) for row in cells) for i in range(4)]
        for row in cells:
            add("  " + "  ".join(row[i].ljust(widths[i]) for i in range(4)) + "  " + row[4])
    return "\n".join(line.rstrip() for line in out) + "\n"


def _emit_rule(add: Callable[[str], None], indent: str, step: Step, ruleset: Ruleset | None) -> None:
    mark = {"matched": "✓", "not matched": "·", "unknown": "?"}.get(result_word(step), " ")
    line = f" line {step.line}" if step.line else ""
    add(f"{indent}{mark} #{step.rule}{line}: {_rule_text(step, ruleset)}")
    detail = indent + "      "
    if step.result is Result.MATCH:
        verdict = step.verdict or "CONTINUE"
        add(f"{detail}matched → {verdict}" + (f" ({step.note})" if step.note else ""))
    elif step.result is Result.NOMATCH:
        why = step.reason or step.clause
        add(f"{detail}not matched" + (f": {why}" if why else ""))
    elif step.result is Result.UNKNOWN:
        why = step.reason or step.clause
        add(f"{detail}unknown" + (f": {why}" if why else "") + " — result uncertain")
    if step.uncertain and step.result is not Result.UNKNOWN:
        add(f"{detail}[uncertain: rests on state the dump does not hold]")


def _emit_changes(
    add: Callable[[str], None], indent: str, previous: Packet | None, current: Packet | None
) -> Packet | None:
    if current is None:
        return previous
    for change in packet_changes(previous, current):
        add(f"{indent}{change.text()}")
    return current


# --- the trace page's view of the steps ------------------------------------------


@dataclass(frozen=True)
class StepRow:
    collapsed: ClassVar[bool] = False
    index: int  # position in trace.steps (stable: permalinks and anchors use it)
    step: Step
    changes: tuple[Change, ...]  # vs the packet before this step

    @property
    def event_text(self) -> str:
        return event_text(self.step)


@dataclass(frozen=True)
class Collapsed:
    """A long run of rules that did not match, shown folded."""

    collapsed: ClassVar[bool] = True
    # A page shows at most this many of the folded rows; the text and JSON
    # downloads hold them all (a 100k-rule chain must not become 100k <tr>).
    preview_limit: ClassVar[int] = 200
    rows: tuple[StepRow, ...]

    @property
    def count(self) -> int:
        return len(self.rows)

    @property
    def preview(self) -> tuple[StepRow, ...]:
        return self.rows[: self.preview_limit]

    @property
    def more(self) -> int:
        return max(0, len(self.rows) - self.preview_limit)


@dataclass(frozen=True)
class Section:
    kind: str  # "chain", or an event: "route", "skip", "conntrack", "drop"
    hook: str
    table: str = ""
    chain: str = ""
    depth: int = 0
    entered_by: str = ""  # "JUMP from nat PREROUTING rule 1"
    items: tuple[StepRow | Collapsed, ...] = ()
    new_hook: bool = False  # first section of its hook (the page prints a heading)
    new_table: bool = False

    @property
    def rows(self) -> tuple[StepRow, ...]:
        out: list[StepRow] = []
        for item in self.items:
            out.extend(item.rows if isinstance(item, Collapsed) else (item,))
        return tuple(out)


def _fold(rows: list[StepRow], threshold: int, keep: int) -> tuple[StepRow | Collapsed, ...]:
    out: list[StepRow | Collapsed] = []
    run: list[StepRow] = []

    def flush() -> None:
        if len(run) > threshold:
            out.extend(run[:keep])
            out.append(Collapsed(tuple(run[keep:-keep] if keep else run)))
            out.extend(run[-keep:] if keep else [])
        else:
            out.extend(run)
        run.clear()

    for row in rows:
        if row.step.kind is StepKind.RULE and row.step.result is Result.NOMATCH:
            run.append(row)
        else:
            flush()
            out.append(row)
    flush()
    return tuple(out)


def sections(trace: Trace, fold_over: int = 12, keep: int = 3) -> list[Section]:
    """The steps grouped as the page shows them: per hook, per table, one
    section per stay in a chain (a chain entered twice gives two sections),
    with runs of more than `fold_over` not-matched rules folded."""
    out: list[Section] = []
    previous: Packet | None = trace.packet_in
    current: Section | None = None  # the open chain section, items still empty
    rows: list[StepRow] = []
    last_hook = ""
    last_table: tuple[str, str] | None = None
    pending_entry = ""

    def close() -> None:
        nonlocal current, rows
        if current is not None:
            out.append(replace(current, items=_fold(rows, fold_over, keep)))
        current = None
        rows = []

    for i, step in enumerate(trace.steps):
        changes = tuple(packet_changes(previous, step.packet))
        if step.packet is not None:
            previous = step.packet
        row = StepRow(i, step, changes)
        new_hook = step.hook != last_hook
        last_hook = step.hook
        if in_chain(step):
            same = current is not None and (
                (current.hook, current.table, current.chain, current.depth)
                == (step.hook, step.table, step.chain, step.depth)
            )
            if not same:
                back = ""
                if current is not None and current.table == step.table and current.depth > step.depth:
                    back = f"back from {current.chain}"
                close()
                new_table = (step.hook, step.table) != last_table or new_hook
                last_table = (step.hook, step.table)
                current = Section(
                    kind="chain", hook=step.hook, table=step.table, chain=step.chain,
                    depth=step.depth,
                    entered_by=(pending_entry if step.depth else "") or back,
                    new_hook=new_hook, new_table=new_table,
                )
            pending_entry = ""
            rows.append(row)
            if step.kind is StepKind.RULE and step.result is Result.MATCH and step.verdict and (
                step.verdict.startswith(("JUMP:", "GOTO:"))
            ):
                how = step.verdict.split(":", 1)[0]
                pending_entry = f"{how} from {step.table} {step.chain} rule {step.rule}"
            continue
        close()
        last_table = None
        out.append(Section(kind=step.kind.value, hook=step.hook, table=step.table,
                           chain=step.chain, items=(row,), new_hook=new_hook))
    close()
    return out


# --- one rule, clause by clause ----------------------------------------------------


@dataclass(frozen=True)
class ClauseRow:
    module: str  # "" for the basic criteria (-s -d -i -o -p), else the -m module
    text: str  # the clause in save syntax: "--dport 443", "! -s 10.0.0.0/8"
    status: str  # "match", "nomatch", "unknown", "not-evaluated"
    reason: str = ""


def find_rule(ruleset: Ruleset | None, step: Step) -> Rule | None:
    if ruleset is None or step.rule is None:
        return None
    table = ruleset.table(step.table)
    chain = table.chain(step.chain) if table else None
    if chain is None or not 1 <= step.rule <= len(chain.rules):
        return None
    return chain.rules[step.rule - 1]


def _same_clause(option_text: str, match_text: str, clause: str) -> bool:
    clause = clause.strip()
    if not clause:
        return False
    return clause in (option_text, match_text) or (
        # the evaluator may name only the option, or the option without "!"
        option_text.lstrip("! ").startswith(clause.lstrip("! "))
    )


def clause_rows(rule: Rule, step: Step) -> list[ClauseRow]:
    """Every clause of `rule` with its evaluation in `step`.

    The kernel tests the basic criteria, then each -m match in rule order,
    and stops at the first one that is false (ipt_do_table: ip_packet_match,
    then xt_ematch_foreach); so clauses before the deciding one matched and
    clauses after it were never evaluated.
    """
    rows: list[ClauseRow] = []
    decided = step.result is Result.MATCH
    found = False
    for match in rule.matches:
        if match.module == "comment":
            for opt in match.options:
                rows.append(ClauseRow("comment", opt.text(), "comment"))
            continue
        for opt in match.options or ():
            text = opt.text()
            if decided:
                rows.append(ClauseRow(match.module, text, "match"))
            elif found:
                rows.append(ClauseRow(match.module, text, "not-evaluated"))
            elif _same_clause(text, match.text(), step.clause):
                found = True
                status = step.result.value if step.result else "unknown"
                rows.append(ClauseRow(match.module, text, status, step.reason))
            else:
                rows.append(ClauseRow(match.module, text, "match"))
        if not match.options:
            status = "match" if decided or not found else "not-evaluated"
            if not decided and not found and _same_clause(match.text(), match.text(), step.clause):
                found = True
                status = step.result.value if step.result else "unknown"
            rows.append(ClauseRow(match.module, match.text(), status,
                                  step.reason if status not in ("match", "not-evaluated") else ""))
    if not decided and not found and step.result is not None:
        # The deciding clause could not be placed (the evaluator named it
        # differently): do not claim the others matched.
        rows = [
            ClauseRow(r.module, r.text, "comment" if r.status == "comment" else "unknown")
            for r in rows
        ]
        rows.append(ClauseRow("", step.clause or "(rule)", step.result.value, step.reason))
    return rows


def render_conversation_text(conv: Conversation, ruleset: Ruleset | None = None) -> str:
    """Every packet of a conversation, each with the conntrack entry after it."""
    parts: list[str] = []
    for cp in conv.packets:
        title = "first packet" if cp.index == 0 else f"packet {cp.index + 1} ({cp.dir})"
        parts.append(f"=== {title} ===")
        if cp.trace is None:
            parts.append(f"not sent: {cp.not_sent}\n")
            continue
        parts.append(render_text(cp.trace, ruleset).rstrip("\n"))
        parts.append(f"ctstate:    {cp.ctstate or '-'}" + (f" ({cp.ctdir})" if cp.ctdir else ""))
        parts.append(f"conntrack:  {cp.entry or '(no entry)'}")
        related = cp.trace.related
        if related is not None:
            parts.append("--- the host's answer (RELATED) ---")
            parts.append(render_text(related, ruleset).rstrip("\n"))
        parts.append("")
    return "\n".join(parts) + "\n"

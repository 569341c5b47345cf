"""Two traces side by side: where their paths part, which rules made the
difference, and how the packet leaves each side.

Pure: takes two Traces, returns a frozen Comparison.  The hops are aligned
the way `diff` aligns lines (difflib.SequenceMatcher), on the kernel's own
hop vocabulary plus the rule text, so the same rule at the same place on both
sides is "same" even when the dumps around it differ.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from enum import Enum
from typing import Any

from .context import Result
from .packet import Packet
from .trace import Step, StepKind, Trace

# Header fields compared between the two packets, in the order people read them.
HEADER_FIELDS = ("src", "dst", "sport", "dport", "mark", "in_iface", "out_iface", "ctstate")
FIELD_WORDS = {
    "src": "source",
    "dst": "destination",
    "sport": "source port",
    "dport": "destination port",
    "mark": "mark",
    "in_iface": "input interface",
    "out_iface": "output interface",
    "ctstate": "conntrack state",
    "proto": "protocol",
}
_TARGET = re.compile(r"(?:^|\s)(?:-j|--jump|-g|--goto)\s+(\S+)")
_COMMENT = re.compile(r'\s*-m comment --comment (?:"(?:[^"\\]|\\.)*"|\S+)')


class HopMark(str, Enum):
    SAME = "same"
    DIFFERS = "differs"  # both sides have a hop here, but not the same one
    LEFT_ONLY = "left-only"
    RIGHT_ONLY = "right-only"


@dataclass(frozen=True)
class AlignedHop:
    mark: HopMark
    left: Step | None = None
    right: Step | None = None
    left_index: int | None = None  # index into Trace.steps
    right_index: int | None = None

    @property
    def same(self) -> bool:
        return self.mark is HopMark.SAME


@dataclass(frozen=True)
class Deciding:
    """A rule (or policy) that made the two sides part, and what it did."""

    side: str  # "left" or "right"
    step: Step
    index: int  # into that side's Trace.steps
    effect: str  # plain words: "rewrote the source 10.244.0.10 → 10.240.0.4"


@dataclass(frozen=True)
class FieldDiff:
    field: str
    left: str
    right: str

    @property
    def words(self) -> str:
        return FIELD_WORDS.get(self.field, self.field)


@dataclass(frozen=True)
class Comparison:
    left: Trace
    right: Trace
    hops: tuple[AlignedHop, ...]
    first_difference: int | None  # index into hops; None when all hops are the same
    deciding: tuple[Deciding, ...]
    packet_in_diff: tuple[FieldDiff, ...]
    packet_out_diff: tuple[FieldDiff, ...]

    @property
    def same_path(self) -> bool:
        return self.first_difference is None

    @property
    def same_verdict(self) -> bool:
        return self.left.verdict == self.right.verdict

    @property
    def identical(self) -> bool:
        return self.same_path and self.same_verdict and not self.packet_out_diff

    def differing_steps(self, side: str) -> frozenset[int]:
        """Indexes into that side's steps of hops that are not on the other side."""
        out = set()
        for hop in self.hops:
            if hop.same:
                continue
            index = hop.left_index if side == "left" else hop.right_index
            if index is not None:
                out.add(index)
        return frozenset(out)

    def explain(self, left: str = "the left", right: str = "the right") -> list[str]:
        return _explain(self, left, right)

    def to_dict(self) -> dict[str, Any]:
        return {
            "identical": self.identical,
            "first_difference": self.first_difference,
            "hops": [
                {
                    "mark": h.mark.value,
                    "left": h.left.hop() if h.left is not None else None,
                    "right": h.right.hop() if h.right is not None else None,
                }
                for h in self.hops
            ],
            "deciding": [
                {"side": d.side, "hop": d.step.hop(), "hook": d.step.hook, "effect": d.effect}
                for d in self.deciding
            ],
            "packet_in_diff": [
                {"field": f.field, "left": f.left, "right": f.right} for f in self.packet_in_diff
            ],
            "packet_out_diff": [
                {"field": f.field, "left": f.left, "right": f.right} for f in self.packet_out_diff
            ],
            "explain": self.explain(),
        }


# --- building ------------------------------------------------------------------


def _strip_comments(text: str) -> str:
    return _COMMENT.sub("", text).strip()


def hop_key(step: Step) -> tuple[str, ...]:
    """What makes two hops "the same hop": the kernel's (table, chain, rule,
    verdict) at the same hook — with the rule's text instead of its number,
    so an inserted rule above does not make every later hop differ.  Comments
    are left out: rule-hash comments (`cali:…`) change between versions."""
    if step.kind is StepKind.POLICY:
        return (step.hook, step.table, step.chain, "policy", step.verdict or "")
    return (step.hook, step.table, step.chain, _strip_comments(step.text), step.verdict or "")


def _hops(trace: Trace) -> list[tuple[int, Step]]:
    return [(i, s) for i, s in enumerate(trace.steps) if s.is_hop]


def target_name(step: Step) -> str:
    if step.kind is StepKind.POLICY:
        return f"policy {step.verdict}"
    found = _TARGET.search(step.text)
    return found.group(1) if found else "no target"


def _field_value(packet: Packet, name: str) -> str:
    if name == "ctstate":
        return packet.ct.state if packet.ct is not None else packet.ctstate_in
    if name == "mark":
        return hex(packet.mark)
    value = packet.header().get(name) if name in ("src", "dst", "sport", "dport") else getattr(
        packet, name, None
    )
    return "" if value is None else str(value)


def packet_diff(left: Packet, right: Packet, fields: tuple[str, ...] = HEADER_FIELDS) -> tuple[FieldDiff, ...]:
    out = []
    if left.proto != right.proto:
        out.append(FieldDiff("proto", str(left.proto), str(right.proto)))
    for name in fields:
        lv, rv = _field_value(left, name), _field_value(right, name)
        if lv != rv:
            out.append(FieldDiff(name, lv, rv))
    return tuple(out)


def _packet_before(trace: Trace, index: int) -> Packet:
    for step in reversed(trace.steps[:index]):
        if step.packet is not None:
            return step.packet
    return trace.packet_in


def step_effect(trace: Trace, index: int) -> str:
    """What a hop did to the packet, in plain words."""
    step = trace.steps[index]
    before = _packet_before(trace, index)
    after = step.packet or before
    changes = [
        f"rewrote the {FIELD_WORDS[f.field]} {f.left} → {f.right}"
        for f in packet_diff(before, after, ("src", "dst", "sport", "dport"))
    ]
    if before.mark != after.mark:
        changes.append(f"set the mark {hex(before.mark)} → {hex(after.mark)}")
    verdict = step.verdict or ""
    if changes:
        return " and ".join(changes)
    if verdict.startswith("JUMP:"):
        return f"jumped to {verdict[5:]}"
    if verdict.startswith("GOTO:"):
        return f"went to {verdict[5:]}"
    if step.kind is StepKind.POLICY:
        word = "dropped" if verdict == "DROP" else "accepted"
        return f"{word} the packet (policy {verdict})"
    return {
        "ACCEPT": "accepted the packet",
        "DROP": "dropped the packet",
        "RETURN": "returned to the calling chain",
        "CONTINUE": "let the packet continue",
    }.get(verdict, verdict.lower() or "matched")


def compare_traces(left: Trace, right: Trace) -> Comparison:
    lhops, rhops = _hops(left), _hops(right)
    lkeys = [hop_key(s) for _, s in lhops]
    rkeys = [hop_key(s) for _, s in rhops]
    aligned: list[AlignedHop] = []
    matcher = difflib.SequenceMatcher(a=lkeys, b=rkeys, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            for (li, ls), (ri, rs) in zip(lhops[i1:i2], rhops[j1:j2], strict=True):
                aligned.append(AlignedHop(HopMark.SAME, ls, rs, li, ri))
            continue
        lpart, rpart = lhops[i1:i2], rhops[j1:j2]
        # A replaced block pairs hop for hop (the two sides did different
        # things at the same place); what is left over is one side's only.
        for n in range(max(len(lpart), len(rpart))):
            lp = lpart[n] if n < len(lpart) else None
            rp = rpart[n] if n < len(rpart) else None
            if lp is not None and rp is not None:
                aligned.append(AlignedHop(HopMark.DIFFERS, lp[1], rp[1], lp[0], rp[0]))
            elif lp is not None:
                aligned.append(AlignedHop(HopMark.LEFT_ONLY, lp[1], None, lp[0], None))
            elif rp is not None:
                aligned.append(AlignedHop(HopMark.RIGHT_ONLY, None, rp[1], None, rp[0]))
    first = next((n for n, h in enumerate(aligned) if not h.same), None)
    return Comparison(
        left=left,
        right=right,
        hops=tuple(aligned),
        first_difference=first,
        deciding=_deciding(left, right, aligned),
        packet_in_diff=packet_diff(
            left.packet_in, right.packet_in, ("src", "dst", "sport", "dport", "mark", "in_iface")
        ),
        packet_out_diff=packet_diff(left.packet_out, right.packet_out, ("src", "dst", "sport", "dport")),
    )


def _deciding(left: Trace, right: Trace, aligned: list[AlignedHop]) -> tuple[Deciding, ...]:
    """The hops of each differing block that changed the packet or its
    fate — a MASQUERADE, a MARK, a DROP or policy DROP — rather than the jumps
    leading there.
    When neither side acted in a block, the first hop of each side stands for it."""
    out: list[Deciding] = []
    n = 0
    while n < len(aligned):
        if aligned[n].same:
            n += 1
            continue
        block = []
        while n < len(aligned) and not aligned[n].same:
            block.append(aligned[n])
            n += 1
        chosen: dict[str, list[int]] = {}
        for side, trace in (("left", left), ("right", right)):
            other = right if side == "left" else left
            indexes = [i for i in (h.left_index if side == "left" else h.right_index for h in block)
                       if i is not None]
            chosen[side] = [i for i in indexes if _is_decisive(trace, other, i)]
            if not chosen[side] and indexes:
                chosen[side] = [-1 - indexes[0]]  # the fallback, kept only if neither side acted
        acted = any(i >= 0 for picks in chosen.values() for i in picks)
        for side, trace in (("left", left), ("right", right)):
            for i in chosen[side]:
                if i < 0:
                    if acted:
                        continue
                    i = -1 - i
                out.append(Deciding(side, trace.steps[i], i, step_effect(trace, i)))
    return tuple(out)


def _is_decisive(trace: Trace, other: Trace, index: int) -> bool:
    # What changed the packet or its fate: a rewrite, a mark, a DROP, or an
    # ACCEPT where the other side's packet was dropped.
    step = trace.steps[index]
    verdict = step.verdict or ""
    if verdict == "DROP" or (verdict == "ACCEPT" and trace.verdict != other.verdict):
        return True
    before = _packet_before(trace, index)
    after = step.packet or before
    return bool(packet_diff(before, after, ("src", "dst", "sport", "dport"))) or before.mark != after.mark


# --- explaining ------------------------------------------------------------------


def _where(step: Step) -> str:
    if step.kind is StepKind.POLICY:
        return f"the {step.table} {step.chain} policy"
    if step.chain == step.hook:
        return f"{step.table} {step.hook} rule {step.rule} ({target_name(step)})"
    return f"{step.table} {step.hook} rule {step.rule} in {step.chain} ({target_name(step)})"


def _chain_visit(trace: Trace, hook: str, table: str, chain: str) -> list[Step]:
    return [
        s
        for s in trace.steps
        if s.hook == hook and s.table == table and s.chain == chain
        and s.kind in (StepKind.RULE, StepKind.RETURN, StepKind.POLICY)
    ]


def _other_side(trace: Trace, step: Step, side_words: str, other: Trace) -> str:
    """What the other trace did where this step happened."""
    visit = _chain_visit(trace, step.hook, step.table, step.chain)
    if not visit:
        reached = any(s.hook == step.hook and s.table == step.table for s in trace.steps)
        if reached:
            return f"on {side_words} the packet never entered {step.chain} in {step.table} {step.hook}"
        return f"on {side_words} the packet never reached {step.table} {step.hook}"
    rules = [s for s in visit if s.kind is StepKind.RULE]
    if not rules and any(s.kind is StepKind.RETURN for s in visit):
        return f"on {side_words} {step.chain} was empty"
    matched = [s for s in rules if s.result is Result.MATCH]
    if not matched:
        unknown = [s for s in rules if s.result is Result.UNKNOWN]
        if unknown:
            return (f"on {side_words} no rule in {step.chain} surely matched "
                    f"(rule {unknown[0].rule} is unknown: {unknown[0].reason})")
        same_rule = next((s for s in rules if _strip_comments(s.text) == _strip_comments(step.text)), None)
        if same_rule is not None and same_rule.reason:
            return (f"on {side_words} the same rule did not match ({same_rule.reason})")
        return f"on {side_words} no rule in {step.chain} matched"
    first = matched[0]
    return f"on {side_words} {_where(first)} {step_effect(trace, trace.steps.index(first))} instead"


def _leaves(trace: Trace) -> str:
    header = trace.packet_out.header()
    parts = [f"{header['src']}" + (f":{header['sport']}" if header.get("sport") is not None else ""),
             f"{header['dst']}" + (f":{header['dport']}" if header.get("dport") is not None else "")]
    return f"{parts[0]} → {parts[1]}"


def _fate(trace: Trace) -> str:
    if trace.verdict == "DROP":
        return "is dropped"
    return {
        "input": "is delivered to a local process",
        "forward": "is forwarded",
        "output": "is sent",
        "output-local": "is delivered locally over lo",
        "bridge": "is bridged",
    }.get(trace.path, "is accepted")


def _explain(cmp: Comparison, left: str, right: str) -> list[str]:
    out: list[str] = []
    L, R = left[:1].upper() + left[1:], right[:1].upper() + right[1:]
    if cmp.packet_in_diff:
        out.append(
            "The two packets differ: "
            + "; ".join(f"{f.words} {f.left} on {left}, {f.right} on {right}" for f in cmp.packet_in_diff)
            + "."
        )
    if cmp.identical:
        out.append(
            f"Both sides treat the packet the same way: it {_fate(cmp.left)} "
            f"and leaves as {_leaves(cmp.left)}; no rule made a difference."
        )
        return out

    told = False
    for d in cmp.deciding:
        this, other = (cmp.left, cmp.right) if d.side == "left" else (cmp.right, cmp.left)
        words, other_words = (left, right) if d.side == "left" else (right, left)
        if not _worth_telling(this, other, d):
            continue
        # Describe each place once; when both sides acted there (SNAT on one,
        # MASQUERADE on the other), one sentence holds both.
        counterpart = next(
            (x for x in cmp.deciding
             if x.side != d.side and _same_place(x.step, d.step) and _worth_telling(other, this, x)),
            None,
        )
        if counterpart is not None and d.side == "right":
            continue
        sentence = f"On {words}, {_where(d.step)} {d.effect}; "
        if counterpart is not None:
            sentence += f"on {other_words}, {_where(counterpart.step)} {counterpart.effect}"
        else:
            sentence += _other_side(other, d.step, other_words, this)
        out.append(sentence + _consequence(cmp, d.side) + ".")
        told = True
    if not told and cmp.first_difference is not None:
        hop = cmp.hops[cmp.first_difference]
        lw = f"{_where(hop.left)} {step_effect(cmp.left, hop.left_index)}" if (
            hop.left is not None and hop.left_index is not None) else "nothing matched here"
        rw = f"{_where(hop.right)} {step_effect(cmp.right, hop.right_index)}" if (
            hop.right is not None and hop.right_index is not None) else "nothing matched here"
        out.append(f"The paths part at hop {cmp.first_difference + 1}: on {left}, {lw}; on {right}, {rw}.")

    if cmp.same_verdict:
        if cmp.packet_out_diff:
            out.append(
                f"Both sides let the packet through ({cmp.left.verdict}), but it leaves {left} as "
                f"{_leaves(cmp.left)} and {right} as {_leaves(cmp.right)}."
            )
        else:
            out.append(
                f"In the end both sides {cmp.left.verdict.lower()} the packet and it leaves as "
                f"{_leaves(cmp.left)}: the paths differ, the result does not."
            )
    else:
        out.append(
            f"{L}: the packet {_fate(cmp.left)}"
            + (f" ({cmp.left.summary})" if cmp.left.summary else "")
            + f". {R}: it {_fate(cmp.right)}"
            + (f" ({cmp.right.summary})" if cmp.right.summary else "")
            + "."
        )
    return out


def _worth_telling(this: Trace, other: Trace, d: Deciding) -> bool:
    # A rule that rewrote the packet or dropped it; an ACCEPT only when the
    # other side dropped the packet (otherwise both let it through anyway).
    verdict = d.step.verdict or ""
    if verdict == "DROP":
        return True
    if verdict == "ACCEPT" and other.verdict == "DROP" and this.verdict == "ACCEPT":
        return True
    return not d.effect.startswith(("accepted", "applied", "jumped", "went", "let", "returned"))


def _same_place(a: Step, b: Step) -> bool:
    return (a.hook, a.table) == (b.hook, b.table)


def _consequence(cmp: Comparison, side: str) -> str:
    """", so the packet leaves with its source unchanged, 10.244.0.10" — when the
    deciding rule rewrote an address and the other side did not."""
    if cmp.left.verdict != "ACCEPT" or cmp.right.verdict != "ACCEPT":
        return ""
    given = {f.field for f in cmp.packet_in_diff}
    for f in cmp.packet_out_diff:
        # A field the two packets already differed in says nothing about NAT.
        if f.field not in ("src", "dst", "sport", "dport") or f.field in given:
            continue
        original = _field_value(cmp.left.packet_in if side == "right" else cmp.right.packet_in, f.field)
        other_value = f.right if side == "left" else f.left
        if other_value == original:
            return f", so the packet leaves with its {f.words} unchanged, {other_value}"
    return ""

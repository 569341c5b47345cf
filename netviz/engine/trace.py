"""Trace records: what happened to one packet, step by step.

A Trace is data.  Pages, graphs, JSON and text are all built from it without
re-running the traversal: every Step keeps the packet as it was after the step.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from .context import Result
from .packet import Packet


class StepKind(str, Enum):
    RULE = "rule"  # a rule was evaluated (matched or not)
    POLICY = "policy"  # a built-in chain's policy applied
    RETURN = "return"  # fell off the end of a user chain (implicit RETURN)
    ROUTE = "route"  # a routing decision
    SKIP = "skip"  # a table the kernel did not consult (nat after NEW, untracked…)
    CONNTRACK = "conntrack"  # conntrack attached / looked up / NAT binding applied
    DROP = "drop"  # dropped outside any rule (no route, martian source…)


@dataclass(frozen=True)
class Step:
    kind: StepKind
    hook: str
    table: str = ""
    chain: str = ""
    rule: int | None = None  # 1-based position in the chain
    line: int | None = None  # source line in the dump
    text: str = ""  # rule text, or a sentence for ROUTE/SKIP/CONNTRACK/DROP
    result: Result | None = None  # for RULE steps
    clause: str = ""  # the deciding clause, in save syntax
    reason: str = ""  # why, in plain words: "--dport 443 ≠ 80"
    verdict: str | None = None  # CONTINUE, ACCEPT, DROP, RETURN, JUMP:X, GOTO:X
    packet: Packet | None = None  # the packet after this step
    depth: int = 0  # jump-stack depth when the step happened
    uncertain: bool = False  # rests on an assumption or an unknown match
    note: str = ""
    # nft family (ip, ip6, inet) of a native nftables table; "" for the
    # tables of an iptables-save dump.
    family: str = ""

    @property
    def is_hop(self) -> bool:
        """A hop in the kernel's sense: a matched rule or an applied policy."""
        if self.kind is StepKind.POLICY:
            return True
        return self.kind is StepKind.RULE and self.result is Result.MATCH

    def hop(self) -> dict[str, Any]:
        head = {"family": self.family} if self.family else {}
        if self.kind is StepKind.POLICY:
            return {**head, "table": self.table, "chain": self.chain, "policy": self.verdict}
        return {**head, "table": self.table, "chain": self.chain, "rule": self.rule, "verdict": self.verdict}


@dataclass(frozen=True)
class Trace:
    packet_in: Packet
    steps: tuple[Step, ...]
    verdict: str  # ACCEPT or DROP: the packet's fate
    packet_out: Packet
    path: str  # "input", "forward", "output", "output-local" (loopback delivery)
    # Human-readable reason for the fate: "dropped by filter FORWARD rule 7".
    summary: str = ""
    # Where the result is uncertain: (table, chain, rule) of unknown/assumed rules.
    uncertain: tuple[tuple[str, str, int], ...] = ()
    # statistic --mode random rules met: (table, chain, rule, probability, chosen)
    statistic: tuple[tuple[str, str, int, float, bool], ...] = ()
    hooks: tuple[str, ...] = ()  # hooks traversed, in order
    seed: int = 0

    def hops(self) -> list[dict[str, Any]]:
        return [s.hop() for s in self.steps if s.is_hop]

    def to_dict(self) -> dict[str, Any]:
        """The `trace --json` contract (shared/spec/scenario.md) plus our own keys."""
        return {
            "hops": self.hops(),
            "verdict": self.verdict,
            "packet_out": self.packet_out.header(),
            "packet_in": self.packet_in.to_dict(),
            "path": self.path,
            "hooks": list(self.hooks),
            "summary": self.summary,
            "uncertain": [
                {"table": t, "chain": c, "rule": r} for (t, c, r) in self.uncertain
            ],
            "statistic": [
                {"table": t, "chain": c, "rule": r, "probability": p, "matched": m}
                for (t, c, r, p, m) in self.statistic
            ],
            "seed": self.seed,
            "steps": [step_to_dict(s) for s in self.steps],
        }


def step_to_dict(step: Step) -> dict[str, Any]:
    return {
        "kind": step.kind.value,
        "hook": step.hook,
        "family": step.family,
        "table": step.table,
        "chain": step.chain,
        "rule": step.rule,
        "line": step.line,
        "text": step.text,
        "result": step.result.value if step.result else None,
        "clause": step.clause,
        "reason": step.reason,
        "verdict": step.verdict,
        "depth": step.depth,
        "uncertain": step.uncertain,
        "note": step.note,
        "packet": step.packet.to_dict() if step.packet else None,
    }

"""Trace records: what happened to one packet, step by step.

A Trace is data.  Pages, graphs, JSON and text are all built from it without
re-running the traversal: every Step keeps the packet as it was after the step.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from .context import Result
from .packet import Packet, proto_name


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


# What the sender's socket reports for an ICMP error (icmp_err_convert[],
# icmpv6_err_convert()), in its strerror() words.
_ICMP_WORDS = {
    (3, 0): "network is unreachable", (3, 1): "no route to host",
    (3, 2): "protocol not available", (3, 3): "connection refused",
    (3, 9): "network is unreachable", (3, 10): "no route to host",
    (3, 13): "no route to host",
    (1, 0): "network is unreachable", (1, 1): "permission denied",
    (1, 3): "no route to host", (1, 4): "connection refused",
}


@dataclass(frozen=True)
class Fate:
    """The packet's fate in the sender's words, beside the kernel's DROP."""

    verdict: str  # ACCEPT or DROP, as Trace.verdict
    # REJECT (a rule answered), DROP (a rule or policy dropped silently),
    # ROUTE (the routing decision answered with an ICMP error), None
    # (accepted, or dropped by something else).
    target: str | None
    reject_with: str | None = None  # --reject-with value, or the route error
    icmp_type: int | None = None
    icmp_code: int | None = None
    summary: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "target": self.target, "reject_with": self.reject_with,
                "icmp_type": self.icmp_type, "icmp_code": self.icmp_code, "summary": self.summary}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Fate:
        return cls(data["verdict"], data.get("target"), data.get("reject_with"),
                   data.get("icmp_type"), data.get("icmp_code"), data.get("summary", ""))


def fate_of(verdict: str, reject_with: str | None, fate_step: Step | None, path: str) -> Fate:
    from .pipeline import REJECT_ICMP  # the table lives with the code that sends the error

    if verdict != "DROP":
        return Fate(verdict, None, summary="delivered" if path in ("input", "output-local") else "sent on")
    if reject_with == "tcp-reset":
        return Fate(verdict, "REJECT", reject_with,
                    summary="connection refused (the host answers with a TCP RST)")
    if reject_with is not None and reject_with in REJECT_ICMP:
        icmp_type, code = REJECT_ICMP[reject_with]
        target = "ROUTE" if reject_with.startswith("route-") else "REJECT"
        words = _ICMP_WORDS.get((icmp_type, code), "an ICMP error")
        family = "ICMPv6" if icmp_type == 1 else "ICMP"
        return Fate(verdict, target, reject_with, icmp_type, code,
                    f"{words} ({family} type {icmp_type} code {code} from {reject_with})")
    target = "DROP" if fate_step is not None and fate_step.kind in (StepKind.RULE, StepKind.POLICY) else None
    return Fate(verdict, target, summary="the client sees a timeout (dropped without an answer)")


@dataclass(frozen=True)
class Trace:
    packet_in: Packet
    steps: tuple[Step, ...]
    verdict: str  # ACCEPT or DROP: the packet's fate
    packet_out: Packet
    # "input", "forward", "output", "output-local" (loopback delivery),
    # "bridge" (a frame bridged between two ports of a Linux bridge)
    path: str
    # Human-readable reason for the fate: "dropped by filter FORWARD rule 7".
    summary: str = ""
    # Where the result is uncertain: (table, chain, rule) of unknown/assumed rules.
    uncertain: tuple[tuple[str, str, int], ...] = ()
    # statistic --mode random rules met: (table, chain, rule, probability, chosen)
    statistic: tuple[tuple[str, str, int, float, bool], ...] = ()
    hooks: tuple[str, ...] = ()  # hooks traversed, in order
    seed: int = 0
    fate: Fate | None = None
    # The RST or ICMP error the host sent back (REJECT, no route), traced
    # through OUTPUT and POSTROUTING as the RELATED packet it is.
    related: Trace | None = None

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
            "fate": self.fate.to_dict() if self.fate else None,
            "related": self.related.packet_dict() if self.related else None,
            "steps": [step_to_dict(s) for s in self.steps],
        }

    def ctstate(self) -> str | None:
        """The packet's ctstate as the chains after conntrack saw it (None:
        conntrack is not active, or the packet never reached it)."""
        ct = self.packet_out.ct
        return ct.state if ct is not None else None

    def packet_dict(self) -> dict[str, Any]:
        """One packet of a conversation, in scenario-v2 §3 shape."""
        out = self.packet_out
        header: dict[str, Any] = {"proto": proto_name(out.proto), **out.header()}
        if out.proto == 6:
            header["tcp_flags"] = out.to_dict()["tcp_flags"]
        quoted = out.get_extra("embedded")
        if quoted is not None:
            header["quoted"] = dict(quoted)
        return {
            "hops": self.hops(),
            "verdict": self.verdict,
            "packet_out": header,
            "ctstate": self.ctstate(),
            "fate": self.fate.to_dict() if self.fate else None,
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

"""What a match or target evaluator gets, and what it gives back."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

from . import limits
from .conntrack import ConntrackTable
from .packet import Packet
from .ruleset import Ruleset

if TYPE_CHECKING:
    from .host import Host


class Result(str, Enum):
    MATCH = "match"
    NOMATCH = "nomatch"
    # The dump alone cannot decide (state outside it, or a module the engine
    # does not evaluate).  Never silently true or false.
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class MatchOutcome:
    result: Result
    clause: str = ""  # the option that decided, in save syntax: "--dport 443"
    reason: str = ""  # plain words: "--dport 443 ≠ 80"
    # True when the result rests on an assumption about state the dump does
    # not hold (a fresh `limit` bucket, an empty `recent` list…); the trace
    # marks such rules uncertain.
    assumed: bool = False


@dataclass
class TraceState:
    """Mutable state carried through one trace: randomness and the per-rule
    state of stateful matches, so a trace is reproducible from its seed."""

    seed: int = 0
    # (table, chain, rule index) → forced result for `statistic --mode random`
    statistic_choices: dict[tuple[str, str, int], bool] = field(default_factory=dict)
    # statistic rules met on the way: (table, chain, index, probability, chosen)
    statistic_seen: list[tuple[str, str, int, float, bool]] = field(default_factory=list)
    nth_counters: dict[tuple[str, str, int], int] = field(default_factory=dict)
    recent: dict[str, set[str]] = field(default_factory=dict)
    # limit/hashlimit tokens taken in this trace: (table, chain, rule) or
    # ("hashlimit", name, key) → how many evaluations took one.
    limit_taken: dict[tuple[Any, ...], int] = field(default_factory=dict)
    # SET --add-set/--del-set done in this trace: set name → {element key:
    # present}; set lookups later in the same trace see them.
    set_changes: dict[str, dict[tuple[Any, ...], bool]] = field(default_factory=dict)
    # connlimit lists (nf_conncount): rule key → [(connection, jiffy added)],
    # and the jiffy of each list's last scan.  `jiffy` advances with every
    # packet of a conversation (a packet and the answer it causes share one).
    connlimit: dict[tuple[Any, ...], list[tuple[Any, int]]] = field(default_factory=dict)
    connlimit_gc: dict[tuple[Any, ...], int] = field(default_factory=dict)
    jiffy: int = 0
    # Confirmed conntrack entries, carried from packet to packet of a
    # conversation (netviz/engine/conversation.py); empty for one packet.
    conntrack: ConntrackTable = field(default_factory=ConntrackTable)
    # False walks every rule one by one (netviz/engine/index.py is not used);
    # the hops are the same either way.
    use_index: bool = True
    # Steps one walk may take (limits.py); read when the state is made.
    max_steps: int = field(default_factory=lambda: limits.MAX_WALK_STEPS)
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)


@dataclass
class EvalContext:
    ruleset: Ruleset
    host: Host
    hook: str  # PREROUTING, INPUT, FORWARD, OUTPUT, POSTROUTING
    table: str
    chain: str
    rule_index: int
    packet: Packet
    state: TraceState


@dataclass(frozen=True)
class TargetOutcome:
    # CONTINUE, ACCEPT, DROP, RETURN, QUEUE — the verdict the kernel reports.
    verdict: str
    packet: Packet
    note: str = ""
    # Outcome rests on state the dump does not hold.
    assumed: bool = False
    unknown: bool = False

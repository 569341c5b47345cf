"""The parsed form of `nft list ruleset` (text or JSON).

Frozen dataclasses holding tuples, as for iptables (netviz/engine/ruleset.py).
Expressions and statements follow nft's own vocabulary (libnftables JSON
schema, nft(8)): a rule is a tuple of statements; a statement matches
(`Match`), decides (`Verdict`, `VMap`), or acts (`Nat`, `SetStmt`…).  Values
stay as the listing spells them (`established`, `10.0.0.0/8`, `"eth*"`); the
evaluator types them by what they are compared with.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# -- expressions -------------------------------------------------------------


@dataclass(frozen=True)
class Payload:
    protocol: str  # ip, ip6, tcp, udp, sctp, icmp, icmpv6, th, ether…
    field: str  # saddr, dport, flags…


@dataclass(frozen=True)
class Meta:
    key: str  # iifname, l4proto, mark…


@dataclass(frozen=True)
class Ct:
    key: str  # state, status, mark, saddr…
    dir: str = ""  # original / reply / ""
    family: str = ""  # ip / ip6 / "" (ct original ip saddr)


@dataclass(frozen=True)
class Fib:
    flags: tuple[str, ...]  # saddr, daddr, mark, iif, oif
    result: str  # oif, oifname, type


@dataclass(frozen=True)
class Value:
    text: str  # as listed: "22", "established", "10.0.0.0/8", "\"eth0\""


@dataclass(frozen=True)
class Prefix:
    addr: str
    length: int


@dataclass(frozen=True)
class Range:
    low: Expr
    high: Expr


@dataclass(frozen=True)
class Flags:
    items: tuple[str, ...]  # a comma list outside braces: established,related


@dataclass(frozen=True)
class Concat:
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class Binop:
    op: str  # & | ^ << >>
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Element:
    key: Expr
    data: Expr | Verdict | None = None  # for maps
    comment: str = ""


@dataclass(frozen=True)
class SetLit:
    elements: tuple[Element, ...]


@dataclass(frozen=True)
class SetRef:
    name: str


@dataclass(frozen=True)
class MapLookup:
    key: Expr
    map: SetLit | SetRef


@dataclass(frozen=True)
class Numgen:
    mode: str  # random / inc
    mod: int
    offset: int = 0


@dataclass(frozen=True)
class Opaque:
    """An expression the engine does not evaluate: kept, evaluates as unknown."""

    text: str


Expr = (
    Payload | Meta | Ct | Fib | Value | Prefix | Range | Flags | Concat | Binop | SetLit | SetRef
    | MapLookup | Numgen | Opaque
)

# -- statements --------------------------------------------------------------


@dataclass(frozen=True)
class Match:
    left: Expr
    op: str  # "==" (also implicit), "!=", "<", ">", "<=", ">="; "implicit" for bare values
    right: Expr
    text: str = ""  # as listed: "tcp dport 22"


@dataclass(frozen=True)
class Verdict:
    kind: str  # accept, drop, continue, return, jump, goto, queue
    chain: str = ""


@dataclass(frozen=True)
class VMap:
    key: Expr
    map: SetLit | SetRef
    text: str = ""


@dataclass(frozen=True)
class Nat:
    kind: str  # dnat, snat, masquerade, redirect
    family: str = ""  # ip / ip6 in inet tables
    addr: Expr | None = None
    port: Expr | None = None
    flags: tuple[str, ...] = ()


@dataclass(frozen=True)
class SetStmt:
    """`meta mark set EXPR`, `ct mark set EXPR`, `ip dscp set …`."""

    target: Expr
    value: Expr


@dataclass(frozen=True)
class DynSet:
    op: str  # add, update, delete
    set: str
    key: Expr


@dataclass(frozen=True)
class Limit:
    rate: int
    per: str  # second, minute, hour, day, week
    burst: int = 5
    unit: str = "packets"  # packets or bytes (rate in bytes/unit then)
    over: bool = False


@dataclass(frozen=True)
class Quota:
    bytes: int
    over: bool = False
    used: int = 0


@dataclass(frozen=True)
class Reject:
    type: str = ""  # icmp, icmpv6, icmpx, tcp reset
    code: str = ""


@dataclass(frozen=True)
class Action:
    """A statement with no effect on the verdict or the packet's fields the
    engine reads: counter, log, notrack, ct helper set, nftrace… (`name`)."""

    name: str
    text: str = ""


@dataclass(frozen=True)
class Unknown:
    """A statement the engine does not evaluate (xt, synproxy, tproxy…)."""

    text: str


Statement = Match | Verdict | VMap | Nat | SetStmt | DynSet | Limit | Quota | Reject | Action | Unknown

# -- ruleset -----------------------------------------------------------------

TRACED_FAMILIES = ("ip", "ip6", "inet")


@dataclass(frozen=True)
class Rule:
    family: str
    table: str
    chain: str
    index: int  # 1-based position in its chain, in listing order
    line: int
    text: str
    statements: tuple[Statement, ...] = ()
    comment: str = ""
    handle: int | None = None
    counter: tuple[int, int] | None = None  # packets, bytes as listed


@dataclass(frozen=True)
class BaseHook:
    type: str  # filter, nat, route
    hook: str  # prerouting, input, forward, output, postrouting, ingress…
    priority: int
    policy: str = "accept"
    device: str = ""


@dataclass(frozen=True)
class Chain:
    family: str
    table: str
    name: str
    base: BaseHook | None = None
    rules: tuple[Rule, ...] = ()
    line: int = 0
    comment: str = ""


@dataclass(frozen=True)
class NftSet:
    name: str
    key_type: tuple[str, ...]  # ("ipv4_addr", "inet_proto", "inet_service")
    data_type: str = ""  # "verdict", "ipv4_addr"…; "" for a set
    flags: tuple[str, ...] = ()
    elements: tuple[Element, ...] = ()
    line: int = 0
    comment: str = ""
    is_map: bool = False
    typeof: str = ""  # `typeof` expression text when the set was declared with it


@dataclass(frozen=True)
class Table:
    family: str
    name: str
    chains: tuple[Chain, ...] = ()
    sets: tuple[NftSet, ...] = ()
    line: int = 0
    managed: bool = False  # by iptables-nft: the iptables-save dump has it instead
    comment: str = ""
    _chains: dict[str, Chain] = field(default_factory=dict, init=False, repr=False, compare=False, hash=False)
    _sets: dict[str, NftSet] = field(default_factory=dict, init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_chains", {c.name: c for c in self.chains})
        object.__setattr__(self, "_sets", {s.name: s for s in self.sets})

    def chain(self, name: str) -> Chain | None:
        return self._chains.get(name)

    def set(self, name: str) -> NftSet | None:
        return self._sets.get(name)

    @property
    def traced(self) -> bool:
        return self.family in TRACED_FAMILIES and not self.managed


@dataclass(frozen=True)
class NftRuleset:
    tables: tuple[Table, ...] = ()
    # Why some tables are left out: "table ip filter is managed by iptables-nft…"
    notes: tuple[str, ...] = ()

    def table(self, family: str, name: str) -> Table | None:
        for table in self.tables:
            if table.family == family and table.name == name:
                return table
        return None

    def rules(self) -> tuple[Rule, ...]:
        return tuple(r for t in self.tables for c in t.chains for r in c.rules)


class NftParseError(ValueError):
    def __init__(self, message: str, line: int = 0, column: int = 0, path: str = "") -> None:
        where = f"line {line}, column {column}: " if line else f"{path}: " if path else ""
        super().__init__(where + message)
        self.line = line
        self.column = column
        self.path = path

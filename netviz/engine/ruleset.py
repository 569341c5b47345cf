"""The parsed form of an iptables-save / ipset save dump.

Everything is a frozen dataclass holding tuples, so a Ruleset can be shared
between traces and threads without copying.  Names and spellings follow
iptables-save output (`nat`, `PREROUTING`, `--set-xmark`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from .hooks import IPTABLES_HOOKS


class Family(str, Enum):
    IPV4 = "ipv4"
    IPV6 = "ipv6"


# Built-in chains of each table (the hook order lives in hooks.py).
BUILTIN_CHAINS = IPTABLES_HOOKS

TERMINAL_VERDICTS = frozenset({"ACCEPT", "DROP", "RETURN", "QUEUE"})


@dataclass(frozen=True)
class Option:
    """One `[!] --name value…` clause of a match or target, as saved."""

    name: str  # "--dport", "-s", "--match-set"
    values: tuple[str, ...] = ()
    negated: bool = False

    @property
    def value(self) -> str:
        return " ".join(self.values)

    def text(self) -> str:
        parts = ["!"] if self.negated else []
        parts.append(self.name)
        parts.extend(_quote(v) for v in self.values)
        return " ".join(parts)


@dataclass(frozen=True)
class Match:
    """`-m module options…`.  The basic criteria (-s -d -i -o -p -f) form a
    Match with module "" so every clause of a rule is evaluated the same way."""

    module: str
    options: tuple[Option, ...] = ()

    def option(self, name: str) -> Option | None:
        for opt in self.options:
            if opt.name == name:
                return opt
        return None

    def text(self) -> str:
        body = " ".join(o.text() for o in self.options)
        if not self.module:
            return body
        return f"-m {self.module} {body}".rstrip()


@dataclass(frozen=True)
class Target:
    """`-j NAME options…` or `-g CHAIN`."""

    name: str
    options: tuple[Option, ...] = ()
    goto: bool = False

    def option(self, name: str) -> Option | None:
        for opt in self.options:
            if opt.name == name:
                return opt
        return None

    def text(self) -> str:
        flag = "-g" if self.goto else "-j"
        body = " ".join(o.text() for o in self.options)
        return f"{flag} {self.name} {body}".rstrip()


@dataclass(frozen=True)
class Counters:
    packets: int
    bytes: int


@dataclass(frozen=True)
class Rule:
    table: str
    chain: str
    index: int  # 1-based position in its chain, in dump order
    line: int  # source line number in the uploaded dump
    text: str  # the original line, without counters
    matches: tuple[Match, ...] = ()
    target: Target | None = None
    counters: Counters | None = None

    def comments(self) -> tuple[str, ...]:
        return tuple(
            opt.value
            for m in self.matches
            if m.module == "comment"
            for opt in m.options
            if opt.name == "--comment"
        )

    def canonical(self) -> str:
        """The rule printed back in save syntax (without counters)."""
        parts = [f"-A {self.chain}"]
        parts.extend(m.text() for m in self.matches if m.text())
        if self.target is not None:
            parts.append(self.target.text())
        return " ".join(parts)


@dataclass(frozen=True)
class Chain:
    table: str
    name: str
    policy: str | None  # ACCEPT / DROP for built-in chains, None for user chains
    rules: tuple[Rule, ...] = ()
    line: int = 0
    counters: Counters | None = None

    @property
    def builtin(self) -> bool:
        return self.name in BUILTIN_CHAINS.get(self.table, ())


@dataclass(frozen=True)
class Table:
    name: str
    chains: tuple[Chain, ...] = ()
    line: int = 0
    _by_name: dict[str, Chain] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {c.name: c for c in self.chains})

    def chain(self, name: str) -> Chain | None:
        return self._by_name.get(name)


@dataclass(frozen=True)
class SetMember:
    """One `add NAME elem` line: elem split on commas into its dimensions."""

    elements: tuple[str, ...]
    nomatch: bool = False
    timeout: int | None = None
    line: int = 0


@dataclass(frozen=True)
class IPSet:
    name: str
    type: str  # "hash:ip,port"
    family: str = "inet"  # inet / inet6
    options: tuple[tuple[str, str], ...] = ()  # create options, e.g. ("maxelem", "65536")
    members: tuple[SetMember, ...] = ()
    line: int = 0

    @property
    def method(self) -> str:
        return self.type.split(":", 1)[0]

    @property
    def dimensions(self) -> tuple[str, ...]:
        return tuple(self.type.split(":", 1)[1].split(","))


@dataclass(frozen=True)
class Ruleset:
    family: Family = Family.IPV4
    tables: tuple[Table, ...] = ()
    ipsets: tuple[IPSet, ...] = ()
    _tables: dict[str, Table] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )
    _sets: dict[str, IPSet] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "_tables", {t.name: t for t in self.tables})
        object.__setattr__(self, "_sets", {s.name: s for s in self.ipsets})

    def table(self, name: str) -> Table | None:
        return self._tables.get(name)

    def ipset(self, name: str) -> IPSet | None:
        return self._sets.get(name)

    def rules(self) -> tuple[Rule, ...]:
        return tuple(r for t in self.tables for c in t.chains for r in c.rules)


def _quote(value: str) -> str:
    # xtables_save_string: bare iff non-empty and only [A-Za-z0-9_-] … but
    # addresses, port ranges and lists are printed bare by their modules, so
    # only quote what a tokenizer could not read back.
    if value and not any(ch in value for ch in ' \t"\\\''):
        return value
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("'", "\\'")
    return f'"{escaped}"'

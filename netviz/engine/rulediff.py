"""What changed between two dumps: tables, chains and rules, aligned per chain.

Rules are compared on their normalised save-syntax text (Rule.canonical(),
which never holds counters), aligned with difflib.SequenceMatcher the way
`diff` aligns lines.  On request the comparison ignores counters (the
default: `iptables-save -c` of two nodes never agree on them) and generated
hashes: Calico's `cali:XXXXXXXXXXXXXXXX` rule comments and kube-proxy's
hashed chain names (KUBE-SVC-<16 base32 chars>, KUBE-SEP-…), which differ
between nodes and versions for the same rule.

Native nftables tables of the nodes' listings are compared the same way,
as tables named "<family> <table>" (graph.nft_table_key), their rules by
their listed text with counters left out.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from enum import Enum

from .nft.model import Chain as NftChain
from .nft.model import NftRuleset
from .nft.model import Rule as NftRule
from .ruleset import Chain, Rule, Ruleset

AnyChain = Chain | NftChain
AnyRule = Rule | NftRule
# nft lists a counter with its values: `counter packets 3 bytes 180`.
_NFT_COUNTER = re.compile(r"\bcounter packets \d+ bytes \d+")

# felix/rules: the rule hash is 16 url-safe base64 characters after "cali:".
_CALI_HASH = re.compile(r'(--comment\s+"?)cali:[A-Za-z0-9_-]{16}("?)')
# kube-proxy pkg/proxy/iptables: servicePortChainName & co. are the prefix
# plus the first 16 characters of base32(sha256(…)).
_KUBE_HASH = re.compile(r"\b(KUBE-(?:SVC|SVL|SEP|FW|XLB|EXT)-)[A-Z2-7]{16}\b")


class Change(str, Enum):
    SAME = "same"
    ADDED = "added"  # only on the right
    REMOVED = "removed"  # only on the left
    CHANGED = "changed"


@dataclass(frozen=True)
class DiffOptions:
    ignore_counters: bool = True
    ignore_hashes: bool = False


@dataclass(frozen=True)
class RuleLine:
    change: Change
    left: AnyRule | None
    right: AnyRule | None

    @property
    def left_text(self) -> str:
        return self.left.text if self.left is not None else ""

    @property
    def right_text(self) -> str:
        return self.right.text if self.right is not None else ""


@dataclass(frozen=True)
class ChainDiff:
    table: str
    name: str  # the left name; the right one when the chain was added
    change: Change
    left: AnyChain | None
    right: AnyChain | None
    lines: tuple[RuleLine, ...]
    right_name: str = ""  # set when hashes are ignored and the chain was renamed

    @property
    def left_policy(self) -> str:
        return chain_policy(self.left)

    @property
    def right_policy(self) -> str:
        return chain_policy(self.right)

    @property
    def policy_changed(self) -> bool:
        return self.left is not None and self.right is not None and self.left_policy != self.right_policy

    def count(self, change: Change) -> int:
        return sum(1 for line in self.lines if line.change is change)


@dataclass(frozen=True)
class RulesetDiff:
    options: DiffOptions
    tables_added: tuple[str, ...]
    tables_removed: tuple[str, ...]
    chains: tuple[ChainDiff, ...]  # every chain of either side, in dump order

    @property
    def changed_chains(self) -> tuple[ChainDiff, ...]:
        return tuple(c for c in self.chains if c.change is not Change.SAME)

    @property
    def identical(self) -> bool:
        return not (self.tables_added or self.tables_removed or self.changed_chains)

    def totals(self) -> dict[str, int]:
        out = {c.value: 0 for c in Change}
        for chain in self.chains:
            for line in chain.lines:
                out[line.change.value] += 1
        out["chains_added"] = sum(1 for c in self.chains if c.change is Change.ADDED)
        out["chains_removed"] = sum(1 for c in self.chains if c.change is Change.REMOVED)
        out["chains_changed"] = sum(1 for c in self.chains if c.change is Change.CHANGED)
        return out

    def unified(self, left_name: str = "left", right_name: str = "right") -> str:
        """A unified diff of the changed chains, one hunk per chain."""
        out = [f"--- {left_name}", f"+++ {right_name}"]
        for chain in self.changed_chains:
            head = f"@@ {chain.table} {chain.name}"
            if chain.right_name and chain.right_name != chain.name:
                head += f" → {chain.right_name}"
            if chain.change in (Change.ADDED, Change.REMOVED):
                head += f" (chain {chain.change.value})"
            out.append(head + " @@")
            if chain.policy_changed:
                assert chain.left is not None and chain.right is not None
                out.append(f"-:{chain.left.name} {chain.left_policy}")
                out.append(f"+:{chain.right.name} {chain.right_policy}")
            for line in chain.lines:
                if line.change is Change.SAME:
                    out.append(f" {line.left_text}")
                    continue
                if line.left is not None:
                    out.append(f"-{line.left_text}")
                if line.right is not None:
                    out.append(f"+{line.right_text}")
        return "\n".join(out) + "\n"


def chain_policy(chain: AnyChain | None) -> str:
    if isinstance(chain, NftChain):
        return chain.base.policy if chain.base is not None else ""
    return (chain.policy or "") if chain is not None else ""


def normalise_rule(rule: AnyRule, options: DiffOptions) -> str:
    if isinstance(rule, NftRule):
        if options.ignore_counters:
            return _NFT_COUNTER.sub("counter", rule.text)
        return rule.text
    text = rule.canonical()
    if options.ignore_hashes:
        text = _CALI_HASH.sub(r"\1cali:…\2", text)
        text = _KUBE_HASH.sub(r"\1…", text)
    if not options.ignore_counters and rule.counters is not None:
        text = f"[{rule.counters.packets}:{rule.counters.bytes}] {text}"
    return text


def _chain_key(name: str, options: DiffOptions) -> str:
    return _KUBE_HASH.sub(r"\1…", name) if options.ignore_hashes else name


def _diff_rules(
    left: tuple[AnyRule, ...], right: tuple[AnyRule, ...], options: DiffOptions
) -> tuple[RuleLine, ...]:
    a = [normalise_rule(r, options) for r in left]
    b = [normalise_rule(r, options) for r in right]
    lines: list[RuleLine] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if tag == "equal":
            lines.extend(RuleLine(Change.SAME, lr, rr) for lr, rr in zip(left[i1:i2], right[j1:j2], strict=True))
            continue
        lpart, rpart = list(left[i1:i2]), list(right[j1:j2])
        # A replaced block pairs rule for rule ("changed"), the rest is
        # added or removed — how a reader sees an edited line.
        for n in range(max(len(lpart), len(rpart))):
            lr = lpart[n] if n < len(lpart) else None
            rr = rpart[n] if n < len(rpart) else None
            if lr is not None and rr is not None:
                lines.append(RuleLine(Change.CHANGED, lr, rr))
            elif lr is not None:
                lines.append(RuleLine(Change.REMOVED, lr, None))
            else:
                lines.append(RuleLine(Change.ADDED, None, rr))
    return tuple(lines)


def _chain_diff(table: str, left: AnyChain | None, right: AnyChain | None, options: DiffOptions) -> ChainDiff:
    lines = _diff_rules(left.rules if left else (), right.rules if right else (), options)
    if left is None:
        change = Change.ADDED
    elif right is None:
        change = Change.REMOVED
    else:
        policy_differs = chain_policy(left) != chain_policy(right)
        if not options.ignore_counters and getattr(left, "counters", None) != getattr(right, "counters", None):
            policy_differs = True
        change = Change.CHANGED if policy_differs or any(
            line.change is not Change.SAME for line in lines
        ) else Change.SAME
    name = left.name if left is not None else right.name if right is not None else ""
    right_name = right.name if right is not None and left is not None and right.name != left.name else ""
    return ChainDiff(table, name, change, left, right, lines, right_name)


def _tables(ruleset: Ruleset, nft: NftRuleset | None) -> dict[str, tuple[AnyChain, ...]]:
    tables: dict[str, tuple[AnyChain, ...]] = {t.name: tuple(t.chains) for t in ruleset.tables}
    for table in nft.tables if nft is not None else ():
        # iptables-nft's tables are the dump's, already compared above.
        if not table.managed:
            tables[f"{table.family} {table.name}"] = table.chains
    return tables


def diff_rulesets(
    left: Ruleset,
    right: Ruleset,
    *,
    ignore_counters: bool = True,
    ignore_hashes: bool = False,
    left_nft: NftRuleset | None = None,
    right_nft: NftRuleset | None = None,
) -> RulesetDiff:
    options = DiffOptions(ignore_counters=ignore_counters, ignore_hashes=ignore_hashes)
    ltables, rtables = _tables(left, left_nft), _tables(right, right_nft)
    left_tables = list(ltables)
    right_tables = list(rtables)
    chains: list[ChainDiff] = []
    for table_name in left_tables + [t for t in right_tables if t not in left_tables]:
        lchains = list(ltables.get(table_name, ()))
        rchains = list(rtables.get(table_name, ()))
        rby = {c.name: c for c in rchains}
        paired: dict[str, AnyChain] = {}
        for c in lchains:
            if c.name in rby:
                paired[c.name] = rby.pop(c.name)
        if options.ignore_hashes:
            # Chains whose names differ only in a kube-proxy hash pair up when
            # their normalised rules are the same (same service, other node).
            body = {
                (_chain_key(c.name, options), tuple(normalise_rule(r, options) for r in c.rules)): c
                for c in rby.values()
            }
            for c in lchains:
                if c.name in paired:
                    continue
                key = (_chain_key(c.name, options), tuple(normalise_rule(r, options) for r in c.rules))
                if key in body:
                    match = body.pop(key)
                    paired[c.name] = match
                    rby.pop(match.name, None)
        for c in lchains:
            chains.append(_chain_diff(table_name, c, paired.get(c.name), options))
        for c in rchains:
            if c.name in rby:
                chains.append(_chain_diff(table_name, None, c, options))
    return RulesetDiff(
        options=options,
        tables_added=tuple(t for t in right_tables if t not in left_tables),
        tables_removed=tuple(t for t in left_tables if t not in right_tables),
        chains=tuple(chains),
    )

"""What a walk may cost, and the chain graphs the kernel refuses to load.

Shared by every walker (iptables and nftables alike): a table whose chains
loop, or nest deeper than the kernel's jump stack, is refused when it is
loaded, as the kernel refuses it; and every walk counts its steps against
one budget, so no input can make a walk run (or grow) without end.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .ruleset import Rule, Table

# nf_tables' jump stack (NFT_JUMP_STACK_SIZE).  nft_chain_validate() walks
# every chain reachable from a base chain, one level per jump *or* goto, and
# refuses level 16 with -EMLINK ("Too many links"); a loop reaches it too.
JUMP_STACK_SIZE = 16

# Steps one walk may take (a rule evaluated, a run of rules skipped, an
# implicit RETURN).  Without loops and with nesting bounded, a walk still
# multiplies when chains call the same chain many times over (fan-out at
# every level); real rulesets stay far below this (a packet through a
# 110k-rule kube-proxy dump takes at most ~11k steps even rule by rule), so
# reaching it means a hostile ruleset.  250k steps cost a few seconds and
# ~100 MB of steps, then the walk is refused.
MAX_WALK_STEPS = 250_000


@dataclass(frozen=True)
class LoadLimits:
    """What a server accepts in one dump (None: no limit).  The parser stops
    at the first line over a limit, before the rest is read into memory."""

    max_rules: int | None = None
    max_chains: int | None = None
    max_set_members: int | None = None

    def over(self, count: int, limit: int | None, what: str) -> str:
        if limit is not None and count > limit:
            return f"more than {limit:,} {what}: the most this server accepts in one dump"
        return ""


class WalkLimitError(ValueError):
    """A walk took more steps than MAX_WALK_STEPS."""

    def __init__(self, steps: int, where: str) -> None:
        self.steps = steps
        super().__init__(
            f"the walk took more than {steps:,} steps (last in {where}): the ruleset's "
            "chains call each other too many times for one packet"
        )


class ChainGraphError(ValueError):
    """A table the kernel would refuse: a jump/goto loop or nesting too deep."""

    def __init__(self, rule: Rule, reason: str) -> None:
        self.rule = rule
        self.reason = reason
        super().__init__(f"line {rule.line}: {reason}")


def _edges(table: Table, chain_name: str) -> Iterable[tuple[Rule, str]]:
    chain = table.chain(chain_name)
    if chain is None:
        return ()
    out = []
    for rule in chain.rules:
        target = rule.target
        if target is None:
            continue
        dest = table.chain(target.name)
        if dest is not None and not dest.builtin:
            out.append((rule, dest.name))
    return out


def check_chain_graph(table: Table) -> None:
    """Raise ChainGraphError if the kernel would refuse this table.

    As nft_table_validate(), only chains reachable from a built-in (base)
    chain are checked: a loop among chains nothing calls loads fine.
    """
    edges: dict[str, list[tuple[Rule, str]]] = {}
    # height[c]: the longest run of jumps/gotos starting at c (0 for none).
    height: dict[str, int] = {}
    # via[c]: the edge that starts that longest run, to name the chains.
    via: dict[str, tuple[Rule, str]] = {}
    for base in table.chains:
        if not base.builtin:
            continue
        # Iterative depth-first search: a dump may nest thousands of chains.
        on_path: dict[str, int] = {base.name: 0}
        path: list[tuple[str, int, Rule | None]] = [(base.name, 0, None)]
        while path:
            name, i, entered_by = path[-1]
            out = edges.get(name)
            if out is None:
                out = edges[name] = list(_edges(table, name))
            if i < len(out):
                path[-1] = (name, i + 1, entered_by)
                rule, dest = out[i]
                if dest in on_path:
                    cycle = [p[0] for p in path[on_path[dest]:]] + [dest]
                    raise ChainGraphError(
                        rule,
                        f"the chains {' → '.join(cycle)} loop (jumps/gotos reachable from "
                        f"{base.name}); the kernel refuses a loop (Too many links)",
                    )
                if dest in height:
                    continue
                on_path[dest] = len(path)
                path.append((dest, 0, rule))
                continue
            path.pop()
            del on_path[name]
            best = 0
            for rule, dest in out:
                if height[dest] + 1 > best:
                    best = height[dest] + 1
                    via[name] = (rule, dest)
            height[name] = best
        if height[base.name] >= JUMP_STACK_SIZE:
            _too_deep(base.name, via)


def _too_deep(base: str, via: dict[str, tuple[Rule, str]]) -> None:
    chains = [base]
    rule = None
    for _ in range(JUMP_STACK_SIZE):
        rule, dest = via[chains[-1]]
        chains.append(dest)
    assert rule is not None
    shown = chains if len(chains) <= 8 else [*chains[:3], "…", *chains[-3:]]
    raise ChainGraphError(
        rule,
        f"chain {chains[-1]} is {JUMP_STACK_SIZE} jumps/gotos below {base} ({' → '.join(shown)}); "
        f"the kernel's jump stack ({JUMP_STACK_SIZE}) allows {JUMP_STACK_SIZE - 1} (Too many links)",
    )


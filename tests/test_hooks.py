"""The order of functions at a hook (netviz/engine/hooks.py), as the kernel showed it."""

from __future__ import annotations

from netviz.engine.hooks import HookEntry, hook_order


def chain(name: str, priority: int, seq: float, type_: str = "filter", family: str = "inet") -> HookEntry:
    return HookEntry("chain", priority, seq, table="t", family=family, chain=name, type=type_)


def labels(entries: tuple[HookEntry, ...]) -> list[str]:
    return [e.label for e in entries]


def test_it_runs_iptables_tables_at_their_nf_tables_priorities() -> None:
    tables = ("filter", "nat", "mangle", "raw", "security")
    assert labels(hook_order("INPUT", tables)) == ["mangle", "filter", "nat", "security"]
    assert labels(hook_order("OUTPUT", tables)) == ["raw", "conntrack", "mangle", "nat", "filter", "security"]
    assert labels(hook_order("FORWARD", ("filter",))) == ["filter"]


def test_it_runs_equal_priorities_newest_first() -> None:
    # `inet filter input` (priority 0, loaded after iptables-restore) ran
    # before iptables `filter INPUT`; in one file the later-listed chain first.
    order = hook_order("INPUT", ("filter",), (chain("in1", 0, 10), chain("in2", 0, 11)))
    assert labels(order) == ["inet t in2", "inet t in1", "filter"]


def test_it_places_a_chain_at_filter_plus_10_after_the_iptables_filter_table() -> None:
    order = hook_order("INPUT", ("filter", "security"), (chain("filter_INPUT", 10, 10),))
    assert labels(order) == ["filter", "inet t filter_INPUT", "security"]


def test_it_runs_all_nat_chains_together_at_the_nat_hook() -> None:
    # Seen: filter -150, filter -101, nat -190, nat -100, filter -99.
    chains = (
        chain("f150", -150, 1), chain("f101", -101, 2), chain("n190", -190, 3, "nat"),
        chain("n100", -100, 4, "nat"), chain("f99", -99, 5),
    )
    order = hook_order("PREROUTING", ("nat",), chains)
    assert labels(order) == ["conntrack", "inet t f150", "inet t f101", "nat", "inet t f99"]
    nat = order[3]
    assert labels(nat.members) == ["inet t n190", "inet t n100", "nat"]


def test_it_places_postrouting_nat_at_100() -> None:
    # Seen: filter 99, nat 50, nat 300, filter 200 at postrouting.
    chains = (chain("f99", 99, 1), chain("n50", 50, 2, "nat"), chain("n300", 300, 3, "nat"), chain("f200", 200, 4))
    order = hook_order("POSTROUTING", (), chains)
    assert labels(order) == ["inet t f99", "nat", "inet t f200"]
    assert labels(order[1].members) == ["inet t n50", "inet t n300"]

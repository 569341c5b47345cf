"""Helpers for tests that compare the engine with the kernel: hop diffs and a
seeded generator of tangled rulesets (randomrules)."""

from .compare import format_hop, hops_diff

__all__ = ["format_hop", "hops_diff"]

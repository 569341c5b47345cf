"""Readable hop-by-hop differences between two `hops` lists."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def format_hop(hop: dict[str, Any] | None) -> str:
    if hop is None:
        return "—"
    where = f"{hop.get('table')} {hop.get('chain')}"
    if "policy" in hop:
        return f"{where} policy {hop['policy']}"
    return f"{where} rule {hop.get('rule')} → {hop.get('verdict')}"


def hops_diff(
    expected: Sequence[dict[str, Any]],
    actual: Sequence[dict[str, Any]],
    expected_name: str = "kernel",
    actual_name: str = "engine",
) -> str:
    """Empty when equal; otherwise a two-column table marking every differing hop."""
    exp, act = list(expected), list(actual)
    if exp == act:
        return ""
    width = max([len(format_hop(h)) for h in exp] + [len(expected_name), 10])
    lines = [f"   # {expected_name:<{width}}   {actual_name}"]
    for i in range(max(len(exp), len(act))):
        left = exp[i] if i < len(exp) else None
        right = act[i] if i < len(act) else None
        mark = "  " if left == right else "!!"
        lines.append(f"{mark}{i + 1:2} {format_hop(left):<{width}}   {format_hop(right)}")
    return "\n".join(lines)

"""Simulation against the kernel: one call for `verify` and the web button.

The engine traces the scenario, netviz.kernel.replay asks the kernel in a
throw-away namespace, and the two hop lists are laid side by side.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from netviz.engine.conversation import trace_conversation_scenario
from netviz.engine.pipeline import trace_scenario
from netviz.engine.trace import Trace
from netviz.testing.compare import format_hop

from .conversation import replay_conversation
from .replay import (
    KernelTrace,
    KernelUnavailable,
    ReplayError,
    ScenarioLike,
    kernel_available,
    replay,
)


@dataclass(frozen=True)
class HopRow:
    index: int  # 1-based
    kernel: dict[str, Any] | None
    engine: dict[str, Any] | None

    @property
    def same(self) -> bool:
        return self.kernel == self.engine

    @property
    def kernel_text(self) -> str:
        return format_hop(self.kernel)

    @property
    def engine_text(self) -> str:
        return format_hop(self.engine)


@dataclass
class KernelCheck:
    engine: Trace | None = None
    kernel: KernelTrace | None = None
    # Why the kernel could not be asked (not root, tools missing, the kernel
    # refused the dump…); empty when it was.
    unavailable: str = ""
    rows: list[HopRow] = field(default_factory=list)
    # A conversation (scenario-v2 §3): one entry per packet, the first
    # included (its hops are also `rows` above).
    packets: list[PacketCheck] = field(default_factory=list)

    @property
    def ran(self) -> bool:
        return self.kernel is not None and self.engine is not None

    @property
    def verdicts_agree(self) -> bool:
        if not self.ran:
            return False
        assert self.kernel is not None and self.engine is not None
        # A packet that vanished without a netfilter verdict (no route) has
        # kernel verdict None: only the hops can be compared then.
        return self.kernel.verdict is None or self.kernel.verdict == self.engine.verdict

    @property
    def agree(self) -> bool:
        return (self.ran and all(r.same for r in self.rows) and self.verdicts_agree
                and all(p.agree for p in self.packets))

    @property
    def differences(self) -> list[int]:
        return [r.index for r in self.rows if not r.same]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"agree": self.agree, "unavailable": self.unavailable or None}
        if self.engine is not None:
            out["engine"] = {"hops": self.engine.hops(), "verdict": self.engine.verdict,
                             "packet_out": self.engine.packet_out.header()}
        if self.kernel is not None:
            out["kernel"] = {"hops": list(self.kernel.hops), "verdict": self.kernel.verdict,
                             "packet_out": self.kernel.packet_out,
                             "sent_with": self.kernel.sent_with}
        out["differences"] = self.differences
        if self.packets:
            out["packets"] = [p.to_dict() for p in self.packets]
        return out


@dataclass(frozen=True)
class PacketCheck:
    """One packet of a conversation: the engine's and the kernel's hops."""

    index: int  # 0 is the first packet
    dir: str
    engine: Trace | None  # None: not sent
    kernel: KernelTrace | None  # None: not sent, or the kernel never showed it
    kernel_note: str = ""

    @property
    def rows(self) -> list[HopRow]:
        return hop_rows(list(self.kernel.hops) if self.kernel else [], self.engine.hops() if self.engine else [])

    @property
    def agree(self) -> bool:
        if (self.engine is None) != (self.kernel is None):
            return False
        if self.engine is None or self.kernel is None:
            return True
        verdict_ok = self.kernel.verdict is None or self.kernel.verdict == self.engine.verdict
        return verdict_ok and all(r.same for r in self.rows)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dir": self.dir, "agree": self.agree,
            "engine": {"hops": self.engine.hops(), "verdict": self.engine.verdict} if self.engine else None,
            "kernel": {"hops": list(self.kernel.hops), "verdict": self.kernel.verdict} if self.kernel else None,
            "kernel_note": self.kernel_note or None,
        }


def hop_rows(kernel: list[dict[str, Any]], engine: list[dict[str, Any]]) -> list[HopRow]:
    n = max(len(kernel), len(engine))
    return [
        HopRow(i + 1, kernel[i] if i < len(kernel) else None, engine[i] if i < len(engine) else None)
        for i in range(n)
    ]


def check_scenario(scenario: ScenarioLike, timeout: float = 10.0, engine: Trace | None = None,
                   progress: Callable[[str], None] | None = None) -> KernelCheck:
    """Trace with the engine (unless a trace is given) and replay in the
    kernel.  Raises nothing for "cannot run here": that is `unavailable`."""
    if getattr(scenario, "packets", None):
        return check_conversation(scenario, timeout=max(timeout, 20.0))
    out = KernelCheck(engine=engine if engine is not None else trace_scenario(scenario))  # type: ignore[arg-type]
    ok, why = kernel_available()
    if not ok:
        out.unavailable = why
        return out
    try:
        out.kernel = replay(scenario, timeout=timeout, progress=progress)
    except KernelUnavailable as exc:
        out.unavailable = exc.reason
        return out
    except ReplayError as exc:
        out.unavailable = str(exc)
        return out
    assert out.engine is not None
    out.rows = hop_rows(list(out.kernel.hops), out.engine.hops())
    return out


def check_conversation(scenario: ScenarioLike, timeout: float = 20.0) -> KernelCheck:
    """Every packet of a conversation, engine and kernel side by side."""
    conv = trace_conversation_scenario(scenario)
    out = KernelCheck(engine=conv.first)
    ok, why = kernel_available()
    if not ok:
        out.unavailable = why
        return out
    try:
        kernel = replay_conversation(scenario, timeout=timeout)
    except KernelUnavailable as exc:
        out.unavailable = exc.reason
        return out
    except ReplayError as exc:
        out.unavailable = str(exc)
        return out
    out.kernel = kernel[0].trace
    assert out.kernel is not None
    out.rows = hop_rows(list(out.kernel.hops), conv.first.hops())
    out.packets = [
        PacketCheck(cp.index, cp.dir, cp.trace, kp.trace, kp.not_sent)
        for cp, kp in zip(conv.packets, kernel, strict=True)
    ]
    return out


def render_text(check: KernelCheck) -> str:
    """Both traces hop by hop, differences marked with `!!`."""
    if not check.ran:
        return f"cannot ask the kernel here: {check.unavailable}\n"
    assert check.kernel is not None and check.engine is not None
    width = max([len(r.kernel_text) for r in check.rows] + [len("kernel")])
    lines = [f"     {'kernel':<{width}}   simulation"]
    for r in check.rows:
        mark = "  " if r.same else "!!"
        lines.append(f"{mark}{r.index:3} {r.kernel_text:<{width}}   {r.engine_text}")
    kv = check.kernel.verdict or "none (no netfilter verdict)"
    mark = "  " if check.verdicts_agree else "!!"
    lines.append(f"{mark}    verdict: kernel {kv}, simulation {check.engine.verdict}")
    for p in check.packets[1:]:
        lines.append(f"packet {p.index + 1} ({p.dir}){'' if p.agree else '  !! differs'}")
        if p.engine is None or p.kernel is None:
            lines.append(f"     kernel: {'not seen: ' + p.kernel_note if p.kernel is None else 'sent'}; "
                         f"simulation: {'not sent' if p.engine is None else 'sent'}")
            continue
        for r in p.rows:
            mark = "  " if r.same else "!!"
            lines.append(f"{mark}{r.index:3} {r.kernel_text:<{width}}   {r.engine_text}")
        lines.append(f"       verdict: kernel {p.kernel.verdict or 'none'}, simulation {p.engine.verdict}")
    if check.agree:
        lines.append("kernel and simulation agree")
    else:
        n = len(check.differences) + (0 if check.verdicts_agree else 1)
        lines.append(f"kernel and simulation DIFFER ({n} difference{'s' if n != 1 else ''})")
    return "\n".join(lines) + "\n"

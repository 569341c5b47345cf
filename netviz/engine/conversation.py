"""Conversations: the first packet, its reply and later packets, each traced
with the conntrack entry the earlier ones left (shared spec scenario-v2.md §3).

    conv = trace_conversation(ruleset, host, first, [{"dir": "reply", "tcp_flags": "SA"}], family)
    conv.packets[1].trace.hops(), conv.packets[1].ctstate, conv.packets[1].entry

One TraceState is shared by every packet, so the conntrack table, `recent`
lists, limit tokens, nth counters and SET changes carry from one to the next.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .conntrack import ICMP_REPLY_TYPE, ICMPV6_REPLY_TYPE, entry_text, status_words
from .context import TraceState
from .host import Host
from .nft.evaluate import compile_nft
from .nft.model import NftRuleset
from .packet import Packet
from .pipeline import PacketError, packet_from_dict, trace_packet
from .ruleset import Family, Ruleset
from .trace import Trace

DIRECTIONS = ("original", "reply")
LATER_KEYS = frozenset({"dir", "tcp_flags", "icmp_type", "icmp_code", "mark", "length"})


@dataclass(frozen=True)
class ConversationPacket:
    index: int  # 0 is the first packet
    dir: str  # original / reply
    spec: dict[str, Any] = field(hash=False, compare=False, default_factory=dict)
    trace: Trace | None = None  # None: not sent
    # Why it was not sent ("packet 2 was dropped"); "" when it was.
    not_sent: str = ""
    # The conntrack entry after this packet, as `conntrack -L` prints it
    # ("" when there is none: conntrack off, untracked, INVALID, deleted).
    entry: str = ""

    @property
    def sent(self) -> bool:
        return self.trace is not None

    @property
    def ctstate(self) -> str | None:
        return self.trace.ctstate() if self.trace is not None else None

    @property
    def ctdir(self) -> str | None:
        ct = self.trace.packet_out.ct if self.trace is not None else None
        if ct is None or ct.state in ("INVALID", "UNTRACKED"):
            return None
        return ct.direction

    @property
    def ctstatus(self) -> tuple[str, ...]:
        ct = self.trace.packet_out.ct if self.trace is not None else None
        if ct is None or ct.state in ("INVALID", "UNTRACKED"):
            return ()
        return tuple(status_words(ct))

    def to_dict(self) -> dict[str, Any]:
        """scenario-v2 §3 keys (dir, hops, verdict, packet_out, ctstate) and ours."""
        if self.trace is None:
            return {"dir": self.dir, "sent": False, "not_sent": self.not_sent, "hops": [],
                    "verdict": None, "packet_out": None, "ctstate": None, "spec": self.spec}
        return {
            "dir": self.dir,
            "sent": True,
            **self.trace.packet_dict(),
            "ctdir": self.ctdir,
            "ctstatus": list(self.ctstatus),
            "conntrack": self.entry,
            "related": self.trace.related.packet_dict() if self.trace.related else None,
            "spec": self.spec,
            "summary": self.trace.summary,
        }


@dataclass(frozen=True)
class Conversation:
    packets: tuple[ConversationPacket, ...]

    @property
    def first(self) -> Trace:
        trace = self.packets[0].trace
        assert trace is not None
        return trace

    def to_dict(self) -> dict[str, Any]:
        return {"packets": [p.to_dict() for p in self.packets]}

    def trace_json(self) -> dict[str, Any]:
        """`trace --json` of a conversation: part 1's keys for the first
        packet, `packets` for the later ones (scenario-v2 §3)."""
        out = self.first.to_dict()
        out["ctstate"] = self.first.ctstate()
        out["conntrack"] = self.packets[0].entry
        out["packets"] = [p.to_dict() for p in self.packets[1:]]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ConversationRecord:
        """A stored conversation read back (the dicts, not the Trace objects:
        a page shows what was saved without re-running the engine)."""
        return ConversationRecord(tuple(data.get("packets") or ()))


@dataclass(frozen=True)
class ConversationRecord:
    # Conversation.to_dict()["packets"], as stored.
    packets: tuple[dict[str, Any], ...]

    def to_dict(self) -> dict[str, Any]:
        return {"packets": list(self.packets)}


def trace_conversation_scenario(scenario: Any, state: TraceState | None = None) -> Conversation:
    """A scenario (pipeline.ScenarioLike with `packets`) traced as a conversation."""
    from .nft.parse_json import parse_nft
    from .parser import parse_ruleset
    from .pipeline import state_from_options

    family = Family(scenario.family or "ipv4")
    ruleset = parse_ruleset(scenario.ruleset_text, scenario.ipsets_text, family=family)
    if state is None:
        state = state_from_options(getattr(scenario, "options", None) or {})
    nft_text = getattr(scenario, "nftables_text", None)
    return trace_conversation(ruleset, scenario.host or {}, scenario.packet,
                              list(getattr(scenario, "packets", None) or []), family, state,
                              nft=parse_nft(nft_text) if nft_text else None)


def validate_packets(packets: Any) -> list[dict[str, Any]]:
    """The scenario's `packets` list, checked (PacketError says what is wrong)."""
    if packets is None:
        return []
    if not isinstance(packets, list):
        raise PacketError("`packets` must be a list of later packets")
    out = []
    for i, spec in enumerate(packets, start=1):
        if not isinstance(spec, dict):
            raise PacketError(f"packets[{i}] must be an object")
        direction = str(spec.get("dir", "")).lower()
        if direction not in DIRECTIONS:
            raise PacketError(f"packets[{i}].dir must be original or reply, not {spec.get('dir')!r}")
        unknown = sorted(set(spec) - LATER_KEYS)
        if unknown:
            raise PacketError(f"packets[{i}]: unknown key {unknown[0]!r} (addresses and ports are the connection's)")
        out.append({**spec, "dir": direction})
    return out


def trace_conversation(
    ruleset: Ruleset,
    host: Host | dict[str, Any],
    first: dict[str, Any],
    packets: list[dict[str, Any]],
    family: Family | str = Family.IPV4,
    state: TraceState | None = None,
    nft: NftRuleset | None = None,
) -> Conversation:
    family = Family(family)
    compiled = compile_nft(nft, family)
    if not isinstance(host, Host):
        host = Host.from_dict(host, family)
    state = state or TraceState()
    later = validate_packets(packets)
    first_packet = packet_from_dict(first, family)
    trace = trace_packet(ruleset, host, first_packet, state, nft=compiled)
    out = [ConversationPacket(0, "original", dict(first), trace, entry=_entry(trace, state))]
    dropped = 0 if trace.verdict != "ACCEPT" else None
    for i, spec in enumerate(later, start=1):
        if dropped is not None:
            out.append(ConversationPacket(i, spec["dir"], spec, None, f"packet {dropped + 1} was dropped"))
            continue
        packet = later_packet(first, first_packet, trace, spec, family)
        later_trace = trace_packet(ruleset, host, packet, state, nft=compiled)
        out.append(ConversationPacket(i, spec["dir"], spec, later_trace, entry=_entry(later_trace, state)))
        if later_trace.verdict != "ACCEPT":
            dropped = i
    return Conversation(tuple(out))


def later_packet(
    first: dict[str, Any], first_packet: Packet, first_trace: Trace, spec: dict[str, Any], family: Family
) -> Packet:
    """A later packet of the connection (scenario-v2 §3): an original one is
    the first packet's header as it arrived, where it arrived; a reply is
    the first packet's header as it left, swapped (the entry's reply tuple),
    arriving where the first one left, or from the local process that
    received it."""
    v6 = family is Family.IPV6
    proto = first_packet.proto
    data: dict[str, Any] = {"proto": str(proto)}
    if spec["dir"] == "original":
        data.update(src=str(first_packet.src), dst=str(first_packet.dst),
                    sport=first_packet.sport, dport=first_packet.dport, in_iface=first_packet.in_iface)
        for key in ("uid", "gid", "mac"):
            if first.get(key) is not None:
                data[key] = first[key]
        icmp_type = first_packet.icmp_type
    else:
        out = first_trace.packet_out
        data.update(src=str(out.dst), dst=str(out.src), sport=out.dport, dport=out.sport)
        data["in_iface"] = None if first_trace.path in ("input", "output-local") else out.out_iface
        table = ICMPV6_REPLY_TYPE if proto == 58 else ICMP_REPLY_TYPE
        icmp_type = table.get(first_packet.icmp_type, first_packet.icmp_type) if first_packet.icmp_type is not None else None
    if proto == 6:
        flags = spec.get("tcp_flags")
        data["tcp_flags"] = str(flags if flags is not None else ("SA" if spec["dir"] == "reply" else "A")).upper()
        data["length"] = spec.get("length") or later_tcp_length(data["tcp_flags"], v6)
    elif spec.get("length"):
        data["length"] = spec["length"]
    if proto in (1, 58):
        data["icmp_type"] = spec.get("icmp_type", icmp_type)
        data["icmp_code"] = spec.get("icmp_code", 0)
        if "length" not in data:
            data["length"] = first_packet.length
    data["mark"] = spec.get("mark", 0)
    packet = packet_from_dict(data, family)
    if packet.is_local_origin and proto in (1, 58) and packet.icmp_type in (0, 14, 16, 18, 129, 140):
        # A local host's echo (timestamp…) reply comes from the kernel's own
        # ICMP socket (icmp_reply), which no uid or gid owns.
        packet = packet.with_(extra=(*packet.extra, ("kernel_sent", "kernel-socket")))
    return packet


# What Linux puts on the wire: SYN and SYN-ACK carry 20 bytes of options,
# other segments 12 (timestamps); data segments default to 8 bytes.
def later_tcp_length(flags: str, v6: bool) -> int:
    base = 40 if v6 else 20
    letters = set(flags.upper())
    if "S" in letters:
        return base + 40
    if "P" in letters:
        return base + 32 + 8
    return base + 32


def _entry(trace: Trace, state: TraceState) -> str:
    ct = trace.packet_out.ct
    if ct is None or not ct.entry_id:
        return ""
    entry = state.conntrack.entries.get(ct.entry_id)
    return entry_text(entry) if entry is not None else ""

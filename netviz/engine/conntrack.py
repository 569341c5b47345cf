"""The conntrack table: what conntrack remembers between the packets of a
conversation (shared spec scenario-v2.md §3).

An entry is a `Conntrack` record (packet.py) with its two tuples, the NAT
bindings the first packet made (the reply tuple as nf_nat_setup_info() altered
it), its status bits and mark.  `ConntrackTable.find()` is
nf_conntrack_find_get() (a tuple matches either direction of an entry),
`track()` is the protocol's packet handler plus the SEEN_REPLY bookkeeping of
nf_conntrack_in(), and `entry_text()` prints an entry as `conntrack -L` does.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from .packet import Conntrack, Packet, proto_name

# enum tcp_conntrack (nf_conntrack_tcp.h), in the order of the table columns.
TCP_STATES = (
    "NONE", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT",
    "CLOSE_WAIT", "LAST_ACK", "TIME_WAIT", "CLOSE", "SYN_SENT2",
)
_IV = "INVALID"  # sIV: conntrack calls the packet invalid
_IG = "IGNORE"  # sIG: the packet is let through without changing the state
_NO, _SS, _SR, _ES, _FW, _CW, _LA, _TW, _CL, _S2 = TCP_STATES

# tcp_conntracks[dir][index][state] from net/netfilter/nf_conntrack_proto_tcp.c
# (columns sNO, sSS, sSR, sES, sFW, sCW, sLA, sTW, sCL, sS2).
TCP_TABLE: dict[tuple[str, str], tuple[str, ...]] = {
    ("ORIGINAL", "syn"): (_SS, _SS, _IG, _IG, _IG, _IG, _IG, _SS, _SS, _S2),
    ("ORIGINAL", "synack"): (_IV, _IV, _IG, _IG, _IG, _IG, _IG, _IG, _IG, _SR),
    ("ORIGINAL", "fin"): (_IV, _IV, _FW, _FW, _LA, _LA, _LA, _TW, _CL, _IV),
    ("ORIGINAL", "ack"): (_ES, _IV, _ES, _ES, _CW, _CW, _TW, _TW, _CL, _IV),
    ("ORIGINAL", "rst"): (_IV, _CL, _CL, _CL, _CL, _CL, _CL, _CL, _CL, _CL),
    ("ORIGINAL", "none"): (_IV,) * 10,
    ("REPLY", "syn"): (_IV, _S2, _IV, _IV, _IV, _IV, _IV, _IV, _IV, _S2),
    ("REPLY", "synack"): (_IV, _SR, _IG, _IG, _IG, _IG, _IG, _IG, _IG, _SR),
    ("REPLY", "fin"): (_IV, _IV, _FW, _FW, _LA, _LA, _LA, _TW, _CL, _IV),
    ("REPLY", "ack"): (_IV, _IG, _SR, _ES, _CW, _CW, _TW, _TW, _CL, _IG),
    ("REPLY", "rst"): (_IV, _CL, _CL, _CL, _CL, _CL, _CL, _CL, _CL, _CL),
    ("REPLY", "none"): (_IV,) * 10,
}

# nf_conntrack_proto_icmp.c invmap[] / icmpv6 invmap[]: the reply type that
# belongs to a query type.
ICMP_REPLY_TYPE = {8: 0, 0: 8, 13: 14, 14: 13, 15: 16, 16: 15, 17: 18, 18: 17}
ICMPV6_REPLY_TYPE = {128: 129, 129: 128, 139: 140, 140: 139}


def tcp_index(flags: frozenset[str]) -> str:
    # get_conntrack_index()
    if "RST" in flags:
        return "rst"
    if "SYN" in flags:
        return "synack" if "ACK" in flags else "syn"
    if "FIN" in flags:
        return "fin"
    if "ACK" in flags:
        return "ack"
    return "none"


def reply_icmp_type(proto: int, icmp_type: int | None) -> int | None:
    table = ICMPV6_REPLY_TYPE if proto == 58 else ICMP_REPLY_TYPE
    return table.get(icmp_type) if icmp_type is not None else None


@dataclass
class ConntrackTable:
    """The confirmed entries of one network namespace, by entry id."""

    entries: dict[int, Conntrack] = field(default_factory=dict)
    last_id: int = 0

    def new_id(self) -> int:
        self.last_id += 1
        return self.last_id

    def find(self, packet: Packet, zone: int = 0) -> tuple[Conntrack, str] | None:
        """The entry whose original or reply tuple is this packet's, and the
        direction it is in."""
        for entry in self.entries.values():
            if entry.zone != zone or entry.proto != packet.proto:
                continue
            # The ICMP type is part of the tuple: an echo to oneself has the
            # same addresses both ways and only the type tells them apart.
            icmp = packet.proto in (1, 58)
            if _same(packet, entry.orig_src, entry.orig_dst, entry.orig_sport, entry.orig_dport) and (
                not icmp or packet.icmp_type == entry.icmp_type
            ):
                return entry, "ORIGINAL"
            if _same(packet, entry.reply_src, entry.reply_dst, entry.reply_sport, entry.reply_dport) and (
                not icmp or packet.icmp_type == reply_icmp_type(entry.proto, entry.icmp_type)
            ):
                return entry, "REPLY"
        return None

    def store(self, ct: Conntrack) -> None:
        # The table keeps the entry, not one packet's view of it.
        self.entries[ct.entry_id] = replace(ct, confirmed=True, direction="ORIGINAL")

    def remove(self, entry_id: int) -> None:
        self.entries.pop(entry_id, None)

    def copy(self) -> ConntrackTable:
        return ConntrackTable(dict(self.entries), self.last_id)


def _same(packet: Packet, src: Any, dst: Any, sport: int | None, dport: int | None) -> bool:
    if packet.src != src or packet.dst != dst:
        return False
    if packet.has_ports:
        return packet.sport == sport and packet.dport == dport
    return True


@dataclass(frozen=True)
class Tracked:
    """What conntrack made of a packet that belongs to an existing entry."""

    # The packet's view of the entry (state NEW/ESTABLISHED, its direction),
    # or a Conntrack(state="INVALID") when conntrack refused the packet.
    ct: Conntrack
    # The entry as the table keeps it afterwards; None when it was deleted.
    entry: Conntrack | None
    note: str = ""
    # The old entry is dead and the packet starts a new connection
    # (a SYN reopening a closed one: nf_conntrack_in repeats the lookup).
    reopen: bool = False


def track(entry: Conntrack, packet: Packet, direction: str) -> Tracked:
    """nf_conntrack_in() for a packet that found `entry`."""
    seen_reply = entry.seen_reply
    # resolve_normal_ct(): a reply is ESTABLISHED; an original-direction
    # packet only once a reply has been seen, NEW before that.
    state = "ESTABLISHED" if direction == "REPLY" or seen_reply else "NEW"
    assured = entry.assured
    tcp_state = entry.tcp_state
    note = ""
    kill = False
    if packet.proto == 6 and tcp_state is not None:
        index = tcp_index(packet.tcp_flags)
        old = tcp_state
        new = TCP_TABLE[(direction, index)][TCP_STATES.index(old)]
        if new == _IV:
            invalid = Conntrack(state="INVALID")
            return Tracked(invalid, entry, f"conntrack: a {index} packet in the {direction.lower()} "
                           f"direction is invalid in state {old}, so the packet is INVALID")
        if new == _SS and direction == "ORIGINAL" and old in (_TW, _CL):
            # tcp_packet(): "Attempt to reopen a closed/aborted connection.
            # Delete this connection and look up again."
            return Tracked(entry, None, f"conntrack: a SYN reopens the connection closed in state {old}", reopen=True)
        if new == _IG:
            note = f"conntrack: a {index} packet in state {old} is ignored (state unchanged)"
        else:
            tcp_state = new
            if not seen_reply:
                if index == "rst":
                    # tcp_packet(): "If only reply is a RST, we can consider
                    # ourselves not to have an established connection" — the
                    # entry is deleted at once (nf_ct_kill_acct).
                    kill = True
                    note = "conntrack: a RST before any reply deletes the entry"
            elif not assured and old in (_SR, _ES) and new == _ES:
                assured = True
                note = "conntrack: the handshake is complete, the entry is ASSURED"
    if direction == "REPLY":
        seen_reply = True
        counts = {"reply_packets": entry.reply_packets + 1, "reply_bytes": entry.reply_bytes + packet.length}
    else:
        counts = {"orig_packets": entry.orig_packets + 1, "orig_bytes": entry.orig_bytes + packet.length}
    updated = replace(entry, seen_reply=seen_reply, assured=assured, tcp_state=tcp_state, **counts)
    view = replace(updated, state=state, direction=direction, confirmed=True)
    return Tracked(view, None if kill else updated, note)


def new_tcp_state(packet: Packet) -> str | None:
    """tcp_new(): the state a first TCP packet puts the entry in."""
    if packet.proto != 6:
        return None
    index = tcp_index(packet.tcp_flags)
    return TCP_TABLE[("ORIGINAL", index)][0] if index in ("syn", "ack") else None


def status_words(ct: Conntrack) -> list[str]:
    words = []
    if ct.is_snat:
        words.append("SNAT")
    if ct.is_dnat:
        words.append("DNAT")
    if ct.seen_reply:
        words.append("SEEN_REPLY")
    if ct.assured:
        words.append("ASSURED")
    if ct.confirmed:
        words.append("CONFIRMED")
    return words


def entry_text(ct: Conntrack) -> str:
    """The entry as `conntrack -L` prints it (without the timeout, which
    depends on the clock): `tcp 6 ESTABLISHED src=… dst=… sport=… dport=…
    src=… dst=… sport=… dport=… [ASSURED] mark=0 use=1`."""
    proto = ct.proto or 0
    parts = [proto_name(proto).replace("ipv6-icmp", "icmpv6"), str(proto)]
    if ct.tcp_state is not None:
        parts.append(ct.tcp_state)
    parts += _tuple_text(ct.orig_src, ct.orig_dst, ct.orig_sport, ct.orig_dport, ct.icmp_type, proto)
    if not ct.seen_reply:
        parts.append("[UNREPLIED]")
    parts += _tuple_text(ct.reply_src, ct.reply_dst, ct.reply_sport, ct.reply_dport,
                         reply_icmp_type(proto, ct.icmp_type), proto)
    if ct.assured:
        parts.append("[ASSURED]")
    parts.append(f"mark={ct.mark}")
    if ct.zone:
        parts.append(f"zone={ct.zone}")
    parts.append("use=1")
    return " ".join(parts)


def _tuple_text(src: Any, dst: Any, sport: int | None, dport: int | None,
                icmp_type: int | None, proto: int) -> list[str]:
    out = [f"src={src}", f"dst={dst}"]
    if sport is not None and dport is not None:
        out += [f"sport={sport}", f"dport={dport}"]
    elif proto in (1, 58) and icmp_type is not None:
        out += [f"type={icmp_type}", "code=0"]
    return out

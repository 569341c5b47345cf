"""The kernel's own trace output → hops, packets and netviz Traces.

Three formats are read (pure text parsing, no I/O):

* ``xtables-monitor --trace`` (iptables nf_tables backend)::

      PACKET: 2 55f22595 OUT=lo SRC=127.0.0.1 DST=127.0.0.1 LEN=29 … SPORT=1 DPORT=9
       TRACE: 2 55f22595 filter:OUTPUT:rule:0x6:JUMP:X  -4 -t filter -A OUTPUT -j X
       TRACE: 2 55f22595 filter:OUTPUT:policy:ACCEPT

* ``TRACE:`` lines of the kernel log (legacy backend, ``dmesg`` or
  ``journalctl -k``), written by ip_tables.c trace_packet() through nf_log::

      TRACE: filter:X:rule:1 IN= OUT=lo SRC=… DST=… LEN=29 … PROTO=UDP SPT=1 DPT=9

  ``rule:N`` is the 1-based position of the matching rule, ``return:N`` the
  end of a user chain and ``policy:N`` a built-in chain's policy (N is then
  the number of rules + 1).  The verdict is not logged.

* ``nft monitor trace`` (optionally with ``-a`` for rule handles)::

      trace id 55f22595 ip filter OUTPUT rule counter … jump X (verdict jump X)

Hops use the scenario.md vocabulary, so an imported trace compares with
``trace --json`` and with netviz.kernel.replay entry by entry.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from .context import Result
from .packet import TCP_FLAG_LETTERS, Packet, proto_number
from .ruleset import BUILTIN_CHAINS, Family, Rule, Ruleset
from .trace import Step, StepKind, Trace

HOOKS = ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING")
TCP_FLAG_NAMES = frozenset(TCP_FLAG_LETTERS.values())


class TraceFormat(str, Enum):
    XTABLES_MONITOR = "xtables-monitor"
    KERNEL_LOG = "kernel-log"
    NFT_MONITOR = "nft-monitor"


class KernelTraceError(ValueError):
    def __init__(self, reason: str, line: int = 0, text: str = "") -> None:
        super().__init__(f"line {line}: {reason}" if line else reason)
        self.reason = reason
        self.line = line
        self.text = text


@dataclass(frozen=True)
class KernelEvent:
    """One line of a kernel trace: a packet dump or a rule/policy/return."""

    format: TraceFormat
    lineno: int  # line in the pasted text, 1-based
    kind: str  # "packet", "rule", "policy", "return"
    table: str
    chain: str
    trace_id: str = ""  # nf_tables trace id; "" for legacy TRACE lines
    family: str = "ip"  # ip / ip6
    rule: int | None = None  # position (legacy rule:N / return:N / policy:N)
    handle: int | None = None  # nf_tables rule handle
    verdict: str | None = None  # ACCEPT, DROP, CONTINUE, JUMP:X, GOTO:X, RETURN
    rule_text: str = ""  # xtables-monitor: the rule in save syntax; nft: nft syntax
    # The packet as logged with this line (legacy lines carry it themselves;
    # nf_tables formats carry it on their packet lines).
    fields: tuple[tuple[str, Any], ...] = ()
    raw: str = ""

    def field(self, key: str, default: Any = None) -> Any:
        for k, v in self.fields:
            if k == key:
                return v
        return default


@dataclass
class KernelPacket:
    """The events of one packet, in order; `ids` are its nf_tables trace ids
    (a packet delivered over lo comes back under a new id)."""

    events: list[KernelEvent] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)

    @property
    def first_fields(self) -> dict[str, Any]:
        for ev in self.events:
            if ev.fields:
                return dict(ev.fields)
        return {}

    @property
    def last_fields(self) -> dict[str, Any]:
        for ev in reversed(self.events):
            if ev.fields:
                return dict(ev.fields)
        return {}

    def label(self) -> str:
        f = self.first_fields
        proto = f.get("proto_name") or "?"
        src, dst = f.get("src", "?"), f.get("dst", "?")
        if f.get("sport") is not None:
            src, dst = f"{_hostport(src, f['sport'])}", f"{_hostport(dst, f['dport'])}"
        where = f" in {f['in_iface']}" if f.get("in_iface") else " (local)"
        ident = f" id {f['ip_id']}" if f.get("ip_id") is not None else ""
        return f"{proto} {src} → {dst}{where}{ident}"


def _hostport(addr: str, port: Any) -> str:
    return f"[{addr}]:{port}" if ":" in str(addr) else f"{addr}:{port}"


@dataclass(frozen=True)
class ParsedTrace:
    format: TraceFormat
    events: tuple[KernelEvent, ...]
    ignored: int  # lines that were not trace lines (other log messages…)


# ---------------------------------------------------------------------------
# Parsing

_XT_RE = re.compile(r"^\s*(PACKET|TRACE):\s+(\d+)\s+([0-9a-fA-F]+)\s+(.*)$")
_LEGACY_RE = re.compile(r"TRACE: (\S+) ")
_NFT_RE = re.compile(r"^\s*trace id (\S+) (\S+) (\S+) (\S+) (.*)$")
_NFT_HANDLE_RE = re.compile(r"# handle (\d+)")
_NFT_VERDICT_RE = re.compile(r"\(verdict ([^)]*)\)")

# NF_ACCEPT / NF_DROP and the nf_tables internal verdicts as xtables-monitor
# prints them when it has no name for them (include/uapi/linux/netfilter/
# nf_tables.h: NFT_CONTINUE -1, NFT_BREAK -2, NFT_JUMP -3, NFT_GOTO -4,
# NFT_RETURN -5).
_NUMERIC_VERDICTS = {
    "0x0": "DROP",
    "0x1": "ACCEPT",
    "0xffffffff": "CONTINUE",
    "0xfffffffe": "CONTINUE",
    "0xfffffffd": "JUMP",
    "0xfffffffc": "GOTO",
    "0xfffffffb": "RETURN",
}


def detect_format(text: str) -> TraceFormat | None:
    for line in text.splitlines():
        if _XT_RE.match(line):
            return TraceFormat.XTABLES_MONITOR
        if _NFT_RE.match(line):
            return TraceFormat.NFT_MONITOR
        if _LEGACY_RE.search(line + " ") and _legacy_head(line) is not None:
            return TraceFormat.KERNEL_LOG
    return None


def parse_kernel_trace(text: str, fmt: TraceFormat | str | None = None) -> ParsedTrace:
    if fmt is None:
        fmt = detect_format(text)
        if fmt is None:
            raise KernelTraceError(
                "no trace lines found: expected `xtables-monitor --trace` output, "
                "`TRACE:` lines from the kernel log or `nft monitor trace` output"
            )
    fmt = TraceFormat(fmt)
    parse = {
        TraceFormat.XTABLES_MONITOR: _parse_xt_line,
        TraceFormat.KERNEL_LOG: _parse_legacy_line,
        TraceFormat.NFT_MONITOR: _parse_nft_line,
    }[fmt]
    events: list[KernelEvent] = []
    ignored = 0
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        ev = parse(line, lineno)
        if ev is None:
            ignored += 1
        else:
            events.append(ev)
    if not events:
        raise KernelTraceError(f"no {fmt.value} trace lines found")
    return ParsedTrace(fmt, tuple(events), ignored)


def _split_where(head: str, parts: int) -> list[str] | None:
    # "table:chain:type:N": a chain name may itself hold a colon, so take the
    # table from the left and the fixed fields from the right.
    pieces = head.split(":")
    if len(pieces) < parts:
        return None
    tail = pieces[-(parts - 2):]
    return [pieces[0], ":".join(pieces[1 : len(pieces) - (parts - 2)]), *tail]


def _legacy_head(line: str) -> tuple[str, str, str, int, str] | None:
    m = _LEGACY_RE.search(line + " ")
    if not m:
        return None
    where = _split_where(m.group(1), 4)
    if where is None:
        return None
    table, chain, kind, num = where
    if kind not in ("rule", "return", "policy") or not num.isdigit():
        return None
    rest = (line + " ")[m.end():]
    return table, chain, kind, int(num), rest


def _parse_legacy_line(line: str, lineno: int) -> KernelEvent | None:
    head = _legacy_head(line)
    if head is None:
        return None
    table, chain, kind, num, rest = head
    fields = _log_fields(rest)
    family = "ip6" if ":" in str(fields.get("src", "")) else "ip"
    return KernelEvent(
        format=TraceFormat.KERNEL_LOG, lineno=lineno, kind=kind, table=table, chain=chain,
        family=family, rule=num, fields=tuple(fields.items()), raw=line.strip(),
    )


def _log_fields(text: str) -> dict[str, Any]:
    """nf_log_syslog's KEY=VALUE dump (and xtables-monitor's PACKET line)."""
    out: dict[str, Any] = {}
    flags: set[str] = set()
    seen_len = False
    words = text.split()
    for word in words:
        key, eq, value = word.partition("=")
        if not eq:
            if word in TCP_FLAG_NAMES:
                flags.add(word)
            continue
        if key == "IN":
            out["in_iface"] = value or None
        elif key == "OUT":
            out["out_iface"] = value or None
        elif key == "SRC":
            out["src"] = value
        elif key == "DST":
            out["dst"] = value
        elif key == "LEN" and not seen_len:
            # The first LEN is the IP total length; UDP's own LEN follows.
            seen_len = True
            out["length"] = _int(value)
        elif key in ("TOS", "TC"):
            out["tos"] = _int(value)
        elif key in ("TTL", "HOPLIMIT"):
            out["ttl"] = _int(value)
        elif key == "ID" and "ip_id" not in out:
            out["ip_id"] = _int(value)
        elif key == "PROTO":
            out["proto_name"] = value.lower()
        elif key in ("SPT", "SPORT"):
            out["sport"] = _int(value)
        elif key in ("DPT", "DPORT"):
            out["dport"] = _int(value)
        elif key == "TYPE" and "icmp_type" not in out:
            out["icmp_type"] = _int(value)
        elif key == "CODE" and "icmp_code" not in out:
            out["icmp_code"] = _int(value)
        elif key == "MARK":
            out["mark"] = _int(value)
        elif key in ("UID", "GID"):
            out[key.lower()] = _int(value)
    if flags:
        out["tcp_flags"] = "".join(
            letter for letter, name in TCP_FLAG_LETTERS.items() if name in flags
        )
    if "proto_name" not in out:
        # xtables-monitor prints no protocol: ports with TCP flags are TCP,
        # ports without are UDP (a flagless TCP segment is not a real packet).
        if "sport" in out:
            out["proto_name"] = "tcp" if flags else "udp"
    elif out["proto_name"] in ("icmpv6", "ipv6-icmp"):
        out["proto_name"] = "icmpv6"
    return out


def _int(text: str) -> int | None:
    try:
        return int(text, 0) if text.lower().startswith("0x") else int(text)
    except ValueError:
        return None


def _parse_xt_line(line: str, lineno: int) -> KernelEvent | None:
    m = _XT_RE.match(line)
    if not m:
        return None
    what, fam, trace_id, rest = m.groups()
    family = "ip6" if fam == "10" else "ip"
    if what == "PACKET":
        fields = _log_fields(rest)
        return KernelEvent(
            format=TraceFormat.XTABLES_MONITOR, lineno=lineno, kind="packet", table="",
            chain="", trace_id=trace_id, family=family, fields=tuple(fields.items()),
            raw=line.strip(),
        )
    head, _, rule_text = rest.strip().partition(" ")
    rule_text = rule_text.strip()
    pieces = head.split(":")
    # table:chain:policy:VERDICT, table:chain:return:…, table:chain:rule:0xH:VERDICT[:X]
    for i in range(1, len(pieces)):
        if pieces[i] in ("rule", "policy", "return") and i >= 2:
            kind = pieces[i]
            table, chain = pieces[0], ":".join(pieces[1:i])
            tail = pieces[i + 1 :]
            break
    else:
        return None
    handle: int | None = None
    verdict: str | None = None
    if kind == "rule" and tail:
        handle = _int(tail[0])
        verdict = _xt_verdict(tail[1:])
    elif kind == "policy" and tail:
        verdict = tail[0].upper()
    # The rule as xtables-monitor prints it: "-4 -t filter -A X …"; keep "-A X …",
    # which is what iptables-save prints.
    rule_text = re.sub(r"^-[46]\s+-t\s+\S+\s+", "", rule_text)
    return KernelEvent(
        format=TraceFormat.XTABLES_MONITOR, lineno=lineno, kind=kind, table=table, chain=chain,
        trace_id=trace_id, family=family, handle=handle, verdict=verdict,
        rule_text=rule_text, raw=line.strip(),
    )


def _xt_verdict(tail: list[str]) -> str | None:
    if not tail:
        return None
    word = tail[0]
    word = _NUMERIC_VERDICTS.get(word.lower(), word.upper())
    if word in ("JUMP", "GOTO"):
        return f"{word}:{':'.join(tail[1:])}" if len(tail) > 1 else word
    return word


def _parse_nft_line(line: str, lineno: int) -> KernelEvent | None:
    m = _NFT_RE.match(line)
    if not m:
        return None
    trace_id, family, table, chain, body = m.groups()
    chain = chain[1:-1] if len(chain) >= 2 and chain[0] == chain[-1] == '"' else chain
    if body.startswith("packet:"):
        return KernelEvent(
            format=TraceFormat.NFT_MONITOR, lineno=lineno, kind="packet", table=table,
            chain=chain, trace_id=trace_id, family=family,
            fields=tuple(_nft_packet_fields(body).items()), raw=line.strip(),
        )
    if body.startswith("rule "):
        vm = _NFT_VERDICT_RE.findall(body)
        hm = _NFT_HANDLE_RE.findall(body)
        text = _NFT_VERDICT_RE.sub("", _NFT_HANDLE_RE.sub("", body[len("rule "):])).strip()
        return KernelEvent(
            format=TraceFormat.NFT_MONITOR, lineno=lineno, kind="rule", table=table, chain=chain,
            trace_id=trace_id, family=family, handle=int(hm[-1]) if hm else None,
            verdict=_nft_verdict(vm[-1]) if vm else None, rule_text=text, raw=line.strip(),
        )
    if body.startswith("policy "):
        return KernelEvent(
            format=TraceFormat.NFT_MONITOR, lineno=lineno, kind="policy", table=table,
            chain=chain, trace_id=trace_id, family=family,
            verdict=body.split()[1].upper(), raw=line.strip(),
        )
    return None


def _nft_verdict(text: str) -> str:
    words = text.split()
    if words and words[0] in ("jump", "goto") and len(words) > 1:
        return f"{words[0].upper()}:{words[1].strip(chr(34))}"
    return words[0].upper() if words else ""


def _nft_packet_fields(body: str) -> dict[str, Any]:
    words = body.split()
    out: dict[str, Any] = {}
    for i, word in enumerate(words[:-1]):
        nxt = words[i + 1].strip('"')
        prev = words[i - 1] if i else ""
        if word == "iif" and prev != "meta":
            out["in_iface"] = nxt
        elif word == "oif" and prev != "meta":
            out["out_iface"] = nxt
        elif word in ("saddr", "daddr") and prev in ("ip", "ip6"):
            out["src" if word == "saddr" else "dst"] = nxt
        elif word in ("sport", "dport") and prev in ("tcp", "udp", "sctp", "udplite", "dccp"):
            out[word] = _int(nxt)
            out["proto_name"] = prev
        elif word == "mark" and prev == "meta":
            out["mark"] = _int(nxt)
        elif word == "id" and prev == "ip":
            out["ip_id"] = _int(nxt)
        elif word == "length" and prev in ("ip", "ip6") and "length" not in out:
            out["length"] = _int(nxt)
        elif word in ("ttl", "hoplimit") and prev in ("ip", "ip6"):
            out["ttl"] = _int(nxt)
        elif word == "flags" and prev == "tcp":
            names = {n.upper() for n in nxt.split("|")}
            names |= {w.upper() for w in words[i + 2 : i + 6] if w.strip("|").upper() in TCP_FLAG_NAMES}
            out["tcp_flags"] = "".join(
                letter for letter, name in TCP_FLAG_LETTERS.items() if name in names
            )
        elif word == "type" and prev in ("icmp", "icmpv6"):
            out["proto_name"] = prev
            out["icmp_type_name"] = nxt
        elif word == "nexthdr" and prev == "ip6" or word == "protocol" and prev == "ip":
            out.setdefault("proto_name", nxt)
    return out


# ---------------------------------------------------------------------------
# One packet at a time


def _identity(fields: dict[str, Any]) -> tuple[Any, ...]:
    return (
        fields.get("proto_name"), fields.get("src"), fields.get("dst"),
        fields.get("sport"), fields.get("dport"), fields.get("ip_id"),
    )


def group_packets(events: tuple[KernelEvent, ...] | list[KernelEvent]) -> list[KernelPacket]:
    """Tell the packets of a trace apart.

    nf_tables formats carry a trace id per skb; legacy TRACE lines carry only
    the packet, so lines are grouped by its identity (protocol, addresses,
    ports, IP ID).  NAT rewrites addresses and ports but never the IP ID, so
    a line whose protocol and IP ID equal a packet's last line and that keeps
    its source or its destination continues that packet.  A packet delivered
    over lo comes back in PREROUTING (with a new trace id): it continues the
    packet that just left through lo with the same identity.
    """
    packets: list[KernelPacket] = []
    by_id: dict[str, KernelPacket] = {}
    for ev in events:
        if ev.trace_id:
            pkt = by_id.get(ev.trace_id)
            if pkt is None:
                pkt = _continuation(packets, ev) if ev.kind == "packet" else None
                if pkt is None:
                    pkt = KernelPacket()
                    packets.append(pkt)
                pkt.ids.append(ev.trace_id)
                by_id[ev.trace_id] = pkt
            pkt.events.append(ev)
            continue
        fields = dict(ev.fields)
        target = None
        ident = _identity(fields)
        for pkt in reversed(packets):
            last = pkt.last_fields
            if _identity(last) == ident:
                target = pkt
                break
        if target is None and fields.get("ip_id") not in (None, 0):
            for pkt in reversed(packets):
                last = pkt.last_fields
                if (last.get("proto_name"), last.get("ip_id")) == (
                    fields.get("proto_name"), fields.get("ip_id")
                ) and (last.get("src") == fields.get("src") or last.get("dst") == fields.get("dst")):
                    target = pkt
                    break
        if target is None:
            target = KernelPacket()
            packets.append(target)
        target.events.append(ev)
    return packets


def _continuation(packets: list[KernelPacket], ev: KernelEvent) -> KernelPacket | None:
    fields = dict(ev.fields)
    if fields.get("in_iface") != "lo":
        return None
    for pkt in reversed(packets):
        last = pkt.last_fields
        if last.get("out_iface") == "lo" and _identity(last) == _identity(fields):
            return pkt
    return None


# ---------------------------------------------------------------------------
# Hops, rules and Traces


@dataclass(frozen=True)
class _Resolved:
    event: KernelEvent
    hook: str
    depth: int
    rule: Rule | None
    position: int | None
    verdict: str | None
    guessed: bool = False  # position from nf_tables handle numbering, not certain
    # The packet as logged with this event (nf_tables formats: its packet line).
    fields: tuple[tuple[str, Any], ...] = ()


def _target_verdict(rule: Rule | None, ruleset: Ruleset | None = None) -> str | None:
    """The verdict the kernel reports for a matched rule, from its target."""
    if rule is None:
        return None
    target = rule.target
    if target is None:
        return "CONTINUE"
    name = target.name
    if target.goto:
        return f"GOTO:{name}"
    table = ruleset.table(rule.table) if ruleset is not None else None
    if table is not None and table.chain(name) is not None:
        return f"JUMP:{name}"
    if name in ("ACCEPT", "DROP", "RETURN", "QUEUE"):
        return name
    if name in ("DNAT", "SNAT", "MASQUERADE", "REDIRECT", "NETMAP"):
        return "ACCEPT"
    if name == "REJECT":
        return "DROP"
    if name == "NFQUEUE":
        return "QUEUE"
    if name.isupper() or name in ("ct", "CT"):
        return "CONTINUE"  # LOG, MARK, CONNMARK, CT, TRACE… are non-terminating
    return f"JUMP:{name}"


def _norm_rule_text(text: str) -> str:
    return " ".join(text.replace('"', "").split())


def _chain_rules(ruleset: Ruleset | None, table: str, chain: str) -> tuple[Rule, ...]:
    if ruleset is None:
        return ()
    t = ruleset.table(table)
    c = t.chain(chain) if t is not None else None
    return c.rules if c is not None else ()


def _nft_handle_position(ruleset: Ruleset, table: str, chain: str, handle: int) -> int | None:
    # A freshly restored iptables-nft table numbers its chains 1…C in dump
    # order, then its rules C+1… in dump order (nf_tables allocates handles
    # from one per-table counter).  Only true for a fresh restore, so a
    # position found this way is marked as a guess.
    t = ruleset.table(table)
    if t is None:
        return None
    n = handle - len(t.chains)
    for c in t.chains:
        if n <= len(c.rules):
            if n >= 1 and c.name == chain:
                return n
            return None
        n -= len(c.rules)
    return None


# (family, table, handle) → (chain, 1-based position): what
# netviz.kernel.replay.parse_handles reads from `nft -a list ruleset`.
Handles = dict[tuple[str, str, int], tuple[str, int]]


def resolve(packet: KernelPacket, ruleset: Ruleset | None = None,
            handles: Handles | None = None) -> list[_Resolved]:
    out: list[_Resolved] = []
    hook = ""
    depth = 0
    last_fields: tuple[tuple[str, Any], ...] = ()
    for ev in packet.events:
        if ev.fields:
            last_fields = ev.fields
        if ev.kind == "packet":
            continue
        if ev.table not in BUILTIN_CHAINS:
            continue  # a native nftables table: not part of the iptables picture
        if ev.chain in HOOKS and ev.chain in BUILTIN_CHAINS[ev.table]:
            if ev.chain != hook or (out and out[-1].event.table != ev.table):
                depth = 0
            hook = ev.chain
        rules = _chain_rules(ruleset, ev.table, ev.chain)
        rule: Rule | None = None
        position = ev.rule if ev.kind == "rule" else None
        guessed = False
        if ev.kind == "rule" and position is None and handles and ev.handle is not None:
            chain_pos = handles.get((ev.family, ev.table, ev.handle))
            if chain_pos is not None and chain_pos[0] == ev.chain:
                position = chain_pos[1]
        if ev.kind == "rule" and position is None and rules:
            if ev.format is TraceFormat.XTABLES_MONITOR and ev.rule_text:
                want = _norm_rule_text(ev.rule_text)
                hits = [r for r in rules if _norm_rule_text(r.text) == want]
                if not hits:
                    hits = [r for r in rules if _norm_rule_text(r.canonical()) == want]
                if len(hits) == 1:
                    position = hits[0].index
            if position is None and ev.handle is not None and ruleset is not None:
                position = _nft_handle_position(ruleset, ev.table, ev.chain, ev.handle)
                guessed = position is not None
        if position is not None and 1 <= position <= len(rules):
            rule = rules[position - 1]
        verdict = ev.verdict
        if ev.kind == "rule":
            if verdict in (None, "JUMP", "GOTO"):
                verdict = _target_verdict(rule, ruleset) or verdict
        elif ev.kind == "policy" and verdict is None and ruleset is not None:
            t = ruleset.table(ev.table)
            c = t.chain(ev.chain) if t is not None else None
            verdict = c.policy if c is not None else None
        out.append(_Resolved(ev, hook, depth, rule, position, verdict, guessed, last_fields))
        if ev.kind == "rule" and verdict and verdict.startswith("JUMP:"):
            depth += 1
        elif ev.kind == "rule" and verdict and verdict.startswith("GOTO:"):
            depth = max(depth, 1)
        elif ev.kind == "return" or (ev.kind == "rule" and verdict == "RETURN"):
            depth = max(depth - 1, 0)
    return out


def packet_hops(packet: KernelPacket, ruleset: Ruleset | None = None,
                handles: Handles | None = None) -> list[dict[str, Any]]:
    """The packet's hops in scenario.md's vocabulary (implicit returns are
    not hops; a verdict the log does not hold and the ruleset cannot tell is
    None)."""
    hops: list[dict[str, Any]] = []
    for r in resolve(packet, ruleset, handles):
        ev = r.event
        if ev.kind == "policy":
            hops.append({"table": ev.table, "chain": ev.chain, "policy": r.verdict})
        elif ev.kind == "rule":
            hops.append({"table": ev.table, "chain": ev.chain, "rule": r.position,
                         "verdict": r.verdict})
    return hops


def packet_from_fields(fields: dict[str, Any], family: Family | None = None) -> Packet:
    src = ipaddress.ip_address(str(fields.get("src") or ("::" if family is Family.IPV6 else "0.0.0.0")))
    dst = ipaddress.ip_address(str(fields.get("dst") or ("::" if src.version == 6 else "0.0.0.0")))
    fam = family or (Family.IPV6 if src.version == 6 else Family.IPV4)
    name = str(fields.get("proto_name") or "0")
    try:
        proto = proto_number(name)
    except ValueError:
        proto = 0
    if proto == 1 and fam is Family.IPV6:
        proto = 58
    letters = str(fields.get("tcp_flags") or "")
    flags = frozenset(TCP_FLAG_LETTERS[ch] for ch in letters if ch in TCP_FLAG_LETTERS)
    in_iface = fields.get("in_iface") or None
    return Packet(
        family=fam,
        proto=proto,
        src=src,
        dst=dst,
        sport=fields.get("sport"),
        dport=fields.get("dport"),
        tcp_flags=flags if proto == 6 else frozenset(),
        icmp_type=fields.get("icmp_type"),
        icmp_code=fields.get("icmp_code"),
        in_iface=in_iface,
        out_iface=fields.get("out_iface") or None,
        mark=int(fields.get("mark") or 0),
        length=int(fields.get("length") or 0),
        ttl=int(fields.get("ttl") or 64),
        tos=int(fields.get("tos") or 0),
        ctstate_in="NEW",
    )


def _path(hooks: list[str], local_origin: bool) -> str:
    if "FORWARD" in hooks:
        return "forward"
    if local_origin:
        return "output-local" if "INPUT" in hooks else "output"
    return "input"


def to_trace(
    packet: KernelPacket, ruleset: Ruleset | None = None, family: Family | None = None,
    handles: Handles | None = None,
) -> Trace:
    """A netviz Trace of what the kernel reported for one packet: RULE steps
    (matched) and POLICY/RETURN steps, each with the packet as logged.  With
    the ruleset, the rules the kernel passed over before a matching rule (or a
    policy / return) become NOMATCH steps, so chain views read rule by rule."""
    resolved = resolve(packet, ruleset, handles)
    first = packet.first_fields
    packet_in = packet_from_fields(first, family)
    current = packet_in
    steps: list[Step] = []
    # (table, hook, chain, depth) → next unexamined position in that chain
    resume: dict[tuple[str, str, str, int], int] = {}
    uncertain: list[tuple[str, str, int]] = []
    hooks: list[str] = []
    for r in resolved:
        ev = r.event
        fields = dict(r.fields)
        if fields:
            current = packet_from_fields(fields, family or packet_in.family)
        if r.hook and (not hooks or hooks[-1] != r.hook):
            hooks.append(r.hook)
        key = (ev.table, r.hook, ev.chain, r.depth)
        rules = _chain_rules(ruleset, ev.table, ev.chain)
        start = resume.get(key, 1)
        if ev.kind == "rule":
            stop = r.position if r.position is not None else start
        elif ev.kind in ("policy", "return") and rules:
            stop = len(rules) + 1
        else:
            stop = start
        # The first legacy line comes after the TRACE rule that switched
        # tracing on (ip_tables logs only once nf_trace is set), so nothing
        # before it can be inferred.
        infer = not (ev.format is TraceFormat.KERNEL_LOG and r is resolved[0])
        if infer and (r.position is not None or ev.kind in ("policy", "return")):
            for rule in rules[start - 1 : max(stop - 1, start - 1)]:
                steps.append(Step(
                    kind=StepKind.RULE, hook=r.hook, table=ev.table, chain=ev.chain,
                    rule=rule.index, line=rule.line, text=rule.text, result=Result.NOMATCH,
                    reason="the kernel went past it (it did not match)",
                    packet=current, depth=r.depth,
                ))
        if ev.kind == "rule":
            resume[key] = (r.position or start) + 1
            text = r.rule.text if r.rule is not None else ev.rule_text
            note = f"kernel: {ev.raw}"
            if r.guessed:
                note += " (rule position guessed from the nf_tables handle)"
            unsure = r.position is None or r.verdict is None or r.guessed
            if unsure:
                uncertain.append((ev.table, ev.chain, r.position or 0))
            steps.append(Step(
                kind=StepKind.RULE, hook=r.hook, table=ev.table, chain=ev.chain,
                rule=r.position, line=r.rule.line if r.rule is not None else None, text=text,
                result=Result.MATCH, reason="matched (reported by the kernel)",
                verdict=r.verdict, packet=current, depth=r.depth, uncertain=unsure, note=note,
            ))
        elif ev.kind == "policy":
            resume.pop(key, None)
            steps.append(Step(
                kind=StepKind.POLICY, hook=r.hook, table=ev.table, chain=ev.chain,
                text=f"policy {r.verdict or '?'}", verdict=r.verdict, packet=current,
                depth=r.depth, uncertain=r.verdict is None, note=f"kernel: {ev.raw}",
            ))
        else:
            resume.pop(key, None)
            steps.append(Step(
                kind=StepKind.RETURN, hook=r.hook, table=ev.table, chain=ev.chain,
                text="end of chain: return to the calling chain", verdict="RETURN",
                packet=current, depth=r.depth, note=f"kernel: {ev.raw}",
            ))
    verdict, summary = _fate(steps)
    return Trace(
        packet_in=packet_in,
        steps=tuple(steps),
        verdict=verdict,
        packet_out=current,
        path=_path(hooks, packet_in.in_iface is None),
        summary=summary,
        uncertain=tuple(uncertain),
        hooks=tuple(hooks),
    )


def _fate(steps: list[Step]) -> tuple[str, str]:
    hops = [s for s in steps if s.is_hop]
    if not hops:
        return "ACCEPT", "the kernel reported no rule or policy for this packet"
    last = hops[-1]
    where = f"{last.table} {last.chain}"
    if last.verdict == "DROP":
        what = "policy" if last.kind is StepKind.POLICY else f"rule {last.rule}"
        return "DROP", f"dropped: by {where} {what} (kernel trace)"
    if last.verdict is None:
        return "ACCEPT", f"the kernel trace ends at {where}; its verdict is not in the log"
    return "ACCEPT", f"accepted: the kernel trace ends at {where} with {last.verdict}"


def import_trace(
    text: str, ruleset: Ruleset | None = None, fmt: TraceFormat | str | None = None
) -> tuple[ParsedTrace, list[KernelPacket]]:
    parsed = parse_kernel_trace(text, fmt)
    packets = [p for p in group_packets(parsed.events) if any(e.kind != "packet" for e in p.events)]
    return parsed, packets

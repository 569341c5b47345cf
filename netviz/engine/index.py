"""A per-chain index that finds, for one packet, the rules that can match.

A kube-proxy node has one KUBE-SERVICES rule per service port; walking
10,000 of them one by one for every trace is what makes a big dump slow.
For each rule the index reads one cheap clause that must hold for the rule
to match — the destination prefix (`-d`), the exact input or output device
(`-i`/`-o`), the protocol with its destination ports (`-p tcp -m tcp
--dport`, `-m multiport --dports`) or the protocol alone — and files the rule
under it.  For a packet, the rules whose clause cannot hold are *provably*
not matched: evaluate_rule() would return NOMATCH on that clause.

Only clauses from the leading matches of a rule that have no side effects
count (`statistic`, `nth`, `recent` change the trace state when evaluated,
so a clause after one of them is never used): skipping a rule must leave the
trace state exactly as evaluating it would.  Negated clauses, interface
wildcards (`cali+`) and anything the index cannot read make the rule a
candidate for every packet, i.e. it is evaluated as before.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from dataclasses import dataclass, field

from .matches import parse_addr_mask, parse_port_range
from .packet import Packet, proto_number
from .ruleset import Chain, Rule
from .trace import Step, StepKind

# Chains shorter than this are walked rule by rule: the index would not pay.
INDEX_MIN_RULES = 16
# A run of ruled-out rules shorter than this is evaluated rule by rule, so
# small gaps keep their full per-rule explanation in the trace.
MIN_SKIP_RUN = 4
SKIP_NOTE = "index-skip"

# Modules whose evaluation reads the packet and nothing else.
_PURE_MODULES = frozenset({"", "comment", "tcp", "udp", "multiport", "mark", "conntrack", "state", "addrtype"})
_PORT_PROTOS = frozenset({6, 17, 33, 132, 136})
# Hooks with an input / output device (ip_rcv passes out=NULL, ip_output in=NULL).
_IN_HOOKS = frozenset({"PREROUTING", "INPUT", "FORWARD"})
_OUT_HOOKS = frozenset({"FORWARD", "OUTPUT", "POSTROUTING"})

_PacketKey = tuple[int, int, int, int | None, str, str]


@dataclass
class ChainIndex:
    size: int
    # (version, mask) → {address & mask → rule positions (0-based)}
    dst: dict[tuple[int, int], dict[int, list[int]]] = field(default_factory=dict)
    in_iface: dict[str, list[int]] = field(default_factory=dict)
    out_iface: dict[str, list[int]] = field(default_factory=dict)
    # (proto, dport) → positions; ranges are kept apart and scanned.
    dport: dict[tuple[int, int], list[int]] = field(default_factory=dict)
    dport_ranges: list[tuple[int, int, int, int]] = field(default_factory=list)  # proto, lo, hi, pos
    proto: dict[int, list[int]] = field(default_factory=dict)
    always: list[int] = field(default_factory=list)
    cache: dict[_PacketKey, list[int]] = field(default_factory=dict)

    def candidates(self, hook: str, packet: Packet) -> list[int]:
        in_name = (packet.in_iface or "") if hook in _IN_HOOKS else ""
        out_name = (packet.out_iface or "") if hook in _OUT_HOOKS else ""
        dport = packet.dport if packet.proto in _PORT_PROTOS else None
        key: _PacketKey = (packet.dst.version, int(packet.dst), packet.proto, dport, in_name, out_name)
        found = self.cache.get(key)
        if found is not None:
            return found
        picked: set[int] = set(self.always)
        version, dst = key[0], key[1]
        for (v, mask), nets in self.dst.items():
            if v == version:
                picked.update(nets.get(dst & mask, ()))
        picked.update(self.in_iface.get(in_name, ()))
        picked.update(self.out_iface.get(out_name, ()))
        picked.update(self.proto.get(packet.proto, ()))
        picked.update(self.proto.get(0, ()))
        if dport is not None:
            picked.update(self.dport.get((packet.proto, dport), ()))
            for proto, lo, hi, pos in self.dport_ranges:
                if proto == packet.proto and lo <= dport <= hi:
                    picked.add(pos)
        found = sorted(picked)
        if len(self.cache) > 4096:
            self.cache.clear()
        self.cache[key] = found
        return found

    def next_candidate(self, hook: str, packet: Packet, position: int) -> int:
        found = self.candidates(hook, packet)
        at = bisect_left(found, position)
        return found[at] if at < len(found) else self.size


def _leading_pure(rule: Rule) -> list[tuple[str, str, tuple[str, ...], bool]]:
    out: list[tuple[str, str, tuple[str, ...], bool]] = []
    for match in rule.matches:
        if match.module not in _PURE_MODULES:
            break
        out.extend((match.module, o.name, o.values, o.negated) for o in match.options)
    return out


def _file_rule(index: ChainIndex, pos: int, rule: Rule) -> None:
    clauses = _leading_pure(rule)
    proto: int | None = None
    dst: tuple[int, int, int] | None = None
    in_iface = out_iface = None
    ports: list[tuple[int, int]] | None = None
    port_module = ""
    for module, name, values, negated in clauses:
        if negated or len(values) != 1:
            continue
        value = values[0]
        try:
            if module == "" and name in ("-d", "--destination"):
                dst = parse_addr_mask(value)
            elif module == "" and name in ("-p", "--protocol"):
                proto = proto_number(value)
            elif module == "" and name in ("-i", "--in-interface") and not value.endswith("+"):
                in_iface = value
            elif module == "" and name in ("-o", "--out-interface") and not value.endswith("+"):
                out_iface = value
            elif module in ("tcp", "udp") and name in ("--dport", "--destination-port"):
                ports = [parse_port_range(value)]
                port_module = module
            elif module == "multiport" and name in ("--dports", "--destination-ports"):
                ports = [parse_port_range(p) for p in value.split(",")]
                port_module = module
        except (ValueError, KeyError, IndexError):
            continue
    if dst is not None:
        version, net, mask = dst
        index.dst.setdefault((version, mask), {}).setdefault(net, []).append(pos)
        return
    if in_iface:
        index.in_iface.setdefault(in_iface, []).append(pos)
        return
    if out_iface:
        index.out_iface.setdefault(out_iface, []).append(pos)
        return
    # --dport fails for a packet of the rule's protocol whose port is outside
    # the list; packets of other protocols fail on -p before it.
    port_ok = (
        proto is not None
        and ports is not None
        and proto in _PORT_PROTOS
        and (port_module == "multiport" or proto == proto_number(port_module))
    )
    if port_ok and proto is not None and ports is not None:
        if len(ports) > 64 or any(hi - lo > 64 for lo, hi in ports):
            for lo, hi in ports:
                index.dport_ranges.append((proto, lo, hi, pos))
        else:
            for lo, hi in ports:
                for port in range(lo, hi + 1):
                    index.dport.setdefault((proto, port), []).append(pos)
        return
    if proto is not None:
        index.proto.setdefault(proto, []).append(pos)
        return
    index.always.append(pos)


def build_index(chain: Chain) -> ChainIndex:
    index = ChainIndex(size=len(chain.rules))
    for pos, rule in enumerate(chain.rules):
        _file_rule(index, pos, rule)
    return index


_INDEXES: dict[int, tuple[Chain, ChainIndex]] = {}
_LOCK = threading.Lock()
_INDEX_LIMIT = 100_000


def chain_index(chain: Chain) -> ChainIndex:
    # Keyed by identity (hashing a frozen Chain walks all its rules); the
    # entry keeps the Chain alive so its id cannot be reused.
    entry = _INDEXES.get(id(chain))
    if entry is not None and entry[0] is chain:
        return entry[1]
    with _LOCK:
        entry = _INDEXES.get(id(chain))
        if entry is not None and entry[0] is chain:
            return entry[1]
        index = build_index(chain)
        if len(_INDEXES) > _INDEX_LIMIT:
            _INDEXES.clear()
        _INDEXES[id(chain)] = (chain, index)
        return index


def next_candidate(chain: Chain, position: int, hook: str, packet: Packet) -> int:
    """The first position ≥ `position` (0-based) whose rule can match the
    packet; len(chain.rules) if none can."""
    if len(chain.rules) < INDEX_MIN_RULES:
        return position
    return chain_index(chain).next_candidate(hook, packet, position)


def skip_step(
    hook: str, table: str, chain: Chain, start: int, stop: int, packet: Packet, depth: int
) -> Step:
    """One step for the rules at positions start…stop-1, all ruled out."""
    first, last = chain.rules[start].index, chain.rules[stop - 1].index
    return Step(
        kind=StepKind.SKIP,
        hook=hook,
        table=table,
        chain=chain.name,
        rule=first,
        line=chain.rules[start].line,
        text=f"rules {first}–{last} not matched: their -d, -i/-o, -p or --dport rule out this packet",
        packet=packet,
        depth=depth,
        note=SKIP_NOTE,
    )

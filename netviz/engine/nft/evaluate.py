"""Walking a packet through native nftables chains (nft_do_chain).

`NftEval` is a listing compiled for one address family: its base chains as
hook entries (netviz/engine/hooks.py places them), its sets as hash and
interval indexes.  `run_chain` walks one base chain the way nft_do_chain()
does: rules in order, a rule's expressions until one breaks, verdicts
`jump`/`goto`/`return` on a 16-deep stack, the base chain's policy at the
end.  Every rule leaves a Step naming the expression that decided.
"""

from __future__ import annotations

import bisect
import ipaddress
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from ..context import EvalContext, Result, TargetOutcome
from ..matches import _ct_dnat, _ct_snat, ct_view
from ..packet import Packet, proto_name
from ..ruleset import Family, Option, Target
from ..targets import TARGETS
from ..trace import Step, StepKind
from .model import (
    Action,
    Binop,
    Chain,
    Concat,
    Ct,
    DynSet,
    Element,
    Expr,
    Fib,
    Flags,
    Limit,
    MapLookup,
    Match,
    Meta,
    Nat,
    NftParseError,
    NftRuleset,
    Numgen,
    Payload,
    Prefix,
    Quota,
    Range,
    Reject,
    Rule,
    SetLit,
    SetRef,
    SetStmt,
    Table,
    Unknown,
    Value,
    Verdict,
    VMap,
)
from .names import HOOK_NAMES
from .printer import expr_text, statement_text
from .values import (
    BITMASK_TYPES,
    CT_DIR,
    CT_STATE,
    CT_STATUS,
    CT_TYPES,
    META_TYPES,
    TCP_FLAGS,
    ifname_matches,
    parse_const,
    payload_type,
)

if TYPE_CHECKING:
    from ..hooks import HookEntry

MAX_JUMP_DEPTH = 16  # NFT_JUMP_STACK_SIZE

FAMILY_TABLES = {Family.IPV4: ("ip", "inet"), Family.IPV6: ("ip6", "inet")}


class _Break(Exception):
    """The expression cannot be read for this packet: the rule does not match
    (NFT_BREAK), whatever the comparison."""


class _Unknown(Exception):
    """netviz cannot know the value."""


# -- compiled sets -------------------------------------------------------------------


def _key(value: Any) -> Any:
    if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return (value.version, int(value))
    return value


class _SetIndex:
    """Elements typed by the lookup's key: exact keys in a dict, intervals
    (prefixes, ranges, `eth*`) sorted for bisection when the key has one
    dimension, else in a list checked one by one."""

    def __init__(self, elements: tuple[Element, ...], dtypes: tuple[str, ...]) -> None:
        self.exact: dict[Any, Element] = {}
        self.starts: list[Any] = []
        self.spans: list[tuple[Any, Any, Element]] = []
        self.multi: list[tuple[tuple[Any, ...], Element]] = []
        one = len(dtypes) == 1
        for element in elements:
            parts = element.key.items if isinstance(element.key, Concat) else (element.key,)
            if len(parts) != len(dtypes):
                raise ValueError(f"set element {expr_text(element.key)} does not fit the key")
            dims = tuple(_element_dim(p, t) for p, t in zip(parts, dtypes, strict=True))
            if all(d[0] == "eq" for d in dims):
                key = dims[0][1] if one else tuple(d[1] for d in dims)
                self.exact.setdefault(key, element)
            elif one and dims[0][0] == "span":
                self.spans.append((dims[0][1], dims[0][2], element))
            else:
                self.multi.append((dims, element))
        self.spans.sort(key=lambda s: s[0])
        self.starts = [s[0] for s in self.spans]

    def lookup(self, value: Any) -> Element | None:
        one_key = not isinstance(value, tuple)
        key = _key(value) if one_key else tuple(_key(v) for v in value)
        hit = self.exact.get(key)
        if hit is not None:
            return hit
        if one_key and self.spans:
            i = bisect.bisect_right(self.starts, key) - 1
            # Interval sets hold no overlapping elements (nft merges or
            # refuses them): the last start at or below the key decides.
            if i >= 0 and self.spans[i][0] <= key <= self.spans[i][1]:
                return self.spans[i][2]
        values = (value,) if one_key else value
        for dims, element in self.multi:
            if all(_dim_has(d, v) for d, v in zip(dims, values, strict=True)):
                return element
        return None


def _element_dim(expr: Expr, dtype: str) -> tuple[Any, ...]:
    if isinstance(expr, Prefix):
        net = ipaddress.ip_network(f"{expr.addr}/{expr.length}", strict=False)
        v = net.version
        return ("span", (v, int(net.network_address)), (v, int(net.broadcast_address)))
    if isinstance(expr, Range):
        lo = _key(parse_const(expr_text(expr.low), dtype))
        hi = _key(parse_const(expr_text(expr.high), dtype))
        return ("span", lo, hi)
    if isinstance(expr, Value):
        value = parse_const(expr.text, dtype)
        if dtype in ("ifname", "iface") and str(value).endswith("*"):
            return ("wild", value)
        return ("eq", _key(value))
    if isinstance(expr, Flags):
        return ("eq", parse_const("|".join(expr.items), dtype))
    raise ValueError(f"a set element {expr_text(expr)} netviz cannot read")


def _dim_has(dim: tuple[Any, ...], value: Any) -> bool:
    if dim[0] == "eq":
        return bool(dim[1] == _key(value))
    if dim[0] == "span":
        return bool(dim[1] <= _key(value) <= dim[2])
    return ifname_matches(dim[1], str(value))


# -- the compiled listing ----------------------------------------------------------------


def uses_conntrack(rule: Rule) -> bool:
    """nft_ct_get_init(), the nat expressions and `ct … set` call
    nf_ct_netns_get(): such a rule switches conntrack on."""
    for stmt in rule.statements:
        if isinstance(stmt, Nat):
            return True
        if isinstance(stmt, Action) and stmt.name.startswith("ct "):
            return True
        exprs: list[Any] = []
        if isinstance(stmt, Match):
            exprs = [stmt.left]
        elif isinstance(stmt, VMap):
            exprs = [stmt.key]
        elif isinstance(stmt, SetStmt):
            exprs = [stmt.target, stmt.value]
        elif isinstance(stmt, DynSet):
            exprs = [stmt.key]
        if any(_has_ct(e) for e in exprs):
            return True
    return False


def _has_ct(expr: Any) -> bool:
    if isinstance(expr, Ct):
        return True
    if isinstance(expr, Concat):
        return any(_has_ct(i) for i in expr.items)
    if isinstance(expr, Binop):
        return _has_ct(expr.left)
    if isinstance(expr, MapLookup):
        return _has_ct(expr.key)
    return False


@dataclass
class NftEval:
    ruleset: NftRuleset
    family: Family
    tables: tuple[Table, ...] = ()
    entries: dict[str, list[HookEntry]] = field(default_factory=dict)
    conntrack: bool = False
    conntrack_seq: float = -1.0
    _sets: dict[tuple[int, tuple[str, ...]], _SetIndex] = field(default_factory=dict)
    _chains: dict[tuple[str, str, str], Chain] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from ..hooks import HookEntry

        want = FAMILY_TABLES[self.family]
        self.tables = tuple(t for t in self.ruleset.tables if t.traced and t.family in want)
        seq = 100.0
        first_ct: float | None = None
        for table in self.ruleset.tables:
            # Every table registers its base chains (listing order), then
            # its rules (nft_cmd_expand): a ct rule takes conntrack up after
            # the table's chains.
            for chain in table.chains:
                if chain.base is None:
                    continue
                seq += 1
                hook = HOOK_NAMES.get(chain.base.hook)
                if table in self.tables and hook is not None:
                    self.entries.setdefault(hook, []).append(
                        HookEntry("chain", chain.base.priority, seq, table=table.name, family=table.family,
                                  chain=chain.name, type=chain.base.type)
                    )
            if table in self.tables and first_ct is None and any(uses_conntrack(r) for c in table.chains for r in c.rules):
                first_ct = seq + 0.5
            for chain in table.chains:
                self._chains[(table.family, table.name, chain.name)] = chain
        if first_ct is not None:
            self.conntrack = True
            self.conntrack_seq = first_ct

    def chain(self, family: str, table: str, name: str) -> Chain | None:
        return self._chains.get((family, table, name))

    def table(self, family: str, name: str) -> Table:
        table = self.ruleset.table(family, name)
        assert table is not None
        return table

    def set_index(self, family: str, table: str, ref: SetLit | SetRef, dtypes: tuple[str, ...]) -> tuple[_SetIndex, str]:
        if isinstance(ref, SetLit):
            elements, name = ref.elements, ""
        else:
            nset = self.table(family, table).set(ref.name)
            if nset is None:
                raise NftParseError(f"table {family} {table}: set @{ref.name} is not defined")
            elements, name = nset.elements, ref.name
        cache_key = (id(elements), dtypes)
        index = self._sets.get(cache_key)
        if index is None:
            index = _SetIndex(elements, dtypes)
            self._sets[cache_key] = index
        return index, name


def compile_nft(ruleset: NftRuleset | None, family: Family) -> NftEval | None:
    if ruleset is None:
        return None
    return NftEval(ruleset, family)


# -- reading the packet ----------------------------------------------------------------


@dataclass
class _Ctx:
    nft: NftEval
    walker: Any  # pipeline._Walker: host, state, ruleset
    hook: str
    family: str
    table: str
    chain: str
    rule: Rule
    packet: Packet
    assumed: bool = False
    notes: list[str] = field(default_factory=list)

    def eval_ctx(self) -> EvalContext:
        return EvalContext(
            ruleset=self.walker.ruleset, host=self.walker.host, hook=self.hook,
            table=f"{self.family} {self.table}", chain=self.chain, rule_index=self.rule.index,
            packet=self.packet, state=self.walker.state,
        )


def _dtypes(expr: Expr) -> tuple[str, ...]:
    if isinstance(expr, Concat):
        return tuple(_dtype(i) for i in expr.items)
    return (_dtype(expr),)


def _dtype(expr: Expr) -> str:
    if isinstance(expr, Payload):
        return payload_type(expr.protocol, expr.field)
    if isinstance(expr, Meta):
        return META_TYPES.get(expr.key, "int")
    if isinstance(expr, Ct):
        return CT_TYPES.get(expr.key, "int")
    if isinstance(expr, Fib):
        return "fib_type" if expr.result == "type" else "fib_oif"
    if isinstance(expr, Binop):
        return _dtype(expr.left)
    return "int"


def read(expr: Expr, c: _Ctx) -> Any:
    p = c.packet
    v6 = p.family is Family.IPV6
    if isinstance(expr, Payload):
        return _payload(expr, p, v6)
    if isinstance(expr, Meta):
        return _meta(expr, c)
    if isinstance(expr, Ct):
        return _ct(expr, p)
    if isinstance(expr, Fib):
        return _fib(expr, c)
    if isinstance(expr, Binop):
        left = read(expr.left, c)
        right = _const(expr.right, _dtype(expr.left))
        if not isinstance(left, int) or not isinstance(right, int):
            raise _Unknown(f"{expr_text(expr)}: not a number")
        return {"&": left & right, "|": left | right, "^": left ^ right,
                "<<": left << right, ">>": left >> right}[expr.op] & 0xFFFFFFFF
    if isinstance(expr, Concat):
        return tuple(read(i, c) for i in expr.items)
    if isinstance(expr, Numgen):
        return _numgen(expr, c)
    if isinstance(expr, MapLookup):
        element = _lookup(expr.map, expr.key, c)
        if element is None or element.data is None or isinstance(element.data, Verdict):
            raise _Break(f"{expr_text(expr.key)} has no element in the map")
        return element.data
    if isinstance(expr, (Value, Prefix, Range, Flags)):
        return expr
    raise _Unknown(f"netviz does not evaluate {expr_text(expr)}")


_PORT_PROTOS = {"tcp": 6, "udp": 17, "sctp": 132, "udplite": 136, "dccp": 33}


def _payload(expr: Payload, p: Packet, v6: bool) -> Any:
    proto, fld = expr.protocol, expr.field
    if proto == "ip" or proto == "ip6":
        if (proto == "ip6") != v6:
            raise _Break(f"not an IPv{6 if proto == 'ip6' else 4} packet")
        if fld == "saddr":
            return p.src
        if fld == "daddr":
            return p.dst
        if fld in ("protocol", "nexthdr"):
            return p.proto
        if fld in ("ttl", "hoplimit"):
            return p.ttl
        if fld == "length":
            return p.length - (40 if v6 else 0)
        if fld == "payload_len" or fld == "payload-length":
            return p.length - 40
        if fld == "version":
            return 6 if v6 else 4
        if fld == "dscp":
            return p.tos >> 2
        if fld == "ecn":
            return p.tos & 3
        raise _Unknown(f"netviz does not evaluate {proto} {fld}")
    if proto in _PORT_PROTOS or proto == "th":
        if proto == "th":
            if not p.has_ports:
                raise _Break("the packet has no transport ports")
        elif p.proto != _PORT_PROTOS[proto]:
            raise _Break(f"not a {proto} packet")
        if fld == "sport":
            return p.sport
        if fld == "dport":
            return p.dport
        if fld == "flags" and proto == "tcp":
            return sum(TCP_FLAGS[f.lower()] for f in p.tcp_flags if f.lower() in TCP_FLAGS) | (
                TCP_FLAGS["ecn"] if "ECE" in p.tcp_flags else 0
            )
        raise _Unknown(f"netviz does not evaluate {proto} {fld}")
    if proto in ("icmp", "icmpv6"):
        if p.proto != (58 if proto == "icmpv6" else 1) or (proto == "icmp") == v6:
            raise _Break(f"not an {proto} packet")
        if fld == "type":
            return p.icmp_type
        if fld == "code":
            return p.icmp_code
        raise _Unknown(f"netviz does not evaluate {proto} {fld}")
    if proto == "ether" and fld == "saddr":
        mac = p.get_extra("mac")
        if mac is None:
            raise _Unknown("the packet's source MAC address is not given")
        return str(mac).lower()
    raise _Unknown(f"netviz does not evaluate {proto} {fld}")


def _meta(expr: Meta, c: _Ctx) -> Any:
    p = c.packet
    key = expr.key
    if key in ("iifname", "oifname"):
        return _in_dev(c) if key == "iifname" else _out_dev(c)
    if key in ("iif", "oif", "iiftype", "oiftype"):
        name = _in_dev(c) if key.startswith("i") else _out_dev(c)
        if not name:
            # nft_meta_get_eval(): no device at this hook → NFT_BREAK.
            raise _Break(f"there is no {'input' if key.startswith('i') else 'output'} device at {c.hook}")
        if key.endswith("type"):
            return 772 if name == "lo" else 1
        return name
    if key == "mark":
        return p.mark
    if key == "l4proto":
        return p.proto
    if key == "nfproto":
        return 10 if p.family is Family.IPV6 else 2
    if key == "protocol":
        return 0x86DD if p.family is Family.IPV6 else 0x0800
    if key == "length":
        return p.length
    if key == "pkttype":
        kind = str(p.get_extra("pkt_type") or "host").lower()
        return {"host": 0, "unicast": 0, "broadcast": 1, "multicast": 2}.get(kind, 3)
    if key in ("skuid", "skgid"):
        if not p.is_local_origin or c.hook not in ("OUTPUT", "POSTROUTING"):
            raise _Break("no local socket owns this packet")
        value = p.get_extra("uid" if key == "skuid" else "gid")
        if value is None:
            raise _Unknown(f"the sending socket's {key[2:]} is not given")
        return int(value)
    raise _Unknown(f"netviz does not evaluate meta {key}")


def _in_dev(c: _Ctx) -> str:
    # ip_output() passes skb->dev as the input device to POSTROUTING: a
    # forwarded packet still names the device it came in on there (iptables
    # refuses `-i` in POSTROUTING, nft reads it).
    if c.hook in _IN_DEV_HOOKS:
        return c.packet.in_iface or ""
    return ""


_IN_DEV_HOOKS = frozenset({"PREROUTING", "INPUT", "FORWARD", "POSTROUTING"})
_OUT_DEV_HOOKS = frozenset({"FORWARD", "OUTPUT", "POSTROUTING"})


def _out_dev(c: _Ctx) -> str:
    return (c.packet.out_iface or "") if c.hook in _OUT_DEV_HOOKS else ""


def _ct(expr: Ct, p: Packet) -> Any:
    ct, state = ct_view(p)
    key = expr.key
    if key == "state":
        return CT_STATE[state.lower()]
    if ct is None:
        # nft_ct_get_eval(): no conntrack entry → NFT_BREAK for every key but state.
        raise _Break(f"the packet has no conntrack entry ({state})")
    if key == "direction":
        return CT_DIR.get(ct.direction.lower(), 0)
    if key == "status":
        bits = 0
        if ct.confirmed or state in ("ESTABLISHED", "RELATED"):
            bits |= CT_STATUS["confirmed"]
        # An entry of a conversation's table knows its bits; a declared one
        # (entry_id 0) has seen a reply iff it is ESTABLISHED.
        if ct.seen_reply if ct.entry_id else state == "ESTABLISHED":
            bits |= CT_STATUS["seen-reply"]
        if ct.entry_id and ct.assured:
            bits |= CT_STATUS["assured"]
        if _ct_snat(ct):
            bits |= CT_STATUS["snat"]
        if _ct_dnat(ct):
            bits |= CT_STATUS["dnat"]
        return bits
    if key == "mark":
        return ct.mark
    if key == "zone":
        return ct.zone
    if key == "l3proto":
        return 10 if p.family is Family.IPV6 else 2
    if key == "protocol":
        return p.proto
    reply = expr.dir == "reply"
    if key == "saddr":
        return ct.reply_src if reply else ct.orig_src
    if key == "daddr":
        return ct.reply_dst if reply else ct.orig_dst
    if key == "proto-src":
        return ct.reply_sport if reply else ct.orig_sport
    if key == "proto-dst":
        return ct.reply_dport if reply else ct.orig_dport
    if key == "helper":
        if ct.helper is None:
            raise _Break("the connection has no helper")
        return ct.helper
    raise _Unknown(f"netviz does not evaluate ct {key}")


def _fib(expr: Fib, c: _Ctx) -> Any:
    p = c.packet
    host = c.walker.host
    flags = set(expr.flags)
    addr = p.src if "saddr" in flags else p.dst
    iif = _in_dev(c) or None
    dev = iif if "iif" in flags else (_out_dev(c) or None) if "oif" in flags else None
    if expr.result == "type":
        have = host.addr_type(addr, dev)
        return sorted(have)[0].lower() if have else "unicast"
    if expr.result in ("oif", "oifname"):
        if "saddr" in flags:
            route = host.route(p.src, src=p.dst, mark=p.mark if "mark" in flags else 0, iif=iif)
        else:
            route = host.route(p.dst, src=p.src, mark=p.mark if "mark" in flags else 0, iif=iif)
        if route.kind == "local":
            out = "lo"
        elif route.kind in ("unicast", "broadcast", "multicast") and route.dev:
            out = route.dev
        else:
            return None
        # nft_fib4_eval(): with `iif`, a result on another device is no result.
        if "iif" in flags and iif is not None and out != iif and route.kind != "local":
            return None
        return out
    raise _Unknown(f"netviz does not evaluate fib {expr.result}")


def _numgen(expr: Numgen, c: _Ctx) -> int:
    state = c.walker.state
    key = ("nft-numgen", c.family, c.table, c.chain, c.rule.index)
    if expr.mode == "inc":
        n = state.nth_counters.get(key, 0)
        state.nth_counters[key] = n + 1
        return expr.offset + n % expr.mod
    if expr.mod == 1:
        return expr.offset
    forced = state.statistic_choices.get((f"{c.family} {c.table}", c.chain, c.rule.index))
    value = 0 if forced else state.rng.randrange(expr.mod)
    c.assumed = True
    c.notes.append(f"numgen random mod {expr.mod} drew {value} (seed {state.seed})")
    return expr.offset + value


def _const(expr: Expr, dtype: str) -> Any:
    if isinstance(expr, Value):
        return parse_const(expr.text, dtype)
    if isinstance(expr, Flags):
        return parse_const("|".join(expr.items), dtype)
    raise _Unknown(f"netviz cannot read {expr_text(expr)} as a value")


def _show(value: Any, dtype: str) -> str:
    if value is None:
        return "missing"
    if isinstance(value, tuple):
        return " . ".join(str(v) for v in value)
    if dtype in BITMASK_TYPES and isinstance(value, int):
        names = CT_STATE if dtype == "ct_state" else CT_STATUS if dtype == "ct_status" else TCP_FLAGS
        words = [n for n, bit in names.items() if value & bit]
        return ",".join(words) or "0"
    if dtype in ("ifname", "iface"):
        return f'"{value}"'
    if dtype == "proto" and isinstance(value, int):
        return proto_name(value)
    if dtype == "int" and isinstance(value, int) and value > 9:
        return hex(value)
    return str(value)


def _lookup(ref: SetLit | SetRef, key: Expr, c: _Ctx) -> Element | None:
    value = read(key, c)
    index, name = c.nft.set_index(c.family, c.table, ref, _dtypes(key))
    if name:
        changes = c.walker.state.set_changes.get(_set_id(c, name), {})
        wanted = value if isinstance(value, tuple) else (value,)
        if changes.get(tuple(_key(v) for v in wanted)):
            return Element(Value(_show(value, "")))
    return index.lookup(value)


def _set_id(c: _Ctx, name: str) -> str:
    return f"nft {c.family} {c.table} @{name}"


@lru_cache(maxsize=65536)
def _network(prefix: Prefix) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(f"{prefix.addr}/{prefix.length}", strict=False)


def _compare(value: Any, dtype: str, op: str, right: Expr) -> bool | None:
    if isinstance(right, Prefix):
        net = _network(right)
        inside = isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)) and value.version == net.version and value in net
        return (not inside) if op == "!=" else inside
    if isinstance(right, Range):
        lo, hi = _key(_const(right.low, dtype)), _key(_const(right.high, dtype))
        inside = value is not None and lo <= _key(value) <= hi
        return (not inside) if op == "!=" else inside
    if dtype == "fib_oif":
        text = _const(right, dtype) if isinstance(right, (Value, Flags)) else None
        if text in ("missing", "exists"):
            hit = (value is None) == (text == "missing")
        else:
            hit = value is not None and value == text
        return (not hit) if op == "!=" else hit
    if isinstance(value, tuple):
        if not isinstance(right, Concat):
            return None
        want = tuple(_key(_const(r, "int")) for r in right.items)
        hit = tuple(_key(v) for v in value) == want
        return (not hit) if op == "!=" else hit
    want = _const(right, dtype)
    if dtype in ("ifname", "iface"):
        hit = value is not None and ifname_matches(str(want), str(value))
        return (not hit) if op == "!=" else hit
    if dtype in BITMASK_TYPES and op in ("implicit", "!="):
        # A bare flag (list) tests whether any of the bits is set.
        hit = bool(value & want)
        return (not hit) if op == "!=" else hit
    if value is None:
        return False
    a, b = _key(value), _key(want)
    if op in ("implicit", "=="):
        return bool(a == b)
    if op == "!=":
        return bool(a != b)
    return bool({"<": a < b, ">": a > b, "<=": a <= b, ">=": a >= b}[op])


_NEG = {"implicit": "≠", "==": "≠", "!=": "=", "<": "≥", ">": "≤", "<=": ">", ">=": "<"}
_POS = {"implicit": "=", "==": "=", "!=": "≠", "<": "<", ">": ">", "<=": "≤", ">=": "≥"}


@dataclass
class _Decision:
    result: Result
    reason: str = ""
    clause: str = ""


def _match(stmt: Match, c: _Ctx) -> _Decision:
    clause = statement_text(stmt)
    left_text = expr_text(stmt.left)
    dtype = _dtype(stmt.left)
    try:
        value = read(stmt.left, c)
        if isinstance(stmt.right, (SetLit, SetRef)):
            element = _lookup(stmt.right, stmt.left, c)
            hit = element is not None
            shown = f"{left_text} {_show(value, dtype)}"
            where = expr_text(stmt.right) if isinstance(stmt.right, SetRef) else "the set"
            if (stmt.op == "!=") != hit:
                return _Decision(Result.MATCH, f"{shown} {'in' if hit else 'not in'} {where}", clause)
            return _Decision(Result.NOMATCH, f"{shown} {'in' if hit else 'not in'} {where}", clause)
        ok = _compare(value, dtype, stmt.op, stmt.right)
    except _Break as exc:
        return _Decision(Result.NOMATCH, f"{clause}: {exc}", clause)
    except _Unknown as exc:
        return _Decision(Result.UNKNOWN, str(exc), clause)
    except (ValueError, KeyError) as exc:
        return _Decision(Result.UNKNOWN, f"{clause}: netviz cannot read {exc}", clause)
    if ok is None:
        return _Decision(Result.UNKNOWN, f"{clause}: netviz cannot compare {_show(value, dtype)}", clause)
    table = _POS if ok else _NEG
    reason = f"{left_text} {_show(value, dtype)} {table[stmt.op]} {expr_text(stmt.right)}"
    return _Decision(Result.MATCH if ok else Result.NOMATCH, reason, clause)


# -- statements that act -------------------------------------------------------------------


def _value_int(expr: Any, c: _Ctx, dtype: str = "int") -> int:
    if isinstance(expr, (Value, Flags)):
        return int(_const(expr, dtype))
    value = read(expr, c)
    if isinstance(value, (Value, Flags)):
        return int(_const(value, dtype))
    if not isinstance(value, int):
        raise _Unknown(f"{expr_text(expr)} is not a number")
    return value


def _set_stmt(stmt: SetStmt, c: _Ctx) -> str:
    target = stmt.target
    p = c.packet
    if isinstance(target, Meta) and target.key == "mark":
        new = _value_int(stmt.value, c) & 0xFFFFFFFF
        c.packet = p.with_(mark=new)
        return f"mark {p.mark:#x} → {new:#x}"
    if isinstance(target, Ct) and target.key == "mark":
        ct = p.ct
        if ct is None or ct.state in ("INVALID", "UNTRACKED"):
            return "no conntrack entry: ct mark unchanged"
        from dataclasses import replace

        new = _value_int(stmt.value, c) & 0xFFFFFFFF
        c.packet = p.with_(ct=replace(ct, mark=new))
        return f"ctmark {ct.mark:#x} → {new:#x}"
    if isinstance(target, Payload) and target.field == "dscp":
        dscp = _value_int(stmt.value, c, "dscp")
        c.packet = p.with_(tos=(p.tos & 3) | (dscp << 2))
        return f"dscp set to {dscp:#x}"
    if isinstance(target, Payload) and target.field in ("ttl", "hoplimit"):
        c.packet = p.with_(ttl=_value_int(stmt.value, c))
        return f"{target.field} set to {c.packet.ttl}"
    c.assumed = True
    raise _Unknown(f"netviz does not evaluate `{statement_text(stmt)}`")


def _iptables_target(name: str, options: tuple[Option, ...], c: _Ctx) -> TargetOutcome:
    return TARGETS[name](Target(name, options), c.eval_ctx())


def _nat_text(expr: Any, c: _Ctx) -> str:
    if isinstance(expr, MapLookup):
        expr = read(expr, c)
    return expr_text(expr)


def _nat(stmt: Nat, c: _Ctx) -> TargetOutcome:
    p = c.packet
    if stmt.family and (stmt.family == "ip6") != (p.family is Family.IPV6):
        raise _Break(f"{stmt.kind} {stmt.family}: not an IPv{6 if stmt.family == 'ip6' else 4} packet")
    flags: list[Option] = []
    if "fully-random" in stmt.flags:
        flags.append(Option("--random-fully"))
    elif "random" in stmt.flags:
        flags.append(Option("--random"))
    if "persistent" in stmt.flags:
        flags.append(Option("--persistent"))
    addr = _nat_text(stmt.addr, c) if stmt.addr is not None else ""
    port = _nat_text(stmt.port, c) if stmt.port is not None else ""
    if " . " in addr:  # a map gave address . port
        addr, _, port = addr.partition(" . ")
    if stmt.kind in ("masquerade", "redirect"):
        opts = (Option("--to-ports", (port,)),) if port else ()
        return _iptables_target(stmt.kind.upper(), (*opts, *flags), c)
    if ":" in addr and p.family is Family.IPV6 and port:
        addr = f"[{addr}]"
    where = addr + (f":{port}" if port else "")
    name, opt = ("DNAT", "--to-destination") if stmt.kind == "dnat" else ("SNAT", "--to-source")
    return _iptables_target(name, (Option(opt, (where,)), *flags), c)


def _limit(stmt: Limit, c: _Ctx) -> bool:
    # State kept as for iptables' limit (matches._compile_limit): the bucket
    # starts full with `burst` tokens (for packets, nft_limit_init adds
    # burst to the rate's one) and nothing refills within a trace.
    state = c.walker.state
    key = ("nft-limit", c.family, c.table, c.chain, c.rule.index)
    taken = state.limit_taken.get(key, 0)
    cost = 1 if stmt.unit == "packets" else c.packet.length
    capacity = (stmt.burst + stmt.rate) if stmt.unit == "packets" else max(stmt.burst, stmt.rate)
    within = taken + cost <= capacity
    if within:
        state.limit_taken[key] = taken + cost
    c.assumed = True
    c.notes.append("assuming the rate limit's bucket was full before this packet")
    return within != stmt.over


def _quota(stmt: Quota, c: _Ctx) -> bool:
    state = c.walker.state
    key = ("nft-quota", c.family, c.table, c.chain, c.rule.index)
    used = state.limit_taken.get(key, stmt.used) + c.packet.length
    state.limit_taken[key] = used
    over = used > stmt.bytes
    return over if stmt.over else not over


def _dynset(stmt: DynSet, c: _Ctx) -> str:
    value = read(stmt.key, c)
    wanted = value if isinstance(value, tuple) else (value,)
    changes = c.walker.state.set_changes.setdefault(_set_id(c, stmt.set), {})
    changes[tuple(_key(v) for v in wanted)] = stmt.op != "delete"
    return f"{stmt.op} {_show(value, '')} to @{stmt.set}" if stmt.op != "delete" else f"delete {_show(value, '')} from @{stmt.set}"


# -- the rule and chain walk -------------------------------------------------------------------


@dataclass
class _RuleOutcome:
    result: Result
    verdict: Verdict | None = None
    nat: TargetOutcome | None = None
    reason: str = ""
    clause: str = ""
    uncertain: bool = False
    packet: Packet | None = None
    note: str = ""
    reject: Reject | None = None


_ICMP_CODES_V4 = {"port-unreachable": "icmp-port-unreachable", "admin-prohibited": "icmp-admin-prohibited",
                  "no-route": "icmp-net-unreachable", "host-unreachable": "icmp-host-unreachable",
                  "net-unreachable": "icmp-net-unreachable", "prot-unreachable": "icmp-proto-unreachable",
                  "net-prohibited": "icmp-net-prohibited", "host-prohibited": "icmp-host-prohibited"}
_ICMP_CODES_V6 = {"port-unreachable": "icmp6-port-unreachable", "admin-prohibited": "icmp6-adm-prohibited",
                  "no-route": "icmp6-no-route", "host-unreachable": "icmp6-addr-unreachable",
                  "addr-unreachable": "icmp6-addr-unreachable"}


def reject_with(stmt: Reject, packet: Packet) -> str:
    """nft's `reject [with …]` in iptables' --reject-with words (what the
    host sends back: nft_reject_inet_eval)."""
    if stmt.type == "tcp reset":
        return "tcp-reset"
    v6 = packet.family is Family.IPV6
    code = stmt.code or "port-unreachable"
    table = _ICMP_CODES_V6 if v6 else _ICMP_CODES_V4
    return table.get(code, "icmp6-port-unreachable" if v6 else "icmp-port-unreachable")


def evaluate_rule(rule: Rule, c: _Ctx) -> _RuleOutcome:
    reasons: list[str] = []
    clause = ""
    uncertain = False
    for stmt in rule.statements:
        try:
            if isinstance(stmt, Match):
                d = _match(stmt, c)
                if d.result is not Result.MATCH:
                    return _RuleOutcome(d.result, reason=d.reason, clause=d.clause,
                                        uncertain=c.assumed or d.result is Result.UNKNOWN, packet=c.packet,
                                        note="; ".join(c.notes))
                reasons.append(d.reason)
                clause = d.clause
            elif isinstance(stmt, Verdict):
                return _RuleOutcome(Result.MATCH, stmt, reason="; ".join(reasons), clause=clause or statement_text(stmt),
                                    uncertain=uncertain or c.assumed, packet=c.packet, note="; ".join(c.notes))
            elif isinstance(stmt, VMap):
                element = _lookup(stmt.map, stmt.key, c)
                text = statement_text(stmt)
                shown = _show(read(stmt.key, c), _dtype(stmt.key) if not isinstance(stmt.key, Concat) else "")
                if element is None or not isinstance(element.data, Verdict):
                    return _RuleOutcome(Result.NOMATCH, reason=f"{expr_text(stmt.key)} {shown} not in the map",
                                        clause=text, uncertain=c.assumed, packet=c.packet, note="; ".join(c.notes))
                reasons.append(f"{expr_text(stmt.key)} {shown} → {expr_text(element.data)}")
                return _RuleOutcome(Result.MATCH, element.data, reason="; ".join(reasons), clause=text,
                                    uncertain=uncertain or c.assumed, packet=c.packet, note="; ".join(c.notes))
            elif isinstance(stmt, Nat):
                out = _nat(stmt, c)
                c.packet = out.packet
                return _RuleOutcome(Result.MATCH, Verdict("accept") if out.verdict == "ACCEPT" else Verdict("drop"),
                                    nat=out, reason="; ".join(reasons), clause=statement_text(stmt),
                                    uncertain=uncertain or c.assumed or out.assumed or out.unknown,
                                    packet=c.packet, note="; ".join([*c.notes, out.note]))
            elif isinstance(stmt, Reject):
                return _RuleOutcome(Result.MATCH, Verdict("drop"), reason="; ".join(reasons), clause=statement_text(stmt),
                                    uncertain=uncertain or c.assumed, packet=c.packet,
                                    note="; ".join([*c.notes, "rejected: an error is sent back"]), reject=stmt)
            elif isinstance(stmt, SetStmt):
                c.notes.append(_set_stmt(stmt, c))
            elif isinstance(stmt, DynSet):
                c.notes.append(_dynset(stmt, c))
            elif isinstance(stmt, Limit):
                if not _limit(stmt, c):
                    return _RuleOutcome(Result.NOMATCH, reason=f"{statement_text(stmt)}: over the rate",
                                        clause=statement_text(stmt), uncertain=True, packet=c.packet)
            elif isinstance(stmt, Quota):
                if not _quota(stmt, c):
                    return _RuleOutcome(Result.NOMATCH, reason=f"{statement_text(stmt)}: not met",
                                        clause=statement_text(stmt), packet=c.packet)
            elif isinstance(stmt, Action):
                if stmt.name == "notrack":
                    out = _iptables_target("NOTRACK", (), c)
                    c.packet = out.packet
                    c.notes.append(out.note)
            elif isinstance(stmt, Unknown):
                uncertain = True
                c.notes.append(f"netviz does not evaluate `{stmt.text}`: taken as doing nothing")
        except _Break as exc:
            return _RuleOutcome(Result.NOMATCH, reason=f"{statement_text(stmt)}: {exc}", clause=statement_text(stmt),
                                uncertain=c.assumed, packet=c.packet)
        except (_Unknown, ValueError, KeyError) as exc:
            return _RuleOutcome(Result.UNKNOWN, reason=f"{statement_text(stmt)}: {exc}", clause=statement_text(stmt),
                                uncertain=True, packet=c.packet)
    return _RuleOutcome(Result.MATCH, None, reason="; ".join(reasons), clause=clause, uncertain=uncertain or c.assumed,
                        packet=c.packet, note="; ".join(c.notes))


_VERDICT_WORDS = {"accept": "ACCEPT", "drop": "DROP", "return": "RETURN", "continue": "CONTINUE", "queue": "QUEUE"}


def verdict_word(verdict: Verdict | None) -> str:
    if verdict is None:
        return "CONTINUE"
    if verdict.kind in ("jump", "goto"):
        return f"{verdict.kind.upper()}:{verdict.chain}"
    return _VERDICT_WORDS[verdict.kind]


def run_chain(nft: NftEval, walker: Any, hook: str, entry: HookEntry, packet: Packet) -> tuple[str, Packet]:
    """One base chain, as nft_do_chain(): ACCEPT (go on to the next hook
    function) or DROP (also reject and queue)."""
    base = nft.chain(entry.family, entry.table, entry.chain)
    assert base is not None and base.base is not None
    chain = base
    index = 0
    stack: list[tuple[Chain, int]] = []
    while True:
        walker.budget -= 1
        if walker.budget < 0:
            from ..limits import WalkLimitError

            raise WalkLimitError(walker.state.max_steps, f"{entry.family} {entry.table} {chain.name}")
        if index >= len(chain.rules):
            if chain is not base:
                walker.steps.append(Step(
                    kind=StepKind.RETURN, hook=hook, family=entry.family, table=entry.table, chain=chain.name,
                    rule=len(chain.rules) + 1, text=f"end of {chain.name}: back to the calling chain",
                    verdict="RETURN", packet=packet, depth=len(stack),
                ))
            if stack:
                chain, index = stack.pop()
                continue
            return _policy(walker, hook, entry, base, packet, len(stack))
        rule = chain.rules[index]
        c = _Ctx(nft, walker, hook, entry.family, entry.table, chain.name, rule, packet)
        out = evaluate_rule(rule, c)
        if out.uncertain:
            walker.uncertain.append((f"{entry.family} {entry.table}", chain.name, rule.index))
        new_packet = out.packet or packet
        if out.result is not Result.MATCH:
            walker.steps.append(_step(hook, entry, rule, out, None, new_packet, len(stack)))
            packet = new_packet
            index += 1
            continue
        word = verdict_word(out.verdict)
        walker.steps.append(_step(hook, entry, rule, out, word, new_packet, len(stack)))
        packet = new_packet
        verdict = out.verdict
        if verdict is None or verdict.kind == "continue":
            index += 1
            continue
        if verdict.kind in ("jump", "goto"):
            target = nft.chain(entry.family, entry.table, verdict.chain)
            if target is None:
                raise NftParseError(f"chain {verdict.chain} is not defined in table {entry.family} {entry.table}")
            if verdict.kind == "jump":
                if len(stack) >= MAX_JUMP_DEPTH:
                    walker._drop(packet, f"jump stack deeper than {MAX_JUMP_DEPTH}: dropped")
                    return "DROP", packet
                stack.append((chain, index + 1))
            chain, index = target, 0
            continue
        if verdict.kind == "return":
            if stack:
                chain, index = stack.pop()
                continue
            return _policy(walker, hook, entry, base, packet, 0)
        if verdict.kind == "accept":
            return "ACCEPT", packet
        walker.fate_step = walker.steps[-1]
        if out.reject is not None:
            walker.reject = (reject_with(out.reject, packet), packet)
        return "DROP", packet


def _step(hook: str, entry: HookEntry, rule: Rule, out: _RuleOutcome, verdict: str | None, packet: Packet,
          depth: int) -> Step:
    note = out.note
    if out.result is Result.UNKNOWN:
        note = "; ".join(x for x in (note, "netviz cannot decide this rule, so the trace follows the not-matched branch") if x)
    return Step(
        kind=StepKind.RULE, hook=hook, family=entry.family, table=entry.table, chain=rule.chain,
        rule=rule.index, line=rule.line, text=rule.text, result=out.result, clause=out.clause,
        reason=out.reason, verdict=verdict, packet=packet, depth=depth, uncertain=out.uncertain, note=note,
    )


def _policy(walker: Any, hook: str, entry: HookEntry, base: Chain, packet: Packet, depth: int) -> tuple[str, Packet]:
    assert base.base is not None
    policy = base.base.policy.upper()
    step = Step(
        kind=StepKind.POLICY, hook=hook, family=entry.family, table=entry.table, chain=base.name,
        rule=len(base.rules) + 1, line=base.line, text=f"policy {base.base.policy}", verdict=policy,
        packet=packet, depth=depth,
    )
    walker.steps.append(step)
    if policy != "ACCEPT":
        walker.fate_step = step
        return "DROP", packet
    return "ACCEPT", packet

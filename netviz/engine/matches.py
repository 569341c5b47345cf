"""Match evaluators: does a rule's criteria hold for the packet?

Each `-m module` (and the basic `-s -d -i -o -p -f` criteria, module "") is
compiled once into checkers — closures over the parsed option values — so a
trace through a 100k-rule dump does not re-parse option strings.  A checker
returns None for a plain match (the common case, no allocation) or a
MatchOutcome.  `evaluate_rule` ANDs them in rule order, as ipt_do_table()
does with ip_packet_match() and then each xt match.
"""

from __future__ import annotations

import functools
import gc
import ipaddress
import itertools
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

from .context import EvalContext, MatchOutcome, Result
from .packet import Conntrack, IPAddress, Packet, proto_name, proto_number
from .ruleset import Family, IPSet, Match, Option, Rule, Ruleset

Checker = Callable[[EvalContext], MatchOutcome | None]
Compiler = Callable[[Match], list[Checker]]

MATCH = Result.MATCH
NOMATCH = Result.NOMATCH
UNKNOWN = Result.UNKNOWN

_IN_HOOKS = frozenset({"PREROUTING", "INPUT", "FORWARD"})
_OUT_HOOKS = frozenset({"FORWARD", "OUTPUT", "POSTROUTING"})
_PORT_PROTOS = frozenset({6, 17, 33, 132, 136})


def _no(clause: str, reason: str, assumed: bool = False) -> MatchOutcome:
    return MatchOutcome(NOMATCH, clause, reason, assumed)


def _unknown(clause: str, reason: str) -> MatchOutcome:
    return MatchOutcome(UNKNOWN, clause, reason)


def _assume(clause: str, reason: str) -> MatchOutcome:
    return MatchOutcome(MATCH, clause, reason, assumed=True)


class _Misses:
    """The NOMATCH outcomes one checker has produced, by packet value.

    The clause text is only built when a rule first fails (most rules of a
    big dump never need it), and a packet traced again reuses the outcome.
    """

    __slots__ = ("clause", "opt", "seen")

    def __init__(self, opt: Option) -> None:
        self.opt = opt
        self.clause = ""
        self.seen: dict[Any, MatchOutcome] = {}

    def get(self, key: Any) -> MatchOutcome | None:
        return self.seen.get(key)

    def text(self) -> str:
        if not self.clause:
            self.clause = self.opt.text()
        return self.clause

    def add(self, key: Any, reason: str) -> MatchOutcome:
        out = _no(self.text(), reason)
        if len(self.seen) >= 64:
            self.seen.clear()
        self.seen[key] = out
        return out


# -- packet views ----------------------------------------------------------


def in_name(ctx: EvalContext) -> str:
    # The hooks pass a NULL device where a direction does not exist yet
    # (ip_output passes in=NULL to POSTROUTING, ip_rcv out=NULL to
    # PREROUTING); ip_packet_match() then compares against "".
    if ctx.hook not in _IN_HOOKS:
        return ""
    return ctx.packet.in_iface or ""


def out_name(ctx: EvalContext) -> str:
    if ctx.hook not in _OUT_HOOKS:
        return ""
    return ctx.packet.out_iface or ""


def ct_view(packet: Packet) -> tuple[Conntrack | None, str]:
    """The conntrack entry a match sees and the packet's state word.

    No entry (raw table, conntrack said INVALID) reads as INVALID and an
    untracked packet as UNTRACKED, with no entry: nf_ct_get() returns NULL
    for both (xt_conntrack/xt_state).
    """
    ct = packet.ct
    if ct is None and packet.get_extra("ct_template") is not None:
        # nf_ct_get() returns the template a CT rule attached, with
        # ctinfo IP_CT_NEW: conntrack matches see a NEW entry whose
        # tuples are all zero.
        zero = ipaddress.ip_address(0) if packet.family is Family.IPV4 else ipaddress.IPv6Address(0)
        return Conntrack(
            state="NEW", orig_src=zero, orig_dst=zero, orig_sport=0, orig_dport=0,
            reply_src=zero, reply_dst=zero, reply_sport=0, reply_dport=0,
            zone=int(zone) if (zone := str(packet.get_extra("ct_template"))).isdigit() else 0,
            confirmed=True, template=True,
        ), "NEW"
    if ct is None or ct.state == "INVALID":
        return None, "INVALID"
    if ct.state == "UNTRACKED":
        return None, "UNTRACKED"
    return ct, ct.state


def _ct_dnat(ct: Conntrack) -> bool:
    # IPS_DST_NAT is set by nf_nat_setup_info() only when the mapping really
    # changed the tuple: original destination ≠ reply source.
    if ct.orig_dst is not None and ct.reply_src is not None and ct.orig_dst != ct.reply_src:
        return True
    return ct.orig_dport is not None and ct.reply_sport is not None and ct.orig_dport != ct.reply_sport


def _ct_snat(ct: Conntrack) -> bool:
    if ct.orig_src is not None and ct.reply_dst is not None and ct.orig_src != ct.reply_dst:
        return True
    return ct.orig_sport is not None and ct.reply_dport is not None and ct.orig_sport != ct.reply_dport


# -- value parsing ----------------------------------------------------------


def _v4_int(text: str) -> int | None:
    parts = text.split(".")
    if len(parts) != 4 or not all(p.isdigit() and len(p) <= 3 for p in parts):
        return None
    a, b, c, d = (int(p) for p in parts)
    if max(a, b, c, d) > 255:
        return None
    return (a << 24) | (b << 16) | (c << 8) | d


@functools.lru_cache(maxsize=65536)
def parse_addr_mask(text: str) -> tuple[int, int, int]:
    """`10.0.0.0/8`, `10.0.0.1`, `10.0.0.0/255.0.255.0`, `fe80::/64` →
    (version, address & mask, mask) as integers."""
    addr_text, _, mask_text = text.partition("/")
    quick = _v4_int(addr_text)
    if quick is not None and (not mask_text or mask_text.isdigit()):
        plen = int(mask_text) if mask_text else 32
        if plen > 32:
            raise ValueError(f"bad prefix length in {text!r}")
        mask = (0xFFFFFFFF << (32 - plen)) & 0xFFFFFFFF
        return 4, quick & mask, mask
    addr = ipaddress.ip_address(addr_text)
    bits = addr.max_prefixlen
    full = (1 << bits) - 1
    if not mask_text:
        mask = full
    elif mask_text.isdigit():
        plen = int(mask_text)
        if plen > bits:
            raise ValueError(f"bad prefix length in {text!r}")
        mask = (full << (bits - plen)) & full
    else:
        # Dotted masks may be non-contiguous (iptables keeps them as given).
        mask = int(ipaddress.ip_address(mask_text))
    return addr.version, int(addr) & mask, mask


def parse_port_range(text: str) -> tuple[int, int]:
    # `a:b`, `:b` (0:b), `a:` (a:65535), `a`; multiport and sets also use `-`.
    sep = ":" if ":" in text else ("-" if "-" in text else None)
    if sep is None:
        p = _port_number(text)
        return p, p
    lo_text, _, hi_text = text.partition(sep)
    lo = _port_number(lo_text) if lo_text else 0
    hi = _port_number(hi_text) if hi_text else 65535
    return lo, hi


_SERVICES = {
    "ftp-data": 20, "ftp": 21, "ssh": 22, "telnet": 23, "smtp": 25, "domain": 53, "dns": 53,
    "bootps": 67, "bootpc": 68, "tftp": 69, "http": 80, "www": 80, "kerberos": 88, "pop3": 110,
    "sunrpc": 111, "ntp": 123, "netbios-ns": 137, "netbios-dgm": 138, "netbios-ssn": 139,
    "imap": 143, "snmp": 161, "snmp-trap": 162, "bgp": 179, "ldap": 389, "https": 443,
    "microsoft-ds": 445, "isakmp": 500, "syslog": 514, "submission": 587, "ldaps": 636,
    "imaps": 993, "pop3s": 995, "openvpn": 1194, "mysql": 3306, "postgresql": 5432,
}


def _port_number(text: str) -> int:
    text = text.strip()
    if text.isdigit():
        return int(text)
    if text in _SERVICES:
        return _SERVICES[text]
    raise ValueError(f"unknown port {text!r}")


def _int(text: str) -> int:
    return int(text, 0)


def _value_mask(text: str, default_mask: int = 0xFFFFFFFF) -> tuple[int, int]:
    value, _, mask = text.partition("/")
    return _int(value), (_int(mask) if mask else default_mask)


# -- rule evaluation -------------------------------------------------------

_RuleEntry = tuple[Rule, tuple[Checker, ...], MatchOutcome]


class _Compiled:
    """Compiled rules and set indexes of one Ruleset, keyed by object
    identity (hashing a frozen Rule walks all its tuples); each entry keeps
    its object alive so an id cannot be reused while cached."""

    __slots__ = ("rules", "ruleset", "sets")

    def __init__(self, ruleset: Ruleset) -> None:
        self.ruleset = ruleset
        self.rules: dict[int, _RuleEntry] = {}
        self.sets: dict[int, tuple[IPSet, _SetIndex]] = {}


# The most recently traced rulesets stay compiled; older ones are dropped
# with everything compiled for them.
_KEEP_RULESETS = 8
_COMPILED: OrderedDict[int, _Compiled] = OrderedDict()
_COMPILED_LOCK = threading.Lock()
_last_compiled: _Compiled | None = None
_MATCH_CACHE: dict[int, tuple[Match, list[Checker]]] = {}


def _compiled_for(ruleset: Ruleset) -> _Compiled:
    global _last_compiled
    last = _last_compiled
    if last is not None and last.ruleset is ruleset:
        return last
    with _COMPILED_LOCK:
        found = _COMPILED.get(id(ruleset))
        if found is None or found.ruleset is not ruleset:
            found = _Compiled(ruleset)
            _COMPILED[id(ruleset)] = found
            while len(_COMPILED) > _KEEP_RULESETS:
                _COMPILED.popitem(last=False)
        else:
            _COMPILED.move_to_end(id(ruleset))
        _last_compiled = found
    return found


def _compiled_match(match: Match, cache: bool = True) -> list[Checker]:
    if cache:
        entry = _MATCH_CACHE.get(id(match))
        if entry is not None and entry[0] is match:
            return entry[1]
    compiler = COMPILERS.get(match.module)
    if compiler is None:
        checkers: list[Checker] = [_const(_unknown(match.text(), f"netviz does not evaluate -m {match.module}"))]
    else:
        try:
            checkers = compiler(match)
        except (ValueError, IndexError, KeyError) as exc:
            text = match.text() or "basic criteria"
            checkers = [_const(_unknown(text, f"cannot read {text}: {exc}"))]
    if cache:
        if len(_MATCH_CACHE) > 10_000:
            _MATCH_CACHE.clear()
        _MATCH_CACHE[id(match)] = (match, checkers)
    return checkers


def _const(outcome: MatchOutcome) -> Checker:
    def check(ctx: EvalContext) -> MatchOutcome | None:
        return outcome

    return check


def _compile_rule(rule: Rule) -> tuple[Rule, tuple[Checker, ...], MatchOutcome]:
    checkers: list[Checker] = []
    count = 0
    for m in rule.matches:
        checkers.extend(_compiled_match(m, cache=False))
        if m.module != "comment":
            count += len(m.options) if m.module == "" else 1
    if count == 0:
        matched = MatchOutcome(MATCH, "", "no criteria: matches every packet")
    elif count == 1:
        matched = MatchOutcome(MATCH, "", "the criterion matched")
    else:
        matched = MatchOutcome(MATCH, "", f"all {count} criteria matched")
    return rule, tuple(checkers), matched


_COMPILE_AHEAD = 512


def _compile_chain_of(rule: Rule, ctx: EvalContext, compiled: dict[int, _RuleEntry]) -> _RuleEntry:
    # Compile the rule and the ones after it at once, with the cyclic GC paused:
    # compiling allocates many small long-lived objects, and with a large
    # ruleset in memory every collection pass walks all of it (a 110k-rule
    # dump compiled rule by rule spent 80% of its time in the collector).
    table = ctx.ruleset.table(rule.table)
    chain = table.chain(rule.chain) if table is not None else None
    rules: tuple[Rule, ...] = (rule,)
    if chain is not None and 0 < rule.index <= len(chain.rules) and chain.rules[rule.index - 1] is rule:
        # The rules a walk reaches next; a chain index that skips most of a
        # big chain then compiles only around the rules it evaluates.
        rules = chain.rules[rule.index - 1 : rule.index - 1 + _COMPILE_AHEAD]
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for r in rules:
            entry = compiled.get(id(r))
            if entry is None or entry[0] is not r:
                compiled[id(r)] = _compile_rule(r)
        entry = compiled.get(id(rule))
        if entry is None or entry[0] is not rule:
            entry = compiled[id(rule)] = _compile_rule(rule)
    finally:
        if was_enabled:
            gc.enable()
    return entry


def evaluate_rule(rule: Rule, ctx: EvalContext) -> MatchOutcome:
    last = _last_compiled
    compiled = last.rules if last is not None and last.ruleset is ctx.ruleset else _compiled_for(ctx.ruleset).rules
    entry = compiled.get(id(rule))
    if entry is None or entry[0] is not rule:
        entry = _compile_chain_of(rule, ctx, compiled)
    first_unknown: MatchOutcome | None = None
    first_assumed: MatchOutcome | None = None
    for check in entry[1]:
        out = check(ctx)
        if out is None:
            continue
        if out.result is NOMATCH:
            return out
        if out.result is UNKNOWN:
            if first_unknown is None:
                first_unknown = out
        elif out.assumed and first_assumed is None:
            first_assumed = out
    if first_unknown is not None:
        return first_unknown
    if first_assumed is not None:
        return first_assumed
    return entry[2]


def evaluate_match(match: Match, ctx: EvalContext) -> MatchOutcome:
    first: MatchOutcome | None = None
    for check in _compiled_match(match):
        out = check(ctx)
        if out is None:
            continue
        if out.result is NOMATCH:
            return out
        if first is None or (first.result is MATCH and out.result is UNKNOWN):
            first = out
    return first or MatchOutcome(MATCH, match.text(), "matched")


# -- basic criteria (ip_packet_match) ---------------------------------------


def _compile_basic(match: Match) -> list[Checker]:
    out: list[Checker] = []
    for opt in match.options:
        name = opt.name
        if name in ("-s", "--source", "-d", "--destination"):
            out.append(_addr_checker(opt, src=name in ("-s", "--source")))
        elif name in ("-i", "--in-interface", "-o", "--out-interface"):
            out.append(_iface_checker(opt, inbound=name in ("-i", "--in-interface")))
        elif name in ("-p", "--protocol"):
            out.append(_proto_checker(opt))
        elif name in ("-f", "--fragment"):
            out.append(_fragment_checker(opt))
        else:
            out.append(_const(_unknown(opt.text(), f"netviz does not evaluate {opt.name}")))
    return out


def _addr_checker(opt: Option, src: bool) -> Checker:
    version, net, mask = parse_addr_mask(opt.value)
    neg = opt.negated
    what = "source" if src else "destination"
    misses = _Misses(opt)

    def check(ctx: EvalContext) -> MatchOutcome | None:
        addr = ctx.packet.src if src else ctx.packet.dst
        hit = (int(addr) & mask) == net and addr.version == version
        if hit != neg:
            return None
        out = misses.get(addr)
        if out is not None:
            return out
        clause = misses.text()
        if neg:
            return misses.add(addr, f"{clause}: {what} {addr} is in {opt.value}")
        return misses.add(addr, f"{clause}: {what} is {addr}")

    return check


def _iface_checker(opt: Option, inbound: bool) -> Checker:
    pattern = opt.value
    prefix = pattern.endswith("+")
    stem = pattern[:-1]
    neg = opt.negated
    misses = _Misses(opt)

    def check(ctx: EvalContext) -> MatchOutcome | None:
        name = in_name(ctx) if inbound else out_name(ctx)
        hit = name.startswith(stem) if prefix else name == pattern
        if hit != neg:
            return None
        key = (name, ctx.hook)
        out = misses.get(key)
        if out is None:
            out = misses.add(key, _iface_reason(misses.text(), name, inbound, ctx.hook))
        return out

    return check


def _iface_reason(clause: str, name: str, inbound: bool, hook: str) -> str:
    if name:
        verb = "came in on" if inbound else "goes out on"
        return f"{clause}: packet {verb} {name}"
    if inbound:
        if hook in _IN_HOOKS:
            return f"{clause}: packet is locally generated (no input interface)"
        return f"{clause}: there is no input interface at {hook}"
    return f"{clause}: there is no output interface at {hook} (before routing)"


def _proto_checker(opt: Option) -> Checker:
    number = proto_number(opt.value)
    neg = opt.negated
    misses = _Misses(opt)

    def check(ctx: EvalContext) -> MatchOutcome | None:
        proto = ctx.packet.proto
        hit = number == 0 or proto == number
        if hit != neg:
            return None
        return misses.get(proto) or misses.add(proto, f"{misses.text()}: packet is {proto_name(proto)}")

    return check


def _fragment_checker(opt: Option) -> Checker:
    clause = opt.text()
    neg = opt.negated

    def check(ctx: EvalContext) -> MatchOutcome | None:
        # Packets here are whole (fragment offset 0): `-f` matches only
        # second and later fragments, so only `! -f` holds.
        if neg:
            return None
        return _no(clause, f"{clause}: packet is not a non-first fragment")

    return check


# -- tcp / udp / sctp / dccp / udplite --------------------------------------


def _port_checker(opt: Option, which: str, proto_label: str) -> Checker:
    lo, hi = parse_port_range(opt.value)
    neg = opt.negated
    misses = _Misses(opt)

    def check(ctx: EvalContext) -> MatchOutcome | None:
        port = ctx.packet.sport if which == "s" else ctx.packet.dport
        if port is not None and (lo <= port <= hi) != neg:
            return None
        return misses.get(port) or misses.add(port, _port_reason(misses.text(), port, which, proto_label, lo, hi, neg))

    return check


def _port_reason(clause: str, port: int | None, which: str, proto_label: str, lo: int, hi: int, neg: bool) -> str:
    if port is None:
        return f"{clause}: packet has no {proto_label} ports"
    if neg:
        return f"{clause}: {which}port is {port}"
    if lo == hi:
        return f"{clause} ≠ {port}"
    return f"{clause}: {which}port {port} is outside {lo}:{hi}"


def _proto_guard(number: int, label: str, clause: str) -> Checker:
    seen: dict[int, MatchOutcome] = {}

    def check(ctx: EvalContext) -> MatchOutcome | None:
        proto = ctx.packet.proto
        if proto == number:
            return None
        out = seen.get(proto)
        if out is None:
            out = seen[proto] = _no(clause, f"{clause}: packet is {proto_name(proto)}, not {label}")
        return out

    return check


_TCP_FLAGS = ("FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR")


def _flag_set(text: str) -> frozenset[str]:
    text = text.upper()
    if text == "ALL":
        return frozenset(_TCP_FLAGS)
    if text == "NONE":
        return frozenset()
    flags = frozenset(f.strip() for f in text.split(",") if f.strip())
    bad = flags - set(_TCP_FLAGS)
    if bad:
        raise ValueError(f"unknown TCP flag {min(bad)}")
    return flags


def _flags_text(flags: Iterable[str]) -> str:
    names = [f for f in _TCP_FLAGS if f in flags]
    return ",".join(names) if names else "none"


def _tcp_flags_checker(opt: Option, mask: frozenset[str], comp: frozenset[str]) -> Checker:
    clause = opt.text()
    neg = opt.negated

    def check(ctx: EvalContext) -> MatchOutcome | None:
        flags = ctx.packet.tcp_flags
        hit = (flags & mask) == comp
        if hit != neg:
            return None
        return _no(clause, f"{clause}: packet flags are {_flags_text(flags)}")

    return check


def _compile_l4(number: int, label: str) -> Compiler:
    def compile_(match: Match) -> list[Checker]:
        out: list[Checker] = [_proto_guard(number, label, f"-m {match.module}")]
        for opt in match.options:
            name = opt.name
            if name in ("--sport", "--source-port"):
                out.append(_port_checker(opt, "s", label))
            elif name in ("--dport", "--destination-port"):
                out.append(_port_checker(opt, "d", label))
            elif name == "--tcp-flags" and number == 6:
                if len(opt.values) == 2:
                    mask_text, comp_text = opt.values
                else:
                    mask_text, _, comp_text = opt.value.partition(" ")
                out.append(_tcp_flags_checker(opt, _flag_set(mask_text), _flag_set(comp_text)))
            elif name == "--tcp-option" and number == 6:
                out.append(_tcp_option_checker(opt))
            elif name == "--syn" and number == 6:
                # --syn ≡ --tcp-flags SYN,RST,ACK,FIN SYN (libxt_tcp).
                out.append(_tcp_flags_checker(opt, frozenset({"SYN", "RST", "ACK", "FIN"}), frozenset({"SYN"})))
            else:
                out.append(_const(_unknown(opt.text(), f"netviz does not evaluate {opt.name} of -m {match.module}")))
        return out

    return compile_


# -- icmp / icmp6 ------------------------------------------------------------

ICMP_TYPES: dict[str, tuple[int, int, int]] = {
    "any": (255, 0, 255),
    "echo-reply": (0, 0, 255), "pong": (0, 0, 255),
    "destination-unreachable": (3, 0, 255),
    "network-unreachable": (3, 0, 0), "host-unreachable": (3, 1, 1),
    "protocol-unreachable": (3, 2, 2), "port-unreachable": (3, 3, 3),
    "fragmentation-needed": (3, 4, 4), "source-route-failed": (3, 5, 5),
    "network-unknown": (3, 6, 6), "host-unknown": (3, 7, 7),
    "network-prohibited": (3, 9, 9), "host-prohibited": (3, 10, 10),
    "TOS-network-unreachable": (3, 11, 11), "TOS-host-unreachable": (3, 12, 12),
    "communication-prohibited": (3, 13, 13), "host-precedence-violation": (3, 14, 14),
    "precedence-cutoff": (3, 15, 15),
    "source-quench": (4, 0, 255),
    "redirect": (5, 0, 255), "network-redirect": (5, 0, 0), "host-redirect": (5, 1, 1),
    "TOS-network-redirect": (5, 2, 2), "TOS-host-redirect": (5, 3, 3),
    "echo-request": (8, 0, 255), "ping": (8, 0, 255),
    "router-advertisement": (9, 0, 255), "router-solicitation": (10, 0, 255),
    "time-exceeded": (11, 0, 255), "ttl-exceeded": (11, 0, 255),
    "ttl-zero-during-transit": (11, 0, 0), "ttl-zero-during-reassembly": (11, 1, 1),
    "parameter-problem": (12, 0, 255), "ip-header-bad": (12, 0, 0),
    "required-option-missing": (12, 1, 1),
    "timestamp-request": (13, 0, 255), "timestamp-reply": (14, 0, 255),
    "address-mask-request": (17, 0, 255), "address-mask-reply": (18, 0, 255),
}
ICMP6_TYPES: dict[str, tuple[int, int, int]] = {
    "destination-unreachable": (1, 0, 255), "no-route": (1, 0, 0),
    "communication-prohibited": (1, 1, 1), "beyond-scope": (1, 2, 2),
    "address-unreachable": (1, 3, 3), "port-unreachable": (1, 4, 4),
    "failed-policy": (1, 5, 5), "reject-route": (1, 6, 6),
    "packet-too-big": (2, 0, 255),
    "time-exceeded": (3, 0, 255), "ttl-exceeded": (3, 0, 255),
    "ttl-zero-during-transit": (3, 0, 0), "ttl-zero-during-reassembly": (3, 1, 1),
    "parameter-problem": (4, 0, 255), "bad-header": (4, 0, 0),
    "unknown-header-type": (4, 1, 1), "unknown-option": (4, 2, 2),
    "echo-request": (128, 0, 255), "ping": (128, 0, 255),
    "echo-reply": (129, 0, 255), "pong": (129, 0, 255),
    "mld-listener-query": (130, 0, 255), "mld-listener-report": (131, 0, 255),
    "mld-listener-done": (132, 0, 255), "mld-listener-reduction": (132, 0, 255),
    "router-solicitation": (133, 0, 255), "router-advertisement": (134, 0, 255),
    "neighbour-solicitation": (135, 0, 255), "neighbor-solicitation": (135, 0, 255),
    "neighbour-advertisement": (136, 0, 255), "neighbor-advertisement": (136, 0, 255),
    "redirect": (137, 0, 255),
}


def parse_icmp_type(text: str, v6: bool) -> tuple[int, int, int]:
    """`8`, `3/3`, `echo-request` → (type, min code, max code); type 255 = any."""
    table = ICMP6_TYPES if v6 else ICMP_TYPES
    if text in table:
        return table[text]
    for name, value in table.items():
        if name.lower() == text.lower():
            return value
    type_text, _, code_text = text.partition("/")
    t = int(type_text)
    if code_text:
        c = int(code_text)
        return t, c, c
    return t, 0, 255


def _compile_icmp(v6: bool) -> Compiler:
    number = 58 if v6 else 1
    label = "ipv6-icmp" if v6 else "icmp"

    def compile_(match: Match) -> list[Checker]:
        out: list[Checker] = [_proto_guard(number, label, f"-m {match.module}")]
        for opt in match.options:
            if opt.name not in ("--icmp-type", "--icmpv6-type"):
                out.append(_const(_unknown(opt.text(), f"netviz does not evaluate {opt.name}")))
                continue
            t, cmin, cmax = parse_icmp_type(opt.value, v6)
            out.append(_icmp_checker(opt, t, cmin, cmax, v6))
        return out

    return compile_


def _icmp_checker(opt: Option, t: int, cmin: int, cmax: int, v6: bool) -> Checker:
    clause = opt.text()
    neg = opt.negated

    def check(ctx: EvalContext) -> MatchOutcome | None:
        p = ctx.packet
        ptype = p.icmp_type if p.icmp_type is not None else (128 if v6 else 8)
        pcode = p.icmp_code or 0
        # icmp_type_code_match(): type 0xFF ("any") matches every type.
        hit = (t == 255 and not v6) or (ptype == t and cmin <= pcode <= cmax)
        if hit != neg:
            return None
        return _no(clause, f"{clause}: packet is type {ptype} code {pcode}")

    return check


# -- multiport / iprange -------------------------------------------------------


def _compile_multiport(match: Match) -> list[Checker]:
    out: list[Checker] = []
    for opt in match.options:
        if opt.name in ("--dports", "--destination-ports", "--sports", "--source-ports", "--ports"):
            which = {"--dports": "d", "--destination-ports": "d", "--sports": "s", "--source-ports": "s"}.get(opt.name, "b")
            ranges = tuple(parse_port_range(p) for p in opt.value.split(","))
            out.append(_multiport_checker(opt, which, ranges))
        else:
            out.append(_const(_unknown(opt.text(), f"netviz does not evaluate {opt.name}")))
    return out


def _multiport_checker(opt: Option, which: str, ranges: tuple[tuple[int, int], ...]) -> Checker:
    clause = opt.text()
    neg = opt.negated

    def inside(port: int | None) -> bool:
        return port is not None and any(lo <= port <= hi for lo, hi in ranges)

    def check(ctx: EvalContext) -> MatchOutcome | None:
        p = ctx.packet
        if p.proto not in _PORT_PROTOS:
            return _no(clause, f"{clause}: packet is {proto_name(p.proto)}, which has no ports")
        if which == "s":
            hit = inside(p.sport)
            shown = f"sport is {p.sport}"
        elif which == "d":
            hit = inside(p.dport)
            shown = f"dport is {p.dport}"
        else:
            hit = inside(p.sport) or inside(p.dport)
            shown = f"ports are {p.sport} → {p.dport}"
        if hit != neg:
            return None
        return _no(clause, f"{clause}: {shown}")

    return check


def _compile_iprange(match: Match) -> list[Checker]:
    out: list[Checker] = []
    for opt in match.options:
        if opt.name not in ("--src-range", "--dst-range"):
            out.append(_const(_unknown(opt.text(), f"netviz does not evaluate {opt.name}")))
            continue
        lo_text, _, hi_text = opt.value.partition("-")
        lo = ipaddress.ip_address(lo_text)
        hi = ipaddress.ip_address(hi_text or lo_text)
        out.append(_iprange_checker(opt, opt.name == "--src-range", lo, hi))
    return out


def _iprange_checker(opt: Option, src: bool, lo: IPAddress, hi: IPAddress) -> Checker:
    clause = opt.text()
    neg = opt.negated

    def check(ctx: EvalContext) -> MatchOutcome | None:
        addr = ctx.packet.src if src else ctx.packet.dst
        hit = addr.version == lo.version and int(lo) <= int(addr) <= int(hi)
        if hit != neg:
            return None
        return _no(clause, f"{clause}: {'source' if src else 'destination'} is {addr}")

    return check


# -- conntrack / state -----------------------------------------------------------


def _state_words(text: str) -> frozenset[str]:
    return frozenset(w.strip().upper() for w in text.split(",") if w.strip())


def _compile_state(match: Match) -> list[Checker]:
    out: list[Checker] = []
    for opt in match.options:
        if opt.name != "--state":
            out.append(_const(_unknown(opt.text(), f"netviz does not evaluate {opt.name}")))
            continue
        out.append(_ctstate_checker(opt, _state_words(opt.value), virtual=False))
    return out


def _ctstate_checker(opt: Option, states: frozenset[str], virtual: bool) -> Checker:
    neg = opt.negated
    misses = _Misses(opt)

    def check(ctx: EvalContext) -> MatchOutcome | None:
        ct, state = ct_view(ctx.packet)
        if virtual and ct is not None:
            have = [state]
            if _ct_snat(ct):
                have.append("SNAT")
            if _ct_dnat(ct):
                have.append("DNAT")
            hit = not states.isdisjoint(have)
        else:
            have = [state]
            hit = state in states
        if hit != neg:
            return None
        key = (tuple(have), ctx.packet.ct is None)
        out = misses.get(key)
        if out is None:
            shown = "state is " + "+".join(have)
            if ctx.packet.ct is None and state == "INVALID":
                shown += " (conntrack has not seen the packet yet)"
            out = misses.add(key, f"{misses.text()}: {shown}")
        return out

    return check


def _compile_conntrack(match: Match) -> list[Checker]:
    # conntrack_mt() (net/netfilter/xt_conntrack.c): --ctstate first; with
    # no entry the match is then true iff --ctstate was given, whatever the
    # other options say.  The rest compare the entry's tuples.
    state_opt = match.option("--ctstate")
    others = [o for o in match.options if o.name != "--ctstate"]
    out: list[Checker] = []
    if state_opt is not None:
        out.append(_ctstate_checker(state_opt, _state_words(state_opt.value), virtual=True))
    if not others:
        return out
    parts: list[Checker] = [_ct_option(o) for o in others]
    has_state = state_opt is not None
    first_clause = others[0].text()

    def check(ctx: EvalContext) -> MatchOutcome | None:
        ct, state = ct_view(ctx.packet)
        if ct is None:
            if has_state:
                return None
            return _no(first_clause, f"{first_clause}: the packet has no conntrack entry ({state})")
        first: MatchOutcome | None = None
        for part in parts:
            res = part(ctx)
            if res is None:
                continue
            if res.result is NOMATCH:
                return res
            if first is None:
                first = res
        return first

    out.append(check)
    return out


def _ct_option(opt: Option) -> Checker:
    clause = opt.text()
    neg = opt.negated
    name = opt.name

    def result(hit: bool, shown: str) -> MatchOutcome | None:
        if hit != neg:
            return None
        return _no(clause, f"{clause}: {shown}")

    if name in ("--ctorigsrc", "--ctorigdst", "--ctreplsrc", "--ctrepldst"):
        version, net, mask = parse_addr_mask(opt.value)
        attr = {"--ctorigsrc": "orig_src", "--ctorigdst": "orig_dst", "--ctreplsrc": "reply_src", "--ctrepldst": "reply_dst"}[name]
        label = {"orig_src": "original source", "orig_dst": "original destination", "reply_src": "reply source", "reply_dst": "reply destination"}[attr]

        def check_addr(ctx: EvalContext) -> MatchOutcome | None:
            ct = ct_view(ctx.packet)[0]
            addr = getattr(ct, attr) if ct is not None else None
            if addr is None:
                return _unknown(clause, f"{clause}: the entry's {label} is not known")
            return result(addr.version == version and (int(addr) & mask) == net, f"{label} is {addr}")

        return check_addr
    if name in ("--ctorigsrcport", "--ctorigdstport", "--ctreplsrcport", "--ctrepldstport"):
        lo, hi = parse_port_range(opt.value)
        attr = {"--ctorigsrcport": "orig_sport", "--ctorigdstport": "orig_dport", "--ctreplsrcport": "reply_sport", "--ctrepldstport": "reply_dport"}[name]

        def check_port(ctx: EvalContext) -> MatchOutcome | None:
            ct = ct_view(ctx.packet)[0]
            port = getattr(ct, attr) if ct is not None else None
            if port is None:
                return result(False, "the entry has no such port")
            return result(lo <= port <= hi, f"{attr.replace('_', ' ')} is {port}")

        return check_port
    if name == "--ctproto":
        number = proto_number(opt.value)

        def check_proto(ctx: EvalContext) -> MatchOutcome | None:
            ct = ct_view(ctx.packet)[0]
            # a template's tuple has l4 protocol 0; an entry's is its own
            # (an ICMP error RELATED to a UDP connection reads udp)
            if ct is not None and ct.template:
                proto = 0
            elif ct is not None and ct.proto is not None:
                proto = ct.proto
            else:
                proto = ctx.packet.proto
            return result(proto == number, f"entry protocol is {proto_name(proto)}")

        return check_proto
    if name == "--ctdir":
        want = opt.value.upper()

        def check_dir(ctx: EvalContext) -> MatchOutcome | None:
            ct = ct_view(ctx.packet)[0]
            direction = ct.direction if ct is not None else "ORIGINAL"
            return result(direction == want, f"packet is in the {direction} direction")

        return check_dir
    if name == "--ctstatus":
        wanted = _state_words(opt.value)

        def check_status(ctx: EvalContext) -> MatchOutcome | None:
            ct = ct_view(ctx.packet)[0]
            assert ct is not None
            have: set[str] = set()
            maybe: set[str] = set()
            if ct.confirmed:
                have.add("CONFIRMED")
            if ct.entry_id:
                # An entry of the conversation's conntrack table: its bits are known.
                if ct.seen_reply:
                    have.add("SEEN_REPLY")
                if ct.assured:
                    have.add("ASSURED")
            elif ct.state == "ESTABLISHED":
                have.update({"SEEN_REPLY", "CONFIRMED"})
                maybe.add("ASSURED")  # depends on the protocol's progress
            if ct.state == "RELATED" and not ct.entry_id:
                maybe.add("EXPECTED")  # helper expectation or ICMP error
            hit = bool(wanted & have)
            if not hit and wanted & maybe:
                return _unknown(clause, f"{clause}: the dump does not say whether the entry is {'/'.join(sorted(wanted & maybe))}")
            return result(hit, "status is " + (",".join(sorted(have)) or "none of these"))

        return check_status
    if name == "--ctexpire":
        return _const(_unknown(clause, f"{clause}: the entry's remaining lifetime is not known"))
    return _const(_unknown(clause, f"netviz does not evaluate {name} of -m conntrack"))


# -- mark / connmark -----------------------------------------------------------


def _compile_mark(match: Match) -> list[Checker]:
    out: list[Checker] = []
    for opt in match.options:
        if opt.name != "--mark":
            out.append(_const(_unknown(opt.text(), f"netviz does not evaluate {opt.name}")))
            continue
        value, mask = _value_mask(opt.value)
        out.append(_mark_checker(opt, value, mask, conn=match.module == "connmark"))
    return out


def _mark_checker(opt: Option, value: int, mask: int, conn: bool) -> Checker:
    neg = opt.negated
    misses = _Misses(opt)

    def check(ctx: EvalContext) -> MatchOutcome | None:
        if conn:
            ct, state = ct_view(ctx.packet)
            if ct is None:
                # connmark_mt(): no conntrack entry → false, even with `!`.
                return _no(misses.text(), f"{misses.text()}: the packet has no conntrack entry ({state})")
            mark = ct.mark
        else:
            mark = ctx.packet.mark
        hit = (mark & mask) == value
        if hit != neg:
            return None
        return misses.get(mark) or misses.add(mark, _mark_reason(misses.text(), mark, mask, conn))

    return check


def _mark_reason(clause: str, mark: int, mask: int, conn: bool) -> str:
    what = "ctmark" if conn else "mark"
    if mask == 0xFFFFFFFF:
        return f"{clause}: {what} is {mark:#x}"
    return f"{clause}: {what} {mark:#x} & {mask:#x} = {mark & mask:#x}"


# -- addrtype --------------------------------------------------------------------

ADDRTYPES = frozenset(
    {"UNSPEC", "UNICAST", "LOCAL", "BROADCAST", "ANYCAST", "MULTICAST", "BLACKHOLE",
     "UNREACHABLE", "PROHIBIT", "THROW", "NAT", "XRESOLVE"}
)


def _compile_addrtype(match: Match) -> list[Checker]:
    limit_in = match.option("--limit-iface-in") is not None
    limit_out = match.option("--limit-iface-out") is not None
    out: list[Checker] = []
    for opt in match.options:
        if opt.name in ("--limit-iface-in", "--limit-iface-out"):
            continue
        if opt.name not in ("--src-type", "--dst-type"):
            out.append(_const(_unknown(opt.text(), f"netviz does not evaluate {opt.name}")))
            continue
        types = _state_words(opt.value)
        bad = types - ADDRTYPES
        if bad:
            raise ValueError(f"unknown address type {min(bad)}")
        out.append(_addrtype_checker(opt, opt.name == "--src-type", types, limit_in, limit_out))
    return out


def addrtype_matches(types: frozenset[str], have: frozenset[str], v6: bool) -> bool:
    if not v6:
        # IPv4: one type per address; the list is OR-ed (match_type()).
        return bool(types & have)
    # match_type6(): MULTICAST/UNICAST/UNSPEC in the list must all hold,
    # then LOCAL/ANYCAST/UNREACHABLE (if listed) must meet the lookup.
    for t in ("MULTICAST", "UNICAST", "UNSPEC"):
        if t in types and t not in have:
            return False
    looked = types & {"LOCAL", "ANYCAST", "UNREACHABLE"}
    if looked:
        return bool(looked & have)
    return True


def _addrtype_checker(opt: Option, src: bool, types: frozenset[str], limit_in: bool, limit_out: bool) -> Checker:
    clause = opt.text()
    neg = opt.negated

    def check(ctx: EvalContext) -> MatchOutcome | None:
        addr = ctx.packet.src if src else ctx.packet.dst
        dev: str | None = None
        # addrtype_mt_v1(): the device is xt_in/xt_out of the hook (NULL
        # where the hook has none, i.e. no restriction).
        if limit_in:
            dev = in_name(ctx) or None
        elif limit_out:
            dev = out_name(ctx) or None
        have = ctx.host.addr_type(addr, dev)
        hit = addrtype_matches(types, have, addr.version == 6)
        if hit != neg:
            return None
        where = f" on {dev}" if dev else ""
        return _no(clause, f"{clause}: {addr} is {','.join(sorted(have))}{where}")

    return check


# -- set -------------------------------------------------------------------------------


def _compile_set(match: Match) -> list[Checker]:
    opt = match.option("--match-set")
    if opt is None:
        return [_const(_unknown(match.text(), "-m set without --match-set"))]
    if len(opt.values) >= 2:
        name, flags_text = opt.values[0], opt.values[1]
    else:
        name, _, flags_text = opt.value.partition(" ")
    flags = tuple(f.strip() for f in flags_text.split(",") if f.strip())
    return_nomatch = match.option("--return-nomatch") is not None
    counter_opts = [o for o in match.options if o.name.startswith(("--packets-", "--bytes-"))]
    clause = opt.text()
    neg = opt.negated

    def check(ctx: EvalContext) -> MatchOutcome | None:
        ipset = ctx.ruleset.ipset(name)
        if ipset is None:
            return _unknown(clause, f"{clause}: the ipset {name} is not in the uploaded sets")
        found, detail = set_lookup(ctx, ipset, flags, return_nomatch)
        if found is None:
            return _unknown(clause, f"{clause}: {detail}")
        if found and counter_opts:
            text = " ".join(o.text() for o in counter_opts)
            return _unknown(text, f"{text}: the set element's counters are not known")
        if found != neg:
            return None
        return _no(clause, f"{clause}: {detail}")

    return [check]


class _SetIndex:
    """A set's members arranged for lookup: exact keys (nets as
    (prefix length, masked address)) plus members too wide to expand."""

    def __init__(self, ipset: IPSet) -> None:
        self.dims = _set_dims(ipset)
        self.exact: dict[tuple[Any, ...], bool] = {}
        self.wide: list[tuple[tuple[Callable[[Any], bool], ...], bool]] = []
        # per net dimension: prefix lengths present, most specific first
        self.plens: list[list[int]] = [[] for _ in self.dims]
        plens: list[set[int]] = [set() for _ in self.dims]
        self.netmask: int | None = None
        for k, v in ipset.options:
            if k == "netmask":
                self.netmask = int(v)
        self.bits = 128 if ipset.family == "inet6" else 32
        markmask = 0xFFFFFFFF
        for k, v in ipset.options:
            if k == "markmask":
                markmask = _int(v)
        self.markmask = markmask
        for member in ipset.members:
            if len(member.elements) < len(self.dims):
                continue
            values = [_parse_dim(kind, text.strip()) for kind, text in zip(self.dims, member.elements, strict=False)]
            size = 1
            for v in values:
                size *= len(v) if isinstance(v, list) else 1_000_000
            if size <= 4096:
                for combo in itertools.product(*values):
                    for i, kind in enumerate(self.dims):
                        if kind == "net":
                            plens[i].add(combo[i][0])
                    self.exact.setdefault(tuple(combo), member.nomatch)
            else:
                preds = tuple(_as_predicate(kind, v) for kind, v in zip(self.dims, values, strict=True))
                self.wide.append((preds, member.nomatch))
        self.plens = [sorted(p, reverse=True) for p in plens]
        # hash:net,iface: the nets present whatever their interface (see lookup)
        self.nets_any_iface = {k[0] for k in self.exact} if self.dims == ("net", "iface") else set()

    def element_key(self, values: list[Any]) -> tuple[Any, ...]:
        """The element a kernel-side add/del (SET target) of these packet
        values touches: hash:net* use the set's most specific CIDR, or a
        host prefix when it has none (INIT_CIDR in hash_net*_kadt)."""
        out: list[Any] = []
        for kind, value, plens in zip(self.dims, values, self.plens, strict=True):
            if kind == "net":
                bits = value.max_prefixlen
                plen = plens[0] if plens else bits
                out.append((plen, int(value) & (((1 << bits) - 1) << (bits - plen)) & ((1 << bits) - 1)))
            elif kind == "ip":
                out.append(self._choices(kind, value, plens)[0])
            elif kind == "mark":
                out.append(value & self.markmask)
            else:
                out.append(value)
        return tuple(out)

    def _choices(self, kind: str, value: Any, plens: list[int]) -> list[Any]:
        if kind == "ip" and self.netmask is not None:
            bits = value.max_prefixlen
            mask = (((1 << bits) - 1) << (bits - self.netmask)) & ((1 << bits) - 1)
            return [int(value) & mask]
        if kind == "ip":
            return [int(value)]
        return [value]

    def lookup(self, values: list[Any], changes: dict[tuple[Any, ...], bool] | None = None) -> bool | None:
        """None: no element; else the element's nomatch flag.  `changes`:
        elements added (True) or deleted (False) earlier in this trace."""
        if changes:
            extra_plens = [sorted({k[i][0] for k in changes if kind == "net"} | set(p), reverse=True)
                           for i, (kind, p) in enumerate(zip(self.dims, self.plens, strict=True))]
        else:
            extra_plens = self.plens
        choices: list[list[Any]] = []
        for kind, value, plens in zip(self.dims, values, extra_plens, strict=True):
            if kind == "net":
                addr = int(value)
                bits = value.max_prefixlen
                choices.append([(p, addr & (((1 << bits) - 1) << (bits - p)) & ((1 << bits) - 1)) for p in plens])
            elif kind == "ip" and self.netmask is not None:
                bits = value.max_prefixlen
                mask = (((1 << bits) - 1) << (bits - self.netmask)) & ((1 << bits) - 1)
                choices.append([int(value) & mask])
            elif kind == "ip":
                choices.append([int(value)])
            elif kind == "mark":
                choices.append([value & self.markmask])
            else:
                choices.append([value])
        # Most specific net combination first, as the hash:net* types try
        # their CIDRs from the longest (mtype_test_cidrs).
        for combo in itertools.product(*choices):
            if changes and combo in changes:
                if changes[combo]:
                    # added by SET: a plain element, unless it already
                    # existed (an add of an existing element changes nothing)
                    return self.exact.get(combo, False)
                continue
            hit = self.exact.get(combo)
            if hit is not None:
                return hit
            if combo[0] in self.nets_any_iface:
                # hash_netiface4_data_equal() bumps `multi` once net and CIDR
                # are equal, even when the interface then differs, and
                # mtype_test_cidrs() stops trying wider CIDRs (`&& !multi`):
                # the most specific net decides, whatever its interface.
                return None
        for preds, nomatch in self.wide:
            if all(p(v) for p, v in zip(preds, values, strict=True)):
                return nomatch
        return None


def _set_dims(ipset: IPSet) -> tuple[str, ...]:
    dims = ipset.dimensions
    if ipset.method == "bitmap" and dims == ("port",):
        return ("bport",)
    return dims


_SET_PROTOS = {"tcp": 6, "udp": 17, "sctp": 132, "udplite": 136, "icmp": 1, "icmpv6": 58, "ipv6-icmp": 58}


def _parse_dim(kind: str, text: str) -> Any:
    if kind == "ip":
        if "-" in text:
            lo_t, _, hi_t = text.partition("-")
            lo, hi = int(ipaddress.ip_address(lo_t)), int(ipaddress.ip_address(hi_t))
        elif "/" in text:
            net = ipaddress.ip_network(text, strict=False)
            lo, hi = int(net.network_address), int(net.broadcast_address)
        else:
            return [int(ipaddress.ip_address(text))]
        if hi - lo < 4096:
            return list(range(lo, hi + 1))
        return (lo, hi)
    if kind == "net":
        if "-" in text:
            lo_t, _, hi_t = text.partition("-")
            nets = ipaddress.summarize_address_range(ipaddress.ip_address(lo_t), ipaddress.ip_address(hi_t))
            return [(n.prefixlen, int(n.network_address)) for n in nets]
        net = ipaddress.ip_network(text, strict=False)
        return [(net.prefixlen, int(net.network_address))]
    if kind in ("port", "bport"):
        proto = 6
        body = text
        if ":" in text and kind == "port":
            proto_text, _, body = text.partition(":")
            known = _SET_PROTOS.get(proto_text.lower())
            proto = known if known is not None else proto_number(proto_text)
            if proto in (1, 58):
                if "/" in body or body.isdigit():
                    type_text, _, code_text = body.partition("/")
                    return [(proto, (int(type_text) << 8) | int(code_text or 0))]
                itype, icode, _ = parse_icmp_type(body, proto == 58)
                return [(proto, (itype << 8) | icode)]
        lo, hi = parse_port_range(body)
        if hi - lo < 4096:
            if kind == "bport":
                return list(range(lo, hi + 1))
            return [(proto, p) for p in range(lo, hi + 1)]
        return (proto, lo, hi) if kind == "port" else (lo, hi)
    if kind == "iface":
        return [text]
    if kind == "mark":
        return [_int(text)]
    if kind == "mac":
        return [text.lower()]
    if kind == "set":
        return [text]
    raise ValueError(f"netviz does not evaluate set dimension {kind}")


def _as_predicate(kind: str, value: Any) -> Callable[[Any], bool]:
    if isinstance(value, list):
        if kind == "net":
            nets = value

            def in_nets(v: Any) -> bool:
                bits = v.max_prefixlen
                full = (1 << bits) - 1
                return any((int(v) & ((full << (bits - p)) & full)) == n for p, n in nets)

            return in_nets
        if kind == "ip":
            ints = set(value)
            return lambda v: int(v) in ints
        items = set(value)
        return lambda v: v in items
    if kind == "ip":
        lo, hi = value
        return lambda v: lo <= int(v) <= hi
    if kind == "port":
        proto, lo, hi = value
        return lambda v: v[0] == proto and lo <= v[1] <= hi
    lo, hi = value
    return lambda v: lo <= v <= hi


def _set_index(ipset: IPSet, ruleset: Ruleset) -> _SetIndex:
    sets = _compiled_for(ruleset).sets
    entry = sets.get(id(ipset))
    if entry is not None and entry[0] is ipset:
        return entry[1]
    index = _SetIndex(ipset)
    sets[id(ipset)] = (ipset, index)
    return index


def _packet_dim(ctx: EvalContext, kind: str, flag: str) -> tuple[Any, str]:
    """(lookup value, display text) of one dimension; value None = no match
    possible, raises LookupError when the packet does not say."""
    p = ctx.packet
    src = flag == "src"
    if kind in ("ip", "net"):
        addr = p.src if src else p.dst
        return addr, str(addr)
    if kind in ("port", "bport"):
        if p.proto in (1, 58):
            t = p.icmp_type if p.icmp_type is not None else (128 if p.proto == 58 else 8)
            c = p.icmp_code or 0
            if kind == "bport":
                return None, f"{proto_name(p.proto)} has no port"
            return (p.proto, (t << 8) | c), f"{proto_name(p.proto)}:{t}/{c}"
        if kind == "bport" and p.proto not in (6, 17):
            # bitmap:port's own ip_set_get_ip_port() takes TCP and UDP only.
            return None, f"{proto_name(p.proto)} ports are not looked up in a bitmap:port set"
        if p.proto in _PORT_PROTOS:
            port = p.sport if src else p.dport
            if kind == "bport":
                return port, str(port)
            return (p.proto, port), f"{proto_name(p.proto)}:{port}"
        # ip_set_get_ip4_port(): other protocols count as port 0.
        if kind == "bport":
            return None, f"{proto_name(p.proto)} has no port"
        return (p.proto, 0), f"{proto_name(p.proto)}:0"
    if kind == "iface":
        name = in_name(ctx) if src else out_name(ctx)
        return (name or None), (name or "no interface")
    if kind == "mark":
        return p.mark, f"mark {p.mark:#x}"
    if kind == "mac":
        mac = p.get_extra("mac") if src else None
        if mac is None:
            raise LookupError("the packet's MAC address is not known")
        return str(mac).lower(), str(mac)
    raise LookupError(f"netviz does not evaluate set dimension {kind}")


def set_lookup(
    ctx: EvalContext, ipset: IPSet, flags: tuple[str, ...], return_nomatch: bool, depth: int = 0
) -> tuple[bool | None, str]:
    """(matched, words) for `--match-set` semantics; matched None = unknown."""
    if ipset.method == "list":
        if depth > 4:
            return None, f"list:set {ipset.name} nests too deep"
        unknown = ""
        for member in ipset.members:
            inner = ctx.ruleset.ipset(member.elements[0]) if member.elements else None
            if inner is None:
                unknown = unknown or f"member set {member.elements[0] if member.elements else '?'} is not in the uploaded sets"
                continue
            hit, detail = set_lookup(ctx, inner, flags, return_nomatch, depth + 1)
            if hit:
                return True, f"{detail} (member of {ipset.name})"
            if hit is None:
                unknown = unknown or detail
        if unknown:
            return None, unknown
        return False, f"no member set of {ipset.name} holds the packet"
    index = _set_index(ipset, ctx.ruleset)
    dims = index.dims
    # ip_set_test(): fewer direction flags than dimensions never matches,
    # and an inet set never matches an IPv6 packet (and vice versa).
    if len(flags) < len(dims):
        return False, f"{len(flags)} direction flag(s) for the {len(dims)} dimensions of {ipset.type}"
    if any(k in ("ip", "net") for k in dims):
        want = 6 if ipset.family == "inet6" else 4
        pkt_v = 6 if ctx.packet.family is Family.IPV6 else 4
        if want != pkt_v:
            return False, f"{ipset.name} is an {ipset.family} set, the packet is IPv{pkt_v}"
    values: list[Any] = []
    shown: list[str] = []
    try:
        for kind, flag in zip(dims, flags, strict=False):
            value, text = _packet_dim(ctx, kind, flag)
            if value is None:
                return False, f"{text}: not in {ipset.name}"
            values.append(value)
            shown.append(text)
    except LookupError as exc:
        return None, str(exc)
    key = ",".join(shown)
    changes = ctx.state.set_changes.get(ipset.name)
    nomatch = index.lookup(values, changes)
    if nomatch is None:
        return False, f"{key} is not in {ipset.name}"
    if nomatch:
        # A `nomatch` element is the most specific hit: the test fails,
        # unless --return-nomatch turns it into a match (ipset(8)).
        if return_nomatch:
            return True, f"{key} hits a nomatch element of {ipset.name} (--return-nomatch)"
        return False, f"{key} hits a nomatch element of {ipset.name}"
    if return_nomatch:
        return False, f"{key} is in {ipset.name}, but --return-nomatch reverses the result"
    return True, f"{key} is in {ipset.name}"


def set_change(ctx: EvalContext, ipset: IPSet, flags: tuple[str, ...], add: bool) -> str:
    """Apply SET --add-set/--del-set to this trace's view of `ipset`;
    returns what happened in words."""
    if ipset.method == "list":
        return f"{ipset.name} is a list:set; netviz does not follow adds to its members"
    index = _set_index(ipset, ctx.ruleset)
    dims = index.dims
    if len(flags) < len(dims):
        # ip_set_add()/ip_set_del(): -IPSET_ERR_TYPE_MISMATCH, nothing changes
        return f"{len(flags)} direction flag(s) for the {len(dims)} dimensions of {ipset.type}: nothing changes"
    values: list[Any] = []
    try:
        for kind, flag in zip(dims, flags, strict=False):
            value, text = _packet_dim(ctx, kind, flag)
            if value is None:
                return f"{text}: cannot be stored in {ipset.name}"
            values.append(value)
    except LookupError as exc:
        return str(exc)
    key = index.element_key(values)
    ctx.state.set_changes.setdefault(ipset.name, {})[key] = add
    return f"{'added to' if add else 'deleted from'} {ipset.name}"


# -- statistic ---------------------------------------------------------------------


def _compile_statistic(match: Match) -> list[Checker]:
    mode_opt = match.option("--mode")
    mode = mode_opt.value if mode_opt else "random"
    clause = match.text()
    if mode == "random":
        prob_opt = match.option("--probability")
        p = float(prob_opt.value) if prob_opt else 0.0
        neg = bool(prob_opt and prob_opt.negated)
        # xt_statistic: (prandom_u32() & 0x7FFFFFFF) < lround(p * 2^31)
        threshold = int(p * 2**31 + 0.5)

        def check_random(ctx: EvalContext) -> MatchOutcome | None:
            key = (ctx.table, ctx.chain, ctx.rule_index)
            forced = ctx.state.statistic_choices.get(key)
            if forced is not None:
                hit = forced
                how = "chosen"
            else:
                drawn = (ctx.state.rng.getrandbits(32) & 0x7FFFFFFF) < threshold
                hit = drawn != neg
                how = "drawn"
            ctx.state.statistic_seen.append((ctx.table, ctx.chain, ctx.rule_index, p, hit))
            if hit:
                return _assume(clause, f"{clause}: random choice {how} to match (probability {p:g})")
            return _no(clause, f"{clause}: random choice {how} not to match (probability {p:g})", assumed=True)

        return [check_random]
    if mode == "nth":
        every_opt = match.option("--every")
        packet_opt = match.option("--packet")
        every = int(every_opt.value) if every_opt else 1
        start = int(packet_opt.value) if packet_opt else 0
        neg = bool(every_opt and every_opt.negated)

        def check_nth(ctx: EvalContext) -> MatchOutcome | None:
            # userspace stores every-1 and count = every-1-packet; the kernel
            # advances count on each packet reaching the match and matches
            # when it wraps to 0 (xt_statistic.c).
            key = (ctx.table, ctx.chain, ctx.rule_index)
            count = ctx.state.nth_counters.get(key, every - 1 - start)
            nval = 0 if count >= every - 1 else count + 1
            ctx.state.nth_counters[key] = nval
            hit = (nval == 0) != neg
            nth = f"packet {start + 1} of every {every}" if every > 1 else "every packet"
            if hit:
                return MatchOutcome(MATCH, clause, f"{clause}: this is {nth} (counter wrapped)", assumed=True)
            return _no(clause, f"{clause}: counter at {nval}, matches only {nth}", assumed=True)

        return [check_nth]
    return [_const(_unknown(clause, f"netviz does not evaluate statistic mode {mode}"))]


# -- recent / limit / hashlimit / connlimit ------------------------------------------


def _compile_recent(match: Match) -> list[Checker]:
    name_opt = match.option("--name")
    name = name_opt.value if name_opt else "DEFAULT"
    use_dst = match.option("--rdest") is not None
    clause = match.text()
    action = next(
        (o for o in match.options if o.name in ("--set", "--rcheck", "--update", "--remove")), None
    )
    if action is None:
        return [_const(_unknown(clause, "-m recent without --set/--rcheck/--update/--remove"))]
    neg = action.negated
    extra = [o.name for o in match.options if o.name in ("--seconds", "--hitcount", "--reap", "--rttl")]

    def check(ctx: EvalContext) -> MatchOutcome | None:
        addr = str(ctx.packet.dst if use_dst else ctx.packet.src)
        seen = ctx.state.recent.setdefault(name, set())
        if action.name == "--set":
            # recent_mt(): --set adds or refreshes the entry and matches.
            seen.add(addr)
            if neg:
                return _no(clause, f"{clause}: --set always matches, negated")
            return MatchOutcome(MATCH, clause, f"{clause}: {addr} added to list {name}")
        present = addr in seen
        if action.name == "--remove" and present:
            seen.discard(addr)
        if present:
            if extra:
                hit = not neg
                words = f"{addr} is in list {name}; assuming {' '.join(extra)} hold"
                return MatchOutcome(MATCH if hit else NOMATCH, clause, f"{clause}: {words}", assumed=True)
            if neg:
                return _no(clause, f"{clause}: {addr} is in list {name}")
            return MatchOutcome(MATCH, clause, f"{clause}: {addr} is in list {name}")
        words = f"{addr} is not in list {name} (assuming the list held nothing before this trace)"
        if neg:
            return MatchOutcome(MATCH, clause, f"{clause}: {words}", assumed=True)
        return _no(clause, f"{clause}: {words}", assumed=True)

    return [check]


def _compile_limit(match: Match) -> list[Checker]:
    clause = match.text()
    if match.module == "limit":
        burst_opt = match.option("--limit-burst")
        burst = int(burst_opt.value) if burst_opt else 5
        above = False
        mode: tuple[str, ...] = ()
        name = ""
    else:
        burst_opt = match.option("--hashlimit-burst")
        burst = int(burst_opt.value) if burst_opt else 5
        above = match.option("--hashlimit-above") is not None
        mode_opt = match.option("--hashlimit-mode")
        mode = tuple(mode_opt.value.split(",")) if mode_opt else ()
        name_opt = match.option("--hashlimit-name")
        name = name_opt.value if name_opt else ""
        if any(o.name.endswith(("-srcmask", "-dstmask")) for o in match.options) or any(
            o.name in ("--hashlimit-upto", "--hashlimit-above") and "b/" in o.value for o in match.options
        ):
            # masks and byte rates change the bucket key/cost: stay honest.
            return [_const(_assume(clause, "assuming the rate limit is not exceeded (first packet)"))]

    def check(ctx: EvalContext) -> MatchOutcome | None:
        p = ctx.packet
        if match.module == "limit":
            key: tuple[Any, ...] = ("limit", ctx.table, ctx.chain, ctx.rule_index)
        else:
            fields = {"srcip": str(p.src), "dstip": str(p.dst), "srcport": p.sport, "dstport": p.dport}
            key = ("hashlimit", name, tuple(fields.get(m) for m in mode))
        # The bucket starts full with `burst` tokens (xt_limit/nft_limit,
        # xt_hashlimit rateinfo_init); each evaluation that finds a token
        # takes one.  Within one packet's traversal (microseconds) nothing
        # is refilled, so a rule met again after `burst` hits is over the rate.
        taken = ctx.state.limit_taken.get(key, 0)
        within = taken < burst
        if within:
            ctx.state.limit_taken[key] = taken + 1
        if taken == 0:
            why = "assuming the rate limit is not exceeded (first packet)"
        elif within:
            why = f"{clause}: token {taken + 1} of a burst of {burst} (assuming the bucket was full before this packet)"
        else:
            why = f"{clause}: the burst of {burst} is used up by earlier evaluations in this trace"
        hit = within != above
        if hit:
            return MatchOutcome(MATCH, clause, why, assumed=True)
        return _no(clause, why, assumed=True)

    return [check]


def _conncount(ctx: EvalContext, key: tuple[Any, ...]) -> int:
    state = ctx.state
    p = ctx.packet
    ct = p.ct
    conn: Any = ct.entry_id if ct is not None and ct.entry_id else ("tuple", p.proto, p.src, p.dst, p.sport, p.dport)
    entries = state.connlimit.setdefault(key, [])
    now = state.jiffy
    if state.connlimit_gc.get(key) != now:
        kept = []
        for other, added in entries:
            alive = isinstance(other, int) and other in state.conntrack.entries
            if other == conn and (alive or added == now):
                return len(entries)  # already counted
            if alive or added == now:
                kept.append((other, added))
        entries[:] = kept
        state.connlimit_gc[key] = now
    entries.append((conn, now))
    return len(entries)


def _compile_connlimit(match: Match) -> list[Checker]:
    clause = match.text()
    above = match.option("--connlimit-above")
    upto = match.option("--connlimit-upto")
    opt = above or upto
    if opt is None:
        return [_const(_unknown(clause, "-m connlimit without --connlimit-above/--connlimit-upto"))]
    try:
        limit = int(opt.value)
    except ValueError:
        return [_const(_unknown(clause, f"cannot read {opt.text()}"))]
    use_dst = match.option("--connlimit-daddr") is not None
    mask_opt = match.option("--connlimit-mask")

    def check(ctx: EvalContext) -> MatchOutcome | None:
        p = ctx.packet
        addr = p.dst if use_dst else p.src
        bits = addr.max_prefixlen
        plen = int(mask_opt.value) if mask_opt is not None else bits
        key_addr = int(addr) & (((1 << bits) - 1) << (bits - plen)) & ((1 << bits) - 1)
        key = ("connlimit", ctx.table, ctx.chain, ctx.rule_index, key_addr)
        # connlimit_mt(): nf_conncount_count() adds the packet's connection
        # before counting, so a first packet counts 1.  Within the same
        # jiffy __nf_conncount_add() skips the duplicate check (list->last_gc
        # == jiffies), so each further evaluation of this rule during the
        # same traversal adds it again: 2, 3, ...  A later packet finds its
        # (now confirmed) connection in the list and adds nothing; entries
        # no longer in the table are evicted.  The result is
        # `(count > limit) ^ invert`, --connlimit-upto setting invert.
        count = _conncount(ctx, key)
        hit = count > limit if above is not None else count <= limit
        if opt.negated:
            hit = not hit
        why = f"{clause}: {count} connection(s) counted (assuming no others from the address)"
        if hit:
            return MatchOutcome(MATCH, clause, why, assumed=True)
        return _no(clause, why, assumed=True)

    return [check]


# -- small header matches -------------------------------------------------------------


def _compile_range_of(
    attr: Callable[[Packet], int], label: str, names: dict[str, str]
) -> Compiler:
    def compile_(match: Match) -> list[Checker]:
        out: list[Checker] = []
        for opt in match.options:
            op = names.get(opt.name)
            if op is None:
                out.append(_const(_unknown(opt.text(), f"netviz does not evaluate {opt.name}")))
                continue
            out.append(_cmp_checker(opt, op, attr, label))
        return out

    return compile_


def _cmp_checker(opt: Option, op: str, attr: Callable[[Packet], int], label: str) -> Checker:
    clause = opt.text()
    neg = opt.negated
    if op == "range":
        lo, hi = parse_port_range(opt.value)
    else:
        lo = hi = int(opt.value)

    def check(ctx: EvalContext) -> MatchOutcome | None:
        v = attr(ctx.packet)
        if op == "eq":
            hit = v == lo
        elif op == "gt":
            hit = v > lo
        elif op == "lt":
            hit = v < lo
        else:
            hit = lo <= v <= hi
        if hit != neg:
            return None
        return _no(clause, f"{clause}: {label} is {v}")

    return check


_TOS_NAMES = {
    "minimize-delay": 0x10, "maximize-throughput": 0x08, "maximize-reliability": 0x04,
    "minimize-cost": 0x02, "normal-service": 0x00,
}
_DSCP_CLASSES = {
    **{f"cs{i}": i * 8 for i in range(8)},
    "af11": 10, "af12": 12, "af13": 14, "af21": 18, "af22": 20, "af23": 22,
    "af31": 26, "af32": 28, "af33": 30, "af41": 34, "af42": 36, "af43": 38,
    "ef": 46, "be": 0,
}


def _compile_tos(match: Match) -> list[Checker]:
    out: list[Checker] = []
    for opt in match.options:
        if opt.name != "--tos":
            out.append(_const(_unknown(opt.text(), f"netviz does not evaluate {opt.name}")))
            continue
        text = opt.value
        if text.lower() in _TOS_NAMES:
            # Symbolic names are the old ipt_tos values, compared under 0x3f.
            value, mask = _TOS_NAMES[text.lower()], 0x3F
        else:
            value, mask = _value_mask(text, 0xFF)
        out.append(_masked_checker(opt, value, mask, lambda p: p.tos, "TOS"))
    return out


def _masked_checker(opt: Option, value: int, mask: int, attr: Callable[[Packet], int], label: str) -> Checker:
    clause = opt.text()
    neg = opt.negated

    def check(ctx: EvalContext) -> MatchOutcome | None:
        v = attr(ctx.packet)
        if ((v & mask) == value) != neg:
            return None
        return _no(clause, f"{clause}: {label} is {v:#x}")

    return check


def _compile_dscp(match: Match) -> list[Checker]:
    out: list[Checker] = []
    for opt in match.options:
        if opt.name == "--dscp":
            value = _int(opt.value)
        elif opt.name == "--dscp-class":
            value = _DSCP_CLASSES[opt.value.lower()]
        else:
            out.append(_const(_unknown(opt.text(), f"netviz does not evaluate {opt.name}")))
            continue
        out.append(_masked_checker(opt, value << 2, 0xFC, lambda p: p.tos, "TOS"))
    return out


def _compile_pkttype(match: Match) -> list[Checker]:
    opt = match.option("--pkt-type")
    if opt is None:
        return [_const(_unknown(match.text(), "-m pkttype without --pkt-type"))]
    want = opt.value.lower()
    clause = opt.text()
    neg = opt.negated

    def check(ctx: EvalContext) -> MatchOutcome | None:
        given = ctx.packet.get_extra("pkt_type")
        if given is not None:
            kind = str(given).lower()
        else:
            # skb->pkt_type comes from the link-layer destination; the IP
            # destination is what gives it away here (xt_pkttype also maps
            # looped-back packets this way).
            types = ctx.host.addr_type(ctx.packet.dst)
            kind = "multicast" if "MULTICAST" in types else "broadcast" if "BROADCAST" in types else "unicast"
        if kind == "host":
            kind = "unicast"
        if (kind == want) != neg:
            return None
        return _no(clause, f"{clause}: packet is {kind}")

    return [check]


def _compile_mac(match: Match) -> list[Checker]:
    opt = match.option("--mac-source")
    if opt is None:
        return [_const(_unknown(match.text(), "-m mac without --mac-source"))]
    want = opt.value.lower()
    clause = opt.text()
    neg = opt.negated

    def check(ctx: EvalContext) -> MatchOutcome | None:
        if ctx.hook not in _IN_HOOKS or ctx.packet.in_iface is None:
            # mac_mt(): no Ethernet header on locally generated packets.
            return _no(clause, f"{clause}: the packet has no source MAC (locally generated)")
        if ctx.packet.in_iface == "lo":
            # mac_mt(): `skb->dev->type != ARPHRD_ETHER` → false, before the
            # comparison and its inversion: ! --mac-source is false on lo too.
            return _no(clause, f"{clause}: lo is not an Ethernet device; mac never matches there")
        mac = ctx.packet.get_extra("mac")
        if mac is None:
            # Not given: the sender is taken to be some other host, whose
            # MAC is not the one named (a rule naming a MAC singles out one
            # machine).  Assumed, so the trace says it rests on a guess.
            why = f"{clause}: the packet's source MAC is not given; assuming another host's"
            if neg:
                return _assume(clause, why)
            return _no(clause, why, assumed=True)
        if (str(mac).lower() == want) != neg:
            return None
        return _no(clause, f"{clause}: source MAC is {mac}")

    return [check]


def _compile_owner(match: Match) -> list[Checker]:
    opts = [o for o in match.options if o.name in ("--uid-owner", "--gid-owner", "--socket-exists", "--suppl-groups")]
    unknown_opts = [o for o in match.options if o not in opts]
    clause = match.text()
    all_negated = all(o.negated for o in opts if o.name != "--suppl-groups")

    def check(ctx: EvalContext) -> MatchOutcome | None:
        if unknown_opts:
            return _unknown(clause, f"netviz does not evaluate {unknown_opts[0].name}")
        sent = ctx.packet.get_extra("kernel_sent")
        if not ctx.packet.is_local_origin or ctx.hook not in ("OUTPUT", "POSTROUTING") or sent == "no-socket":
            # owner_mt(): no local socket → true only if every option is negated.
            if all_negated:
                return None
            return _no(clause, f"{clause}: the packet has no local socket")
        if sent == "kernel-socket":
            # An ICMP error leaves by the kernel's own ICMP socket, which has
            # no file: a socket exists, but no uid or gid owns it.
            for o in opts:
                if o.name == "--suppl-groups":
                    continue
                hit = o.name == "--socket-exists"
                if hit == o.negated:
                    return _no(o.text(), f"{o.text()}: sent by the kernel's ICMP socket (no owner)")
            return None
        any_assumed = False
        for o in opts:
            if o.name == "--suppl-groups":
                continue
            if o.name == "--socket-exists":
                hit = ctx.packet.get_extra("socket", True) is not False
                shown = "a socket exists"
            else:
                key = "uid" if o.name == "--uid-owner" else "gid"
                have = ctx.packet.get_extra(key)
                assumed = have is None
                if have is None:
                    # Not given: the sending process is taken to run as root,
                    # as the kernel check's sockets (and most daemons) do.
                    have = 0
                lo, hi = _id_range(o.value)
                hit = _id_in(have, lo, hi)
                shown = f"{key} is {have}" + (" (assumed: not given, root)" if assumed else "")
                if assumed:
                    any_assumed = True
            if hit == o.negated:
                return _no(o.text(), f"{o.text()}: {shown}", assumed=any_assumed)
        if any_assumed:
            return _assume(clause, f"{clause}: the sender's uid/gid is not given; assuming root (0)")
        return None

    return [check]


def _id_range(text: str) -> tuple[str, str]:
    lo, _, hi = text.partition("-")
    return lo, hi or lo


def _id_in(have: Any, lo: str, hi: str) -> bool:
    if str(have) == lo:
        return True
    try:
        return int(lo) <= int(have) <= int(hi)
    except ValueError:
        return False


def _compile_physdev(match: Match) -> list[Checker]:
    # physdev_mt() (net/netfilter/xt_physdev.c): the bridge ports of a packet
    # that br_netfilter handed to the IP hooks (extras physin/physout, set by
    # the bridge path of the pipeline).
    opts = {o.name: o for o in match.options}

    def names_match(pattern: str, name: str) -> bool:
        return name.startswith(pattern[:-1]) if pattern.endswith("+") else name == pattern

    def check(ctx: EvalContext) -> MatchOutcome | None:
        indev = ctx.packet.get_extra("physin")
        outdev = ctx.packet.get_extra("physout")
        if indev is None:
            # No bridge info: only options that are all negated match.
            plain = [o for o in match.options if not o.negated]
            if plain:
                return _no(plain[0].text(), f"{plain[0].text()}: the packet is not bridged (it did not come through a bridge port)")
            return None
        for name, have, yes, no in (
            ("--physdev-is-bridged", outdev, "is bridged", "is not bridged (it is routed)"),
            ("--physdev-is-in", indev, "came in through a bridge port", "did not come in through a bridge port"),
            ("--physdev-is-out", outdev, "leaves through a bridge port", "does not leave through a bridge port"),
        ):
            opt = opts.get(name)
            if opt is not None and (have is not None) == opt.negated:
                return _no(opt.text(), f"{opt.text()}: the packet {yes if have is not None else no}")
        opt = opts.get("--physdev-in")
        if opt is not None and names_match(opt.value, str(indev)) == opt.negated:
            return _no(opt.text(), f"{opt.text()}: the frame came in through {indev}")
        opt = opts.get("--physdev-out")
        # No output port (routed, not bridged): never a match, negated or not.
        if opt is not None and outdev is None:
            return _no(opt.text(), f"{opt.text()}: the packet does not leave through a bridge port")
        if opt is not None and names_match(opt.value, str(outdev)) == opt.negated:
            return _no(opt.text(), f"{opt.text()}: the frame leaves through {outdev}")
        return None

    return [check]


def _compile_rpfilter(match: Match) -> list[Checker]:
    invert = match.option("--invert") is not None
    loose = match.option("--loose") is not None
    validmark = match.option("--validmark") is not None
    accept_local = match.option("--accept-local") is not None
    clause = match.text()

    def check(ctx: EvalContext) -> MatchOutcome | None:
        p = ctx.packet
        iface = in_name(ctx)
        ok: bool
        if iface == "lo" or p.in_iface is None:
            # rpfilter_is_loopback(): looped-back packets always pass.
            ok, why = True, "looped-back packet"
        elif p.src.version == 4 and int(p.src) == 0 and (
            p.dst == ipaddress.IPv4Address("255.255.255.255") or p.dst in ipaddress.IPv4Network("224.0.0.0/24")
        ):
            ok, why = True, "0.0.0.0 source to broadcast/local multicast"
        else:
            # rpfilter_lookup_reverse(): route the source back; it must be
            # a unicast (or, with --accept-local, local) route whose device
            # is the input interface, or any device with --loose.
            route = ctx.host.route(p.src, mark=p.mark if validmark else 0)
            if route.kind == "local" and accept_local:
                # rpfilter_lookup_reverse(): a local route is allowed, but its
                # device must still be the input one (or --loose).
                # The local table's route for an interface address has that
                # interface as its device ("local A dev eth0"); 127/8 has lo.
                dev = next((i.name for i in ctx.host.interfaces if any(a.ip == p.src for a in i.addrs)), "lo")
                ok = dev == iface or loose
                why = f"{p.src} is local (--accept-local) on {dev}" + ("" if ok else f", packet came in on {iface}")
            elif route.kind != "unicast":
                ok, why = False, f"reverse route to {p.src} is {route.kind}"
            elif route.dev == iface or loose:
                ok, why = True, f"reverse route to {p.src} is via {route.dev}"
            else:
                ok, why = False, f"reverse route to {p.src} is via {route.dev}, packet came in on {iface}"
        if ok != invert:
            return MatchOutcome(MATCH, clause, f"{clause}: {why}") if invert else None
        return _no(clause, f"{clause}: {why}")

    return [check]


def _compile_helper(match: Match) -> list[Checker]:
    opt = match.option("--helper")
    clause = match.text()
    neg = bool(opt and opt.negated)

    def check(ctx: EvalContext) -> MatchOutcome | None:
        ct, state = ct_view(ctx.packet)
        # helper_mt(): only an expected connection (one with a master that
        # has a helper) can match; anything else gives the inverted result.
        if ct is None or state != "RELATED":
            if neg:
                return None
            return _no(clause, f"{clause}: the connection was not opened by a helper ({state})")
        return _unknown(clause, f"{clause}: the dump does not say which helper expected this RELATED connection")

    return [check]


def _compile_ext_header(match: Match) -> list[Checker]:
    # rt/frag/hbh/dst/ah (IPv6): ipv6_find_hdr() finds no such extension
    # header in the packets netviz builds → false, whatever `!` is inside.
    clause = match.text()
    header = {"rt": "routing", "frag": "fragment", "hbh": "hop-by-hop options", "dst": "destination options", "ah": "authentication"}[match.module]

    def check(ctx: EvalContext) -> MatchOutcome | None:
        if match.module == "ah" and ctx.packet.family is Family.IPV4:
            if ctx.packet.proto == 51:
                return _unknown(clause, f"{clause}: the AH SPI is not known")
            return _no(clause, f"{clause}: packet is {proto_name(ctx.packet.proto)}, not ah")
        return _no(clause, f"{clause}: the packet has no {header} header")

    return [check]


def _compile_esp(match: Match) -> list[Checker]:
    clause = match.text()

    def check(ctx: EvalContext) -> MatchOutcome | None:
        if ctx.packet.proto != 50:
            return _no(clause, f"{clause}: packet is {proto_name(ctx.packet.proto)}, not esp")
        return _unknown(clause, f"{clause}: the ESP SPI is not known")

    return [check]


def _compile_policy(match: Match) -> list[Checker]:
    # IPsec policy: netviz packets are never IPsec-transformed, so
    # `--pol none` holds and `--pol ipsec` does not.
    pol = match.option("--pol")
    clause = match.text()
    want = pol.value if pol else "none"
    extra = [o for o in match.options if o.name not in ("--pol", "--dir", "--strict")]
    if want == "none":
        return [_const(MatchOutcome(MATCH, clause, f"{clause}: the packet is not IPsec-processed"))]
    if extra and all(o.negated for o in extra):
        return [_const(_unknown(clause, f"{clause}: netviz does not model IPsec"))]
    return [_const(_no(clause, f"{clause}: the packet is not IPsec-processed"))]


# -- devgroup / ecn / tcpmss / connbytes ---------------------------------------


def _compile_devgroup(match: Match) -> list[Checker]:
    out: list[Checker] = []
    for opt in match.options:
        if opt.name not in ("--src-group", "--dst-group"):
            out.append(_const(_unknown(opt.text(), f"netviz does not evaluate {opt.name}")))
            continue
        value, mask = _value_mask(opt.value)
        out.append(_devgroup_checker(opt, value, mask, opt.name == "--src-group"))
    return out


def _devgroup_checker(opt: Option, value: int, mask: int, src: bool) -> Checker:
    clause = opt.text()

    def check(ctx: EvalContext) -> MatchOutcome | None:
        name = in_name(ctx) if src else out_name(ctx)
        # devgroup_mt(): ((group ^ value) & mask) compared with 0.  Every
        # device is in group 0 ("default") unless `ip link set group` says
        # otherwise; the host profile has no groups.
        group = 0
        hit = ((group ^ value) & mask) == 0
        why = f"{clause}: {name or 'the device'} is assumed in group {group} (default)"
        if hit != opt.negated:
            return MatchOutcome(MATCH, clause, why, assumed=True)
        return _no(clause, why, assumed=True)

    return check


def _compile_ecn(match: Match) -> list[Checker]:
    out: list[Checker] = []
    for opt in match.options:
        clause = opt.text()
        if opt.name == "--ecn-ip-ect":
            # ecn_mt_ip(): (tos & INET_ECN_MASK) == ip_ect
            out.append(_masked_checker(opt, int(opt.value), 0x3, lambda p: p.tos, "ECN field (TOS & 3)"))
        elif opt.name in ("--ecn-tcp-cwr", "--ecn-tcp-ece"):
            flag = "CWR" if opt.name == "--ecn-tcp-cwr" else "ECE"
            out.append(_proto_guard(6, "tcp", clause))
            out.append(_tcp_flag_checker(opt, flag))
        else:
            out.append(_const(_unknown(clause, f"netviz does not evaluate {opt.name}")))
    return out


def _tcp_flag_checker(opt: Option, flag: str) -> Checker:
    clause = opt.text()

    def check(ctx: EvalContext) -> MatchOutcome | None:
        if (flag in ctx.packet.tcp_flags) != opt.negated:
            return None
        return _no(clause, f"{clause}: {flag} is {'set' if flag in ctx.packet.tcp_flags else 'clear'}")

    return check


# What Linux puts in a SYN (and the kernel check's hand-built TCP headers
# carry whenever the segment has room): MSS, SACK permitted, timestamps, NOP,
# window scale -- 20 bytes of options.
LINUX_TCP_OPTIONS = (2, 4, 8, 1, 3)


def tcp_options(ctx: EvalContext) -> tuple[tuple[int, ...], int | None, bool]:
    """(option kinds, MSS, assumed) of the packet's TCP header."""
    p = ctx.packet
    given = p.get_extra("tcp_options")
    if given is not None:
        kinds = tuple(int(k) for k in given)
        mss = p.get_extra("mss")
        return kinds, (int(mss) if mss is not None else (1460 if 2 in kinds else None)), False
    head = 20 if p.family is Family.IPV4 else 40
    if p.length - head < 40:
        return (), None, True
    mss = 1460
    local = p.is_local_origin or p.in_iface == "lo"
    if local and "SYN" in p.tcp_flags and p.length == head + 40 and not p.tos & 3:
        # A socket's SYN (and SYN-ACK) advertises the route MTU minus the
        # headers: 65495 over lo (MTU 65536), 1460/1440 over a 1500-byte
        # link -- also on the way back in from lo.
        out = ctx.packet.out_iface or ""
        if out == "lo" or ctx.packet.in_iface == "lo":
            # IPv4's 16-bit total length caps it below MTU - 40 (65496).
            mss = 65495 if head == 20 else 65536 - head - 20
        elif p.family is not Family.IPV4:
            mss = 1440
    return LINUX_TCP_OPTIONS, mss, True


def _tcp_option_checker(opt: Option) -> Checker:
    clause = opt.text()
    kind = int(opt.value)

    def check(ctx: EvalContext) -> MatchOutcome | None:
        kinds, _, assumed = tcp_options(ctx)
        have = kind in kinds
        why = f"{clause}: options {','.join(map(str, kinds)) or 'none'}" + (" (assumed Linux defaults)" if assumed else "")
        if have != opt.negated:
            return MatchOutcome(MATCH, clause, why, assumed=assumed)
        return _no(clause, why, assumed=assumed)

    return check


def _compile_tcpmss(match: Match) -> list[Checker]:
    opt = match.option("--mss")
    if opt is None:
        return [_const(_unknown(match.text(), "-m tcpmss without --mss"))]
    lo, hi = parse_port_range(opt.value)
    clause = opt.text()

    def check(ctx: EvalContext) -> MatchOutcome | None:
        if ctx.packet.proto != 6:
            return _no(clause, f"{clause}: not TCP")
        _, mss, assumed = tcp_options(ctx)
        if mss is None:
            # tcpmss_mt(): no MSS option → `return info->invert`
            hit = opt.negated
            why = f"{clause}: the segment has no MSS option"
        else:
            hit = (lo <= mss <= hi) != opt.negated
            why = f"{clause}: MSS is {mss}" + (" (assumed Linux default)" if assumed else "")
        if hit:
            return MatchOutcome(MATCH, clause, why, assumed=assumed)
        return _no(clause, why, assumed=assumed)

    return [check]


def _compile_connbytes(match: Match) -> list[Checker]:
    opt = match.option("--connbytes")
    dir_opt = match.option("--connbytes-dir")
    mode_opt = match.option("--connbytes-mode")
    clause = match.text()
    if opt is None or dir_opt is None or mode_opt is None:
        return [_const(_unknown(clause, "-m connbytes needs --connbytes, --connbytes-dir and --connbytes-mode"))]
    first, _, last = opt.value.partition(":")
    lo = int(first or 0)
    hi = int(last) if last else 2**64 - 1
    if opt.negated:
        # libxt_connbytes stores `! a:b` as from=b, to=a.
        lo, hi = hi, lo
    direction = dir_opt.value.lower()
    mode = mode_opt.value.lower()

    def check(ctx: EvalContext) -> MatchOutcome | None:
        ct, state = ct_view(ctx.packet)
        if ct is None or ct.template:
            # connbytes_mt(): no entry, or no accounting extension (a template)
            return _no(clause, f"{clause}: no conntrack entry ({state})")
        # nf_conntrack_in() accounted the packet (__nf_ct_refresh_acct:
        # bytes = skb->len).  A declared entry is taken as this first packet.
        if ct.entry_id:
            counts = {"original": (ct.orig_packets, ct.orig_bytes), "reply": (ct.reply_packets, ct.reply_bytes),
                      "both": (ct.orig_packets + ct.reply_packets, ct.orig_bytes + ct.reply_bytes)}
            packets, nbytes = counts[direction]
        else:
            packets = {"original": 1, "reply": 0, "both": 1}[direction]
            nbytes = ctx.packet.length if direction != "reply" else 0
        if mode == "packets":
            what = packets
        elif mode == "bytes":
            what = nbytes
        else:
            what = nbytes // packets if packets else 0
        if hi >= lo:
            hit = lo <= what <= hi
        else:
            hit = what < hi or what > lo
        why = f"{clause}: the connection has {packets} packet(s), {nbytes} bytes {direction}"
        if hit:
            return MatchOutcome(MATCH, clause, why, assumed=True)
        return _no(clause, why, assumed=True)

    return [check]


def _compile_always(why: str) -> Compiler:
    def compile_(match: Match) -> list[Checker]:
        return []

    return compile_


def _compile_unknown(why: str) -> Compiler:
    def compile_(match: Match) -> list[Checker]:
        clause = match.text()
        return [_const(_unknown(clause, f"{clause}: {why}"))]

    return compile_


def _compile_nfacct(match: Match) -> list[Checker]:
    return []


COMPILERS: dict[str, Compiler] = {
    "": _compile_basic,
    "tcp": _compile_l4(6, "tcp"),
    "udp": _compile_l4(17, "udp"),
    "sctp": _compile_l4(132, "sctp"),
    "dccp": _compile_l4(33, "dccp"),
    "udplite": _compile_l4(136, "udplite"),
    "icmp": _compile_icmp(v6=False),
    "icmp6": _compile_icmp(v6=True),
    "multiport": _compile_multiport,
    "iprange": _compile_iprange,
    "conntrack": _compile_conntrack,
    "state": _compile_state,
    "mark": _compile_mark,
    "connmark": _compile_mark,
    "addrtype": _compile_addrtype,
    "set": _compile_set,
    "comment": _compile_always("comments never affect matching"),
    "nfacct": _compile_nfacct,
    "statistic": _compile_statistic,
    "recent": _compile_recent,
    "limit": _compile_limit,
    "hashlimit": _compile_limit,
    "connlimit": _compile_connlimit,
    "length": _compile_range_of(lambda p: p.length, "length", {"--length": "range"}),
    "ttl": _compile_range_of(lambda p: p.ttl, "TTL", {"--ttl-eq": "eq", "--ttl-gt": "gt", "--ttl-lt": "lt"}),
    "hl": _compile_range_of(lambda p: p.ttl, "hop limit", {"--hl-eq": "eq", "--hl-gt": "gt", "--hl-lt": "lt"}),
    "tos": _compile_tos,
    "dscp": _compile_dscp,
    "pkttype": _compile_pkttype,
    "mac": _compile_mac,
    "owner": _compile_owner,
    "physdev": _compile_physdev,
    "rpfilter": _compile_rpfilter,
    "helper": _compile_helper,
    "rt": _compile_ext_header,
    "frag": _compile_ext_header,
    "hbh": _compile_ext_header,
    "dst": _compile_ext_header,
    "ah": _compile_ext_header,
    "esp": _compile_esp,
    "policy": _compile_policy,
    "ipv6header": _compile_unknown("netviz does not model IPv6 extension-header layouts"),
    "socket": _compile_unknown("depends on the host's open sockets"),
    "devgroup": _compile_devgroup,
    "u32": _compile_unknown("netviz does not evaluate raw u32 byte tests"),
    "cgroup": _compile_unknown("depends on the sending process's cgroup"),
    "cpu": _compile_unknown("depends on the CPU handling the packet"),
    "quota": _compile_unknown("depends on the bytes already counted"),
    "time": _compile_unknown("depends on the time of day"),
    "string": _compile_unknown("depends on the packet payload"),
    "bpf": _compile_unknown("netviz does not run BPF programs"),
    "connbytes": _compile_connbytes,
    "tcpmss": _compile_tcpmss,
    "ecn": _compile_ecn,
    "realm": _compile_unknown("depends on routing realms"),
    "cluster": _compile_unknown("depends on cluster node hashing"),
    "ipvs": _compile_unknown("depends on IPVS state"),
    "osf": _compile_unknown("depends on passive OS fingerprinting"),
    "condition": _compile_unknown("depends on a runtime condition flag"),
}


def _make_evaluator(module: str) -> Callable[[Match, EvalContext], MatchOutcome]:
    def evaluate(match: Match, ctx: EvalContext) -> MatchOutcome:
        return evaluate_match(match, ctx)

    evaluate.__name__ = f"evaluate_{module or 'basic'}"
    return evaluate


MATCHES: dict[str, Callable[[Match, EvalContext], MatchOutcome]] = {
    module: _make_evaluator(module) for module in COMPILERS
}

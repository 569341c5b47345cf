"""iptables-save / iptables-restore and ipset save / list text → Ruleset.

The grammar is iptables-restore's (iptables/iptables-restore.c,
iptables/xshared.c): `*table`, `:CHAIN POLICY [p:b]`, `[p:b] -A …`,
`COMMIT`, plus the restore verbs -N -P -I -D -R -F -X -Z -E.  Every rule keeps
its source line number and text so later stages can point back at the upload.

Deliberate departures from iptables-restore, all in the direction of refusing
input a user most likely did not mean:
- an unterminated `"` is an error (iptables silently takes the rest of the line);
- host names in -s/-d are refused (iptables would resolve them through DNS);
- a chain declared twice in one table is an error (iptables-nft accepts it,
  legacy iptables-restore fails with "Chain already exists");
- a counter above 2^64-1 is an error (iptables-restore's strtoull clamps it
  to 2^64-1; no iptables-save writes one, kernel counters are u64).
Comma-separated -s/-d lists are expanded into one rule per address pair, in
the order iptables appends them (every source, then every destination).
Where iptables-nft and iptables-legacy differ, the nft backend is followed: a
policy on a user chain (`:FOO ACCEPT`) is accepted and ignored, and a jump to
a chain declared later in the same table is resolved at COMMIT.  Option
values are kept as written (`--dport 4:4`, `--syn`); their meaning is the
matchers' business, so only range and keyword checks happen here
(netviz.engine.extcheck).
"""

from __future__ import annotations

import gc
import ipaddress
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from operator import itemgetter

from netviz.engine.extcheck import KNOWN_MATCHES, check_rule, clear_check_cache
from netviz.engine.limits import ChainGraphError, LoadLimits, check_chain_graph
from netviz.engine.ruleset import (
    BUILTIN_CHAINS,
    Chain,
    Counters,
    Family,
    IPSet,
    Match,
    Option,
    Rule,
    Ruleset,
    SetMember,
    Table,
    Target,
)

__all__ = [
    "KNOWN_TARGETS",
    "ParseError",
    "parse_ipset_save",
    "parse_iptables_save",
    "parse_ruleset",
    "to_iptables_save",
    "tokenize",
]


class ParseError(ValueError):
    def __init__(self, line: int, column: int, reason: str, text: str = "") -> None:
        self.line = line
        self.column = column
        self.reason = reason
        self.text = text
        super().__init__(f"line {line}, column {column}: {reason}")


# Target extensions of iptables (extensions/libxt_*.c, libipt_*.c,
# libip6t_*.c) and xtables-addons.  A -j to any other name must be a chain of
# the same table; xtables_find_target(…, XTF_TRY_LOAD) decides the same way.
KNOWN_TARGETS: frozenset[str] = frozenset(
    {
        "ACCEPT",
        "DROP",
        "RETURN",
        "QUEUE",
        "AUDIT",
        "CHECKSUM",
        "CLASSIFY",
        "CLUSTERIP",
        "CONNMARK",
        "CONNSECMARK",
        "CT",
        "DNAT",
        "DNPT",
        "DSCP",
        "ECN",
        "HL",
        "HMARK",
        "IDLETIMER",
        "LED",
        "LOG",
        "MARK",
        "MASQUERADE",
        "NETMAP",
        "NFLOG",
        "NFQUEUE",
        "NOTRACK",
        "RATEEST",
        "REDIRECT",
        "REJECT",
        "SECMARK",
        "SET",
        "SNAT",
        "SNPT",
        "SYNPROXY",
        "TCPMSS",
        "TCPOPTSTRIP",
        "TEE",
        "TOS",
        "TPROXY",
        "TRACE",
        "TTL",
        "ULOG",
        "MIRROR",
        "SAME",
        # xtables-addons
        "ACCOUNT",
        "CHAOS",
        "DELUDE",
        "DHCPMAC",
        "DNETMAP",
        "ECHO",
        "IPMARK",
        "LOGMARK",
        "PROTO",
        "SYSRQ",
        "STEAL",
        "TARPIT",
    }
)

# Targets whose kernel checkentry refuses any other table
# (net/netfilter/xt_nat.c, xt_CT.c, xt_TPROXY.c: `.table = "nat"` …).
_TARGET_TABLE = {
    "DNAT": "nat",
    "SNAT": "nat",
    "MASQUERADE": "nat",
    "REDIRECT": "nat",
    "NETMAP": "nat",
    "CT": "raw",
    "NOTRACK": "raw",
    "TPROXY": "mangle",
}

_TABLES = frozenset(BUILTIN_CHAINS)

# /etc/protocols (netbase) primary names, which iptables-save prints
# (proto_to_name → getprotobynumber), plus the aliases xtables_chain_protos
# accepts on input.
_PROTO_NUMBERS: dict[str, int] = {
    "hopopt": 0,
    "icmp": 1,
    "igmp": 2,
    "ggp": 3,
    "ipencap": 4,
    "st": 5,
    "tcp": 6,
    "egp": 8,
    "igp": 9,
    "pup": 12,
    "udp": 17,
    "hmp": 20,
    "xns-idp": 22,
    "rdp": 27,
    "iso-tp4": 29,
    "dccp": 33,
    "xtp": 36,
    "ddp": 37,
    "idpr-cmtp": 38,
    "ipv6": 41,
    "ipv6-route": 43,
    "ipv6-frag": 44,
    "idrp": 45,
    "rsvp": 46,
    "gre": 47,
    "esp": 50,
    "ah": 51,
    "skip": 57,
    "ipv6-icmp": 58,
    "ipv6-nonxt": 59,
    "ipv6-opts": 60,
    "rspf": 73,
    "vmtp": 81,
    "eigrp": 88,
    "ospf": 89,
    "ax.25": 93,
    "ipip": 94,
    "etherip": 97,
    "encap": 98,
    "pim": 103,
    "ipcomp": 108,
    "vrrp": 112,
    "l2tp": 115,
    "isis": 124,
    "sctp": 132,
    "fc": 133,
    "mobility-header": 135,
    "udplite": 136,
    "mpls-in-ip": 137,
    "manet": 138,
    "hip": 139,
    "shim6": 140,
    "wesp": 141,
    "rohc": 142,
    "ethernet": 143,
    # aliases
    "ip": 0,
    "all": 0,
    "icmpv6": 58,
    "ipv6-mh": 135,
    "mh": 135,
    "ospfigp": 89,
}
_PROTO_NAMES: dict[int, str] = {}
for _name, _num in _PROTO_NUMBERS.items():
    _PROTO_NAMES.setdefault(_num, _name)
_PROTO_NAMES[0] = "all"

# -p PROTO loads the match of the same name when an option follows without
# -m (xtables: load_proto → xtables_find_match(proto)); ip6tables maps
# ipv6-icmp to its icmp6 match.
_IMPLICIT_MODULE = {
    "tcp": "tcp",
    "udp": "udp",
    "udplite": "udplite",
    "sctp": "sctp",
    "dccp": "dccp",
    "icmp": "icmp",
    "ipv6-icmp": "icmp6",
    "esp": "esp",
    "ah": "ah",
    "mobility-header": "mh",
}

_BASIC = {
    "-s": "-s",
    "--source": "-s",
    "--src": "-s",
    "-d": "-d",
    "--destination": "-d",
    "--dst": "-d",
    "-i": "-i",
    "--in-interface": "-i",
    "-o": "-o",
    "--out-interface": "-o",
    "-p": "-p",
    "--protocol": "-p",
    "-f": "-f",
    "--fragment": "-f",
    "--fragments": "-f",
}

_VERBS = {
    "-A": "-A",
    "--append": "-A",
    "-I": "-I",
    "--insert": "-I",
    "-D": "-D",
    "--delete": "-D",
    "-R": "-R",
    "--replace": "-R",
    "-N": "-N",
    "--new-chain": "-N",
    "-P": "-P",
    "--policy": "-P",
    "-F": "-F",
    "--flush": "-F",
    "-X": "-X",
    "--delete-chain": "-X",
    "-Z": "-Z",
    "--zero": "-Z",
    "-E": "-E",
    "--rename-chain": "-E",
}


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Option arity.  Options not listed here take every following token that does
# not look like an option, which keeps unknown extensions verbatim.
_NO_VALUE = _words(
    """--syn --socket-exists --rsource --rdest --set --rcheck --update --remove --reap --rttl
    --random --random-fully --persistent --physdev-is-bridged --physdev-is-in
    --physdev-is-out --limit-iface-in --limit-iface-out --notrack --log-uid
    --log-tcp-sequence --log-tcp-options --log-ip-options --log-macdecode
    --save-mark --restore-mark --return-nomatch --update-counters
    --update-subcounters --clamp-mss-to-pmtu --checksum-fill --queue-bypass
    --fail-open --queue-cpu-fanout --loose --validmark --accept-local --invert
    --transparent --nowildcard --restore-skmark --strict --next
    --connlimit-saddr --connlimit-daddr --exist --sack-perm --timestamp
    --ecn-tcp-remove --ecn-tcp-cwr --ecn-tcp-ece --fragres --fragfirst
    --fragmore --fraglast --rt-0-not-strict --soft --ipvs --ctmask-sink
    --hmark-rnd-sink --kerneltz --nodst"""
)
_TWO_VALUES = frozenset({"--match-set", "--tcp-flags", "--add-set", "--del-set", "--map-set"})
# (module, option) pairs whose arity differs from the option name alone:
# the pre-2.6.39 set match spelled --match-set as `--set NAME FLAGS`.
_MODULE_ARITY = {("set", "--set"): 2}
_SET_OPTIONS = frozenset({"--match-set", "--add-set", "--del-set", "--map-set"})
# options _parse_spec looks at beyond their arity
_SPECIAL_OPTIONS = _SET_OPTIONS | {"--set", "--icmpv6-type", "--reject-with"}
_ONE_VALUE = _words(
    """--comment --mark --ctstate --state --dport --sport --dports --sports
    --ports --destination-port --source-port --destination-ports
    --source-ports --icmp-type --icmpv6-type --src-type --dst-type --mode
    --probability --every --packet --limit --limit-burst --name --seconds
    --hitcount --mask --hl-eq --hl-gt --hl-lt --ttl-eq --ttl-gt --ttl-lt
    --rt-type --rt-segsleft --rt-len --mac-source --physdev-in --physdev-out
    --ctproto --ctorigsrc --ctorigdst --ctreplsrc --ctrepldst --ctorigsrcport
    --ctorigdstport --ctreplsrcport --ctrepldstport --ctstatus --ctexpire
    --ctdir --nfacct-name --to-destination --to-source --to-ports
    --reject-with --log-prefix --log-level --nflog-group --nflog-prefix
    --nflog-range --nflog-size --nflog-threshold --set-mark --set-xmark
    --and-mark --or-mark --xor-mark --zone --zone-orig --zone-reply --helper
    --ctevents --expevents --timeout --set-mss --queue-num --queue-balance
    --on-port --on-ip --tproxy-mark --set-class --set-tos --set-dscp
    --set-dscp-class --ttl-set --ttl-dec --ttl-inc --hl-set --hl-dec --hl-inc
    --nfmask --ctmask --src-range --dst-range --length --uid-owner
    --gid-owner --pkt-type --tcp-option --mss --wscale --dir --pol
    --connlimit-above --connlimit-upto --connlimit-mask --string --algo
    --hex-string --u32 --label --hashlimit --hashlimit-upto
    --hashlimit-above --hashlimit-burst --hashlimit-mode --hashlimit-name
    --hashlimit-srcmask --hashlimit-dstmask --hashlimit-htable-size
    --hashlimit-htable-max --hashlimit-htable-expire
    --hashlimit-htable-gcinterval --packets-gt --packets-lt --packets-eq
    --bytes-gt --bytes-lt --bytes-eq --tos --dscp --dscp-class --cgroup
    --path --chunk-types --to --from
    --reqid --spi --proto --mode --tunnel-src --tunnel-dst"""
)

_IFNAMSIZ = 16


class _Err(Exception):
    """Raised inside a line; `token` is an index into the line's tokens."""

    def __init__(self, token: int, reason: str) -> None:
        super().__init__(reason)
        self.token = token
        self.reason = reason


# --- tokenizer ---------------------------------------------------------------


def _tokenize_exact(s: str) -> tuple[list[str], list[int], set[int], int]:
    """add_param_to_argv (iptables/xshared.c), with token start offsets.

    Returns (tokens, starts, indices of tokens that had quotes, offset of an
    unterminated quote or -1).  As in the C code a closing quote ends the
    token, `""` is an (empty) token, and a backslash escapes only inside
    quotes; single quotes are ordinary characters.
    """
    tokens: list[str] = []
    starts: list[int] = []
    quoted_idx: set[int] = set()
    buf: list[str] = []
    quote_open = escaped = quoted = False
    start = -1
    quote_at = -1
    for pos, ch in enumerate(s):
        if quote_open:
            if escaped:
                buf.append(ch)
                escaped = False
                continue
            if ch == "\\":
                escaped = True
                continue
            if ch != '"':
                buf.append(ch)
                continue
            quote_open = False
            # closing quote: falls through to "end of token" like the C switch
        elif ch == '"':
            quote_open = quoted = True
            quote_at = pos
            if start < 0:
                start = pos
            continue
        elif ch in " \t\n":
            if not buf:
                continue
        else:
            if start < 0:
                start = pos
            buf.append(ch)
            continue
        if quoted:
            quoted_idx.add(len(tokens))
        tokens.append("".join(buf))
        starts.append(start)
        buf = []
        quoted = False
        start = -1
    if quote_open:
        return tokens, starts, quoted_idx, quote_at
    if buf:
        tokens.append("".join(buf))
        starts.append(start)
    return tokens, starts, quoted_idx, -1


def _split(s: str) -> list[str]:
    # only space and tab separate arguments (str.split() would also split
    # on \v, \f and Unicode spaces, which iptables keeps inside a token)
    return list(filter(None, s.replace("\t", " ").split(" ")))


def _tokenize_quoted(s: str) -> tuple[list[str], set[int]]:
    """_tokenize_exact for a line with balanced quotes and no backslash."""
    parts = s.split('"')
    toks: list[str] = []
    quoted: set[int] = set()
    last = len(parts) - 1
    for k in range(0, last + 1, 2):
        seg = parts[k]
        words = seg.replace("\t", " ").split(" ")
        if k == last:
            toks += filter(None, words)
            break
        # an opening quote glued to a word continues that word
        glued = words.pop()
        toks += filter(None, words)
        quoted.add(len(toks))
        toks.append(glued + parts[k + 1])
    return toks, quoted


def tokenize(s: str) -> list[str]:
    """Split one restore line into arguments exactly like iptables-restore."""
    if '"' not in s:
        return _split(s)
    if "\\" not in s and s.count('"') % 2 == 0:
        return _tokenize_quoted(s)[0]
    return _tokenize_exact(s)[0]


def _column(s: str, token: int) -> int:
    starts = _tokenize_exact(s)[1]
    if 0 <= token < len(starts):
        return starts[token] + 1
    # past the end: point just after the last character
    return len(s.rstrip()) + 1


# --- addresses ----------------------------------------------------------------

_addr_cache: dict[str, tuple[str, int]] = {}


def _ipv4_int(text: str) -> int | None:
    # strict dotted quad, like inet_pton(AF_INET): no leading zeros
    parts = text.split(".")
    if len(parts) != 4:
        return None
    value = 0
    for p in parts:
        if not (p.isdigit() and p.isascii()) or len(p) > 3 or (p[0] == "0" and len(p) > 1):
            return None
        octet = int(p)
        if octet > 255:
            return None
        value = (value << 8) | octet
    return value


# what _ipv4_int accepts: four decimal octets ≤ 255 without leading zeros
_HOST_V4 = re.compile(r"(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])")


def _ipv4_text(value: int) -> str:
    return f"{value >> 24}.{(value >> 16) & 255}.{(value >> 8) & 255}.{value & 255}"


def _norm_addr(tok: str) -> tuple[str, int]:
    """`10.0.0.1` → (`10.0.0.1/32`, 4).  Like xtables_ipparse_any the address
    is ANDed with the mask, so `10.0.0.1/8` is saved as `10.0.0.0/8`."""
    hit = _addr_cache.get(tok)
    if hit is not None:
        return hit
    host, slash, mask = tok.partition("/")
    if (not slash or mask == "32") and _HOST_V4.fullmatch(host):
        # a host address: the general case below keeps its text (net == addr)
        result = (f"{host}/32", 4)
    elif ":" in host:
        result = _norm_addr6(tok, host, slash, mask)
    else:
        addr = _ipv4_int(host)
        if addr is None:
            raise ValueError(f'bad address "{tok}"')
        if not slash:
            mask_int, mask_text = 0xFFFFFFFF, "32"
        elif mask.isdigit() and mask.isascii():
            plen = int(mask)
            if plen > 32:
                raise ValueError(f'bad mask "{mask}" in "{tok}" (at most /32)')
            mask_int, mask_text = 0xFFFFFFFF ^ ((1 << (32 - plen)) - 1), str(plen)
        else:
            mask_int_opt = _ipv4_int(mask)
            if mask_int_opt is None:
                raise ValueError(f'bad mask "{mask}" in "{tok}"')
            mask_int = mask_int_opt
            inv = 0xFFFFFFFF ^ mask_int
            # contiguous masks are printed as a prefix length (mask_to_str)
            mask_text = str(32 - inv.bit_length()) if inv & (inv + 1) == 0 else mask
        net = addr & mask_int
        result = (f"{host if net == addr else _ipv4_text(net)}/{mask_text}", 4)
    if len(_addr_cache) < 100_000:
        _addr_cache[tok] = result
    return result


def _norm_addr6(tok: str, host: str, slash: str, mask: str) -> tuple[str, int]:
    if "%" in host:
        # a scope id (fe80::1%eth0) is no address to inet_pton
        raise ValueError(f'bad address "{tok}"')
    try:
        addr = int(ipaddress.IPv6Address(host))
    except ipaddress.AddressValueError:
        raise ValueError(f'bad address "{tok}"') from None
    full = (1 << 128) - 1
    if not slash:
        mask_int, mask_text = full, "128"
    elif mask.isdigit() and mask.isascii():
        plen = int(mask)
        if plen > 128:
            raise ValueError(f'bad mask "{mask}" in "{tok}" (at most /128)')
        mask_int, mask_text = full ^ ((1 << (128 - plen)) - 1), str(plen)
    else:
        try:
            m = ipaddress.IPv6Address(mask)
        except ipaddress.AddressValueError:
            raise ValueError(f'bad mask "{mask}" in "{tok}"') from None
        mask_int = int(m)
        inv = full ^ mask_int
        mask_text = str(128 - inv.bit_length()) if inv & (inv + 1) == 0 else str(m)
    # inet_ntop's compressed form, as ip6tables-save prints it
    return f"{ipaddress.IPv6Address(addr & mask_int)}/{mask_text}", 6


# --- rule arguments -----------------------------------------------------------


# What _parse_spec returns, as a plain tuple (built once per rule):
# basic criteria by short name (-s/-d values filled in by _expand), the
# extension matches, the target, the target's token index, `-c` counters,
# source and destination address lists, the address family seen (0, 4, 6)
# and its token, token indexes of IPv6-only and IPv4-only clues (or -1), and
# the (set name, token index) pairs referenced.
_Spec = tuple[
    dict[str, Option],
    tuple[Match, ...],
    Target | None,
    int,
    Counters | None,
    list[str],
    list[str],
    int,
    int,
    int,
    int,
    list[tuple[str, int]],
]


_opt_cache: dict[tuple[str, tuple[str, ...], bool], Option] = {}
_target_cache: dict[tuple[str, bool], Target] = {}
_CACHE_LIMIT = 200_000


def _option(name: str, values: tuple[str, ...], negated: bool) -> Option:
    key = (name, values, negated)
    opt = _opt_cache.get(key)
    if opt is None:
        opt = Option(name, values, negated)
        if len(_opt_cache) < _CACHE_LIMIT:
            _opt_cache[key] = opt
    return opt


def _target(name: str, options: tuple[Option, ...], goto: bool) -> Target:
    if options:
        # hashing Options for a cache key costs more than building the Target
        return Target(name, options, goto)
    key = (name, goto)
    t = _target_cache.get(key)
    if t is None:
        t = Target(name, (), goto)
        if len(_target_cache) < _CACHE_LIMIT:
            _target_cache[key] = t
    return t


_K_BASIC, _K_MATCH, _K_JUMP, _K_GOTO, _K_COUNTERS, _K_TABLE = range(6)
_KIND: dict[str, int] = dict.fromkeys(_BASIC, _K_BASIC)
_KIND.update(
    {
        "-m": _K_MATCH,
        "--match": _K_MATCH,
        "-j": _K_JUMP,
        "--jump": _K_JUMP,
        "-g": _K_GOTO,
        "--goto": _K_GOTO,
        "-c": _K_COUNTERS,
        "--set-counters": _K_COUNTERS,
        "-t": _K_TABLE,
        "--table": _K_TABLE,
    }
)
_ARITY: dict[str, int] = dict.fromkeys(_ONE_VALUE, 1)
_ARITY.update(dict.fromkeys(_NO_VALUE, 0))
_ARITY.update(dict.fromkeys(_TWO_VALUES, 2))
# Options of the common match extensions (extensions/libxt_*.c option
# tables), to give an option to the module that defines it like getopt does.
_MODULE_OPTIONS: dict[str, frozenset[str]] = {
    "tcp": _words("--source-port --sport --destination-port --dport --syn --tcp-flags --tcp-option"),
    "udp": _words("--source-port --sport --destination-port --dport"),
    "udplite": _words("--source-port --sport --destination-port --dport"),
    "sctp": _words("--source-port --sport --destination-port --dport --chunk-types"),
    "dccp": _words("--source-port --sport --destination-port --dport --dccp-types --dccp-option"),
    "icmp": _words("--icmp-type"),
    "icmp6": _words("--icmpv6-type"),
    "comment": _words("--comment"),
    "mark": _words("--mark"),
    "connmark": _words("--mark"),
    "conntrack": _words(
        "--ctstate --ctproto --ctorigsrc --ctorigdst --ctreplsrc --ctrepldst --ctorigsrcport "
        "--ctorigdstport --ctreplsrcport --ctrepldstport --ctstatus --ctexpire --ctdir"
    ),
    "state": _words("--state"),
    "multiport": _words("--source-ports --sports --destination-ports --dports --ports"),
    "set": _words(
        "--match-set --set --return-nomatch --update-counters --update-subcounters "
        "--packets-eq --packets-lt --packets-gt --bytes-eq --bytes-lt --bytes-gt"
    ),
    "addrtype": _words("--src-type --dst-type --limit-iface-in --limit-iface-out"),
    "statistic": _words("--mode --probability --every --packet"),
    "limit": _words("--limit --limit-burst"),
    "physdev": _words("--physdev-in --physdev-out --physdev-is-in --physdev-is-out --physdev-is-bridged"),
    "recent": _words(
        "--set --rcheck --update --remove --seconds --reap --hitcount --rttl --name --rsource --rdest --mask"
    ),
    "mac": _words("--mac-source"),
    "hl": _words("--hl-eq --hl-lt --hl-gt"),
    "ttl": _words("--ttl-eq --ttl-lt --ttl-gt"),
    "rpfilter": _words("--loose --validmark --accept-local --invert"),
    "nfacct": _words("--nfacct-name"),
    "iprange": _words("--src-range --dst-range"),
    "length": _words("--length"),
    "pkttype": _words("--pkt-type"),
    "helper": _words("--helper"),
    "tcpmss": _words("--mss"),
}
_COMMENT_OPTIONS = _MODULE_OPTIONS["comment"]
_V6_MODULES = frozenset({"icmp6", "hl", "rt", "mh", "ipv6header", "frag", "hbh", "dst", "eui64"})
_V4_MODULES = frozenset({"icmp", "ttl"})


# --- shapes: replaying an earlier line's option routing ----------------------
#
# The lines of a large dump come in a few hundred shapes: kube-proxy writes
# tens of thousands of `-A KUBE-SEP-… -p tcp -m comment --comment "…" -m tcp
# -j DNAT --to-destination …` that differ only in their values.  Everything
# _parse_spec decides besides the values themselves (which clause an option
# belongs to, how many values it takes, where a `!` applies, which clues hint
# at IPv4 or IPv6) is a function of
#   - the text of each token that starts with "-" and of each `!`,
#   - which tokens were quoted,
#   - the -m module names and the -p protocol (checked through _Plan.exact),
# and, for every other token, only of it not starting with "-" (_is_value).
# The shape key of a line keeps the text of each token found in st.known and
# None for the others; a line whose unquoted tokens starting with "-" are all
# in st.known (counted: _Plan.dashes) is therefore parsed exactly like the line
# a plan was recorded from.  The first line of a shape goes through
# _parse_spec, which records in a _Plan where every clause took its values
# from; later `-A` lines of that shape are appended by _fast_rule, which
# redoes only what depends on values (address and interface checks, counters,
# building and checking each clause once per distinct values).  A line or
# value _fast_rule does not take goes back to _command_line unchanged, which
# parses it, or raises its error, exactly as it always does.

_KNOWN_BASE: dict[str, str] = {
    t: t
    for t in (
        "!",
        *_KIND,
        *_ARITY,
        *(o for opts in _MODULE_OPTIONS.values() for o in opts),
        *KNOWN_MATCHES,
        *_MODULE_OPTIONS,
        *_IMPLICIT_MODULE.values(),
        *_PROTO_NUMBERS,
    )
}
_PLAN_LIMIT = 20_000
# plans are recorded and _fast_rule used only while this is true; the
# equivalence tests (test_parser_shortcuts) turn it off for the reference parse
_SHORTCUTS = True

# _Plan.basic entries: a fixed Option, an -s/-d address list, an -i/-o name
_B_CONST, _B_ADDR, _B_IFACE = range(3)
_SAVE_ORDER = ("-s", "-d", "-i", "-o", "-p", "-f")


class _Slot:
    """One -m match (or the -j target) of a shape: the tokens its option
    values come from and the clauses already built from them, each with
    whether check_rule accepts it under the shape's -p."""

    __slots__ = ("built", "comment", "name", "ops", "values")

    def __init__(self, name: str, ops: tuple[tuple[str, bool, int, int], ...]) -> None:
        self.name = name
        self.ops = ops
        tokens = [k for _, _, first, count in ops for k in range(first, first + count)]
        # values(toks): the slot's value tokens in one C call (one token: the
        # string itself, several: a tuple; none: always the same key)
        self.values: Callable[[list[str]], object] | None = itemgetter(*tokens) if tokens else None
        self.built: dict[object, tuple[Match | Target, bool]] = {}
        # `-m comment --comment TEXT`, a new text on nearly every rule: built
        # directly instead of through the cache
        self.comment = name == "comment" and len(ops) == 1 and ops[0][:2] == ("--comment", False) and ops[0][3] == 1

    def options(self, toks: list[str]) -> tuple[Option, ...]:
        out: list[Option] = []
        for name, negated, first, count in self.ops:
            out.append(_option(name, tuple(toks[first : first + count]), negated))
        return tuple(out)


class _Plan:
    __slots__ = (
        "basic",
        "basic_built",
        "basic_saved",
        "basic_values",
        "cacheable",
        "chain_jump_ok",
        "clues",
        "counters_tok",
        "dashes",
        "exact",
        "exact_texts",
        "exact_values",
        "goto",
        "ops",
        "proto",
        "proto_negated",
        "sets",
        "slots",
        "target",
        "target_tok",
        "v4",
        "v4_fixed",
        "v6",
        "v6_fixed",
        "v6_reject",
    )

    def __init__(self) -> None:
        self.exact: list[tuple[int, str]] = []  # (token, text) a replayed line must have too
        self.basic: list[tuple[int, str, bool, int, Option | None]] = []  # (kind, name, negated, token, fixed)
        # while recording: (destination list, name, negated, first value token, value count)
        self.ops: list[tuple[list[Option], str, bool, int, int]] = []
        self.slots: tuple[_Slot, ...] = ()
        self.target: _Slot | None = None
        self.target_tok = -1
        self.goto = False
        self.counters_tok = -1
        self.sets: list[int] = []  # tokens naming an ipset
        self.v6_fixed: list[int] = []
        self.v6_reject: list[tuple[int, int]] = []  # (--reject-with token, its value token)
        self.v4_fixed: list[int] = []
        self.v6 = -1
        self.v4 = -1
        self.dashes = 0
        self.cacheable = True
        self.clues = False
        self.proto = ""
        self.proto_negated = False
        self.basic_values: Callable[[list[str]], object] | None = None
        self.basic_saved: list[tuple[int, str, bool, int, Option | None]] = []
        # whether check_rule takes a plain jump to a chain (see _fast_rule)
        self.chain_jump_ok: bool | None = None
        self.exact_values: Callable[[list[str]], object] | None = None
        self.exact_texts: object = None
        # basic-criteria values → (Match or None, address family, its token),
        # or _DECLINED when _fast_rule leaves them to _parse_spec
        self.basic_built: dict[object, tuple[Match | None, int, int]] = {}

    def option(self, dest: list[Option], name: str, negated: bool, tok: int, end: int, count: int, inline: bool) -> None:
        if inline:
            # `--dport=80`: the value is part of the option token
            self.cacheable = False
            return
        first = end - count
        self.ops.append((dest, name, negated, first, count))
        if name in _SET_OPTIONS:
            self.sets.append(first)
        elif name == "--icmpv6-type":
            self.v6_fixed.append(tok)
        elif name == "--reject-with" and count:
            self.v6_reject.append((tok, first))

    def finish(self, matches: list[tuple[str, list[Option]]], target_opts: list[Option]) -> None:
        groups: dict[int, list[tuple[str, bool, int, int]]] = {}
        for dest, name, negated, first, count in self.ops:
            groups.setdefault(id(dest), []).append((name, negated, first, count))
        self.slots = tuple(_Slot(mod, tuple(groups.get(id(opts), ()))) for mod, opts in matches)
        if self.target_tok >= 0:
            self.target = _Slot("", tuple(groups.get(id(target_opts), ())))
        self.ops = []
        # _parse_spec keeps the first clue; clues come in token order
        self.v6 = min(self.v6_fixed, default=-1)
        self.v4 = min(self.v4_fixed, default=-1)
        # anything for _fast_rule's bookkeeping beyond the addresses
        self.clues = bool(self.v6 >= 0 or self.v4 >= 0 or self.v6_reject or self.sets)
        # the basic criteria in the order iptables-save prints them
        self.basic_saved = sorted(self.basic, key=lambda entry: _SAVE_ORDER.index(entry[1]))
        tokens = [j for kind, _, _, j, _ in self.basic if kind != _B_CONST]
        self.basic_values = itemgetter(*tokens) if tokens else None
        # the -m and -p texts as one comparison
        if self.exact:
            self.exact_values = itemgetter(*[k for k, _ in self.exact])
            texts = tuple(text for _, text in self.exact)
            self.exact_texts = texts[0] if len(texts) == 1 else texts


def _parse_and_record(st: _State, toks: list[str], quoted: set[int]) -> _Spec:
    """_parse_spec(toks, quoted, 2), recording a plan for the line's shape."""
    plans = st.plans
    if len(quoted) > 1 or len(plans) >= _PLAN_LIMIT:
        return _parse_spec(toks, quoted, 2)
    qkey = next(iter(quoted)) if quoted else -1
    known = st.known
    kget = known.get
    if (qkey, *map(kget, toks)) in plans:
        # _fast_rule declined this line (a value it does not take): as always
        return _parse_spec(toks, quoted, 2)
    rec = _Plan()
    spec = _parse_spec(toks, quoted, 2, rec)
    if rec.cacheable:
        for k, t in enumerate(toks):
            if t[:1] == "-" and k not in quoted and t not in known:
                known[t] = t
        rec.dashes = sum(1 for k, t in enumerate(toks) if t[:1] == "-" and k not in quoted)
        proto = spec[0].get("-p")
        rec.proto = proto.values[0] if proto is not None else ""
        rec.proto_negated = proto is not None and proto.negated
        plans[(qkey, *map(kget, toks))] = rec
    return spec


def _is_value(tok: str) -> bool:
    # a following token is an option value unless it looks like an option
    # (negative numbers such as "-1" are values)
    return tok[:1] != "-" or len(tok) == 1 or tok[1].isdigit()


def _parse_spec(toks: list[str], quoted: set[int], i: int, rec: _Plan | None = None) -> _Spec:
    # `rec`, when given, records where each clause took its values from, so
    # later lines of the same shape can be replayed (see _Plan)
    n = len(toks)
    basic: dict[str, Option] = {}
    matches: list[tuple[str, list[Option]]] = []
    cur: list[Option] | None = None
    cur_module = ""
    target_name: str | None = None
    target_goto = False
    target_tok = -1
    target_opts: list[Option] = []
    counters: Counters | None = None
    saddrs: list[str] = []
    daddrs: list[str] = []
    addr_family = 0
    addr_tok = -1
    v6_hint = -1
    v4_hint = -1
    sets: list[tuple[str, int]] = []
    proto = ""
    implicit: list[Option] | None = None
    neg = -1
    kinds = _KIND
    arities = _ARITY
    opt_cache = _opt_cache
    owned: frozenset[str] | None = None  # options of the current match, if known
    while i < n:
        t = toks[i]
        if t == "!" and i not in quoted:
            if neg >= 0:
                raise _Err(i, 'two "!" in a row')
            neg = i
            i += 1
            continue
        if t[:1] != "-" or t == "-" or i in quoted:
            raise _Err(i, f'unexpected argument "{t}"')
        kind = kinds.get(t)
        if kind is None:
            # an extension option: --dport 80, --comment "…", --syn
            if "=" in t:
                name, eq, inline = t.partition("=")
            else:
                name, eq, inline = t, "", ""
            dest = cur
            dest_module = cur_module
            if cur is None or (owned is not None and name not in owned):
                # getopt looks the option up among every loaded extension,
                # and loads the -p protocol's match for an unknown one
                # (xtables: command_default → load_proto)
                dest = None
                for mod, opts in reversed(matches):
                    if name in _MODULE_OPTIONS.get(mod, ()):
                        dest, dest_module = opts, mod
                        break
                if dest is None:
                    module = _IMPLICIT_MODULE.get(proto)
                    if module is not None and name in _MODULE_OPTIONS.get(module, (name,)):
                        if implicit is None:
                            implicit = []
                            matches.append((module, implicit))
                        dest, dest_module = implicit, module
                        if cur is None:
                            cur, cur_module = implicit, module
                            owned = _MODULE_OPTIONS.get(module)
                    elif cur is not None:
                        # an option of an extension we have no table for
                        for mod, opts in reversed(matches):
                            if mod not in _MODULE_OPTIONS:
                                dest, dest_module = opts, mod
                                break
                        else:
                            raise _Err(i, f'unknown option "{name}" for -m {cur_module}')
                    elif t[1] != "-":
                        raise _Err(i, f'unknown option "{t}"')
                    else:
                        raise _Err(
                            i,
                            f'unknown option "{name}" (no -m module or -p protocol before it)',
                        )
            negated = neg >= 0
            neg = -1
            arity = arities.get(name, -1)
            if dest_module == "set":
                arity = _MODULE_ARITY.get((dest_module, name), arity)
            j = i + 1
            if eq:
                values: tuple[str, ...] = (inline,)
            elif arity == 0:
                values = ()
            else:
                if (
                    j + 1 < n
                    and toks[j] == "!"
                    and not negated
                    and j not in quoted
                    and (_is_value(toks[j + 1]) or j + 1 in quoted)
                ):
                    # old intrapositioned negation: `--dport ! 80`
                    negated = True
                    j += 1
                if arity == 1:
                    # getopt's required_argument: the next argument, whatever
                    # it looks like (`--comment -x`)
                    if j >= n:
                        raise _Err(j, f"option {name} requires a value")
                    values = (toks[j],)
                    j += 1
                elif arity == 2:
                    # the extension takes a second argument unless it looks
                    # like an option (libxt_set, libxt_tcp: "requires two args")
                    if j + 1 >= n or (j + 1 not in quoted and (toks[j + 1] == "!" or not _is_value(toks[j + 1]))):
                        raise _Err(min(j + 1, n), f"option {name} requires 2 values")
                    values = (toks[j], toks[j + 1])
                    j += 2
                else:
                    want = arity if arity > 0 else 1 << 30
                    collected: list[str] = []
                    while len(collected) < want and j < n:
                        v = toks[j]
                        if j not in quoted and (v == "!" or not _is_value(v)):
                            break
                        collected.append(v)
                        j += 1
                    if arity > 0 and len(collected) < arity:
                        raise _Err(j, f"option {name} requires {arity} values")
                    values = tuple(collected)
            if name not in _SPECIAL_OPTIONS:
                pass
            elif name in _SET_OPTIONS:
                sets.append((values[0], j - len(values)))
            elif name == "--set" and dest_module == "set":
                # the set match's pre-2.6.39 spelling of --match-set
                name = "--match-set"
                sets.append((values[0], j - len(values)))
            elif name[:8] == "--icmpv6" or (name == "--reject-with" and values and values[0][:5] == "icmp6"):
                v6_hint = i if v6_hint < 0 else v6_hint
            assert dest is not None  # every branch above sets it or raises
            if rec is not None:
                rec.option(dest, name, negated, i, j, len(values), bool(eq))
            key = (name, values, negated)
            opt = opt_cache.get(key)
            if opt is None:
                opt = _option(name, values, negated)
            dest.append(opt)
            i = j
            continue
        if kind == _K_BASIC:
            basic_name = _BASIC[t]
            if basic_name in basic:
                raise _Err(i, f"multiple {basic_name} options are not allowed")
            negated = neg >= 0
            neg = -1
            if basic_name == "-f":
                basic["-f"] = _option("-f", (), negated)
                v4_hint = i if v4_hint < 0 else v4_hint
                if rec is not None:
                    rec.basic.append((_B_CONST, "-f", negated, -1, basic["-f"]))
                    rec.v4_fixed.append(i)
                i += 1
                continue
            j = i + 1
            if j < n and toks[j] == "!" and j not in quoted and not negated:
                # iptables ≤ 1.4.2 wrote `-s ! 10.0.0.1`
                negated = True
                j += 1
            if j >= n:
                raise _Err(j, f"option {t} requires a value")
            value = toks[j]
            if basic_name == "-s" or basic_name == "-d":
                out = saddrs if basic_name == "-s" else daddrs
                for part in value.split(","):
                    try:
                        addr, fam = _norm_addr(part)
                    except ValueError as e:
                        raise _Err(j, str(e)) from None
                    if addr_family == 0:
                        addr_family = fam
                        addr_tok = j
                    elif fam != addr_family:
                        raise _Err(j, f'address "{part}" mixes IPv4 and IPv6 in one rule')
                    out.append(addr)
                # the address itself is filled in by _expand
                basic[basic_name] = _option(basic_name, (), negated)
                if rec is not None:
                    rec.basic.append((_B_ADDR, basic_name, negated, j, None))
            elif basic_name == "-p":
                p = value.lower()
                if p.isdigit():
                    num = int(p)
                    if num > 255:
                        raise _Err(j, f'unknown protocol "{value}"')
                    p = _PROTO_NAMES.get(num, p)
                else:
                    num_opt = _PROTO_NUMBERS.get(p)
                    if num_opt is None:
                        raise _Err(j, f'unknown protocol "{value}"')
                    num = num_opt
                    p = _PROTO_NAMES[num]
                if num == 0:
                    if negated:
                        # xtables: "rule would never match protocol"
                        raise _Err(j, "! -p all would never match")
                else:
                    basic["-p"] = _option("-p", (p,), negated)
                    if num == 58:
                        v6_hint = j if v6_hint < 0 else v6_hint
                proto = p if num else ""
                if rec is not None:
                    # the protocol steers option routing: replay only the same one
                    rec.exact.append((j, value))
                    if num:
                        rec.basic.append((_B_CONST, "-p", negated, -1, basic["-p"]))
                    if num == 58:
                        rec.v6_fixed.append(j)
            else:  # -i / -o
                if len(value) >= _IFNAMSIZ:
                    raise _Err(j, f'interface name "{value}" is longer than 15 characters')
                # `-i +` matches every interface; iptables-save omits it
                if value != "+" or negated:
                    basic[basic_name] = _option(basic_name, (value,), negated)
                if rec is not None:
                    rec.basic.append((_B_IFACE, basic_name, negated, j, None))
            i = j + 1
        elif kind == _K_MATCH:
            if neg >= 0:
                raise _Err(neg, 'unexpected "!" before -m')
            if i + 1 >= n:
                raise _Err(i + 1, "-m requires a module name")
            cur_module = toks[i + 1]
            if rec is not None:
                rec.exact.append((i + 1, cur_module))
            if cur_module == "comment" and i + 3 < n and toks[i + 2] == "--comment" and toks[i + 3] != "!":
                # `-m comment --comment TEXT` is on nearly every rule of a
                # kube-proxy or Calico dump: the general path, in one step
                text_value = toks[i + 3]
                key = ("--comment", (text_value,), False)
                opt = opt_cache.get(key)
                if opt is None:
                    opt = _option("--comment", (text_value,), False)
                cur = [opt]
                owned = _COMMENT_OPTIONS
                matches.append(("comment", cur))
                if rec is not None:
                    rec.option(cur, "--comment", False, i + 2, i + 4, 1, False)
                i += 4
                continue
            cur = []
            owned = _MODULE_OPTIONS.get(cur_module)
            matches.append((cur_module, cur))
            if cur_module in _V6_MODULES:
                v6_hint = i + 1 if v6_hint < 0 else v6_hint
                if rec is not None:
                    rec.v6_fixed.append(i + 1)
            elif cur_module in _V4_MODULES:
                v4_hint = i + 1 if v4_hint < 0 else v4_hint
                if rec is not None:
                    rec.v4_fixed.append(i + 1)
            i += 2
        elif kind == _K_JUMP or kind == _K_GOTO:
            if neg >= 0:
                raise _Err(neg, f'unexpected "!" before {t}')
            if target_name is not None:
                raise _Err(i, "multiple -j/-g options are not allowed")
            if i + 1 >= n or (toks[i + 1][:1] == "-" and i + 1 not in quoted):
                raise _Err(i + 1, f"{t} requires a target name")
            target_name = toks[i + 1]
            target_goto = kind == _K_GOTO
            target_tok = i + 1
            if rec is not None:
                rec.target_tok = i + 1
                rec.goto = kind == _K_GOTO
            cur = target_opts
            cur_module = target_name
            owned = None  # everything after -j belongs to the target
            i += 2
        elif kind == _K_COUNTERS:
            if neg >= 0:
                raise _Err(neg, f'unexpected "!" before {t}')
            if i + 2 >= n:
                raise _Err(i, f"{t} requires packet and byte counts")
            pk, by = toks[i + 1], toks[i + 2]
            if not (pk.isdigit() and by.isdigit()):
                raise _Err(i + 1, f'bad counters "{pk} {by}"')
            counters = Counters(int(pk), int(by))
            if why := _too_big(counters):
                raise _Err(i + 1, why)
            if rec is not None:
                rec.counters_tok = i + 1
            i += 3
        else:
            raise _Err(i, "-t is not allowed in restore input (the *table line sets the table)")
    if neg >= 0:
        raise _Err(neg, '"!" is not followed by an option')
    target = None
    if target_name is not None:
        target = _target(target_name, tuple(target_opts), target_goto)
    if rec is not None:
        rec.finish(matches, target_opts)
    return (
        basic,
        tuple([Match(mod, tuple(opts)) for mod, opts in matches]),
        target,
        target_tok,
        counters,
        saddrs,
        daddrs,
        addr_family,
        addr_tok,
        v6_hint,
        v4_hint,
        sets,
    )


def _expand(
    basic: dict[str, Option], matches: tuple[Match, ...], saddrs: list[str], daddrs: list[str]
) -> list[tuple[Match, ...]]:
    """One match tuple per (source, destination) pair, as iptables appends."""
    if not basic:
        return [matches]
    if len(saddrs) <= 1 and len(daddrs) <= 1:
        # a single pair (every rule iptables-save prints): the loop below
        # once, without its lists (-s given ⇔ saddrs has its address)
        one: list[Option] = []
        s_opt = basic.get("-s")
        if s_opt is not None:
            s = saddrs[0]
            if s_opt.negated or (s != "0.0.0.0/0" and s != "::/0"):
                one.append(_option("-s", (s,), s_opt.negated))
        d_opt = basic.get("-d")
        if d_opt is not None:
            d = daddrs[0]
            if d_opt.negated or (d != "0.0.0.0/0" and d != "::/0"):
                one.append(_option("-d", (d,), d_opt.negated))
        for name in ("-i", "-o", "-p", "-f"):
            opt = basic.get(name)
            if opt is not None:
                one.append(opt)
        return [(Match("", tuple(one)), *matches)] if one else [matches]
    src = saddrs or [""]
    dst = daddrs or [""]
    # the criteria other than addresses, in save order (save_rule_details)
    rest = [opt for name in ("-i", "-o", "-p", "-f") if (opt := basic.get(name)) is not None]
    s_opt = basic.get("-s")
    d_opt = basic.get("-d")
    out: list[tuple[Match, ...]] = []
    for s in src:
        for d in dst:
            opts: list[Option] = []
            if s_opt is not None and (s_opt.negated or (s != "0.0.0.0/0" and s != "::/0")):
                # save_ipv4_addr / save_ipv6_addr omit a zero mask
                opts.append(_option("-s", (s,), s_opt.negated))
            if d_opt is not None and (d_opt.negated or (d != "0.0.0.0/0" and d != "::/0")):
                opts.append(_option("-d", (d,), d_opt.negated))
            opts += rest
            if opts:
                out.append((Match("", tuple(opts)), *matches))
            else:
                out.append(matches)
    return out


# --- iptables-save -----------------------------------------------------------


@dataclass
class _ChainB:
    name: str
    policy: str | None
    line: int
    counters: Counters | None
    # Rules are built final; index/chain are fixed up at the end only if a
    # restore verb other than -A moved, renamed or changed them.
    rules: list[Rule]
    dirty: bool = False


@dataclass
class _Jump:
    lineno: int
    source: str  # the full source line, for the column
    offset: int  # where the tokens start within the source line
    token: int
    name: str
    goto: bool
    chain: str


@dataclass
class _SetRef:
    lineno: int
    source: str
    offset: int
    token: int
    name: str


class _State:
    def __init__(self, family: Family | None) -> None:
        self.family = family
        self.tables: dict[str, tuple[int, dict[str, _ChainB]]] = {}
        self.table: str | None = None
        self.table_line = 0
        self.chains: dict[str, _ChainB] = {}
        self.jumps: list[_Jump] = []
        self.set_refs: list[_SetRef] = []
        # (lineno, source, offset, token) of the first IPv4 / IPv6 evidence
        self.first_v4: tuple[int, str, int, int] | None = None
        self.first_v6: tuple[int, str, int, int] | None = None
        # shape plans (see _Plan), and the tokens shape keys spell out: it
        # grows by every option-like token of a recorded line (more tokens
        # known only makes keys more specific).  Per parse, so that parses in
        # other threads never see a key and a plan that do not belong together.
        self.plans: dict[tuple[object, ...], _Plan] = {}
        self.known: dict[str, str] = dict(_KNOWN_BASE)


_ZERO = Counters(0, 0)


U64_MAX = 2**64 - 1


def _too_big(counters: Counters) -> str:
    for value in (counters.packets, counters.bytes):
        if value > U64_MAX:
            return f"counter {value} is above 2^64-1 ({U64_MAX}), the largest a kernel counter holds"
    return ""


def _parse_counters(tok: str) -> Counters | None:
    # parse_counters(): sscanf("[%llu:%llu]")
    if len(tok) < 5 or tok[0] != "[" or tok[-1] != "]":
        return None
    pk, colon, by = tok[1:-1].partition(":")
    if not colon or not pk.isdigit() or not by.isdigit() or not pk.isascii() or not by.isascii():
        return None
    return Counters(int(pk), int(by))


@contextmanager
def _gc_paused() -> Iterator[None]:
    # A dump allocates millions of small objects and no cycles; the cyclic
    # collector would otherwise rescan them all over and over (about half the
    # parse time of a 100k-rule dump).  Afterwards freeze+unfreeze moves what
    # was allocated straight into the oldest generation (two list splices), so
    # the next young collection does not walk a million new objects either;
    # any garbage among them is still found by the next full collection.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        # the interning caches only serve one parse; kept, they would pin a
        # large dump's options in memory after its Ruleset is gone
        _opt_cache.clear()
        _target_cache.clear()
        _addr_cache.clear()
        clear_check_cache()
        gc.freeze()
        gc.unfreeze()
        if was_enabled:
            gc.enable()


def parse_iptables_save(text: str, family: Family | None = None) -> Ruleset:
    with _gc_paused():
        return _parse_iptables(text, family)[0]


def _over_limit(lineno: int, raw: str, reason: str, what: str) -> ParseError:
    err = ParseError(lineno, 1, reason, raw)
    err.limit = what  # type: ignore[attr-defined]  # the server names its setting
    return err


def _parse_iptables(text: str, family: Family | None,
                    progress: Callable[[int, int], None] | None = None,
                    limits: LoadLimits | None = None,
                    ) -> tuple[Ruleset, list[_SetRef]]:
    st = _State(family)
    lines = text.split("\n")
    lineno = 0
    crlf = "\r" in text
    total = len(lines)
    # Rule and chain lines so far, against the server's limits (an address
    # list expanding into more rules is counted exactly after the parse).
    limits = limits or LoadLimits()
    max_rules = limits.max_rules if limits.max_rules is not None else total
    max_chains = limits.max_chains if limits.max_chains is not None else total
    rule_lines = chain_lines = 0
    for lineno, raw in enumerate(lines, 1):
        # Lines read so far, every 4096 lines, for a job page's percentage.
        if progress is not None and not lineno & 4095:
            progress(lineno, total)
        if crlf:
            raw = raw.removesuffix("\r")
        c = raw[:1]
        if c == "-" or c == "[" or c == " " or c == "\t":
            verb = raw[:3]
            if verb == "-N ":
                chain_lines += 1
                if chain_lines > max_chains:
                    raise _over_limit(lineno, raw, limits.over(chain_lines, max_chains, "chains"), "chains")
            elif verb == "-A " or verb == "-I " or c == "[":
                rule_lines += 1
                if rule_lines > max_rules:
                    raise _over_limit(lineno, raw, limits.over(rule_lines, max_rules, "rules"), "rules")
            if not (_SHORTCUTS and verb == "-A " and _fast_rule(st, lineno, raw)):
                _command_line(st, lineno, raw)
        elif not c or c == "#":
            continue
        elif c == ":":
            chain_lines += 1
            if chain_lines > max_chains:
                raise _over_limit(lineno, raw, limits.over(chain_lines, max_chains, "chains"), "chains")
            _chain_line(st, lineno, raw)
        elif c == "*":
            _table_line(st, lineno, raw)
        elif raw.rstrip() == "COMMIT":
            if st.table is None:
                raise ParseError(lineno, 1, "COMMIT without a *table line before it", raw)
            _commit(st)
        else:
            if st.table is None:
                raise ParseError(lineno, 1, "line is outside a table (missing *table line)", raw)
            raise ParseError(lineno, 1, f'unknown line "{raw.split()[0]}"', raw)
    if st.table is not None:
        last = lineno
        while last > 1 and not lines[last - 1].strip():
            last -= 1
        raise ParseError(
            last,
            1,
            f"missing COMMIT at end of table {st.table} (opened on line {st.table_line})",
            lines[last - 1] if lines else "",
        )
    fam = _decide_family(st)
    tables: list[Table] = []
    rules = 0
    for name, (tline, chains) in st.tables.items():
        table = _freeze_table(name, tline, chains)
        for chain in table.chains:
            rules += len(chain.rules)
            if rules > max_rules:
                rule = chain.rules[max_rules - rules - 1]
                raise _over_limit(rule.line, rule.text, limits.over(rules, max_rules, "rules"), "rules")
        try:
            check_chain_graph(table)
        except ChainGraphError as exc:
            raise ParseError(exc.rule.line, 1, exc.reason, exc.rule.text) from None
        tables.append(table)
    return Ruleset(family=fam, tables=tuple(tables)), st.set_refs


def _decide_family(st: _State) -> Family:
    fam = st.family
    if fam is None:
        fam = Family.IPV6 if st.first_v6 is not None else Family.IPV4
    bad = st.first_v4 if fam is Family.IPV6 else st.first_v6
    if bad is not None:
        lineno, source, offset, token = bad
        col = offset + _column(source[offset:], token)
        other, mine = ("IPv4", "IPv6") if fam is Family.IPV6 else ("IPv6", "IPv4")
        raise ParseError(lineno, col, f"{other} address or option in an {mine} ruleset", source)
    return fam


def _freeze_table(name: str, tline: int, chains: dict[str, _ChainB]) -> Table:
    order = [c for c in BUILTIN_CHAINS[name] if c in chains]
    order += [c for c in chains if c not in BUILTIN_CHAINS[name]]
    frozen: list[Chain] = []
    for cname in order:
        cb = chains[cname]
        if cb.dirty:
            rules = tuple(
                [
                    Rule(name, cname, idx, r.line, r.text, r.matches, r.target, r.counters)
                    for idx, r in enumerate(cb.rules, 1)
                ]
            )
        else:
            rules = tuple(cb.rules)
        frozen.append(Chain(name, cname, cb.policy, rules, cb.line, cb.counters))
    return Table(name, tuple(frozen), tline)


def _table_line(st: _State, lineno: int, raw: str) -> None:
    if st.table is not None:
        raise ParseError(
            lineno,
            1,
            f"*table line before COMMIT of table {st.table} (opened on line {st.table_line})",
            raw,
        )
    parts = raw[1:].split()
    name = parts[0] if parts else ""
    if name not in _TABLES:
        raise ParseError(
            lineno,
            2,
            f'unknown table "{name}" (expected raw, mangle, nat, filter or security)',
            raw,
        )
    st.table = name
    st.table_line = lineno
    # restore without --noflush flushes the table and rebuilds it; every
    # built-in chain exists (ACCEPT) even if the input does not declare it.
    st.chains = {c: _ChainB(c, "ACCEPT", 0, None, []) for c in BUILTIN_CHAINS[name]}
    st.jumps = []


def _valid_chain_name(name: str) -> str | None:
    if len(name) >= 29:
        return f'chain name "{name}" is too long (at most 28 characters)'
    if name[0] in "-!":
        return f'chain name "{name}" may not start with "{name[0]}"'
    if name in KNOWN_TARGETS:
        return f'chain name "{name}" clashes with the target of the same name'
    return None


def _plain_col(raw: str, token: int) -> int:
    """Column of the token-th word after the leading ":" of a chain line."""
    pos = 1
    for _ in range(token + 1):
        while pos < len(raw) and raw[pos] in " \t":
            pos += 1
        if _ == token:
            break
        while pos < len(raw) and raw[pos] not in " \t":
            pos += 1
    return pos + 1


def _chain_line(st: _State, lineno: int, raw: str) -> None:
    if st.table is None:
        raise ParseError(lineno, 1, "chain declaration outside a table (missing *table line)", raw)
    # iptables-restore splits a chain line with strtok(" \t\n"): no quoting
    # (printable ASCII has no blank but " ", where str.split() is the same)
    toks = raw[1:].split() if raw.isascii() and raw.isprintable() else _split(raw[1:])
    if not toks:
        raise ParseError(lineno, 2, 'missing chain name after ":"', raw)
    name = toks[0]
    builtin = name in BUILTIN_CHAINS[st.table]
    if not builtin:
        problem = _valid_chain_name(name)
        if problem:
            raise ParseError(lineno, 2, problem, raw)
    if len(toks) < 2:
        raise ParseError(lineno, len(raw) + 1, f"missing policy for chain {name}", raw)
    policy = toks[1]
    if policy not in ("ACCEPT", "DROP", "-"):
        raise ParseError(
            lineno,
            _plain_col(raw, 1),
            f'bad policy "{policy}" for chain {name} (ACCEPT, DROP or - expected)',
            raw,
        )
    counters = None
    if len(toks) >= 3:
        # nearly every chain line of a dump says [0:0]
        counters = _ZERO if toks[2] == "[0:0]" else _parse_counters(toks[2])
        if counters is None:
            raise ParseError(
                lineno,
                _plain_col(raw, 2),
                f'bad counters "{toks[2]}" (expected [packets:bytes])',
                raw,
            )
        if why := _too_big(counters):
            raise ParseError(lineno, _plain_col(raw, 2), why, raw)
    if len(toks) > 3:
        raise ParseError(
            lineno,
            _plain_col(raw, 3),
            f'unexpected "{toks[3]}" after the chain counters',
            raw,
        )
    existing = st.chains.get(name)
    if existing is not None and (existing.line or not builtin):
        raise ParseError(
            lineno,
            2,
            f"chain {name} is declared twice (first on line {existing.line})",
            raw,
        )
    if builtin:
        # "-" on a built-in keeps the default policy
        st.chains[name] = _ChainB(name, "ACCEPT" if policy == "-" else policy, lineno, counters, [])
    else:
        # iptables-nft accepts and ignores a policy on a user chain
        st.chains[name] = _ChainB(name, None, lineno, counters, [])


def _command_line(st: _State, lineno: int, raw: str) -> None:
    offset = 0
    body = raw
    counters: Counters | None = None
    if raw[0] == "[":
        end = raw.find("]")
        if end < 0:
            raise ParseError(lineno, 1, 'bad counters: missing "]"', raw)
        counters = _parse_counters(raw[: end + 1])
        if counters is None:
            raise ParseError(
                lineno,
                1,
                f'bad counters "{raw[: end + 1]}" (expected [packets:bytes])',
                raw,
            )
        if why := _too_big(counters):
            raise ParseError(lineno, 1, why, raw)
        offset = end + 1
        body = raw[offset:]
    elif not raw.strip():
        return
    if st.table is None:
        raise ParseError(lineno, offset + 1, "rule outside a table (missing *table line)", raw)
    if body[:1] in (" ", "\t"):
        lead = len(body) - len(body.lstrip(" \t"))
        offset += lead
        body = body[lead:]
    stripped = body.rstrip()
    try:
        if '"' not in body:
            toks = _split(body)
            quoted: set[int] = set()
        elif "\\" not in body and body.count('"') % 2 == 0:
            toks, quoted = _tokenize_quoted(body)
        else:
            toks, _, quoted, unterminated = _tokenize_exact(body)
            if unterminated >= 0:
                raise ParseError(lineno, offset + unterminated + 1, "unterminated quote", raw)
        if toks and toks[0] == "-A" and len(toks) > 1 and (fast := st.chains.get(toks[1])) is not None:
            # the one verb of iptables-save output: straight to the rule
            _add_rules(st, lineno, raw, offset, stripped, toks, quoted, counters, fast, "-A", 0, 2)
        else:
            _apply_command(st, lineno, raw, offset, stripped, toks, quoted, counters)
    except _Err as e:
        raise ParseError(lineno, offset + _column(body, e.token), e.reason, raw) from None


def _apply_command(
    st: _State,
    lineno: int,
    raw: str,
    offset: int,
    text: str,
    toks: list[str],
    quoted: set[int],
    counters: Counters | None,
) -> None:
    if not toks:
        raise _Err(0, "missing command after the counters")
    verb = _VERBS.get(toks[0])
    if verb == "-A" and len(toks) > 1:
        # the one verb of iptables-save output: straight to the rule
        fast = st.chains.get(toks[1])
        if fast is not None:
            _add_rules(st, lineno, raw, offset, text, toks, quoted, counters, fast, "-A", 0, 2)
            return
    if verb is None:
        raise _Err(0, f'expected a command (-A, -I, -N, …), found "{toks[0]}"')
    chains = st.chains
    n = len(toks)
    chain_name = toks[1] if n > 1 else None
    chain: _ChainB | None = None
    if verb in ("-A", "-I", "-D", "-R", "-P", "-E", "-N") or (verb in ("-F", "-Z", "-X") and chain_name):
        if chain_name is None or chain_name.startswith("-"):
            raise _Err(1, f"{toks[0]} requires a chain name")
        chain = chains.get(chain_name)
        if chain is None and verb != "-N":
            raise _Err(1, f'chain "{chain_name}" is not declared in table {st.table}')
    if verb == "-N":
        assert chain_name is not None
        if chain is not None:
            raise _Err(1, f"chain {chain_name} already exists")
        problem = _valid_chain_name(chain_name)
        if problem:
            raise _Err(1, problem)
        _expect_end(toks, 2)
        chains[chain_name] = _ChainB(chain_name, None, lineno, None, [])
        return
    if verb == "-P":
        assert chain is not None
        if chain.policy is None:
            raise _Err(1, f"cannot set a policy on user-defined chain {chain_name}")
        if n < 3 or toks[2] not in ("ACCEPT", "DROP"):
            raise _Err(2, "bad policy (ACCEPT or DROP expected)")
        _expect_end(toks, 3)
        chain.policy = toks[2]
        return
    if verb == "-F" or verb == "-Z":
        targets = [chain] if chain is not None else list(chains.values())
        _expect_end(toks, 2 if chain is not None else 1)
        for c in targets:
            if verb == "-F":
                c.rules.clear()
                c.dirty = True
            else:
                c.counters = Counters(0, 0) if c.counters is not None else None
                c.rules = [r if r.counters is None else replace(r, counters=Counters(0, 0)) for r in c.rules]
        return
    if verb == "-X":
        _expect_end(toks, 2 if chain is not None else 1)
        victims = [chain] if chain is not None else [c for c in chains.values() if c.policy is None]
        for c in victims:
            if c.policy is not None:
                raise _Err(1, f"cannot delete built-in chain {c.name}")
            if c.rules:
                # libiptc / nft: only an empty, unreferenced chain can go
                raise _Err(1 if chain is not None else 0, f"chain {c.name} is not empty")
            for other in chains.values():
                for rb in other.rules:
                    if rb.target is not None and rb.target.name == c.name:
                        raise _Err(
                            1,
                            f"chain {c.name} is still referenced from chain {other.name} (line {rb.line})",
                        )
        for c in victims:
            del chains[c.name]
        return
    if verb == "-E":
        assert chain is not None and chain_name is not None
        if chain.policy is not None:
            raise _Err(1, f"cannot rename built-in chain {chain_name}")
        if n < 3:
            raise _Err(2, "-E requires a new chain name")
        new = toks[2]
        if new in chains:
            raise _Err(2, f"chain {new} already exists")
        problem = _valid_chain_name(new)
        if problem:
            raise _Err(2, problem)
        _expect_end(toks, 3)
        # references follow the chain (nft keeps them by handle, libiptc by offset)
        rebuilt: dict[str, _ChainB] = {}
        for key, c in chains.items():
            for k, r in enumerate(c.rules):
                if r.target is not None and r.target.name == chain_name:
                    t = r.target
                    c.rules[k] = replace(r, target=Target(new, t.options, t.goto))
            c.dirty = True
            if key == chain_name:
                c.name = new
                rebuilt[new] = c
            else:
                rebuilt[key] = c
        st.chains = rebuilt
        for j in st.jumps:
            if j.name == chain_name:
                j.name = new
        return
    assert chain is not None
    i = 2
    rulenum = 0
    if verb in ("-I", "-D", "-R") and i < n and i not in quoted and not toks[i].startswith("-") and toks[i] != "!":
        if not toks[i].isdigit() or int(toks[i]) == 0:
            raise _Err(i, f'invalid rule number "{toks[i]}"')
        rulenum = int(toks[i])
        i += 1
    elif verb == "-R":
        raise _Err(i, "-R requires a rule number")
    if verb == "-D" and rulenum:
        _expect_end(toks, i)
        if rulenum > len(chain.rules):
            raise _Err(2, f"chain {chain.name} has no rule {rulenum}")
        del chain.rules[rulenum - 1]
        chain.dirty = True
        return
    _add_rules(st, lineno, raw, offset, text, toks, quoted, counters, chain, verb, rulenum, i)


def _add_rules(
    st: _State,
    lineno: int,
    raw: str,
    offset: int,
    text: str,
    toks: list[str],
    quoted: set[int],
    counters: Counters | None,
    chain: _ChainB,
    verb: str,
    rulenum: int,
    i: int,
) -> None:
    if _SHORTCUTS and i == 2 and verb == "-A":
        spec = _parse_and_record(st, toks, quoted)
    else:
        spec = _parse_spec(toks, quoted, i)
    (
        basic,
        matches,
        target,
        target_tok,
        spec_counters,
        saddrs,
        daddrs,
        addr_family,
        addr_tok,
        v6_hint,
        v4_hint,
        sets,
    ) = spec
    if spec_counters is not None:
        counters = spec_counters
    proto_opt = basic.get("-p")
    problem = check_rule(
        matches,
        target,
        proto_opt.values[0] if proto_opt is not None else "",
        proto_opt is not None and proto_opt.negated,
    )
    if problem is not None:
        raise _Err(_locate(toks, problem[0], i), problem[1])
    if target is not None:
        tname = target.name
        if tname in KNOWN_TARGETS:
            if target.goto:
                raise _Err(target_tok, f"-g needs a user-defined chain, {tname} is a target")
            need = _TARGET_TABLE.get(tname)
            if need is not None and need != st.table:
                raise _Err(target_tok, f"target {tname} is only valid in the {need} table")
        else:
            dest = st.chains.get(tname)
            if dest is None:
                # not declared yet: iptables-nft resolves the name at COMMIT
                st.jumps.append(_Jump(lineno, raw, offset, target_tok, tname, target.goto, chain.name))
            elif dest.policy is not None:
                verb_name = "goto" if target.goto else "jump"
                raise _Err(target_tok, f"cannot {verb_name} to built-in chain {tname}")
    if addr_family:
        if addr_family == 4:
            if st.first_v4 is None:
                st.first_v4 = (lineno, raw, offset, addr_tok)
        elif st.first_v6 is None:
            st.first_v6 = (lineno, raw, offset, addr_tok)
    if v6_hint >= 0 and st.first_v6 is None:
        st.first_v6 = (lineno, raw, offset, v6_hint)
    if v4_hint >= 0 and st.first_v4 is None and st.family is Family.IPV6:
        st.first_v4 = (lineno, raw, offset, v4_hint)
    for name, tok in sets:
        st.set_refs.append(_SetRef(lineno, raw, offset, tok, name))
    table = st.table
    assert table is not None
    if verb == "-A" and not basic:
        chain.rules.append(Rule(table, chain.name, len(chain.rules) + 1, lineno, text, matches, target, counters))
        return
    base = len(chain.rules) + 1
    new_rules = [
        Rule(table, chain.name, base + k, lineno, text, m, target, counters)
        for k, m in enumerate(_expand(basic, matches, saddrs, daddrs))
    ]
    if verb == "-A":
        chain.rules.extend(new_rules)
        return
    chain.dirty = True
    if verb == "-I":
        pos = (rulenum or 1) - 1
        if pos > len(chain.rules):
            raise _Err(
                2,
                f"index of insertion too big: chain {chain.name} has {len(chain.rules)} rules",
            )
        chain.rules[pos:pos] = new_rules
    elif verb == "-R":
        if rulenum > len(chain.rules):
            raise _Err(2, f"chain {chain.name} has no rule {rulenum}")
        if len(new_rules) != 1:
            raise _Err(i, "-R needs a single source and destination")
        chain.rules[rulenum - 1] = new_rules[0]
    else:  # -D by rule specification: the first equal rule, per expansion
        for nr in new_rules:
            for k, rb in enumerate(chain.rules):
                if rb.matches == nr.matches and rb.target == nr.target:
                    del chain.rules[k]
                    break
            else:
                raise _Err(0, f"no rule in chain {chain.name} matches this specification")


# basic criteria _fast_basic leaves to _parse_spec, in _Plan.basic_built
_DECLINED: tuple[Match | None, int, int] = (None, 0, -1)


def _fast_basic(plan: _Plan, toks: list[str]) -> tuple[Match | None, int, int] | None:
    """The -s/-d/-i/-o/-p/-f Match of a replayed line (what _parse_spec and
    _expand make of a single address pair), its address family and token;
    None for anything _parse_spec has to see (a bad value, an address list)."""
    opts: list[Option] = []
    family = 0
    addr_tok = -1
    for kind, name, negated, j, fixed in plan.basic_saved:
        if kind == _B_CONST:
            assert fixed is not None
            opts.append(fixed)
            continue
        value = toks[j]
        if kind == _B_ADDR:
            if "," in value:
                return None
            try:
                addr, fam = _norm_addr(value)
            except ValueError:
                return None
            if family and fam != family:
                return None
            # _parse_spec takes the family from the first address in the line
            family = fam
            addr_tok = j if addr_tok < 0 else min(addr_tok, j)
            # save_ipv4_addr / save_ipv6_addr omit a zero mask
            if negated or (addr != "0.0.0.0/0" and addr != "::/0"):
                opts.append(_option(name, (addr,), negated))
        else:
            if len(value) >= _IFNAMSIZ:
                return None
            if value != "+" or negated:
                opts.append(_option(name, (value,), negated))
    return (Match("", tuple(opts)) if opts else None, family, addr_tok)


def _fast_rule(st: _State, lineno: int, raw: str) -> bool:
    """Append the `-A` line `raw` through the plan of its shape, exactly as
    _command_line would; False (having changed nothing) when the line is not
    one this path takes, or has any problem: _command_line then parses it and
    raises the error."""
    if st.table is None or not (raw.isascii() and raw.isprintable()) or "\\" in raw:
        return False
    # printable ASCII has no tab and no blank but " ", so str.split() cuts
    # exactly where iptables does; a line whose only quotes enclose one whole
    # token (`--comment "a b"`) is three such pieces
    quotes = raw.count('"')
    if quotes == 0:
        toks = raw.split()
        qkey = -1
        dashes = raw.count(" -") + 1
    elif quotes == 2:
        head, inside, tail = raw.split('"')
        if head[-1:] != " " or tail[:1] not in ("", " "):
            return False
        toks = head.split()
        qkey = len(toks)
        toks.append(inside)
        toks += tail.split()
        dashes = head.count(" -") + 1 + tail.count(" -")
    else:
        return False
    plan = st.plans.get((qkey, *map(st.known.get, toks)))
    # every unquoted token starting with "-" must be one the key spells out
    if plan is None or plan.dashes != dashes:
        return False
    chain = st.chains.get(toks[1])
    if chain is None:
        return False
    if plan.exact_values is not None and plan.exact_values(toks) != plan.exact_texts:
        return False

    matches: list[Match] = []
    family = 0
    addr_tok = -1
    if plan.basic:
        bkey = plan.basic_values(toks) if plan.basic_values is not None else None
        bhit = plan.basic_built.get(bkey)
        if bhit is None:
            bhit = _fast_basic(plan, toks) or _DECLINED
            if len(plan.basic_built) < _CACHE_LIMIT:
                plan.basic_built[bkey] = bhit
        if bhit is _DECLINED:
            return False
        basic_match, family, addr_tok = bhit
        if basic_match is not None:
            matches.append(basic_match)
    # Each clause is built once per distinct values and checked then, under
    # the shape's -p, with check_rule itself: check_rule accepts a rule
    # exactly when it accepts each of its matches and its target on its own.
    for slot in plan.slots:
        key = slot.values(toks) if slot.values is not None else None
        if slot.comment:
            # what check_rule asks of `-m comment --comment TEXT`
            cm = slot.built.get(key)
            if cm is None:
                assert isinstance(key, str)
                if len(key) > 255:
                    return False
                cm = (Match("comment", (Option("--comment", (key,), False),)), True)
                if len(slot.built) < _CACHE_LIMIT:
                    slot.built[key] = cm
            matches.append(cm[0])  # type: ignore[arg-type]
            continue
        hit = slot.built.get(key)
        if hit is None:
            m = Match(slot.name, slot.options(toks))
            hit = (m, check_rule((m,), None, plan.proto, plan.proto_negated) is None)
            if len(slot.built) < _CACHE_LIMIT:
                slot.built[key] = hit
        if not hit[1]:
            return False
        matches.append(hit[0])  # type: ignore[arg-type]
    target: Target | None = None
    jump: _Jump | None = None
    tslot = plan.target
    if tslot is not None:
        tname = toks[plan.target_tok]
        key = tname if tslot.values is None else (tname, tslot.values(toks))
        hit = tslot.built.get(key)
        if hit is None:
            t = _target(tname, tslot.options(toks), plan.goto)
            if tslot.values is None and tname not in KNOWN_TARGETS:
                # `-j SOME-CHAIN`, a new chain name on many lines: the checks
                # of extcheck concern target extensions (all in
                # KNOWN_TARGETS), so check_rule answers the same for every
                # plain jump to a chain (test_parser_shortcuts holds
                # extcheck to that)
                if plan.chain_jump_ok is None:
                    plan.chain_jump_ok = check_rule((), t, plan.proto, plan.proto_negated) is None
                hit = (t, plan.chain_jump_ok)
            else:
                hit = (t, check_rule((), t, plan.proto, plan.proto_negated) is None)
            if len(tslot.built) < _CACHE_LIMIT:
                tslot.built[key] = hit
        if not hit[1]:
            return False
        target = hit[0]  # type: ignore[assignment]
        # the target checks of _add_rules
        if tname in KNOWN_TARGETS:
            if plan.goto:
                return False
            need = _TARGET_TABLE.get(tname)
            if need is not None and need != st.table:
                return False
        else:
            dest = st.chains.get(tname)
            if dest is None:
                jump = _Jump(lineno, raw, 0, plan.target_tok, tname, plan.goto, chain.name)
            elif dest.policy is not None:
                return False
    counters = None
    if plan.counters_tok >= 0:
        pk, by = toks[plan.counters_tok], toks[plan.counters_tok + 1]
        if not (pk.isdigit() and by.isdigit()):
            return False
        counters = Counters(int(pk), int(by))
        if _too_big(counters):
            return False  # the full parse says why

    # accepted: the bookkeeping of _add_rules
    if jump is not None:
        st.jumps.append(jump)
    if family == 4:
        if st.first_v4 is None:
            st.first_v4 = (lineno, raw, 0, addr_tok)
    elif family == 6 and st.first_v6 is None:
        st.first_v6 = (lineno, raw, 0, addr_tok)
    if plan.clues:
        v6_hint = plan.v6
        for tok, first in plan.v6_reject:
            if toks[first][:5] == "icmp6" and (v6_hint < 0 or tok < v6_hint):
                v6_hint = tok
        if v6_hint >= 0 and st.first_v6 is None:
            st.first_v6 = (lineno, raw, 0, v6_hint)
        if plan.v4 >= 0 and st.first_v4 is None and st.family is Family.IPV6:
            st.first_v4 = (lineno, raw, 0, plan.v4)
        for k in plan.sets:
            st.set_refs.append(_SetRef(lineno, raw, 0, k, toks[k]))
    rules = chain.rules
    rules.append(_new_rule(st.table, chain.name, len(rules) + 1, lineno, raw.rstrip(), tuple(matches), target, counters))
    return True


_object_new = object.__new__


def _new_rule(
    table: str,
    chain: str,
    index: int,
    line: int,
    text: str,
    matches: tuple[Match, ...],
    target: Target | None,
    counters: Counters | None,
) -> Rule:
    # Rule(…) exactly, three times faster: a frozen dataclass's __init__
    # assigns each field through object.__setattr__; filling the new
    # instance's __dict__ in field order makes the same object (Rule has no
    # __post_init__ and no __slots__; test_parser_shortcuts compares them).
    rule = _object_new(Rule)
    d = rule.__dict__
    d["table"] = table
    d["chain"] = chain
    d["index"] = index
    d["line"] = line
    d["text"] = text
    d["matches"] = matches
    d["target"] = target
    d["counters"] = counters
    return rule


def _locate(toks: list[str], what: str, start: int) -> int:
    """Index of the token a check complains about (an option or module name)."""
    for k in range(start, len(toks)):
        if toks[k] == what:
            return k
    return start


def _expect_end(toks: list[str], i: int) -> None:
    if i < len(toks):
        raise _Err(i, f'unexpected argument "{toks[i]}"')


def _commit(st: _State) -> None:
    assert st.table is not None
    chains = st.chains
    for j in st.jumps:
        target = chains.get(j.name)
        if target is not None and target.policy is None:
            continue
        col = j.offset + _column(j.source[j.offset :], j.token)
        verb = "goto" if j.goto else "jump"
        if target is None:
            raise ParseError(j.lineno, col, f'unknown chain or target "{j.name}" in {verb}', j.source)
        raise ParseError(j.lineno, col, f"cannot {verb} to built-in chain {j.name}", j.source)
    # rules of a chain the input later deleted or renamed are checked above;
    # a jump from a rule that was itself deleted does not matter but is rare
    st.tables[st.table] = (st.table_line, chains)
    st.table = None
    st.chains = {}
    st.jumps = []


def to_iptables_save(ruleset: Ruleset, counters: bool = False) -> str:
    """The ruleset in iptables-save format (`counters` = `iptables-save -c`)."""
    out: list[str] = []
    for t in ruleset.tables:
        out.append(f"*{t.name}")
        for c in t.chains:
            ctr = c.counters or Counters(0, 0)
            out.append(f":{c.name} {c.policy or '-'} [{ctr.packets}:{ctr.bytes}]")
        for c in t.chains:
            for r in c.rules:
                if counters:
                    rc = r.counters or Counters(0, 0)
                    out.append(f"[{rc.packets}:{rc.bytes}] {r.canonical()}")
                else:
                    out.append(r.canonical())
        out.append("COMMIT")
    return "\n".join(out) + "\n"


# --- ipset --------------------------------------------------------------------

_IPSET_TYPES = _words(
    """hash:ip hash:net hash:ip,port hash:net,port hash:net,iface hash:ip,port,ip
    hash:ip,port,net hash:ip,mark hash:net,net hash:net,port,net hash:mac
    hash:ip,mac bitmap:ip bitmap:ip,mac bitmap:port list:set"""
)
_CREATE_FLAGS = frozenset({"counters", "comment", "skbinfo", "forceadd"})
_CREATE_VALUES = frozenset(
    {
        "family",
        "hashsize",
        "maxelem",
        "timeout",
        "range",
        "netmask",
        "size",
        "markmask",
        "bucketsize",
        "initval",
        "bitmask",
    }
)
_ADD_VALUES = frozenset(
    {
        "timeout",
        "comment",
        "packets",
        "bytes",
        "skbmark",
        "skbprio",
        "skbqueue",
        "before",
        "after",
    }
)
_ADD_FLAGS = frozenset({"nomatch"})
_LIST_KEYS = frozenset(
    {"Name", "Type", "Revision", "Header", "Size in memory", "References", "Number of entries", "Members"}
)
_PORT_PROTOS = frozenset({"tcp", "udp", "sctp", "udplite", "icmp", "icmpv6", "tcpudp"})


def _check_ip(part: str, family: str) -> str | None:
    """None if `part` is an address (or cidr/range) of the set's family."""
    lo, dash, hi = part.partition("-")
    host, slash, plen = lo.partition("/")
    if dash and slash:
        return f'"{part}" mixes a range and a prefix'
    try:
        a = ipaddress.ip_address(host)
        if dash:
            b = ipaddress.ip_address(hi)
            if b.version != a.version:
                return f'bad range "{part}"'
    except ValueError:
        return f'bad address "{part}"'
    want = 6 if family == "inet6" else 4
    if a.version != want:
        return f'address "{part}" does not belong to a family {family} set'
    # hash:ip takes a prefix too and adds every address in it
    if slash and (not plen.isdigit() or int(plen) > (32 if want == 4 else 128)):
        return f'bad prefix length in "{part}"'
    return None


def _check_port(part: str, bare: bool) -> tuple[str, str | None]:
    proto, colon, port = part.partition(":")
    if not colon:
        port, proto = part, "tcp"
    elif bare:
        return part, f'bad port "{part}"'
    elif proto not in _PORT_PROTOS and not proto.isdigit():
        return part, f'unknown protocol "{proto}" in "{part}"'
    lo, _, hi = port.partition("-")
    for p in (lo, hi) if hi else (lo,):
        if not p:
            return part, f'bad port "{part}"'
        if p.isdigit():
            if int(p) > 65535:
                return part, f'port "{p}" out of range'
        elif not (proto in ("icmp", "icmpv6") or p.replace("-", "").isalnum()):
            return part, f'bad port "{part}"'
    # ipset: a port without protocol means TCP; save prints it with "tcp:"
    return (port if bare else f"{proto}:{port}"), None


def _check_element(ipset: IPSet, elem: str, declared: dict[str, IPSet]) -> tuple[tuple[str, ...], str | None]:
    dims = ipset.dimensions
    if ipset.type == "list:set":
        if elem not in declared:
            return (elem,), f'set "{elem}" is not defined'
        return (elem,), None
    parts = elem.split(",")
    if len(parts) != len(dims):
        return (
            tuple(parts),
            f'element "{elem}" does not fit type {ipset.type} ({len(dims)} parts expected)',
        )
    out: list[str] = []
    for dim, part in zip(dims, parts):
        problem: str | None = None
        if dim == "ip" or dim == "net":
            problem = _check_ip(part, ipset.family)
        elif dim == "port":
            part, problem = _check_port(part, ipset.method == "bitmap")
        elif dim == "iface":
            name = part.removeprefix("physdev:")
            if not name or len(name) >= _IFNAMSIZ:
                problem = f'bad interface name "{part}"'
        elif dim == "mac":
            hexes = part.split(":")
            if len(hexes) != 6 or not all(
                len(h) in (1, 2) and all(c in "0123456789abcdefABCDEF" for c in h) for h in hexes
            ):
                problem = f'bad MAC address "{part}"'
        elif dim == "mark":
            try:
                int(part, 0)
            except ValueError:
                problem = f'bad mark "{part}"'
        if problem:
            return tuple(parts), problem
        out.append(part)
    return tuple(out), None


@dataclass
class _SetB:
    name: str
    type: str
    family: str
    options: list[tuple[str, str]]
    members: list[SetMember]
    line: int

    def header(self) -> IPSet:
        return IPSet(self.name, self.type, self.family, tuple(self.options), (), self.line)


def _parse_create_opts(toks: list[str], start: int, b: _SetB) -> None:
    i = start
    while i < len(toks):
        key = toks[i]
        if key in _CREATE_FLAGS:
            b.options.append((key, ""))
            i += 1
        elif key in _CREATE_VALUES:
            if i + 1 >= len(toks):
                raise _Err(i, f"create option {key} requires a value")
            value = toks[i + 1]
            if key == "family":
                if value not in ("inet", "inet6"):
                    raise _Err(i + 1, f'bad family "{value}" (inet or inet6 expected)')
                b.family = value
            else:
                b.options.append((key, value))
            i += 2
        else:
            raise _Err(i, f'unknown create option "{key}"')


def _parse_member(toks: list[str], start: int, b: _SetB, sets: dict[str, _SetB], lineno: int) -> SetMember:
    if start >= len(toks):
        raise _Err(start, f"missing element for set {b.name}")
    declared = {k: v.header() for k, v in sets.items()} if b.type == "list:set" else {}
    elements, problem = _check_element(b.header(), toks[start], declared)
    if problem:
        raise _Err(start, problem)
    nomatch = False
    timeout: int | None = None
    i = start + 1
    while i < len(toks):
        key = toks[i]
        if key in _ADD_FLAGS:
            nomatch = True
            i += 1
        elif key in _ADD_VALUES:
            if i + 1 >= len(toks):
                raise _Err(i, f"option {key} requires a value")
            if key == "timeout":
                if not toks[i + 1].isdigit():
                    raise _Err(i + 1, f'bad timeout "{toks[i + 1]}"')
                timeout = int(toks[i + 1])
            i += 2
        else:
            raise _Err(i, f'unknown option "{key}" for an element')
    return SetMember(elements, nomatch, timeout, lineno)


def parse_ipset_save(text: str, limits: LoadLimits | None = None) -> tuple[IPSet, ...]:
    limits = limits or LoadLimits()
    members = 0
    sets: dict[str, _SetB] = {}
    listing: _SetB | None = None  # inside an `ipset list` Members: block
    pending: dict[str, str] = {}  # `ipset list` header fields of the current block
    pending_line = 0
    for lineno, raw in enumerate(text.split("\n"), 1):
        raw = raw.removesuffix("\r")
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            if not stripped:
                listing = None
            continue
        try:
            toks, starts, _, unterminated = _tokenize_exact(raw)
            if unterminated >= 0:
                raise ParseError(lineno, unterminated + 1, "unterminated quote", raw)
            if listing is not None and not raw.startswith("Name:") or toks[0] in ("add", "-A"):
                members += 1
                if why := limits.over(members, limits.max_set_members, "set members"):
                    raise _over_limit(lineno, raw, why, "set members")
            if listing is not None and not raw.startswith("Name:"):
                listing.members.append(_parse_member(toks, 0, listing, sets, lineno))
                continue
            head = toks[0]
            key, colon, value = raw.partition(":")
            if colon and key in _LIST_KEYS:
                # `ipset list` block: Name, Type, Header, …, Members
                value = value.strip()
                if key == "Name":
                    pending = {"Name": value}
                    pending_line = lineno
                    listing = None
                elif key == "Members":
                    listing = _from_listing(pending, pending_line, sets, raw)
                else:
                    pending[key] = value
                continue
            if head in ("create", "-N"):
                if len(toks) < 3:
                    raise _Err(len(toks), "create needs a set name and a type")
                name, stype = toks[1], toks[2]
                if stype not in _IPSET_TYPES:
                    raise _Err(2, f'unknown set type "{stype}"')
                if name in sets:
                    raise _Err(1, f"set {name} is already defined (line {sets[name].line})")
                b = _SetB(name, stype, "inet", [], [], lineno)
                _parse_create_opts(toks, 3, b)
                sets[name] = b
            elif head in ("add", "-A"):
                if len(toks) < 2:
                    raise _Err(1, "add needs a set name")
                target = sets.get(toks[1])
                if target is None:
                    raise _Err(1, f'set "{toks[1]}" is not defined')
                target.members.append(_parse_member(toks, 2, target, sets, lineno))
            else:
                raise _Err(0, f'unknown command "{head}" (create or add expected)')
        except _Err as e:
            col = starts[e.token] + 1 if e.token < len(starts) else len(raw) + 1
            raise ParseError(lineno, col, e.reason, raw) from None
    return tuple(IPSet(b.name, b.type, b.family, tuple(b.options), tuple(b.members), b.line) for b in sets.values())


def _from_listing(fields: dict[str, str], line: int, sets: dict[str, _SetB], raw: str) -> _SetB:
    name = fields.get("Name", "")
    stype = fields.get("Type", "")
    if not name:
        raise ParseError(line, 1, "Members: without a Name: line", raw)
    if stype not in _IPSET_TYPES:
        raise ParseError(line, 1, f'unknown set type "{stype}"', raw)
    if name in sets:
        raise ParseError(line, 1, f"set {name} is already defined (line {sets[name].line})", raw)
    b = _SetB(name, stype, "inet", [], [], line)
    try:
        _parse_create_opts(tokenize(fields.get("Header", "")), 0, b)
    except _Err as e:
        raise ParseError(line, 1, e.reason, raw) from None
    sets[name] = b
    return b


# --- both ----------------------------------------------------------------------


def parse_ruleset(text: str, ipsets: str | None = None, family: Family | None = None,
                  progress: Callable[[int, int], None] | None = None,
                  limits: LoadLimits | None = None) -> Ruleset:
    """`progress(lines read, lines)` is called now and then while parsing;
    `limits` are what a server accepts (none by default)."""
    with _gc_paused():
        ruleset, refs = _parse_iptables(text, family, progress, limits)
    if ipsets is None:
        return ruleset
    sets = parse_ipset_save(ipsets, limits)
    names = {s.name for s in sets}
    for ref in refs:
        if ref.name not in names:
            col = ref.offset + _column(ref.source[ref.offset :], ref.token)
            raise ParseError(ref.lineno, col, f"ipset {ref.name} is not defined", ref.source)
    return Ruleset(family=ruleset.family, tables=ruleset.tables, ipsets=sets)

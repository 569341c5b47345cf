"""Cheap checks of match/target options that iptables or the kernel refuse.

The parser keeps every option verbatim; this module rejects the values and
combinations that `iptables-restore` would refuse before anything is loaded:
out-of-range numbers (`--mark 4294967296`, `--zone 65536`), unknown keywords
(`--ctstate wrong`), missing mandatory options (`-m comment` alone), options
given twice, and the protocol a match or target needs (`-m tcp` without
`-p tcp`, checked by xt_check_match in net/netfilter/x_tables.c).  Checks that
need the live kernel (ipsets, nfct helpers, hook masks) are not done here.
"""

from __future__ import annotations

from collections.abc import Callable

from netviz.engine.ruleset import Match, Option, Target

_U32 = 0xFFFFFFFF


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Every match extension iptables ships (extensions/libxt_*.c, libipt_*.c,
# libip6t_*.c) plus xtables-addons; `-m` with another name fails with
# "Couldn't load match".
KNOWN_MATCHES: frozenset[str] = _words(
    "addrtype ah bpf cgroup cluster comment connbytes connlabel connlimit "
    "connmark conntrack cpu dccp devgroup dscp dst ecn esp eui64 frag hashlimit "
    "hbh helper hl icmp icmp6 iprange ipv6header ipvs length limit mac mark mh "
    "multiport nfacct osf owner physdev pkttype policy quota rateest realm "
    "recent rpfilter rt sctp set socket state statistic string tcp tcpmss time "
    "tos ttl u32 udp udplite unclean "
    # xtables-addons
    "account condition dhcpmac fuzzy geoip gradm iface ipp2p ipv4options "
    "length2 lscan pknock psd quota2"
)

_CT_STATES = _words("INVALID ESTABLISHED NEW RELATED UNTRACKED SNAT DNAT")
_STATES = _words("INVALID ESTABLISHED NEW RELATED UNTRACKED")
_ADDRTYPES = _words(
    "UNSPEC UNICAST LOCAL BROADCAST ANYCAST MULTICAST BLACKHOLE UNREACHABLE PROHIBIT THROW NAT XRESOLVE"
)
_LOG_LEVELS = _words("emerg alert crit error warning notice info debug panic err warn 0 1 2 3 4 5 6 7")
# libipt_REJECT.c / libip6t_REJECT.c reject_table, names and aliases
_REJECT_WITH = _words(
    "icmp-net-unreachable net-unreach icmp-host-unreachable host-unreach "
    "icmp-port-unreachable port-unreach icmp-proto-unreachable proto-unreach "
    "icmp-net-prohibited net-prohib icmp-host-prohibited host-prohib "
    "icmp-admin-prohibited admin-prohib tcp-reset "
    "icmp6-no-route no-route icmp6-adm-prohibited adm-prohibited "
    "icmp6-addr-unreachable addr-unreach icmp6-port-unreachable "
    "icmp6-policy-fail policy-fail icmp6-reject-route reject-route"
)
# Service names of netbase's /etc/services that contain a dash, so that
# `ftp-data` is read as one port and `echo-ssh` as a (refused) name range.
_DASHED_SERVICES = _words(
    "acr-nema afs3-bos afs3-callback afs3-fileserver afs3-kaserver afs3-prserver "
    "afs3-rmtsys afs3-update afs3-vlserver afs3-volser asf-rmcp bacula-dir bacula-fd "
    "bacula-sd cisco-sccp clc-build-daemon cmip-agent cmip-man codasrv-se db-lsp "
    "dhcpv6-client dhcpv6-server domain-s f5-globalsite f5-iquery font-service "
    "ftp-data ftps-data gds-db gnutella-rtr gnutella-svc http-alt ipsec-nat-t ircs-u "
    "iscsi-target iso-tsap kerberos-adm kerberos-master krb-prop microsoft-ds "
    "moira-db moira-update moira-ureg ms-sql-m ms-sql-s ms-wbt-server mysql-proxy "
    "netbios-dgm netbios-ns netbios-ssn passwd-server ptp-event ptp-general "
    "radius-acct radmin-port rtcm-sc104 sa-msg-port sane-port sge-execd sge-qmaster "
    "sgi-cad sgi-cmsd sgi-crsd sgi-gcd sip-tls snmp-trap syslog-tls venus-se x11-1 "
    "x11-2 x11-3 x11-4 x11-5 x11-6 x11-7 xmpp-client xmpp-server zabbix-agent "
    "zabbix-trapper zephyr-clt zephyr-hm zephyr-srv zope-ftp"
)
_PORT_PROTOS = frozenset({"tcp", "udp", "udplite", "sctp", "dccp"})

# module → (protocol the kernel requires, or None; options of which at
# least one is mandatory, or empty)
_MATCH_PROTO = {
    "tcp": "tcp",
    "udp": "udp",
    "udplite": "udplite",
    "sctp": "sctp",
    "dccp": "dccp",
    "icmp": "icmp",
    "icmp6": "ipv6-icmp",
}
_MATCH_NEEDS: dict[str, frozenset[str]] = {
    "comment": frozenset({"--comment"}),
    "mark": frozenset({"--mark"}),
    "connmark": frozenset({"--mark"}),
    "state": frozenset({"--state"}),
    "multiport": frozenset({"--ports", "--sports", "--dports", "--source-ports", "--destination-ports"}),
    "statistic": frozenset({"--mode"}),
    "addrtype": frozenset({"--src-type", "--dst-type"}),
    "set": frozenset({"--match-set"}),
    "conntrack": frozenset(),  # any option, checked below
}
_TARGET_NEEDS: dict[str, frozenset[str]] = {
    "MARK": frozenset({"--set-mark", "--set-xmark", "--and-mark", "--or-mark", "--xor-mark"}),
    "CONNMARK": frozenset(
        {
            "--set-mark",
            "--set-xmark",
            "--save-mark",
            "--restore-mark",
            "--and-mark",
            "--or-mark",
            "--xor-mark",
        }
    ),
    "DNAT": frozenset({"--to-destination"}),
    "SNAT": frozenset({"--to-source"}),
}


def _int(text: str) -> int:
    # strtoul(…, 0): 0x hex, leading-0 octal, else decimal
    if len(text) > 1 and text[0] == "0" and text.isdigit():
        return int(text, 8)
    return int(text, 0)


def _u32(text: str, limit: int = _U32) -> bool:
    if not text or text[0] in "+-":
        return False
    try:
        value = _int(text)
    except ValueError:
        return False
    return 0 <= value <= limit


def _mark(text: str) -> str | None:
    value, slash, mask = text.partition("/")
    if not _u32(value) or (slash and not _u32(mask)):
        return f'bad mark value "{text}" (at most 0xffffffff)'
    return None


def _port(text: str) -> int | None:
    if text.isdigit():
        port = int(text)
        return port if port <= 65535 else None
    # a service name from /etc/services, which cannot be looked up here
    return -1 if text[:1].isalpha() and text.replace("-", "").isalnum() else None


def _port_range(text: str, sep: str = ":") -> str | None:
    lo, has_sep, hi = text.partition(sep)
    a = _port(lo) if lo else 0
    b = _port(hi) if hi else (65535 if has_sep else a)
    if a is None or b is None:
        return f'bad port "{text}" (0-65535)'
    if a >= 0 and b >= 0 and a > b:
        return f'bad port range "{text}" (start above end)'
    return None


def _numeric_range(text: str, limit: int) -> str | None:
    lo, sep, hi = text.partition(":")
    if not _u32(lo, limit) or (sep and not _u32(hi, limit)):
        return f'bad value "{text}" (0-{limit})'
    if sep and _int(lo) > _int(hi):
        return f'bad range "{text}" (start above end)'
    return None


def _check_option(module: str, opt: Option) -> str | None:
    """Problem with one option's value, or None."""
    name = opt.name
    v = opt.values[0] if opt.values else ""
    if name in (
        "--mark",
        "--set-xmark",
        "--set-mark",
        "--and-mark",
        "--or-mark",
        "--xor-mark",
    ):
        return _mark(v)
    if name in ("--nfmask", "--ctmask") or (name == "--mask" and module != "recent"):
        return None if _u32(v) else f'bad mask "{v}"'
    if name in ("--sport", "--dport", "--source-port", "--destination-port") or (
        module == "conntrack" and name[-4:] == "port"
    ):
        return _port_range(v)
    if name in (
        "--sports",
        "--dports",
        "--ports",
        "--source-ports",
        "--destination-ports",
    ):
        parts = v.split(",")
        if len(parts) > 15:
            return "multiport takes at most 15 ports"
        for p in parts:
            problem = _port_range(p)
            if problem:
                return problem
        return None
    if name == "--ctstate":
        bad = [s for s in v.split(",") if s not in _CT_STATES]
        return f'unknown conntrack state "{bad[0]}"' if bad else None
    if name == "--state":
        bad = [s for s in v.split(",") if s not in _STATES]
        return f'unknown state "{bad[0]}"' if bad else None
    if name == "--ctexpire":
        return _numeric_range(v, _U32)
    if name == "--ctproto":
        if v in ("0", "all"):
            # libxt_conntrack: "rule would never match protocol"
            return "--ctproto 0 would never match"
        return None
    if name in ("--src-type", "--dst-type"):
        bad = [s for s in v.split(",") if s not in _ADDRTYPES]
        return f'unknown address type "{bad[0]}"' if bad else None
    if name == "--comment":
        if opt.negated:
            return "--comment cannot be negated"
        return "comment longer than 255 characters" if len(v) > 255 else None
    if name in ("--zone", "--nflog-group", "--nflog-threshold"):
        return None if _u32(v, 65535) else f'bad value "{v}" for {name} (0-65535)'
    if name in ("--nflog-range", "--nflog-size"):
        return None if _u32(v) else f'bad value "{v}" for {name}'
    if name == "--log-level":
        return None if v.lower() in _LOG_LEVELS else f'unknown log level "{v}"'
    if name == "--reject-with":
        return None if v in _REJECT_WITH else f'unknown --reject-with type "{v}"'
    if name == "--probability":
        try:
            chance = float(v)
        except ValueError:
            return f'bad probability "{v}"'
        return None if 0.0 <= chance <= 1.0 else f'probability "{v}" is outside 0..1'
    if name in ("--every", "--packet"):
        return None if _u32(v) else f'bad value "{v}" for {name}'
    if name == "--to-ports":
        lo, dash, hi = v.partition("-")
        if v in _DASHED_SERVICES:
            ok = True
        elif dash:
            ok = lo.isdigit() and hi.isdigit() and int(lo) <= int(hi) <= 65535
        else:
            ok = _port(v) is not None
        return None if ok else f'bad port or port range "{v}"'
    if name in ("--to-destination", "--to-source"):
        return _nat_range(v)
    return None


def _nat_range(v: str) -> str | None:
    # [ip[-ip]][:port[-port][/base]]; ports need numeric ranges
    if v.startswith("["):
        addr, _, rest = v[1:].partition("]")
        ports = rest[1:] if rest.startswith(":") else ""
    elif v.count(":") > 1:
        return None  # bare IPv6 address without ports
    else:
        addr, _, ports = v.partition(":")
    if not ports:
        return None
    rng, slash, base = ports.partition("/")
    lo, dash, hi = rng.partition("-")
    if dash and rng not in _DASHED_SERVICES:
        if not (lo.isdigit() and hi.isdigit()) or int(lo) > int(hi) or int(hi) > 65535:
            return f'bad port range "{rng}"'
    elif _port(rng) is None:
        return f'bad port "{rng}"'
    if slash and not (base.isdigit() and 1 <= int(base) <= 65535) and not base.isalpha():
        return f'bad base port "{base}"'
    del addr
    return None


# Matches and targets already found valid, keyed by name and the ids of
# their (interned) options; the value keeps those options alive so an id is
# never reused while it is a key.
_valid: dict[tuple[object, ...], Match | Target] = {}
_VALID_LIMIT = 300_000


def clear_check_cache() -> None:
    _valid.clear()


def _check_match(m: Match) -> tuple[str, str] | None:
    module = m.module
    if module not in KNOWN_MATCHES:
        return module, f'unknown match "{module}"'
    seen: set[str] = set()
    for opt in m.options:
        name = opt.name
        if name in seen and module != "u32":
            return name, f"{name} given twice in -m {module}"
        seen.add(name)
        problem = _check_option(module, opt)
        if problem:
            return name, problem
    check = _MATCH_CHECKS.get(module)
    if check is not None:
        problem = check(m, seen)
        if problem:
            return module, problem
    return None


def _check_target(target: Target) -> tuple[str, str] | None:
    seen: set[str] = set()
    for opt in target.options:
        if opt.name in seen:
            return opt.name, f"{opt.name} given twice for -j {target.name}"
        seen.add(opt.name)
        problem = _check_option(target.name, opt)
        if problem:
            return opt.name, problem
    need = _TARGET_NEEDS.get(target.name)
    if need is not None and not (seen & need):
        return target.name, f"-j {target.name} needs one of {', '.join(sorted(need))}"
    return None


def check_rule(
    matches: tuple[Match, ...],
    target: Target | None,
    proto: str,
    proto_negated: bool,
) -> tuple[str, str] | None:
    """(token to point at, reason) for the first problem, or None.

    `proto` is the rule's `-p` value ("" if none)."""
    valid = _valid
    for m in matches:
        module = m.module
        if not module:
            continue
        if module == "comment" and len(m.options) == 1:
            # the one option of nearly every kube-proxy/Calico rule: checked
            # here directly instead of through the cache (each text differs)
            opt = m.options[0]
            if opt.name == "--comment" and not opt.negated and len(opt.values[0]) <= 255:
                continue
        key = (module, *map(id, m.options))
        if key not in valid:
            problem = _check_match(m)
            if problem:
                return problem
            if len(valid) < _VALID_LIMIT:
                valid[key] = m
        # xt_check_match: a match bound to a protocol needs that -p, uninverted
        need_proto = _MATCH_PROTO.get(module)
        if need_proto is not None and (
            proto_negated or (proto != need_proto and not (module == "icmp6" and proto == "icmpv6"))
        ):
            return module, f"-m {module} needs -p {need_proto}"
        if module == "multiport" and (proto not in _PORT_PROTOS or proto_negated):
            return module, "-m multiport needs -p tcp, udp, udplite, sctp or dccp"
    if target is None:
        return None
    tname = target.name
    tkey = (tname, *map(id, target.options))
    if tkey not in valid:
        problem = _check_target(target)
        if problem:
            return problem
        if len(valid) < _VALID_LIMIT:
            valid[tkey] = target
    if tname in ("REDIRECT", "MASQUERADE", "DNAT", "SNAT"):
        has_ports = False
        for o in target.options:
            if o.name == "--to-ports" or (o.name[:5] == "--to-" and _has_port(o.value)):
                has_ports = True
                break
        if has_ports and (proto not in _PORT_PROTOS or proto_negated):
            return (
                tname,
                f"-j {tname} with ports needs -p tcp, udp, udplite, sctp or dccp",
            )
    elif tname == "REJECT":
        reject = target.option("--reject-with")
        if reject is not None and reject.value == "tcp-reset" and (proto != "tcp" or proto_negated):
            # ipt_REJECT / ip6t_REJECT checkentry
            return "--reject-with", "--reject-with tcp-reset needs -p tcp"
    elif tname == "TCPMSS" and (proto != "tcp" or proto_negated):
        return tname, "-j TCPMSS needs -p tcp"
    return None


def _has_port(value: str) -> bool:
    if value.startswith("["):
        return "]:" in value
    return value.count(":") == 1


def _need_one(m: Match, seen: set[str]) -> str | None:
    need = _MATCH_NEEDS[m.module]
    if need and not (seen & need):
        return f"-m {m.module} needs one of {', '.join(sorted(need))}"
    return None


def _conntrack(m: Match, seen: set[str]) -> str | None:
    return None if seen else "-m conntrack needs at least one option"


def _multiport(m: Match, seen: set[str]) -> str | None:
    return _need_one(m, seen)


def _statistic(m: Match, seen: set[str]) -> str | None:
    mode = m.option("--mode")
    if mode is None:
        return "-m statistic needs --mode"
    if mode.value == "random":
        if "--every" in seen or "--packet" in seen:
            return "--every/--packet need --mode nth"
        return None
    if mode.value == "nth":
        every = m.option("--every")
        if every is None:
            return "--mode nth needs --every"
        packet = m.option("--packet")
        if packet is None:
            return "--mode nth needs --packet"
        if "--probability" in seen:
            return "--probability needs --mode random"
        if _int(every.value) == 0:
            return "--every must be at least 1"
        if _int(packet.value) >= _int(every.value):
            return "--packet must be below --every"
        return None
    return f'unknown statistic mode "{mode.value}"'


def _addrtype(m: Match, seen: set[str]) -> str | None:
    problem = _need_one(m, seen)
    if problem:
        return problem
    if "--limit-iface-in" in seen and "--limit-iface-out" in seen:
        return "--limit-iface-in and --limit-iface-out exclude each other"
    return None


def _recent(m: Match, seen: set[str]) -> str | None:
    commands = seen & {"--set", "--rcheck", "--update", "--remove"}
    if len(commands) > 1:
        return "-m recent takes only one of --set, --rcheck, --update, --remove"
    if "--rttl" in seen and not (commands & {"--rcheck", "--update"}):
        return "--rttl needs --rcheck or --update"
    return None


_MATCH_CHECKS: dict[str, Callable[[Match, set[str]], str | None]] = {
    "comment": _need_one,
    "mark": _need_one,
    "connmark": _need_one,
    "state": _need_one,
    "set": _need_one,
    "multiport": _multiport,
    "statistic": _statistic,
    "addrtype": _addrtype,
    "conntrack": _conntrack,
    "recent": _recent,
}

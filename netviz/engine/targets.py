"""Target evaluators: what a matched rule's `-j TARGET` does to the packet.

Jumps and gotos to user chains, and RETURN, are the pipeline's business;
everything else is here, one function per target in `TARGETS`.  Packets and
conntrack entries are frozen: every change makes a new one.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import replace

from .context import EvalContext, TargetOutcome
from .matches import parse_port_range
from .packet import Conntrack, IPAddress, Packet
from .ruleset import Family, Rule, Target

TargetFn = Callable[[Target, EvalContext], TargetOutcome]

_FULL = 0xFFFFFFFF


def _int(text: str) -> int:
    return int(text, 0)


def _value_mask(text: str, default_mask: int = _FULL) -> tuple[int, int]:
    value, _, mask = text.partition("/")
    return _int(value), (_int(mask) if mask else default_mask)


def _cont(ctx: EvalContext, note: str = "", packet: Packet | None = None, **kw: bool) -> TargetOutcome:
    return TargetOutcome("CONTINUE", packet or ctx.packet, note, **kw)


def apply_target(rule: Rule, ctx: EvalContext) -> TargetOutcome:
    target = rule.target
    if target is None:
        return _cont(ctx)
    fn = TARGETS.get(target.name)
    if fn is None:
        return TargetOutcome(
            "CONTINUE", ctx.packet, f"netviz does not evaluate -j {target.name}", unknown=True
        )
    try:
        return fn(target, ctx)
    except (ValueError, IndexError) as exc:
        return TargetOutcome(
            "CONTINUE", ctx.packet, f"cannot read {target.text()}: {exc}", unknown=True
        )


# -- standard verdicts -------------------------------------------------------------


def _verdict(name: str) -> TargetFn:
    def fn(target: Target, ctx: EvalContext) -> TargetOutcome:
        return TargetOutcome(name, ctx.packet)

    return fn


def _queue(target: Target, ctx: EvalContext) -> TargetOutcome:
    num = target.option("--queue-num")
    balance = target.option("--queue-balance")
    where = f"queue {num.value}" if num else f"queues {balance.value}" if balance else "queue 0"
    note = f"handed to userspace {where}; netviz cannot know its verdict"
    if target.option("--queue-bypass") is not None:
        note += " (--queue-bypass: accepted if no program listens)"
    return TargetOutcome("QUEUE", ctx.packet, note, assumed=True)


def _reject(target: Target, ctx: EvalContext) -> TargetOutcome:
    opt = target.option("--reject-with")
    if opt is not None:
        how = opt.value
    elif ctx.packet.family is Family.IPV6:
        how = "icmp6-port-unreachable"
    else:
        how = "icmp-port-unreachable"
    # REJECT sends the error/RST and then behaves as DROP (ipt_REJECT).
    return TargetOutcome("DROP", ctx.packet, f"rejected with {how}")


# -- non-terminating: logging, marks, headers ------------------------------------------


def _log(target: Target, ctx: EvalContext) -> TargetOutcome:
    prefix = target.option("--log-prefix") or target.option("--nflog-prefix") or target.option("--ulog-prefix")
    group = target.option("--nflog-group")
    note = f"logged with prefix {prefix.value!r}" if prefix else "logged"
    if group:
        note += f" to nflog group {group.value}"
    return _cont(ctx, note)


def mark_operation(target: Target, prefix: str = "") -> tuple[int, int]:
    """(value, mask) of `MARK`/`CONNMARK` options as mark_tg_parse() maps them;
    the kernel then computes mark = (mark & ~mask) ^ value."""
    for opt in target.options:
        name = opt.name
        if name == f"--set-x{prefix}mark":
            return _value_mask(opt.value)
        if name == f"--set-{prefix}mark":
            v, m = _value_mask(opt.value)
            return v, (v | m) & _FULL
        if name == f"--or-{prefix}mark":
            v = _int(opt.value)
            return v, v
        if name == f"--and-{prefix}mark":
            v = _int(opt.value)
            return 0, (~v) & _FULL
        if name == f"--xor-{prefix}mark":
            return _int(opt.value), 0
    raise ValueError("no mark operation")


def _mark(target: Target, ctx: EvalContext) -> TargetOutcome:
    value, mask = mark_operation(target)
    old = ctx.packet.mark
    new = ((old & ~mask) ^ value) & _FULL
    packet = ctx.packet.with_(mark=new) if new != old else ctx.packet
    return _cont(ctx, f"mark {old:#x} → {new:#x}", packet)


def _connmark(target: Target, ctx: EvalContext) -> TargetOutcome:
    ct = ctx.packet.ct
    if ct is None or ct.state in ("INVALID", "UNTRACKED"):
        # connmark_tg(): no conntrack entry → XT_CONTINUE, nothing changes.
        return _cont(ctx, "no conntrack entry: CONNMARK does nothing")
    names = {o.name for o in target.options}
    mask_opt = target.option("--mask")
    nfmask_opt = target.option("--nfmask")
    ctmask_opt = target.option("--ctmask")
    nfmask = _int(nfmask_opt.value) if nfmask_opt else (_int(mask_opt.value) if mask_opt else _FULL)
    ctmask = _int(ctmask_opt.value) if ctmask_opt else (_int(mask_opt.value) if mask_opt else _FULL)
    p = ctx.packet
    if "--save-mark" in names:
        new_ct = ((ct.mark & ~ctmask) ^ (p.mark & nfmask)) & _FULL
        packet = p.with_(ct=replace(ct, mark=new_ct))
        return _cont(ctx, f"ctmark {ct.mark:#x} → {new_ct:#x} (saved from mark {p.mark:#x})", packet)
    if "--restore-mark" in names:
        new_nf = ((p.mark & ~nfmask) ^ (ct.mark & ctmask)) & _FULL
        packet = p.with_(mark=new_nf)
        return _cont(ctx, f"mark {p.mark:#x} → {new_nf:#x} (restored from ctmark {ct.mark:#x})", packet)
    value, mask = mark_operation(target)
    new = ((ct.mark & ~mask) ^ value) & _FULL
    packet = p.with_(ct=replace(ct, mark=new))
    return _cont(ctx, f"ctmark {ct.mark:#x} → {new:#x}", packet)


def _already_tracked(ctx: EvalContext) -> TargetOutcome | None:
    # xt_ct_target()/notrack_tg(): "Previously seen (loopback)? Ignore." —
    # a packet that already carries a conntrack entry keeps it.
    # The check is `skb->_nfct != 0`, so a template attached by an earlier
    # CT rule (--zone, --helper…) counts too: the first CT/NOTRACK wins.
    if ctx.packet.get_extra("ct_template") is not None:
        return _cont(ctx, "the packet already has a conntrack template from an earlier CT rule: this one does nothing")
    if ctx.packet.ct is None:
        return None
    return _cont(ctx, "the packet already has a conntrack entry (looped back): CT does nothing")


def _notrack(target: Target, ctx: EvalContext) -> TargetOutcome:
    seen = _already_tracked(ctx)
    if seen is not None:
        return seen
    # The untracked template: conntrack skips the packet, no NAT ever.
    packet = ctx.packet.with_(ct=Conntrack(state="UNTRACKED"))
    return _cont(ctx, "untracked: conntrack and NAT will skip this packet", packet)


def _ct(target: Target, ctx: EvalContext) -> TargetOutcome:
    if target.option("--notrack") is not None:
        return _notrack(target, ctx)
    seen = _already_tracked(ctx)
    if seen is not None:
        return seen
    notes = []
    zone = target.option("--zone") or target.option("--zone-orig") or target.option("--zone-reply")
    if zone is not None:
        notes.append(f"conntrack zone {zone.value}")
    helper = target.option("--helper")
    if helper is not None:
        notes.append(f"helper {helper.value} attached to the new connection")
    for name in ("--timeout", "--ctevents", "--expevents"):
        opt = target.option(name)
        if opt is not None:
            notes.append(f"{name[2:]} {opt.value}")
    # xt_ct_target() attaches the template to the skb (skb->_nfct).
    packet = ctx.packet.with_(extra=(*ctx.packet.extra, ("ct_template", zone.value if zone else "0")))
    return _cont(ctx, "; ".join(notes) or "conntrack template set", packet)


def _simple_note(text: str) -> TargetFn:
    def fn(target: Target, ctx: EvalContext) -> TargetOutcome:
        return _cont(ctx, text)

    return fn


_DSCP_CLASSES = {
    **{f"cs{i}": i * 8 for i in range(8)},
    "af11": 10, "af12": 12, "af13": 14, "af21": 18, "af22": 20, "af23": 22,
    "af31": 26, "af32": 28, "af33": 30, "af41": 34, "af42": 36, "af43": 38,
    "ef": 46, "be": 0,
}
_TOS_NAMES = {
    "minimize-delay": 0x10, "maximize-throughput": 0x08, "maximize-reliability": 0x04,
    "minimize-cost": 0x02, "normal-service": 0x00,
}


def _dscp(target: Target, ctx: EvalContext) -> TargetOutcome:
    opt = target.option("--set-dscp")
    if opt is not None:
        dscp = _int(opt.value)
    else:
        cls = target.option("--set-dscp-class")
        if cls is None:
            raise ValueError("DSCP needs --set-dscp or --set-dscp-class")
        dscp = _DSCP_CLASSES[cls.value.lower()]
    old = ctx.packet.tos
    new = (old & 0x03) | (dscp << 2)
    return _cont(ctx, f"TOS {old:#x} → {new:#x} (DSCP {dscp})", ctx.packet.with_(tos=new))


def _tos(target: Target, ctx: EvalContext) -> TargetOutcome:
    value = mask = 0
    found = False
    for opt in target.options:
        if opt.name == "--set-tos":
            text = opt.value
            if text.lower() in _TOS_NAMES:
                value, mask = _TOS_NAMES[text.lower()], 0x3F
            else:
                value, mask = _value_mask(text, 0xFF)
            found = True
        elif opt.name == "--and-tos":
            value, mask, found = 0, (~_int(opt.value)) & 0xFF, True
        elif opt.name == "--or-tos":
            value = mask = _int(opt.value)
            found = True
        elif opt.name == "--xor-tos":
            value, mask, found = _int(opt.value), 0, True
    if not found:
        raise ValueError("TOS needs --set-tos/--and-tos/--or-tos/--xor-tos")
    old = ctx.packet.tos
    # tos_tg(): nv = (orig & ~mask) ^ value
    new = ((old & ~mask) ^ value) & 0xFF
    return _cont(ctx, f"TOS {old:#x} → {new:#x}", ctx.packet.with_(tos=new))


def _ttl(prefix: str) -> TargetFn:
    label = "TTL" if prefix == "ttl" else "hop limit"

    def fn(target: Target, ctx: EvalContext) -> TargetOutcome:
        old = ctx.packet.ttl
        new = old
        for opt in target.options:
            if opt.name == f"--{prefix}-set":
                new = int(opt.value)
            elif opt.name == f"--{prefix}-dec":
                new = max(old - int(opt.value), 0)
            elif opt.name == f"--{prefix}-inc":
                new = min(old + int(opt.value), 255)
        return _cont(ctx, f"{label} {old} → {new}", ctx.packet.with_(ttl=new))

    return fn


def _set_target(target: Target, ctx: EvalContext) -> TargetOutcome:
    from .matches import set_change

    parts = []
    for name, add in (("--add-set", True), ("--del-set", False)):
        opt = target.option(name)
        if opt is None:
            continue
        if len(opt.values) >= 2:
            set_name, flags_text = opt.values[0], opt.values[1]
        else:
            set_name, _, flags_text = opt.value.partition(" ")
        flags = tuple(f.strip() for f in flags_text.split(",") if f.strip())
        ipset = ctx.ruleset.ipset(set_name)
        if ipset is None:
            verb = "added to" if add else "deleted from"
            parts.append(f"{verb} set {set_name} (not in the uploaded sets, so later lookups cannot see it)")
            continue
        parts.append(set_change(ctx, ipset, flags, add))
    if target.option("--map-set") is not None:
        parts.append("--map-set is not followed")
    return _cont(ctx, "; ".join(parts) or "SET")


def _tee(target: Target, ctx: EvalContext) -> TargetOutcome:
    gw = target.option("--gateway")
    return _cont(ctx, f"a copy is sent to {gw.value if gw else 'a gateway'}; the original continues")


def _unknown_cont(why: str) -> TargetFn:
    def fn(target: Target, ctx: EvalContext) -> TargetOutcome:
        return TargetOutcome("CONTINUE", ctx.packet, why, unknown=True)

    return fn


def _synproxy(target: Target, ctx: EvalContext) -> TargetOutcome:
    flags = ctx.packet.tcp_flags
    if ctx.packet.proto == 6 and "SYN" in flags and "ACK" not in flags:
        # synproxy_tg4(): a SYN is answered with a SYN cookie and consumed.
        return TargetOutcome("DROP", ctx.packet, "SYN answered by SYNPROXY with a cookie; the SYN is consumed")
    return TargetOutcome(
        "CONTINUE", ctx.packet, "SYNPROXY: depends on the cookie handshake", unknown=True
    )


# -- NAT --------------------------------------------------------------------------------


def _split_hostport(text: str) -> tuple[str, str]:
    """`1.2.3.4-1.2.3.9:80-90` → ("1.2.3.4-1.2.3.9", "80-90");
    `[fe80::1]-[fe80::9]:80` → ("fe80::1-fe80::9", "80"); `:80` → ("", "80")."""
    if "[" in text:
        addr_part, _, rest = text.rpartition("]")
        addr_part = addr_part.replace("[", "").replace("]", "")
        port = rest[1:] if rest.startswith(":") else ""
        return addr_part, port
    if text.count(":") > 1:
        return text, ""  # bare IPv6 address(es), no port
    addr, _, port = text.partition(":")
    return addr, port


def parse_nat_range(text: str) -> tuple[IPAddress | None, IPAddress | None, int | None, int | None, int | None]:
    """(min addr, max addr, min port, max port, base port) of a NAT range."""
    addr_part, port_part = _split_hostport(text)
    lo_addr: IPAddress | None = None
    hi_addr: IPAddress | None = None
    if addr_part:
        if "-" in addr_part:
            a, _, b = addr_part.partition("-")
            lo_addr, hi_addr = ipaddress.ip_address(a), ipaddress.ip_address(b)
        else:
            lo_addr = hi_addr = ipaddress.ip_address(addr_part)
    lo_port = hi_port = base = None
    if port_part:
        port_part, _, base_text = port_part.partition("/")
        lo_port, hi_port = parse_port_range(port_part.replace("-", ":"))
        if base_text:
            base = parse_port_range(base_text)[0]
    return lo_addr, hi_addr, lo_port, hi_port, base


def _choose_port(
    orig: int | None, lo: int | None, hi: int | None, base: int | None, notes: list[str]
) -> tuple[int | None, bool]:
    """The port after NAT and whether that choice is an assumption.

    get_unique_tuple() keeps a port that is already inside the range (and
    unique); with a /base offset, port = min + (orig - base) mod size;
    otherwise the kernel walks the range from a hashed offset.
    """
    if orig is None or lo is None or hi is None:
        return orig, False
    size = hi - lo + 1
    if base is not None:
        return lo + ((orig - base) & 0xFFFF) % size, False
    if lo <= orig <= hi:
        return orig, False
    if size > 1:
        notes.append(f"port {lo} assumed from {lo}-{hi} (the kernel picks a free one)")
        return lo, True
    return lo, False


def _choose_addr(
    orig: IPAddress, lo: IPAddress | None, hi: IPAddress | None, keep_if_inside: bool, notes: list[str]
) -> tuple[IPAddress, bool]:
    if lo is None or hi is None:
        return orig, False
    if lo == hi:
        return lo, False
    if keep_if_inside and lo <= orig <= hi:  # type: ignore[operator]
        return orig, False
    # find_best_ips_proto(): a hash of the tuple picks the address.
    notes.append(f"address {lo} assumed from {lo}-{hi} (the kernel hashes the connection)")
    return lo, True


def _rewrite_dst(p: Packet, dst: IPAddress, dport: int | None) -> Packet:
    ct = p.ct
    if ct is not None and ct.state not in ("INVALID", "UNTRACKED"):
        # nf_nat_setup_info() alters the reply tuple: replies come from the
        # new destination.
        ct = replace(ct, reply_src=dst, reply_sport=dport if dport is not None else ct.reply_sport, dnat_done=True)
    return p.with_(dst=dst, dport=dport if p.has_ports else p.dport, ct=ct)


def _rewrite_src(p: Packet, src: IPAddress, sport: int | None) -> Packet:
    ct = p.ct
    if ct is not None and ct.state not in ("INVALID", "UNTRACKED"):
        ct = replace(ct, reply_dst=src, reply_dport=sport if sport is not None else ct.reply_dport, snat_done=True)
    return p.with_(src=src, sport=sport if p.has_ports else p.sport, ct=ct)


def _flags_note(target: Target, notes: list[str]) -> bool:
    if target.option("--random-fully") is not None or target.option("--random") is not None:
        notes.append("source port may be randomised (--random/--random-fully); kept as is here")
        return True
    return False


def _dnat(target: Target, ctx: EvalContext) -> TargetOutcome:
    opt = target.option("--to-destination")
    if opt is None:
        raise ValueError("DNAT needs --to-destination")
    lo, hi, plo, phi, base = parse_nat_range(opt.value)
    p = ctx.packet
    notes: list[str] = []
    dst, a1 = _choose_addr(p.dst, lo, hi, False, notes)
    dport, a2 = _choose_port(p.dport, plo, phi, base, notes)
    new = _rewrite_dst(p, dst, dport)
    notes.insert(0, _nat_words("DNAT", p, new, dst=True))
    return TargetOutcome("ACCEPT", new, "; ".join(notes), assumed=a1 or a2)


def _snat(target: Target, ctx: EvalContext) -> TargetOutcome:
    opt = target.option("--to-source")
    if opt is None:
        raise ValueError("SNAT needs --to-source")
    lo, hi, plo, phi, base = parse_nat_range(opt.value)
    p = ctx.packet
    notes: list[str] = []
    # For SNAT the original source is kept when it already lies in the range.
    src, a1 = _choose_addr(p.src, lo, hi, True, notes)
    sport, a2 = _choose_port(p.sport, plo, phi, base, notes)
    a3 = _flags_note(target, notes)
    new = _rewrite_src(p, src, sport)
    notes.insert(0, _nat_words("SNAT", p, new, dst=False))
    return TargetOutcome("ACCEPT", new, "; ".join(notes), assumed=a1 or a2 or a3)


def _masquerade(target: Target, ctx: EvalContext) -> TargetOutcome:
    p = ctx.packet
    dev = p.out_iface
    if not dev:
        return TargetOutcome("ACCEPT", p, "MASQUERADE without an output interface", unknown=True)
    version = 6 if p.family is Family.IPV6 else 4
    route = ctx.host.route(p.dst, oif=dev)
    nexthop = route.gateway or p.dst
    # nf_nat_masquerade_ipv4(): inet_select_addr(out, nexthop, UNIVERSE) —
    # an address of the out device on the next hop's subnet, else its first,
    # else (lo has only host-scope addresses) the first of another device.
    src = ctx.host.select_source(dev, version, towards=nexthop)
    if src is None:
        return TargetOutcome("DROP", p, f"MASQUERADE: no IPv{version} address to use on {dev}, packet dropped")
    notes: list[str] = []
    ports = target.option("--to-ports")
    plo = phi = None
    if ports is not None:
        plo, phi = parse_port_range(ports.value.replace("-", ":"))
    sport, a1 = _choose_port(p.sport, plo, phi, None, notes)
    a2 = _flags_note(target, notes)
    new = _rewrite_src(p, src, sport)
    notes.insert(0, _nat_words("MASQUERADE", p, new, dst=False) + f" (address of {dev})")
    return TargetOutcome("ACCEPT", new, "; ".join(notes), assumed=a1 or a2)


def _redirect(target: Target, ctx: EvalContext) -> TargetOutcome:
    p = ctx.packet
    version = 6 if p.family is Family.IPV6 else 4
    dst: IPAddress | None
    if p.in_iface is None or ctx.hook == "OUTPUT":
        # nf_nat_redirect_ipv4(): locally generated → loopback address.
        dst = ipaddress.IPv4Address("127.0.0.1") if version == 4 else ipaddress.IPv6Address("::1")
    else:
        dst = ctx.host.primary_address(p.in_iface, version)
        if dst is None:
            return TargetOutcome("DROP", p, f"REDIRECT: {p.in_iface} has no IPv{version} address, packet dropped")
    notes: list[str] = []
    ports = target.option("--to-ports")
    dport = p.dport
    a1 = False
    if ports is not None:
        plo, phi = parse_port_range(ports.value.replace("-", ":"))
        dport, a1 = _choose_port(p.dport, plo, phi, None, notes)
    new = _rewrite_dst(p, dst, dport)
    notes.insert(0, _nat_words("REDIRECT", p, new, dst=True))
    return TargetOutcome("ACCEPT", new, "; ".join(notes), assumed=a1)


def _netmap(target: Target, ctx: EvalContext) -> TargetOutcome:
    opt = target.option("--to")
    if opt is None:
        raise ValueError("NETMAP needs --to")
    net = ipaddress.ip_network(opt.value, strict=False)
    full = (1 << net.max_prefixlen) - 1
    mask = int(net.netmask)
    p = ctx.packet
    # netmap_tg4(): PREROUTING/OUTPUT map the destination, POSTROUTING/INPUT
    # the source; the host part of the address is kept.
    if ctx.hook in ("PREROUTING", "OUTPUT"):
        new_addr = ipaddress.ip_address((int(p.dst) & (full & ~mask)) | int(net.network_address))
        new = _rewrite_dst(p, new_addr, p.dport)
        return TargetOutcome("ACCEPT", new, _nat_words("NETMAP", p, new, dst=True))
    new_addr = ipaddress.ip_address((int(p.src) & (full & ~mask)) | int(net.network_address))
    new = _rewrite_src(p, new_addr, p.sport)
    return TargetOutcome("ACCEPT", new, _nat_words("NETMAP", p, new, dst=False))


def _nat_words(name: str, old: Packet, new: Packet, dst: bool) -> str:
    def show(addr: IPAddress, port: int | None, has_ports: bool) -> str:
        text = f"[{addr}]" if addr.version == 6 and has_ports and port is not None else str(addr)
        return f"{text}:{port}" if has_ports and port is not None else text

    if dst:
        return f"{name}: destination {show(old.dst, old.dport, old.has_ports)} → {show(new.dst, new.dport, new.has_ports)}"
    return f"{name}: source {show(old.src, old.sport, old.has_ports)} → {show(new.src, new.sport, new.has_ports)}"


TARGETS: dict[str, TargetFn] = {
    "ACCEPT": _verdict("ACCEPT"),
    "DROP": _verdict("DROP"),
    "RETURN": _verdict("RETURN"),
    "QUEUE": _queue,
    "NFQUEUE": _queue,
    "REJECT": _reject,
    "LOG": _log,
    "NFLOG": _log,
    "ULOG": _log,
    "MARK": _mark,
    "CONNMARK": _connmark,
    "CT": _ct,
    "NOTRACK": _notrack,
    "TRACE": _simple_note("packet flagged for TRACE"),
    "CHECKSUM": _simple_note("checksum filled in"),
    "CLASSIFY": _simple_note("traffic-control class set"),
    "TCPMSS": _simple_note("TCP MSS option clamped"),
    "TCPOPTSTRIP": _simple_note("TCP options stripped"),
    "AUDIT": _simple_note("audit record written"),
    "CONNSECMARK": _simple_note("security mark copied"),
    "SECMARK": _simple_note("security mark set"),
    "IDLETIMER": _simple_note("idle timer refreshed"),
    "LED": _simple_note("LED blinked"),
    "RATEEST": _simple_note("rate estimator updated"),
    "DSCP": _dscp,
    "TOS": _tos,
    "TTL": _ttl("ttl"),
    "HL": _ttl("hl"),
    "SET": _set_target,
    "TEE": _tee,
    "HMARK": _unknown_cont("HMARK sets the mark from a hash of the packet"),
    "TPROXY": _unknown_cont("TPROXY depends on a local transparent socket"),
    "SYNPROXY": _synproxy,
    "CLUSTERIP": _unknown_cont("CLUSTERIP depends on cluster node hashing"),
    "DNAT": _dnat,
    "SNAT": _snat,
    "MASQUERADE": _masquerade,
    "REDIRECT": _redirect,
    "NETMAP": _netmap,
}

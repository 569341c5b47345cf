"""The netfilter flow: hooks, tables in priority order, routing decisions.

One packet is walked through the hooks exactly as the kernel calls them
(shared reference: netfilter-semantics.md §1, §2, §6):

    arriving:  PREROUTING → route → INPUT                (for this host)
                                  → FORWARD → POSTROUTING (forwarded)
    local:     route → OUTPUT → POSTROUTING [→ lo: PREROUTING → INPUT]

Within a hook the tables and base chains run by priority (netviz/engine/
hooks.py is the one source of that order); each is its own hook function, so
ACCEPT ends only the current one while DROP ends everything (nf_hook_slow).
"""

from __future__ import annotations

import dataclasses
import ipaddress
from dataclasses import dataclass, replace
from typing import Any, Protocol

from .conntrack import new_tcp_state, status_words, track
from .context import EvalContext, Result, TraceState
from .hooks import HOOKS, NAT_MANIP, HookEntry, hook_order
from .host import REJECT_TYPES, Host
from .index import MIN_SKIP_RUN, next_candidate, skip_step
from .limits import JUMP_STACK_SIZE, WalkLimitError
from .matches import evaluate_rule
from .nft.evaluate import NftEval, compile_nft, run_chain
from .nft.model import NftRuleset
from .packet import (
    TCP_FLAG_LETTERS,
    Conntrack,
    Packet,
    parse_address,
    proto_name,
    proto_number,
)
from .ruleset import Chain, Family, Rule, Ruleset
from .targets import apply_target
from .trace import Step, StepKind, Trace, fate_of

# nf_tables' jump stack; the loader refuses deeper nesting and loops
# (limits.check_chain_graph), so a deeper walk means a ruleset that did not
# come through the parser.
MAX_JUMP_DEPTH = JUMP_STACK_SIZE

# IP total length of the packets the scenario describes, when it gives none:
# a Linux SYN carries 20 bytes of TCP options (MSS, SACK_PERM, TS, NOP, WS);
# UDP has an empty payload; ICMP echo carries ping's default 56 bytes.
DEFAULT_LENGTH = {
    (Family.IPV4, 6): 60,
    (Family.IPV4, 17): 28,
    (Family.IPV4, 1): 84,
    (Family.IPV6, 6): 80,
    (Family.IPV6, 17): 48,
    (Family.IPV6, 58): 104,
    # An SCTP INIT (12-byte common header, 20-byte chunk); UDP-Lite as UDP.
    (Family.IPV4, 132): 52,
    (Family.IPV6, 132): 72,
    (Family.IPV4, 136): 28,
    (Family.IPV6, 136): 48,
}


class ScenarioLike(Protocol):
    # Read-only, so frozen dataclasses (netviz.scenario.Scenario) qualify.
    @property
    def ruleset_text(self) -> str: ...
    @property
    def ipsets_text(self) -> str | None: ...
    @property
    def family(self) -> str: ...
    @property
    def host(self) -> dict[str, Any]: ...
    @property
    def packet(self) -> dict[str, Any]: ...


class PacketError(ValueError):
    pass


def packet_from_dict(data: dict[str, Any], family: Family | str = Family.IPV4) -> Packet:
    """The scenario's `packet` object → Packet (defaults from scenario.md)."""
    family = Family(family)
    try:
        proto = proto_number(str(data.get("proto", "tcp")))
    except ValueError as exc:
        raise PacketError(str(exc)) from exc
    if family is Family.IPV6 and proto == 1:
        proto = 58  # "icmp" in an IPv6 scenario means ICMPv6
    try:
        src = parse_address(str(data["src"]))
        dst = parse_address(str(data["dst"]))
    except KeyError as exc:
        raise PacketError(f"packet.{exc.args[0]} is required") from exc
    except ValueError as exc:
        raise PacketError(f"bad address: {exc}") from exc
    want = 4 if family is Family.IPV4 else 6
    if src.version != want or dst.version != want:
        raise PacketError(f"addresses must be IPv{want} in an {family.value} scenario")
    sport = dport = None
    if proto in (6, 17, 132, 136, 33):
        sport = _port(data.get("sport", 40000), "sport")
        dport = _port(data.get("dport", 80), "dport")
    flags: frozenset[str] = frozenset()
    if proto == 6:
        letters = str(data.get("tcp_flags", "S") or "").upper()
        bad = [ch for ch in letters if ch not in TCP_FLAG_LETTERS]
        if bad:
            raise PacketError(f"unknown TCP flag letter {bad[0]!r} (use F S R P A U)")
        flags = frozenset(TCP_FLAG_LETTERS[ch] for ch in letters)
    icmp_type = icmp_code = None
    if proto in (1, 58):
        icmp_type = int(data.get("icmp_type", 8 if proto == 1 else 128))
        icmp_code = int(data.get("icmp_code", 0))
    in_iface = data.get("in_iface") or None
    ctstate = str(data.get("ctstate", "NEW") or "NEW").upper()
    if ctstate not in ("NEW", "ESTABLISHED", "RELATED", "INVALID", "UNTRACKED"):
        raise PacketError(f"unknown ctstate {ctstate!r}")
    length = int(data.get("length") or DEFAULT_LENGTH.get((family, proto), 40 if want == 4 else 60))
    extra = tuple(sorted((k, data[k]) for k in ("mac", "uid", "gid") if data.get(k) is not None))
    return Packet(
        family=family,
        proto=proto,
        src=src,
        dst=dst,
        sport=sport,
        dport=dport,
        tcp_flags=flags,
        icmp_type=icmp_type,
        icmp_code=icmp_code,
        in_iface=in_iface,
        mark=_int(data.get("mark", 0)),
        length=length,
        ttl=int(data.get("ttl", 64)),
        tos=_int(data.get("tos", 0)),
        ctstate_in=ctstate,
        extra=extra,
    )


def _int(value: Any) -> int:
    if isinstance(value, str):
        return int(value, 0)
    return int(value or 0)


def _port(value: Any, name: str) -> int:
    port = int(value)
    if not 0 <= port <= 65535:
        raise PacketError(f"{name} {port} is out of range 0-65535")
    return port


def trace_scenario(scenario: ScenarioLike, state: TraceState | None = None) -> Trace:
    from .nft.parse_json import parse_nft
    from .parser import parse_ruleset

    family = Family(scenario.family or "ipv4")
    ruleset = parse_ruleset(scenario.ruleset_text or "", scenario.ipsets_text, family=family)
    nft_text = getattr(scenario, "nftables_text", None)
    nft = parse_nft(nft_text) if nft_text else None
    if state is None:
        state = state_from_options(getattr(scenario, "options", None) or {})
    return trace_dicts(ruleset, scenario.host or {}, scenario.packet, family, state, nft=nft)


def trace_dicts(
    ruleset: Ruleset,
    host: dict[str, Any],
    packet: dict[str, Any],
    family: Family | str,
    state: TraceState | None = None,
    nft: NftRuleset | None = None,
) -> Trace:
    """The scenario's `host` and `packet` objects traced through a parsed
    ruleset and, when given, a parsed nft listing beside it."""
    family = Family(family)
    return trace_packet(
        ruleset, Host.from_dict(host, family), packet_from_dict(packet, family), state, nft=compile_nft(nft, family)
    )


def state_from_options(options: dict[str, Any]) -> TraceState:
    """`options` of a scenario: {"seed": 1, "statistic": {"nat:KUBE-SVC-X:1": true}}."""
    state = TraceState(seed=int(options.get("seed", 0)))
    for key, value in (options.get("statistic") or {}).items():
        head, index = str(key).rsplit(":", 1)
        table, chain = head.split(":", 1)
        state.statistic_choices[(table, chain, int(index))] = bool(value)
    return state


def trace_packet(
    ruleset: Ruleset, host: Host, packet: Packet, state: TraceState | None = None, nft: NftEval | None = None
) -> Trace:
    walker = _Walker(ruleset, host, state or TraceState(), nft)
    return walker.run(packet)


@dataclass
class _TableRun:
    verdict: str  # ACCEPT, DROP, QUEUE
    packet: Packet


class _Walker:
    def __init__(self, ruleset: Ruleset, host: Host, state: TraceState, nft: NftEval | None = None) -> None:
        self.ruleset = ruleset
        self.nft = nft
        self.host = host
        self.state = state
        self.steps: list[Step] = []
        self.hooks: list[str] = []
        self.uncertain: list[tuple[str, str, int]] = []
        self.fate_step: Step | None = None
        self.conntrack_on = conntrack_enabled(ruleset, nft)
        tables = [t.name for t in ruleset.tables]
        # iptables-restore ran first: if its rules need conntrack, conntrack
        # registered before any nft base chain.
        ct_seq = -1.0 if conntrack_enabled(ruleset) or nft is None else nft.conntrack_seq
        nat_seqs = [float(i) for i, t in enumerate(tables) if t == "nat"]
        if nft is not None:
            nat_seqs += [e.seq for entries in nft.entries.values() for e in entries if e.type == "nat"]
        nat_seq = min(nat_seqs) if nat_seqs else None
        self.order = {
            hook: hook_order(hook, tables, nft.entries.get(hook, ()) if nft else (), ct_seq, nat_seq)
            for hook in HOOKS
        }
        self.budget = state.max_steps
        # (how, the packet as it was) when a REJECT or a failed route lookup
        # answered the packet with an RST or ICMP error.
        self.reject: tuple[str, Packet] | None = None
        self.related_depth = 0

    # -- the three paths ---------------------------------------------------

    def run(self, packet: Packet) -> Trace:
        packet_in = packet
        if self.related_depth == 0:
            # A new packet, a new jiffy; its RST or ICMP error shares it.
            self.state.jiffy += 1
        if packet.is_local_origin:
            path, verdict, packet = self._local(packet)
        else:
            if self.host.interface(packet.in_iface or "") is None:
                raise PacketError(
                    f"the host has no interface {packet.in_iface!r}; "
                    "add it to the host profile or pick another input interface"
                )
            path, verdict, packet = self._arriving(packet)
        self._confirm(packet, verdict)
        related = None
        answer = None
        if self.reject is not None and verdict == "DROP":
            how, rejected = self.reject
            answer = answer_packet(how, rejected, self._answer_source(rejected))
        if answer is not None and self.related_depth == 0:
            sub = _Walker(self.ruleset, self.host, self.state, self.nft)
            sub.related_depth = self.related_depth + 1
            related = sub.run(answer)
        return Trace(
            packet_in=packet_in,
            steps=tuple(self.steps),
            verdict=verdict,
            packet_out=packet,
            path=path,
            summary=self._summary(path, verdict, packet),
            uncertain=tuple(dict.fromkeys(self.uncertain)),
            statistic=tuple(self.state.statistic_seen),
            hooks=tuple(self.hooks),
            seed=self.state.seed,
            fate=fate_of(verdict, self.reject[0] if self.reject else None, self.fate_step, path),
            related=related,
        )

    def _answer_source(self, rejected: Packet) -> Any:
        # icmp_send(): the rejected packet's own destination when it was
        # for this host (RTCF_LOCAL), else the source the route back to
        # the sender prefers.
        if self.host.is_local(rejected.dst):
            return rejected.dst
        back = self.host.route(rejected.src)
        if back.prefsrc is not None:
            return back.prefsrc
        return self.host.select_source(back.dev or "", rejected.family, towards=rejected.src)

    def _confirm(self, packet: Packet, verdict: str) -> None:
        """nf_conntrack_confirm() at the end of POSTROUTING/INPUT puts a new
        entry in the table; an entry already there keeps what this packet
        changed (its mark) whatever the packet's fate."""
        ct = packet.ct
        if ct is None or not ct.entry_id or ct.state in ("INVALID", "UNTRACKED"):
            return
        table = self.state.conntrack
        # __nf_conntrack_confirm() only inserts for an original-direction
        # packet: an RST or ICMP error about an unconfirmed entry does not.
        new_entry = verdict == "ACCEPT" and not ct.confirmed and ct.state != "RELATED"
        if ct.entry_id in table.entries or new_entry:
            table.store(replace(ct, dnat_done=True, snat_done=True))

    def _arriving(self, packet: Packet) -> tuple[str, str, Packet]:
        # skb->pkt_type is fixed by the link-layer destination on arrival;
        # DNAT in PREROUTING does not change it.
        l2_host = self._arrived_as_host(packet)
        if packet.get_extra("pkt_type") is None:
            kind = "host" if l2_host else "multicast" if packet.dst.is_multicast else "broadcast"
            packet = packet.with_(extra=(*packet.extra, ("pkt_type", kind)))
        bridge = self.host.bridge_of(packet.in_iface or "")
        if bridge is not None and l2_host:
            return self._bridge_arriving(packet, bridge)
        verdict, packet = self._hook("PREROUTING", packet)
        if verdict != "ACCEPT":
            return "input", "DROP", packet
        return self._routed(packet, l2_host)

    def _routed(self, packet: Packet, l2_host: bool) -> tuple[str, str, Packet]:
        # After PREROUTING: the input routing decision, INPUT or FORWARD.
        decision, packet = self._route_input(packet)
        if decision is None:
            return "input", "DROP", packet
        if decision == "local":
            verdict, packet = self._hook("INPUT", packet)
            return "input", verdict, packet
        if not l2_host:
            # ip_forward()/ip6_forward(): `if (skb->pkt_type != PACKET_HOST)
            # goto drop;` -- a frame sent to a broadcast or multicast link
            # address is never forwarded, even when DNAT made its IP
            # destination a unicast one.
            self._drop(packet, "the frame was link-layer broadcast/multicast (pkt_type not PACKET_HOST): ip_forward drops it before FORWARD")
            return "forward", "DROP", packet
        if packet.ttl <= 1:
            # ip_forward(): TTL/hop limit exhausted → ICMP time exceeded,
            # dropped before the FORWARD hook is called.
            self._drop(packet, "TTL would reach 0 when forwarded: dropped before FORWARD (ICMP time exceeded)")
            return "forward", "DROP", packet
        # ip_forward()/ip6_forward() decrement the TTL/hop limit before
        # calling the FORWARD hook, so FORWARD chains already see ttl - 1.
        packet = packet.with_(ttl=packet.ttl - 1)
        self._maybe_redirect(packet)
        verdict, packet = self._hook("FORWARD", packet)
        if verdict != "ACCEPT":
            return "forward", "DROP", packet
        verdict, packet = self._hook("POSTROUTING", packet)
        return "forward", verdict, packet

    # -- the bridge path (net/bridge/br_netfilter_hooks.c) ---------------------

    def _bridge_arriving(self, packet: Packet, bridge: Any) -> tuple[str, str, Packet]:
        """A unicast frame entering a port of a Linux bridge.

        The bridge forwards it by destination MAC: to the port the
        destination lives behind (bridged), or up to this host's IP stack
        when it is addressed to the bridge itself (the senders' gateway).
        With bridge-nf-call-iptables (ip6tables) on, br_netfilter runs the IP
        family's PREROUTING in the bridge with `-i` the bridge and the port
        visible to -m physdev, and a bridged frame's FORWARD and POSTROUTING
        too (`-i`/`-o` the bridge); without it no IP hook sees a bridged frame."""
        port = packet.in_iface or ""
        target = self.host.port_behind(bridge.name, packet.dst)
        v4 = packet.family is Family.IPV4
        knob = "net.bridge.bridge-nf-call-iptables" if v4 else "net.bridge.bridge-nf-call-ip6tables"
        up = packet.with_(in_iface=bridge.name)
        if not self.host.bridge_nf_call(4 if v4 else 6):
            if target is None:
                self._route_step("PREROUTING", packet, f"bridge decision: the frame is for {bridge.name} itself "
                                 f"(not for a machine behind one of its ports): passed up to IP as arriving on {bridge.name}")
                verdict, up = self._hook("PREROUTING", up)
                if verdict != "ACCEPT":
                    return "input", "DROP", up
                return self._routed(up, True)
            return self._bridge_forward(packet, bridge, port, target.name, f"{knob} = 0: no IP hook sees it", hooks=False)
        before = up.dst
        up = up.with_(extra=(*up.extra, ("physin", port)))
        verdict, up = self._hook("PREROUTING", up)
        if verdict != "ACCEPT":
            return "bridge" if target is not None else "input", "DROP", up
        if up.dst != before:
            # br_nf_pre_routing_finish(): DNAT changed the destination: route
            # it (ip_route_input on the bridge); leaving by the same bridge it
            # is bridged to the new destination's port, otherwise routed.
            route = self.host.route(up.dst, src=up.src, mark=up.mark, iif=bridge.name)
            if route.kind == "unicast" and route.dev == bridge.name:
                reason = self._validate_source(up, oif=bridge.name)
                if reason:
                    self._drop(up, f"routing decision: {reason}: dropped")
                    return "bridge", "DROP", up
                new = self.host.port_behind(bridge.name, up.dst)
                why = f"DNAT to {up.dst}, routed back into {bridge.name}: bridged (br_nf_pre_routing_finish)"
                return self._bridge_forward(up, bridge, port, new.name if new else None, why, hooks=True)
            self._route_step("PREROUTING", up, f"bridge decision: DNAT to {up.dst}, which {bridge.name} does not reach: "
                             "routed by this host (PREROUTING is not run again)")
            return self._routed(up, True)
        if target is None:
            self._route_step("PREROUTING", up, f"bridge decision: the frame is for {bridge.name} itself: passed up to IP "
                             f"(PREROUTING already ran in the bridge, with --physdev-in {port})")
            return self._routed(up, True)
        return self._bridge_forward(up, bridge, port, target.name, f"{knob} = 1", hooks=True)

    def _bridge_forward(self, packet: Packet, bridge: Any, port: str, target: str | None, why: str,
                        hooks: bool) -> tuple[str, str, Packet]:
        if target is None:
            others = [p.name for p in self.host.ports(bridge.name) if p.name != port]
            target = others[0] if others else port
            why += f"; no port lists {packet.dst} as a neighbor, so netviz takes {target}"
        if target == port and (iface := self.host.interface(port)) is not None and not iface.hairpin:
            # br_forward() → should_deliver(): never back out of the port it
            # came in on unless that port is in hairpin mode.
            self._drop(packet, f"bridge decision: {packet.dst} is behind {port}, the port the frame came in on, "
                               f"and hairpin mode is off on {port}: {bridge.name} does not send it back")
            return "bridge", "DROP", packet
        self._route_step("PREROUTING" if hooks else "", packet,
                         f"bridge decision: bridged {port} → {target} by {bridge.name} ({why})")
        if not hooks:
            return "bridge", "ACCEPT", packet.with_(out_iface=target)
        # br_nf_forward_ip()/br_nf_post_routing(): the IP hooks see the bridge
        # as both devices; the ports are for -m physdev.  No TTL decrement.
        packet = packet.with_(out_iface=bridge.name, extra=(*packet.extra, ("physout", target)))
        verdict, packet = self._hook("FORWARD", packet)
        if verdict != "ACCEPT":
            return "bridge", "DROP", packet
        verdict, packet = self._hook("POSTROUTING", packet)
        return "bridge", verdict, packet

    def _local(self, packet: Packet) -> tuple[str, str, Packet]:
        route = self.host.route(packet.dst, src=packet.src, mark=packet.mark)
        if route.kind in ("unreachable", "blackhole", "prohibit"):
            # The socket's own route lookup fails: the sender gets an error
            # (ENETUNREACH/EINVAL/EACCES) and netfilter never sees the packet.
            self._drop(packet, f"no route to {packet.dst}: the sending socket gets an error; no netfilter hook runs")
            return "output", "DROP", packet
        why = self._loopback_source_refused(packet, route)
        if why:
            # __mkroute_output(): -EINVAL to the sender; no netfilter hook runs.
            self._drop(packet, f"{why}: the sending socket gets EINVAL; no netfilter hook runs")
            return "output", "DROP", packet
        if route.kind == "broadcast":
            # udp_sendmsg()/ip_route_output: a broadcast destination needs
            # SO_BROADCAST, which a plain socket does not have (EACCES).
            self._drop(packet, f"{packet.dst} is a broadcast address: a socket without SO_BROADCAST gets EACCES; no netfilter hook runs")
            return "output", "DROP", packet
        out = "lo" if route.kind == "local" else route.dev
        packet = packet.with_(out_iface=out)
        self._route_step("OUTPUT", packet, f"route lookup by the socket: {packet.dst} {self._describe_route(route)}")
        verdict, packet = self._hook("OUTPUT", packet)
        if verdict != "ACCEPT":
            return "output", "DROP", packet
        verdict, packet = self._hook("POSTROUTING", packet)
        if verdict != "ACCEPT":
            return "output", "DROP", packet
        if packet.out_iface != "lo":
            return "output", "ACCEPT", packet
        # Looped back: the packet re-enters on lo with its conntrack entry
        # (and NAT bindings) attached, so nat PREROUTING/INPUT are not
        # consulted again (nf_nat_inet_fn: "Seen it before?").
        packet = packet.with_(in_iface="lo", out_iface=None)
        if packet.ct is not None and packet.ct.state not in ("UNTRACKED", "INVALID"):
            # nf_conntrack_confirm() ran at the end of POSTROUTING: the entry
            # coming back in on lo is CONFIRMED (-m conntrack --ctstatus).
            self._confirm(packet, "ACCEPT")
            packet = packet.with_(ct=dataclasses.replace(packet.ct, confirmed=True))
        verdict, packet = self._hook("PREROUTING", packet)
        if verdict != "ACCEPT":
            return "output-local", "DROP", packet
        self._route_step("PREROUTING", packet, f"routing decision: {packet.dst} is local → INPUT")
        verdict, packet = self._hook("INPUT", packet)
        return "output-local", verdict, packet

    # -- routing -----------------------------------------------------------

    def _route_input(self, packet: Packet) -> tuple[str | None, Packet]:
        reason = self._martian(packet)
        if reason:
            self._drop(packet, reason)
            return None, packet
        route = self.host.route(packet.dst, src=packet.src, mark=packet.mark, iif=packet.in_iface)
        if route.kind in ("local", "broadcast"):
            self._route_step("PREROUTING", packet, f"routing decision: {packet.dst} is {route.kind} → INPUT")
            return "local", packet
        if route.kind == "multicast":
            # ip_route_input_rcu(): multicast is delivered only for groups the
            # interface joined; without multicast routing anything else is
            # dropped.  Every interface is in the all-hosts group.
            if str(packet.dst) in ("224.0.0.1", "ff02::1"):
                self._route_step("PREROUTING", packet, f"routing decision: {packet.dst} (all hosts) is multicast → INPUT")
                return "local", packet
            self._drop(packet, f"routing decision: this host has not joined the multicast group {packet.dst}: dropped")
            return None, packet
        iif = packet.in_iface or ""
        family = "ipv4" if packet.family is Family.IPV4 else "ipv6"
        if route.kind not in REJECT_TYPES and not self.host.conf("forwarding", iif, family):
            # ip_route_input_slow(): `if (!IN_DEV_FORWARD(in_dev))` → -EHOSTUNREACH;
            # ip6_forward(): `if (!devconf_all->forwarding) goto error`.
            name = self.host.conf_names("forwarding", iif, family)
            self._drop(packet, f"routing decision: {name} = 0, so a packet arriving on {iif} for {packet.dst} "
                               "is not forwarded: dropped before FORWARD")
            return None, packet
        if route.kind != "unicast" or not route.dev:
            self._drop(packet, f"routing decision: {packet.dst} is {route.kind}: dropped (no FORWARD)")
            # ip_error(): the sender is told, except for a blackhole route.
            how = {"prohibit": "route-prohibit", "unreachable": "route-unreachable" if route.route is not None else "route-none"}
            if route.kind in how:
                self.reject = (how[route.kind], packet)
            return None, packet
        reason = self._validate_source(packet, oif=route.dev)
        if reason:
            self._drop(packet, f"routing decision: {reason}: dropped")
            return None, packet
        if packet.family is Family.IPV6 and (
            packet.src.is_link_local or packet.dst.is_link_local
        ):
            self._drop(packet, "link-local IPv6 packets are never forwarded")
            return None, packet
        packet = packet.with_(out_iface=route.dev)
        self._route_step("PREROUTING", packet, f"routing decision: {packet.dst} {self._describe_route(route)} → FORWARD")
        return "forward", packet

    def _maybe_redirect(self, packet: Packet) -> None:
        """ip_forward(): a packet leaving by the interface it came in on,
        from an on-link sender (IPSKB_DOREDIRECT, set in __mkroute_input()
        when fib_validate_source() finds the source directly connected to
        that device), makes the host send an ICMP redirect before FORWARD.
        That locally generated packet runs through OUTPUT/POSTROUTING first
        and takes its share of nth counters, limit tokens, recent lists and
        SET changes -- which the forwarded packet then sees."""
        if packet.family is not Family.IPV4 or packet.out_iface != packet.in_iface:
            return
        if packet.proto == 1 and packet.icmp_type in (3, 4, 5, 11, 12):
            return  # icmp_send(): never an ICMP error about an ICMP error
        back = self.host.route(packet.src)
        if back.kind != "unicast" or back.dev != packet.in_iface or back.gateway is not None:
            return
        iface = self.host.interface(packet.in_iface or "")
        nets = [a for a in iface.family_addrs(4)] if iface is not None else []
        onlink = [a for a in nets if packet.src in a.network]
        if not onlink:
            return
        # icmp_send(): to the sender, from the address the route to it
        # prefers, TOS (tos & IPTOS_TOS_MASK) | IPTOS_PREC_INTERNETCONTROL,
        # quoting up to 576 - 28 bytes of the packet; conntrack finds no
        # confirmed entry for the quoted packet, so the redirect is INVALID.
        redirect = Packet(
            family=Family.IPV4, proto=1, src=onlink[0].ip, dst=packet.src,
            tcp_flags=frozenset(), icmp_type=5, icmp_code=1, in_iface=None,
            length=28 + min(packet.length, 548), ttl=64, tos=(packet.tos & 0x1E) | 0xC0,
            ctstate_in="INVALID",
        )
        self._route_step("FORWARD", packet, f"ICMP redirect sent to {packet.src} (it leaves by its own interface); the redirect runs through OUTPUT and POSTROUTING first")
        sub = _Walker(self.ruleset, self.host, self.state, self.nft)
        sub._local(redirect)

    def _arrived_as_host(self, packet: Packet) -> bool:
        given = packet.get_extra("pkt_type")
        if given is not None:
            return str(given).lower() in ("host", "unicast")
        # What a sender on the link uses: the broadcast MAC for the limited
        # broadcast and the interface's subnet broadcast, a group MAC for
        # multicast (RFC 1112 / RFC 2464).
        dst = packet.dst
        if dst.is_multicast:
            return False
        if packet.family is Family.IPV4:
            if dst == ipaddress.IPv4Address("255.255.255.255"):
                return False
            iface = self.host.interface(packet.in_iface or "")
            for addr in iface.family_addrs(4) if iface is not None else ():
                if addr.network.prefixlen < 31 and dst == addr.network.broadcast_address:
                    return False
        return True

    def _martian(self, packet: Packet) -> str:
        src, dst, iface = packet.src, packet.dst, packet.in_iface
        # ip_route_input_slow() checks, in its order.
        if packet.family is Family.IPV4:
            if src.is_multicast or src == ipaddress.IPv4Address("255.255.255.255"):
                return f"martian source {src}: dropped by the routing decision"
            if dst == ipaddress.IPv4Address("255.255.255.255"):
                # brd_input: fib_validate_source() still runs for any source
                # but 0.0.0.0, so a local source address is a martian here too.
                reason = self._validate_source(packet) if int(src) != 0 else ""
                return f"routing decision: {reason}: dropped" if reason else ""
            # ipv4_is_zeronet() is `addr == 0` since Linux 5.3 ("Allow
            # 0.0.0.0/8 as a valid address range"): 0.1.2.3 is an address.
            if int(src) == 0:
                # ip_mc_validate_source(): a 0.0.0.0 source is fine towards
                # link-local multicast (224.0.0.0/24) or for IGMP.
                if dst.is_multicast and (dst in ipaddress.IPv4Network("224.0.0.0/24") or packet.proto == 2):
                    return ""
                return f"martian source {src}: dropped by the routing decision"
            if int(dst) == 0:
                return f"martian destination {dst}: dropped by the routing decision"
            if iface != "lo" and (src.is_loopback or dst.is_loopback) and not self.host.conf("route_localnet", iface or ""):
                # ip_route_input_slow(): 127/8 from outside lo is a martian
                # unless route_localnet is on for the input device.
                what = "destination" if dst.is_loopback else "source"
                addr = dst if dst.is_loopback else src
                return (f"routing decision: martian {what} {addr} on {iface}: route_localnet is 0 "
                        f"({self.host.conf_names('route_localnet', iface or '')}): dropped")
        else:
            if iface != "lo" and (src.is_loopback or dst.is_loopback):
                return f"loopback address on {iface}: dropped by the routing decision"
            if src.is_multicast:
                return f"multicast source {src}: dropped"
        route = self.host.route(dst, src=src, mark=packet.mark, iif=iface)
        # ip_mc_validate_source() runs fib_validate_source() for multicast
        # destinations too (any source but 0.0.0.0).
        if route.kind in ("local", "broadcast", "multicast"):
            reason = self._validate_source(packet)
            if reason:
                return f"routing decision: {reason}: dropped"
        return ""

    def _validate_source(self, packet: Packet, oif: str | None = None) -> str:
        # fib_validate_source() with this host's rp_filter, accept_local and
        # src_valid_mark (host.validate_source); IPv6 has no such check.
        if packet.family is Family.IPV6 or packet.in_iface is None:
            return ""
        return self.host.validate_source(packet.src, packet.dst, packet.in_iface, oif, packet.mark)

    def _loopback_source_refused(self, packet: Packet, route: Any) -> str:
        # __mkroute_output(): a 127/8 source may leave only through lo,
        # unless route_localnet is on for the output device.
        if route.kind == "local" or packet.family is not Family.IPV4 or not packet.src.is_loopback:
            return ""
        dev = route.dev or ""
        if self.host.conf("route_localnet", dev):
            return ""
        return (f"source {packet.src} cannot leave by {dev}: route_localnet is 0 "
                f"({self.host.conf_names('route_localnet', dev)})")

    def _describe_route(self, route: Any) -> str:
        if route.kind == "local":
            return "is local → lo"
        parts = []
        if route.gateway is not None:
            parts.append(f"via {route.gateway}")
        if route.dev:
            parts.append(f"dev {route.dev}")
        hops = route.route.nexthops if route.route is not None else ()
        if len(hops) > 1:
            # fib_select_multipath(): a hash of the flow (with a per-boot
            # seed) picks the next hop, which a trace cannot know.
            parts.append(f"(multipath: the kernel hashes each flow onto one of {len(hops)} next hops; "
                         "netviz follows the first)")
        return " ".join(parts) or route.kind

    def _reroute_output(self, packet: Packet, why: str) -> str | None:
        """ip_route_me_harder(): the new output device, None if dropped."""
        route = self.host.route(packet.dst, src=packet.src, mark=packet.mark)
        if route.kind in ("unreachable", "blackhole", "prohibit"):
            self._drop(packet, f"re-route after {why}: no route to {packet.dst}: dropped")
            return None
        refused = self._loopback_source_refused(packet, route)
        if refused:
            # ip_route_me_harder() → __mkroute_output(): -EINVAL, dropped.
            self._drop(packet, f"routing decision (re-route after {why}): {refused}: dropped")
            return None
        self._route_step(
            "OUTPUT", packet, f"re-route after {why}: {packet.dst} {self._describe_route(route)}"
        )
        return "lo" if route.kind == "local" else route.dev

    # -- hooks and tables --------------------------------------------------

    def _hook(self, hook: str, packet: Packet) -> tuple[str, Packet]:
        self.hooks.append(hook)
        # OUTPUT's `-o` is the device chosen when the hook was entered: a
        # re-route inside the hook changes the skb's dst, but the remaining
        # OUTPUT tables still see the old device; POSTROUTING sees the new one.
        rerouted_out: str | None = None
        for entry in self.order[hook]:
            if entry.kind == "conntrack":
                packet = self._conntrack(hook, packet)
                continue
            before = packet
            if entry.kind == "nat":
                verdict, packet = self._nat_place(hook, entry, packet)
            else:
                verdict, packet = self._run_entry(hook, entry, packet)
            if verdict != "ACCEPT":
                return "DROP", packet
            if hook == "OUTPUT" and entry.type in ("route", "nat"):
                why = self._output_reroute_needed(entry, before, packet)
                if why:
                    out = self._reroute_output(packet, why)
                    if out is None:
                        return "DROP", packet
                    rerouted_out = out
        if rerouted_out is not None:
            packet = packet.with_(out_iface=rerouted_out)
        return "ACCEPT", packet

    def _nat_place(self, hook: str, entry: HookEntry, packet: Packet) -> tuple[str, Packet]:
        """The NAT hook: its nat chains, for a packet whose entry has no
        binding of this hook's manip type yet (nf_nat_inet_fn)."""
        if not self._nat_consulted(hook, packet):
            # The nat chains are not run, but the nat hook still applies
            # the connection's bindings (nf_nat_packet).
            return "ACCEPT", self._apply_binding(hook, packet)
        manip = NAT_MANIP[hook]
        for member in entry.members:
            verdict, packet = self._run_entry(hook, member, packet)
            if verdict != "ACCEPT":
                return verdict, packet
            # nf_nat_inet_fn(): the first chain that sets up a binding ends
            # the walk of the nat chains.
            ct = packet.ct
            if ct is not None and (ct.dnat_done if manip == "dst" else ct.snat_done):
                break
        return "ACCEPT", self._apply_binding(hook, self._bind_nat(hook, packet))

    def _run_entry(self, hook: str, entry: HookEntry, packet: Packet) -> tuple[str, Packet]:
        if entry.kind == "table":
            result = self._run_table(hook, entry.table, packet)
            return result.verdict, result.packet
        assert entry.kind == "chain" and self.nft is not None
        return run_chain(self.nft, self, hook, entry, packet)

    @staticmethod
    def _output_reroute_needed(entry: HookEntry, before: Packet, after: Packet) -> str:
        if entry.type == "route":
            # ipt_mangle_out() / nf_route_table_hook4() (route-type chains):
            # re-route when saddr, daddr, mark or TOS changed.
            where = f"{entry.family} {entry.table} {entry.chain}" if entry.family else f"{entry.table} OUTPUT"
            if before.src != after.src or before.dst != after.dst:
                return f"{where} changed the address"
            if before.mark != after.mark:
                return f"{where} changed the mark to {after.mark:#x}"
            if before.tos != after.tos:
                return f"{where} changed the TOS"
            return ""
        # nf_nat_ipv4_local_fn(): re-route when DNAT changed the destination.
        if before.dst != after.dst:
            return f"DNAT to {after.dst}"
        return ""

    def _conntrack(self, hook: str, packet: Packet) -> Packet:
        if packet.ct is not None:
            # UNTRACKED from raw, or a looped-back packet that already has
            # its entry: nf_conntrack_in() leaves it alone.
            return packet
        if not self.conntrack_on:
            self.steps.append(
                Step(
                    kind=StepKind.CONNTRACK,
                    hook=hook,
                    text="conntrack: not active — no rule of this ruleset needs it, so packets are not tracked",
                    note="the kernel registers conntrack in a network namespace only when a rule needs it "
                    "(conntrack/state/connmark matches, NAT targets, CONNMARK, CT other than --notrack); "
                    "without it the nat table is never consulted",
                    packet=packet,
                )
            )
            return packet
        zone = _template_zone(packet)
        found = self.state.conntrack.find(packet, zone)
        if found is not None and packet.ctstate_in == "NEW":
            entry, direction = found
            tracked = track(entry, packet, direction)
            if tracked.reopen:
                self.state.conntrack.remove(entry.entry_id)
                self.steps.append(Step(kind=StepKind.CONNTRACK, hook=hook, text=tracked.note, packet=packet))
            else:
                if tracked.entry is None:
                    self.state.conntrack.remove(entry.entry_id)
                else:
                    # The entry is shared: its new TCP state and SEEN_REPLY
                    # stay even if this packet is dropped later.
                    self.state.conntrack.store(tracked.entry)
                packet = packet.with_(ct=tracked.ct)
                ct = tracked.ct
                if ct.state == "INVALID":
                    text = "conntrack: INVALID (the packet does not fit its connection's state)"
                else:
                    status = ",".join(status_words(ct)) or "none"
                    text = (f"conntrack: {ct.state} ({ct.direction.lower()} direction of an existing entry; "
                            f"status {status})")
                self.steps.append(
                    Step(kind=StepKind.CONNTRACK, hook=hook, text=text, note=tracked.note, packet=packet)
                )
                return packet
        state = packet.ctstate_in
        note = ""
        if state == "NEW":
            invalid = _new_is_invalid(packet)
            if invalid:
                state = "INVALID"
                note = invalid
        declared = state not in ("NEW", "INVALID")
        ct = Conntrack(
            state=state,
            orig_src=packet.src,
            orig_dst=packet.dst,
            orig_sport=packet.sport,
            orig_dport=packet.dport,
            reply_src=packet.dst,
            reply_dst=packet.src,
            reply_sport=packet.dport,
            reply_dport=packet.sport,
            mark=0,
            zone=zone,
            # Entries that exist already carry their bindings; the scenario
            # cannot say what they are, so they are taken as identity.
            dnat_done=state not in ("NEW", "RELATED"),
            snat_done=state not in ("NEW", "RELATED"),
            entry_id=self.state.conntrack.new_id() if state == "NEW" else 0,
            proto=packet.proto,
            icmp_type=packet.icmp_type,
            tcp_state=new_tcp_state(packet) if state == "NEW" else None,
            orig_packets=1,
            orig_bytes=packet.length,
            # A declared entry's status bits are inferred from its state
            # (matches.py --ctstatus).
            assured=None if declared else False,
        )
        packet = packet.with_(ct=ct)
        text = f"conntrack: {state}"
        if state == "NEW":
            text += " (new entry, not yet confirmed)"
        elif state in ("ESTABLISHED", "RELATED"):
            text += " (existing entry; its NAT bindings are taken as identity)"
        self.steps.append(
            Step(kind=StepKind.CONNTRACK, hook=hook, text=text, note=note, packet=packet)
        )
        return packet

    def _nat_consulted(self, hook: str, packet: Packet) -> bool:
        ct = packet.ct
        manip = NAT_MANIP[hook]
        reason = ""
        if not self.conntrack_on:
            reason = f"nat {hook} not consulted: conntrack is not active, so there is no entry to bind"
        elif ct is None or ct.state in ("INVALID", "UNTRACKED"):
            state = ct.state if ct else "INVALID"
            reason = f"nat {hook} not consulted: the packet is {state} (no conntrack entry to bind)"
        elif ct.state == "RELATED" and packet.get_extra("embedded") is not None:
            # nf_nat_ipv4_fn(): an ICMP error RELATED to a connection is only
            # translated (nf_nat_icmp_reply_translation), never run through nat.
            reason = f"nat {hook} not consulted: an ICMP error about a connection only gets its NAT bindings"
        elif ct.state not in ("NEW", "RELATED"):
            reason = f"nat {hook} not consulted: {ct.state} packets reuse the connection's NAT binding"
        elif (manip == "dst" and ct.dnat_done) or (manip == "src" and ct.snat_done):
            reason = f"nat {hook} not consulted: the connection's {manip.upper()} NAT binding is already set"
        if reason:
            self.steps.append(
                Step(kind=StepKind.SKIP, hook=hook, table="nat", chain=hook, text=reason, packet=packet)
            )
            return False
        return True

    def _apply_binding(self, hook: str, packet: Packet) -> Packet:
        """nf_nat_packet(): rewrite the packet by the connection's bindings.

        The hook's manip type (DST at PREROUTING/OUTPUT, SRC at INPUT/
        POSTROUTING) is applied forward to original packets and swapped for
        replies: un-SNAT of a reply at PREROUTING/OUTPUT, un-DNAT at
        POSTROUTING/INPUT.  The packet is made to match the other
        direction's tuple, inverted (nf_nat_manip_pkt)."""
        ct = packet.ct
        if ct is None or ct.template or ct.state in ("INVALID", "UNTRACKED"):
            return packet
        manip = NAT_MANIP[hook]
        reply = ct.direction == "REPLY"
        if manip == "dst":
            needed, word = (ct.is_snat, "un-SNAT") if reply else (ct.is_dnat, "DNAT")
        else:
            needed, word = (ct.is_dnat, "un-DNAT") if reply else (ct.is_snat, "SNAT")
        if not needed:
            return packet
        # The other direction's tuple, inverted: (src, dst, sport, dport).
        if reply:
            target = (ct.orig_dst, ct.orig_src, ct.orig_dport, ct.orig_sport)
        else:
            target = (ct.reply_dst, ct.reply_src, ct.reply_dport, ct.reply_sport)
        embedded = packet.get_extra("embedded")
        if embedded is not None:
            return self._translate_icmp_error(hook, packet, manip, target, word)
        if manip == "dst":
            new = packet.with_(dst=target[1], dport=target[3] if packet.has_ports else packet.dport)
            old_text, new_text = _endpoint(packet.dst, packet.dport, packet), _endpoint(new.dst, new.dport, new)
            what = "destination"
        else:
            new = packet.with_(src=target[0], sport=target[2] if packet.has_ports else packet.sport)
            old_text, new_text = _endpoint(packet.src, packet.sport, packet), _endpoint(new.src, new.sport, new)
            what = "source"
        if new == packet:
            return packet
        self.steps.append(Step(
            kind=StepKind.CONNTRACK, hook=hook, table="nat", chain=hook,
            text=f"nat {hook}: the connection's binding applies ({word}): {what} {old_text} → {new_text}",
            note="no nat chain runs after a connection's first packet; the binding made then is applied here",
            packet=new,
        ))
        return new

    def _translate_icmp_error(self, hook: str, packet: Packet, manip: str,
                              target: tuple[Any, Any, Any, Any], word: str) -> Packet:
        # nf_nat_icmp_reply_translation(): the quoted header gets the other
        # manip (so it reads as the packet its sender sent), the outer
        # header this manip (addresses only).
        ct = packet.ct
        assert ct is not None
        quoted = dict(packet.get_extra("embedded"))
        if ct.direction == "REPLY":
            inner = (ct.orig_src, ct.orig_dst, ct.orig_sport, ct.orig_dport)
        else:
            inner = (ct.reply_src, ct.reply_dst, ct.reply_sport, ct.reply_dport)
        if manip == "dst":
            quoted["src"] = str(inner[0])
            if "sport" in quoted:
                quoted["sport"] = inner[2]
            new = packet.with_(dst=target[1])
        else:
            quoted["dst"] = str(inner[1])
            if "dport" in quoted:
                quoted["dport"] = inner[3]
            new = packet.with_(src=target[0])
        extra = tuple((k, v) if k != "embedded" else (k, tuple(sorted(quoted.items()))) for k, v in packet.extra)
        new = new.with_(extra=extra)
        if new == packet:
            return packet
        self.steps.append(Step(
            kind=StepKind.CONNTRACK, hook=hook, table="nat", chain=hook,
            text=f"nat {hook}: the connection's binding applies to the ICMP error and the header it quotes ({word}): "
                 f"{packet.src} → {packet.dst} becomes {new.src} → {new.dst}",
            packet=new,
        ))
        return new

    @staticmethod
    def _bind_nat(hook: str, packet: Packet) -> Packet:
        ct = packet.ct
        if ct is None:
            return packet
        # Falling off the nat chain without a NAT target sets a null
        # binding: the connection is never NATed for this manip type.
        if NAT_MANIP[hook] == "dst":
            ct = replace(ct, dnat_done=True)
        else:
            ct = replace(ct, snat_done=True)
        return packet.with_(ct=ct)

    def _run_table(self, hook: str, table_name: str, packet: Packet) -> _TableRun:
        table = self.ruleset.table(table_name)
        assert table is not None
        base = table.chain(hook)
        if base is None:
            return _TableRun("ACCEPT", packet)
        chain: Chain = base
        index = 0
        stack: list[tuple[Chain, int]] = []
        while True:
            # Second line of defence after the loader's loop check: no
            # ruleset makes a walk endless (limits.MAX_WALK_STEPS).
            self.budget -= 1
            if self.budget < 0:
                raise WalkLimitError(self.state.max_steps, f"{table_name} {chain.name}")
            if index >= len(chain.rules):
                if chain is base or chain.builtin:
                    return self._policy(hook, table_name, base, packet, len(stack))
                self.steps.append(
                    Step(
                        kind=StepKind.RETURN,
                        hook=hook,
                        table=table_name,
                        chain=chain.name,
                        rule=len(chain.rules) + 1,
                        text=f"end of {chain.name}: implicit RETURN",
                        verdict="RETURN",
                        packet=packet,
                        depth=len(stack),
                    )
                )
                if not stack:
                    # Reached by -g from the built-in chain: RETURN with an
                    # empty stack falls to the policy (ipt_do_table underflow).
                    return self._policy(hook, table_name, base, packet, 0)
                chain, index = stack.pop()
                continue
            # -- chain index (netviz/engine/index.py): rules whose -d/-i/-o/-p/
            # --dport rule this packet out are recorded as one SKIP step.
            if self.state.use_index:
                skip_to = next_candidate(chain, index, hook, packet)
                if skip_to - index >= MIN_SKIP_RUN:
                    self.steps.append(skip_step(hook, table_name, chain, index, skip_to, packet, len(stack)))
                    index = skip_to
                    continue
            # -- end chain index
            rule = chain.rules[index]
            ctx = EvalContext(
                ruleset=self.ruleset,
                host=self.host,
                hook=hook,
                table=table_name,
                chain=chain.name,
                rule_index=rule.index,
                packet=packet,
                state=self.state,
            )
            outcome = evaluate_rule(rule, ctx)
            if outcome.result is not Result.MATCH:
                unknown = outcome.result is Result.UNKNOWN
                # An assumed miss (a random statistic draw, an empty `recent`
                # list) is as uncertain as an unknown one.
                uncertain = unknown or outcome.assumed
                if uncertain:
                    self.uncertain.append((table_name, chain.name, rule.index))
                note = ""
                if unknown:
                    note = "netviz cannot decide this rule, so the trace follows the not-matched branch"
                self.steps.append(
                    self._rule_step(hook, rule, outcome.result, outcome.clause, outcome.reason,
                                    None, packet, len(stack), uncertain, note)
                )
                index += 1
                continue
            if outcome.assumed:
                self.uncertain.append((table_name, chain.name, rule.index))
            target = rule.target
            step_args = (hook, rule, Result.MATCH, outcome.clause, outcome.reason)
            if target is None:
                self.steps.append(self._rule_step(*step_args, "CONTINUE", packet, len(stack), outcome.assumed))
                index += 1
                continue
            jump_to = table.chain(target.name)
            if jump_to is not None and not jump_to.builtin:
                if target.goto:
                    self.steps.append(self._rule_step(*step_args, f"GOTO:{jump_to.name}", packet, len(stack), outcome.assumed))
                else:
                    self.steps.append(self._rule_step(*step_args, f"JUMP:{jump_to.name}", packet, len(stack), outcome.assumed))
                    stack.append((chain, index + 1))
                    if len(stack) > MAX_JUMP_DEPTH:
                        self._drop(packet, f"jump stack deeper than {MAX_JUMP_DEPTH}: dropped (a loop?)")
                        return _TableRun("DROP", packet)
                chain, index = jump_to, 0
                continue
            if target.name == "RETURN":
                self.steps.append(self._rule_step(*step_args, "RETURN", packet, len(stack), outcome.assumed))
                if not stack:
                    return self._policy(hook, table_name, base, packet, 0)
                chain, index = stack.pop()
                continue
            result = apply_target(rule, ctx)
            new_packet = result.packet
            uncertain = outcome.assumed or result.assumed or result.unknown
            if result.assumed or result.unknown:
                self.uncertain.append((table_name, chain.name, rule.index))
            verdict = result.verdict
            self.steps.append(
                self._rule_step(hook, rule, Result.MATCH, outcome.clause, outcome.reason,
                                verdict, new_packet, len(stack), uncertain, result.note)
            )
            packet = new_packet
            if verdict == "CONTINUE":
                index += 1
                continue
            if verdict == "ACCEPT":
                return _TableRun("ACCEPT", packet)
            # DROP, REJECT, QUEUE (no userspace here): the packet is gone.
            self.fate_step = self.steps[-1]
            if target.name == "REJECT":
                opt = target.option("--reject-with")
                default = "icmp6-port-unreachable" if packet.family is Family.IPV6 else "icmp-port-unreachable"
                self.reject = (opt.value if opt is not None else default, packet)
            return _TableRun("DROP", packet)

    def _policy(self, hook: str, table: str, base: Chain, packet: Packet, depth: int) -> _TableRun:
        policy = base.policy or "ACCEPT"
        step = Step(
            kind=StepKind.POLICY,
            hook=hook,
            table=table,
            chain=base.name,
            rule=len(base.rules) + 1,
            line=base.line,
            text=f"policy {policy}",
            verdict=policy,
            packet=packet,
            depth=depth,
        )
        self.steps.append(step)
        if policy != "ACCEPT":
            self.fate_step = step
            return _TableRun("DROP", packet)
        return _TableRun("ACCEPT", packet)

    @staticmethod
    def _rule_step(
        hook: str,
        rule: Rule,
        result: Result,
        clause: str,
        reason: str,
        verdict: str | None,
        packet: Packet,
        depth: int,
        uncertain: bool,
        note: str = "",
    ) -> Step:
        return Step(
            kind=StepKind.RULE,
            hook=hook,
            table=rule.table,
            chain=rule.chain,
            rule=rule.index,
            line=rule.line,
            text=rule.text,
            result=result,
            clause=clause,
            reason=reason,
            verdict=verdict,
            packet=packet,
            depth=depth,
            uncertain=uncertain,
            note=note,
        )

    def _route_step(self, hook: str, packet: Packet, text: str) -> None:
        self.steps.append(Step(kind=StepKind.ROUTE, hook=hook, text=text, packet=packet))

    def _drop(self, packet: Packet, text: str) -> None:
        step = Step(kind=StepKind.DROP, hook=self.hooks[-1] if self.hooks else "", text=text, verdict="DROP", packet=packet)
        self.steps.append(step)
        self.fate_step = step

    # -- summary -------------------------------------------------------------

    def _summary(self, path: str, verdict: str, packet: Packet) -> str:
        if verdict == "DROP":
            step = self.fate_step
            if step is None:
                return "dropped"
            # An nft table is named with its family, as nft lists it.
            table = f"{step.family} {step.table}" if step.family else step.table
            if step.kind is StepKind.POLICY:
                return f"dropped by the policy of {table} {step.chain}"
            if step.kind is StepKind.RULE:
                return f"dropped by {table} {step.chain} rule {step.rule} (line {step.line})"
            return step.text
        if path == "input" or path == "output-local":
            return f"accepted: delivered to a local process ({packet.dst})"
        if path == "forward":
            return f"accepted: forwarded {packet.in_iface} → {packet.out_iface}"
        if path == "bridge":
            return f"accepted: bridged {packet.get_extra('physin') or packet.in_iface} → {packet.get_extra('physout') or packet.out_iface}"
        return f"accepted: sent out {packet.out_iface}"


# Modules whose checkentry calls nf_ct_netns_get(): loading one of them is
# what switches conntrack on in a network namespace.  A nat table alone does
# not (the nft nat chain type registers no conntrack hooks), so a ruleset
# without any of these never consults nat — seen in the kernel's own trace.
CONNTRACK_MATCHES = frozenset(
    {"conntrack", "state", "connmark", "connbytes", "connlimit", "connlabel", "helper", "cluster", "ipvs"}
)
CONNTRACK_TARGETS = frozenset(
    {"DNAT", "SNAT", "MASQUERADE", "REDIRECT", "NETMAP", "CONNMARK", "CONNSECMARK", "SYNPROXY"}
)


def conntrack_enabled(ruleset: Ruleset, nft: NftEval | None = None) -> bool:
    """Whether something loaded switches conntrack on: an iptables match or
    target below, or an nft rule with a `ct` expression or a nat statement
    (nft.conntrack, from netviz/engine/nft/evaluate.uses_conntrack)."""
    if nft is not None and nft.conntrack:
        return True
    for table in ruleset.tables:
        for chain in table.chains:
            for rule in chain.rules:
                if any(m.module in CONNTRACK_MATCHES for m in rule.matches):
                    return True
                target = rule.target
                if target is None:
                    continue
                if target.name in CONNTRACK_TARGETS:
                    return True
                # CT with --notrack attaches the untracked template only.
                if target.name == "CT" and target.option("--notrack") is None:
                    return True
    return False


def _endpoint(addr: Any, port: int | None, packet: Packet) -> str:
    text = f"[{addr}]" if addr.version == 6 and packet.has_ports else str(addr)
    return f"{text}:{port}" if packet.has_ports and port is not None else text


def _template_zone(packet: Packet) -> int:
    # CT --zone in raw: the entry is created (and looked up) in that zone.
    zone = str(packet.get_extra("ct_template") or "0")
    return int(zone) if zone.isdigit() else 0


def _new_is_invalid(packet: Packet) -> str:
    """Why conntrack would not start a connection with this packet ("" if it would)."""
    if packet.proto == 6:
        flags = set(packet.tcp_flags) - {"PSH", "ECE", "CWR"}
        # tcp_valid_flags[] in nf_conntrack_proto_tcp.c
        valid = [
            {"SYN"}, {"SYN", "URG"}, {"SYN", "ACK"}, {"RST"}, {"RST", "ACK"},
            {"FIN", "ACK"}, {"FIN", "ACK", "URG"}, {"ACK"}, {"ACK", "URG"},
        ]
        if flags not in valid:
            return "conntrack: this TCP flag combination is invalid, so the packet is INVALID"
        # tcp_new(): only a SYN, or (nf_conntrack_tcp_loose=1) a bare ACK,
        # can start a connection; SYN+ACK, RST and FIN are INVALID as first packets.
        if "RST" in flags or "FIN" in flags or flags >= {"SYN", "ACK"}:
            return "conntrack: a connection cannot start with this TCP packet, so it is INVALID"
        return ""
    # icmp_new() / icmpv6_new(): only query types start a connection (echo,
    # timestamp, info, address mask; ICMPv6 echo and node information query).
    if packet.proto == 1 and packet.icmp_type not in (8, 13, 15, 17):
        return f"conntrack: ICMP type {packet.icmp_type} cannot start a connection, so it is INVALID"
    if packet.proto == 58 and packet.icmp_type not in (128, 139):
        return f"conntrack: ICMPv6 type {packet.icmp_type} cannot start a connection, so it is INVALID"
    return ""


# --reject-with → (ICMP type, code); IPv6 types from icmp6_send().
REJECT_ICMP = {
    "icmp-net-unreachable": (3, 0), "icmp-host-unreachable": (3, 1),
    "icmp-proto-unreachable": (3, 2), "icmp-port-unreachable": (3, 3),
    "icmp-net-prohibited": (3, 9), "icmp-host-prohibited": (3, 10),
    "icmp-admin-prohibited": (3, 13),
    "icmp6-no-route": (1, 0), "no-route": (1, 0), "icmp6-adm-prohibited": (1, 1),
    "adm-prohibited": (1, 1), "icmp6-addr-unreachable": (1, 3), "addr-unreach": (1, 3),
    "icmp6-port-unreachable": (1, 4), "port-unreach": (1, 4),
    # ip_error(): no route, an `unreachable` route, a `prohibit` route.
    "route-none": (3, 0), "route-unreachable": (3, 1), "route-prohibit": (3, 13),
}
REJECT_ICMP6_ROUTE = {"route-none": (1, 0), "route-unreachable": (1, 3), "route-prohibit": (1, 1)}


def answer_packet(how: str, packet: Packet, src: Any = None) -> Packet | None:
    """The RST or ICMP error the host sends back for a rejected packet
    (nf_send_reset(), nf_send_unreach() → icmp_send(), ip_error()),
    carrying the rejected packet's conntrack entry as RELATED in the other
    direction (nf_ct_attach / the ICMP error's lookup)."""
    ct = packet.ct
    related = None
    if ct is not None and not ct.template and ct.state not in ("INVALID", "UNTRACKED"):
        back = "ORIGINAL" if ct.direction == "REPLY" else "REPLY"
        related = replace(ct, state="RELATED", direction=back)
    v6 = packet.family is Family.IPV6
    if how == "tcp-reset":
        # nf_send_reset(): never answers an RST; ACKs the segment when it
        # carried no ACK itself.
        if packet.proto != 6 or "RST" in packet.tcp_flags:
            return None
        flags = frozenset({"RST"}) if "ACK" in packet.tcp_flags else frozenset({"RST", "ACK"})
        # nf_send_reset() sends it without a socket (`-m owner` sees none).
        return Packet(
            family=packet.family, proto=6, src=packet.dst, dst=packet.src,
            sport=packet.dport, dport=packet.sport, tcp_flags=flags,
            length=60 if v6 else 40, ct=related, ctstate_in="NEW" if related is None else "RELATED",
            extra=(("kernel_sent", "no-socket"),),
        )
    kind = (REJECT_ICMP6_ROUTE.get(how) if v6 else None) or REJECT_ICMP.get(how)
    if kind is None:
        return None
    # icmp_send(): never about an ICMP error, nor about a multicast/broadcast.
    errors = (1, 2, 3, 4, 137) if v6 else (3, 4, 5, 11, 12)
    if packet.proto == (58 if v6 else 1) and packet.icmp_type in errors:
        return None
    if packet.dst.is_multicast:
        return None
    quoted = tuple(sorted({"proto": proto_name(packet.proto), **packet.header()}.items()))
    room = 1280 - 48 if v6 else 576 - 28
    # Like the RST, the ICMP error leaves with the connection attached: the
    # raw table already sees it RELATED (seen in the kernel's trace).
    return Packet(
        family=packet.family, proto=58 if v6 else 1, src=src if src is not None else packet.dst,
        dst=packet.src, tcp_flags=frozenset(), icmp_type=kind[0], icmp_code=kind[1],
        length=(48 if v6 else 28) + min(packet.length, room), tos=0 if v6 else 0xC0,
        ct=related, ctstate_in="NEW" if related is None else "RELATED",
        extra=(("embedded", quoted), ("kernel_sent", "kernel-socket")),
    )

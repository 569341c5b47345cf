"""The host a ruleset runs on: interfaces, addresses, routes.

Enough of the kernel's FIB to answer the questions netfilter asks: is this
address local, which way does a packet leave, which source address does a
local socket get, and what `-m addrtype` sees.  The local table is derived
from the interface addresses exactly as fib_add_ifaddr() fills it; the main
table holds the connected routes of the addresses plus the given routes.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field, replace
from typing import Any

from .ruleset import Family

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface

ROUTE_TYPES = (
    "unicast",
    "local",
    "broadcast",
    "multicast",
    "anycast",
    "blackhole",
    "unreachable",
    "prohibit",
    "throw",
    "nat",
)
# Route types whose lookup ends in an error rather than a next hop
# (fib_props[] in net/ipv4/fib_semantics.c: -EINVAL/-EHOSTUNREACH/-EACCES).
REJECT_TYPES = frozenset({"blackhole", "unreachable", "prohibit"})

LOOPBACK_ADDRS: tuple[IPInterface, ...] = (
    ipaddress.IPv4Interface("127.0.0.1/8"),
    ipaddress.IPv6Interface("::1/128"),
)
_V4_ANY = ipaddress.IPv4Network("0.0.0.0/0")
_V6_ANY = ipaddress.IPv6Network("::/0")
_V4_MULTICAST = ipaddress.IPv4Network("224.0.0.0/4")
_V6_MULTICAST = ipaddress.IPv6Network("ff00::/8")
_V4_LBCAST = ipaddress.IPv4Address("255.255.255.255")
_V6_LINK_LOCAL = ipaddress.IPv6Network("fe80::/64")


@dataclass(frozen=True)
class Interface:
    name: str
    addrs: tuple[IPInterface, ...] = ()
    # netviz's extension (docs/scenario.md): the link kind as `ip -d link`
    # names it (bridge, veth, vxlan…), the bridge this interface is a port
    # of (`master`), the addresses of the machines behind a bridge port
    # (what `ip neigh` plus `bridge fdb` say), and the port's hairpin flag.
    type: str | None = None
    master: str | None = None
    neighbors: tuple[IPAddress, ...] = ()
    hairpin: bool = False

    def family_addrs(self, version: int) -> tuple[IPInterface, ...]:
        return tuple(a for a in self.addrs if a.version == version)


@dataclass(frozen=True)
class NextHop:
    via: IPAddress | None = None
    dev: str | None = None
    weight: int = 1
    onlink: bool = False

    def text(self) -> str:
        parts = ["nexthop"]
        if self.via is not None:
            parts += ["via", str(self.via)]
        if self.dev is not None:
            parts += ["dev", self.dev]
        parts += ["weight", str(self.weight)]
        if self.onlink:
            parts.append("onlink")
        return " ".join(parts)


@dataclass(frozen=True)
class Route:
    dst: IPNetwork
    dev: str | None = None
    via: IPAddress | None = None
    src: IPAddress | None = None
    type: str = "unicast"
    metric: int = 0
    table: str = "main"
    # Who installed it (`proto kernel` for the routes the kernel derives from
    # addresses), its scope, `onlink`, and every next hop of a multipath
    # route (dev/via above are the first one's).
    proto: str | None = None
    scope: str | None = None
    onlink: bool = False
    nexthops: tuple[NextHop, ...] = ()

    def _default_scope(self) -> str:
        # What `ip route add` picks when no scope is given (iproute2 iproute_modify).
        if self.type in ("local", "nat"):
            return "host"
        if self.type in ("broadcast", "multicast", "anycast") or (self.via is None and not self.nexthops):
            return "link"
        return "global"

    def text(self) -> str:
        # `ip route add` syntax: the replay feeds it back to the kernel.
        parts: list[str] = []
        if self.type != "unicast":
            parts.append(self.type)
        if self.dst.prefixlen == 0:
            parts.append("default")
        elif self.dst.prefixlen == self.dst.max_prefixlen:
            parts.append(str(self.dst.network_address))
        else:
            parts.append(str(self.dst))
        if not self.nexthops:
            if self.via is not None:
                parts += ["via", str(self.via)]
            if self.dev is not None:
                parts += ["dev", self.dev]
        if self.table != "main":
            parts += ["table", self.table]
        if self.proto is not None:
            parts += ["proto", self.proto]
        if self.scope is not None and self.scope != self._default_scope():
            parts += ["scope", self.scope]
        if self.src is not None:
            parts += ["src", str(self.src)]
        if self.metric:
            parts += ["metric", str(self.metric)]
        if self.onlink and not self.nexthops:
            parts.append("onlink")
        parts += [nh.text() for nh in self.nexthops]
        return " ".join(parts)


@dataclass(frozen=True)
class RouteDecision:
    # local, unicast, broadcast, multicast, blackhole, unreachable, prohibit
    kind: str
    dev: str | None = None
    gateway: IPAddress | None = None
    prefsrc: IPAddress | None = None
    route: Route | None = None

    @property
    def ok(self) -> bool:
        return self.kind not in REJECT_TYPES

    def describe(self) -> str:
        if self.kind == "local":
            return "local delivery"
        if self.kind in REJECT_TYPES:
            if self.route is None:
                return "no route to host"
            return f"{self.kind} route {self.route.text()}"
        text = f"{self.kind} via {self.gateway}" if self.gateway else self.kind
        if self.dev:
            text += f" dev {self.dev}"
        if self.prefsrc:
            text += f" src {self.prefsrc}"
        return text


@dataclass(frozen=True)
class RouteRule:
    """One `ip rule` (policy routing): selectors, then the table to look up
    (or a reject action), tried in priority order by fib_rules_lookup()."""

    priority: int
    table: str = "main"
    action: str = "lookup"  # lookup, blackhole, unreachable, prohibit
    src: IPNetwork | None = None
    dst: IPNetwork | None = None
    fwmark: int | None = None
    fwmask: int = 0xFFFFFFFF
    iif: str | None = None
    oif: str | None = None
    invert: bool = False
    suppress_prefixlength: int | None = None
    version: int | None = None  # 4 or 6; None: the scenario's family

    def selects(self, dst: IPAddress, src: IPAddress | None, mark: int, iif: str, oif: str | None) -> bool:
        # fib_rule_match(): every given selector must hold; `not` inverts.
        hit = (
            (self.version is None or self.version == dst.version)
            and (self.src is None or (src is not None and src.version == self.src.version and src in self.src))
            and (self.dst is None or (dst.version == self.dst.version and dst in self.dst))
            and (self.fwmark is None or (mark & self.fwmask) == self.fwmark)
            and (self.iif is None or self.iif == iif)
            and (self.oif is None or self.oif == oif)
        )
        return hit != self.invert

    def text(self) -> str:
        parts = [f"pref {self.priority}"]
        if self.invert:
            parts.append("not")
        parts.append(f"from {self.src}" if self.src is not None else "from all")
        if self.dst is not None:
            parts.append(f"to {self.dst}")
        if self.fwmark is not None:
            parts.append(f"fwmark {self.fwmark:#x}" + (f"/{self.fwmask:#x}" if self.fwmask != 0xFFFFFFFF else ""))
        if self.iif is not None:
            parts.append(f"iif {self.iif}")
        if self.oif is not None:
            parts.append(f"oif {self.oif}")
        parts.append(f"lookup {self.table}" if self.action == "lookup" else self.action)
        if self.suppress_prefixlength is not None:
            parts.append(f"suppress_prefixlength {self.suppress_prefixlength}")
        return " ".join(parts)


# The rules every namespace starts with (fib4_rules_init / fib6_rules_net_init).
DEFAULT_RULES = (
    RouteRule(0, "local"),
    RouteRule(32766, "main"),
    RouteRule(32767, "default"),
)
_TABLE_NAMES = {"255": "local", "254": "main", "253": "default", "0": "unspec"}


def table_name(text: str) -> str:
    return _TABLE_NAMES.get(text, text)


@dataclass(frozen=True)
class Host:
    interfaces: tuple[Interface, ...] = ()
    routes: tuple[Route, ...] = ()  # explicit routes; connected ones are derived
    # `ip rule`s added to the defaults (local 0, main 32766, default 32767).
    rules: tuple[RouteRule, ...] = ()
    # host.sysctls (scenario-v2.md §1): (name, value) as `sysctl -a` prints them.
    sysctls: tuple[tuple[str, str], ...] = ()
    _ifaces: dict[str, Interface] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )
    _local: list[Route] = field(default_factory=list, init=False, repr=False, compare=False, hash=False)
    _main: list[Route] = field(default_factory=list, init=False, repr=False, compare=False, hash=False)
    _tables: dict[str, list[Route]] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )
    _rule_list: tuple[RouteRule, ...] = field(default=(), init=False, repr=False, compare=False, hash=False)
    _derived: tuple[Route, ...] = field(default=(), init=False, repr=False, compare=False, hash=False)
    _cache: dict[Any, Any] = field(default_factory=dict, init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        # `lo` with 127.0.0.1/8 and ::1/128 always exists (scenario.md).
        ifaces = list(self.interfaces)
        names = [i.name for i in ifaces]
        if "lo" in names:
            pos = names.index("lo")
            lo = ifaces[pos]
            extra = tuple(a for a in lo.addrs if a not in LOOPBACK_ADDRS)
            ifaces[pos] = Interface("lo", LOOPBACK_ADDRS + extra)
        else:
            ifaces.insert(0, Interface("lo", LOOPBACK_ADDRS))
        object.__setattr__(self, "interfaces", tuple(ifaces))
        object.__setattr__(self, "_ifaces", {i.name: i for i in ifaces})
        local: list[Route] = []
        main: list[Route] = []
        for iface in ifaces:
            for addr in iface.addrs:
                # fib_add_ifaddr(): a local route per address, the subnet's
                # broadcast address, and (unless /32) a connected prefix route.
                # The loopback prefix 127.0.0.0/8 is local as a whole.
                if iface.name == "lo" and addr.version == 4 and addr.network.prefixlen < 32:
                    local.append(Route(addr.network, "lo", None, addr.ip, "local", 0, "local"))
                else:
                    local.append(
                        Route(ipaddress.ip_network(addr.ip), iface.name, None, addr.ip, "local", 0, "local")
                    )
                if addr.version == 4 and addr.network.prefixlen < 31:
                    bcast = ipaddress.ip_network(addr.network.broadcast_address)
                    local.append(Route(bcast, iface.name, None, addr.ip, "broadcast", 0, "local"))
                if iface.name == "lo" or addr.network.prefixlen == addr.max_prefixlen:
                    continue
                # IPv6 prefix routes get metric 256 (addrconf_prefix_route).
                metric = 256 if addr.version == 6 else 0
                main.append(Route(addr.network, iface.name, None, addr.ip if addr.version == 4 else None, "unicast", metric))
            if iface.name != "lo" and any(a.version == 6 for a in iface.addrs):
                # addrconf gives every IPv6 interface a link-local address
                # and its fe80::/64 prefix route.
                main.append(Route(_V6_LINK_LOCAL, iface.name, None, None, "unicast", 256))
        object.__setattr__(self, "_derived", tuple(local + main))
        tables: dict[str, list[Route]] = {"local": local, "main": main}
        for route in self.routes:
            tables.setdefault(table_name(route.table), []).append(route)
        object.__setattr__(self, "_local", local)
        object.__setattr__(self, "_main", main)
        object.__setattr__(self, "_tables", tables)
        # fib_nl2rule() keeps the list sorted by priority, a new rule after
        # those of equal priority.
        ordered = sorted(DEFAULT_RULES + self.rules, key=lambda r: r.priority)
        object.__setattr__(self, "_rule_list", tuple(ordered))

    # -- construction -------------------------------------------------------

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None, family: Family = Family.IPV4) -> Host:
        if d is None:
            d = {}
        if not isinstance(d, dict):
            raise ValueError("host must be an object with 'interfaces' and 'routes'")
        raw_ifaces = d.get("interfaces", []) or []
        if not isinstance(raw_ifaces, list):
            raise ValueError("host.interfaces must be a list")
        ifaces: list[Interface] = []
        seen: set[str] = set()
        for n, item in enumerate(raw_ifaces):
            if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
                raise ValueError(f"host.interfaces[{n}] needs a 'name'")
            name = item["name"]
            if name in seen:
                raise ValueError(f"host.interfaces: interface {name!r} listed twice")
            seen.add(name)
            addrs = item.get("addrs", []) or []
            if not isinstance(addrs, list):
                raise ValueError(f"host.interfaces[{n}].addrs must be a list of CIDR strings")
            parsed: list[IPInterface] = []
            for a in addrs:
                try:
                    parsed.append(ipaddress.ip_interface(str(a).strip()))
                except ValueError:
                    raise ValueError(f"interface {name}: bad address {a!r} (expected CIDR such as 10.0.0.1/24)") from None
            ifaces.append(_interface_extras(Interface(name, tuple(parsed)), item, n))
        names = {i.name for i in ifaces}
        for i in ifaces:
            if i.master is not None and i.master not in names:
                raise ValueError(f"interface {i.name}: its master {i.master!r} is not a host interface")
        partial = cls(tuple(ifaces), ())
        raw_routes = d.get("routes", []) or []
        if not isinstance(raw_routes, list):
            raise ValueError("host.routes must be a list of strings in `ip route` syntax")
        routes: list[Route] = []
        for n, text in enumerate(raw_routes):
            if not isinstance(text, str):
                raise ValueError(f"host.routes[{n}] must be a string in `ip route` syntax")
            try:
                route = parse_route_line(text, family)
            except ValueError as exc:
                raise ValueError(f"host.routes[{n}] {text!r}: {exc}") from None
            if route is None:
                continue
            try:
                route = partial._resolve_dev(route)
            except ValueError as exc:
                raise ValueError(f"host.routes[{n}] {text!r}: {exc}") from None
            for dev in {route.dev, *(h.dev for h in route.nexthops)}:
                if dev is not None and partial.interface(dev) is None:
                    raise ValueError(f"host.routes[{n}] {text!r}: no interface named {dev!r}")
            routes.append(route)
        raw_rules = d.get("rules", []) or []
        if not isinstance(raw_rules, list):
            raise ValueError("host.rules must be a list of strings in `ip rule` syntax")
        rules: list[RouteRule] = []
        for n, text in enumerate(raw_rules):
            if not isinstance(text, str):
                raise ValueError(f"host.rules[{n}] must be a string in `ip rule` syntax")
            existing = sorted(DEFAULT_RULES + tuple(rules), key=lambda r: r.priority)
            try:
                rule = parse_rule_line(text, existing)
            except ValueError as exc:
                raise ValueError(f"host.rules[{n}] {text!r}: {exc}") from None
            if rule is not None:
                for name in (rule.iif, rule.oif):
                    if name is not None and name != "lo" and partial.interface(name) is None:
                        raise ValueError(f"host.rules[{n}] {text!r}: no interface named {name!r}")
                # `ip rule` output lists the default rules too: they exist already.
                if rule not in DEFAULT_RULES and rule not in rules:
                    rules.append(rule)
        return cls(tuple(ifaces), tuple(routes), tuple(rules), parse_sysctls(d.get("sysctls")))

    def to_dict(self) -> dict[str, Any]:
        ifaces = []
        for iface in self.interfaces:
            addrs = iface.addrs
            if iface.name == "lo":
                addrs = tuple(a for a in addrs if a not in LOOPBACK_ADDRS)
                if not addrs:
                    continue
            entry: dict[str, Any] = {"name": iface.name, "addrs": [str(a) for a in addrs]}
            if iface.type is not None:
                entry["type"] = iface.type
            if iface.master is not None:
                entry["master"] = iface.master
            if iface.neighbors:
                entry["neighbors"] = [str(a) for a in iface.neighbors]
            if iface.hairpin:
                entry["hairpin"] = True
            ifaces.append(entry)
        out: dict[str, Any] = {"interfaces": ifaces, "routes": [r.text() for r in self.routes]}
        if self.rules:
            out["rules"] = [r.text() for r in self.rules]
        if self.sysctls:
            out["sysctls"] = dict(self.sysctls)
        return out

    def _resolve_dev(self, route: Route) -> Route:
        # `ip route add 10.0.0.0/8 via 10.1.1.1`: the kernel finds the device
        # through the route to the gateway (fib_check_nh), which must be a
        # directly connected one.
        if route.nexthops:
            hops = tuple(replace(h, dev=self._gateway_dev(h.via)) if h.dev is None and h.via is not None else h
                         for h in route.nexthops)
            return replace(route, nexthops=hops, dev=hops[0].dev)
        if route.dev is not None or route.via is None:
            return route
        return replace(route, dev=self._gateway_dev(route.via))

    def _gateway_dev(self, via: IPAddress) -> str:
        for r in self._main:
            if r.type == "unicast" and r.via is None and r.dev and via in r.dst:
                return r.dev
        raise ValueError(f"gateway {via} is not on a connected network (Nexthop has invalid gateway)")

    def implied(self, route: Route) -> bool:
        """True for a route the kernel derives from the addresses itself
        (fib_add_ifaddr, addrconf): `ip route` lists them with `proto kernel`,
        and adding one again fails with EEXIST."""
        if route.proto == "kernel":
            return True
        return route.via is None and not route.nexthops and any(
            r.dst == route.dst and r.dev == route.dev and r.type == route.type and r.table == route.table
            for r in self._derived
        )

    # -- sysctls (scenario-v2.md §1) ------------------------------------------

    def sysctl(self, name: str) -> str | None:
        return dict(self.sysctls).get(name)

    def _conf_int(self, name: str) -> int | None:
        value = self.sysctl(name)
        return None if value is None else int(value.split()[0], 0)

    def _dev_conf(self, family: str, key: str, dev: str) -> int:
        # A device's own value; absent, what it inherited when it was created:
        # conf.default (lo exists before anything is set, so not for lo), and
        # for forwarding the global switch, which writing ip_forward or
        # conf.all.forwarding copies to every device (inet_forward_change).
        value = self._conf_int(f"net.{family}.conf.{sysctl_dev(dev)}.{key}")
        if value is not None:
            return value
        if dev != "lo":
            value = self._conf_int(f"net.{family}.conf.default.{key}")
            if value is not None:
                return value
        if key == "forwarding":
            return self.forwarding_all(family)
        return FRESH_CONF.get(key, 0)

    def _all_conf(self, family: str, key: str) -> int:
        value = self._conf_int(f"net.{family}.conf.all.{key}")
        return FRESH_CONF.get(key, 0) if value is None else value

    def forwarding_all(self, family: str = "ipv4") -> int:
        value = self._conf_int(f"net.{family}.conf.all.forwarding")
        if value is None and family == "ipv4":
            value = self._conf_int("net.ipv4.ip_forward")
        return 1 if value is None else value

    def conf(self, key: str, dev: str, family: str = "ipv4") -> int:
        """The value the kernel acts on for `dev`: IN_DEV_RPFILTER is the
        maximum of all and the device, IN_DEV_ROUTE_LOCALNET, _ACCEPT_LOCAL,
        _SRC_VMARK and _TX_REDIRECTS are all OR device (IN_DEV_ORCONF),
        IN_DEV_FORWARD is the device's own (include/linux/inetdevice.h).
        IPv6 forwards by conf.all.forwarding alone (ip6_forward)."""
        if family == "ipv6" and key == "forwarding":
            return self.forwarding_all("ipv6")
        if key == "forwarding":
            return self._dev_conf(family, key, dev)
        if key == "rp_filter":
            return max(self._all_conf(family, key), self._dev_conf(family, key, dev))
        return int(bool(self._all_conf(family, key) or self._dev_conf(family, key, dev)))

    def conf_names(self, key: str, dev: str, family: str = "ipv4") -> str:
        """The sysctl names behind conf(): what a trace tells the user to look at."""
        if key == "forwarding":
            if family == "ipv6":
                return "net.ipv6.conf.all.forwarding"
            return f"net.ipv4.conf.{sysctl_dev(dev)}.forwarding"
        return f"net.{family}.conf.all.{key} / net.{family}.conf.{sysctl_dev(dev)}.{key}"

    def bridge_nf_call(self, version: int) -> bool:
        name = "net.bridge.bridge-nf-call-iptables" if version == 4 else "net.bridge.bridge-nf-call-ip6tables"
        value = self._conf_int(name)
        # A fresh namespace with br_netfilter loaded (as Docker and
        # Kubernetes nodes have it) starts with both at 1.
        return True if value is None else bool(value)

    def validate_source(self, src: IPAddress, dst: IPAddress, iif: str, oif: str | None, mark: int) -> str:
        """fib_validate_source() (net/ipv4/fib_frontend.c) for an IPv4 packet
        arriving on `iif` and routed to `oif` (None: delivered locally).
        Returns why it is refused ("" when it is not): a martian source, or
        rp_filter, each naming the sysctls that decide it."""
        if iif == "lo" or src.version != 4:
            return ""
        rpf = self.conf("rp_filter", iif)
        if rpf == 0 and (oif != iif or not self.conf("send_redirects", iif)):
            if self.conf("accept_local", iif):
                return ""
            # With custom rules or local routes the fast path is not taken.
            if not self.rules and not self._custom_local_routes():
                if src in self._ifaddrs():
                    return (f"martian source {src} on {iif}: it is an address of this host and "
                            f"accept_local is 0 ({self.conf_names('accept_local', iif)})")
                return ""
        # __fib_validate_source(): route the source back, as if from the
        # output device (lo for local delivery), with the mark only when
        # src_valid_mark is on.
        back_mark = mark if self.conf("src_valid_mark", iif) else 0
        back = self.route(src, src=dst, mark=back_mark, iif=oif or "lo")
        strict = f"rp_filter is {rpf} ({self.conf_names('rp_filter', iif)}: the maximum counts)"
        if back.kind in REJECT_TYPES:
            if rpf:
                return f"rp_filter: there is no route back to {src}; {strict}"
            return ""
        if back.kind == "local":
            if not self.conf("accept_local", iif):
                return (f"martian source {src} on {iif}: it is an address of this host and "
                        f"accept_local is 0 ({self.conf_names('accept_local', iif)})")
        elif back.kind != "unicast":
            return f"martian source {src} on {iif}: the route back to it is {back.kind}"
        devs = {back.dev, *(h.dev for h in (back.route.nexthops if back.route else ()))}
        if back.kind == "local":
            devs = {back.route.dev if back.route else "lo"}
        if iif in devs:
            return ""
        iface = self.interface(iif)
        if iface is None or not iface.family_addrs(4):
            # no_addr: an input device without IPv4 addresses
            return f"rp_filter: {iif} has no IPv4 address; {strict}" if rpf else ""
        if rpf == 1:
            mark_note = f" (looked up with mark {back_mark:#x}: src_valid_mark is on)" if back_mark else ""
            return (f"rp_filter strict: the route back to {src} leaves by {', '.join(sorted(d for d in devs if d))}, "
                    f"not by {iif}{mark_note}; {strict}")
        return ""

    def _ifaddrs(self) -> frozenset[IPAddress]:
        hit = self._cache.get("ifaddrs")
        if hit is None:
            hit = frozenset(a.ip for i in self.interfaces for a in i.addrs if a.version == 4)
            self._cache["ifaddrs"] = hit
        return hit

    def _custom_local_routes(self) -> bool:
        return any(table_name(r.table) == "local" and r.proto != "kernel" for r in self.routes)

    # -- lookups ------------------------------------------------------------

    def interface(self, name: str) -> Interface | None:
        return self._ifaces.get(name)

    def bridge_of(self, name: str) -> Interface | None:
        """The Linux bridge `name` is a port of (its `master`), if any.
        A master of unknown type is taken for a bridge, the usual case
        (docker0, cni0, virbr0); a bond or VRF master is not one."""
        iface = self.interface(name)
        master = self.interface(iface.master) if iface is not None and iface.master else None
        if master is None or master.type not in (None, "bridge"):
            return None
        return master

    def ports(self, bridge: str) -> tuple[Interface, ...]:
        return tuple(i for i in self.interfaces if i.master == bridge)

    def port_behind(self, bridge: str, addr: IPAddress) -> Interface | None:
        """The port of `bridge` the machine with `addr` is behind (its
        `neighbors`), as the bridge's forwarding database would say."""
        for port in self.ports(bridge):
            if addr in port.neighbors:
                return port
        return None

    def is_local(self, addr: IPAddress) -> bool:
        return self._lookup(self._local, addr, "local", None) is not None

    def primary_address(
        self, dev: str, family: Family | int = Family.IPV4, towards: IPAddress | None = None
    ) -> IPAddress | None:
        # inet_select_addr(): the first primary address of the device, or one
        # whose subnet contains `towards` (the next hop) if there is one.
        iface = self.interface(dev)
        if iface is None:
            return None
        version = family if isinstance(family, int) else (4 if family is Family.IPV4 else 6)
        addrs = iface.family_addrs(version)
        if not addrs:
            return None
        if towards is not None:
            for a in addrs:
                if towards in a.network:
                    return a.ip
        return addrs[0].ip

    def select_source(
        self, dev: str, family: Family | int = Family.IPV4, towards: IPAddress | None = None
    ) -> IPAddress | None:
        # inet_select_addr(dev, dst, RT_SCOPE_UNIVERSE): host-scope addresses
        # (127/8, ::1) never qualify; a device without a usable address
        # falls back to the first usable address of any device, lo first.
        version = family if isinstance(family, int) else (4 if family is Family.IPV4 else 6)
        iface = self.interface(dev)
        if iface is not None:
            usable = [a for a in iface.family_addrs(version) if not a.ip.is_loopback]
            if towards is not None:
                for a in usable:
                    if towards in a.network:
                        return a.ip
            if usable:
                return usable[0].ip
        for other in self.interfaces:
            for a in other.family_addrs(version):
                if not a.ip.is_loopback:
                    return a.ip
        return None

    def route(
        self,
        dst: IPAddress,
        src: IPAddress | None = None,
        oif: str | None = None,
        mark: int = 0,
        iif: str | None = None,
    ) -> RouteDecision:
        # `iif` is the input device of a received packet; None is a lookup
        # for a locally generated one, which the rules see as `iif lo`.
        key = ("route", dst, src, oif, mark if self.rules else 0, iif if self.rules else None)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        decision = self._route(dst, src, oif, mark, iif or "lo")
        self._cache[key] = decision
        return decision

    def _route(self, dst: IPAddress, src: IPAddress | None, oif: str | None, mark: int, iif: str) -> RouteDecision:
        if dst.version == 4:
            # ip_route_input_slow()/ip_route_output_key_hash_table() treat the
            # limited broadcast and multicast before any FIB lookup.
            if dst == _V4_LBCAST:
                return RouteDecision("broadcast", oif, None, self._first_addr(oif, 4))
            if dst in _V4_MULTICAST:
                return RouteDecision("multicast", oif, None, self._first_addr(oif, 4))
        elif dst in _V6_MULTICAST:
            return RouteDecision("multicast", oif, None, self._first_addr(oif, 6))
        route: Route | None = None
        for rule in self._rule_list:
            if not rule.selects(dst, src, mark, iif, oif):
                continue
            if rule.action != "lookup":
                return RouteDecision(rule.action)
            table = self._tables.get(rule.table)
            if not table:
                continue
            if rule.table == "local":
                local = self._lookup(table, dst, None, None)
                if local is None:
                    continue
                if local.type == "local":
                    # Output to a local address leaves through lo; the source
                    # is the address itself (ip_route_output_key_hash_table).
                    return RouteDecision("local", "lo", None, local.src or dst, local)
                if local.type == "broadcast" and oif is not None and local.dev != oif:
                    continue
                route = local
                break
            found = self._lookup(table, dst, None, oif)
            if found is None or found.type == "throw":
                continue
            # suppress_prefixlength N: ignore answers this general (wg-quick).
            if rule.suppress_prefixlength is not None and found.dst.prefixlen <= rule.suppress_prefixlength:
                continue
            route = found
            break
        if route is None:
            return RouteDecision("unreachable")
        if route.type in REJECT_TYPES:
            return RouteDecision(route.type, None, None, None, route)
        if route.type == "local":
            return RouteDecision("local", "lo", None, dst, route)
        if route.type == "broadcast" and route.table == "local":
            return RouteDecision("broadcast", route.dev, None, route.src, route)
        dev = route.dev
        prefsrc = route.src
        if prefsrc is None and dev is not None:
            prefsrc = self.primary_address(dev, dst.version, route.via or dst)
        kind = route.type if route.type in ("broadcast", "multicast") else "unicast"
        return RouteDecision(kind, dev, route.via, prefsrc, route)

    def _first_addr(self, dev: str | None, version: int) -> IPAddress | None:
        if dev is None:
            return None
        return self.primary_address(dev, version)

    @staticmethod
    def _lookup(table: list[Route], dst: IPAddress, rtype: str | None, oif: str | None) -> Route | None:
        # Longest prefix first, then the lowest metric (fib_table_lookup and
        # fib6 both order the leaf's aliases by priority).
        best: Route | None = None
        for r in table:
            if r.dst.version != dst.version or dst not in r.dst:
                continue
            if rtype is not None and r.type != rtype:
                continue
            if oif is not None and r.dev is not None and r.dev != oif and r.type not in REJECT_TYPES:
                continue
            if best is None or r.dst.prefixlen > best.dst.prefixlen or (
                r.dst.prefixlen == best.dst.prefixlen and r.metric < best.metric
            ):
                best = r
        return best

    def addr_type(self, addr: IPAddress, dev: str | None = None) -> frozenset[str]:
        key = ("addrtype", addr, dev)
        hit = self._cache.get(key)
        if hit is None:
            hit = self._addr_type4(addr, dev) if addr.version == 4 else self._addr_type6(addr, dev)
            self._cache[key] = hit
        return hit

    def _addr_type4(self, addr: IPAddress, dev: str | None) -> frozenset[str]:
        # xt_addrtype → inet_dev_addr_type() → __inet_dev_addr_type()
        # (net/ipv4/fib_frontend.c): 0.0.0.0/8 and 255.255.255.255 are
        # BROADCAST, 224/4 MULTICAST, otherwise a lookup in the *local*
        # table only.  No hit → UNICAST; a hit whose next-hop device is not
        # `dev` (--limit-iface-in/out) → UNICAST too.  So main-table
        # blackhole/unreachable routes never show as such here.
        # ipv4_is_zeronet() is `addr == 0` since Linux 5.3: 0.1.2.3 is UNICAST.
        if int(addr) == 0 or addr == _V4_LBCAST:
            return frozenset({"BROADCAST"})
        if addr in _V4_MULTICAST:
            return frozenset({"MULTICAST"})
        route = self._lookup(self._local, addr, None, None)
        if route is None:
            return frozenset({"UNICAST"})
        if dev is not None and route.dev != dev:
            return frozenset({"UNICAST"})
        return frozenset({_ADDRTYPE_NAMES.get(route.type, "UNICAST")})

    def _addr_type6(self, addr: IPAddress, dev: str | None) -> frozenset[str]:
        # xt_addrtype's match_type6()/match_lookup_rt6(): the address class
        # from ipv6_addr_type() (MULTICAST / UNICAST / UNSPEC for ::) plus
        # what a route lookup says: LOCAL for an RTF_LOCAL route (with a
        # device: only if the address is configured on that device),
        # UNREACHABLE if the lookup fails or hits a reject route.
        out: set[str] = set()
        if addr == ipaddress.IPv6Address("::"):
            out.add("UNSPEC")
        elif addr in _V6_MULTICAST:
            out.add("MULTICAST")
        else:
            out.add("UNICAST")
        if dev is not None:
            iface = self.interface(dev)
            if iface is not None and any(a.ip == addr for a in iface.addrs):
                out.add("LOCAL")
        elif addr not in _V6_MULTICAST and self.is_local(addr):
            out.add("LOCAL")
        if addr not in _V6_MULTICAST and not self.is_local(addr):
            route = self._lookup(self._main, addr, None, dev)
            if route is None or route.type in REJECT_TYPES or route.type == "throw":
                out.add("UNREACHABLE")
        return frozenset(out)


_ADDRTYPE_NAMES = {
    "unicast": "UNICAST",
    "local": "LOCAL",
    "broadcast": "BROADCAST",
    "multicast": "MULTICAST",
    "anycast": "ANYCAST",
    "blackhole": "BLACKHOLE",
    "unreachable": "UNREACHABLE",
    "prohibit": "PROHIBIT",
    "throw": "THROW",
    "nat": "NAT",
}

# Words of `ip route` output that take one argument we do not use.
_ROUTE_KEYWORDS_WITH_ARG = frozenset(
    {
        "nhid", "tos", "dsfield", "realm", "realms", "mtu", "advmss",
        "hoplimit", "expires", "pref", "initcwnd", "initrwnd", "rtt", "rttvar",
        "window", "cwnd", "ssthresh", "features", "quickack", "congctl", "fastopen_no_cookie",
        "onlink_metric", "encap", "as", "from", "lock", "ttl-propagate", "preference",
    }
)
# Flags `ip route` prints about a route's state; none changes the lookup
# (`linkdown` routes are still used while ignore_routes_with_linkdown is 0).
_ROUTE_FLAGS = frozenset({"linkdown", "dead", "pervasive", "notify", "offload", "trap", "rt_offload", "rt_trap", "cached", "offload_failed", "rt_offload_failed"})


_ROUTE_WORDS = frozenset({"via", "gw", "dev", "oif", "src", "metric", "priority", "table", "proto", "protocol", "scope"})


def parse_route_line(text: str, family: Family | None = None) -> Route | None:
    """One `ip route` line → Route (None for blank lines and comments)."""
    words = text.split()
    if not words or words[0].startswith("#"):
        return None
    rtype = "unicast"
    if words[0] in ROUTE_TYPES:
        rtype = words.pop(0)
    if not words:
        raise ValueError("missing destination")
    dst_word = words.pop(0)
    via: IPAddress | None = None
    dev: str | None = None
    src: IPAddress | None = None
    metric: int | None = None
    table = "main"
    proto: str | None = None
    scope: str | None = None
    onlink = False
    # Multipath: `nexthop via A dev X weight 1 nexthop via B dev Y weight 1`.
    hops: list[dict[str, Any]] = []
    i = 0
    while i < len(words):
        w = words[i]
        arg = words[i + 1] if i + 1 < len(words) else None
        if w == "nexthop":
            hops.append({})
            i += 1
            continue
        if hops and w in ("via", "gw", "dev", "weight", "onlink"):
            hop = hops[-1]
            if w == "onlink":
                hop["onlink"] = True
                i += 1
                continue
            if arg is None:
                raise ValueError(f"'{w}' needs a value")
            if w in ("via", "gw"):
                if arg in ("inet", "inet6") and i + 2 < len(words):
                    i += 1
                    arg = words[i + 1]
                hop["via"] = _addr(arg, "gateway")
            elif w == "dev":
                hop["dev"] = arg
            elif not arg.isdigit():
                raise ValueError("'weight' needs a number")
            else:
                hop["weight"] = int(arg)
            i += 2
            continue
        if w == "onlink":
            onlink = True
            i += 1
            continue
        if w in _ROUTE_FLAGS:
            i += 1
            continue
        if w not in _ROUTE_WORDS and w not in _ROUTE_KEYWORDS_WITH_ARG:
            raise ValueError(f"unexpected word {w!r}")
        if arg is None:
            raise ValueError(f"'{w}' needs a value")
        if w in ("via", "gw"):
            if arg in ("inet", "inet6") and i + 2 < len(words):
                i += 1
                arg = words[i + 1]
            via = _addr(arg, "gateway")
        elif w in ("dev", "oif"):
            dev = arg
        elif w == "src":
            src = _addr(arg, "src")
        elif w in ("metric", "priority"):
            if not arg.isdigit():
                raise ValueError(f"'{w}' needs a number")
            metric = int(arg)
        elif w == "table":
            table = table_name(arg)
        elif w in ("proto", "protocol"):
            proto = arg
        elif w == "scope":
            scope = arg
        elif w in _ROUTE_KEYWORDS_WITH_ARG:
            pass
        else:
            raise ValueError(f"unexpected word {w!r}")
        i += 2
    nexthops = tuple(NextHop(h.get("via"), h.get("dev"), h.get("weight", 1), h.get("onlink", False)) for h in hops)
    if nexthops:
        via, dev = nexthops[0].via, nexthops[0].dev
        onlink = nexthops[0].onlink
    version: int | None = None
    for a in (via, src):
        if a is not None:
            version = a.version
    if dst_word == "default":
        if version is None:
            version = 6 if family is Family.IPV6 else 4
        dst: IPNetwork = _V4_ANY if version == 4 else _V6_ANY
    else:
        try:
            dst = ipaddress.ip_network(dst_word, strict=False)
        except ValueError:
            raise ValueError(f"bad destination {dst_word!r}") from None
    for a in (via, src, *(h.via for h in nexthops)):
        if a is not None and a.version != dst.version:
            raise ValueError(f"{a} is not of the same family as {dst}")
    if metric is None:
        # iproute2 defaults: 0 for IPv4, 1024 for IPv6 user routes.
        metric = 1024 if dst.version == 6 and rtype == "unicast" and table == "main" else 0
    if rtype == "unicast" and dev is None and via is None:
        raise ValueError("a unicast route needs 'via' or 'dev'")
    return Route(dst, dev, via, src, rtype, metric, table, proto, scope, onlink, nexthops)


_RULE_ACTIONS = frozenset({"blackhole", "unreachable", "prohibit"})
_RULE_IGNORED_WITH_ARG = frozenset(
    {"tos", "dsfield", "realms", "protocol", "proto", "nat", "map-to", "goto", "l3mdev", "uidrange",
     "ipproto", "sport", "dport", "suppress_ifgroup", "tun_id"}
)


def parse_rule_line(text: str, existing: tuple[RouteRule, ...] | list[RouteRule] = DEFAULT_RULES) -> RouteRule | None:
    """One `ip rule add …` argument list (or a line of `ip rule` output)."""
    words = text.split()
    if not words or words[0].startswith("#"):
        return None
    if words[0].endswith(":") and words[0][:-1].isdigit():
        words = ["pref", words[0][:-1], *words[1:]]
    fields: dict[str, Any] = {}
    priority: int | None = None
    i = 0
    while i < len(words):
        w = words[i]
        arg = words[i + 1] if i + 1 < len(words) else None
        if w == "not":
            fields["invert"] = True
            i += 1
            continue
        if w in _RULE_ACTIONS:
            fields["action"] = w
            i += 1
            continue
        if arg is None:
            raise ValueError(f"'{w}' needs a value")
        if w in ("from", "to"):
            if arg != "all":
                try:
                    fields["src" if w == "from" else "dst"] = ipaddress.ip_network(arg, strict=False)
                except ValueError:
                    raise ValueError(f"bad prefix {arg!r}") from None
        elif w == "fwmark":
            value, _, mask = arg.partition("/")
            try:
                fields["fwmark"] = int(value, 0)
                if mask:
                    fields["fwmask"] = int(mask, 0)
            except ValueError:
                raise ValueError(f"bad fwmark {arg!r}") from None
        elif w in ("iif", "dev"):
            fields["iif"] = arg
        elif w == "oif":
            fields["oif"] = arg
        elif w in ("lookup", "table"):
            fields["table"] = table_name(arg)
        elif w in ("pref", "priority", "order", "preference"):
            if not arg.isdigit():
                raise ValueError(f"bad priority {arg!r}")
            priority = int(arg)
        elif w == "suppress_prefixlength":
            if not arg.isdigit():
                raise ValueError(f"bad prefix length {arg!r}")
            fields["suppress_prefixlength"] = int(arg)
        elif w in _RULE_IGNORED_WITH_ARG:
            pass
        else:
            raise ValueError(f"unexpected word {w!r}")
        i += 2
    if "table" not in fields and "action" not in fields:
        raise ValueError("a rule needs 'lookup TABLE' or an action (blackhole, unreachable, prohibit)")
    versions = {n.version for n in (fields.get("src"), fields.get("dst")) if n is not None}
    if len(versions) > 1:
        raise ValueError("'from' and 'to' are of different families")
    fields["version"] = versions.pop() if versions else None
    if priority is None:
        # fib_default_rule_pref(): one below the second rule of the list.
        ordered = sorted(existing, key=lambda r: r.priority)
        priority = ordered[1].priority - 1 if len(ordered) > 1 and ordered[1].priority else 0
    return RouteRule(priority=priority, **fields)


# A fresh network namespace's net.ipv4.conf values (spec §1; forwarding on).
FRESH_CONF = {
    "rp_filter": 0,
    "route_localnet": 0,
    "accept_local": 0,
    "src_valid_mark": 0,
    "forwarding": 1,
    "send_redirects": 1,
}


def sysctl_dev(dev: str) -> str:
    # sysctl names write a device's dots as slashes (eth0.100 → eth0/100).
    return dev.replace(".", "/")


def parse_sysctls(raw: Any) -> tuple[tuple[str, str], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise ValueError("host.sysctls must be an object of sysctl names and values")
    out: list[tuple[str, str]] = []
    for name, value in raw.items():
        if not isinstance(name, str) or not name.startswith("net."):
            raise ValueError(f"host.sysctls: {name!r} is not a net.* sysctl name")
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise ValueError(f"host.sysctls[{name!r}] must be a string such as \"1\"")
        text = str(value).strip()
        if name.rsplit(".", 1)[-1] in FRESH_CONF or name == "net.ipv4.ip_forward" or "bridge-nf" in name:
            try:
                int(text.split()[0], 0)
            except (ValueError, IndexError):
                raise ValueError(f"host.sysctls[{name!r}]: {value!r} is not a number") from None
        out.append((name, text))
    return tuple(out)


def parse_sysctl_text(text: str) -> dict[str, str]:
    """`sysctl -a` (or `sysctl net.ipv4.conf`) output, "name = value" a line,
    or a JSON object → {name: value}; comment and blank lines skipped."""
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            data = json.loads(stripped)
        except ValueError as exc:
            raise ValueError(f"not a JSON object: {exc}") from None
        return {str(k): str(v) for k, v in dict(parse_sysctls(data)).items()}
    out: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        name, sep, value = line.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"line {n} {line!r}: expected name = value")
        name = name.strip()
        if name.startswith("/proc/sys/"):
            name = name.removeprefix("/proc/sys/").replace("/", ".")
        out[name] = value.strip()
    return dict(parse_sysctls(out))


def _interface_extras(iface: Interface, item: dict[str, Any], n: int) -> Interface:
    kind = item.get("type")
    master = item.get("master")
    raw = item.get("neighbors", []) or []
    if kind is not None and not isinstance(kind, str):
        raise ValueError(f"host.interfaces[{n}].type must be a string such as 'bridge' or 'veth'")
    if master is not None and (not isinstance(master, str) or master == iface.name):
        raise ValueError(f"host.interfaces[{n}].master must name another interface (the bridge)")
    if not isinstance(raw, list):
        raise ValueError(f"host.interfaces[{n}].neighbors must be a list of addresses")
    neighbors = tuple(_addr(str(a).split("/")[0], "neighbor") for a in raw)
    return replace(iface, type=kind or None, master=master or None, neighbors=neighbors,
                   hairpin=bool(item.get("hairpin", False)))


def _addr(text: str, what: str) -> IPAddress:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise ValueError(f"bad {what} address {text!r}") from None


def route_lines(text: str) -> list[str]:
    """`ip route` output → one line per route: continuation lines of
    multipath routes (`\tnexthop via …`) folded into their route."""
    logical: list[str] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        if line[:1].isspace() and logical:
            logical[-1] += " " + line.strip()
        else:
            logical.append(line.strip())
    return logical


def parse_ip_route(text: str, family: Family | None = None) -> list[Route]:
    """`ip route` / `ip -6 route` / `ip route show table all` output → routes
    (routes of the local table are kept with their type)."""
    routes = []
    for n, line in enumerate(route_lines(text), 1):
        try:
            route = parse_route_line(line, family)
        except ValueError as exc:
            raise ValueError(f"route line {n} {line!r}: {exc}") from None
        if route is not None:
            routes.append(route)
    return routes

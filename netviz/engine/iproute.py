"""What `ip` prints → the scenario's `host` object.

Pure functions over the text or JSON that iproute2 writes, so a host profile
can be pasted as it is and a node snapshot becomes a host in one call:

    host_from_ip_json(addr_json, link_json, route_json, rule_json)
    host_from_ip_text(addr_text, route_text, rule_text, link_text)

Both return the `host` dict of docs/scenario.md (interfaces with `type`,
`master`, `hairpin` for bridge ports; routes and rules in `ip route` /
`ip rule` syntax), which Host.from_dict() reads.  Routes the kernel makes
itself from the addresses (`proto kernel`) are left out: Host derives them.
"""

from __future__ import annotations

import ipaddress
import json
import re
from typing import Any

from .host import (
    DEFAULT_RULES,
    Host,
    IPInterface,
    Route,
    parse_route_line,
    parse_rule_line,
    route_lines,
    table_name,
)

_FULL_HEADER = re.compile(r"^\d+:\s+([^:\s]+):\s*<([^>]*)>(.*)$")
_BRIEF_STATES = frozenset({"UP", "DOWN", "UNKNOWN", "LOWERLAYERDOWN", "DORMANT", "NOTPRESENT", "TESTING"})
# Link kinds `ip -d link` prints on the line after link/ether.
_LINK_KINDS = frozenset(
    {"bridge", "veth", "vxlan", "dummy", "bond", "vlan", "macvlan", "ipvlan", "wireguard", "tun", "geneve",
     "ipip", "gre", "gretap", "ip6tnl", "sit", "vrf", "team", "nlmon", "ifb"}
)


def _iface_name(text: str) -> str:
    # veth pairs print as `veth0@if7`; the name is the part before `@`.
    return text.split("@", 1)[0]


def _loads(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, str):
        return list(json.loads(value or "[]"))
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        # Several outputs (e.g. `ip -j route` and `ip -j -6 route`).
        return [item for text in value for item in _loads(text)]
    return list(value)


# -- addresses and links ------------------------------------------------------


def parse_ip_addr(text: str) -> list[dict[str, Any]]:
    """`ip addr`, `ip -d addr` or `ip -br addr` output (or "NAME ADDR/LEN …"
    lines) → interface dicts of the scenario format.

    Link-local and tentative addresses are kept (a tentative address is
    taken as it will be once DAD succeeds); one whose DAD failed is unusable
    and dropped.  `master X` on a full header makes the interface a port of X.
    """
    lines = [ln for ln in text.splitlines() if ln.strip()]
    full = any(_FULL_HEADER.match(ln) for ln in lines)
    order: list[dict[str, Any]] = []
    by_name: dict[str, dict[str, Any]] = {}

    def iface(name: str) -> dict[str, Any]:
        if name not in by_name:
            by_name[name] = {"name": name, "addrs": []}
            order.append(by_name[name])
        return by_name[name]

    if full:
        current: dict[str, Any] | None = None
        after_link = False
        for n, line in enumerate(lines, 1):
            head = _FULL_HEADER.match(line)
            if head:
                current = iface(_iface_name(head.group(1)))
                rest = head.group(3).split()
                if "master" in rest[:-1]:
                    current["master"] = rest[rest.index("master") + 1]
                after_link = False
                continue
            words = line.split()
            if current is None or not words:
                continue
            if words[0].startswith("link/"):
                after_link = True
                continue
            if words[0] not in ("inet", "inet6"):
                # `ip -d`: the kind on the line after link/…, then the port's
                # bridge_slave line with its hairpin flag.
                if after_link and words[0] in _LINK_KINDS:
                    current["type"] = words[0]
                elif after_link and words[0] == "bridge_slave" and "hairpin" in words[:-1]:
                    current["hairpin"] = words[words.index("hairpin") + 1] == "on"
                    if not current["hairpin"]:
                        del current["hairpin"]
                continue
            if len(words) < 2:
                raise ValueError(f"line {n}: {words[0]} without an address")
            if "dadfailed" in words:
                continue
            local = words[1]
            # Point-to-point: `inet 10.0.0.1 peer 10.0.0.2/32`: the local
            # address is a host address.
            if "peer" in words and "/" not in local:
                local += "/32" if words[0] == "inet" else "/128"
            current["addrs"].append(_cidr(local, f"line {n}"))
    else:
        for n, line in enumerate(lines, 1):
            words = line.split()
            entry = iface(_iface_name(words[0]))
            rest = words[1:]
            if rest and rest[0] in _BRIEF_STATES:
                rest = rest[1:]
            for w in rest:
                entry["addrs"].append(_cidr(w, f"line {n}"))
    return order


def _cidr(text: str, where: str) -> str:
    try:
        return str(ipaddress.ip_interface(text))
    except ValueError:
        raise ValueError(f"{where}: bad address {text!r}") from None


def interfaces_from_ip_json(addr_json: Any, link_json: Any = None) -> list[dict[str, Any]]:
    """`ip -j addr` (and optionally `ip -j -d link`) → interface dicts."""
    links: dict[str, dict[str, Any]] = {}
    for link in _loads(link_json):
        if isinstance(link, dict) and link.get("ifname"):
            links[link["ifname"]] = link
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for item in [*_loads(addr_json), *links.values()]:
        name = item.get("ifname") if isinstance(item, dict) else None
        if not name or name in seen:
            continue
        seen.add(name)
        link = {**links.get(name, {}), **item}
        addrs: list[str] = []
        for a in item.get("addr_info", []) or []:
            if a.get("family") not in ("inet", "inet6") or not a.get("local") or a.get("dadfailed"):
                continue
            addrs.append(str(ipaddress.ip_interface(f"{a['local']}/{a.get('prefixlen', 32 if a['family'] == 'inet' else 128)}")))
        entry: dict[str, Any] = {"name": name, "addrs": addrs}
        info = link.get("linkinfo") or {}
        kind = info.get("info_kind")
        if kind:
            entry["type"] = kind
        elif link.get("link_type") == "loopback":
            entry["type"] = "loopback"
        if link.get("master"):
            entry["master"] = link["master"]
            if (info.get("info_slave_data") or {}).get("hairpin"):
                entry["hairpin"] = True
        out.append(entry)
    return out


# -- routes -----------------------------------------------------------------------


def route_text_from_json(route: dict[str, Any]) -> str:
    """One object of `ip -j route` → an `ip route` line."""
    words: list[str] = []
    rtype = route.get("type") or "unicast"
    if rtype != "unicast":
        words.append(rtype)
    words.append(str(route.get("dst") or "default"))
    if route.get("gateway"):
        words += ["via", str(route["gateway"])]
    if route.get("dev"):
        words += ["dev", str(route["dev"])]
    table = route.get("table")
    if table and table_name(str(table)) != "main":
        words += ["table", table_name(str(table))]
    if route.get("protocol"):
        words += ["proto", str(route["protocol"])]
    if route.get("scope") and not (route["scope"] == "global" or (route["scope"] == "link" and not route.get("gateway"))):
        words += ["scope", str(route["scope"])]
    if route.get("prefsrc"):
        words += ["src", str(route["prefsrc"])]
    if route.get("metric") is not None:
        words += ["metric", str(route["metric"])]
    flags = route.get("flags") or []
    if "onlink" in flags:
        words.append("onlink")
    for hop in route.get("nexthops") or []:
        words.append("nexthop")
        if hop.get("gateway"):
            words += ["via", str(hop["gateway"])]
        if hop.get("dev"):
            words += ["dev", str(hop["dev"])]
        words += ["weight", str(hop.get("weight", 1))]
        if "onlink" in (hop.get("flags") or []):
            words.append("onlink")
    return " ".join(words)


def parse_ip_route_text(text: str) -> list[str]:
    """`ip route [show table all]` output → one `ip route` line per route."""
    return [ln for ln in route_lines(text) if not ln.startswith("#")]


def _keep_routes(lines: list[str], interfaces: list[dict[str, Any]]) -> list[str]:
    # Normalise through the engine's parser (errors name the line), and drop
    # what the kernel derives from the addresses.
    host = Host.from_dict({"interfaces": interfaces})
    out: list[str] = []
    for n, line in enumerate(lines, 1):
        try:
            route = parse_route_line(line)
        except ValueError as exc:
            raise ValueError(f"route line {n} {line!r}: {exc}") from None
        if route is None or _kernel_made(route, host):
            continue
        text = route.text()
        if text not in out:
            out.append(text)
    return out


def _kernel_made(route: Route, host: Host) -> bool:
    # The local table's routes (local, broadcast, IPv6 multicast/anycast) and
    # the connected prefix routes come with the addresses; `ip route show
    # table all` lists hundreds of them on a busy node.
    return route.proto == "kernel" and (route.table == "local" or host.implied(route))


# -- rules ------------------------------------------------------------------------


def rule_text_from_json(rule: dict[str, Any]) -> str:
    """One object of `ip -j rule` → an `ip rule` line."""
    words = [f"{rule.get('priority', 0)}:"]
    if "not" in rule:
        words.append("not")
    src = rule.get("src", "all")
    words += ["from", f"{src}/{rule['srclen']}" if "srclen" in rule and src != "all" else str(src)]
    if rule.get("dst"):
        dst = rule["dst"]
        words += ["to", f"{dst}/{rule['dstlen']}" if "dstlen" in rule and dst != "all" else str(dst)]
    if rule.get("fwmark") is not None:
        mark = str(rule["fwmark"])
        words += ["fwmark", mark + (f"/{rule['fwmask']}" if rule.get("fwmask") else "")]
    if rule.get("iif"):
        words += ["iif", str(rule["iif"])]
    if rule.get("oif"):
        words += ["oif", str(rule["oif"])]
    action = rule.get("action")
    if action in ("blackhole", "unreachable", "prohibit"):
        words.append(action)
    elif rule.get("table") is not None:
        words += ["lookup", table_name(str(rule["table"]))]
    if rule.get("suppress_prefixlen") is not None:
        words += ["suppress_prefixlength", str(rule["suppress_prefixlen"])]
    return " ".join(words)


def parse_ip_rule_text(text: str) -> list[str]:
    """`ip rule` output → the rules beyond the kernel's defaults, one line each."""
    out: list[str] = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            rule = parse_rule_line(line)
        except ValueError as exc:
            raise ValueError(f"rule line {n} {line.strip()!r}: {exc}") from None
        if rule is not None and rule not in DEFAULT_RULES:
            out.append(rule.text())
    return out


# -- whole hosts ------------------------------------------------------------------


def _finish(interfaces: list[dict[str, Any]], routes: list[str], rules: list[str],
            sysctls: dict[str, str] | None) -> dict[str, Any]:
    # lo and its loopback addresses exist implicitly; keep it only for extra ones.
    ifaces = []
    for entry in interfaces:
        if entry["name"] == "lo":
            extra = [a for a in entry["addrs"] if a not in ("127.0.0.1/8", "::1/128")]
            if not extra:
                continue
            entry = {"name": "lo", "addrs": extra}
        ifaces.append(entry)
    host: dict[str, Any] = {"interfaces": ifaces, "routes": _keep_routes(routes, ifaces)}
    if rules:
        host["rules"] = rules
    if sysctls:
        host["sysctls"] = {str(k): str(v) for k, v in sysctls.items()}
    return host


def host_from_ip_json(addr_json: Any, link_json: Any = None, route_json: Any = None,
                      rule_json: Any = None, sysctls: dict[str, str] | None = None) -> dict[str, Any]:
    """`ip -j addr`, `ip -j -d link`, `ip -j route show table all` (IPv4 and
    IPv6 outputs may be given as a list of texts), `ip -j rule` → host dict."""
    interfaces = interfaces_from_ip_json(addr_json, link_json)
    routes = [route_text_from_json(r) for r in _loads(route_json) if isinstance(r, dict)]
    rules = []
    for r in _loads(rule_json):
        if not isinstance(r, dict):
            continue
        rule = parse_rule_line(rule_text_from_json(r))
        if rule is not None and rule not in DEFAULT_RULES and rule.text() not in rules:
            rules.append(rule.text())
    return _finish(interfaces, routes, rules, sysctls)


def host_from_ip_text(addr_text: str, route_text: str = "", rule_text: str = "", link_text: str = "",
                      sysctls: dict[str, str] | None = None) -> dict[str, Any]:
    """`ip addr` (or `ip -br addr`), `ip route`, `ip rule`, `ip -d link` text → host dict."""
    interfaces = parse_ip_addr(addr_text)
    if link_text.strip():
        links = {i["name"]: i for i in parse_ip_addr(link_text)}
        for entry in interfaces:
            for key in ("type", "master", "hairpin"):
                if key in links.get(entry["name"], {}):
                    entry[key] = links[entry["name"]][key]
        names = {i["name"] for i in interfaces}
        interfaces += [i for name, i in links.items() if name not in names]
    return _finish(interfaces, parse_ip_route_text(route_text), parse_ip_rule_text(rule_text), sysctls)


def looks_like_json(text: str) -> bool:
    return text.lstrip()[:1] in ("[", "{")


def ip_interfaces(text: str) -> list[dict[str, Any]]:
    """Pasted interfaces: `ip -j addr` JSON or any `ip addr` text form."""
    if not text.strip():
        return []
    if looks_like_json(text):
        items = _loads(text)
        if items and all(isinstance(i, dict) and "name" in i and "ifname" not in i for i in items):
            # Already the scenario's own format (as the host page shows it).
            return [dict(i) for i in items]
        return interfaces_from_ip_json(items)
    return parse_ip_addr(text)


def ip_routes(text: str, interfaces: list[dict[str, Any]] | None = None) -> list[str]:
    """Pasted routes: `ip -j route` JSON or `ip route` text."""
    if not text.strip():
        return []
    lines = ([route_text_from_json(r) for r in _loads(text) if isinstance(r, dict)]
             if looks_like_json(text) else parse_ip_route_text(text))
    return _keep_routes(lines, interfaces or [])


def ip_rules(text: str) -> list[str]:
    """Pasted rules: `ip -j rule` JSON or `ip rule` text."""
    if not text.strip():
        return []
    if looks_like_json(text):
        return host_from_ip_json([], rule_json=text).get("rules", [])
    return parse_ip_rule_text(text)


__all__ = [
    "IPInterface",
    "host_from_ip_json",
    "host_from_ip_text",
    "interfaces_from_ip_json",
    "ip_interfaces",
    "ip_routes",
    "ip_rules",
    "parse_ip_addr",
    "parse_ip_route_text",
    "parse_ip_rule_text",
    "route_text_from_json",
    "rule_text_from_json",
]

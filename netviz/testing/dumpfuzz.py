"""Scenarios for a real dump: a host and packets built from what the rules mention.

The interface names, addresses, networks and ports in a dump's rules are the
ones its packets will hit, so the host gets those interfaces (wildcards made
concrete) and the packets are drawn from those addresses and ports, in all
three paths.  Deterministic per seed.
"""

from __future__ import annotations

import ipaddress
import random
import re
from typing import Any

from netviz.engine.parser import parse_ruleset
from netviz.engine.ruleset import Family, Ruleset

_IFACE_OK = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")


def _concrete_iface(name: str) -> str | None:
    name = name.rstrip("+") + ("0" if name.endswith("+") else "")
    if not _IFACE_OK.match(name) or name == "lo":
        return None
    return name[:15]


def mentioned(ruleset: Ruleset) -> tuple[list[str], list[ipaddress.IPv4Network], list[int]]:
    ifaces: dict[str, None] = {}
    nets: dict[ipaddress.IPv4Network, None] = {}
    ports: dict[int, None] = {}
    for rule in ruleset.rules():
        for match in rule.matches:
            for opt in match.options:
                if opt.name in ("-i", "-o", "--physdev-in", "--physdev-out") and opt.values:
                    name = _concrete_iface(opt.values[0])
                    if name:
                        ifaces[name] = None
                elif opt.name in ("-s", "-d") and opt.values:
                    try:
                        net = ipaddress.ip_network(opt.values[0], strict=False)
                    except ValueError:
                        continue
                    if isinstance(net, ipaddress.IPv4Network) and net.prefixlen >= 8:
                        nets[net] = None
                elif opt.name in ("--dport", "--dports", "--sport", "--sports") and opt.values:
                    for part in opt.values[0].split(","):
                        first = part.split(":")[0]
                        if first.isdigit():
                            ports[int(first)] = None
        target = rule.target
        if target is not None:
            for opt in target.options:
                if opt.name in ("--to-destination", "--to-source"):
                    addr = opt.values[0].split(":")[0].split("-")[0] if opt.values else ""
                    try:
                        nets[ipaddress.ip_network(addr + "/32")] = None
                    except ValueError:
                        pass
    return list(ifaces), list(nets), list(ports)


def dump_scenarios(text: str, ipsets: str | None, seed: int, count: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    ruleset = parse_ruleset(text, ipsets, family=Family.IPV4)
    names, nets, ports = mentioned(ruleset)
    rng.shuffle(names)
    names = names[:5]
    if len(names) < 2:
        names += [n for n in ("eth0", "eth1") if n not in names][: 2 - len(names)]
    interfaces = []
    for i, name in enumerate(names):
        interfaces.append({"name": name, "addrs": [f"10.{200 + i}.0.1/24"]})
    routes = [f"default via 10.{200 + len(names) - 1}.0.254 dev {names[-1]}"]
    # Networks the rules name are routed out of the interfaces in turn, so
    # forwarded packets reach FORWARD/POSTROUTING on the named devices.
    routed: list[ipaddress.IPv4Network] = []
    for j, net in enumerate(sorted(nets, key=lambda n: n.prefixlen)[:12]):
        if net.is_loopback or net.is_multicast or net.network_address.is_unspecified:
            continue
        if any(net.overlaps(r) for r in routed) or net.prefixlen == 32:
            continue
        if net.overlaps(ipaddress.ip_network("10.200.0.0/13")):
            continue
        dev = names[j % len(names)]
        routes.append(f"{net} via 10.{200 + names.index(dev)}.0.254 dev {dev}")
        routed.append(net)
    host = {"interfaces": interfaces, "routes": routes}
    local = [ipaddress.ip_address(f"10.{200 + i}.0.1") for i in range(len(names))]
    pool: list[ipaddress.IPv4Address] = []
    for net in nets:
        if net.is_loopback or net.is_multicast or net.network_address.is_unspecified:
            continue
        if net.num_addresses == 1:
            pool.append(net.network_address)
        else:
            pool.append(net.network_address + 1 + rng.randrange(min(net.num_addresses - 2, 250)))
    pool += [ipaddress.ip_address("198.51.100.10"), ipaddress.ip_address("203.0.113.20")]
    out = []
    for _ in range(count):
        kind = rng.choice(["in", "fwd", "fwd", "out"])
        proto = rng.choice(["tcp", "tcp", "tcp", "udp", "icmp"])
        pkt: dict[str, Any] = {"proto": proto}
        if kind == "out":
            pkt["src"] = str(rng.choice(local))
            pkt["dst"] = str(rng.choice(pool))
        else:
            i = rng.randrange(len(names))
            pkt["in_iface"] = names[i]
            pkt["src"] = str(rng.choice([ipaddress.ip_address(f"10.{200 + i}.0.{rng.randrange(2, 250)}")] + pool))
            pkt["dst"] = str(rng.choice(local) if kind == "in" else rng.choice(pool))
            if pkt["src"] == pkt["dst"] or ipaddress.ip_address(pkt["src"]) in local:
                pkt["src"] = f"10.{200 + i}.0.77"
        if proto in ("tcp", "udp"):
            pkt["sport"] = rng.choice([40000, 51234, 1024 + rng.randrange(60000)])
            pkt["dport"] = rng.choice(ports or [80]) if ports and rng.random() < 0.7 else rng.choice([22, 53, 80, 443, 8080])
        out.append({"host": host, "packet": pkt})
    return out

"""A seeded generator of tangled but loadable iptables rulesets.

`random_scenario(seed)` returns a scenario dict (shared/spec/scenario.md) whose
ruleset mixes tables, user chains reached by -j and -g, RETURN, nested jumps,
policies, many matches and targets, and a NEW packet on one of the three paths
(arriving for the host, forwarded, locally generated).  The same seed always
gives the same scenario.  Addresses come only from test ranges.

Every ruleset must load with iptables-restore, so targets are placed only where
the kernel accepts them (x_tables checks a target's hook mask against every
hook its chain is reachable from, nf_tables does the same at commit):
DNAT/REDIRECT only in nat chains reached from PREROUTING/OUTPUT, SNAT and
MASQUERADE only from POSTROUTING, REJECT only in filter, CT only in raw.  User
chains only jump "forward" (to chains created later), so there are no loops.
"""

from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass, field
from typing import Any

from netviz.engine.hooks import IPTABLES_HOOKS

BUILTINS = IPTABLES_HOOKS
TABLE_ORDER = ("raw", "mangle", "nat", "filter", "security")
HOOKS_IN = ("PREROUTING", "INPUT", "FORWARD")  # hooks where -i is meaningful
HOOKS_OUT = ("FORWARD", "OUTPUT", "POSTROUTING")  # hooks where -o is meaningful

IFACE_NAMES = ("eth0", "eth1", "wlan0", "br-lan", "docker0", "veth7a")
SUBNETS = ("10.88.1.0/24", "10.88.2.0/24", "192.0.2.0/24", "198.51.100.0/24")
REMOTE_NET = "203.0.113.0/24"  # reached through the default route
PORTS = (22, 53, 80, 123, 443, 5353, 8080)
MARKS = (0x1, 0x2, 0x10, 0xFF, 0x4000, 0x10000)
MASKS = (0xFFFFFFFF, 0xFF, 0xF0, 0x4000, 0xFFFF)


@dataclass
class _Chain:
    table: str
    name: str
    hooks: set[str] = field(default_factory=set)  # hooks it is reachable from
    klass: str = "any"  # nat: "dst" (PREROUTING/OUTPUT), "src" (POSTROUTING), "any"
    rules: list[str] = field(default_factory=list)

    @property
    def builtin(self) -> bool:
        return self.name in BUILTINS[self.table]


@dataclass
class _Host:
    ifaces: list[tuple[str, ipaddress.IPv4Interface]]
    upstream: str  # the interface of the default route
    gateway: ipaddress.IPv4Address
    routes: list[str]

    def iface_of(self, addr: ipaddress.IPv4Address) -> str:
        for name, itf in self.ifaces:
            if addr in itf.network:
                return name
        return self.upstream

    def local_addrs(self) -> list[ipaddress.IPv4Address]:
        return [itf.ip for _, itf in self.ifaces]

    def address_of(self, name: str) -> ipaddress.IPv4Address:
        return next(itf.ip for n, itf in self.ifaces if n == name)


def _host(rng: random.Random) -> _Host:
    count = rng.randint(2, 4)
    names = rng.sample(IFACE_NAMES, count)
    nets = rng.sample(SUBNETS, count)
    ifaces = [(n, ipaddress.IPv4Interface(f"{ipaddress.IPv4Network(net)[1]}/24")) for n, net in zip(names, nets)]
    upstream_name, upstream_itf = rng.choice(ifaces)
    gateway = upstream_itf.network[254]
    routes = [f"default via {gateway} dev {upstream_name}"]
    return _Host(ifaces, upstream_name, gateway, routes)


def _peer(rng: random.Random, net: ipaddress.IPv4Network) -> ipaddress.IPv4Address:
    # .1 is the host, .254 the gateway; peers live in between.
    return net[rng.randint(2, 200)]


def _packet(rng: random.Random, host: _Host) -> tuple[dict[str, Any], str]:
    path = rng.choice(("input", "forward", "output", "output"))
    proto = rng.choice(("tcp", "tcp", "udp", "udp", "icmp"))
    remote = ipaddress.IPv4Network(REMOTE_NET)
    pkt: dict[str, Any] = {"proto": proto}
    if path in ("input", "forward"):
        in_name, in_itf = rng.choice(host.ifaces)
        src = _peer(rng, remote) if in_name == host.upstream and rng.random() < 0.5 else _peer(rng, in_itf.network)
        if path == "input":
            dst = rng.choice(host.local_addrs()) if rng.random() < 0.4 else in_itf.ip
        else:
            others = [itf for n, itf in host.ifaces if n != in_name]
            dst = _peer(rng, rng.choice(others).network) if rng.random() < 0.7 else _peer(rng, remote)
            if dst in remote and in_name == host.upstream:
                dst = _peer(rng, others[0].network)
        pkt["in_iface"] = in_name
    else:
        choice = rng.random()
        if choice < 0.15:
            dst = rng.choice(host.local_addrs())  # loopback delivery
            src = rng.choice(host.local_addrs())
        else:
            dst = _peer(rng, rng.choice([itf.network for _, itf in host.ifaces] + [remote]))
            src = host.address_of(host.iface_of(dst))
        pkt["in_iface"] = None
    pkt["src"], pkt["dst"] = str(src), str(dst)
    if proto in ("tcp", "udp"):
        pkt["sport"] = rng.randint(1024, 65000)
        pkt["dport"] = rng.choice(PORTS)
    if proto == "tcp":
        pkt["tcp_flags"] = "S"
    if proto == "icmp":
        pkt["icmp_type"], pkt["icmp_code"] = rng.choice(((8, 0), (8, 0), (13, 0)))
    pkt["mark"] = rng.choice((0, 0, 0, 0x10, 0x4001))
    pkt["ctstate"] = "NEW"
    return pkt, path


class _Gen:
    def __init__(self, rng: random.Random, host: _Host, pkt: dict[str, Any]) -> None:
        self.rng = rng
        self.host = host
        self.pkt = pkt
        self.counter = 0

    # -- values biased towards the packet so that about half the clauses match
    def _addr_clause(self, flag: str, addr: str) -> str:
        rng = self.rng
        ip = ipaddress.IPv4Address(addr)
        if rng.random() < 0.55:
            prefix = rng.choice((32, 24, 16, 8))
            net = ipaddress.IPv4Network(f"{ip}/{prefix}", strict=False)
        else:
            net = ipaddress.IPv4Network(rng.choice(SUBNETS + (REMOTE_NET,)))
            if rng.random() < 0.5:
                net = ipaddress.IPv4Network(f"{_peer(rng, net)}/32")
        neg = "! " if rng.random() < 0.15 else ""
        return f"{neg}{flag} {net.with_prefixlen if net.prefixlen < 32 else str(net.network_address) + '/32'}"

    def _iface_clause(self, flag: str, want: str | None) -> str:
        rng = self.rng
        names = [n for n, _ in self.host.ifaces]
        name = want if (want and rng.random() < 0.5) else rng.choice(names + ["lo"])
        if rng.random() < 0.3 and len(name) > 2:
            name = name[: rng.randint(1, len(name) - 1)] + "+"
        neg = "! " if rng.random() < 0.15 else ""
        return f"{neg}{flag} {name}"

    def _port(self, actual: int | None) -> int:
        return actual if (actual and self.rng.random() < 0.5) else self.rng.choice(PORTS)

    def _mark(self) -> str:
        return f"{self.rng.choice(MARKS + (self.pkt.get('mark') or 0,)):#x}/{self.rng.choice(MASKS):#x}"

    def matches(self, chain: _Chain) -> tuple[list[str], str | None]:
        """Some match clauses for a rule in `chain`; returns (clauses, proto)."""
        rng = self.rng
        pkt = self.pkt
        out: list[str] = []
        proto: str | None = None
        hooks = chain.hooks
        if rng.random() < 0.5:
            proto = pkt["proto"] if rng.random() < 0.7 else rng.choice(("tcp", "udp", "icmp"))
            out.append(f"-p {proto}")
        pool = ["src", "dst", "mark", "connmark", "ctstate", "addrtype", "comment", "length", "ttl",
                "tos", "iprange"]
        if hooks and hooks <= set(HOOKS_IN):
            pool.append("in")
        if hooks and hooks <= set(HOOKS_OUT):
            pool.append("out")
        if proto in ("tcp", "udp"):
            pool += ["sport", "dport", "dport", "multiport"]
        if proto == "tcp":
            pool += ["tcpflags", "syn"]
        if proto == "icmp":
            pool += ["icmptype", "icmptype"]
        for kind in rng.sample(pool, k=min(len(pool), rng.choice((0, 1, 1, 2, 2, 3)))):
            out.append(self._clause(kind, proto, hooks))
        return out, proto

    def _clause(self, kind: str, proto: str | None, hooks: set[str]) -> str:
        rng = self.rng
        pkt = self.pkt
        if kind == "src":
            return self._addr_clause("-s", pkt["src"])
        if kind == "dst":
            return self._addr_clause("-d", pkt["dst"])
        if kind == "in":
            return self._iface_clause("-i", pkt.get("in_iface"))
        if kind == "out":
            return self._iface_clause("-o", None)
        if kind in ("sport", "dport"):
            neg = "! " if rng.random() < 0.15 else ""
            flag = f"--{kind}"
            if rng.random() < 0.3:
                lo = self._port(pkt.get(kind))
                return f"-m {proto} {neg}{flag} {max(lo - rng.randint(0, 50), 1)}:{lo + rng.randint(0, 50)}"
            return f"-m {proto} {neg}{flag} {self._port(pkt.get(kind))}"
        if kind == "multiport":
            ports = sorted(set(rng.sample(PORTS, 3) + [self._port(pkt.get("dport"))]))
            flag = rng.choice(("--dports", "--sports", "--ports"))
            return f"-m multiport {flag} {','.join(map(str, ports))}"
        if kind == "tcpflags":
            mask = rng.choice(("FIN,SYN,RST,ACK", "SYN,ACK", "ALL", "SYN,RST"))
            comp = rng.choice(("SYN", "SYN", "ACK", "NONE", "SYN,ACK"))
            if comp != "NONE" and mask != "ALL" and not set(comp.split(",")) <= set(mask.split(",")):
                comp = "SYN"
            return f"-m tcp --tcp-flags {mask} {comp}"
        if kind == "syn":
            return f"-m tcp {'! ' if rng.random() < 0.3 else ''}--syn"
        if kind == "icmptype":
            t = rng.choice(("8", "echo-request", "0", "13", "3/3", "any", "echo-reply"))
            return f"-m icmp {'! ' if rng.random() < 0.1 else ''}--icmp-type {t}"
        if kind == "mark":
            return f"-m mark {'! ' if rng.random() < 0.15 else ''}--mark {self._mark()}"
        if kind == "connmark":
            return f"-m connmark --mark {self._mark()}"
        if kind == "ctstate":
            states = rng.sample(("NEW", "ESTABLISHED", "RELATED", "INVALID", "UNTRACKED", "DNAT", "SNAT"), k=rng.randint(1, 2))
            neg = "! " if rng.random() < 0.15 else ""
            return f"-m conntrack {neg}--ctstate {','.join(states)}"
        if kind == "addrtype":
            parts = ["-m addrtype"]
            which = rng.choice(("--src-type", "--dst-type", "--dst-type"))
            neg = "! " if rng.random() < 0.15 else ""
            parts.append(f"{neg}{which} {rng.choice(('LOCAL', 'LOCAL', 'UNICAST', 'BROADCAST', 'MULTICAST'))}")
            # --limit-iface-in/out are refused by the kernel outside their hooks
            # (addrtype_mt_checkentry); only use them where every hook allows it.
            if hooks and hooks <= {"PREROUTING", "INPUT", "FORWARD"} and rng.random() < 0.3:
                parts.append("--limit-iface-in")
            elif hooks and hooks <= {"OUTPUT", "POSTROUTING", "FORWARD"} and rng.random() < 0.3:
                parts.append("--limit-iface-out")
            return " ".join(parts)
        if kind == "comment":
            return f'-m comment --comment "{rng.choice(("allow web", "kube svc", "x-1", "drop bogons"))}"'
        if kind == "length":
            lo = rng.choice((0, 28, 40, 60, 84, 100))
            hi = lo + rng.choice((0, 20, 1000))
            return f"-m length --length {lo}:{hi}" if hi != lo else f"-m length --length {lo}"
        if kind == "ttl":
            op = rng.choice(("--ttl-eq", "--ttl-gt", "--ttl-lt"))
            return f"-m ttl {op} {rng.choice((1, 63, 64, 65, 128))}"
        if kind == "tos":
            return f"-m tos --tos {rng.choice((0, 0x10, 0x08)):#04x}/0x3f"
        if kind == "iprange":
            flag, addr = rng.choice((("--src-range", pkt["src"]), ("--dst-range", pkt["dst"])))
            ip = ipaddress.IPv4Address(addr)
            if rng.random() < 0.6:
                first, last = ip - rng.randint(0, 3), ip + rng.randint(0, 3)
            else:
                first = _peer(rng, ipaddress.IPv4Network(rng.choice(SUBNETS)))
                last = first + 5
            return f"-m iprange {flag} {first}-{last}"
        raise AssertionError(kind)

    # -- targets
    def target(self, chain: _Chain, proto: str | None, callees: list[_Chain]) -> str:
        rng = self.rng
        options: list[str] = ["", "ACCEPT", "RETURN", "LOG"]
        if chain.table != "nat":
            options.append("DROP")
        if callees:
            options += ["jump", "jump", "goto"]
        if chain.table == "filter":
            options += ["REJECT", "DROP"]
        if chain.table == "mangle":
            options += ["MARK", "MARK", "CONNMARK"]
        if chain.table == "raw":
            options += ["CT", "MARK"]
        if chain.table == "nat":
            if chain.klass == "dst":
                options += ["DNAT", "DNAT", "REDIRECT"]
            if chain.klass == "src":
                options += ["SNAT", "MASQUERADE", "MASQUERADE"]
        kind = rng.choice(options)
        if kind == "":
            return ""
        if kind in ("jump", "goto"):
            callee = rng.choice(callees)
            return f"-{'j' if kind == 'jump' else 'g'} {callee.name}"
        if kind == "LOG":
            return f'-j LOG --log-prefix "nvz{self.counter} "'
        if kind == "REJECT":
            if proto == "tcp" and rng.random() < 0.5:
                return "-j REJECT --reject-with tcp-reset"
            return f"-j REJECT --reject-with {rng.choice(('icmp-port-unreachable', 'icmp-host-prohibited', 'icmp-admin-prohibited'))}"
        if kind == "MARK":
            return f"-j MARK --set-xmark {rng.choice(MARKS):#x}/{rng.choice(MASKS):#x}"
        if kind == "CONNMARK":
            if rng.random() < 0.5:
                return f"-j CONNMARK --save-mark --nfmask {rng.choice(MASKS):#x} --ctmask {rng.choice(MASKS):#x}"
            return f"-j CONNMARK --restore-mark --nfmask {rng.choice(MASKS):#x} --ctmask {rng.choice(MASKS):#x}"
        if kind == "CT":
            return "-j CT --notrack"
        ported = proto in ("tcp", "udp")
        if kind == "DNAT":
            net = ipaddress.IPv4Network(rng.choice([str(itf.network) for _, itf in self.host.ifaces]))
            addr = rng.choice((_peer(rng, net), rng.choice(self.host.local_addrs())))
            port = f":{rng.choice(PORTS)}" if ported and rng.random() < 0.6 else ""
            return f"-j DNAT --to-destination {addr}{port}"
        if kind == "REDIRECT":
            return f"-j REDIRECT --to-ports {rng.choice(PORTS)}" if ported and rng.random() < 0.7 else "-j REDIRECT"
        if kind == "SNAT":
            addr = rng.choice(self.host.local_addrs())
            port = f":{rng.randint(1024, 2000)}-{rng.randint(2001, 3000)}" if ported and rng.random() < 0.4 else ""
            return f"-j SNAT --to-source {addr}{port}"
        if kind == "MASQUERADE":
            return f"-j MASQUERADE --to-ports {rng.randint(1024, 2000)}-{rng.randint(2001, 3000)}" if ported and rng.random() < 0.3 else "-j MASQUERADE"
        return f"-j {kind}"


def _policy(rng: random.Random, table: str) -> str:
    # nat chains refuse DROP policies; a DROP policy elsewhere is common in filter.
    if table == "nat":
        return "ACCEPT"
    if table == "filter":
        return rng.choice(("ACCEPT", "ACCEPT", "DROP"))
    return "ACCEPT" if rng.random() < 0.85 else "DROP"


def _klass_for(table: str, hook: str) -> str:
    if table != "nat":
        return "any"
    return "dst" if hook in ("PREROUTING", "OUTPUT") else "src" if hook == "POSTROUTING" else "in"


def _table_text(rng: random.Random, table: str, gen: _Gen) -> str:
    builtins = [_Chain(table, name, {name}, _klass_for(table, name)) for name in BUILTINS[table]]
    users: list[_Chain] = []
    for i in range(rng.choice((0, 1, 2, 3, 3, 4, 5))):
        klass = rng.choice(("dst", "dst", "src", "any")) if table == "nat" else "any"
        users.append(_Chain(table, f"{table[:3].upper()}-{klass.upper()}-{i}", set(), klass))
    # Wire jumps: each chain may call later user chains of a compatible class.
    # Built-ins are visited first so reachability (hooks) flows downwards.
    def compatible(caller: _Chain, callee: _Chain) -> bool:
        if table != "nat":
            return True
        if callee.klass == "any":
            return True
        if caller.klass == "in":
            return False
        return caller.klass == callee.klass

    order = builtins + users
    for idx, chain in enumerate(order):
        later = [u for u in users if order.index(u) > idx and compatible(chain, u)]
        rule_count = rng.choice((0, 1, 2, 3, 4, 5, 6)) if not chain.builtin else rng.choice((0, 1, 2, 3, 4, 5))
        for _ in range(rule_count):
            gen.counter += 1
            clauses, proto = gen.matches(chain)
            target = gen.target(chain, proto, later)
            if target.startswith(("-j REJECT --reject-with tcp-reset",)) and proto != "tcp":
                target = "-j REJECT --reject-with icmp-port-unreachable"
            words = target.split()
            if len(words) >= 2 and words[0] in ("-j", "-g"):
                callee = next((u for u in users if u.name == words[1]), None)
                if callee is not None:
                    callee.hooks |= chain.hooks
            chain.rules.append(" ".join([f"-A {chain.name}", *clauses, target]).strip())
    lines = [f"*{table}"]
    for chain in builtins:
        lines.append(f":{chain.name} {_policy(rng, table)} [0:0]")
    for chain in users:
        lines.append(f":{chain.name} - [0:0]")
    for chain in order:
        lines.extend(chain.rules)
    lines.append("COMMIT")
    return "\n".join(lines)


def random_scenario(seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    host = _host(rng)
    pkt, path = _packet(rng, host)
    tables = [t for t in TABLE_ORDER if rng.random() < (0.3 if t == "security" else 0.6)]
    if not tables:
        tables = [rng.choice(("filter", "nat"))]
    gen = _Gen(rng, host, pkt)
    text = "\n".join(_table_text(rng, t, gen) for t in tables) + "\n"
    return {
        "name": f"random-{seed} ({path})",
        "ruleset": f"# netviz random ruleset, seed {seed}\n{text}",
        "family": "ipv4",
        "host": {
            "interfaces": [{"name": n, "addrs": [str(itf)]} for n, itf in host.ifaces],
            "routes": list(host.routes),
        },
        "packet": pkt,
    }

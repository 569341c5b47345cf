"""A second, independent generator of loadable rulesets and packets.

`randomrules.random_scenario` covers the common matches and targets; this one
reaches what it does not: ipsets of every common type (with nomatch entries,
--return-nomatch, src/dst flag lists shorter or longer than the set), SET
targets feeding later set matches, statistic/limit/hashlimit/recent/connlimit
first-packet semantics, owner, pkttype, mac, physdev, rpfilter, every
addrtype, tos/dscp/ecn/tcpmss/ttl rewrites and matches, tcp options and flag
combinations, the conntrack tuple options, CT zones, NETMAP, REJECT with every
--reject-with, deep jump chains, -g from built-ins, RETURN in built-ins, and
packets of many kinds (odd flags, icmp types, gre/esp/other protocols, ttl
0/1/255, tos, broadcast and multicast destinations, martian sources, policy
routing on marks, several addresses per interface, interfaces without any).

`random_scenario2(seed)` is deterministic.  Matches whose kernel result is
not reproducible (cpu, string, u32, statistic with 0<p<1) are produced only
when `uncertain=True`; the default scenarios are meant to agree hop for hop.
"""

from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass, field
from typing import Any

from netviz.engine.hooks import IPTABLES_HOOKS

BUILTINS = IPTABLES_HOOKS
TABLE_ORDER = ("raw", "mangle", "nat", "filter", "security")
IN_HOOKS = frozenset({"PREROUTING", "INPUT", "FORWARD"})
OUT_HOOKS = frozenset({"FORWARD", "OUTPUT", "POSTROUTING"})

IFACE_NAMES = ("eth0", "eth1", "wan", "lan0", "br0", "vethA", "ens3")
SUBNETS = ("10.77.1.0/24", "10.77.2.0/24", "192.0.2.0/24", "198.51.100.0/24", "172.31.5.0/24")
REMOTE_NET = "203.0.113.0/24"
UNROUTED = "100.64.9.0/24"  # no route when the host has no default route
PORTS = (22, 53, 80, 443, 1812, 8080)
MARKS = (0x0, 0x1, 0x2, 0x10, 0xFF, 0x100, 0x4000)
MASKS = (0xFFFFFFFF, 0xFF, 0xF0, 0x4000, 0xFFFF, 0x1)
REJECT_WITH = (
    "icmp-net-unreachable", "icmp-host-unreachable", "icmp-port-unreachable", "icmp-proto-unreachable",
    "icmp-net-prohibited", "icmp-host-prohibited", "icmp-admin-prohibited",
)
ICMP_KINDS = ((8, 0), (8, 0), (0, 0), (3, 3), (3, 1), (11, 0), (13, 0), (5, 1), (12, 0), (4, 0))
ICMP_MATCH = ("any", "echo-request", "echo-reply", "destination-unreachable", "port-unreachable",
              "host-unreachable", "time-exceeded", "ttl-zero-during-transit", "3", "3/3", "11/1",
              "timestamp-request", "13", "redirect", "parameter-problem", "source-quench", "0")


@dataclass
class _Chain:
    table: str
    name: str
    hooks: set[str] = field(default_factory=set)
    rules: list[str] = field(default_factory=list)

    @property
    def builtin(self) -> bool:
        return self.name in BUILTINS[self.table]


@dataclass
class _Host:
    ifaces: list[tuple[str, list[ipaddress.IPv4Interface]]]
    routes: list[str]
    rules: list[str]
    upstream: str | None

    def addresses(self) -> list[ipaddress.IPv4Address]:
        return [itf.ip for _, addrs in self.ifaces for itf in addrs]

    def nets(self) -> list[tuple[str, ipaddress.IPv4Network]]:
        return [(n, itf.network) for n, addrs in self.ifaces for itf in addrs]

    def iface_for(self, addr: ipaddress.IPv4Address) -> str | None:
        for name, net in self.nets():
            if addr in net:
                return name
        return self.upstream


def _peer(rng: random.Random, net: ipaddress.IPv4Network) -> ipaddress.IPv4Address:
    return net[rng.randint(2, 200)]


def _host(rng: random.Random) -> _Host:
    count = rng.randint(2, 4)
    names = rng.sample(IFACE_NAMES, count)
    nets = rng.sample(SUBNETS, count + 1)
    ifaces: list[tuple[str, list[ipaddress.IPv4Interface]]] = []
    for i, name in enumerate(names):
        net = ipaddress.IPv4Network(nets[i])
        addrs = [ipaddress.IPv4Interface(f"{net[1]}/24")]
        if rng.random() < 0.2:
            addrs.append(ipaddress.IPv4Interface(f"{net[rng.randint(201, 250)]}/24"))
        if rng.random() < 0.1:
            spare = ipaddress.IPv4Network(nets[count])
            addrs.append(ipaddress.IPv4Interface(f"{spare[1]}/24"))
        if i > 0 and rng.random() < 0.12:
            addrs = []  # an interface without addresses
        ifaces.append((name, addrs))
    with_addr = [(n, a) for n, a in ifaces if a]
    routes: list[str] = []
    rules: list[str] = []
    upstream: str | None = None
    if rng.random() < 0.85:
        upstream, addrs = rng.choice(with_addr)
        routes.append(f"default via {addrs[0].network[254]} dev {upstream}")
    if rng.random() < 0.2 and len(with_addr) > 1:
        # policy routing: marked packets use another table
        other, addrs = rng.choice(with_addr)
        routes.append(f"default via {addrs[0].network[254]} dev {other} table 100")
        rules.append(f"fwmark {rng.choice((0x1, 0x10, 0x4000)):#x} lookup 100")
    return _Host(ifaces, routes, rules, upstream)


def _packet(rng: random.Random, host: _Host) -> tuple[dict[str, Any], str]:
    path = rng.choice(("input", "forward", "forward", "output", "output"))
    proto: str | int = rng.choice(("tcp", "tcp", "tcp", "udp", "udp", "icmp", "icmp", "gre", "esp", "47", "50", "112", "sctp"))
    remote = ipaddress.IPv4Network(REMOTE_NET)
    nets = host.nets()
    pkt: dict[str, Any] = {"proto": proto}
    if path in ("input", "forward"):
        in_name, in_addrs = rng.choice([(n, a) for n, a in host.ifaces if a])
        in_net = in_addrs[0].network
        r = rng.random()
        if r < 0.08:
            src = rng.choice(host.addresses())  # martian: our own address arriving
        elif r < 0.12:
            src = ipaddress.IPv4Address("127.0.0.5")
        elif in_name == host.upstream and r < 0.5:
            src = _peer(rng, remote)
        else:
            src = _peer(rng, in_net)
        if path == "input":
            r = rng.random()
            if r < 0.1:
                dst = in_net.broadcast_address
            elif r < 0.15:
                dst = ipaddress.IPv4Address("255.255.255.255")
            elif r < 0.22:
                dst = ipaddress.IPv4Address(rng.choice(("224.0.0.1", "224.0.0.251", "239.1.2.3")))
            else:
                dst = rng.choice(host.addresses())
        else:
            others = [net for n, net in nets if n != in_name]
            r = rng.random()
            if r < 0.1:
                dst = _peer(rng, ipaddress.IPv4Network(UNROUTED))
            elif others and r < 0.7:
                dst = _peer(rng, rng.choice(others))
            else:
                dst = _peer(rng, remote)
        pkt["in_iface"] = in_name
        if rng.random() < 0.3:
            pkt["mac"] = rng.choice(("02:00:00:00:00:aa", "02:00:00:00:00:bb"))
    else:
        r = rng.random()
        if r < 0.15:
            dst = rng.choice(host.addresses())
            src = rng.choice(host.addresses())
        elif r < 0.2:
            dst = ipaddress.IPv4Address("127.0.0.1")
            src = ipaddress.IPv4Address("127.0.0.1")
        else:
            dst = _peer(rng, rng.choice([net for _, net in nets] + [remote]))
            out = host.iface_for(dst)
            mine = [itf.ip for n, addrs in host.ifaces if n == out for itf in addrs]
            src = mine[0] if mine and rng.random() < 0.85 else rng.choice(host.addresses())
        pkt["in_iface"] = None
    pkt["src"], pkt["dst"] = str(src), str(dst)
    if proto in ("tcp", "udp", "sctp"):
        pkt["sport"] = rng.choice((rng.randint(1024, 65000), 53, 1812))
        pkt["dport"] = rng.choice(PORTS)
    if proto == "tcp":
        pkt["tcp_flags"] = rng.choice(("S", "S", "S", "SA", "A", "F", "FA", "R", "RA", "PA", "", "FSRPAU", "SF", "SR", "FPU", "SE", "SEC"))
    if proto == "icmp":
        pkt["icmp_type"], pkt["icmp_code"] = rng.choice(ICMP_KINDS)
    pkt["mark"] = rng.choice((0, 0, 0, 0x1, 0x10, 0x4001))
    if rng.random() < 0.3:
        pkt["ttl"] = rng.choice((0, 1, 2, 255, 128))
    if rng.random() < 0.3:
        pkt["tos"] = rng.choice((0x10, 0x08, 0x04, 0x02, 0xB8, 0x01, 0x03, 0x28))
    pkt["ctstate"] = "NEW"
    return pkt, path


class _Sets:
    """ipset definitions biased towards the packet's own values."""

    def __init__(self, rng: random.Random, host: _Host, pkt: dict[str, Any]) -> None:
        self.rng = rng
        src, dst = pkt["src"], pkt["dst"]
        proto = pkt["proto"] if pkt["proto"] in ("tcp", "udp") else "tcp"
        sport, dport = pkt.get("sport", 80), pkt.get("dport", 80)

        def some_ip() -> str:
            return rng.choice((src, dst, src, dst, str(_peer(rng, ipaddress.IPv4Network(rng.choice(SUBNETS))))))

        def some_net() -> tuple[str, str]:
            ip = ipaddress.IPv4Address(some_ip())
            wide = ipaddress.IPv4Network(f"{ip}/{rng.choice((8, 16, 24))}", strict=False)
            narrow = ipaddress.IPv4Network(f"{ip}/{rng.choice((24, 28, 32))}", strict=False)
            return str(wide), str(narrow)

        def some_port() -> int:
            return rng.choice((sport, dport, dport, rng.choice(PORTS)))

        ifnames = [n for n, _ in host.ifaces]
        lines: list[str] = []
        self.sets: dict[str, int] = {}  # name → dimension

        def create(name: str, kind: str, dim: int, extra: str = "") -> None:
            fam = "" if kind.startswith(("bitmap", "list")) else " family inet"
            lines.append(f"create {name} {kind}{fam}{extra}")
            self.sets[name] = dim

        create("s_ip", "hash:ip", 1)
        for _ in range(rng.randint(0, 3)):
            lines.append(f"add s_ip {some_ip()}")
        create("s_net", "hash:net", 1)
        for _ in range(rng.randint(0, 2)):
            wide, narrow = some_net()
            lines.append(f"add s_net {wide}")
            if rng.random() < 0.5:
                lines.append(f"add s_net {narrow} nomatch")
        create("s_ipport", "hash:ip,port", 2)
        for _ in range(rng.randint(0, 2)):
            lines.append(f"add s_ipport {some_ip()},{rng.choice((proto, proto, 'udp'))}:{some_port()}")
        create("s_netport", "hash:net,port", 2)
        for _ in range(rng.randint(0, 2)):
            wide, narrow = some_net()
            lines.append(f"add s_netport {wide},{proto}:{some_port()}")
            if rng.random() < 0.3:
                lines.append(f"add s_netport {narrow},{proto}:{some_port()} nomatch")
        create("s_netif", "hash:net,iface", 2)
        for _ in range(rng.randint(0, 2)):
            wide, _ = some_net()
            lines.append(f"add s_netif {wide},{rng.choice(ifnames + ['lo'])}")
        create("s_ipportip", "hash:ip,port,ip", 3)
        for _ in range(rng.randint(0, 2)):
            lines.append(f"add s_ipportip {some_ip()},{proto}:{some_port()},{some_ip()}")
        create("s_ports", "bitmap:port", 1, " range 0-65535")
        for _ in range(rng.randint(0, 2)):
            lines.append(f"add s_ports {some_port()}")
        create("s_list", "list:set", 1, " size 8")
        for member in rng.sample(("s_ip", "s_net", "s_ipport"), rng.randint(0, 2)):
            lines.append(f"add s_list {member}")
        # ipset restore refuses an element added twice (nomatch or not).
        seen: set[str] = set()
        unique: list[str] = []
        for line in lines:
            key = line.removesuffix(" nomatch")
            if key not in seen:
                seen.add(key)
                unique.append(line)
        self.text = "\n".join(unique) + "\n"


class _Gen:
    def __init__(self, rng: random.Random, host: _Host, pkt: dict[str, Any], sets: _Sets, uncertain: bool) -> None:
        self.rng = rng
        self.host = host
        self.pkt = pkt
        self.sets = sets
        self.uncertain = uncertain
        self.counter = 0

    def _mark(self) -> str:
        return f"{self.rng.choice(MARKS + (self.pkt.get('mark') or 0,)):#x}/{self.rng.choice(MASKS):#x}"

    def _neg(self, p: float = 0.2) -> str:
        return "! " if self.rng.random() < p else ""

    def _addr(self, addr: str) -> str:
        rng = self.rng
        ip = ipaddress.IPv4Address(addr)
        if rng.random() < 0.6:
            net = ipaddress.IPv4Network(f"{ip}/{rng.choice((32, 24, 16, 8))}", strict=False)
        else:
            net = ipaddress.IPv4Network(rng.choice(SUBNETS + (REMOTE_NET, "127.0.0.0/8", "224.0.0.0/4")))
        return net.with_prefixlen

    def matches(self, chain: _Chain) -> tuple[list[str], str | None]:
        rng = self.rng
        pkt = self.pkt
        out: list[str] = []
        proto: str | None = None
        if rng.random() < 0.5:
            real = str(pkt["proto"])
            proto = real if rng.random() < 0.7 else rng.choice(("tcp", "udp", "icmp", "gre", "esp"))
            if proto.isdigit():
                proto = {"47": "gre", "50": "esp"}.get(proto, proto)
            neg = self._neg(0.1)
            out.append(f"{neg}-p {proto}")
            if neg:
                proto = None  # tcp/udp/icmp matches refuse an inverted -p
        hooks = chain.hooks
        pool = ["src", "dst", "mark", "connmark", "set", "set", "set", "conntrack", "conntrack", "addrtype",
                "addrtype", "pkttype", "tos", "dscp", "ttl", "length", "iprange", "statistic", "limit",
                "hashlimit", "recent", "comment", "helper", "connlimit", "connbytes", "physdev", "frag", "ecn-ip"]
        if hooks and hooks <= IN_HOOKS:
            pool += ["in", "mac", "devgroup-src"]
        if hooks and hooks <= OUT_HOOKS:
            pool += ["out", "devgroup-dst"]
        if hooks and hooks <= {"OUTPUT", "POSTROUTING"}:
            pool += ["owner", "owner"]
        if hooks == {"PREROUTING"} and chain.table in ("raw", "mangle"):
            pool += ["rpfilter", "rpfilter"]
        if proto in ("tcp", "udp"):
            pool += ["sport", "dport", "multiport", "multiport"]
        if proto == "sctp":
            pool += ["sport", "dport"]
        if proto == "tcp":
            pool += ["tcpflags", "tcpflags", "syn", "tcpoption", "tcpmss", "ecn-tcp"]
        if proto == "icmp":
            pool += ["icmp", "icmp"]
        if self.uncertain:
            pool += ["cpu", "string", "u32", "random"]
        for kind in rng.sample(pool, k=min(len(pool), rng.choice((0, 1, 1, 2, 2, 3)))):
            out.append(self._clause(kind, proto, chain))
        return out, proto

    def _clause(self, kind: str, proto: str | None, chain: _Chain) -> str:
        rng = self.rng
        pkt = self.pkt
        neg = self._neg()
        if kind == "src":
            return f"{neg}-s {self._addr(pkt['src'])}"
        if kind == "dst":
            return f"{neg}-d {self._addr(pkt['dst'])}"
        if kind in ("in", "out"):
            names = [n for n, _ in self.host.ifaces] + ["lo"]
            name = str(pkt.get("in_iface")) if kind == "in" and pkt.get("in_iface") and rng.random() < 0.5 else rng.choice(names)
            if rng.random() < 0.3:
                name = name[:2] + "+"
            return f"{neg}-{kind[0]} {name}"
        if kind == "mark":
            return f"-m mark {neg}--mark {self._mark()}"
        if kind == "connmark":
            return f"-m connmark {neg}--mark {self._mark()}"
        if kind == "set":
            name = rng.choice(sorted(self.sets.sets))
            dim = self.sets.sets[name]
            if name == "s_list":
                dim = rng.choice((1, 2))
            n = max(1, dim + rng.choice((0, 0, 0, 0, -1, 1)))
            flags = ",".join(rng.choice(("src", "dst")) for _ in range(n))
            extra = " --return-nomatch" if name in ("s_net", "s_netport") and rng.random() < 0.3 else ""
            return f"-m set {neg}--match-set {name} {flags}{extra}"
        if kind == "conntrack":
            return self._conntrack()
        if kind == "addrtype":
            which = rng.choice(("--src-type", "--dst-type"))
            types = ",".join(rng.sample(("UNSPEC", "UNICAST", "LOCAL", "BROADCAST", "ANYCAST", "MULTICAST",
                                         "BLACKHOLE", "UNREACHABLE", "PROHIBIT"), rng.choice((1, 1, 2))))
            text = f"-m addrtype {neg}{which} {types}"
            hooks = chain.hooks
            if hooks and hooks <= {"PREROUTING", "INPUT", "FORWARD"} and rng.random() < 0.3:
                text += " --limit-iface-in"
            elif hooks and hooks <= {"OUTPUT", "POSTROUTING", "FORWARD"} and rng.random() < 0.3:
                text += " --limit-iface-out"
            return text
        if kind == "pkttype":
            return f"-m pkttype {neg}--pkt-type {rng.choice(('unicast', 'broadcast', 'multicast'))}"
        if kind == "tos":
            value = rng.choice((0, 0x10, 0x08, 0x04, pkt.get("tos", 0)))
            return f"-m tos {neg}--tos {value:#04x}/{rng.choice((0xFF, 0x3F, 0x1C)):#04x}"
        if kind == "dscp":
            if rng.random() < 0.5:
                return f"-m dscp {neg}--dscp-class {rng.choice(('EF', 'BE', 'CS1', 'AF11', 'CS4'))}"
            return f"-m dscp {neg}--dscp {rng.choice((0, 0x2E, 0x0A, pkt.get('tos', 0) >> 2)):#x}"
        if kind == "ttl":
            op = rng.choice(("--ttl-eq", "--ttl-gt", "--ttl-lt"))
            neg = neg if op == "--ttl-eq" else ""  # only --ttl-eq can be inverted
            return f"-m ttl {neg}{op} {rng.choice((0, 1, 2, 63, 64, 254, 255))}"
        if kind == "length":
            lo = rng.choice((0, 20, 28, 40, 60, 84))
            return f"-m length {neg}--length {lo}:{lo + rng.choice((0, 8, 100, 65535 - lo))}"
        if kind == "iprange":
            flag, addr = rng.choice((("--src-range", pkt["src"]), ("--dst-range", pkt["dst"])))
            ip = ipaddress.IPv4Address(addr)
            value = int(ip)
            first, last = max(value - rng.randint(0, 3), 0), min(value + rng.randint(0, 3), 2**32 - 1)
            if rng.random() < 0.3 and value < 2**32 - 10:
                first, last = value + 1, value + 9
            return f"-m iprange {neg}{flag} {ipaddress.IPv4Address(first)}-{ipaddress.IPv4Address(last)}"
        if kind == "statistic":
            if rng.random() < 0.5:
                every = rng.choice((1, 2, 3))
                return f"-m statistic --mode nth {neg}--every {every} --packet {rng.randrange(every)}"
            return f"-m statistic --mode random {neg}--probability {rng.choice(('0', '1', '0.0', '1.0'))}"
        if kind == "random":
            return "-m statistic --mode random --probability 0.5"
        if kind == "limit":
            return f"-m limit --limit {rng.choice(('1/s', '5/min', '100/hour'))} --limit-burst {rng.choice((1, 5))}"
        if kind == "hashlimit":
            self.counter += 1
            which = rng.choice(("--hashlimit-upto", "--hashlimit-above"))
            return f"-m hashlimit {which} {rng.choice(('1/sec', '10/min'))} --hashlimit-burst 1 --hashlimit-mode srcip --hashlimit-name hl{self.counter}"
        if kind == "recent":
            action = rng.choice(("--set", "--rcheck", "--update", "--rcheck", "--remove"))
            side = " --rdest" if rng.random() < 0.3 else ""
            return f"-m recent {neg}{action} --name r{rng.randint(1, 2)}{side}"
        if kind == "comment":
            return f'-m comment --comment "{rng.choice(("x", "allow web", "kube: svc/a"))}"'
        if kind == "helper":
            return f'-m helper {neg}--helper {rng.choice(("ftp", "sip"))}'
        if kind == "connlimit":
            if rng.random() < 0.5:
                return f"-m connlimit --connlimit-upto {rng.choice((0, 1, 5))}"
            return f"-m connlimit --connlimit-above {rng.choice((0, 1, 5))}"
        if kind == "connbytes":
            return f"-m connbytes {neg}--connbytes {rng.choice(('0:10', '1:', '2:100'))} --connbytes-dir {rng.choice(('original', 'both', 'reply'))} --connbytes-mode {rng.choice(('packets', 'bytes'))}"
        if kind == "physdev":
            return rng.choice(("-m physdev --physdev-is-bridged", "-m physdev ! --physdev-is-bridged",
                               "-m physdev --physdev-in eth0", "-m physdev ! --physdev-is-in"))
        if kind == "frag":
            return f"{neg}-f"
        if kind == "ecn-ip":
            return f"-m ecn {neg}--ecn-ip-ect {rng.randint(0, 3)}"
        if kind == "ecn-tcp":
            return f"-m ecn {neg}{rng.choice(('--ecn-tcp-cwr', '--ecn-tcp-ece'))}"
        if kind == "mac":
            return f"-m mac {neg}--mac-source {rng.choice(('02:00:00:00:00:aa', '02:00:00:00:00:bb'))}"
        if kind == "devgroup-src":
            return f"-m devgroup {neg}--src-group {rng.choice((0, 1))}"
        if kind == "devgroup-dst":
            return f"-m devgroup {neg}--dst-group {rng.choice((0, 1))}"
        if kind == "owner":
            return rng.choice((f"-m owner {neg}--uid-owner 0", f"-m owner {neg}--uid-owner 1000",
                               "-m owner --socket-exists", f"-m owner {neg}--gid-owner 0",
                               "-m owner --uid-owner 0-10"))
        if kind == "rpfilter":
            opts = [o for o in ("--loose", "--invert", "--validmark", "--accept-local") if rng.random() < 0.3]
            return " ".join(["-m rpfilter", *opts])
        if kind in ("sport", "dport"):
            port = int(pkt.get(kind) or 0) if pkt.get(kind) and rng.random() < 0.5 else rng.choice(PORTS)
            if rng.random() < 0.3:
                return f"-m {proto} {neg}--{kind} {max(port - 10, 0)}:{port + rng.randint(0, 10)}"
            return f"-m {proto} {neg}--{kind} {port}"
        if kind == "multiport":
            parts: list[str] = []
            for _ in range(rng.randint(1, 4)):
                p = rng.choice(PORTS + (pkt.get("dport") or 80, pkt.get("sport") or 80))
                # multiport refuses a range whose ends are equal
                parts.append(f"{max(p - rng.randint(0, 5), 0)}:{p + rng.randint(1, 5)}" if rng.random() < 0.3 else str(p))
            flag = rng.choice(("--dports", "--sports", "--ports"))
            return f"-m multiport {neg}{flag} {','.join(parts)}"
        if kind == "tcpflags":
            mask = rng.choice(("FIN,SYN,RST,ACK", "SYN,ACK", "ALL", "SYN,RST", "FIN,SYN,RST,PSH,ACK,URG", "ACK", "FIN,URG,PSH"))
            comp = rng.choice(("SYN", "ACK", "NONE", "SYN,ACK", "FIN", "ALL", "RST", "FIN,PSH,URG"))
            mask_set = set(mask.split(",")) if mask != "ALL" else {"FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"}
            if comp not in ("NONE", "ALL"):
                comp = ",".join(f for f in comp.split(",") if f in mask_set) or "NONE"
            elif comp == "ALL" and mask != "ALL":
                comp = mask
            return f"-m tcp {neg}--tcp-flags {mask} {comp}"
        if kind == "syn":
            return f"-m tcp {neg}--syn"
        if kind == "tcpoption":
            return f"-m tcp {neg}--tcp-option {rng.choice((2, 3, 4, 8, 5, 1))}"
        if kind == "tcpmss":
            return f"-m tcpmss {neg}--mss {rng.choice(('1460', '1000:1500', '536', '1:1400'))}"
        if kind == "icmp":
            return f"-m icmp {neg}--icmp-type {rng.choice(ICMP_MATCH)}"
        if kind == "cpu":
            return f"-m cpu {neg}--cpu 0"
        if kind == "string":
            return '-m string --algo bm --string "abc"'
        if kind == "u32":
            return '-m u32 --u32 "0>>22&0x3C@0>>16=0x1234"'
        raise AssertionError(kind)

    def _conntrack(self) -> str:
        rng = self.rng
        pkt = self.pkt
        neg = self._neg()
        choice = rng.choice(("ctstate", "ctstate", "ctproto", "ctorigsrc", "ctorigdst", "ctreplsrc", "ctrepldst",
                             "ctorigsrcport", "ctorigdstport", "ctstatus", "ctdir", "ctreplsrcport"))
        if choice == "ctstate":
            states = ",".join(rng.sample(("NEW", "ESTABLISHED", "RELATED", "INVALID", "UNTRACKED", "DNAT", "SNAT"), rng.randint(1, 2)))
            return f"-m conntrack {neg}--ctstate {states}"
        if choice == "ctproto":
            return f"-m conntrack {neg}--ctproto {rng.choice(('tcp', 'udp', 'icmp', '47'))}"
        if choice in ("ctorigsrc", "ctrepldst"):
            return f"-m conntrack {neg}--{choice} {self._addr(pkt['src'])}"
        if choice in ("ctorigdst", "ctreplsrc"):
            return f"-m conntrack {neg}--{choice} {self._addr(pkt['dst'])}"
        if choice in ("ctorigsrcport", "ctreplsrcport", "ctorigdstport"):
            port = rng.choice(PORTS + (pkt.get("sport") or 1, pkt.get("dport") or 1))
            return f"-m conntrack --ctproto {rng.choice(('tcp', 'udp'))} {neg}--{choice} {port}"
        if choice == "ctstatus":
            return f"-m conntrack {neg}--ctstatus {rng.choice(('NONE', 'EXPECTED', 'SEEN_REPLY', 'ASSURED', 'CONFIRMED'))}"
        return f"-m conntrack --ctdir {rng.choice(('ORIGINAL', 'REPLY'))}"

    # -- targets
    def target(self, chain: _Chain, proto: str | None, callees: list[_Chain], clauses: list[str]) -> str:
        rng = self.rng
        table = chain.table
        hooks = chain.hooks
        opts = ["", "", "ACCEPT", "RETURN", "LOG", "NFLOG", "SET"]
        if table != "nat":
            opts.append("DROP")
        if callees:
            opts += ["jump", "jump", "jump", "goto"]
        if table == "filter":
            opts += ["REJECT", "REJECT"]
        if table == "mangle":
            opts += ["MARK", "MARK", "CONNMARK", "TOS", "DSCP", "TTL", "CHECKSUM"]
            if proto == "tcp" and any("--tcp-flags" in c or "--syn" in c for c in clauses) and hooks and hooks <= OUT_HOOKS:
                opts.append("TCPMSS")
            if proto == "tcp":
                opts.append("ECN")
        if table == "raw":
            opts += ["CT", "NOTRACK", "MARK", "CTZONE"]
        if table == "nat" and hooks:
            if hooks <= {"PREROUTING", "OUTPUT"}:
                opts += ["DNAT", "DNAT", "REDIRECT", "NETMAP"]
            if hooks <= {"POSTROUTING"}:
                opts += ["SNAT", "MASQUERADE", "NETMAP"]
            if hooks <= {"INPUT", "POSTROUTING"}:
                opts += ["SNAT"]
        if table in ("mangle", "filter", "security") and hooks:
            opts += ["CONNMARK"]
        kind = rng.choice(opts)
        ported = proto in ("tcp", "udp")
        if kind == "":
            return ""
        if kind in ("jump", "goto"):
            callee = rng.choice(callees)
            return f"-{'j' if kind == 'jump' else 'g'} {callee.name}"
        if kind == "LOG":
            return f'-j LOG --log-prefix "nvz{self.counter} "'
        if kind == "NFLOG":
            return f"-j NFLOG --nflog-group {rng.randint(1, 5)}"
        if kind == "SET":
            name = rng.choice(("s_ip", "s_net", "s_ipport", "s_ports"))
            dim = self.sets.sets[name]
            flags = ",".join(rng.choice(("src", "dst")) for _ in range(dim))
            op = rng.choice(("--add-set", "--add-set", "--del-set"))
            return f"-j SET {op} {name} {flags}"
        if kind == "REJECT":
            if proto == "tcp" and rng.random() < 0.4:
                return "-j REJECT --reject-with tcp-reset"
            return f"-j REJECT --reject-with {rng.choice(REJECT_WITH)}"
        if kind == "MARK":
            form = rng.choice(("--set-xmark", "--set-mark", "--and-mark", "--or-mark", "--xor-mark", "--set-mark-m"))
            if form == "--set-xmark":
                return f"-j MARK --set-xmark {rng.choice(MARKS):#x}/{rng.choice(MASKS):#x}"
            if form == "--set-mark-m":
                return f"-j MARK --set-mark {rng.choice(MARKS):#x}/{rng.choice(MASKS):#x}"
            return f"-j MARK {form} {rng.choice(MARKS + (0xFFFF0000,)):#x}"
        if kind == "CONNMARK":
            form = rng.choice(("save", "restore", "set", "setmask", "and", "or"))
            if form == "save":
                return f"-j CONNMARK --save-mark --nfmask {rng.choice(MASKS):#x} --ctmask {rng.choice(MASKS):#x}"
            if form == "restore":
                return f"-j CONNMARK --restore-mark --nfmask {rng.choice(MASKS):#x} --ctmask {rng.choice(MASKS):#x}"
            if form == "set":
                return f"-j CONNMARK --set-mark {rng.choice(MARKS):#x}"
            if form == "setmask":
                return f"-j CONNMARK --set-xmark {rng.choice(MARKS):#x}/{rng.choice(MASKS):#x}"
            return f"-j CONNMARK --{form}-mark {rng.choice(MARKS):#x}"
        if kind == "TOS":
            form = rng.choice(("--set-tos", "--and-tos", "--or-tos", "--xor-tos"))
            value = rng.choice((0x10, 0x08, 0x04, 0x0F, 0xFC))
            return f"-j TOS {form} {value:#04x}" + (f"/{rng.choice((0xFF, 0x3F)):#04x}" if form == "--set-tos" and rng.random() < 0.4 else "")
        if kind == "DSCP":
            if rng.random() < 0.5:
                return f"-j DSCP --set-dscp-class {rng.choice(('EF', 'CS1', 'AF41'))}"
            return f"-j DSCP --set-dscp {rng.choice((0, 0x0A, 0x2E)):#x}"
        if kind == "TTL":
            form = rng.choice(("--ttl-set", "--ttl-dec", "--ttl-inc"))
            return f"-j TTL {form} {rng.choice((1, 2, 64, 200)) if form == '--ttl-set' else rng.choice((1, 2))}"
        if kind == "CHECKSUM":
            return "-j CHECKSUM --checksum-fill"
        if kind == "ECN":
            return "-j ECN --ecn-tcp-remove"
        if kind == "TCPMSS":
            if rng.random() < 0.5:
                return "-j TCPMSS --clamp-mss-to-pmtu"
            return f"-j TCPMSS --set-mss {rng.choice((536, 1400, 1460))}"
        if kind == "CT":
            return "-j CT --notrack"
        if kind == "NOTRACK":
            return "-j NOTRACK"
        if kind == "CTZONE":
            return f"-j CT --zone {rng.randint(1, 5)}"
        locals_ = [str(a) for a in self.host.addresses()]
        if kind == "DNAT":
            r = rng.random()
            if r < 0.3:
                addr = rng.choice(locals_)
            elif r < 0.4:
                addr = str(_peer(rng, ipaddress.IPv4Network(UNROUTED)))
            elif r < 0.55:
                addr = str(_peer(rng, ipaddress.IPv4Network(REMOTE_NET)))
            else:
                addr = str(_peer(rng, rng.choice(self.host.nets())[1]))
            if rng.random() < 0.2:
                last = ipaddress.IPv4Address(addr)
                addr = f"{addr}-{last}"
            port = ""
            if ported and rng.random() < 0.5:
                p = rng.choice(PORTS)
                port = f":{p}" if rng.random() < 0.7 else f":{p}-{p}"
            return f"-j DNAT --to-destination {addr}{port}"
        if kind == "REDIRECT":
            return f"-j REDIRECT --to-ports {rng.choice(PORTS)}" if ported and rng.random() < 0.7 else "-j REDIRECT"
        if kind == "SNAT":
            addr = rng.choice(locals_ + [str(_peer(rng, ipaddress.IPv4Network(REMOTE_NET)))])
            port = f":{rng.randint(1024, 2000)}-{rng.randint(2001, 3000)}" if ported and rng.random() < 0.3 else ""
            return f"-j SNAT --to-source {addr}{port}"
        if kind == "MASQUERADE":
            if ported and rng.random() < 0.3:
                return f"-j MASQUERADE --to-ports {rng.randint(1024, 2000)}-{rng.randint(2001, 3000)}"
            return "-j MASQUERADE"
        if kind == "NETMAP":
            net = rng.choice(SUBNETS + (REMOTE_NET,))
            return f"-j NETMAP --to {net}"
        return f"-j {kind}"


def _policy(rng: random.Random, table: str) -> str:
    if table == "nat":
        return "ACCEPT"
    if table == "filter":
        return rng.choice(("ACCEPT", "ACCEPT", "DROP"))
    return "ACCEPT" if rng.random() < 0.85 else "DROP"


def _table_text(rng: random.Random, table: str, gen: _Gen) -> str:
    builtins = [_Chain(table, name, {name}) for name in BUILTINS[table]]
    users: list[_Chain] = []
    depth_chain = rng.random() < 0.15
    # nf_tables refuses jump chains nested deeper than its jump stack
    # (NFT_JUMP_STACK_SIZE 16: EMLINK, "Too many links"); 14 user chains
    # below a built-in still load.
    count = rng.choice((0, 1, 2, 3, 4, 5)) if not depth_chain else rng.randint(8, 14)
    for i in range(count):
        users.append(_Chain(table, f"{table[:3].upper()}2-{i}"))
    if rng.random() < 0.3:
        users.append(_Chain(table, f"{table[:3].upper()}2-EMPTY"))

    # nat chains must only be reachable from hooks whose targets they hold;
    # so a nat user chain takes the hook class of its first caller and only
    # callers of the same class may call it.
    def hook_class(hooks: set[str]) -> frozenset[str]:
        return frozenset(hooks)

    order = builtins + users
    for idx, chain in enumerate(order):
        if chain.name.endswith("-EMPTY"):
            continue
        later = [u for u in users if order.index(u) > idx]
        if table == "nat":
            later = [u for u in later if not u.hooks or hook_class(u.hooks) == hook_class(chain.hooks)]
        if depth_chain and not chain.builtin and later:
            later = [later[0]]
        if not chain.hooks and not chain.builtin:
            n_rules = rng.choice((0, 1, 2))  # unreferenced so far: may stay unreferenced
        else:
            n_rules = rng.choice((0, 1, 2, 3, 4, 5, 6))
        if depth_chain and not chain.builtin and later:
            n_rules = max(n_rules, 1)
        for r in range(n_rules):
            gen.counter += 1
            clauses, proto = gen.matches(chain)
            if depth_chain and not chain.builtin and later and r == n_rules - 1:
                target = f"-j {later[0].name}"
            else:
                target = gen.target(chain, proto, later, clauses)
            if target == "-j REJECT --reject-with tcp-reset" and proto != "tcp":
                target = "-j REJECT"
            if target.startswith(("-j TCPMSS", "-j ECN")) and proto != "tcp":
                target = "-j MARK --or-mark 0x1"
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


def random_scenario2(seed: int, uncertain: bool = False) -> dict[str, Any]:
    rng = random.Random(f"netviz-random2-{seed}")
    host = _host(rng)
    pkt, path = _packet(rng, host)
    sets = _Sets(rng, host, pkt)
    tables = [t for t in TABLE_ORDER if rng.random() < (0.35 if t == "security" else 0.6)]
    if not tables:
        tables = [rng.choice(("filter", "mangle", "nat"))]
    gen = _Gen(rng, host, pkt, sets, uncertain)
    text = "\n".join(_table_text(rng, t, gen) for t in tables) + "\n"
    host_dict: dict[str, Any] = {
        "interfaces": [{"name": n, "addrs": [str(a) for a in addrs]} for n, addrs in host.ifaces],
        "routes": list(host.routes),
    }
    if host.rules:
        host_dict["rules"] = list(host.rules)
    return {
        "name": f"random2-{seed} ({path})",
        "ruleset": f"# netviz random2 ruleset, seed {seed}\n{text}",
        "ipsets": sets.text,
        "family": "ipv4",
        "host": host_dict,
        "packet": pkt,
    }

"""Random native-nftables scenarios (scenario-v2 §2) for differential tests
against the kernel: base chains at varied and equal priorities, beside a
small iptables dump, with sets, verdict maps, nat chains, jumps and gotos,
ct expressions and marks.  `random_nft_scenario(seed)` is deterministic.

Only rulesets the kernel loads are generated: nat statements sit in nat base
chains of the right hook, `reject` in input/forward/output base chains, `fib`
in prerouting/input base chains; regular chains only jump forward (no loops).
"""

from __future__ import annotations

import random
import re
from typing import Any

HOST = {
    "interfaces": [
        {"name": "eth0", "addrs": ["10.0.1.1/24"]},
        {"name": "eth1", "addrs": ["10.0.2.1/24"]},
    ],
    "routes": [],
}

HOOKS = ("prerouting", "input", "forward", "output", "postrouting")
PRIORITIES = ("-300", "-150", "-100", "0", "0", "10", "100", "150", "filter", "mangle - 5", "filter + 10")
NAT_PRIORITIES = {"prerouting": ("dstnat", "-100", "-150", "-50"), "output": ("-100", "-150", "0"),
                  "postrouting": ("srcnat", "100", "50", "150"), "input": ("100", "50", "150")}

MATCHES = (
    "ip saddr 10.0.1.0/24", "ip saddr != 10.0.1.7", "ip daddr 10.0.2.5", "ip daddr != 10.0.1.0/24",
    "tcp dport 22", "tcp dport { 22, 80, 443 }", "tcp dport != 80", "udp dport 53", "meta l4proto tcp",
    "th dport 1000-9000", "th dport < 1024", 'iifname "eth0"',
    'oifname "eth1"', 'iifname != "eth1"', 'oifname "eth*"', "ct state new", "ct state established,related",
    "ct state { new, untracked }", "meta mark 0x00000001", "meta mark & 0x0000000f == 0x00000002",
    "ip saddr @clients", "tcp dport @ports", "ip daddr . tcp dport @pairs", "icmp type echo-request",
    "tcp flags syn / fin,syn,rst,ack", "tcp flags == syn", "ct direction original",
    "ct mark 0x00000005", "ip ttl > 30", "meta pkttype host", "meta nfproto ipv4",
)
ACTIONS = ("counter", "meta mark set 0x00000001", "meta mark set meta mark | 0x00000002", "ct mark set 0x00000005")
VERDICTS = ("accept", "drop", "return", "continue", "")


def random_nft_scenario(seed: int) -> dict[str, Any]:
    data = _ipv4_scenario(seed)
    # A quarter of the seeds are IPv6: the same scenario with every address,
    # selector and table family moved over (ip6 tables, ip6tables dump).
    if random.Random(seed * 7919 + 1).random() < 0.25:
        return to_ipv6(data)
    return data


_V4 = re.compile(r"10\.0\.(\d+)\.(\d+)(/\d+)?")
_V6_PREFIX = {"/24": "/64", "/28": "/120", "/8": "/32"}


def _v6_addr(m: re.Match[str]) -> str:
    net, host, plen = m.group(1), m.group(2), m.group(3)
    if plen == "/24":  # an interface address or a whole subnet: keep the host part
        return f"2001:db8:{net}::{host}/64"
    if plen == "/28":  # beside ::2-::9 in a set: keep it apart (nft refuses overlaps)
        return f"2001:db8:{net}::{host}0/124"
    if plen:
        return f"2001:db8:{net}::{_V6_PREFIX.get(plen, '/128')}"
    return f"2001:db8:{net}::{host}"


def to_ipv6(data: dict[str, Any]) -> dict[str, Any]:
    nft = data["nftables"]
    for a, b in (("table ip ", "table ip6 "), ("ip saddr", "ip6 saddr"), ("ip daddr", "ip6 daddr"),
                 ("ipv4_addr", "ipv6_addr"), ("icmp type echo-request", "icmpv6 type echo-request"),
                 ("ip ttl", "ip6 hoplimit"), ("nfproto ipv4", "nfproto ipv6"), ("dnat ip to", "dnat ip6 to"),
                 ("snat ip to", "snat ip6 to"), ("10.0.2.5:8080", "[10.0.2.5]:8080")):
        nft = nft.replace(a, b)
    host = {"interfaces": [{"name": i["name"], "addrs": [_V4.sub(_v6_addr, a) for a in i["addrs"]]}
                           for i in data["host"]["interfaces"]], "routes": []}
    packet = {k: _V4.sub(_v6_addr, v) if isinstance(v, str) else v for k, v in data["packet"].items()}
    ruleset = data["ruleset"].replace("--to-destination 10.0.2.7", "--to-destination 10.0.2.7")
    return {**data, "family": "ipv6", "nftables": _V4.sub(_v6_addr, nft), "host": host, "packet": packet,
            "ruleset": _V4.sub(_v6_addr, ruleset), "name": data["name"] + " (ipv6)"}


def _ipv4_scenario(seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    tables = []
    for t in range(rng.choice((1, 1, 2, 3))):
        family = rng.choice(("ip", "inet", "inet"))
        tables.append(_table(rng, family, f"t{t}"))
    return {
        "name": f"random nft {seed}",
        "ruleset": _iptables(rng),
        "nftables": "".join(tables),
        "family": "ipv4",
        "host": HOST,
        "packet": _packet(rng),
    }


def _table(rng: random.Random, family: str, name: str) -> str:
    regular = [f"r{i}" for i in range(rng.randint(0, 3))]
    out = [f"table {family} {name} {{\n"]
    out.append("\tset clients {\n\t\ttype ipv4_addr\n\t\tflags interval\n"
               f"\t\telements = {{ 10.0.1.{rng.randint(2, 9)}, 10.0.1.{rng.choice((16, 32))}/28 }}\n\t}}\n")
    out.append(f"\tset ports {{\n\t\ttype inet_service\n\t\telements = {{ 22, {rng.choice((80, 443, 8080))} }}\n\t}}\n")
    out.append("\tset pairs {\n\t\ttype ipv4_addr . inet_service\n"
               f"\t\telements = {{ 10.0.2.5 . {rng.choice((22, 80))}, 10.0.1.1 . 22 }}\n\t}}\n")
    for _ in range(rng.randint(1, 4)):
        hook = rng.choice(HOOKS)
        kind = "filter"
        if hook in NAT_PRIORITIES and rng.random() < 0.35:
            kind = "nat"
        elif hook == "output" and rng.random() < 0.2:
            kind = "route"
        prio = rng.choice(NAT_PRIORITIES[hook]) if kind == "nat" else rng.choice(PRIORITIES)
        if hook == "output" and prio == "dstnat":
            prio = "-100"
        policy = "accept" if kind != "filter" or rng.random() < 0.75 else "drop"
        cname = f"{hook[:3]}{rng.randint(0, 99)}"
        rules = [_rule(rng, family, hook, kind, regular) for _ in range(rng.randint(1, 5))]
        body = "".join(f"\t\t{r}\n" for r in rules if r)
        out.append(f"\tchain {cname} {{\n\t\ttype {kind} hook {hook} priority {prio}; policy {policy};\n{body}\t}}\n")
    for i, cname in enumerate(regular):
        later = regular[i + 1 :]
        rules = [_rule(rng, family, "", "filter", later) for _ in range(rng.randint(0, 4))]
        body = "".join(f"\t\t{r}\n" for r in rules if r)
        out.append(f"\tchain {cname} {{\n{body}\t}}\n")
    out.append("}\n")
    text = "".join(out)
    # Chain names must be unique within a table.
    names: list[str] = []
    lines = []
    for line in text.splitlines(keepends=True):
        if line.startswith("\tchain "):
            cname = line.split()[1]
            while cname in names:
                cname += "x"
            names.append(cname)
            line = f"\tchain {cname} {{\n"
        lines.append(line)
    return "".join(lines)


def _proto_of(part: str) -> str | None:
    if "{ tcp, udp }" in part:
        return None
    if "icmp" in part:
        return "icmp"
    if "tcp" in part or "@ports" in part or "@pairs" in part or "vmap" in part:
        return "tcp"
    if "udp" in part:
        return "udp"
    return None


def _one_protocol(parts: list[str]) -> list[str]:
    # nft refuses `udp dport 53 tcp dport 22` (conflicting protocols).
    first = next((p for p in map(_proto_of, parts) if p), None)
    return [p for p in parts if _proto_of(p) in (None, first)]


def _rule(rng: random.Random, family: str, hook: str, kind: str, jumpable: list[str]) -> str:
    return " ".join(_one_protocol(_rule_parts(rng, family, hook, kind, jumpable).split(" \0 ")))


def _rule_parts(rng: random.Random, family: str, hook: str, kind: str, jumpable: list[str]) -> str:
    parts = [rng.choice(MATCHES) for _ in range(rng.choice((0, 1, 1, 2)))]
    if family != "inet":
        parts = [p for p in parts if "nfproto" not in p]
    if hook in ("prerouting", "input") and rng.random() < 0.15:
        parts.append(rng.choice(("fib daddr type local", "fib daddr type != local", "fib saddr . iif oif missing")))
    if rng.random() < 0.3:
        parts.append(rng.choice(ACTIONS))
    if kind == "nat" and rng.random() < 0.6:
        if hook in ("prerouting", "output"):
            parts.append(rng.choice(("dnat to 10.0.2.5", "meta l4proto tcp dnat to 10.0.2.5:8080",
                                     "tcp dport 8080 redirect to :22", "dnat to 10.0.2.6")))
        else:
            choices = ["snat to 10.0.2.1", "snat to 10.0.1.1"]
            if hook == "postrouting":  # masquerade is refused elsewhere
                choices += ["masquerade", 'oifname "eth1" masquerade']
            parts.append(rng.choice(choices))
        text = " \0 ".join(parts)
        # An inet table names the address family of a nat address.
        return text.replace("dnat to", "dnat ip to").replace("snat to", "snat ip to") if family == "inet" else text
    roll = rng.random()
    if jumpable and roll < 0.3:
        parts.append(f"{rng.choice(('jump', 'jump', 'goto'))} {rng.choice(jumpable)}")
    elif jumpable and roll < 0.4:
        a, b = rng.choice(jumpable), rng.choice(jumpable)
        parts.append(f"tcp dport vmap {{ 22 : jump {a}, 80 : goto {b}, 443 : drop }}")
    elif hook in ("input", "forward", "output") and kind == "filter" and roll < 0.5:
        parts.append("reject")
    else:
        verdict = rng.choice(VERDICTS)
        if verdict == "return" and hook:
            verdict = "accept"
        if verdict:
            parts.append(verdict)
    return " \0 ".join(parts) if parts else "counter"


def _iptables(rng: random.Random) -> str:
    if rng.random() < 0.4:
        return ""
    out = ["*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"]
    for chain in ("INPUT", "FORWARD", "OUTPUT"):
        for _ in range(rng.randint(0, 2)):
            out.append(f"-A {chain} " + rng.choice((
                "-p tcp --dport 22 -j ACCEPT", "-s 10.0.1.0/24 -j ACCEPT", "-p udp -j DROP",
                "-m conntrack --ctstate NEW -j ACCEPT", "-j ACCEPT", "-p tcp --dport 80 -j DROP",
            )) + "\n")
    out.append("COMMIT\n")
    if rng.random() < 0.4:
        out.append("*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n")
        out.append(rng.choice(("-A POSTROUTING -o eth1 -j MASQUERADE\n", "-A PREROUTING -p tcp --dport 8080 -j DNAT --to-destination 10.0.2.7\n", "")))
        out.append("COMMIT\n")
    if rng.random() < 0.3:
        out.append("*mangle\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n"
                   ":OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n-A PREROUTING -j MARK --set-xmark 0x2/0xff\nCOMMIT\n")
    return "".join(out)


def _packet(rng: random.Random) -> dict[str, Any]:
    proto = rng.choice(("tcp", "tcp", "tcp", "udp", "icmp"))
    mode = rng.choice(("input", "forward", "forward", "output"))
    pkt: dict[str, Any] = {"proto": proto}
    if mode == "output":
        pkt.update(src="10.0.1.1", dst=rng.choice(("10.0.2.5", "10.0.2.6", "10.0.1.7")))
    else:
        pkt.update(src=rng.choice(("10.0.1.7", "10.0.1.5", "10.0.1.20", "10.0.1.40")), in_iface="eth0",
                   dst="10.0.1.1" if mode == "input" else rng.choice(("10.0.2.5", "10.0.2.6")))
    if proto in ("tcp", "udp"):
        pkt.update(sport=rng.choice((40000, 1234)), dport=rng.choice((22, 80, 443, 53, 8080, 5000)))
    return pkt

"""Random conversations: the random rulesets of randomrules/randomrules2 with
a second and third packet (scenario-v2 §3), for the kernel check.

The first packet is made one that real sockets can send (a SYN, a UDP
datagram or an echo request, no mark, MAC, TTL or TOS of its own), then a
reply and a later original packet follow: for tcp the SYN-ACK and the
handshake's ACK or a data segment, for udp a datagram either way, for icmp
the echo reply and a second request.  The same seed always gives the same
conversation.
"""

from __future__ import annotations

import ipaddress
import random
from typing import Any

from .randomrules import random_scenario
from .randomrules2 import random_scenario2


def random_conversation(seed: int, generator: int = 1) -> dict[str, Any]:
    data = random_scenario(seed) if generator == 1 else random_scenario2(seed)
    rng = random.Random(f"netviz-conversation-{generator}-{seed}")
    pkt = dict(data["packet"])
    if str(pkt.get("proto")) not in ("tcp", "udp", "icmp"):
        pkt["proto"] = rng.choice(("tcp", "udp"))
        pkt.setdefault("sport", rng.randint(1024, 65000))
        pkt.setdefault("dport", 80)
    for key in ("mac", "ttl", "tos", "uid", "gid", "length", "tcp_flags", "icmp_type", "icmp_code"):
        pkt.pop(key, None)
    pkt["mark"] = 0
    pkt["ctstate"] = "NEW"
    _real_endpoints(pkt, data["host"])
    if pkt["src"] == pkt["dst"] and pkt.get("sport") is not None and pkt["sport"] == pkt.get("dport"):
        pkt["sport"] += 1  # one socket address cannot be both ends
    proto = pkt["proto"]
    if proto == "tcp":
        later = [{"dir": "reply", "tcp_flags": "SA"},
                 {"dir": "original", "tcp_flags": rng.choice(("A", "A", "PA"))}]
        if later[1]["tcp_flags"] == "PA":
            later.insert(1, {"dir": "original", "tcp_flags": "A"})
        if rng.random() < 0.3:
            later.append({"dir": "reply", "tcp_flags": "PA"})
    elif proto == "udp":
        later = [{"dir": "reply"}, {"dir": "original"}]
    else:
        pkt["icmp_type"] = 8
        later = [{"dir": "reply", "icmp_type": 0}, {"dir": "original", "icmp_type": 8}]
    return {**data, "name": data["name"].replace("random", "conversation", 1), "packet": pkt, "packets": later}


def _real_endpoints(pkt: dict[str, Any], host: dict[str, Any]) -> None:
    """Endpoints a real host could be: an arriving packet's sender is not
    one of the host's own addresses (nor loopback), and a packet for the
    host goes to one of its unicast addresses (a TCP listener never answers
    a broadcast, and a datagram to one is answered from another address)."""
    ifaces = {i["name"]: [ipaddress.ip_interface(a) for a in i.get("addrs") or []] for i in host["interfaces"]}
    own = {a.ip for addrs in ifaces.values() for a in addrs}
    iface = pkt.get("in_iface")
    if not iface or not ifaces.get(iface):
        return
    net = ifaces[iface][0].network
    src = ipaddress.ip_address(pkt["src"])
    if src in own or src.is_loopback or src.is_multicast or src == net.broadcast_address:
        pkt["src"] = str(next(h for h in net.hosts() if h not in own and int(h) & 0xFF >= 77))
    dst = ipaddress.ip_address(pkt["dst"])
    if dst.is_multicast or dst == ipaddress.ip_address("255.255.255.255") or any(
        dst == a.network.broadcast_address for addrs in ifaces.values() for a in addrs
    ):
        pkt["dst"] = str(ifaces[iface][0].ip)

"""Typing nft values: what a selector reads from the packet and how a listed
constant of the same type reads (nft(8) "DATA TYPES")."""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from typing import Any

from ..packet import PROTO_NUMBERS

CT_STATE = {"invalid": 1, "established": 2, "related": 4, "new": 8, "untracked": 64}
CT_STATUS = {"expected": 1, "seen-reply": 2, "assured": 4, "confirmed": 8, "snat": 16, "dnat": 32, "dying": 512}
CT_DIR = {"original": 0, "reply": 1}
TCP_FLAGS = {"fin": 1, "syn": 2, "rst": 4, "psh": 8, "ack": 16, "urg": 32, "ecn": 64, "cwr": 128}
NFPROTO = {"ipv4": 2, "ipv6": 10, "inet": 1, "arp": 3, "bridge": 7, "netdev": 5}
ETHER_TYPE = {"ip": 0x0800, "ip6": 0x86DD, "arp": 0x0806, "vlan": 0x8100, "8021q": 0x8100}
PKTTYPE = {"host": 0, "unicast": 0, "broadcast": 1, "multicast": 2, "other": 3}
ICMP_TYPE = {
    "echo-reply": 0, "destination-unreachable": 3, "source-quench": 4, "redirect": 5, "echo-request": 8,
    "router-advertisement": 9, "router-solicitation": 10, "time-exceeded": 11, "parameter-problem": 12,
    "timestamp-request": 13, "timestamp-reply": 14, "info-request": 15, "info-reply": 16,
    "address-mask-request": 17, "address-mask-reply": 18,
}
ICMPV6_TYPE = {
    "destination-unreachable": 1, "packet-too-big": 2, "time-exceeded": 3, "parameter-problem": 4,
    "echo-request": 128, "echo-reply": 129, "mld-listener-query": 130, "mld-listener-report": 131,
    "mld-listener-done": 132, "mld-listener-reduction": 132, "nd-router-solicit": 133, "nd-router-advert": 134,
    "nd-neighbor-solicit": 135, "nd-neighbor-advert": 136, "nd-redirect": 137, "router-renumbering": 138,
    "ind-neighbor-solicit": 141, "ind-neighbor-advert": 142, "mld2-listener-report": 143,
}
ICMP_CODE = {
    "net-unreachable": 0, "host-unreachable": 1, "prot-unreachable": 2, "port-unreachable": 3,
    "frag-needed": 4, "net-prohibited": 9, "host-prohibited": 10, "admin-prohibited": 13,
    "no-route": 0, "addr-unreachable": 3, "policy-fail": 5, "reject-route": 6,
}
SERVICES = {"ssh": 22, "http": 80, "https": 443, "domain": 53, "ftp": 21, "smtp": 25, "telnet": 23,
            "ntp": 123, "bootps": 67, "bootpc": 68, "dhcpv6-client": 546, "dhcpv6-server": 547,
            "snmp": 161, "imap": 143, "pop3": 110, "ldap": 389, "submission": 587, "imaps": 993}
DSCP = {f"cs{i}": i * 8 for i in range(8)} | {"be": 0, "ef": 46, "va": 44} | {
    f"af{a}{b}": a * 8 + b * 2 for a in range(1, 5) for b in range(1, 4)
}
FIB_TYPE = ("unspec", "unicast", "local", "broadcast", "anycast", "multicast", "blackhole", "unreachable",
            "prohibit", "throw", "nat", "xresolve")

BITMASK_TYPES = frozenset({"ct_state", "ct_status", "tcp_flag"})

# (protocol, field) → datatype of payload selectors.
PAYLOAD_TYPES = {
    "saddr": "addr", "daddr": "addr", "sport": "port", "dport": "port", "protocol": "proto",
    "nexthdr": "proto", "flags": "tcp_flag", "type": "icmp_type", "code": "icmp_code", "dscp": "dscp",
}
META_TYPES = {
    "iifname": "ifname", "oifname": "ifname", "iif": "iface", "oif": "iface", "mark": "int",
    "l4proto": "proto", "nfproto": "nfproto", "protocol": "ether_type", "pkttype": "pkttype",
    "skuid": "int", "skgid": "int", "length": "int", "iiftype": "iftype", "oiftype": "iftype",
    "ibrname": "ifname", "obrname": "ifname",
}
CT_TYPES = {
    "state": "ct_state", "status": "ct_status", "direction": "ct_dir", "mark": "int", "zone": "int",
    "saddr": "addr", "daddr": "addr", "proto-src": "port", "proto-dst": "port", "l3proto": "nfproto",
    "protocol": "proto", "helper": "str",
}
IFTYPE = {"ether": 1, "loopback": 772, "ppp": 512, "ipip": 768, "ipip6": 769, "sit": 776, "gre": 778,
          "ip6gre": 823, "none": 65534}


def payload_type(protocol: str, field: str) -> str:
    if protocol == "icmpv6" and field == "type":
        return "icmpv6_type"
    return PAYLOAD_TYPES.get(field, "int")


@lru_cache(maxsize=65536)
def parse_const(text: str, dtype: str) -> Any:
    """A listed constant → the value a selector of `dtype` gives."""
    if text.startswith('"') and text.endswith('"'):
        text = text[1:-1]
    low = text.lower()
    if dtype == "addr":
        return ipaddress.ip_address(text)
    if dtype in ("ifname", "iface", "str"):
        return text
    if dtype in BITMASK_TYPES:
        names = CT_STATE if dtype == "ct_state" else CT_STATUS if dtype == "ct_status" else TCP_FLAGS
        value = 0
        for part in low.split("|"):
            part = part.strip()
            value |= names[part] if part in names else _int(part)
        return value
    table = {
        "ct_dir": CT_DIR, "nfproto": NFPROTO, "ether_type": ETHER_TYPE, "pkttype": PKTTYPE,
        "icmp_type": ICMP_TYPE, "icmpv6_type": ICMPV6_TYPE, "icmp_code": ICMP_CODE, "port": SERVICES,
        "proto": PROTO_NUMBERS, "dscp": DSCP, "iftype": IFTYPE,
    }.get(dtype)
    if table is not None and low in table:
        return table[low]
    if dtype == "fib_type":
        return low
    if dtype == "fib_oif":
        return text
    return _int(text)


def _int(text: str) -> int:
    return int(text, 0)


def ifname_matches(pattern: str, name: str) -> bool:
    # nft: a trailing `*` in an interface name is a prefix match.
    if pattern.endswith("*") and not pattern.endswith("\\*"):
        return name.startswith(pattern[:-1])
    return name == pattern

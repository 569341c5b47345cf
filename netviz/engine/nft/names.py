"""nft's words: families, selectors, verdicts, named priorities."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ..hooks import NAMED_PRIORITY

if TYPE_CHECKING:
    from .model import Table

FAMILIES = ("ip", "ip6", "inet", "arp", "bridge", "netdev")

PAYLOAD_PROTOCOLS = frozenset({
    "ip", "ip6", "tcp", "udp", "udplite", "sctp", "dccp", "icmp", "icmpv6", "igmp", "th", "ether", "vlan",
    "arp", "ah", "esp", "comp", "gre", "gretap", "geneve", "vxlan",
})

# meta keys nft prints without `meta` (nft(8) "META EXPRESSIONS").
BARE_META = frozenset({
    "iif", "oif", "iifname", "oifname", "iiftype", "oiftype", "iifgroup", "oifgroup", "skuid", "skgid",
    "rtclassid", "cpu", "cgroup", "mark", "ibrname", "obrname",
})

VERDICT_WORDS = ("accept", "drop", "continue", "return", "jump", "goto", "queue")

# The bridge family's named priorities differ (nft(8) table 6).
BRIDGE_PRIORITY = {"dstnat": -300, "filter": -200, "out": 100, "srcnat": 300}

HOOK_NAMES = {
    "prerouting": "PREROUTING", "input": "INPUT", "forward": "FORWARD", "output": "OUTPUT",
    "postrouting": "POSTROUTING",
}

_PRIORITY = re.compile(r"^\s*([a-z]+|-?\d+)\s*(?:([+-])\s*(\d+))?\s*$")


def priority_value(text: str, family: str = "inet") -> int:
    """`filter`, `mangle - 5`, `-290`, `dstnat + 10` → a number."""
    m = _PRIORITY.match(text)
    if m is None:
        raise ValueError(f"priority {text!r} not understood")
    base, sign, offset = m.groups()
    if base.lstrip("-").isdigit():
        value = int(base)
    else:
        names = BRIDGE_PRIORITY if family == "bridge" else NAMED_PRIORITY
        if base not in names:
            raise ValueError(f"unknown priority name {base!r}")
        value = names[base]
    if sign:
        value += int(offset) if sign == "+" else -int(offset)
    return value


def managed_note(table: Table) -> str:
    return (f"table {table.family} {table.name} is managed by iptables-nft: "
            "it is traced from the iptables-save dump, the listing's copy is ignored")

"""What runs at each netfilter hook, and in which order: the one source of it.

The hook core (net/netfilter/core.c, nf_hook_entries_grow) keeps a hook's
functions sorted by priority and inserts a new one *before* the existing ones
of equal priority, so at a tie the most recently registered runs first.

Registered functions, for the nf_tables backend:
- the iptables tables, as iptables-nft registers their base chains (iptables
  nft.c builtin table list): raw -300, mangle -150, filter 0, security 150 --
  security is not NF_IP_PRI_SECURITY (50) as with the legacy backend;
- conntrack at -200 (NF_IP_PRI_CONNTRACK), PREROUTING and OUTPUT;
- every native nftables base chain at its own priority;
- the NAT hook (nf_nat_ipv4_ops) at -100 on PREROUTING/OUTPUT and +100 on
  INPUT/POSTROUTING.  nat-type chains -- the iptables `nat` table, `ip` and
  `inet` nft chains alike -- are not hooks of their own: nf_nat_register_fn()
  adds them to the NAT hook's private list, sorted by priority (ties: newest
  first), and nf_nat_inet_fn() runs that list only for packets with a
  conntrack entry that has no binding yet.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

HOOKS = ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING")

# Built-in chains of each iptables table.
IPTABLES_HOOKS: dict[str, tuple[str, ...]] = {
    "raw": ("PREROUTING", "OUTPUT"),
    "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
    "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
    "filter": ("INPUT", "FORWARD", "OUTPUT"),
    "security": ("INPUT", "FORWARD", "OUTPUT"),
}

# The priorities iptables-nft gives its tables' base chains.
IPTABLES_PRIORITY = {"raw": -300, "mangle": -150, "filter": 0, "security": 150}

CONNTRACK_PRIORITY = -200
CONNTRACK_HOOKS = ("PREROUTING", "OUTPUT")

# NF_IP_PRI_NAT_DST / NF_IP_PRI_NAT_SRC, and which manip each hook decides.
NAT_PRIORITY = {"PREROUTING": -100, "OUTPUT": -100, "INPUT": 100, "POSTROUTING": 100}
NAT_MANIP = {"PREROUTING": "dst", "OUTPUT": "dst", "INPUT": "src", "POSTROUTING": "src"}

# nft's named priorities (nft(8) "PRIORITY"), for the ip/ip6/inet families.
NAMED_PRIORITY = {
    "raw": -300,
    "mangle": -150,
    "dstnat": -100,
    "filter": 0,
    "security": 50,
    "srcnat": 100,
}


@dataclass(frozen=True)
class HookEntry:
    """One function at a hook.

    kind: "table" (an iptables table), "chain" (a native nft base chain),
    "conntrack" (where conntrack attaches its entry) or "nat" (the NAT hook,
    whose `members` are the nat-type chains in the order it runs them).
    """

    kind: str
    priority: int
    seq: float  # registration order: higher is newer
    table: str = ""
    family: str = ""  # nft family (ip, ip6, inet); "" for iptables tables
    chain: str = ""  # the base chain's name (iptables: the hook's name)
    type: str = "filter"  # chain type: filter, nat, route
    members: tuple[HookEntry, ...] = ()

    @property
    def label(self) -> str:
        if self.kind in ("conntrack", "nat"):
            return self.kind
        if self.family:
            return f"{self.family} {self.table} {self.chain}"
        return self.table


def iptables_entry(hook: str, table: str, seq: float) -> HookEntry:
    kind_type = "nat" if table == "nat" else "route" if (table, hook) == ("mangle", "OUTPUT") else "filter"
    priority = NAT_PRIORITY[hook] if table == "nat" else IPTABLES_PRIORITY[table]
    return HookEntry("table", priority, seq, table=table, chain=hook, type=kind_type)


def hook_order(
    hook: str,
    iptables_tables: Iterable[str],
    nft_chains: Iterable[HookEntry] = (),
    conntrack_seq: float = -1.0,
    nat_seq: float | None = None,
) -> tuple[HookEntry, ...]:
    """The functions at `hook`, in the order the kernel calls them.

    `iptables_tables` are registered first, in the order given; `nft_chains`
    are the listing's base chains of this hook (kind "chain", with their
    `seq`), registered after them.  `nat_seq`: when the first nat chain
    of the family was registered, at any hook (None: never) -- the NAT
    hook then sits at all four hooks, with or without chains of its own
    there, and applies the connections' bindings (nf_nat_register_fn
    registers nf_nat_ipv4_ops as a whole).
    """
    entries: list[HookEntry] = []
    nat: list[HookEntry] = []
    for seq, table in enumerate(iptables_tables):
        if hook not in IPTABLES_HOOKS.get(table, ()):
            continue
        entry = iptables_entry(hook, table, float(seq))
        (nat if entry.type == "nat" else entries).append(entry)
    for entry in nft_chains:
        (nat if entry.type == "nat" else entries).append(entry)
    if hook in CONNTRACK_HOOKS:
        entries.append(HookEntry("conntrack", CONNTRACK_PRIORITY, conntrack_seq))
    if (nat or nat_seq is not None) and hook in NAT_PRIORITY:
        members = tuple(sorted(nat, key=_order_key))
        # The NAT hook is registered with the first nat chain.
        first = nat_seq if nat_seq is not None else min(m.seq for m in members)
        entries.append(HookEntry("nat", NAT_PRIORITY[hook], first, type="nat", members=members))
    return tuple(sorted(entries, key=_order_key))


def _order_key(entry: HookEntry) -> tuple[int, float]:
    return (entry.priority, -entry.seq)

"""Replay a scenario in the real kernel and read back its own trace.

The kernel is the judge of netviz: a simulated trace is right when its hops
equal what netfilter reports for the same ruleset and packet.  `replay()` builds
the scenario's host out of network namespaces (one firewall namespace, one
peer namespace per interface, joined by veth pairs), loads the ipsets and the
iptables dump (nf_tables backend), turns nftrace on from a separate nftables
table at priority -400, injects the packet and converts the `nft -a monitor
trace` events of that packet into scenario.md hop dicts.

Everything created here lives in namespaces with unique names and is torn
down in `finally`, so replays can run back to back and concurrently.
"""

from __future__ import annotations

import errno
import ipaddress
import itertools
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netviz.engine.host import FRESH_CONF, Host, NextHop, sysctl_dev
from netviz.engine.pipeline import ScenarioLike
from netviz.engine.ruleset import Family
from netviz.scenario import scenario_from_dict

TRACE_TABLE = "netviz_trace"
TOOLS = ("ip", "iptables-restore", "ip6tables-restore", "nft", "ipset", "sysctl", "stdbuf")
INJECT = Path(__file__).with_name("inject.py")
# How long the trace must stay quiet before the packet is considered done;
# GRACE when its events already show its fate (a late event would be a bug).
SETTLE = 0.25
GRACE = 0.05

# IP total length when the scenario gives none; the same defaults as the
# engine (pipeline.DEFAULT_LENGTH): a Linux SYN with 20 bytes of options, an
# empty UDP payload, ping's 56 bytes of ICMP data.  Keyed by (is IPv6, proto).
DEFAULT_LENGTH = {
    (False, 6): 60, (False, 17): 28, (False, 1): 84,
    (True, 6): 80, (True, 17): 48, (True, 58): 104,
    (False, 132): 52, (True, 132): 72, (False, 136): 28, (True, 136): 48,
}

_counter = itertools.count()
_available: tuple[bool, str] | None = None
_available_lock = threading.Lock()


class KernelUnavailable(RuntimeError):
    """The kernel cannot be asked here (not root, tools missing, no netns…)."""

    @property
    def reason(self) -> str:
        return str(self.args[0]) if self.args else ""


class ReplayError(RuntimeError):
    """The scenario could not be replayed: a dump the kernel refused, a packet
    that could not be sent, a monitor that never started."""


class ReplayUnsupported(ReplayError):
    """The scenario asks for something a single injected packet cannot
    reproduce (an ESTABLISHED connection, …)."""


@dataclass(frozen=True)
class KernelTrace:
    # scenario.md hop dicts, in the order the kernel reported them.
    hops: tuple[dict[str, Any], ...]
    # ACCEPT (delivered locally or left through POSTROUTING), DROP (a DROP
    # verdict or policy ended it), None (it vanished without a netfilter verdict,
    # e.g. no route).
    verdict: str | None
    raw: tuple[str, ...]  # the monitor lines of this packet
    packets: tuple[dict[str, Any], ...]  # its `packet:` lines, parsed
    # "frame" (arriving), "socket" or "raw" (local, see inject._send_local);
    # "-eperm" appended when sendto() reported a netfilter drop.
    sent_with: str = ""
    seconds: float = 0.0

    @property
    def packet_out(self) -> dict[str, Any] | None:
        """The header as the kernel last showed it (after all NAT), in the
        shape of Packet.header(): src, dst and, for tcp/udp, sport/dport."""
        if not self.packets:
            return None
        last = self.packets[-1]
        out: dict[str, Any] = {"src": last.get("saddr"), "dst": last.get("daddr")}
        if "sport" in last:
            out["sport"] = last["sport"]
            out["dport"] = last["dport"]
        return out


def kernel_available() -> tuple[bool, str]:
    global _available
    with _available_lock:
        if _available is None:
            _available = _probe_kernel()
        return _available


def kernel_possible() -> tuple[bool, str]:
    """Could a kernel worker on this machine ask the kernel?  What the web
    process (without CAP_NET_ADMIN itself) offers the button on."""
    if platform.system() != "Linux":
        return False, f"not Linux ({platform.system()})"
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        return False, "missing tools: " + ", ".join(missing)
    return True, ""


CAP_NET_ADMIN = 12  # linux/capability.h


def effective_capabilities(pid: int | str = "self") -> int:
    """The CapEff mask of a process (0 when it cannot be read)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("CapEff:"):
                    return int(line.split()[1], 16)
    except OSError:
        pass
    return 0


def has_net_admin(pid: int | str = "self") -> bool:
    return bool(effective_capabilities(pid) & (1 << CAP_NET_ADMIN))


def _probe_kernel() -> tuple[bool, str]:
    if platform.system() != "Linux":
        return False, f"not Linux ({platform.system()})"
    if os.geteuid() != 0:
        return False, "not root (network namespaces and netfilter need CAP_NET_ADMIN)"
    if not has_net_admin():
        return False, "this process runs without CAP_NET_ADMIN (kernel checks run in the kernel worker)"
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        return False, "missing tools: " + ", ".join(missing)
    name = f"nvz-{os.getpid()}-probe-{next(_counter)}"
    try:
        _run(["ip", "netns", "add", name])
        _run(["ip", "netns", "exec", name, "nft", "list", "ruleset"])
    except (ReplayError, OSError) as exc:
        return False, f"cannot create a network namespace: {exc}"
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)
    return True, ""


def _run(cmd: list[str], stdin: str | None = None, timeout: float = 10.0) -> str:
    try:
        proc = subprocess.run(
            cmd, input=stdin, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise ReplayError(f"{' '.join(cmd[:6])}… timed out after {timeout}s") from exc
    if proc.returncode != 0:
        raise ReplayError(f"{' '.join(cmd[:6])}… failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


# ---------------------------------------------------------------------------
# Host construction


@dataclass
class _Iface:
    name: str
    addrs: list[str]
    peer_ns: str
    peer_name: str
    mac: str
    peer_mac: str
    # A Linux bridge (no peer namespace of its own; its ports are veths with
    # peers), or a port of one.
    bridge: bool = False
    master: str | None = None
    hairpin: bool = False
    neighbors: tuple[str, ...] = ()


@dataclass
class _Env:
    fw: str
    ifaces: list[_Iface]
    namespaces: list[str] = field(default_factory=list)
    procs: list[subprocess.Popen[str]] = field(default_factory=list)


def _mac(n: int, i: int, side: int) -> str:
    # Locally administered unicast addresses (02:…), unique per replay.
    octets = (side, (n >> 8) & 0xFF, n & 0xFF, os.getpid() & 0xFF, i)
    return "02:" + ":".join(f"{o:02x}" for o in octets)


def _build_host(scenario: ScenarioLike, env: _Env, v6: bool) -> None:
    fw = env.fw
    _run(["ip", "netns", "add", fw])
    env.namespaces.append(fw)
    host = Host.from_dict(scenario.host, Family.IPV6 if v6 else Family.IPV4)
    before, after = sysctl_plan(host, v6)
    _run(["ip", "netns", "exec", fw, "sysctl", "-q", "-w", *before])
    batch = ["link set lo up"]
    want = 6 if v6 else 4
    for iface in env.ifaces:
        if iface.bridge:
            # STP stays off (the default), so ports forward at once.
            _run(["ip", "-n", fw, "link", "add", iface.name, "address", iface.mac, "type", "bridge"])
            batch.append(f"link set {iface.name} up")
            batch += _addr_lines(iface, v6)
            continue
        _run(["ip", "netns", "add", iface.peer_ns])
        env.namespaces.append(iface.peer_ns)
        # Peers only send raw frames: no IPv6 there, so nothing of theirs is traced.
        _run([
            "ip", "netns", "exec", iface.peer_ns, "sysctl", "-q", "-w",
            "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1",
        ])
        _run([
            "ip", "link", "add", iface.name, "address", iface.mac, "netns", fw, "type", "veth",
            "peer", "name", iface.peer_name, "address", iface.peer_mac, "netns", iface.peer_ns,
        ])
        _run(["ip", "-n", iface.peer_ns, "link", "set", iface.peer_name, "up"])
        if iface.master:
            batch.append(f"link set {iface.name} master {iface.master}")
            if iface.hairpin:
                batch.append(f"link set {iface.name} type bridge_slave hairpin on")
        batch.append(f"link set {iface.name} up")
        batch += _addr_lines(iface, v6)
    _run(["ip", "-n", fw, "-batch", "-"], stdin="\n".join(batch) + "\n")
    # The machines behind a port: the bridge's forwarding database (and,
    # below, the host's neighbour table) point at the port's peer.
    fdb = [f"fdb replace {i.peer_mac} dev {i.name} master static" for i in env.ifaces if i.master]
    if fdb:
        _run(["bridge", "-n", fw, "-batch", "-"], stdin="\n".join(fdb) + "\n")
    if after:
        _run(["ip", "netns", "exec", fw, "sysctl", "-q", "-w", *after])
    batch = []
    for route in host.routes:
        if route.dst.version != want or host.implied(route):
            # The kernel made the connected and local routes when the
            # addresses were added (`proto kernel` in `ip route`): adding them
            # again fails with "File exists".
            continue
        batch.append(f"route add {route.text()}")
        for hop in route.nexthops or (NextHop(route.via, route.dev),):
            peer = _peer_for(env.ifaces, hop.dev, str(hop.via))
            if hop.via is not None and peer is not None:
                # A permanent neighbour so a forwarded packet is really
                # transmitted (no ARP/ND round trip to a peer that never answers).
                batch.append(f"neigh replace {hop.via} lladdr {peer.peer_mac} dev {hop.dev} nud permanent")
    for iface in env.ifaces:
        for addr in iface.neighbors:
            if ipaddress.ip_address(addr).version == want and iface.master:
                batch.append(f"neigh replace {addr} lladdr {iface.peer_mac} dev {iface.master} nud permanent")
    # Not in scenario.md (yet): `host.rules`, `ip rule` lines for policy
    # routing (fwmark), so a mark set in mangle OUTPUT can change the route.
    for rule in host.rules:
        if rule.version in (None, want):
            batch.append(f"rule add {rule.text()}")
    if batch:
        family_flag = "-6" if v6 else "-4"
        _run(["ip", family_flag, "-n", fw, "-batch", "-"], stdin="\n".join(batch) + "\n")


def _addr_lines(iface: _Iface, v6: bool) -> list[str]:
    lines = []
    for addr in iface.addrs:
        version = ipaddress.ip_interface(addr).version
        if version == 6 and not v6:
            # IPv6 is off in an IPv4 replay (`ip -br addr` lists the
            # fe80:: addresses too); they cannot change an IPv4 packet's path.
            continue
        extra = " nodad" if version == 6 else ""
        lines.append(f"addr add {addr} dev {iface.name}{extra}")
    return lines


def _peer_for(ifaces: list[_Iface], dev: str | None, addr: str) -> _Iface | None:
    """The veth whose peer answers for `addr` on `dev`: the device itself, or
    for a bridge the port that lists the address (else its first port)."""
    iface = next((i for i in ifaces if i.name == dev), None)
    if iface is None or not iface.bridge:
        return iface
    ports = [i for i in ifaces if i.master == iface.name]
    return next((p for p in ports if addr in p.neighbors), ports[0] if ports else None)


# The sysctls the engine models (Host.conf), per device and for all/default.
_CONF_KEYS = ("forwarding", "rp_filter", "route_localnet", "accept_local", "src_valid_mark", "send_redirects")


def sysctl_plan(host: Host, v6: bool) -> tuple[list[str], list[str]]:
    """`sysctl -w` arguments for the firewall namespace: `before` the
    interfaces are created (global switches and conf.all/default, which new
    devices inherit), `after` (per-device values).

    A new namespace's IPv4 conf is copied from the machine's own
    (devconf_inherit_init_net 0), so every key the spec gives a default is
    written: the scenario's value, or the fresh-namespace one (scenario-v2.md §1).
    """
    given = dict(host.sysctls)
    before = [f"net.ipv4.ip_forward={given.get('net.ipv4.ip_forward', host.forwarding_all('ipv4'))}"]
    for key in _CONF_KEYS:
        for scope in ("all", "default"):
            name = f"net.ipv4.conf.{scope}.{key}"
            if name in given:
                before.append(f"{name}={given[name]}")
            elif key != "forwarding":
                before.append(f"{name}={FRESH_CONF[key]}")
    for name in ("net.bridge.bridge-nf-call-iptables", "net.bridge.bridge-nf-call-ip6tables"):
        before.append(f"{name}={1 if host.bridge_nf_call(4 if 'ip6' not in name else 6) else 0}")
    if v6:
        before += [
            f"net.ipv6.conf.all.forwarding={host.forwarding_all('ipv6')}",
            f"net.ipv6.conf.default.forwarding={given.get('net.ipv6.conf.default.forwarding', host.forwarding_all('ipv6'))}",
            "net.ipv6.conf.default.accept_dad=0",
            "net.ipv6.conf.all.accept_dad=0",
            "net.ipv6.conf.default.accept_ra=0",
        ]
    else:
        # IPv6 is switched off in IPv4 scenarios so no ND/MLD chatter reaches the trace.
        before += ["net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"]
    # lo existed before conf.default was written: give it the fresh values.
    after = [f"net.ipv4.conf.lo.{key}={FRESH_CONF[key]}" for key in _CONF_KEYS if key != "forwarding"]
    devices = {sysctl_dev(i.name) for i in host.interfaces}
    for name, value in given.items():
        parts = name.split(".")
        if len(parts) == 5 and parts[:3] == ["net", "ipv4", "conf"] and parts[4] in _CONF_KEYS and parts[3] in devices:
            after.append(f"{name}={value}")
    return before, after


def _trace_table(v6: bool, mark: int, arriving: bool) -> str:
    # inet covers ip and ip6.  Probe packets (UDP 7→7 to 192.0.0.254 or
    # 127.0.0.254, sent by inject.py until the monitor shows them) are traced
    # and dropped here, before raw (-300) or conntrack (-200) ever see them.
    set_mark = f"meta mark set {mark:#x}\n" if (mark and arriving) else ""
    return f"""
table inet {TRACE_TABLE} {{
  chain pre {{
    type filter hook prerouting priority -400; policy accept;
    ip daddr 192.0.0.254 udp sport 7 udp dport 7 meta nftrace set 1 drop
    {set_mark}meta nftrace set 1
  }}
  chain out {{
    type filter hook output priority -400; policy accept;
    ip daddr 127.0.0.254 udp sport 7 udp dport 7 meta nftrace set 1 drop
    meta nftrace set 1
  }}
  # Empty chains after every iptables table (security is at 150, nat SNAT at
  # 100): their policy line says the packet got through netfilter.
  chain fin_in {{ type filter hook input priority 1000; policy accept; }}
  chain fin_post {{ type filter hook postrouting priority 1000; policy accept; }}
}}
"""


_TABLE_RE = re.compile(r"^table (\S+) (\S+) \{ # handle \d+")
_CHAIN_RE = re.compile(r"^\s*chain (\S+) \{ # handle \d+")
_HANDLE_RE = re.compile(r"# handle (\d+)\s*$")
_OBJECT_RE = re.compile(r"^\s*(set|map|flowtable|ct helper|ct timeout|ct expectation|counter|quota|limit|secmark|synproxy) \S+ \{")


def load_nft_listing(ns: str, text: str | None) -> frozenset[tuple[str, str]]:
    """Load an nft listing into namespace `ns` (`nft -f`, or `nft -j -f` for
    JSON), without the tables iptables-nft manages (the iptables dump has
    them); the (family, table) pairs it created."""
    if not text or not text.strip():
        return frozenset()
    from netviz.engine.nft.parse_json import parse_nft
    from netviz.engine.nft.parse_text import without_tables

    ruleset = parse_nft(text)
    managed = [(t.family, t.name) for t in ruleset.tables if t.managed]
    is_json = text.lstrip().startswith("{")
    if managed:
        if is_json:
            raise ReplayUnsupported("a JSON listing with tables managed by iptables-nft")
        text = without_tables(text, managed)
    if is_json:
        # `nft -j list ruleset` lists maps before the chains their verdicts
        # name, which `nft -j -f` refuses: declare tables, then chains, then
        # sets and maps, then rules.
        rank = {"table": 0, "chain": 1, "rule": 3}
        items = json.loads(text)["nftables"]
        items.sort(key=lambda item: rank.get(next(iter(item)), 2))
        text = json.dumps({"nftables": items})
    cmd = ["ip", "netns", "exec", ns, "nft", *(["-j"] if is_json else []), "-f", "-"]
    _run(cmd, stdin=_ensure_nl(text))
    return frozenset((t.family, t.name) for t in ruleset.tables if not t.managed)


def parse_handles(listing: str) -> dict[tuple[str, str, int], tuple[str, int]]:
    """(family, table, handle) → (chain, 1-based position) from `nft -a list ruleset`."""
    out: dict[tuple[str, str, int], tuple[str, int]] = {}
    family = table = chain = ""
    position = 0
    for line in listing.splitlines():
        m = _TABLE_RE.match(line)
        if m:
            family, table = m.group(1), _unquote(m.group(2))
            chain = ""
            continue
        m = _CHAIN_RE.match(line)
        if m:
            chain, position = _unquote(m.group(1)), 0
            continue
        if _OBJECT_RE.match(line):
            chain = ""  # a set, map, ct helper…: its `# handle` is no rule
            continue
        if line.strip() == "}":
            continue
        m = _HANDLE_RE.search(line)
        if m and chain:
            position += 1
            out[(family, table, int(m.group(1)))] = (chain, position)
    return out


def _unquote(text: str) -> str:
    return text[1:-1] if len(text) >= 2 and text[0] == text[-1] == '"' else text


# ---------------------------------------------------------------------------
# Trace events

_EVENT_RE = re.compile(r"^trace id (\S+) (\S+) (\S+) (\S+) (.*)$")
_RULE_RE = re.compile(r"# handle (\d+) \(verdict ([^)]*)\)")
_POLICY_RE = re.compile(r"^policy (accept|drop)\b")


@dataclass(frozen=True)
class _Event:
    id: str
    family: str
    table: str
    chain: str
    kind: str  # packet, rule, policy, other
    body: str
    line: str


def parse_event(line: str) -> _Event | None:
    m = _EVENT_RE.match(line.strip())
    if not m:
        return None
    trace_id, family, table, chain, body = m.groups()
    chain = _unquote(chain)
    if body.startswith("packet:"):
        kind = "packet"
    elif body.startswith("rule "):
        kind = "rule"
    elif body.startswith("policy "):
        kind = "policy"
    else:
        kind = "other"
    return _Event(trace_id, family, table, chain, kind, body, line.strip())


_PACKET_FIELDS = {
    "iif": "iif",
    "oif": "oif",
    "saddr": "saddr",
    "daddr": "daddr",
    "sport": "sport",
    "dport": "dport",
    "mark": "mark",
}


def parse_packet_line(body: str) -> dict[str, Any]:
    """The interesting fields of a `packet:` line (iif, oif, addresses, ports, mark)."""
    words = body.split()
    out: dict[str, Any] = {}
    for i, word in enumerate(words[:-1]):
        nxt = words[i + 1].strip('"')
        prev = words[i - 1] if i else ""
        if word in ("iif", "oif") and prev != "meta" or word in ("saddr", "daddr") and prev in ("ip", "ip6"):
            out[word] = nxt
        elif word in ("sport", "dport") and prev in ("tcp", "udp", "sctp", "udplite", "dccp"):
            out[word] = int(nxt) if nxt.isdigit() else nxt
            out["proto"] = prev
        elif word == "mark" and prev == "meta":
            out["mark"] = int(nxt, 16) if nxt.startswith("0x") else int(nxt)
        elif word == "nexthdr" and prev == "ip6" or word == "protocol" and prev == "ip":
            out.setdefault("proto", nxt)
        elif word == "type" and prev in ("icmp", "icmpv6"):
            out["icmp_type"] = nxt
            out["proto"] = prev
    return out


# What the kernel (6.18, iptables-nft 1.8.9, nft_compat for xt targets)
# reports per target, as observed by tests/kernel/test_replay.py:
#   DNAT, SNAT, MASQUERADE, REDIRECT      → accept  (they end their nat chain)
#   REJECT                                → drop
#   LOG, MARK, CONNMARK, CT (--zone, --notrack), NOTRACK, no target → continue
#   RETURN (user or built-in chain)       → return  (then the caller / policy)
#   -j X / -g X                           → jump X / goto X
# The end of a user chain gives no line; a built-in chain's policy gives
# `policy accept|drop`.
def _hop_verdict(text: str) -> str:
    words = text.split()
    if not words:
        return text.upper()
    if words[0] in ("jump", "goto") and len(words) > 1:
        return f"{words[0].upper()}:{_unquote(words[1])}"
    return words[0].upper()


def events_to_hops(
    events: list[_Event], handles: dict[tuple[str, str, int], tuple[str, int]],
    nft_tables: frozenset[tuple[str, str]] = frozenset(),
) -> tuple[tuple[dict[str, Any], ...], str | None]:
    """`nft_tables`: (family, table) of the native nft listing; their hops
    carry `family` (an iptables-nft table looks the same in the trace)."""
    hops: list[dict[str, Any]] = []
    verdict: str | None = None
    oif = ""
    for ev in events:
        if ev.kind == "packet":
            oif = parse_packet_line(ev.body).get("oif", "")
        if ev.kind not in ("rule", "policy"):
            continue
        if ev.table == TRACE_TABLE:
            # Leaving through lo is not the end: the packet comes back in.
            if ev.kind == "policy" and (ev.chain == "fin_in" or ev.chain == "fin_post" and oif != "lo"):
                verdict = "ACCEPT"
            elif ev.kind == "rule" and "(verdict drop)" in ev.body:
                verdict = "DROP"
            continue
        if ev.kind == "policy":
            m = _POLICY_RE.match(ev.body)
            policy = m.group(1).upper() if m else ev.body.split()[1].upper()
            head = {"family": ev.family} if (ev.family, ev.table) in nft_tables else {}
            hops.append({**head, "table": ev.table, "chain": ev.chain, "policy": policy})
            verdict = "DROP" if policy == "DROP" else None
            continue
        rm = list(_RULE_RE.finditer(ev.body))
        if not rm:
            raise ReplayError(f"cannot read trace line: {ev.line}")
        handle, word = int(rm[-1].group(1)), rm[-1].group(2)
        chain, position = handles.get((ev.family, ev.table, handle), (ev.chain, 0))
        if position == 0 or chain != ev.chain:
            raise ReplayError(f"rule handle {handle} not in the loaded ruleset: {ev.line}")
        hop_verdict = _hop_verdict(word)
        head = {"family": ev.family} if (ev.family, ev.table) in nft_tables else {}
        hops.append({**head, "table": ev.table, "chain": ev.chain, "rule": position, "verdict": hop_verdict})
        verdict = "DROP" if hop_verdict == "DROP" else None
    return tuple(hops), verdict


def _is_ours(info: dict[str, Any], pkt: dict[str, Any]) -> bool:
    if info.get("saddr") is None or info.get("daddr") is None:
        return False
    try:
        if ipaddress.ip_address(info["saddr"]) != ipaddress.ip_address(pkt["src"]):
            return False
        if ipaddress.ip_address(info["daddr"]) != ipaddress.ip_address(pkt["dst"]):
            return False
    except ValueError:
        return False
    if pkt["proto"] in ("tcp", "udp", "sctp", "udplite"):
        return info.get("sport") == pkt["sport"] and info.get("dport") == pkt["dport"]
    return True


def _is_probe(info: dict[str, Any]) -> bool:
    return info.get("sport") == 7 and info.get("dport") == 7 and info.get("daddr") in (
        "192.0.0.254",
        "127.0.0.254",
    )


def select_events(events: list[_Event], pkt: dict[str, Any]) -> list[_Event]:
    """The events of our packet: the trace id of its first `packet:` line.

    A trace id comes from the skb, so a later, unrelated skb can reuse it once
    ours is freed; stop at a `packet:` line of another protocol or a probe.
    A packet sent to a local address leaves through `lo` and comes back in
    under a new trace id (seen on 6.x): follow it by its (post-NAT) addresses
    and ports on the `iif "lo"` side.
    """
    out: list[_Event] = []
    want = _proto_word(pkt)
    match: dict[str, Any] = {"src": pkt["src"], "dst": pkt["dst"], "proto": pkt["proto"],
                             "sport": pkt.get("sport"), "dport": pkt.get("dport")}
    start = 0
    need_iif: str | None = None
    while True:
        ours: str | None = None
        for i in range(start, len(events)):
            ev = events[i]
            if ev.kind == "packet" and ev.table == TRACE_TABLE:
                info = parse_packet_line(ev.body)
                if (need_iif is None or info.get("iif") == need_iif) and _is_ours(info, match):
                    ours, start = ev.id, i
                    break
        if ours is None:
            return out
        last_info: dict[str, Any] = {}
        last_index = start
        for i in range(start, len(events)):
            ev = events[i]
            if ev.id != ours:
                continue
            if ev.kind == "packet":
                info = parse_packet_line(ev.body)
                if i != start and (_is_probe(info) or (want and info.get("proto") not in (None, want))):
                    break
                last_info = info
            out.append(ev)
            last_index = i
        if last_info.get("oif") != "lo" or need_iif == "lo":
            return _follow_pass_up(events, out, last_index)
        match = {"src": last_info.get("saddr"), "dst": last_info.get("daddr"), "proto": pkt["proto"],
                 "sport": last_info.get("sport"), "dport": last_info.get("dport")}
        need_iif = "lo"
        start = last_index + 1


# The IPv4 id, or for IPv6 (which has none) the flow label.
_IP_ID_RE = re.compile(r"\b(?:ip id|ip6 flowlabel) (\d+)\b")


def _follow_pass_up(events: list[_Event], out: list[_Event], last_index: int) -> list[_Event]:
    """A frame that br_netfilter ran through PREROUTING in the bridge and
    then passed up to this host's IP stack continues (INPUT, or FORWARD and
    POSTROUTING when routed) under a new trace id, without a new PREROUTING
    pass (ip_sabotage_in).  Follow it by the IP id (IPv6: flow label),
    addresses, ports and input device of its last `packet:` line."""
    packets = [ev for ev in out if ev.kind == "packet"]
    if not packets or out[-1].kind == "rule" and "(verdict drop)" in out[-1].body:
        return out
    last = packets[-1]
    info = parse_packet_line(last.body)
    ipid = _IP_ID_RE.search(last.body)
    if info.get("oif") or ipid is None or last.table == TRACE_TABLE and last.chain.startswith("fin"):
        return out
    key = (info.get("iif"), info.get("saddr"), info.get("daddr"), info.get("sport"), info.get("dport"), ipid.group(1))
    for i in range(last_index + 1, len(events)):
        ev = events[i]
        if ev.kind != "packet" or ev.id == last.id or (ev.table == TRACE_TABLE and ev.chain in ("pre", "out")):
            continue
        nxt = parse_packet_line(ev.body)
        found = _IP_ID_RE.search(ev.body)
        if (nxt.get("iif"), nxt.get("saddr"), nxt.get("daddr"), nxt.get("sport"), nxt.get("dport"),
                found.group(1) if found else None) != key:
            continue
        return out + [e for e in events[i:] if e.id == ev.id]
    return out


def _proto_word(pkt: dict[str, Any]) -> str:
    proto = str(pkt["proto"])
    return {"icmpv6": "icmpv6", "icmp": "icmp", "tcp": "tcp", "udp": "udp", "sctp": "sctp", "udplite": "udplite"}.get(proto, "")


# ---------------------------------------------------------------------------
# The replay


def _normalise_packet(raw: dict[str, Any], v6: bool) -> dict[str, Any]:
    pkt = dict(raw)
    proto = str(pkt.get("proto", "tcp")).lower()
    if proto in ("ipv6-icmp", "icmp6"):
        proto = "icmpv6"
    if proto == "icmp" and v6:
        proto = "icmpv6"
    proto = {"132": "sctp", "136": "udplite"}.get(proto, proto)
    pkt["proto"] = proto
    if proto in ("tcp", "udp", "sctp", "udplite"):
        # The engine's defaults (pipeline.packet_from_dict); port 0 stays 0.
        pkt["sport"] = int(40000 if pkt.get("sport") is None else pkt["sport"])
        pkt["dport"] = int(80 if pkt.get("dport") is None else pkt["dport"])
    if proto == "tcp":
        # "" is a real choice (a NULL scan); only an absent value means SYN.
        flags = pkt.get("tcp_flags")
        pkt["tcp_flags"] = "S" if flags is None else str(flags)
    if proto in ("icmp", "icmpv6"):
        default_type = 128 if proto == "icmpv6" else 8
        t = pkt.get("icmp_type")
        pkt["icmp_type"] = int(default_type if t is None else t)
        pkt["icmp_code"] = int(pkt.get("icmp_code") or 0)
    pkt["mark"] = int(pkt.get("mark") or 0)
    number = {"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58, "sctp": 132, "udplite": 136}.get(proto, 0)
    pkt["length"] = int(pkt.get("length") or DEFAULT_LENGTH.get((v6, number), 60 if v6 else 40))
    return pkt


def _as_scenario(scenario: ScenarioLike | dict[str, Any]) -> ScenarioLike:
    if isinstance(scenario, dict):
        return scenario_from_dict(scenario)
    return scenario


def replay(scenario: ScenarioLike | dict[str, Any], timeout: float = 10.0,
           progress: Callable[[str], None] | None = None) -> KernelTrace:
    """`progress` hears each stage: "namespaces built", "packet sent",
    "trace read" (the job page shows them)."""
    say = progress or (lambda stage: None)
    ok, why = kernel_available()
    if not ok:
        raise KernelUnavailable(why)
    sc = _as_scenario(scenario)
    started = time.monotonic()
    deadline = started + timeout
    v6 = str(sc.family or "ipv4").lower() == "ipv6"
    pkt = _normalise_packet(sc.packet, v6)
    ctstate = str(pkt.get("ctstate") or "NEW").upper()
    if ctstate != "NEW":
        raise ReplayUnsupported(
            f"ctstate {ctstate}: one injected packet always starts a NEW connection"
        )
    n = next(_counter)
    prefix = f"nvz-{os.getpid()}-{n}"
    ifaces: list[_Iface] = []
    specs = [s for s in sc.host.get("interfaces", []) or [] if s["name"] != "lo"]
    masters = {s.get("master") for s in specs if s.get("master")}
    for i, spec in enumerate(specs):
        is_bridge = spec["name"] in masters and spec.get("type") in (None, "bridge")
        ifaces.append(
            _Iface(
                name=spec["name"],
                addrs=list(spec.get("addrs", []) or []),
                peer_ns=f"{prefix}-p{i}",
                peer_name=f"p{i}",
                mac=_mac(n, i, 0xA),
                peer_mac=_mac(n, i, 0xB),
                bridge=is_bridge,
                master=spec.get("master") or None,
                hairpin=bool(spec.get("hairpin")),
                neighbors=tuple(str(a).split("/")[0] for a in spec.get("neighbors", []) or []),
            )
        )
    # Bridges before their ports.
    ifaces.sort(key=lambda i: not i.bridge)
    env = _Env(fw=f"{prefix}-fw", ifaces=ifaces)
    arriving = bool(pkt.get("in_iface"))
    refused = False
    lines: list[tuple[float, str]] = []
    try:
        _build_host(sc, env, v6)
        fw = env.fw
        if sc.ipsets_text and sc.ipsets_text.strip():
            _run(["ip", "netns", "exec", fw, "ipset", "restore"], stdin=_ensure_nl(sc.ipsets_text))
        restore = "ip6tables-restore" if v6 else "iptables-restore"
        _run(["ip", "netns", "exec", fw, restore], stdin=_ensure_nl(sc.ruleset_text or ""))
        # scenario-v2 §2: the nft listing is loaded after the iptables dump.
        nft_tables = load_nft_listing(fw, getattr(sc, "nftables_text", None))
        _run(["ip", "netns", "exec", fw, "nft", "-f", "-"], stdin=_trace_table(v6, pkt["mark"], arriving))
        handles = parse_handles(_run(["ip", "netns", "exec", fw, "nft", "-a", "list", "ruleset"]))
        say("namespaces built")

        monitor = subprocess.Popen(
            ["ip", "netns", "exec", fw, "stdbuf", "-oL", "nft", "-a", "monitor", "trace"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
            text=True, start_new_session=True,
        )
        env.procs.append(monitor)
        seen = threading.Condition()

        def reader() -> None:
            assert monitor.stdout is not None
            for line in monitor.stdout:
                with seen:
                    lines.append((time.monotonic(), line.rstrip("\n")))
                    seen.notify_all()

        thread = threading.Thread(target=reader, daemon=True)
        thread.start()

        if arriving:
            iface = next((i for i in ifaces if i.name == pkt["in_iface"]), None)
            if iface is None:
                raise ReplayError(f"in_iface {pkt['in_iface']!r} is not a host interface")
            spec = {
                "mode": "arriving", "packet": pkt, "ifname": iface.peer_name,
                # packet.mac (for `-m mac --mac-source`) is the sender's MAC.
                "src_mac": str(pkt.get("mac") or iface.peer_mac).lower(),
                "dst_mac": _frame_destination(pkt["dst"], iface, ifaces),
                "probe_mac": next((b.mac for b in ifaces if b.bridge and b.name == iface.master), None),
            }
            ns = iface.peer_ns
        else:
            spec = {"mode": "local", "packet": pkt, "src_is_local": _src_is_local(pkt["src"], ifaces)}
            ns = fw
        helper = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, str(INJECT), json.dumps(spec)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, start_new_session=True,
        )
        env.procs.append(helper)

        def probe_seen() -> bool:
            return any(TRACE_TABLE in ln and "(verdict drop)" in ln for _, ln in lines)

        with seen:
            while not probe_seen():
                left = deadline - time.monotonic()
                if left <= 0 or helper.poll() is not None:
                    break
                seen.wait(min(left, 0.05))
        if not probe_seen():
            err = helper.stderr.read() if helper.poll() is not None and helper.stderr else ""
            raise ReplayError(f"nft monitor trace never showed a probe packet {err.strip()}")
        try:
            out, err = helper.communicate("go\n", timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired as exc:
            raise ReplayError("packet injection timed out") from exc
        result = _last_json(out)
        # ENETUNREACH & co. come either from the socket's own route lookup
        # (no route, broadcast without SO_BROADCAST: no hook ever ran) or
        # from a hook: a re-route after DNAT/MARK in OUTPUT that finds no
        # route drops the packet with that errno (ip_route_me_harder ->
        # NF_DROP_ERR).  The trace tells them apart, so read it either way.
        refused = result.get("errno") in _REFUSED_BY_SOCKET and not arriving
        if refused:
            result = {"sent": f"refused by the socket: {result.get('error', '')}"}
        if "error" in result or helper.returncode != 0 and not refused:
            detail = err.strip().splitlines()[-1:] if err.strip() else []
            raise ReplayError(f"injection failed: {result.get('error', '')} {' '.join(detail)}".strip())
        sent_with = str(result.get("sent", ""))
        say("packet sent")

        # Settle: wait until the trace has been quiet for SETTLE seconds, or
        # only GRACE once our packet's own events show its fate.
        sent_at = time.monotonic()
        with seen:
            while True:
                now = time.monotonic()
                last = max([t for t, _ in lines] + [sent_at])
                if now - last >= GRACE and _finished([ln for _, ln in lines], pkt):
                    break
                if now - last >= SETTLE or now >= deadline:
                    break
                seen.wait(min(GRACE, max(deadline - now, 0.01)))
        _stop(monitor)
        thread.join(timeout=1.0)
        with seen:
            snapshot = [ln for _, ln in lines]
    finally:
        _teardown(env)
    say("trace read")

    events = [ev for ev in (parse_event(ln) for ln in snapshot) if ev is not None]
    ours = select_events(events, pkt)
    hops, verdict = events_to_hops(ours, handles, nft_tables)
    if refused and verdict is None:
        verdict = "DROP"  # refused before or by a hook: it never left
    packets = tuple(
        {"table": ev.table, "chain": ev.chain, **parse_packet_line(ev.body)}
        for ev in ours
        if ev.kind == "packet"
    )
    return KernelTrace(
        hops=hops,
        verdict=verdict,
        raw=tuple(ev.line for ev in ours),
        packets=packets,
        sent_with=sent_with,
        seconds=time.monotonic() - started,
    )


_REFUSED_BY_SOCKET = frozenset({errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EACCES, errno.EINVAL})


def _finished(lines: list[str], pkt: dict[str, Any]) -> bool:
    """True when our packet's last event is final: a DROP, a policy drop, or
    the trace table's end chains (fin_in; fin_post unless it left through lo
    and will come back in)."""
    events = [ev for ev in (parse_event(ln) for ln in lines) if ev is not None]
    ours = select_events(events, pkt)
    if not ours:
        return False
    last = ours[-1]
    if last.kind == "policy":
        if last.table != TRACE_TABLE:
            return last.body.startswith("policy drop")
        if last.chain == "fin_in":
            return True
        if last.chain == "fin_post":
            packets = [parse_packet_line(ev.body) for ev in ours if ev.kind == "packet"]
            return bool(packets) and packets[-1].get("oif") != "lo"
        return False
    return last.kind == "rule" and last.table != TRACE_TABLE and "(verdict drop)" in last.body


def _frame_destination(dst: str, iface: _Iface, ifaces: list[_Iface]) -> str:
    """Into a bridge port: the MAC of the machine behind the port that lists
    `dst` (the frame is bridged), else the bridge's own (it is routed)."""
    bridge = next((i for i in ifaces if i.bridge and i.name == iface.master), None)
    if bridge is None:
        return _l2_destination(dst, iface)
    for port in ifaces:
        if port.master == bridge.name and dst in port.neighbors:
            return port.peer_mac
    return _l2_destination(dst, bridge)


def _l2_destination(dst: str, iface: _Iface) -> str:
    """The Ethernet destination a real sender would use: broadcast for the
    limited or the subnet broadcast address, the mapped group address for
    multicast (RFC 1112 / RFC 2464), else the firewall interface itself.
    It decides skb->pkt_type, which `-m pkttype` and the IPv4 input path read."""
    addr = ipaddress.ip_address(dst)
    if addr.version == 4:
        if addr == ipaddress.IPv4Address("255.255.255.255"):
            return "ff:ff:ff:ff:ff:ff"
        for a in iface.addrs:
            net = ipaddress.ip_interface(a).network
            if net.version == 4 and net.prefixlen < 31 and addr == net.broadcast_address:
                return "ff:ff:ff:ff:ff:ff"
        if addr.is_multicast:
            low = int(addr) & 0x7FFFFF
            return "01:00:5e:" + ":".join(f"{(low >> s) & 0xFF:02x}" for s in (16, 8, 0))
    elif addr.is_multicast:
        low = int(addr) & 0xFFFFFFFF
        return "33:33:" + ":".join(f"{(low >> s) & 0xFF:02x}" for s in (24, 16, 8, 0))
    return iface.mac


def _src_is_local(src: str, ifaces: list[_Iface]) -> bool:
    addr = ipaddress.ip_address(src)
    if addr.is_loopback:
        return True
    return any(ipaddress.ip_interface(a).ip == addr for i in ifaces for a in i.addrs)


def _ensure_nl(text: str) -> str:
    return text if text.endswith("\n") else text + "\n"


def _last_json(out: str) -> dict[str, Any]:
    for line in reversed(out.splitlines()):
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return {"error": f"no answer from the injector: {out.strip()!r}"}


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=1.0)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=1.0)


def _teardown(env: _Env) -> None:
    for proc in env.procs:
        _stop(proc)
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass
    # Deleting a namespace destroys its veths, ipsets and nftables tables.
    for ns in reversed(env.namespaces):
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


def check_loads(ruleset_text: str, ipsets_text: str | None = None, family: str = "ipv4") -> None:
    """Load the dump (and ipsets) into a throw-away namespace; raise ReplayError
    with the restore tool's message when the kernel refuses it."""
    ok, why = kernel_available()
    if not ok:
        raise KernelUnavailable(why)
    ns = f"nvz-{os.getpid()}-{next(_counter)}-load"
    _run(["ip", "netns", "add", ns])
    try:
        if ipsets_text and ipsets_text.strip():
            _run(["ip", "netns", "exec", ns, "ipset", "restore"], stdin=_ensure_nl(ipsets_text))
        restore = "ip6tables-restore" if family == "ipv6" else "iptables-restore"
        _run(["ip", "netns", "exec", ns, restore], stdin=_ensure_nl(ruleset_text))
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)

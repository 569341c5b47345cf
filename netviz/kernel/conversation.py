"""Replay a conversation (scenario-v2 §3) in the kernel with real sockets.

The first packet is replayed alone first (netviz.kernel.replay) to learn
where the kernel delivers it: to a local process, or out of which interface
with which destination after NAT.  Then the host is built again with real
endpoints: a client where the first packet starts (the firewall namespace for
a local sender, else the peer namespace of its input interface, holding the
source address) and a listener where it was delivered (the firewall
namespace, or the peer namespace of its output interface, holding the
destination after NAT).  The client connects, sends, closes as the scenario's
packets say; SYN-ACKs and ACKs come from the kernels' own TCP stacks, echo
replies from the kernels' ICMP.

The trace is cut into packets at each `packet:` line of the tracing table's
first chains (trace ids are reused by later packets of a flow), a local
packet's `iif "lo"` input pass is joined to its output pass (same IP id and
length), and each scenario packet is matched to the next kernel packet with
its direction and TCP flags (or ICMP type); packets nobody listed (a delayed
ACK, the ACK of a FIN) are skipped.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netviz.engine.conversation import later_tcp_length

from .replay import (
    INJECT,
    TRACE_TABLE,
    KernelTrace,
    KernelUnavailable,
    ReplayError,
    ReplayUnsupported,
    ScenarioLike,
    _as_scenario,
    _build_host,
    _counter,
    _ensure_nl,
    _Env,
    _Event,
    _Iface,
    _mac,
    _normalise_packet,
    _run,
    _stop,
    _teardown,
    _trace_table,
    events_to_hops,
    kernel_available,
    load_nft_listing,
    parse_event,
    parse_handles,
    parse_packet_line,
    replay,
)

ENDPOINT = Path(__file__).with_name("endpoint.py")
# A listed packet no endpoint sent (a client that got a SYN-ACK from an
# address it never wrote to answers with an RST, not the listed ACK).
NEVER_SHOWN = "the kernel never showed this packet: no endpoint sent it"
QUIET = 0.3  # seconds without a trace line: the exchange after an action is over
GATEWAY4 = "169.254.1.1"  # a peer's next hop: the firewall interface's MAC
TCP_BITS = {"F": 0x01, "S": 0x02, "R": 0x04, "P": 0x08, "A": 0x10, "U": 0x20, "E": 0x40, "C": 0x80}
_FLAG_WORDS = {"fin": 0x01, "syn": 0x02, "rst": 0x04, "psh": 0x08, "ack": 0x10, "urg": 0x20, "ecn": 0x40, "cwr": 0x80}
_ICMP_WORDS = {"echo-request": 8, "echo-reply": 0, "destination-unreachable": 3, "time-exceeded": 11,
               "echo-request6": 128, "echo-reply6": 129}


@dataclass(frozen=True)
class KernelPacket:
    """One packet of the conversation as the kernel showed it (None: not seen)."""

    dir: str
    trace: KernelTrace | None
    not_sent: str = ""
    # The RST or ICMP error the host sent back about this packet.
    related: KernelTrace | None = None


@dataclass
class _Pass:
    id: str
    head: dict[str, Any]
    events: list[_Event] = field(default_factory=list)
    joined: bool = False

    @property
    def last(self) -> dict[str, Any]:
        out = self.head
        for ev in self.events:
            if ev.kind == "packet":
                out = parse_packet_line(ev.body)
        return out


def flag_bits(letters: str) -> int:
    return sum(TCP_BITS[ch] for ch in set(letters.upper()) if ch in TCP_BITS)


def _head(body: str) -> dict[str, Any]:
    info = parse_packet_line(body)
    m = re.search(r"tcp flags == (\S+)", body)
    if m:
        word = m.group(1)
        info["flags"] = int(word, 16) if word.startswith("0x") else _FLAG_WORDS.get(word, 0)
    for name, key in (("ip id", "ipid"), ("ip length", "length"), ("ip6 length", "length")):
        m = re.search(rf"\b{name} (\d+)", body)
        if m:
            info[key] = int(m.group(1))
    if isinstance(info.get("icmp_type"), str):
        word = info["icmp_type"]
        info["icmp_type"] = int(word) if word.isdigit() else _ICMP_WORDS.get(word, word)
    return info


def cut_passes(events: list[_Event]) -> list[_Pass]:
    """Cut the event stream into packets (notes: trace ids are reused; a
    local packet's input half over lo comes back under a new id)."""
    passes: list[_Pass] = []
    current: dict[str, _Pass] = {}
    for ev in events:
        if ev.table == TRACE_TABLE and ev.kind == "packet" and ev.chain in ("pre", "out"):
            head = _head(ev.body)
            if head.get("sport") == 7 and head.get("dport") == 7:
                current.pop(ev.id, None)  # a probe
                continue
            p = _Pass(ev.id, head, [ev])
            if ev.chain == "pre" and head.get("iif") == "lo":
                host = next((q for q in reversed(passes) if not q.joined and q.last.get("oif") == "lo"
                             and q.head.get("ipid") == head.get("ipid")
                             and q.head.get("length") == head.get("length")), None)
                if host is not None:
                    host.joined = True
                    host.events.append(ev)
                    current[ev.id] = host
                    continue
            passes.append(p)
            current[ev.id] = p
            continue
        p = current.get(ev.id)
        if p is not None:
            p.events.append(ev)
    return passes


def _addr_eq(a: Any, b: Any) -> bool:
    try:
        return ipaddress.ip_address(str(a)) == ipaddress.ip_address(str(b))
    except ValueError:
        return False


def _fits(head: dict[str, Any], want: dict[str, Any]) -> bool:
    if not (_addr_eq(head.get("saddr"), want["src"]) and _addr_eq(head.get("daddr"), want["dst"])):
        return False
    if want.get("sport") is not None and (head.get("sport") != want["sport"] or head.get("dport") != want["dport"]):
        return False
    if want.get("flags") is not None and head.get("flags") != want["flags"]:
        return False
    return want.get("icmp_type") is None or head.get("icmp_type") == want["icmp_type"]


Handles = dict[tuple[str, str, int], tuple[str, int]]


def _trace_of(p: _Pass, handles: Handles, nft_tables: frozenset[tuple[str, str]] = frozenset()) -> KernelTrace:
    hops, verdict = events_to_hops(p.events, handles, nft_tables)
    packets = tuple({"table": ev.table, "chain": ev.chain, **parse_packet_line(ev.body)}
                    for ev in p.events if ev.kind == "packet")
    return KernelTrace(hops=hops, verdict=verdict, raw=tuple(ev.line for ev in p.events), packets=packets)


def replay_conversation(scenario: ScenarioLike | dict[str, Any], timeout: float = 20.0) -> list[KernelPacket]:
    ok, why = kernel_available()
    if not ok:
        raise KernelUnavailable(why)
    sc = _as_scenario(scenario)
    v6 = str(sc.family or "ipv4").lower() == "ipv6"
    if v6:
        raise ReplayUnsupported("conversations are replayed for IPv4 only")
    pkt = _normalise_packet(sc.packet, v6)
    later = list(getattr(sc, "packets", None) or [])
    _check_supported(pkt, later)
    first = replay(sc, timeout=timeout)
    if first.verdict != "ACCEPT" and not first.hops and not pkt.get("in_iface"):
        # Refused by the sending socket or lost before any chain (no route,
        # a martian): nothing more to see, and no socket could do better.
        return [KernelPacket("original", first)] + [
            KernelPacket(p["dir"], None, "packet 1 was dropped") for p in later
        ]
    server: dict[str, Any] | None = None
    if first.verdict == "ACCEPT":
        local = any(f" {TRACE_TABLE} fin_in " in line for line in first.raw)
        last = first.packets[-1] if first.packets else {}
        server = {"addr": last.get("daddr"), "port": last.get("dport"), "oif": None if local else last.get("oif")}
        if not server["addr"]:
            raise ReplayError("the kernel showed no header for the first packet")
    return _run_conversation(sc, pkt, later, server, timeout)


def _check_supported(pkt: dict[str, Any], later: list[dict[str, Any]]) -> None:
    proto = pkt["proto"]
    if proto not in ("tcp", "udp", "icmp"):
        raise ReplayUnsupported(f"conversations over {proto} are not replayed")
    if proto == "tcp" and pkt["tcp_flags"].upper() != "S":
        raise ReplayUnsupported("a replayed tcp conversation starts with a SYN")
    if proto == "icmp" and pkt["icmp_type"] != 8:
        raise ReplayUnsupported("a replayed icmp conversation starts with an echo request")
    if pkt.get("mark") or any(p.get("mark") for p in later):
        raise ReplayUnsupported("marks on conversation packets are not replayed")
    for key in ("mac", "uid", "gid", "ttl", "tos"):
        if pkt.get(key) not in (None, 0, 64) if key == "ttl" else pkt.get(key):
            raise ReplayUnsupported(f"packet.{key} is not replayed in a conversation")


class _Endpoint:
    def __init__(self, ns: str, env: _Env) -> None:
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, str(ENDPOINT)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, start_new_session=True,
        )
        env.procs.append(self.proc)

    def do(self, **cmd: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise ReplayError(f"endpoint died: {err.strip()[-300:]}")
        answer = json.loads(line)
        if "error" in answer:
            raise ReplayError(f"endpoint: {answer['error']}")
        return answer


def _setup_peer(iface: _Iface, addr: str) -> None:
    ns = iface.peer_ns
    _run(["ip", "netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv4.conf.all.rp_filter=0",
          f"net.ipv4.conf.{iface.peer_name}.rp_filter=0", "net.ipv4.conf.all.accept_local=1"])
    batch = [
        "link set lo up",
        f"addr replace {addr}/32 dev {iface.peer_name}",
        f"neigh replace {GATEWAY4} lladdr {iface.mac} dev {iface.peer_name} nud permanent",
        f"route replace default via {GATEWAY4} dev {iface.peer_name} onlink",
    ]
    _run(["ip", "-n", ns, "-batch", "-"], stdin="\n".join(batch) + "\n")


def _hairpin(iface: _Iface, addrs: list[str]) -> None:
    """Client and server behind one interface: what they send each other
    must still go through the host, not straight to the local socket, so
    their own traffic is routed out by source before the local table."""
    batch = ["rule del pref 0", "rule add pref 300 lookup local",
             f"route add default via {GATEWAY4} dev {iface.peer_name} onlink table 200"]
    batch += [f"rule add pref 100 iif lo from {a} lookup 200" for a in dict.fromkeys(addrs)]
    _run(["ip", "-n", iface.peer_ns, "-batch", "-"], stdin="\n".join(batch) + "\n")


def _run_conversation(sc: ScenarioLike, pkt: dict[str, Any], later: list[dict[str, Any]],
                      server: dict[str, Any] | None, timeout: float) -> list[KernelPacket]:
    n = next(_counter)
    prefix = f"nvz-{os.getpid()}-{n}c"
    ifaces = [
        _Iface(name=spec["name"], addrs=list(spec.get("addrs", []) or []), peer_ns=f"{prefix}-p{i}",
               peer_name=f"p{i}", mac=_mac(n, i, 0xA), peer_mac=_mac(n, i, 0xB))
        for i, spec in enumerate(sc.host.get("interfaces", []) or []) if spec["name"] != "lo"
    ]
    env = _Env(fw=f"{prefix}-fw", ifaces=ifaces)
    lines: list[tuple[float, str]] = []
    seen = threading.Condition()
    deadline = time.monotonic() + timeout
    proto = pkt["proto"]
    try:
        _build_host(sc, env, False)
        fw = env.fw
        by_name = {i.name: i for i in ifaces}
        client_ns = fw
        if pkt.get("in_iface"):
            iface = by_name.get(pkt["in_iface"])
            if iface is None:
                raise ReplayError(f"in_iface {pkt['in_iface']!r} is not a host interface")
            _setup_peer(iface, pkt["src"])
            client_ns = iface.peer_ns
        server_ns = fw
        if server is not None and server["oif"]:
            iface = by_name.get(server["oif"])
            if iface is None:
                raise ReplayUnsupported(f"the first packet leaves by {server['oif']}, not a replayable interface")
            _setup_peer(iface, server["addr"])
            server_ns = iface.peer_ns
            if server_ns == client_ns:
                _hairpin(iface, [pkt["src"], server["addr"]])
        if sc.ipsets_text and sc.ipsets_text.strip():
            _run(["ip", "netns", "exec", fw, "ipset", "restore"], stdin=_ensure_nl(sc.ipsets_text))
        _run(["ip", "netns", "exec", fw, "iptables-restore"], stdin=_ensure_nl(sc.ruleset_text or ""))
        nft_tables = load_nft_listing(fw, getattr(sc, "nftables_text", None))
        _run(["ip", "netns", "exec", fw, "nft", "-f", "-"], stdin=_trace_table(False, 0, False))
        handles = parse_handles(_run(["ip", "netns", "exec", fw, "nft", "-a", "list", "ruleset"]))
        tables = nft_tables
        monitor = subprocess.Popen(
            ["ip", "netns", "exec", fw, "stdbuf", "-oL", "nft", "-a", "monitor", "trace"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
            text=True, start_new_session=True,
        )
        env.procs.append(monitor)

        def reader() -> None:
            assert monitor.stdout is not None
            for line in monitor.stdout:
                with seen:
                    lines.append((time.monotonic(), line.rstrip("\n")))
                    seen.notify_all()

        threading.Thread(target=reader, daemon=True).start()
        _wait_monitor(fw, env, lines, seen, deadline)
        srv = _Endpoint(server_ns, env)
        cli = _Endpoint(client_ns, env)
        if proto in ("tcp", "udp") and server is not None:
            local_tcp = proto == "tcp" and not server["oif"]
            srv.do(op="listen", proto=proto, addr="0.0.0.0" if local_tcp else server["addr"], port=server["port"])
        # The headers each direction starts with, as the senders put them on the wire.
        original = {"src": pkt["src"], "dst": pkt["dst"], "sport": pkt.get("sport"), "dport": pkt.get("dport")}
        out: list[KernelPacket] = []
        first_want = dict(original, flags=flag_bits("S") if proto == "tcp" else None,
                         icmp_type=8 if proto == "icmp" else None)
        if proto == "tcp":
            cli.do(op="connect", src=pkt["src"], sport=pkt["sport"], dst=pkt["dst"], dport=pkt["dport"])
        elif proto == "udp":
            cli.do(op="bind_udp", src=pkt["src"], sport=pkt["sport"], dst=pkt["dst"], dport=pkt["dport"])
            cli.do(op="udp", size=max(int(pkt["length"]) - 28, 0))
        else:
            cli.do(op="ping", src=pkt["src"], dst=pkt["dst"], type=8, size=max(int(pkt["length"]) - 28, 0))
        _quiet(lines, seen, deadline)
        used = -1
        passes = cut_passes(_events(lines, seen))
        idx = _find(passes, used, first_want)
        if idx is None:
            if os.environ.get("NETVIZ_DEBUG_CONV"):
                print(first_want, [q.head for q in passes], [ln for _, ln in lines][-20:], file=sys.stderr)
            raise ReplayError("the kernel never showed the conversation's first packet")
        used = idx
        first_pass = passes[idx]
        trace0 = _trace_of(first_pass, handles, tables)
        out.append(KernelPacket("original", trace0, related=_related(passes, idx, handles, tables)))
        end = first_pass.last
        reply = {"src": end.get("daddr"), "dst": end.get("saddr"), "sport": end.get("dport"), "dport": end.get("sport")}
        dropped = 0 if trace0.verdict != "ACCEPT" else None
        for i, spec in enumerate(later, start=1):
            if dropped is not None:
                out.append(KernelPacket(spec["dir"], None, f"packet {dropped + 1} was dropped"))
                continue
            sender = cli if spec["dir"] == "original" else srv
            head = original if spec["dir"] == "original" else reply
            want = dict(head)
            if proto == "tcp":
                letters = str(spec.get("tcp_flags") or ("SA" if spec["dir"] == "reply" else "A")).upper()
                want["flags"] = flag_bits(letters)
                length = int(spec.get("length") or later_tcp_length(letters, False))
                if "R" in letters:
                    sender.do(op="reset")
                elif "F" in letters:
                    sender.do(op="shutdown")
                elif "P" in letters:
                    sender.do(op="send", size=max(length - 52, 1))
            elif proto == "udp":
                sender.do(op="udp", size=max(int(spec.get("length") or pkt["length"]) - 28, 0))
            else:
                icmp_type = int(spec.get("icmp_type", 8 if spec["dir"] == "original" else 0))
                want["icmp_type"] = icmp_type
                if icmp_type in (8, 13):
                    target = reply["dst"] if spec["dir"] == "reply" else pkt["dst"]
                    source = reply["src"] if spec["dir"] == "reply" else pkt["src"]
                    sender.do(op="ping", src=source, dst=target, type=icmp_type,
                              size=max(int(pkt["length"]) - 28, 0))
            _quiet(lines, seen, deadline)
            passes = cut_passes(_events(lines, seen))
            idx = _find(passes, used, want)
            if idx is None:
                if os.environ.get("NETVIZ_DEBUG_CONV"):
                    print(want, [q.head for q in passes[used + 1:]], file=sys.stderr)
                out.append(KernelPacket(spec["dir"], None, NEVER_SHOWN))
                dropped = i
                continue
            used = idx
            trace = _trace_of(passes[idx], handles, tables)
            out.append(KernelPacket(spec["dir"], trace, related=_related(passes, idx, handles, tables)))
            if trace.verdict != "ACCEPT":
                dropped = i
        _stop(monitor)
        return out
    finally:
        _teardown(env)


def _events(lines: list[tuple[float, str]], seen: threading.Condition) -> list[_Event]:
    with seen:
        snapshot = [ln for _, ln in lines]
    return [ev for ev in (parse_event(ln) for ln in snapshot) if ev is not None]


def _related(passes: list[_Pass], idx: int, handles: Handles,
             tables: frozenset[tuple[str, str]]) -> KernelTrace | None:
    """The host's RST or ICMP error about passes[idx], if it sent one."""
    p = passes[idx]
    if _trace_of(p, handles, tables).verdict == "ACCEPT":
        return None  # (no verdict at all: a failed route lookup, which answers too)
    head = p.last
    for q in passes[idx + 1:]:
        h = q.head
        if h.get("iif"):
            continue  # only what the host itself sends
        if h.get("proto") == "icmp" and h.get("icmp_type") == 3 and _addr_eq(h.get("daddr"), p.head.get("saddr")):
            return _trace_of(q, handles, tables)
        if (h.get("flags", 0) & TCP_BITS["R"] and h.get("sport") == head.get("dport")
                and h.get("dport") == head.get("sport")):
            return _trace_of(q, handles, tables)
    return None


def _find(passes: list[_Pass], after: int, want: dict[str, Any]) -> int | None:
    for i in range(after + 1, len(passes)):
        if _fits(passes[i].head, want):
            return i
    return None


def _quiet(lines: list[tuple[float, str]], seen: threading.Condition, deadline: float) -> None:
    start = time.monotonic()
    with seen:
        while True:
            now = time.monotonic()
            last = max([t for t, _ in lines[-1:]] + [start])
            if now - last >= QUIET or now >= deadline:
                return
            seen.wait(QUIET / 3)


def _wait_monitor(fw: str, env: _Env, lines: list[tuple[float, str]], seen: threading.Condition,
                  deadline: float) -> None:
    # inject.py in local mode probes until told to stop: the monitor is
    # listening once a probe shows up.
    spec = {"mode": "local", "packet": {}}
    helper = subprocess.Popen(
        ["ip", "netns", "exec", fw, sys.executable, str(INJECT), json.dumps(spec)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True,
    )
    env.procs.append(helper)
    with seen:
        while not any(TRACE_TABLE in ln and "(verdict drop)" in ln for _, ln in lines):
            if time.monotonic() > deadline or helper.poll() is not None:
                raise ReplayError("nft monitor trace never showed a probe packet")
            seen.wait(0.05)
    try:
        helper.communicate("\n", timeout=2.0)
    except subprocess.TimeoutExpired:
        _stop(helper)


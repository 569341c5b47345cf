"""Send one packet from inside a network namespace.

Run as `ip netns exec NS python inject.py JSON` by netviz.kernel.replay; it
imports nothing from netviz so that it starts fast and works as a plain script.

Protocol with the parent: the helper sends *probe* packets (UDP 7 → 7, see
PROBE_*) every few milliseconds so the parent can tell when `nft monitor trace`
is really listening (the trace table drops probes before any user table sees
them).  When the parent writes a line on stdin the helper sends the real packet,
prints one JSON line describing what it did, and exits.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import select
import socket
import struct
import sys
from typing import Any

PROBE_PORT = 7
# Probes for an arriving packet go to a TEST-NET-like address nobody uses;
# local probes go to loopback so they need no route.
PROBE_DST4_ARRIVING = "192.0.0.254"
PROBE_SRC4_ARRIVING = "192.0.0.253"
PROBE_DST4_LOCAL = "127.0.0.254"
PROBE_INTERVAL = 0.015

ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
SO_MARK = 36
IP_HDRINCL = 3
IPV6_HDRINCL = 36
TCP_FLAG_BITS = {"F": 0x01, "S": 0x02, "R": 0x04, "P": 0x08, "A": 0x10, "U": 0x20, "E": 0x40, "C": 0x80}


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


# Names a scenario may use for other protocols (the engine's PROTO_NUMBERS).
OTHER_PROTOCOLS = {
    "igmp": 2, "ipencap": 4, "egp": 8, "ipv6": 41, "rsvp": 46, "gre": 47, "esp": 50, "ah": 51,
    "ospf": 89, "pim": 103, "vrrp": 112, "l2tp": 115, "sctp": 132, "mh": 135, "udplite": 136, "dccp": 33,
}


def proto_number(proto: str) -> int:
    text = str(proto).strip().lower()
    if text.isdigit():
        return int(text)
    if text not in OTHER_PROTOCOLS:
        raise ValueError(f"unknown protocol {proto!r}")
    return OTHER_PROTOCOLS[text]


def tcp_flags(letters: str) -> int:
    bits = 0
    for letter in letters.upper():
        if letter not in TCP_FLAG_BITS:
            raise ValueError(f"unknown tcp flag letter {letter!r}")
        bits |= TCP_FLAG_BITS[letter]
    return bits


# What Linux puts in a SYN: MSS, SACK_PERM, timestamps, NOP, window scale
# (20 bytes), so an injected SYN is as long as one from a real socket.
LINUX_SYN_OPTIONS = (
    struct.pack("!BBH", 2, 4, 1460)
    + struct.pack("!BB", 4, 2)
    + struct.pack("!BBII", 8, 10, 1, 0)
    + b"\x01"
    + struct.pack("!BBB", 3, 3, 7)
)


def _crc32c_table() -> list[int]:
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC32C = _crc32c_table()


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC32C[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def sctp_init(pkt: dict[str, Any], l4_len: int) -> bytes:
    # Common header with verification tag 0 and one INIT chunk: what starts
    # an association, so conntrack (nf_conntrack_proto_sctp) sees it as NEW.
    chunk = struct.pack("!BBHIIHHI", 1, 0, 20, 0x4E565A31, 65535, 10, 10, 1)
    body = struct.pack("!HHII", pkt["sport"], pkt["dport"], 0, 0) + chunk
    body += b"\0" * max(l4_len - len(body), 0)
    csum = crc32c(body)
    # the CRC32c is stored little-endian (RFC 4960 appendix B, as Linux does)
    return body[:8] + struct.pack("<I", csum) + body[12:]


def l4_segment(pkt: dict[str, Any], src: bytes, dst: bytes, v6: bool, l4_len: int) -> tuple[int, bytes]:
    """The transport header and payload, `l4_len` bytes, with a valid checksum."""
    proto = pkt["proto"]
    if proto in ("sctp", "132"):
        return 132, sctp_init(pkt, l4_len)
    if proto == "tcp":
        options = LINUX_SYN_OPTIONS if l4_len >= 40 else b""
        flags = tcp_flags(pkt["tcp_flags"])
        ack = 1 if flags & 0x10 else 0
        hdr = struct.pack(
            "!HHIIBBHHH", pkt["sport"], pkt["dport"], 0x1000, ack,
            (5 + len(options) // 4) << 4, flags, 64240, 0, 0,
        )
        body = hdr + options
        number = 6
    elif proto == "udp":
        body = struct.pack("!HHHH", pkt["sport"], pkt["dport"], max(l4_len, 8), 0)
        number = 17
    elif proto in ("udplite", "136"):
        # UDP-Lite: the length field is the checksum coverage; 0 = everything.
        body = struct.pack("!HHHH", pkt["sport"], pkt["dport"], 0, 0)
        number = 136
    elif proto in ("icmp", "icmpv6"):
        body = struct.pack("!BBHHH", pkt["icmp_type"], pkt["icmp_code"], 0, 0x4E56, 1)
        number = 58 if v6 else 1
    else:
        return proto_number(proto), b"\0" * max(l4_len, 0)
    body += b"\0" * max(l4_len - len(body), 0)
    if v6:
        pseudo = src + dst + struct.pack("!I3xB", len(body), number)
    else:
        pseudo = src + dst + struct.pack("!xBH", number, len(body))
    if number == 1:
        csum = checksum(body)  # ICMPv4 has no pseudo header
    else:
        csum = checksum(pseudo + body)
        if number in (17, 136) and csum == 0:
            csum = 0xFFFF
    offset = {6: 16, 17: 6, 136: 6, 1: 2, 58: 2}[number]
    body = body[:offset] + struct.pack("!H", csum) + body[offset + 2 :]
    return number, body


def ip_packet(pkt: dict[str, Any]) -> tuple[bytes, bool]:
    src = ipaddress.ip_address(pkt["src"])
    dst = ipaddress.ip_address(pkt["dst"])
    v6 = src.version == 6
    head_len = 40 if v6 else 20
    number, l4 = l4_segment(pkt, src.packed, dst.packed, v6, int(pkt["length"]) - head_len)
    ttl = int(pkt.get("ttl", 64))
    tos = int(pkt.get("tos", 0))
    if v6:
        head = struct.pack("!IHBB", (6 << 28) | (tos << 20), len(l4), number, ttl)
        return head + src.packed + dst.packed + l4, True
    total = 20 + len(l4)
    head = struct.pack("!BBHHHBBH4s4s", 0x45, tos, total, 0x4E56, 0x4000, ttl, number, 0, src.packed, dst.packed)
    head = head[:10] + struct.pack("!H", checksum(head)) + head[12:]
    return head + l4, False


def mac_bytes(text: str) -> bytes:
    return bytes(int(part, 16) for part in text.split(":"))


def send_frame(ifname: str, src_mac: str, dst_mac: str, packet: bytes, v6: bool) -> None:
    ethertype = ETH_P_IPV6 if v6 else ETH_P_IP
    frame = mac_bytes(dst_mac) + mac_bytes(src_mac) + struct.pack("!H", ethertype) + packet
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as sock:
        sock.bind((ifname, 0))
        sock.send(frame)


def probe_arriving(spec: dict[str, Any]) -> None:
    pkt = {
        "proto": "udp", "src": PROBE_SRC4_ARRIVING, "dst": PROBE_DST4_ARRIVING,
        "sport": PROBE_PORT, "dport": PROBE_PORT, "length": 28,
    }
    data, _ = ip_packet(pkt)
    # Into a bridge port the probe goes to the bridge itself: a frame bridged
    # to another port is seen by no IP hook when br_netfilter is off.
    send_frame(spec["ifname"], spec["src_mac"], spec.get("probe_mac") or spec["dst_mac"], data, False)


def probe_local(_spec: dict[str, Any]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", PROBE_PORT))
        try:
            sock.sendto(b"probe", (PROBE_DST4_LOCAL, PROBE_PORT))
        except PermissionError:
            pass  # the trace table dropped it at the output hook, as intended


def _send_local(spec: dict[str, Any], path: list[str]) -> str:
    """Send a locally generated packet; returns how ("socket" or "raw").

    A real socket (bound to the source address and port) is used when the source
    is a local address and the protocol allows it: the packet then belongs to a
    socket, so `-m owner`/`socket` matches and the routing decision see exactly
    what a process would produce.  Otherwise an IP_HDRINCL raw socket sends the
    header as given: it has no owning socket for `-m owner` purposes beyond the
    raw socket itself, and the kernel does not pick a source address.
    """
    pkt = spec["packet"]
    v6 = ipaddress.ip_address(pkt["dst"]).version == 6
    fam = socket.AF_INET6 if v6 else socket.AF_INET
    mark = int(pkt.get("mark", 0))
    flags = pkt.get("tcp_flags", "S").upper()
    head_len = 40 if v6 else 20
    payload_len = int(pkt["length"]) - head_len - 8
    ttl = int(pkt.get("ttl", 64))
    # IP_TTL/IPV6_UNICAST_HOPS refuse 0 (EINVAL): a TTL-0 packet can only be
    # sent with a hand-built header.
    if spec.get("src_is_local") and 1 <= ttl <= 255:
        # A socket's SYN is 20 + 40 bytes (v4) with Linux's options; any other
        # length or flag set needs the raw path.
        path.append("socket")
        # A TCP socket keeps its own ECN bits whatever IP_TOS says
        # (do_ip_setsockopt masks INET_ECN_MASK for SOCK_STREAM).
        tos_ok = not int(pkt.get("tos", 0)) & 3
        if pkt["proto"] == "tcp" and flags == "S" and int(pkt["length"]) == head_len + 40 and tos_ok:
            sock = socket.socket(fam, socket.SOCK_STREAM)
            _common_opts(sock, mark, pkt, v6)
            sock.bind((pkt["src"], pkt["sport"]))
            sock.setblocking(False)
            try:
                sock.connect((pkt["dst"], pkt["dport"]))
            except BlockingIOError:
                pass
            except OSError as exc:
                if exc.errno not in (errno.EINPROGRESS,):
                    raise
            # Closing a SYN_SENT socket sends nothing (tcp_close → tcp_set_state
            # CLOSE without RST), so only the one SYN leaves.
            sock.close()
            return "socket"
        if pkt["proto"] == "udp":
            with socket.socket(fam, socket.SOCK_DGRAM) as sock:
                _common_opts(sock, mark, pkt, v6)
                sock.bind((pkt["src"], pkt["sport"]))
                sock.sendto(b"\0" * max(payload_len, 0), (pkt["dst"], pkt["dport"]))
            return "socket"
        if pkt["proto"] in ("icmp", "icmpv6"):
            number = socket.IPPROTO_ICMPV6 if v6 else socket.IPPROTO_ICMP
            with socket.socket(fam, socket.SOCK_RAW, number) as sock:
                _common_opts(sock, mark, pkt, v6)
                sock.bind((pkt["src"], 0))
                src = ipaddress.ip_address(pkt["src"]).packed
                dst = ipaddress.ip_address(pkt["dst"]).packed
                _, body = l4_segment(pkt, src, dst, v6, payload_len + 8)
                if v6:
                    # The kernel fills the ICMPv6 checksum of a raw ICMPv6 socket.
                    body = body[:2] + b"\0\0" + body[4:]
                sock.sendto(body, (pkt["dst"], 0))
            return "socket"
    path.append("raw")
    data, _ = ip_packet(pkt)
    if v6:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
        sock.setsockopt(socket.IPPROTO_IPV6, IPV6_HDRINCL, 1)
    else:
        sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        sock.setsockopt(socket.IPPROTO_IP, IP_HDRINCL, 1)
    with sock:
        if mark:
            sock.setsockopt(socket.SOL_SOCKET, SO_MARK, mark)
        sock.sendto(data, (pkt["dst"], 0))
    return "raw"


def send_local(spec: dict[str, Any]) -> str:
    path: list[str] = []
    try:
        return _send_local(spec, path)
    except PermissionError:
        # EPERM: netfilter dropped the packet on the way out (NF_DROP in
        # OUTPUT/POSTROUTING reaches the sender as -EPERM).  It was sent.
        return (path[-1] if path else "socket") + "-eperm"


def _common_opts(sock: socket.socket, mark: int, pkt: dict[str, Any], v6: bool) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if mark:
        sock.setsockopt(socket.SOL_SOCKET, SO_MARK, mark)
    ttl = int(pkt.get("ttl", 64))
    tos = int(pkt.get("tos", 0))
    if v6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, ttl)
        if tos:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, tos)
    else:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
        if tos:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, tos)


def main(argv: list[str]) -> int:
    spec = json.loads(argv[1])
    probe = probe_arriving if spec["mode"] == "arriving" else probe_local
    # Probe until the parent says go (a line on stdin) or closes stdin.
    deadline_probes = int(spec.get("max_probes", 400))
    for _ in range(deadline_probes):
        try:
            probe(spec)
        except OSError as exc:
            print(json.dumps({"error": f"probe: {exc}"}), flush=True)
            return 2
        ready, _, _ = select.select([sys.stdin], [], [], PROBE_INTERVAL)
        if ready:
            break
    else:
        print(json.dumps({"error": "monitor never saw a probe"}), flush=True)
        return 3
    if not sys.stdin.readline().strip():
        return 0
    try:
        if spec["mode"] == "arriving":
            data, v6 = ip_packet(spec["packet"])
            send_frame(spec["ifname"], spec["src_mac"], spec["dst_mac"], data, v6)
            how = "frame"
        else:
            how = send_local(spec)
    except OSError as exc:
        print(json.dumps({"error": f"send: {exc}", "errno": exc.errno}), flush=True)
        return 4
    except (ValueError, KeyError, struct.error) as exc:
        print(json.dumps({"error": f"cannot build the packet: {exc!r}"}), flush=True)
        return 5
    print(json.dumps({"sent": how}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""One end of a conversation replay: real sockets inside a network namespace.

Run as `ip netns exec NS python endpoint.py` by netviz.kernel.conversation;
like inject.py it imports nothing from netviz.  It reads one JSON command per
line on stdin and answers one JSON line each:

  {"op": "listen", "proto": "tcp"|"udp", "addr": A, "port": P}
  {"op": "connect", "src": S, "sport": SP, "dst": D, "dport": DP}   (tcp)
  {"op": "bind_udp", "src": S, "sport": SP, "dst": D, "dport": DP}
  {"op": "send", "size": N}        tcp data (client or the accepted side)
  {"op": "shutdown"}               tcp FIN
  {"op": "reset"}                  tcp RST (SO_LINGER 0, close)
  {"op": "udp", "size": N}         a datagram (the client to its peer; the
                                   server back to whoever wrote last)
  {"op": "ping", "src": S, "dst": D, "type": T, "size": N}   an ICMP query
  {"op": "quit"}
"""

from __future__ import annotations

import ipaddress
import json
import socket
import struct
import sys
import threading
import time
from typing import Any

SO_MARK = 36
ICMP_ID = 0x4E56


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


class Endpoint:
    def __init__(self) -> None:
        self.listener: socket.socket | None = None
        self.conn: socket.socket | None = None  # the connected tcp socket
        self.udp: socket.socket | None = None
        self.udp_peer: Any = None
        self.udp_dst: Any = None
        self.seq = 0
        self.lock = threading.Lock()

    def fam(self, addr: str) -> int:
        return socket.AF_INET6 if ipaddress.ip_address(addr).version == 6 else socket.AF_INET

    def listen(self, cmd: dict[str, Any]) -> None:
        fam = self.fam(cmd["addr"])
        if cmd["proto"] == "tcp":
            sock = socket.socket(fam, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((cmd["addr"], cmd["port"]))
            sock.listen(8)
            self.listener = sock
            threading.Thread(target=self._accept, daemon=True).start()
        else:
            sock = socket.socket(fam, socket.SOCK_DGRAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            # Bound to the address the datagram came to, so the answer
            # leaves from it (the entry's reply tuple) whatever the route
            # back prefers; a broadcast or group address cannot be bound.
            try:
                sock.bind((cmd["addr"], cmd["port"]))
            except OSError:
                sock.bind(("0.0.0.0" if fam == socket.AF_INET else "::", cmd["port"]))
            self.udp = sock
            threading.Thread(target=self._recv_udp, daemon=True).start()

    def _accept(self) -> None:
        assert self.listener is not None
        conn, _ = self.listener.accept()
        # Data is never read: a thread blocked in recv() would keep the
        # socket open past close(), so SO_LINGER 0 could not send its RST.
        with self.lock:
            self.conn = conn

    def _recv_udp(self) -> None:
        assert self.udp is not None
        while True:
            try:
                _, peer = self.udp.recvfrom(65536)
            except OSError:
                return
            with self.lock:
                self.udp_peer = peer

    def connect(self, cmd: dict[str, Any]) -> None:
        sock = socket.socket(self.fam(cmd["dst"]), socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if cmd.get("mark"):
            sock.setsockopt(socket.SOL_SOCKET, SO_MARK, int(cmd["mark"]))
        sock.bind((cmd["src"], cmd["sport"]))
        sock.setblocking(False)
        try:
            sock.connect((cmd["dst"], cmd["dport"]))
        except BlockingIOError:
            pass
        self.conn = sock

    def bind_udp(self, cmd: dict[str, Any]) -> None:
        sock = socket.socket(self.fam(cmd["dst"]), socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if cmd.get("mark"):
            sock.setsockopt(socket.SOL_SOCKET, SO_MARK, int(cmd["mark"]))
        sock.bind((cmd["src"], cmd["sport"]))
        self.udp = sock
        self.udp_dst = (cmd["dst"], cmd["dport"])
        threading.Thread(target=self._recv_udp, daemon=True).start()

    def _tcp(self) -> socket.socket:
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            with self.lock:
                if self.conn is not None:
                    return self.conn
            time.sleep(0.01)
        raise OSError("no tcp connection")

    def send(self, cmd: dict[str, Any]) -> None:
        self._tcp().send(b"n" * max(int(cmd.get("size", 8)), 1))

    def shutdown(self, cmd: dict[str, Any]) -> None:
        self._tcp().shutdown(socket.SHUT_WR)

    def reset(self, cmd: dict[str, Any]) -> None:
        sock = self._tcp()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()

    def udp_send(self, cmd: dict[str, Any]) -> None:
        assert self.udp is not None
        target = self.udp_dst
        if target is None:
            deadline = time.monotonic() + 3.0
            while self.udp_peer is None and time.monotonic() < deadline:
                time.sleep(0.01)
            target = self.udp_peer
        if target is None:
            raise OSError("no udp peer to answer")
        self.udp.sendto(b"\0" * max(int(cmd.get("size", 0)), 0), target)

    def ping(self, cmd: dict[str, Any]) -> None:
        v6 = self.fam(cmd["dst"]) == socket.AF_INET6
        proto = socket.IPPROTO_ICMPV6 if v6 else socket.IPPROTO_ICMP
        with socket.socket(self.fam(cmd["dst"]), socket.SOCK_RAW, proto) as sock:
            sock.bind((cmd["src"], 0))
            self.seq += 1
            body = struct.pack("!BBHHH", int(cmd["type"]), 0, 0, ICMP_ID, self.seq)
            body += b"\0" * max(int(cmd.get("size", 56)), 0)
            if not v6:
                body = body[:2] + struct.pack("!H", checksum(body)) + body[4:]
            sock.sendto(body, (cmd["dst"], 0))


def main() -> int:
    ep = Endpoint()
    ops = {"listen": ep.listen, "connect": ep.connect, "bind_udp": ep.bind_udp, "send": ep.send,
           "shutdown": ep.shutdown, "reset": ep.reset, "udp": ep.udp_send, "ping": ep.ping}
    for line in sys.stdin:
        if not line.strip():
            continue
        cmd = json.loads(line)
        if cmd.get("op") == "quit":
            break
        try:
            ops[cmd["op"]](cmd)
            print(json.dumps({"ok": True}), flush=True)
        except PermissionError:
            # EPERM: netfilter dropped it on the way out; it was sent.
            print(json.dumps({"ok": True, "eperm": True}), flush=True)
        except (OSError, KeyError, ValueError) as exc:
            print(json.dumps({"error": f"{cmd.get('op')}: {exc}"}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Reusable network-namespace helpers: load a dump through either iptables
backend, read it back, and capture the kernel's own trace output.

Used by `import_live` tests, the trace-import capture tests and anything else
that needs a throw-away namespace.  Every namespace made here has a unique
name and is deleted in `finally`, and the one global setting touched
(net.netfilter.nf_log_all_netns) is put back as it was.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import select
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from .replay import ReplayError, _run

BACKENDS = ("nft", "legacy")
_counter = itertools.count()
_log_lock = threading.Lock()
_log_users = 0
_log_saved: str | None = None
NF_LOG_ALL_NETNS = "/proc/sys/net/netfilter/nf_log_all_netns"


def restore_tool(backend: str, family: str = "ipv4", save: bool = False) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, not {backend!r}")
    base = "ip6tables" if family == "ipv6" else "iptables"
    return f"{base}-{backend}-{'save' if save else 'restore'}"


def missing_tools(*tools: str) -> list[str]:
    return [t for t in tools if shutil.which(t) is None]


def in_ns(ns: str, cmd: list[str], stdin: str | None = None, timeout: float = 10.0) -> str:
    return _run(["ip", "netns", "exec", ns, *cmd], stdin=stdin, timeout=timeout)


@contextlib.contextmanager
def namespace(prefix: str = "nvz-ns") -> Iterator[str]:
    name = f"{prefix}-{os.getpid()}-{next(_counter)}"
    _run(["ip", "netns", "add", name])
    try:
        _run(["ip", "-n", name, "link", "set", "lo", "up"])
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


def load(
    ns: str,
    ruleset_text: str,
    backend: str = "nft",
    family: str = "ipv4",
    ipsets_text: str | None = None,
) -> None:
    if ipsets_text and ipsets_text.strip():
        in_ns(ns, ["ipset", "restore"], stdin=_nl(ipsets_text))
    in_ns(ns, [restore_tool(backend, family)], stdin=_nl(ruleset_text))


def save(ns: str, backend: str = "nft", family: str = "ipv4") -> str:
    return in_ns(ns, [restore_tool(backend, family, save=True)])


def _nl(text: str) -> str:
    return text if text.endswith("\n") else text + "\n"


def send_udp(ns: str, dst: str, dport: int, sport: int = 0, src: str = "") -> None:
    """One UDP datagram from a local socket in `ns` (an EPERM from a DROP in
    OUTPUT still means it was sent through netfilter)."""
    script = (
        "import socket,sys\n"
        "s=socket.socket(socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET,socket.SOCK_DGRAM)\n"
        "s.bind((sys.argv[4], int(sys.argv[3])))\n"
        "try: s.sendto(b'netviz', (sys.argv[1], int(sys.argv[2])))\n"
        "except PermissionError: pass\n"
    )
    in_ns(ns, ["python3", "-c", script, dst, str(dport), str(sport), src])


# ---------------------------------------------------------------------------
# Legacy backend: TRACE lines in the kernel log


@contextlib.contextmanager
def nf_log_all_netns() -> Iterator[None]:
    """nf_log_syslog only logs for the initial namespace unless
    net.netfilter.nf_log_all_netns is 1 (nf_log_syslog.c, nf_log_allowed)."""
    global _log_users, _log_saved
    with _log_lock:
        if _log_users == 0:
            with open(NF_LOG_ALL_NETNS) as fh:
                _log_saved = fh.read().strip()
            with open(NF_LOG_ALL_NETNS, "w") as fh:
                fh.write("1\n")
        _log_users += 1
    try:
        yield
    finally:
        with _log_lock:
            _log_users -= 1
            if _log_users == 0 and _log_saved is not None:
                with open(NF_LOG_ALL_NETNS, "w") as fh:
                    fh.write(_log_saved + "\n")


@dataclass
class KmsgReader:
    """Kernel log records written after it was opened, as dmesg prints them."""

    fd: int = -1
    lines: list[str] = field(default_factory=list)

    def open(self) -> None:
        self.fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
        os.lseek(self.fd, 0, os.SEEK_END)

    def read(self, wait: float = 0.3) -> list[str]:
        deadline = time.monotonic() + wait
        while True:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.fd], [], [], max(left, 0))
            if not ready:
                break
            try:
                record = os.read(self.fd, 8192).decode("utf-8", "replace")
            except BlockingIOError:
                continue
            except BrokenPipeError:
                continue  # records were overwritten: skip ahead
            # "PRI,SEQ,TS_USEC,FLAGS;message\n continuation lines"
            head, _, message = record.partition(";")
            usec = head.split(",")[2] if head.count(",") >= 2 else "0"
            stamp = f"[{int(usec) / 1e6:12.6f}]" if usec.isdigit() else "[0]"
            self.lines.append(f"{stamp} {message.splitlines()[0] if message else ''}")
        return self.lines

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


@contextlib.contextmanager
def kernel_log(ns: str, family: str = "ipv4") -> Iterator[KmsgReader]:
    """Capture the TRACE/LOG lines the namespace's legacy tables write."""
    pf = "10" if family == "ipv6" else "2"
    logger = "nf_log_ipv6" if family == "ipv6" else "nf_log_ipv4"
    in_ns(ns, ["sysctl", "-q", "-w", f"net.netfilter.nf_log.{pf}={logger}"])
    reader = KmsgReader()
    with nf_log_all_netns():
        reader.open()
        try:
            yield reader
        finally:
            reader.close()


# ---------------------------------------------------------------------------
# nf_tables backend: xtables-monitor --trace

PROBE_TABLE = "nvz_probe"
PROBE_ADDR = "127.0.0.254"
PROBE_PORT = 7


@dataclass
class Monitor:
    proc: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    seen: threading.Condition = field(default_factory=threading.Condition)

    def wait_for(self, needle: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.seen:
            while not any(needle in ln for ln in self.lines):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.seen.wait(min(left, 0.05))
        return True

    def settle(self, quiet: float = 0.3, timeout: float = 5.0) -> list[str]:
        deadline = time.monotonic() + timeout
        count = -1
        while time.monotonic() < deadline:
            with self.seen:
                if len(self.lines) == count:
                    break
                count = len(self.lines)
            time.sleep(quiet)
        with self.seen:
            return [ln for ln in self.lines if not ln.startswith("#probe ")]


@contextlib.contextmanager
def trace_monitor(ns: str, command: tuple[str, ...] = ("xtables-monitor", "--trace"),
                  timeout: float = 5.0) -> Iterator[Monitor]:
    """Run a trace monitor in `ns` and wait until it really listens: probe
    packets (UDP 7 → 127.0.0.254:7) are traced and dropped by a table of our
    own at priority -400 until the monitor shows one.  Probe lines are left
    out of what the monitor returns."""
    probe_table = (
        f"table inet {PROBE_TABLE} {{\n chain out {{\n  type filter hook output priority -400;\n"
        f"  ip daddr {PROBE_ADDR} udp dport {PROBE_PORT} meta nftrace set 1 drop\n }}\n}}\n"
    )
    in_ns(ns, ["nft", "-f", "-"], stdin=probe_table)
    proc = subprocess.Popen(
        ["ip", "netns", "exec", ns, "stdbuf", "-oL", *command],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        text=True, start_new_session=True,
    )
    mon = Monitor(proc)
    probe_ids: set[str] = set()

    def reader() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip("\n")
            words = line.split()
            # xtables-monitor: "PACKET: 2 <id> …"; nft: "trace id <id> …"
            tid = words[2] if len(words) > 2 and words[0] in ("PACKET:", "TRACE:") else (
                words[2] if len(words) > 2 and words[:2] == ["trace", "id"] else "")
            if PROBE_TABLE in line or f"DST={PROBE_ADDR}" in line or f"daddr {PROBE_ADDR}" in line:
                probe_ids.add(tid)
                with mon.seen:
                    mon.lines.append("#probe " + line)
                    mon.seen.notify_all()
                continue
            with mon.seen:
                if tid and tid in probe_ids:
                    continue
                mon.lines.append(line)
                mon.seen.notify_all()

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + timeout
        while not mon.wait_for("#probe", 0.05):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise ReplayError(f"{command[0]} never showed a probe packet")
            send_udp(ns, PROBE_ADDR, PROBE_PORT, PROBE_PORT, "127.0.0.1")
        yield mon
    finally:
        _stop(proc)
        thread.join(timeout=1.0)
        with mon.seen:
            mon.lines[:] = [ln for ln in mon.lines if not ln.startswith("#probe ")]
        subprocess.run(["ip", "netns", "exec", ns, "nft", "delete", "table", "inet", PROBE_TABLE],
                       capture_output=True, check=False)


def _stop(proc: subprocess.Popen[str]) -> None:
    from .replay import _stop as stop

    stop(proc)
    if proc.stdout is not None:
        proc.stdout.close()

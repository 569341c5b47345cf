"""The privilege split of `make run` (Procfile): the web process and the
default worker hold no capability, the kernel worker holds CAP_NET_ADMIN.
Each process is started from its Procfile line as `make run` starts it, and
its capabilities are read from /proc."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from netviz.kernel.replay import CAP_NET_ADMIN, effective_capabilities

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.kernel


def _procfile() -> dict[str, str]:
    out = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, command = line.partition(":")
            out[name.strip()] = command.strip()
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _caps_of(command: str, env: dict[str, str]) -> int:
    """Start the Procfile command, wait until it is Python running manage.py
    (past the wrappers' exec), read its effective capabilities, stop it."""
    proc = subprocess.Popen(["bash", "-c", f"exec {command}"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        for _ in range(200):
            try:
                cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes()
            except OSError:
                cmdline = b""
            # Past `setpriv … --` and the shell: python manage.py …
            if cmdline.split(b"\0")[1:2] == [b"manage.py"]:
                break
            if proc.poll() is not None:
                pytest.fail(f"{command!r} exited: {proc.stderr.read() if proc.stderr else ''}")
            time.sleep(0.05)
        else:
            pytest.fail(f"{command!r} never started manage.py")
        return effective_capabilities(proc.pid)
    finally:
        os.killpg(proc.pid, 9)
        proc.wait()


def test_only_the_kernel_worker_has_cap_net_admin() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: as another user every process lacks the capability anyway")
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed")
    procs = _procfile()
    assert set(procs) == {"web", "worker", "kernel"}
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "NETVIZ_SQLITE": str(Path(tmp) / "db.sqlite3"),
               "PORT": str(_free_port()), "HOST": "127.0.0.1"}
        env.pop("DATABASE_URL", None)
        # A migrated database, so that every process stays up while it is read.
        subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env,
                       check=True)
        web = _caps_of(procs["web"], env)
        worker = _caps_of(procs["worker"], env)
        kernel = _caps_of(procs["kernel"], env)
    net_admin = 1 << CAP_NET_ADMIN
    assert not web & net_admin and web == 0
    assert not worker & net_admin
    assert kernel & net_admin

"""The app under gunicorn, as deployed (DEBUG off, whitenoise, collected static
files), with many concurrent clients uploading dumps, opening trace pages and
comparing: no request may fail and no upload may be lost.

Off by default; NETVIZ_LOAD=1 runs it (`make bench` does).  NETVIZ_LOAD_CLIENTS
(default 30) and NETVIZ_LOAD_SECONDS (default 20, at most 60) size it.  The
database is a throwaway SQLite file, or the PostgreSQL of DATABASE_URL when it
is set (scripts/postgres.sh makes one).  Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from netviz.testing.gendump import generate_dump

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.load,
    pytest.mark.skipif(os.environ.get("NETVIZ_LOAD") != "1", reason="load test: set NETVIZ_LOAD=1 to run it"),
]

HOST_INTERFACES = "eth0 192.168.49.2/24\ncni0 10.244.0.1/16"
HOST_ROUTES = "default via 192.168.49.1 dev eth0"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class App:
    port: int
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    log: Path

    def manage(self, *args: str) -> str:
        run = subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], cwd=ROOT, env=self.env,
                             check=False, capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr
        return run.stdout


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    work = tmp_path_factory.mktemp("load")
    env = dict(os.environ)
    env.update(
        NETVIZ_DEBUG="0",
        NETVIZ_SECRET_KEY=secrets.token_urlsafe(40),
        NETVIZ_ALLOWED_HOSTS="127.0.0.1",
        NETVIZ_STATIC_ROOT=str(work / "static"),
        NETVIZ_SQLITE=str(work / "db.sqlite3"),
    )
    if not env.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")):
        env.pop("DATABASE_URL", None)
    port = _free_port()
    for args in (["migrate", "--noinput", "-v", "0"], ["collectstatic", "--noinput", "-v", "0"]):
        run = subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], cwd=ROOT, env=env,
                             check=False, capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr
    log = work / "gunicorn.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "netviz.wsgi:application", "--bind", f"127.0.0.1:{port}",
             "--workers", "4", "--threads", "4", "--timeout", "120", "--graceful-timeout", "10",
             "--access-logfile", "-", "--error-logfile", "-"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    the_app = App(port, env, process, log)
    try:
        deadline = time.monotonic() + 300  # a hang guard, generous on a loaded machine
        while True:
            try:
                status, _, _ = _request(port, "GET", "/")
                if status == 200:
                    break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"gunicorn did not come up:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
        yield the_app
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _request(port: int, method: str, path: str, body: bytes | None = None,
             headers: dict[str, str] | None = None,
             conn: http.client.HTTPConnection | None = None) -> tuple[int, dict[str, str], bytes]:
    own = conn is None
    c = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        c.request(method, path, body=body, headers=headers or {})
        response = c.getresponse()
        data = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data
    finally:
        if own:
            c.close()


@dataclass
class Client:
    port: int
    number: int
    conn: http.client.HTTPConnection | None = None
    cookies: dict[str, str] = field(default_factory=dict)

    def send(self, method: str, path: str, body: bytes | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        all_headers = dict(headers or {})
        if self.cookies:
            all_headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
            try:
                status, hdrs, data = _request(self.port, method, path, body, all_headers, self.conn)
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # A keep-alive connection the server closed between requests:
                # reconnect once (the request never reached the app).
                self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise
        if "set-cookie" in hdrs:
            jar: SimpleCookie = SimpleCookie()
            jar.load(hdrs["set-cookie"])
            self.cookies.update({k: m.value for k, m in jar.items()})
        return status, hdrs, data

    def upload(self, name: str, text: str) -> int:
        status, _, page = self.send("GET", "/upload/")
        assert status == 200, f"GET /upload/ → {status}"
        match = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        assert match, "no CSRF token on the upload page"
        body = urlencode({
            "csrfmiddlewaretoken": match.group(1).decode(), "name": name, "dump_text": text,
            "family": "ipv4", "host_interfaces": HOST_INTERFACES, "host_routes": HOST_ROUTES,
        }).encode()
        status, headers, data = self.send("POST", "/upload/", body, {
            "Content-Type": "application/x-www-form-urlencoded",
        })
        assert status == 302, f"POST /upload/ → {status}: {data[:300]!r}"
        found = re.search(r"/rulesets/(\d+)/", headers.get("location", ""))
        assert found, headers
        return int(found.group(1))


def _trace_query(pk: int, host: int | None, svc: Any, rng: random.Random) -> str:
    query: dict[str, Any] = {
        "proto": svc.proto, "src": f"198.51.100.{200 + rng.randrange(50)}", "sport": 40000 + rng.randrange(1000),
        "dst": svc.cluster_ip, "dport": svc.port, "in_iface": "eth0", "ctstate": "NEW", "mark": "0x0",
        "seed": rng.randrange(1000),
    }
    if svc.proto == "tcp":
        query["tcp_flags"] = "S"
    if host is not None:
        query["host"] = host
    return f"/rulesets/{pk}/trace/?{urlencode(query)}"


def test_many_clients_lose_nothing(app: App) -> None:
    clients = int(os.environ.get("NETVIZ_LOAD_CLIENTS", "30"))
    seconds = min(float(os.environ.get("NETVIZ_LOAD_SECONDS", "20")), 60.0)
    seed_dump = generate_dump(200, 3, seed=11)
    first = Client(app.port, -1)
    pk = first.upload("load seed ruleset", seed_dump.text)
    hosts = json.loads(app.manage(
        "shell", "-c",
        "import json; from netviz.models import HostProfile; "
        f"print(json.dumps(list(HostProfile.objects.filter(ruleset_id={pk}).values_list('pk', flat=True))))",
    ).strip().splitlines()[-1])
    host = hosts[0] if hosts else None
    services = [s for s in seed_dump.services if s.endpoints]
    status, _, _ = first.send("GET", "/compare/")
    has_compare = status == 200

    lock = threading.Lock()
    counts: Counter[str] = Counter()
    errors: list[str] = []
    uploaded: list[str] = []
    stop_at = time.monotonic() + seconds

    def work(number: int) -> None:
        rng = random.Random(number)
        client = Client(app.port, number)
        i = 0
        while time.monotonic() < stop_at:
            i += 1
            roll = rng.random()
            try:
                if roll < 0.2:
                    name = f"load client {number} upload {i}"
                    dump = generate_dump(3 + rng.randrange(20), 1 + rng.randrange(3), seed=number * 100_000 + i)
                    client.upload(name, dump.text)
                    with lock:
                        uploaded.append(name)
                    continue
                if roll < 0.8 or not has_compare:
                    path = _trace_query(pk, host, services[rng.randrange(len(services))], rng)
                    status, _, body = client.send("GET", path)
                    assert status == 200, f"GET {path} → {status}"
                    assert b"<svg" in body, f"GET {path}: no SVG"
                    kind = "trace"
                else:
                    svc = services[rng.randrange(len(services))]
                    packet = f"{svc.proto} 198.51.100.210:40000 > {svc.cluster_ip}:{svc.port} in eth0"
                    query = {"left": pk, "packet": packet}
                    if host is not None:
                        query["lhost"] = host
                    path = f"/compare/?{urlencode(query)}"
                    status, _, body = client.send("GET", path)
                    assert status == 200, f"GET {path} → {status}: {body[:200]!r}"
                    kind = "compare"
                with lock:
                    counts[kind] += 1
            except (AssertionError, OSError, http.client.HTTPException) as exc:
                with lock:
                    errors.append(f"client {number}: {type(exc).__name__}: {exc}")
        if client.conn is not None:
            client.conn.close()

    started = time.monotonic()
    threads = [threading.Thread(target=work, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=seconds + 180)
    elapsed = time.monotonic() - started
    # An upload is two requests: the form (for its CSRF token) and the POST.
    requests = counts["trace"] + counts["compare"] + 2 * len(uploaded)
    database = "PostgreSQL" if "DATABASE_URL" in app.env else "SQLite"
    print(
        f"\nload: {clients} clients, {elapsed:.1f} s, {database}: {requests} requests "
        f"({requests / elapsed:.1f} requests/s): {counts['trace']} trace pages, "
        f"{counts['compare']} compares, {len(uploaded)} uploads; {len(errors)} errors"
    )
    assert not errors, "\n".join(errors[:20])
    assert len(uploaded) > 0 and counts["trace"] > 0

    names = json.loads(app.manage(
        "shell", "-c",
        "import json; from netviz.models import Ruleset; "
        "print(json.dumps(list(Ruleset.objects.values_list('name', flat=True))))",
    ).strip().splitlines()[-1])
    stored = Counter(names)
    lost = [n for n in uploaded if stored[n] != 1]
    assert not lost, f"{len(lost)} uploads not stored exactly once: {lost[:10]}"
    log = app.log.read_text(errors="replace")
    assert "Traceback" not in log, log[-3000:]

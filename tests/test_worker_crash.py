"""A job survives its worker being killed: real `manage.py worker`
processes on a database file; the first is killed (SIGKILL, with its job
process) in the middle of a fleet part, the next one queues the job again
and finishes it."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SETUP = """
import django, os, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "netviz.settings")
django.setup()
from pathlib import Path
from netviz.fleet_jobs import submit_parts
from netviz.testing.fleetbench import write_fleet
files, checks, _ = write_fleet(Path(sys.argv[1]), 40, 20, "1k")
print(submit_parts(None, files, checks, kind_key="files", part_nodes=40)[0].pk)
"""

def _status(db: Path, job: str) -> tuple[str, int, int, int]:
    # Read the row directly: cheaper than starting Django for each look.
    with sqlite3.connect(db, timeout=20) as conn:
        row = conn.execute("SELECT status, attempts, done, total FROM netviz_job WHERE id = ?",
                           (int(job),)).fetchone()
    return row[0], row[1], row[2], row[3]


def _py(env: dict[str, str], code: str, *args: str) -> str:
    run = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, env=env,
                         capture_output=True, text=True, check=False, timeout=300)
    assert run.returncode == 0, run.stderr
    return run.stdout.strip()


def test_a_job_whose_worker_is_killed_is_run_again(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite3"
    env = {**os.environ, "NETVIZ_SQLITE": str(db),
           "NETVIZ_JOB_STALE_SECONDS": "2", "NETVIZ_JOB_ATTEMPTS": "2"}
    env.pop("DATABASE_URL", None)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    job = _py(env, SETUP, str(tmp_path))
    worker = [sys.executable, "manage.py", "worker", "--batch", "--interval", "0.2", "-v", "0"]
    first = subprocess.Popen(worker, cwd=ROOT, env=env, start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # Wait until the job is running and has checked something.
        for _ in range(600):
            status, _, done, _ = _status(db, job)
            if status == "running" and done > 0:
                break
            assert first.poll() is None, "the worker stopped by itself"
            time.sleep(0.2)
        else:
            raise AssertionError("the job never ran")
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # the worker and its job process
        first.wait()
    assert _status(db, job)[0] == "running"  # left behind, as after a crash
    time.sleep(2.5)  # past NETVIZ_JOB_STALE_SECONDS without a heartbeat
    second = subprocess.run(worker, cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=600, check=False)
    assert second.returncode == 0, second.stderr
    assert f"job {job}: its worker stopped" in second.stderr
    status, attempts, done, total = _status(db, job)
    assert (status, attempts) == ("done", 2) and done == total == 800

"""The fleet benchmark of `manage.py bench --fleet`: N generated kube-proxy
nodes of about 10,000 rules each × C checks, run through the real job queue
by 1 and then 2 workers (`manage.py worker --batch`), timed from the first
part queued to the last part finished, with the peak memory of every worker
process and of every job process under it.

Every node's ruleset text is its own (its node address is written into it),
and every node is parsed on its own: no parse is shared between nodes.
"""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from netviz.testing.gendump import NODE_IP, SIZES, generate_dump, sample_packets

BASES = 4  # distinct service sets among the nodes


def write_fleet(work: Path, nodes: int, checks: int, size: str = "10k"
                ) -> tuple[list[str], str, int]:
    """Node files, the check set's text and the rules of the first node; the expectations are what the
    engine says on the first node (a benchmark, not a test)."""
    from netviz.fleet import Node, checkset_from_dict, run_node

    node_ip = re.compile(re.escape(str(NODE_IP)) + r"(?!\d)")
    dumps = [generate_dump(*SIZES[size], seed=seed + 1) for seed in range(BASES)]
    packets = [dict(p, ctstate="NEW") for p in sample_packets(dumps[0], checks)]
    draft = checkset_from_dict({"checks": [
        {"name": f"check {i + 1}", "packet": p, "expect": "ACCEPT"} for i, p in enumerate(packets)]})
    first = run_node(Node("n0", dumps[0].text, host=dumps[0].host()), draft.checks)
    checkset = {"name": f"bench {checks}", "checks": [
        {"name": c["check"], "packet": p, "expect": c["fate"] or "DROP"}
        for c, p in zip(first["cells"], packets, strict=True)]}
    paths = []
    for i in range(nodes):
        ip = f"192.168.{49 + (i + 2) // 254}.{2 + (i + 2) % 254}" if i else str(NODE_IP)
        dump = dumps[i % BASES]
        host = json.loads(node_ip.sub(ip, json.dumps(dump.host())))
        path = work / f"node-{i:03}.json"
        path.write_text(json.dumps({"name": f"node-{i:03}", "ruleset": node_ip.sub(ip, dump.text),
                                    "host": host}))
        paths.append(str(path))
    return paths, json.dumps(checkset), dumps[0].rule_count


def _children(pids: set[int]) -> set[int]:
    """pids and all their descendants, from /proc."""
    parent: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parent[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    out = set(pids)
    grew = True
    while grew:
        more = {pid for pid, ppid in parent.items() if ppid in out} - out
        out |= more
        grew = bool(more)
    return out


def _hwm_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def run_with_workers(workers: int, files: list[str], checks_text: str, manage: Path,
                     env: dict[str, str]) -> dict[str, Any]:
    """Queue the run's parts, start `workers` batch workers, wait for them."""
    from netviz.fleet_jobs import submit_parts
    from netviz.models import Job

    Job.objects.all().delete()
    load = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    parts = submit_parts(None, files, checks_text, kind_key="files", title="bench")
    procs = [subprocess.Popen([sys.executable, str(manage), "worker", "--batch", "--interval", "0.2",
                               "--queue", "default", "-v", "0"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for _ in range(workers)]
    peaks: dict[int, float] = {}
    worker_pids = {p.pid for p in procs}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            for pid in _children(worker_pids):
                peaks[pid] = max(peaks.get(pid, 0.0), _hwm_mb(pid))
            stop.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    errors = []
    for proc in procs:
        _, err = proc.communicate(timeout=1800)
        if proc.returncode != 0:
            errors.append(err[-2000:])
    stop.set()
    sampler.join()
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # CPU seconds of the workers and their job processes: on a machine shared
    # with other work, wall-clock time alone says little.
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    done = Job.objects.filter(pk__in=[p.pk for p in parts])
    failed = [j.error for j in done if j.status != Job.DONE]
    cells = sum(len(n.get("cells", [])) for j in done for n in j.result.get("nodes", []))
    held = sum(c["ok"] for j in done for n in j.result.get("nodes", []) for c in n.get("cells", []))
    return {
        "workers": workers, "seconds": round(seconds, 2), "cpu_s": round(cpu, 1),
        "load_before": round(load, 2), "parts": len(parts), "traces": cells,
        "held": held, "failed_parts": failed[:3], "worker_errors": errors[:2],
        "peak_worker_mb": round(max((peaks[p] for p in worker_pids if p in peaks), default=0.0), 1),
        "peak_job_mb": round(max((v for p, v in peaks.items() if p not in worker_pids), default=0.0), 1),
    }

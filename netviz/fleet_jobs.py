"""Fleet runs as jobs: a run is split into parts (a few nodes each) that any
worker takes, so N workers run a fleet about N times faster; the run's
matrix is put together from the parts once all have finished.

A part's nodes are either stored fleet nodes (`nodes`: FleetNode pks) or
node files / snapshots on a disk every worker shares (`files`, what
`manage.py bench` uses).  Each node is parsed once in the part's process and
every check traced through it (netviz.fleet.run_node); memory is one node's
parse at a time, whatever the fleet's size.
"""

from __future__ import annotations

import math
from typing import Any

from netviz import jobs
from netviz.fleet import CheckSetError, Node, diff_runs, load_checkset, load_node_file, matrix, run_node
from netviz.jobs import JobError, Progress, handler
from netviz.models import FleetNode, FleetRun, Job

# Nodes per part: small enough that workers share a fleet evenly, big enough
# that starting a part costs little beside its traces.
PART_NODES = 5


def _node(fleet_node: FleetNode) -> Node:
    ruleset = fleet_node.ruleset
    host = fleet_node.host
    return Node(
        name=fleet_node.name, ruleset_text=ruleset.source,
        ipsets_text=ruleset.ipsets_source or None, family=ruleset.family,
        host={"interfaces": host.interfaces, "routes": host.routes} if host else {},
        ruleset_pk=ruleset.pk, host_pk=host.pk if host else None,
    )


@handler("fleet_part")
def fleet_part(job: Job, progress: Progress) -> dict[str, Any]:
    params = job.params
    try:
        checkset = load_checkset(params["checks"])
    except CheckSetError as exc:
        raise JobError(f"the check set is not valid: {exc}") from None
    refs: list[Any] = list(params.get("nodes") or params.get("files") or [])
    total = len(refs) * len(checkset.checks)
    done = 0
    progress("checking nodes", 0, total)
    results = []
    for ref in refs:
        if "files" in params:
            try:
                node = load_node_file(ref)
            except CheckSetError as exc:
                results.append({"name": str(ref), "error": str(exc)})
                done += len(checkset.checks)
                continue
        else:
            fleet_node = FleetNode.objects.select_related("ruleset", "host").filter(pk=ref).first()
            if fleet_node is None:
                results.append({"name": f"node {ref}", "error": "removed from the fleet"})
                done += len(checkset.checks)
                continue
            node = _node(fleet_node)

        def cell_done(name: str = node.name) -> None:
            nonlocal done
            done += 1
            progress(f"checking {name}", done, total)

        results.append(run_node(node, checkset.checks, on_cell=cell_done))
    progress("done", total, total)
    return {"nodes": results}


def submit_parts(run: FleetRun | None, refs: list[Any], checks_text: str, *, kind_key: str,
                 owner: Any = None, title: str = "", part_nodes: int = PART_NODES) -> list[Job]:
    """Queue the parts of a run: `refs` are FleetNode pks (kind_key "nodes")
    or node file paths (kind_key "files")."""
    n = max(1, math.ceil(len(refs) / part_nodes))
    parts = []
    for i in range(n):
        chunk = refs[i * part_nodes:(i + 1) * part_nodes]
        params = {"run": run.pk if run else None, "part": i, kind_key: chunk, "checks": checks_text}
        parts.append(jobs.submit("fleet_part", params, owner=owner,
                                 title=f"{title} · part {i + 1} of {n}"))
    return parts


def start_run(fleet: Any, checkset: Any, owner: Any = None) -> FleetRun:
    """A new run of `checkset` on `fleet`, or the one already running for the
    same pair (never twice at once)."""
    running = FleetRun.objects.filter(fleet=fleet, checkset=checkset, status="running").first()
    if running is not None:
        return running
    parsed = load_checkset(checkset.text)
    nodes = list(fleet.nodes.values_list("pk", flat=True))
    owner_pk = owner.pk if owner is not None and owner.is_authenticated else None
    run = FleetRun.objects.create(fleet=fleet, checkset=checkset, checkset_name=checkset.name,
                                  checkset_text=checkset.text, owner_id=owner_pk,
                                  total=len(nodes) * len(parsed.checks))
    submit_parts(run, nodes, checkset.text, kind_key="nodes", owner=owner,
                 title=f"Fleet run {run.pk} · {checkset.name} on {fleet.name}")
    return run


def parts_of(run: FleetRun) -> list[Job]:
    return sorted(Job.objects.filter(kind="fleet_part", params__run=run.pk),
                  key=lambda j: j.params.get("part", 0))


def refresh(run: FleetRun) -> dict[str, Any]:
    """Progress of a running run; when every part has finished, store its
    matrix (or the parts' failures) on the run."""
    parts = parts_of(run)
    done = sum(p.total if p.status == Job.DONE else p.done for p in parts)
    if run.status == "running" and parts and not any(p.active for p in parts):
        failed = [p for p in parts if p.status == Job.FAILED]
        if failed:
            run.status = "failed"
            run.error = "; ".join(f"part {p.params.get('part', 0) + 1}: {p.error}" for p in failed)
        else:
            nodes = [n for p in parts for n in p.result.get("nodes", [])]
            run.result = matrix(load_checkset(run.checkset_text), nodes)
            run.status = "done"
        FleetRun.objects.filter(pk=run.pk, status="running").update(
            status=run.status, result=run.result, error=run.error)
    return {"parts": parts, "done": min(done, run.total), "total": run.total}


def previous_run(run: FleetRun) -> FleetRun | None:
    return (FleetRun.objects.filter(fleet=run.fleet_id, checkset=run.checkset_id, status="done",
                                    created__lt=run.created)
            .exclude(pk=run.pk).order_by("-created").first())


def run_diff(run: FleetRun) -> tuple[FleetRun | None, list[dict[str, Any]]]:
    before = previous_run(run)
    if before is None or run.status != "done":
        return before, []
    return before, diff_runs(before.result, run.result)


def run_now(fleet: Any, checkset: Any) -> FleetRun:
    """Run in this process, without workers (load_demo: the demo fleet comes
    with a finished run)."""
    parsed = load_checkset(checkset.text)
    nodes = [run_node(_node(n), parsed.checks)
             for n in fleet.nodes.select_related("ruleset", "host")]
    return FleetRun.objects.create(
        fleet=fleet, checkset=checkset, checkset_name=checkset.name, checkset_text=checkset.text,
        status="done", total=len(nodes) * len(parsed.checks), result=matrix(parsed, nodes))

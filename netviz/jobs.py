"""Jobs: long work off the web request, on the django-tasks queue.

`submit()` stores a Job row and enqueues `run_job` (django-tasks, database
backend).  A worker (`manage.py worker`) picks the task up and runs the job's
handler in a child process bounded in time and memory; the handler reports
progress on the row, and the pages poll it (pages_jobs.py).

Why a row of our own beside django-tasks' result row: it carries what the
pages need (owner, progress, a readable error) and the dedupe key, whose
partial unique constraint makes "the same request twice at once" impossible
in the database itself, whichever web process or machine submits it.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import os
import resource
import signal
import socket
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, OperationalError, connections, transaction
from django.utils import timezone
from django_tasks import task

from netviz.models import Job

log = logging.getLogger(__name__)

Progress = Callable[..., None]
HandlerFn = Callable[[Job, Progress], dict[str, Any]]


class JobError(Exception):
    """A failure the user should read as is (bad input, kernel refused…)."""


@dataclass(frozen=True)
class Handler:
    queue: str
    run: HandlerFn


HANDLERS: dict[str, Handler] = {}


def handler(kind: str, queue: str = "default") -> Callable[[HandlerFn], HandlerFn]:
    def register(fn: HandlerFn) -> HandlerFn:
        HANDLERS[kind] = Handler(queue, fn)
        return fn

    return register


def _load_handlers() -> None:
    # The modules that register handlers; imported lazily so that importing
    # netviz.jobs stays cheap for the web process.
    from netviz import fleet_jobs, import_jobs, kernel_jobs  # noqa: F401


def submit(kind: str, params: dict[str, Any], *, owner: Any = None, title: str = "",
           dedupe: str = "") -> Job:
    """Store and enqueue a job; an identical active one (same `dedupe`) is
    returned instead of a second."""
    _load_handlers()
    if kind not in HANDLERS:
        raise ValueError(f"unknown job kind {kind!r}")
    key = ""
    if dedupe:
        key = kind + ":" + hashlib.sha256(dedupe.encode()).hexdigest()
    owner_pk = getattr(owner, "pk", None) if owner is not None and owner.is_authenticated else None
    try:
        with transaction.atomic():
            job = Job.objects.create(kind=kind, params=params, owner_id=owner_pk, title=title,
                                     dedupe_key=key)
    except IntegrityError:
        existing = Job.objects.filter(dedupe_key=key, status__in=Job.ACTIVE).first()
        if existing is None:
            raise
        return existing
    _enqueue(job)
    return job


def _enqueue(job: Job) -> None:
    queue = HANDLERS[job.kind].queue
    result = run_job.using(queue_name=queue).enqueue(job.pk)
    Job.objects.filter(pk=job.pk).update(task_id=str(result.id))
    job.task_id = str(result.id)


@task()
def run_job(job_id: int) -> str:
    execute(job_id, fork=getattr(settings, "NETVIZ_JOB_FORK", True))
    return Job.objects.get(pk=job_id).status


# --- running one job ------------------------------------------------------------


class _Reporter:
    """The progress callback a handler gets: progress("trace read"),
    progress("parsed", done=40, total=100).  Writes are throttled."""

    def __init__(self, job_id: int) -> None:
        self.job_id = job_id
        self.last = 0.0
        self.stage = ""

    def __call__(self, stage: str, done: int | None = None, total: int | None = None) -> None:
        now = time.monotonic()
        if stage == self.stage and now - self.last < 0.3 and done != total:
            return
        self.stage, self.last = stage, now
        fields: dict[str, Any] = {"stage": stage[:200], "heartbeat": timezone.now()}
        if done is not None:
            fields["done"] = done
        if total is not None:
            fields["total"] = total
        try:
            Job.objects.filter(pk=self.job_id).update(**fields)
        except OperationalError:
            pass  # progress is best effort: a busy database must not fail the job


def _beat(job_id: int) -> None:
    try:
        Job.objects.filter(pk=job_id).update(heartbeat=timezone.now())
    except OperationalError:
        pass  # the next beat will do


def _claim(job_id: int) -> Job | None:
    # Only one worker moves a job from queued to running.
    now = timezone.now()
    worker = f"{socket.gethostname()}:{os.getpid()}"[:100]
    with transaction.atomic():
        claimed = Job.objects.filter(pk=job_id, status=Job.QUEUED).update(
            status=Job.RUNNING, started=now, heartbeat=now, worker=worker, error="", stage="")
    if not claimed:
        return None
    job = Job.objects.get(pk=job_id)
    Job.objects.filter(pk=job_id).update(attempts=job.attempts + 1)
    return job


def _finish(job_id: int, status: str, result: dict[str, Any] | None = None, error: str = "") -> None:
    Job.objects.filter(pk=job_id, status=Job.RUNNING).update(
        status=status, result=result or {}, error=error[:5000], finished=timezone.now(),
        heartbeat=timezone.now())


def _call(job: Job) -> tuple[str, dict[str, Any], str]:
    _load_handlers()
    try:
        result = HANDLERS[job.kind].run(job, _Reporter(job.pk))
    except JobError as exc:
        return Job.FAILED, {}, str(exc)
    except MemoryError:
        return Job.FAILED, {}, f"ran out of memory (the limit is {settings.NETVIZ_JOB_MEMORY_MB} MB)"
    except Exception as exc:  # the reason goes on the page; the traceback to the log
        log.exception("job %s failed", job.pk)
        return Job.FAILED, {}, f"internal error: {type(exc).__name__}: {exc}"
    return Job.DONE, result, ""


def execute(job_id: int, fork: bool = True) -> None:
    """Run one queued job.  With `fork`, in a child process bounded by
    NETVIZ_JOB_SECONDS and NETVIZ_JOB_MEMORY_MB (a crash or a limit there
    fails the job with the reason; the worker lives on)."""
    job = _claim(job_id)
    if job is None:
        return  # taken by another worker, or cancelled
    if not fork:
        status, result, error = _call(job)
        _finish(job_id, status, result, error)
        return
    outcome = run_bounded(_child, (job_id,), settings.NETVIZ_JOB_SECONDS,
                          settings.NETVIZ_JOB_MEMORY_MB,
                          beat=lambda: _beat(job_id))
    if isinstance(outcome, Failure):
        _finish(job_id, Job.FAILED, error=outcome.reason)
    else:
        status, result, error = outcome
        _finish(job_id, status, result, error)


def _child(job_id: int) -> tuple[str, dict[str, Any], str]:
    return _call(Job.objects.get(pk=job_id))


@dataclass(frozen=True)
class Failure:
    reason: str


def _limit(seconds: int, memory_mb: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (memory_mb * 1024 * 1024,) * 2)
    # CPU time as a second line behind the wall-clock deadline.
    resource.setrlimit(resource.RLIMIT_CPU, (seconds + 5, seconds + 10))


def _bounded_main(conn: Any, target: Callable[..., Any], args: tuple[Any, ...], seconds: int,
                  memory_mb: int) -> None:
    _limit(seconds, memory_mb)
    try:
        out = target(*args)
    except MemoryError:
        conn.send(Failure(f"ran out of memory (the limit is {memory_mb} MB)"))
    except BaseException as exc:  # noqa: BLE001 - everything goes back to the parent
        conn.send(Failure(f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=5)}"))
    else:
        conn.send(out)
    finally:
        conn.close()
        connections.close_all()


def run_bounded(target: Callable[..., Any], args: tuple[Any, ...], seconds: int, memory_mb: int,
                beat: Callable[[], Any] | None = None) -> Any:
    """target(*args) in a forked child with an address-space limit of
    `memory_mb` and a wall-clock limit of `seconds`; its return value, or a
    Failure saying why there is none."""
    # The child must not share the parent's database sockets.
    connections.close_all()
    ctx = multiprocessing.get_context("fork")
    parent_end, child_end = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_bounded_main, args=(child_end, target, args, seconds, memory_mb),
                       daemon=True)
    proc.start()
    child_end.close()
    deadline = time.monotonic() + seconds
    out: Any = None
    got = False
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            if parent_end.poll(min(left, 2.0)):
                try:
                    out, got = parent_end.recv(), True
                except EOFError:
                    pass  # the child died before answering
                break
            if not proc.is_alive():
                break
            if beat is not None:
                beat()
    finally:
        if proc.is_alive() and not got:
            os.kill(proc.pid, signal.SIGKILL)
        proc.join(5)
        parent_end.close()
    if got:
        return out
    if time.monotonic() >= deadline:
        return Failure(f"took longer than {seconds} s and was stopped")
    code = proc.exitcode
    if code is not None and code < 0:
        name = signal.Signals(-code).name
        hint = " (out of memory?)" if -code in (signal.SIGKILL, signal.SIGSEGV) else ""
        return Failure(f"the job process was killed by {name}{hint}")
    return Failure(f"the job process exited with status {code} without a result")


# --- workers that vanish ---------------------------------------------------------


def recover_stale(now: Any = None) -> list[int]:
    """Jobs left running by a worker that stopped (killed, machine lost):
    queued again while attempts remain, else failed with the reason."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.NETVIZ_JOB_STALE_SECONDS)
    touched = []
    for job in Job.objects.filter(status=Job.RUNNING, heartbeat__lt=cutoff):
        if job.attempts < settings.NETVIZ_JOB_ATTEMPTS:
            n = Job.objects.filter(pk=job.pk, status=Job.RUNNING, heartbeat__lt=cutoff).update(
                status=Job.QUEUED, stage=f"queued again: worker {job.worker} stopped", heartbeat=None)
            if n:
                _load_handlers()
                _enqueue(job)
        else:
            n = Job.objects.filter(pk=job.pk, status=Job.RUNNING, heartbeat__lt=cutoff).update(
                status=Job.FAILED, finished=now,
                error=f"the worker running it ({job.worker}) stopped responding; "
                      f"gave up after {job.attempts} attempt{'s' if job.attempts != 1 else ''}")
        if n:
            touched.append(job.pk)
    return touched

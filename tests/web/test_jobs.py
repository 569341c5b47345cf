"""Jobs: the kernel check as a POST for signed-in users, run by a worker;
dedupe, progress, the bounds of a job, recovery after a worker stops."""

from __future__ import annotations

import time
from datetime import timedelta
from urllib.parse import urlencode

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from netviz import jobs
from netviz.models import Job
from netviz.store import store_host, store_ruleset

pytestmark = pytest.mark.django_db

RULES = """*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -i eth0 -o eth1 -p tcp -m tcp --dport 80 -j ACCEPT
COMMIT
"""


@pytest.fixture
def fw():  # type: ignore[no-untyped-def]
    rs = store_ruleset(name="fw", source=RULES)
    store_host(name="two legs", ruleset=rs, routes=[],
               interfaces=[{"name": "eth0", "addrs": ["10.1.0.1/24"]},
                           {"name": "eth1", "addrs": ["10.2.0.1/24"]}])
    return rs


def _url(rs) -> str:  # type: ignore[no-untyped-def]
    query = urlencode({"proto": "tcp", "src": "10.1.0.5", "sport": "40000", "dst": "10.2.0.7",
                       "dport": "80", "tcp_flags": "S", "in_iface": "eth0", "ctstate": "NEW",
                       "host": str(rs.hosts.first().pk)})
    return reverse("netviz:trace_kernel", args=[rs.pk]) + "?" + query


def _signed_in(client: Client, name: str = "alice") -> User:
    user = User.objects.create_user(name, password="pw-long-enough-1")
    client.force_login(user)
    return user


def test_it_refuses_a_kernel_check_by_get(client: Client, fw) -> None:  # type: ignore[no-untyped-def]
    _signed_in(client)
    # An <img src> on another site must not make the server build namespaces.
    assert client.get(_url(fw)).status_code == 405
    assert not Job.objects.exists()


def test_it_refuses_a_kernel_check_for_anonymous_visitors(client: Client, fw) -> None:  # type: ignore[no-untyped-def]
    response = client.post(_url(fw), HTTP_HX_REQUEST="true")
    assert response.status_code == 403
    assert "Log in" in response.content.decode()
    assert not Job.objects.exists()


def test_a_setting_lets_anyone_check(client: Client, fw, settings) -> None:  # type: ignore[no-untyped-def]
    settings.NETVIZ_KERNEL_CHECKS = "anyone"
    response = client.post(_url(fw), HTTP_HX_REQUEST="true")
    assert response.status_code == 202
    job = Job.objects.get()
    # The anonymous submitter still sees their own job, and only they do.
    assert client.get(job.get_absolute_url()).status_code == 200
    assert Client().get(job.get_absolute_url()).status_code == 404


def test_the_kernel_check_is_a_job_on_the_kernel_queue(client: Client, fw) -> None:  # type: ignore[no-untyped-def]
    from django_tasks_db.models import DBTaskResult

    user = _signed_in(client)
    response = client.post(_url(fw), HTTP_HX_REQUEST="true")
    assert response.status_code == 202
    job = Job.objects.get()
    assert job.kind == "kernel_check" and job.owner == user and job.status == Job.QUEUED
    body = response.content.decode()
    # Not run in the web process: the page polls the job.
    assert f'hx-get="{job.get_absolute_url()}"' in body and 'hx-trigger="every 1s"' in body
    task = DBTaskResult.objects.get(pk=job.task_id)
    assert task.queue_name == "kernel" and task.args_kwargs["args"] == [job.pk]


def test_the_same_request_twice_gives_the_same_job(client: Client, fw) -> None:  # type: ignore[no-untyped-def]
    _signed_in(client)
    client.post(_url(fw), HTTP_HX_REQUEST="true")
    client.post(_url(fw), HTTP_HX_REQUEST="true")
    assert Job.objects.count() == 1
    # …and once it has finished, asking again is a new job.
    Job.objects.update(status=Job.DONE)
    client.post(_url(fw), HTTP_HX_REQUEST="true")
    assert Job.objects.count() == 2


def test_a_worker_runs_the_check_and_the_page_shows_it(client: Client, fw, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from netviz.kernel import check as kernel_check

    # Whatever this machine can do, the worker's answer is what the page shows.
    reason = "this process runs without CAP_NET_ADMIN"
    monkeypatch.setattr(kernel_check, "kernel_available", lambda: (False, reason))
    _signed_in(client)
    client.post(_url(fw), HTTP_HX_REQUEST="true")
    job = Job.objects.get()
    jobs.execute(job.pk, fork=False)
    job.refresh_from_db()
    assert job.status == Job.DONE and job.result["engine"]["verdict"] == "ACCEPT"
    body = client.get(job.get_absolute_url(), HTTP_HX_REQUEST="true").content.decode()
    assert "hx-trigger" not in body  # finished: no more polling
    assert "could not be asked here" in body and "CAP_NET_ADMIN" in body
    listing = client.get(reverse("netviz:job_list")).content.decode()
    assert job.get_absolute_url() in listing


def test_someone_elses_job_is_a_404(client: Client, fw) -> None:  # type: ignore[no-untyped-def]
    _signed_in(client)
    client.post(_url(fw), HTTP_HX_REQUEST="true")
    job = Job.objects.get()
    other = Client()
    _signed_in(other, "bob")
    assert other.get(job.get_absolute_url()).status_code == 404
    assert job.get_absolute_url() not in other.get(reverse("netviz:job_list")).content.decode()


def _hog() -> int:
    blocks = []
    while True:
        blocks.append(bytearray(50 * 1024 * 1024))


def _sleep() -> int:
    time.sleep(30)
    return 1


def _crash() -> int:
    import os
    import signal

    os.kill(os.getpid(), signal.SIGKILL)
    return 1


def test_a_job_is_bounded_in_memory_time_and_survives_a_crash() -> None:
    out = jobs.run_bounded(_hog, (), seconds=30, memory_mb=400)
    assert isinstance(out, jobs.Failure) and "out of memory" in out.reason
    out = jobs.run_bounded(_sleep, (), seconds=1, memory_mb=400)
    assert isinstance(out, jobs.Failure) and "longer than 1 s" in out.reason
    out = jobs.run_bounded(_crash, (), seconds=30, memory_mb=400)
    assert isinstance(out, jobs.Failure) and "SIGKILL" in out.reason
    assert jobs.run_bounded(sum, ([1, 2],), seconds=30, memory_mb=400) == 3


def test_a_job_left_by_a_stopped_worker_is_retried_then_failed(fw, settings) -> None:  # type: ignore[no-untyped-def]
    settings.NETVIZ_JOB_ATTEMPTS = 2
    job = jobs.submit("kernel_check", {"ruleset": fw.pk, "packet": {}}, title="t")
    long_ago = timezone.now() - timedelta(seconds=settings.NETVIZ_JOB_STALE_SECONDS + 5)
    Job.objects.filter(pk=job.pk).update(status=Job.RUNNING, heartbeat=long_ago, attempts=1,
                                         worker="w1:1")
    assert jobs.recover_stale() == [job.pk]
    job.refresh_from_db()
    assert job.status == Job.QUEUED and "w1:1 stopped" in job.stage
    Job.objects.filter(pk=job.pk).update(status=Job.RUNNING, heartbeat=long_ago, attempts=2)
    jobs.recover_stale()
    job.refresh_from_db()
    assert job.status == Job.FAILED and "stopped responding" in job.error and "2 attempts" in job.error
    # A job still beating is left alone.
    Job.objects.filter(pk=job.pk).update(status=Job.RUNNING, heartbeat=timezone.now())
    assert jobs.recover_stale() == []


BIG = """*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
""" + "".join(f"-A INPUT -s 10.0.{i // 250}.{i % 250}/32 -j ACCEPT\n" for i in range(300)) + "COMMIT\n"


def test_a_big_upload_is_a_job_with_progress(client: Client, settings) -> None:  # type: ignore[no-untyped-def]
    from netviz.models import Ruleset

    settings.NETVIZ_IMPORT_JOB_BYTES = 1000
    user = _signed_in(client)
    response = client.post(reverse("netviz:upload"), {"name": "big <one>", "dump_text": BIG})
    job = Job.objects.get(kind="import_dump")
    assert response.status_code == 302 and response["Location"] == job.get_absolute_url()
    assert not Ruleset.objects.exists()  # not stored in the request
    seen: list[tuple[str, int, int]] = []
    original = jobs._Reporter.__call__

    def spy(self, stage, done=None, total=None):  # type: ignore[no-untyped-def]
        seen.append((stage, done or 0, total or 0))
        original(self, stage, done, total)

    jobs._Reporter.__call__ = spy  # type: ignore[method-assign]
    try:
        jobs.execute(job.pk, fork=False)
    finally:
        jobs._Reporter.__call__ = original  # type: ignore[method-assign]
    job.refresh_from_db()
    rs = Ruleset.objects.get()
    assert job.status == Job.DONE and rs.owner == user and rs.rule_count == 300
    assert seen[0][0] == "parsing the dump"
    assert ("storing rules", 300, 300) in seen or seen[-1][1] == seen[-1][2] > 0
    page = client.get(job.get_absolute_url()).content.decode()
    assert rs.get_absolute_url() in page and "Uploaded 300 rules" in page
    assert "source" not in job.params  # the dump is not kept twice


def test_a_big_upload_that_does_not_parse_fails_with_the_line(client: Client, settings) -> None:  # type: ignore[no-untyped-def]
    settings.NETVIZ_IMPORT_JOB_BYTES = 1000
    _signed_in(client)
    client.post(reverse("netviz:upload"), {"name": "bad", "dump_text": BIG.replace("COMMIT\n", "-A NOPE -j X\nCOMMIT\n")})
    job = Job.objects.get(kind="import_dump")
    jobs.execute(job.pk, fork=False)
    job.refresh_from_db()
    assert job.status == Job.FAILED and "line 305" in job.error
    body = client.get(job.get_absolute_url()).content.decode()
    assert "The job failed" in body and "line 305" in body

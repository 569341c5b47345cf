"""Fleet pages: the demo fleet's matrix, a run by the workers with progress
and its diff, downloads, check set editing."""

from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from netviz import jobs
from netviz.fleet_jobs import refresh
from netviz.management.commands.load_demo import Command as LoadDemo
from netviz.models import CheckSet, Fleet, FleetRun, Job

pytestmark = pytest.mark.django_db

FLEET_DIR = Path(settings.BASE_DIR) / "fixtures" / "fleet"


@pytest.fixture
def demo() -> Fleet:
    LoadDemo().load_fleet(FLEET_DIR)
    return Fleet.objects.get(is_demo=True)


def _user(client: Client, name: str = "alice") -> User:
    user = User.objects.create_user(name, password="pw-long-enough-1")
    client.force_login(user)
    return user


def test_the_demo_fleet_shows_its_matrix(client: Client, demo: Fleet) -> None:
    run = demo.runs.get()
    body = client.get(run.get_absolute_url()).content.decode()
    assert body.count('<td class="cell-fail"') == 1 and body.count('<td class="cell-ok"') == 17
    assert "leaves for 10.96.0.10:53, not one of 10.244.0.5:53, 10.244.2.21:53" in body
    # Each cell links to its trace on that node's ruleset, with its host.
    node3 = demo.nodes.get(name="node-3")
    assert f'href="/rulesets/{node3.ruleset_id}/trace/?proto=udp&amp;src=10.244.0.7' in body
    assert f"host={node3.host_id}" in body
    assert "first finished run" in body
    listing = client.get(reverse("netviz:fleet_list")).content.decode()
    assert demo.get_absolute_url() in listing


def test_it_downloads_json_and_junit(client: Client, demo: Fleet) -> None:
    run = demo.runs.get()
    data = json.loads(client.get(reverse("netviz:fleet_run_json", args=[run.pk])).content)
    assert data["failed"] == 1 and data["passed"] == 17
    xml = client.get(reverse("netviz:fleet_run_junit", args=[run.pk])).content.decode()
    root = ET.fromstring(xml.split("\n", 1)[1])
    failed = root.findall("testsuite/testcase/failure/..")
    assert [(c.get("classname"), c.get("name")) for c in failed] == [("node-3", "DNS from a pod")]


def test_a_run_goes_to_the_workers_and_diffs_with_the_previous(client: Client, demo: Fleet) -> None:
    _user(client)
    checkset = CheckSet.objects.get(is_demo=True)
    url = reverse("netviz:fleet_run_start", args=[demo.pk])
    assert Client().post(url, {"checkset": checkset.pk}).status_code == 403  # anonymous
    # node-3 gets node-1's healthy ruleset: the change fixes DNS there.
    healthy = demo.nodes.get(name="node-1").ruleset
    demo.nodes.filter(name="node-3").update(ruleset=healthy)
    response = client.post(url, {"checkset": checkset.pk})
    run = FleetRun.objects.exclude(status="done").get()
    assert response.status_code == 302 and response["Location"] == run.get_absolute_url()
    # Asking again while it runs gives the same run.
    client.post(url, {"checkset": checkset.pk})
    assert FleetRun.objects.filter(status="running").count() == 1
    parts = Job.objects.filter(kind="fleet_part")
    assert parts.count() >= 1 and all(p.status == Job.QUEUED for p in parts)
    page = client.get(run.get_absolute_url(), HTTP_HX_REQUEST="true").content.decode()
    assert "0 of 18 checks done" in page and 'hx-trigger="every 1s"' in page
    for part in parts:
        jobs.execute(part.pk, fork=False)
    refresh(run)
    run.refresh_from_db()
    assert run.status == "done" and run.result["failed"] == 0
    page = client.get(run.get_absolute_url()).content.decode()
    assert "hx-trigger" not in page and "all hold" in page
    assert "fixed: node-3 · DNS from a pod — was fails (ACCEPT), now holds" in page


def test_check_sets_are_edited_by_their_owner_only(client: Client) -> None:
    owner = _user(client)
    bad = client.post(reverse("netviz:checkset_new"), {"text": '{"checks": []}'})
    assert "non-empty" in bad.content.decode()
    text = json.dumps({"name": "<script>x</script>", "checks": [
        {"name": "<b>ssh</b>", "expect": "ACCEPT",
         "packet": {"proto": "tcp", "src": "10.0.0.1", "dst": "$node", "dport": 22}}]})
    response = client.post(reverse("netviz:checkset_new"), {"text": text})
    checkset = CheckSet.objects.get()
    assert response.status_code == 302 and checkset.owner == owner and not checkset.is_public
    page = client.get(checkset.get_absolute_url()).content.decode()
    assert "<b>ssh</b>" not in page and "&lt;b&gt;ssh&lt;/b&gt;" in page
    assert "<script>x</script>" not in page
    other = Client()
    _user(other, "bob")
    assert other.get(checkset.get_absolute_url()).status_code == 404  # private
    CheckSet.objects.filter(pk=checkset.pk).update(is_public=True)
    assert "<form" not in other.get(checkset.get_absolute_url()).content.decode().split("</nav>")[-1]
    assert other.post(checkset.get_absolute_url(), {"text": text}).status_code == 403


def test_the_api_runs_a_check_set_with_a_token(demo: Fleet) -> None:
    from netviz.apitokens import create_token

    user = User.objects.create_user("ci", password="pw-long-enough-1")
    _, token = create_token(user, "ci")
    checkset = CheckSet.objects.get(is_demo=True)
    url = reverse("netviz:api_fleet_run", args=[demo.pk])
    api = Client(enforce_csrf_checks=True)
    assert api.post(url, {"checkset": checkset.pk}).status_code == 401
    assert api.post(url, {"checkset": checkset.pk},
                    HTTP_AUTHORIZATION="Bearer nvz_wrong").status_code == 401
    response = api.post(url, {"checkset": checkset.pk}, HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 202
    started = response.json()
    assert started["status"] == "running" and started["exit"] is None and started["total"] == 18
    for part in Job.objects.filter(kind="fleet_part"):
        jobs.execute(part.pk, fork=False)
    status = api.get(reverse("netviz:api_fleet_run_status", args=[started["run"]]),
                     HTTP_AUTHORIZATION=f"Bearer {token}").json()
    # The same answer as check_fleet: exit 1, naming the node and the check.
    assert status["status"] == "done" and status["exit"] == 1
    assert status["failures"] == ["FAIL node-3: DNS from a pod — leaves for 10.96.0.10:53, "
                                  "not one of 10.244.0.5:53, 10.244.2.21:53"]
    # A private fleet of someone else is not there for this token.
    Fleet.objects.filter(pk=demo.pk).update(is_public=False)
    assert api.post(url, {"checkset": checkset.pk},
                    HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 404


def test_the_owner_adds_and_removes_nodes(client: Client) -> None:
    from netviz.store import store_ruleset

    owner = _user(client)
    a = store_ruleset(name="node a", source="*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n", owner=owner)
    b = store_ruleset(name="node b", source="*filter\n:INPUT DROP [0:0]\nCOMMIT\n", owner=owner)
    client.post(reverse("netviz:fleet_list"), {"name": "mine", "rulesets": [a.pk]})
    fleet = Fleet.objects.get(name="mine")
    assert fleet.owner == owner and not fleet.is_public
    client.post(fleet.get_absolute_url(), {"rulesets": [b.pk]})
    assert list(fleet.nodes.values_list("name", flat=True)) == ["node a", "node b"]
    other = Client()
    _user(other, "bob")
    assert other.get(fleet.get_absolute_url()).status_code == 404  # private
    Fleet.objects.filter(pk=fleet.pk).update(is_public=True)
    assert other.post(fleet.get_absolute_url(), {"remove": fleet.nodes.first().pk}).status_code == 403
    client.post(fleet.get_absolute_url(), {"remove": fleet.nodes.get(name="node a").pk})
    assert list(fleet.nodes.values_list("name", flat=True)) == ["node b"]

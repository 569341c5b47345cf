"""Lessons: the shipped ones, authoring (add, reorder, edit, delete), the
read-only share link and the presenter page."""

from __future__ import annotations

import re

import pytest
from django.core.management import call_command
from django.test import Client

from netviz import models


@pytest.fixture
def shipped(db: None) -> list[models.Lesson]:
    call_command("load_lessons", stdout=open("/dev/null", "w"))  # noqa: SIM115
    return list(models.Lesson.objects.order_by("slug"))


@pytest.fixture
def lesson(client: Client, shipped: list[models.Lesson]) -> models.Lesson:
    """An anonymous trainer's lesson with three comparison steps, made in
    `client`'s browser (the only one that may edit it)."""
    client.post("/lessons/new/", {"title": "My class", "description": ""})
    mine = models.Lesson.objects.get(title="My class")
    for n, c in enumerate(models.Comparison.objects.filter(is_demo=True).order_by("slug")[:3]):
        models.LessonStep.objects.create(lesson=mine, position=n, title=f"step {c.slug}", comparison=c)
    return mine


def titles(lesson: models.Lesson) -> list[str]:
    return [s.title for s in lesson.steps.order_by("position", "pk")]


def test_it_ships_five_lessons_of_real_scenarios(shipped: list[models.Lesson]) -> None:
    assert [lesson.slug for lesson in shipped] == [
        "01-netfilter-flow", "02-conntrack-nat-new", "03-kube-proxy-services",
        "04-docker-publish", "05-calico-natoutgoing",
    ]
    for lesson in shipped:
        for step in lesson.steps.all():
            # Inputs only, never a stored result.
            assert step.scenario is not None or step.comparison is not None
            if step.scenario and "left" not in step.scenario:
                assert "\n" in step.scenario["ruleset"] and "hops" not in step.scenario


def test_it_loads_idempotently(shipped: list[models.Lesson]) -> None:
    call_command("load_lessons", stdout=open("/dev/null", "w"))  # noqa: SIM115
    assert models.Lesson.objects.count() == 5
    assert models.LessonStep.objects.count() == sum(len(titles(lesson)) for lesson in shipped)
    assert models.Comparison.objects.filter(is_demo=True).count() == 4


def test_it_lists_lessons_and_creates_one(client: Client, shipped: list[models.Lesson]) -> None:
    body = client.get("/lessons/").content.decode()
    assert "The netfilter flow: three paths" in body and "Calico natOutgoing" in body
    response = client.post("/lessons/new/", {"title": "Firewalls 101", "description": ""})
    assert response.status_code == 302
    created = models.Lesson.objects.get(title="Firewalls 101")
    assert created.owner is None and created.is_public and created.slug == ""
    assert client.post("/lessons/new/", {"title": ""}).status_code == 400


@pytest.mark.parametrize("slug", [
    "01-netfilter-flow", "02-conntrack-nat-new", "03-kube-proxy-services",
    "04-docker-publish", "05-calico-natoutgoing",
])
def test_it_presents_every_step_of_the_shipped_lessons(client: Client, shipped: list[models.Lesson],
                                                         slug: str) -> None:
    lesson = next(lesson for lesson in shipped if lesson.slug == slug)
    total = lesson.steps.count()
    for n in range(1, total + 1):
        response = client.get(f"/lessons/{lesson.pk}/present/{n}/")
        assert response.status_code == 200
        body = response.content.decode()
        assert "error-box" not in body, body[body.find("error-box") - 200:][:600]
        frames = re.findall(r'<li class="frame[^"]*" id="frame-\d+" data-index="\d+"([^>]*)>', body)
        assert frames, f"{slug} step {n} has no hops to step through"
        # Every node a frame lights exists in a flow SVG of the page.
        nodes = set(re.findall(r'data-node-\w+="([^"]+)"', body))
        svg_ids = {i.replace("&#45;", "-") for i in re.findall(r'<g id="([^"]+)" class="', body)}
        assert nodes and nodes <= svg_ids, nodes - svg_ids
        assert ('data-next-url=""' in body) == (n == total)


def test_it_explains_the_natoutgoing_step(client: Client, shipped: list[models.Lesson]) -> None:
    lesson = next(lesson for lesson in shipped if lesson.slug == "05-calico-natoutgoing")
    body = client.get(f"/lessons/{lesson.pk}/present/1/").content.decode()
    assert "What source address leaves eth0?" in body
    assert "rewrote the source 10.244.0.10 → 10.240.0.4" in body
    assert body.count('class="pr-flow"') == 2
    # The result and the answer wait for the trainer.
    assert re.search(r'<section class="pr-summary" id="result" hidden>', body)
    assert re.search(r'<p id="answer" class="pr-answer" hidden>', body)


def test_it_adds_a_comparison_to_a_new_lesson(client: Client, shipped: list[models.Lesson]) -> None:
    c = models.Comparison.objects.get(slug="calico-natoutgoing/pod-to-internet")
    response = client.post("/lessons/add-step/", {"comparison": c.pk, "lesson": ""})
    assert response.status_code == 302
    new = models.Lesson.objects.exclude(slug__gt="").get()
    assert [s.comparison_id for s in new.steps.all()] == [c.pk]
    assert client.post("/lessons/add-step/", {}).status_code == 400


def test_it_adds_a_saved_trace_to_a_lesson(client: Client, lesson: models.Lesson,
                                           calico_ruleset: models.Ruleset) -> None:
    saved = models.SavedTrace.objects.create(
        title="pod egress", ruleset=calico_ruleset,
        packet={"proto": "tcp", "src": "10.244.0.10", "sport": 43210, "dst": "93.184.216.34",
                "dport": 443, "in_iface": "cali112d888c0c2"},
        options={"host": {"interfaces": [{"name": "eth0", "addrs": ["10.240.0.4/16"]},
                                         {"name": "cali112d888c0c2", "addrs": []}],
                          "routes": ["default via 10.240.0.1 dev eth0",
                                     "10.244.0.10 dev cali112d888c0c2 scope link"]}},
    )
    client.post("/lessons/add-step/", {"saved_trace": saved.pk, "lesson": lesson.pk})
    step = lesson.steps.order_by("-position").first()
    assert step is not None and step.saved_trace_id == saved.pk and step.position == 3
    body = client.get(f"/lessons/{lesson.pk}/present/4/").content.decode()
    assert "error-box" not in body
    assert "cali-nat-outgoing" in body and "10.240.0.4" in body


def test_it_reorders_steps_with_htmx(client: Client, lesson: models.Lesson) -> None:
    before = titles(lesson)
    second = lesson.steps.order_by("position")[1]
    response = client.post(f"/lessons/{lesson.pk}/steps/{second.pk}/move/", {"direction": "up"},
                           HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    body = response.content.decode()
    assert body.lstrip().startswith('<section id="steps"')
    assert f'data-focus="move-up-{second.pk}"' in body
    assert titles(lesson) == [before[1], before[0], before[2]]
    # Without htmx: a redirect back to the lesson (works without JavaScript).
    response = client.post(f"/lessons/{lesson.pk}/steps/{second.pk}/move/", {"direction": "down"})
    assert response.status_code == 302
    assert titles(lesson) == before
    last = lesson.steps.order_by("position").last()
    assert last is not None
    client.post(f"/lessons/{lesson.pk}/steps/{last.pk}/move/", {"direction": "down"})
    assert titles(lesson) == before  # the last step cannot go further down
    assert client.post(f"/lessons/{lesson.pk}/steps/{last.pk}/move/", {"direction": "left"}).status_code == 400


def test_it_edits_notes_and_questions_escaped(client: Client, lesson: models.Lesson) -> None:
    step = lesson.steps.order_by("position").first()
    assert step is not None
    response = client.post(f"/lessons/{lesson.pk}/steps/{step.pk}/edit/", {
        f"s{step.pk}-title": "Egress", f"s{step.pk}-notes": "<script>alert(1)</script>",
        f"s{step.pk}-question": "Which table drops it?", f"s{step.pk}-answer": "filter",
    }, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    step.refresh_from_db()
    assert (step.title, step.question, step.answer) == ("Egress", "Which table drops it?", "filter")
    page = client.get(f"/lessons/{lesson.pk}/").content.decode()
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    presenter = client.get(f"/lessons/{lesson.pk}/present/1/").content.decode()
    assert "Which table drops it?" in presenter and "&lt;script&gt;" in presenter


def test_it_deletes_a_step(client: Client, lesson: models.Lesson) -> None:
    step = lesson.steps.order_by("position").first()
    assert step is not None
    client.post(f"/lessons/{lesson.pk}/steps/{step.pk}/delete/")
    assert lesson.steps.count() == 2


def test_it_shares_a_read_only_link(client: Client, lesson: models.Lesson) -> None:
    step = lesson.steps.order_by("position").first()
    assert step is not None
    step.notes = "trainer only"
    step.question = "What leaves eth0?"
    step.save()
    body = client.get(f"/lessons/s/{lesson.share_token}/").content.decode()
    assert "My class" in body and "What leaves eth0?" in body
    assert "move-up" not in body and "Add a step" not in body and "trainer only" not in body
    present = client.get(f"/lessons/s/{lesson.share_token}/present/1/").content.decode()
    assert "trainer only" not in present
    assert f"/lessons/s/{lesson.share_token}/present/2/" in present


def test_it_keeps_shipped_and_foreign_lessons_read_only(client: Client, shipped: list[models.Lesson],
                                                      django_user_model: type) -> None:
    lesson = shipped[0]
    step = lesson.steps.first()
    assert step is not None
    assert client.post(f"/lessons/{lesson.pk}/steps/{step.pk}/move/", {"direction": "down"}).status_code == 404
    assert "move-up" not in client.get(f"/lessons/{lesson.pk}/").content.decode()
    owner = django_user_model.objects.create_user("bob", password="x")
    private = models.Lesson.objects.create(title="Bob's", owner=owner, is_public=False)
    assert client.get(f"/lessons/{private.pk}/").status_code == 404
    assert client.get(f"/lessons/s/{private.share_token}/").status_code == 200
    client.force_login(owner)
    assert client.get(f"/lessons/{private.pk}/").status_code == 200
    assert client.post(f"/lessons/{private.pk}/edit/", {"title": "Bob's 2"}).status_code == 302
    private.refresh_from_db()
    assert private.title == "Bob's 2"

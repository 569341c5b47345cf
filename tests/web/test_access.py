"""Privacy: a stranger gets 404 from every page drawn from someone's private
ruleset, trace, comparison or lesson; the owner's read-only share link opens
them (without edit controls) until it is revoked."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import pytest
from django.core.management import call_command
from django.http import QueryDict
from django.test import Client
from django.urls import reverse
from webdumps import demo_text

from netviz import models, store
from netviz.engine.trace import StepKind
from netviz.web.pages_traces import run_trace

pytestmark = pytest.mark.django_db

HOST = json.loads(demo_text("docker-host", "host.json") or "{}")
# docker run -p 10080:80: the published port, from outside.
PACKET = {
    "proto": "tcp", "src": "198.51.100.7", "sport": "40000", "dst": "10.0.3.121",
    "dport": "10080", "tcp_flags": "S", "in_iface": "enp0s8", "mark": "0x0",
    "ctstate": "NEW", "seed": "0",
}
SPEC = "tcp 198.51.100.7:40000 > 10.0.3.121:10080 in enp0s8"
NAME = "alice-secret-docker"


@pytest.fixture
def eve(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user("eve", password="pw-eve-123")


@pytest.fixture
def private(alice: Any) -> models.Ruleset:
    rs = store.store_ruleset(name=NAME, source=demo_text("docker-host"), owner=alice)
    store.store_host(name="alice host", interfaces=HOST["interfaces"], routes=HOST["routes"],
                     ruleset=rs, owner=alice)
    assert not rs.is_public
    return rs


def as_user(user: Any) -> Client:
    c = Client()
    c.force_login(user)
    return c


def query(rs: models.Ruleset) -> str:
    return urlencode({**PACKET, "host": str(rs.hosts.get().pk)})


def first_rule_step(rs: models.Ruleset) -> int:
    trace = run_trace(QueryDict(query(rs)), rs).trace
    assert trace is not None
    return next(i for i, step in enumerate(trace.steps) if step.kind is StepKind.RULE)


def ruleset_urls(rs: models.Ruleset) -> list[str]:
    chain = models.Chain.objects.get(table__ruleset=rs, table__name="nat", name="DOCKER")
    q = query(rs)
    return [
        reverse("netviz:ruleset", args=[rs.pk]),
        reverse("netviz:ruleset", args=[rs.pk]) + "?q=DNAT",
        reverse("netviz:ruleset_chain", args=[rs.pk, "nat", "DOCKER"]),
        reverse("netviz:ruleset_chain_rules", args=[rs.pk, chain.pk]),
        reverse("netviz:ruleset_callgraph", args=[rs.pk]),
        reverse("netviz:ruleset_callgraph_svg", args=[rs.pk]),
        reverse("netviz:ruleset_callgraph_dot", args=[rs.pk]),
        reverse("netviz:ruleset_source", args=[rs.pk]),
        reverse("netviz:trace", args=[rs.pk]) + "?" + q,
        reverse("netviz:trace_step", args=[rs.pk, first_rule_step(rs)]) + "?" + q,
        reverse("netviz:trace_flow", args=[rs.pk, "svg"]) + "?" + q,
        reverse("netviz:trace_flow", args=[rs.pk, "dot"]) + "?" + q,
        reverse("netviz:trace_chain", args=[rs.pk, "svg"]) + "?" + q + "&table=nat&chain=PREROUTING",
        reverse("netviz:trace_json", args=[rs.pk]) + "?" + q,
        reverse("netviz:trace_text", args=[rs.pk]) + "?" + q,
        reverse("netviz:trace_scenario", args=[rs.pk]) + "?" + q,
    ]


def status(client: Client, url: str) -> int:
    response = client.get(url)
    if response.status_code == 302 and ("/step/" in url or "/chain/" in url):
        # A step detail or a chain's stable link redirects to the page holding it.
        return status(client, response["Location"])
    return int(response.status_code)


def test_it_hides_every_ruleset_page_from_a_stranger(private: models.Ruleset, eve: Any, alice: Any) -> None:
    for client in (Client(), as_user(eve)):
        for url in ruleset_urls(private):
            assert status(client, url) == 404, url
        assert client.post(reverse("netviz:trace_kernel", args=[private.pk]) + "?" + query(private)).status_code == 404
        assert client.post(reverse("netviz:trace_save", args=[private.pk]),
                           {"query": query(private)}).status_code == 404
    owner = as_user(alice)
    for url in ruleset_urls(private):
        assert status(owner, url) == 200, url


def test_staff_see_private_rulesets(private: models.Ruleset, django_user_model: Any) -> None:
    staff = django_user_model.objects.create_user("sam", password="x", is_staff=True)
    client = as_user(staff)
    for url in ruleset_urls(private)[:8]:
        assert status(client, url) == 200, url


def test_a_share_link_opens_every_ruleset_page_read_only(private: models.Ruleset, eve: Any) -> None:
    link = reverse("netviz:share", args=["r", private.share_token])
    assert link == f"/s/r/{private.share_token}/"
    client = as_user(eve)
    response = client.get(link)
    assert response.status_code == 302 and response["Location"] == reverse("netviz:ruleset", args=[private.pk])
    for url in ruleset_urls(private):
        assert status(client, url) == 200, url
    page = client.get(reverse("netviz:ruleset", args=[private.pk])).content.decode()
    assert NAME in page and "Revoke link" not in page and 'id="share-url"' not in page
    trace_page = client.get(reverse("netviz:trace", args=[private.pk]) + "?" + query(private)).content.decode()
    assert "DNAT" in trace_page and "Save trace" not in trace_page
    # Read-only: a holder of the link cannot keep a copy.
    assert client.post(reverse("netviz:trace_save", args=[private.pk]),
                       {"query": query(private)}).status_code == 404
    assert not models.SavedTrace.objects.exists()
    # A client without cookies can use ?share=.
    assert Client().get(reverse("netviz:ruleset_source", args=[private.pk]),
                        {"share": private.share_token}).status_code == 200
    assert Client().get(reverse("netviz:ruleset_source", args=[private.pk]),
                        {"share": "wrong"}).status_code == 404


def test_the_owner_sees_share_and_revoke_and_revoking_ends_the_link(
    private: models.Ruleset, alice: Any, eve: Any
) -> None:
    owner = as_user(alice)
    page = owner.get(reverse("netviz:ruleset", args=[private.pk])).content.decode()
    assert f"http://testserver/s/r/{private.share_token}/" in page and "Revoke link" in page
    holder = as_user(eve)
    old = private.share_token
    holder.get(f"/s/r/{old}/")
    assert holder.get(reverse("netviz:ruleset_source", args=[private.pk])).status_code == 200
    # Only the owner may revoke.
    revoke = reverse("netviz:share_revoke", args=["r", private.pk])
    assert holder.post(revoke).status_code == 404
    response = owner.post(revoke)
    assert response.status_code == 302
    private.refresh_from_db()
    assert private.share_token != old
    for url in ruleset_urls(private):
        assert status(holder, url) == 404, url
    assert holder.get(f"/s/r/{old}/").status_code == 404
    assert holder.get(f"/s/r/{private.share_token}/").status_code == 302


def test_lists_show_only_what_the_user_may_see(private: models.Ruleset, alice: Any, eve: Any) -> None:
    models.SavedTrace.objects.create(ruleset=private, title="alice-trace", packet=PACKET, owner=alice,
                                     is_public=False)
    models.Lesson.objects.create(title="alice-lesson", owner=alice, is_public=False)
    for client in (Client(), as_user(eve)):
        for url in ("/", "/rulesets/", "/lessons/", "/compare/", "/diff/", "/traces/import/"):
            body = client.get(url).content.decode()
            assert NAME not in body and "alice-trace" not in body and "alice-lesson" not in body, url
    owner = as_user(alice)
    assert NAME in owner.get("/rulesets/").content.decode()
    assert "alice-trace" in owner.get("/").content.decode()
    assert "alice-lesson" in owner.get("/lessons/").content.decode()
    assert NAME in owner.get("/compare/").content.decode()


def test_compare_diff_and_import_refuse_a_strangers_ruleset(private: models.Ruleset, eve: Any) -> None:
    public = store.store_ruleset(name="public docker", source=demo_text("docker-host"))
    store.store_host(name="public host", interfaces=HOST["interfaces"], routes=HOST["routes"], ruleset=public)
    client = as_user(eve)
    cmp = urlencode({"left": private.pk, "right": public.pk, "packet": SPEC})
    page = client.get("/compare/?" + cmp).content.decode()
    assert "Select a valid choice" in page and NAME not in page
    assert client.get("/compare/comparison.json?" + cmp).status_code == 400
    diff = urlencode({"left": private.pk, "right": public.pk})
    page = client.get("/diff/?" + diff).content.decode()
    assert "Select a valid choice" in page and NAME not in page
    assert client.get("/diff/unified.diff?" + diff).status_code == 400
    page = client.post("/traces/import/", {"text": "x", "ruleset": private.pk}).content.decode()
    assert "Select a valid choice" in page and NAME not in page
    # With the share link, comparing and diffing are reading: they work, saving does not.
    client.get(f"/s/r/{private.share_token}/")
    assert json.loads(client.get("/compare/comparison.json?" + cmp).content)["left"]["ruleset"] == NAME
    assert "Save comparison" not in client.get("/compare/?" + cmp).content.decode()
    assert client.post("/compare/save/", {"query": cmp}).status_code == 404
    assert NAME in client.get("/diff/unified.diff?" + diff).content.decode()


def test_a_private_saved_trace_and_its_share_link(private: models.Ruleset, alice: Any, eve: Any) -> None:
    owner = as_user(alice)
    response = owner.post(reverse("netviz:trace_save", args=[private.pk]),
                          {"query": query(private), "title": "alice-trace"})
    assert response.status_code == 302
    saved = models.SavedTrace.objects.get(title="alice-trace")
    assert saved.owner == alice and not saved.is_public
    url = reverse("netviz:saved_trace", args=[saved.pk])
    assert Client().get(url).status_code == 404 and as_user(eve).get(url).status_code == 404
    page = owner.get(url).content.decode()
    assert f"/s/t/{saved.share_token}/" in page and "Revoke link" in page and "Add to a new lesson" in page

    holder = as_user(eve)
    assert holder.get(f"/s/t/{saved.share_token}/")["Location"] == url
    page = holder.get(url).content.decode()
    assert "alice-trace" in page and "Revoke link" not in page and "Add to a new lesson" not in page
    # The trace page draws from its ruleset: the chain graph and downloads work for the holder.
    for derived in ruleset_urls(private)[10:]:
        assert status(holder, derived) == 200, derived
    # … but the holder cannot put someone else's trace into a lesson of their own.
    assert holder.post("/lessons/add-step/", {"saved_trace": saved.pk, "lesson": ""}).status_code == 404
    owner.post(reverse("netviz:share_revoke", args=["t", saved.pk]))
    assert holder.get(url).status_code == 404
    assert status(holder, ruleset_urls(private)[-1]) == 404


@pytest.fixture
def private_comparison(private: models.Ruleset, alice: Any) -> models.Comparison:
    owner = as_user(alice)
    cmp = urlencode({"left": private.pk, "packet": SPEC, "packet2": "tcp 198.51.100.7:40000 > 10.0.3.121:22 in enp0s8"})
    response = owner.post("/compare/save/", {"query": cmp, "title": "alice-cmp"})
    assert response.status_code == 302
    saved = models.Comparison.objects.get(title="alice-cmp")
    assert saved.owner == alice and not saved.is_public
    return saved


def test_a_private_comparison_and_its_share_link(
    private_comparison: models.Comparison, private: models.Ruleset, alice: Any, eve: Any
) -> None:
    saved = private_comparison
    urls = [reverse("netviz:comparison", args=[saved.pk]), reverse("netviz:comparison_json", args=[saved.pk])]
    for client in (Client(), as_user(eve)):
        for url in urls:
            assert client.get(url).status_code == 404, url
    page = as_user(alice).get(urls[0]).content.decode()
    assert f"/s/c/{saved.share_token}/" in page and "Revoke link" in page and "Add to lesson" in page
    holder = as_user(eve)
    page = holder.get(f"/s/c/{saved.share_token}/").content.decode()
    assert "alice-cmp" in page and "Add to lesson" not in page and "Revoke link" not in page
    for url in urls:
        assert holder.get(url).status_code == 200, url
    assert "Add to lesson" not in holder.get(urls[0]).content.decode()
    # The old link form keeps working.
    assert Client().get(f"/comparisons/s/{saved.share_token}/").status_code == 200
    # Its rulesets' pages work for the holder while the link is valid.
    assert holder.get(reverse("netviz:ruleset", args=[private.pk])).status_code == 200
    as_user(alice).post(reverse("netviz:share_revoke", args=["c", saved.pk]))
    for url in urls:
        assert holder.get(url).status_code == 404, url
    assert holder.get(reverse("netviz:ruleset", args=[private.pk])).status_code == 404


def test_a_private_lesson_and_its_share_link(
    private_comparison: models.Comparison, private: models.Ruleset, alice: Any, eve: Any
) -> None:
    owner = as_user(alice)
    response = owner.post("/lessons/add-step/", {"comparison": private_comparison.pk, "lesson": "",
                                                 "title": "alice-lesson"})
    assert response.status_code == 302
    lesson = models.Lesson.objects.get(title="alice-lesson")
    assert lesson.owner == alice and not lesson.is_public
    step = lesson.steps.get()
    step.notes = "trainer-only-notes"
    step.save()
    urls = [reverse("netviz:lesson", args=[lesson.pk]), reverse("netviz:lesson_present", args=[lesson.pk, 1])]
    for client in (Client(), as_user(eve)):
        for url in urls:
            assert client.get(url).status_code == 404, url
        assert client.post(reverse("netviz:lesson_edit", args=[lesson.pk]), {"title": "x"}).status_code == 404
    page = owner.get(urls[0]).content.decode()
    assert f"/s/l/{lesson.share_token}/" in page and "Revoke link" in page and "Add a step" in page
    holder = as_user(eve)
    page = holder.get(f"/s/l/{lesson.share_token}/").content.decode()
    assert "alice-lesson" in page and "Add a step" not in page and "Revoke link" not in page
    assert "trainer-only-notes" not in page and "move-up" not in page
    present = holder.get(f"/lessons/s/{lesson.share_token}/present/1/").content.decode()
    assert "trainer-only-notes" not in present and "cmp-differs" in present
    for url in urls:
        assert holder.get(url).status_code == 200, url
    # Read-only: the holder's POSTs to the lesson are refused.
    assert holder.post(reverse("netviz:lesson_edit", args=[lesson.pk]), {"title": "x"}).status_code == 404
    assert holder.post(reverse("netviz:lesson_step_delete", args=[lesson.pk, step.pk])).status_code == 404
    assert lesson.steps.count() == 1
    # The lesson steps into the comparison and its ruleset: readable through the lesson's link.
    assert holder.get(reverse("netviz:comparison", args=[private_comparison.pk])).status_code == 200
    assert holder.get(reverse("netviz:ruleset", args=[private.pk])).status_code == 200
    owner.post(reverse("netviz:share_revoke", args=["l", lesson.pk]))
    for url in urls:
        assert holder.get(url).status_code == 404, url
    assert holder.get(reverse("netviz:comparison", args=[private_comparison.pk])).status_code == 404
    lesson.refresh_from_db()
    assert holder.get(f"/lessons/s/{lesson.share_token}/").status_code == 200  # the new token


def test_unknown_share_links_are_404(db: None) -> None:
    client = Client()
    for kind in ("r", "t", "c", "l"):
        assert client.get(f"/s/{kind}/nope/").status_code == 404
    assert client.get("/s/x/nope/").status_code == 404


def test_shipped_lessons_stay_public(db: None) -> None:
    call_command("load_lessons", stdout=open("/dev/null", "w"))  # noqa: SIM115
    lesson = models.Lesson.objects.order_by("slug").first()
    assert lesson is not None
    assert Client().get(reverse("netviz:lesson", args=[lesson.pk])).status_code == 200
    assert Client().get(reverse("netviz:lesson_present", args=[lesson.pk, 1])).status_code == 200


def _tokens_of(owner: Any) -> set[str]:
    out: set[str] = set()
    for model in (models.Ruleset, models.SavedTrace, models.Comparison, models.Lesson, models.HostProfile):
        out.update(model.objects.filter(owner=owner).values_list("share_token", flat=True))
    return out


@pytest.fixture
def private_lesson(private_comparison: models.Comparison, alice: Any) -> models.Lesson:
    as_user(alice).post("/lessons/add-step/", {"comparison": private_comparison.pk, "lesson": "",
                                               "title": "alice-lesson"})
    return models.Lesson.objects.get(title="alice-lesson")


def _pages_of(lesson: models.Lesson, cmp: models.Comparison, rs: models.Ruleset) -> list[str]:
    return [
        f"/s/l/{lesson.share_token}/", f"/lessons/s/{lesson.share_token}/",
        reverse("netviz:lesson", args=[lesson.pk]), reverse("netviz:lesson_present", args=[lesson.pk, 1]),
        f"/lessons/s/{lesson.share_token}/present/1/",
        reverse("netviz:comparison", args=[cmp.pk]), reverse("netviz:comparison_json", args=[cmp.pk]),
        *ruleset_urls(rs),
    ]


def test_a_lesson_link_holder_is_never_handed_another_token(
    private_lesson: models.Lesson, private_comparison: models.Comparison, private: models.Ruleset,
    alice: Any, eve: Any,
) -> None:
    # Issue 12: compare_saved.html wrote the comparison's own token into the
    # page, which outlived a revoked lesson link.
    others = _tokens_of(alice) - {private_lesson.share_token}
    for client in (as_user(eve), Client()):
        for url in _pages_of(private_lesson, private_comparison, private):
            response = client.get(url)
            if response.status_code == 302:
                response = client.get(response["Location"])
            assert response.status_code == 200, url
            body = response.content.decode()
            leaked = [t for t in others if t in body]
            assert not leaked, url


def test_a_revoked_lesson_link_reaches_no_comparison_ruleset_or_dump(
    private_lesson: models.Lesson, private_comparison: models.Comparison, private: models.Ruleset,
    alice: Any, eve: Any,
) -> None:
    holder = as_user(eve)
    holder.get(f"/s/l/{private_lesson.share_token}/")
    # What the holder can harvest while the link is valid (the report's attack).
    seen = "".join(holder.get(url).content.decode() for url in _pages_of(
        private_lesson, private_comparison, private)[2:7])
    harvested = [t for t in _tokens_of(alice) if t in seen and t != private_lesson.share_token]
    as_user(alice).post(reverse("netviz:share_revoke", args=["l", private_lesson.pk]))
    for token in harvested:
        for url in (reverse("netviz:comparison_json", args=[private_comparison.pk]),
                    reverse("netviz:ruleset_source", args=[private.pk])):
            assert holder.get(url, {"share": token}).status_code == 404, url
    for url in [
        reverse("netviz:comparison", args=[private_comparison.pk]),
        reverse("netviz:comparison_json", args=[private_comparison.pk]),
        reverse("netviz:ruleset", args=[private.pk]),
        reverse("netviz:ruleset_source", args=[private.pk]),
        *ruleset_urls(private),
    ]:
        assert status(holder, url) == 404, url


def test_a_public_lesson_hands_its_readers_no_token(
    private_lesson: models.Lesson, private_comparison: models.Comparison, alice: Any, eve: Any
) -> None:
    # Made public without its link: its readers get the lesson, and never a
    # token that would open the private comparison behind its steps.
    models.Lesson.objects.filter(pk=private_lesson.pk).update(is_public=True)
    tokens = _tokens_of(alice)
    for client in (as_user(eve), Client()):
        for url in (reverse("netviz:lesson", args=[private_lesson.pk]),
                    reverse("netviz:lesson_present", args=[private_lesson.pk, 1])):
            response = client.get(url)
            assert response.status_code == 200, url
            body = response.content.decode()
            assert not [t for t in tokens if t in body], url
        assert client.get(reverse("netviz:comparison", args=[private_comparison.pk])).status_code == 404


def test_a_share_link_holder_cannot_keep_a_private_host_profile(private: models.Ruleset, eve: Any) -> None:
    # compare_save checked the rulesets, not lhost/rhost (issue 12).
    public = store.store_ruleset(name="public docker", source=demo_text("docker-host"))
    store.store_host(name="public host", interfaces=HOST["interfaces"], routes=HOST["routes"], ruleset=public)
    secret_host = private.hosts.get()
    holder = as_user(eve)
    holder.get(f"/s/r/{private.share_token}/")
    for field in ("lhost", "rhost"):
        cmp = urlencode({"left": public.pk, "right": public.pk, field: secret_host.pk, "packet": SPEC})
        # Reading with it works while the link is valid …
        assert holder.get("/compare/comparison.json?" + cmp).status_code == 200
        assert "Save comparison" not in holder.get("/compare/?" + cmp).content.decode()
        # … keeping a copy does not.
        assert holder.post("/compare/save/", {"query": cmp}).status_code == 404, field
    assert not models.Comparison.objects.exists()
    # Her own and public hosts still save.
    own = store.store_host(name="eve host", interfaces=HOST["interfaces"], routes=HOST["routes"], owner=eve)
    cmp = urlencode({"left": public.pk, "lhost": own.pk, "packet": SPEC})
    assert holder.post("/compare/save/", {"query": cmp}).status_code == 302


def _edit_posts(lesson: models.Lesson) -> list[tuple[str, dict[str, str]]]:
    step = lesson.steps.order_by("position").first()
    assert step is not None
    return [
        (reverse("netviz:lesson_edit", args=[lesson.pk]), {"title": "retitled"}),
        (f"/lessons/{lesson.pk}/steps/{step.pk}/edit/", {f"s{step.pk}-title": "x", f"s{step.pk}-notes": "x"}),
        (f"/lessons/{lesson.pk}/steps/{step.pk}/move/", {"direction": "down"}),
        (reverse("netviz:lesson_step_delete", args=[lesson.pk, step.pk]), {}),
    ]


@pytest.fixture
def anonymous_lesson(private: models.Ruleset) -> tuple[Client, models.Lesson]:
    """A lesson made without an account, by one browser."""
    public = store.store_ruleset(name="public docker", source=demo_text("docker-host"))
    author = Client()
    author.post("/compare/save/", {"query": urlencode({"left": public.pk, "packet": SPEC}), "title": "anon-cmp"})
    cmp = models.Comparison.objects.get(title="anon-cmp")
    assert author.post("/lessons/add-step/", {"comparison": cmp.pk, "lesson": "", "title": "anon-lesson"}
                       ).status_code == 302
    author.post("/lessons/add-step/", {"comparison": cmp.pk,
                                       "lesson": models.Lesson.objects.get(title="anon-lesson").pk})
    lesson = models.Lesson.objects.get(title="anon-lesson")
    assert lesson.owner is None and lesson.is_public and lesson.steps.count() == 2
    return author, lesson


def test_a_lesson_made_without_an_account_is_read_only_for_everyone_else(
    anonymous_lesson: tuple[Client, models.Lesson], alice: Any, eve: Any
) -> None:
    author, lesson = anonymous_lesson
    cmp = models.Comparison.objects.get(title="anon-cmp")
    for client in (Client(), as_user(eve)):
        page = client.get(reverse("netviz:lesson", args=[lesson.pk])).content.decode()
        assert page.count("anon-lesson") and "move-up" not in page and "Add a step" not in page
        assert reverse("netviz:lesson_edit", args=[lesson.pk]) not in page
        for url, data in _edit_posts(lesson):
            assert client.post(url, data).status_code == 404, url
        assert client.post("/lessons/add-step/", {"comparison": cmp.pk, "lesson": lesson.pk}).status_code == 404
        # Nor is it offered as a lesson to add to.
        page = client.get(reverse("netviz:comparison", args=[cmp.pk])).content.decode()
        assert f'<option value="{lesson.pk}">' not in page
    lesson.refresh_from_db()
    assert lesson.title == "anon-lesson" and lesson.steps.count() == 2
    # The browser that made it still edits it.
    page = author.get(reverse("netviz:lesson", args=[lesson.pk])).content.decode()
    assert "move-up" in page
    for url, data in _edit_posts(lesson):
        assert author.post(url, data).status_code in (200, 302), url
    assert lesson.steps.count() == 1


def test_others_lessons_show_no_edit_controls(alice: Any, eve: Any, django_user_model: Any) -> None:
    lesson = models.Lesson.objects.create(title="alice-public", owner=alice, is_public=True)
    cmp = models.Comparison.objects.create(
        left_ruleset=store.store_ruleset(name="p", source=demo_text("docker-host")),
        right_ruleset=models.Ruleset.objects.get(name="p"), is_public=True, title="c")
    models.LessonStep.objects.create(lesson=lesson, comparison=cmp)
    for client in (Client(), as_user(eve)):
        page = client.get(reverse("netviz:lesson", args=[lesson.pk])).content.decode()
        assert "alice-public" in page and "move-up" not in page and "Add a step" not in page
        for url, data in _edit_posts(lesson):
            assert client.post(url, data).status_code == 404, url
    staff = as_user(django_user_model.objects.create_user("sam", password="x", is_staff=True))
    assert "move-up" in staff.get(reverse("netviz:lesson", args=[lesson.pk])).content.decode()

"""Accounts (sign up, log in, log out), who owns an upload, CSRF on every
POST, and the upload size limit."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.test import Client, override_settings
from django.urls import reverse
from webdumps import demo_text

from netviz import models, store

pytestmark = pytest.mark.django_db

SPEC = "tcp 198.51.100.7:40000 > 10.0.3.121:10080"


def test_it_signs_up_logs_out_and_logs_in(client: Client) -> None:
    page = client.get("/accounts/signup/").content.decode()
    assert "csrfmiddlewaretoken" in page and 'name="username"' in page
    response = client.post("/accounts/signup/", {
        "username": "carol", "password1": "a-long-pass-phrase-9", "password2": "a-long-pass-phrase-9",
    })
    assert response.status_code == 302
    home = client.get("/").content.decode()
    assert "carol" in home and "Log out" in home and "Sign up</a>" not in home
    assert client.post("/accounts/logout/").status_code == 302
    home = client.get("/").content.decode()
    assert "Log in" in home and "Log out" not in home
    response = client.post("/accounts/login/", {"username": "carol", "password": "a-long-pass-phrase-9"})
    assert response.status_code == 302 and response["Location"] == "/"
    assert "Log out" in client.get("/").content.decode()


def test_it_refuses_a_bad_signup_and_a_bad_login(client: Client, django_user_model: Any) -> None:
    django_user_model.objects.create_user("dave", password="pw-dave-123")
    response = client.post("/accounts/signup/", {"username": "dave", "password1": "x", "password2": "y"})
    assert response.status_code == 400
    assert django_user_model.objects.count() == 1
    response = client.post("/accounts/login/", {"username": "dave", "password": "wrong"})
    assert response.status_code == 200 and "error-box" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_login_goes_back_to_next_but_never_off_site(client: Client, django_user_model: Any) -> None:
    django_user_model.objects.create_user("erin", password="pw-erin-123")
    response = client.post("/accounts/login/?next=/rulesets/", {"username": "erin", "password": "pw-erin-123"})
    assert response["Location"] == "/rulesets/"
    client.post("/accounts/logout/")
    response = client.post("/accounts/signup/?next=https://evil.example/", {
        "username": "frank", "password1": "a-long-pass-phrase-9", "password2": "a-long-pass-phrase-9",
    })
    assert response["Location"] == "/"


def upload(client: Client, **extra: Any) -> models.Ruleset:
    response = client.post("/upload/", {"name": "node", "dump_text": demo_text("docker-host"), **extra})
    assert response.status_code == 302, response.content.decode()[:500]
    return models.Ruleset.objects.get(pk=int(re.findall(r"\d+", response["Location"])[0]))


def test_a_signed_in_upload_is_private_unless_ticked(client: Client, django_user_model: Any) -> None:
    user = django_user_model.objects.create_user("gina", password="x")
    client.force_login(user)
    assert "Visible to everyone" in client.get("/upload/").content.decode()
    mine = upload(client)
    assert mine.owner == user and not mine.is_public
    shown = upload(client, is_public="on", host_interfaces="eth0 10.0.0.5/24")
    assert shown.owner == user and shown.is_public and shown.hosts.get().is_public
    stranger = Client()
    assert stranger.get(reverse("netviz:ruleset", args=[mine.pk])).status_code == 404
    assert stranger.get(reverse("netviz:ruleset", args=[shown.pk])).status_code == 200


def test_an_anonymous_upload_is_public_and_says_so(client: Client) -> None:
    page = client.get("/upload/").content.decode()
    assert "this upload will be public" in page and "Visible to everyone" not in page
    rs = upload(client, is_public="")
    assert rs.owner is None and rs.is_public
    assert "Demo rulesets and uploads made without an account are public" in client.get("/").content.decode()


# --- CSRF -------------------------------------------------------------------------


@pytest.fixture
def csrf_client(django_user_model: Any) -> Client:
    c = Client(enforce_csrf_checks=True)
    c.force_login(django_user_model.objects.create_user("hank", password="x"))
    return c


def test_every_post_without_a_token_is_refused(csrf_client: Client, django_user_model: Any) -> None:
    rs = store.store_ruleset(name="pub", source=demo_text("docker-host"))
    trace = models.SavedTrace.objects.create(ruleset=rs, packet={}, title="t")
    call_command("load_lessons", stdout=open("/dev/null", "w"))  # noqa: SIM115
    lesson = models.Lesson.objects.create(title="mine")
    step = models.LessonStep.objects.create(lesson=lesson, saved_trace=trace)
    before = (models.Ruleset.objects.count(), models.SavedTrace.objects.count(),
              models.Comparison.objects.count(), models.Lesson.objects.count())
    posts: list[tuple[str, dict[str, Any]]] = [
        ("/upload/", {"dump_text": demo_text("docker-host")}),
        (reverse("netviz:trace_save", args=[rs.pk]), {"query": urlencode({"proto": "tcp", "src": "1.2.3.4", "dst": "10.0.3.121"})}),
        ("/compare/save/", {"query": urlencode({"left": rs.pk, "packet": SPEC})}),
        ("/lessons/new/", {"title": "x"}),
        ("/lessons/add-step/", {"saved_trace": trace.pk, "lesson": lesson.pk}),
        (reverse("netviz:lesson_edit", args=[lesson.pk]), {"title": "y"}),
        (reverse("netviz:lesson_step_edit", args=[lesson.pk, step.pk]), {}),
        (reverse("netviz:lesson_step_move", args=[lesson.pk, step.pk]), {"direction": "up"}),
        (reverse("netviz:lesson_step_delete", args=[lesson.pk, step.pk]), {}),
        (reverse("netviz:share_revoke", args=["r", rs.pk]), {}),
        ("/traces/import/", {"text": "x"}),
        ("/accounts/logout/", {}),
        ("/accounts/login/", {"username": "hank", "password": "x"}),
        ("/accounts/signup/", {"username": "ivy", "password1": "a-long-pass-phrase-9",
                               "password2": "a-long-pass-phrase-9"}),
    ]
    for url, data in posts:
        assert csrf_client.post(url, data).status_code == 403, url
    # htmx posts carry the token as X-CSRFToken: a wrong one is refused too.
    assert csrf_client.post("/lessons/new/", {"title": "x"}, HTTP_X_CSRFTOKEN="wrong",
                            HTTP_HX_REQUEST="true").status_code == 403
    after = (models.Ruleset.objects.count(), models.SavedTrace.objects.count(),
             models.Comparison.objects.count(), models.Lesson.objects.count())
    assert after == before
    assert not django_user_model.objects.filter(username="ivy").exists()


def test_a_post_with_the_token_is_accepted(csrf_client: Client) -> None:
    page = csrf_client.get("/lessons/").content.decode()
    # The body carries the token for htmx (hx-headers) and the form a hidden field.
    header = re.search(r'hx-headers=\'\{"X-CSRFToken": "([^"]+)"\}\'', page)
    assert header is not None
    response = csrf_client.post("/lessons/new/", {"title": "ok"}, HTTP_X_CSRFTOKEN=header.group(1))
    assert response.status_code == 302
    field = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert field is not None
    assert csrf_client.post("/lessons/new/", {"title": "ok2", "csrfmiddlewaretoken": field.group(1)}).status_code == 302


def test_every_post_form_in_the_templates_has_a_token() -> None:
    from pathlib import Path

    templates = Path(__file__).resolve().parents[2] / "templates"
    missing = []
    for path in templates.rglob("*.html"):
        text = path.read_text()
        for form in re.findall(r"<form\b[^>]*>.*?</form>", text, flags=re.S | re.I):
            if re.search(r'method="post"', form, flags=re.I) and "{% csrf_token %}" not in form:
                missing.append(f"{path.name}: {form[:80]}")
    assert missing == []


# --- upload size ------------------------------------------------------------------


@override_settings(NETVIZ_MAX_UPLOAD=2000)
def test_the_size_limit_covers_files_and_pasted_text(client: Client) -> None:
    big = "# padding\n" * 300  # 3000 bytes
    r = client.post("/upload/", {"dump_file": SimpleUploadedFile("big.rules", big.encode())})
    assert r.status_code == 413 and "the limit is 2.0 KiB" in r.content.decode()
    r = client.post("/upload/", {"dump_text": big})
    assert r.status_code == 413 and "the limit is 2.0 KiB" in r.content.decode()
    r = client.post("/upload/", {"dump_text": "*filter\nCOMMIT\n",
                                 "ipsets_text": big})
    assert r.status_code == 413
    # htmx gets the message with 200, so it swaps in.
    r = client.post("/upload/", {"dump_text": big}, HTTP_HX_REQUEST="true")
    assert r.status_code == 200 and "the limit is 2.0 KiB" in r.content.decode()
    assert not models.Ruleset.objects.exists()


def test_the_limit_comes_from_the_environment() -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", "import django, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'netviz.settings');"
         "from django.conf import settings; print(settings.NETVIZ_MAX_UPLOAD, settings.DATA_UPLOAD_MAX_MEMORY_SIZE)"],
        cwd=root, env={**os.environ, "NETVIZ_MAX_UPLOAD": "12345"}, capture_output=True, text=True, check=True,
    )
    limit, data_limit = map(int, out.stdout.split())
    assert limit == 12345 and data_limit > limit


# --- admin ----------------------------------------------------------------------------


def test_staff_browse_search_and_moderate_in_the_admin(admin_client: Client, django_user_model: Any) -> None:
    owner = django_user_model.objects.create_user("jill", password="x")
    rs = store.store_ruleset(name="jill's node", source=demo_text("docker-host"), owner=owner)
    trace = models.SavedTrace.objects.create(ruleset=rs, packet={}, title="jill's trace", owner=owner, is_public=False)
    models.Comparison.objects.create(title="jill's cmp", left_ruleset=rs, right_ruleset=rs, owner=owner,
                                     is_public=False)
    lesson = models.Lesson.objects.create(title="jill's lesson", owner=owner, is_public=False)
    models.LessonStep.objects.create(lesson=lesson, saved_trace=trace)
    for model, title in (("ruleset", "jill's node"), ("savedtrace", "jill's trace"),
                         ("comparison", "jill's cmp"), ("lesson", "jill's lesson"), ("hostprofile", None)):
        page = admin_client.get(f"/admin/netviz/{model}/", {"q": "jill"})
        assert page.status_code == 200, model
        if title:
            assert "jill&#x27;s" in page.content.decode(), model
    assert admin_client.get(f"/admin/netviz/lesson/{lesson.pk}/change/").status_code == 200
    old = rs.share_token
    response = admin_client.post("/admin/netviz/ruleset/", {
        "action": "revoke_links", "_selected_action": [rs.pk]})
    assert response.status_code == 302
    rs.refresh_from_db()
    assert rs.share_token != old
    admin_client.post("/admin/netviz/lesson/", {"action": "make_public", "_selected_action": [lesson.pk]})
    lesson.refresh_from_db()
    assert lesson.is_public
    # Staff see private objects on the site too (moderation), strangers do not.
    assert admin_client.get(reverse("netviz:saved_trace", args=[trace.pk])).status_code == 200
    assert Client().get(reverse("netviz:saved_trace", args=[trace.pk])).status_code == 404

"""Home: the empty state for a new user, then demos, uploads and traces."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils.html import escape

from netviz import models

pytestmark = pytest.mark.django_db


def test_it_tells_a_new_user_what_to_do(client: Client) -> None:
    r = client.get(reverse("netviz:home"))
    assert r.status_code == 200
    body = r.content.decode()
    for command in ("iptables-save -c", "ipset save", "ip -br addr", "ip route", "manage.py load_demo"):
        assert command in body, command
    assert f'href="{reverse("netviz:upload")}"' in body
    assert "No saved traces yet" in body


def test_it_shows_the_demos_and_their_traces(client: Client) -> None:
    call_command("load_demo", stdout=io.StringIO())
    body = client.get(reverse("netviz:home")).content.decode()
    assert "Nothing here yet" not in body
    for rs in models.Ruleset.objects.filter(is_demo=True):
        assert f'href="{reverse("netviz:ruleset", args=[rs.pk])}"' in body
        assert rs.name in body
    trace = models.SavedTrace.objects.filter(verdict="DROP").first()
    assert trace is not None and escape(trace.title) in body
    assert f'href="{reverse("netviz:saved_trace", args=[trace.pk])}"' in body
    assert 'class="badge verdict-DROP"' in body


def test_it_lists_recent_uploads_but_not_private_ones(client: Client, kube_ruleset: models.Ruleset, django_user_model: type) -> None:
    owner = django_user_model.objects.create_user("carol")
    models.Ruleset.objects.create(name="carol's secret", source="", owner=owner, is_public=False)
    body = client.get(reverse("netviz:home")).content.decode()
    assert "kube-proxy node" in body
    assert "carol&#x27;s secret" not in body and "carol's secret" not in body
    client.force_login(owner)
    assert "carol&#x27;s secret" in client.get(reverse("netviz:home")).content.decode()


def test_it_only_answers_get(client: Client) -> None:
    assert client.post(reverse("netviz:home")).status_code == 405


def test_it_registers_the_models_in_the_admin(client: Client, kube_ruleset: models.Ruleset, django_user_model: type) -> None:
    admin = django_user_model.objects.create_superuser("admin", "admin@example.org", "pw")
    client.force_login(admin)
    for model in ("ruleset", "table", "chain", "rule", "ipset", "hostprofile", "savedtrace"):
        r = client.get(f"/admin/netviz/{model}/")
        assert r.status_code == 200, model
    r = client.get(f"/admin/netviz/ruleset/{kube_ruleset.pk}/change/")
    assert r.status_code == 200 and "kube-proxy node" in r.content.decode()

"""Shared fixtures for the web tests (dumps in webdumps.py)."""

from __future__ import annotations

from typing import Any

import pytest
from webdumps import HOSTILE_DUMP, HOSTILE_TEXT, demo_text

from netviz import models, store


@pytest.fixture
def kube_ruleset(db: None) -> models.Ruleset:
    return store.store_ruleset(name="kube-proxy node", source=demo_text("kube-proxy-node"))


@pytest.fixture
def calico_ruleset(db: None) -> models.Ruleset:
    return store.store_ruleset(
        name="calico node",
        source=demo_text("calico-node"),
        ipsets_source=demo_text("calico-node", "ipsets.ipset"),
    )


@pytest.fixture
def hostile_ruleset(db: None) -> models.Ruleset:
    return store.store_ruleset(name='<b>evil</b> "name"', source=HOSTILE_DUMP)


@pytest.fixture
def hostile_text() -> str:
    return HOSTILE_TEXT


@pytest.fixture
def alice(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user("alice", password="pw-alice-123")


@pytest.fixture
def bob(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user("bob", password="pw-bob-123")

"""Compare, diff and lessons on nft and mixed nodes."""

from __future__ import annotations

import json
import re
from urllib.parse import urlencode

import pytest
from django.test import Client
from webdumps import DEMO, demo_text

from netviz import models, store

pytestmark = pytest.mark.django_db

ROUTER = demo_text("home-router", "ruleset.nft")
# The same router after an edit: the LAN catch-all rejects become drops, and
# every counter moved on.
ROUTER_EDITED = (
    ROUTER.replace("counter packets 2 bytes 104 reject with icmpx admin-prohibited",
                   "counter packets 9 bytes 468 drop")
    .replace("counter packets 310 bytes 24140", "counter packets 999 bytes 77777")
)
PORT_8080 = "tcp 192.168.122.1:50808 > 192.168.122.20:8080 in eth0"


@pytest.fixture
def rhel(db: None) -> models.Ruleset:
    rs = store.store_ruleset(name="rhel with firewalld", source=demo_text("rhel-firewalld-node"),
                             nftables_source=demo_text("rhel-firewalld-node", "ruleset.nft"))
    host = json.loads((DEMO / "rhel-firewalld-node" / "host.json").read_text())
    store.store_host(name="rhel host", ruleset=rs, **host)
    return rs


@pytest.fixture
def rhel_dump_only(db: None) -> models.Ruleset:
    rs = store.store_ruleset(name="rhel dump only", source=demo_text("rhel-firewalld-node"))
    host = json.loads((DEMO / "rhel-firewalld-node" / "host.json").read_text())
    store.store_host(name="rhel host", ruleset=rs, **host)
    return rs


def test_it_diffs_two_nft_listings(client: Client) -> None:
    left = store.store_ruleset(name="router", source="", nftables_source=ROUTER)
    right = store.store_ruleset(name="router edited", source="", nftables_source=ROUTER_EDITED)
    q = urlencode({"left": left.pk, "right": right.pk, "ignore_counters": "on", "changed_only": "on",
                   "view": "side"})
    body = client.get("/diff/?" + q).content.decode()
    assert "0 added, 0 removed, 1 changed" in body
    assert 'id="diff-inet-filter-input_lan"' in body
    assert "counter packets 9 bytes 468 drop" in body
    unified = client.get("/diff/unified.diff?" + q).content.decode()
    assert "@@ inet filter input_lan @@" in unified
    assert "+counter packets 9 bytes 468 drop" in unified
    assert "lan_services counter packets 999" not in unified  # counters alone are no change
    # With counters compared, the counted rule differs too.
    q2 = urlencode({"left": left.pk, "right": right.pk, "view": "unified"})
    assert "+meta l4proto . th dport @lan_services counter packets 999 bytes 77777 accept" in (
        client.get("/diff/unified.diff?" + q2).content.decode()
    )


def test_it_diffs_a_mixed_node_against_its_dump_alone(
    client: Client, rhel: models.Ruleset, rhel_dump_only: models.Ruleset
) -> None:
    q = urlencode({"left": rhel.pk, "right": rhel_dump_only.pk, "ignore_counters": "on", "view": "side"})
    body = client.get("/diff/?" + q).content.decode()
    assert "tables removed: inet firewalld, ip kube-proxy" in body
    # iptables-nft's tables are the dump's: the same on both sides.
    assert "tables removed: inet firewalld, ip kube-proxy, ip filter" not in body


def test_it_compares_a_mixed_node_with_its_dump_alone(
    client: Client, rhel: models.Ruleset, rhel_dump_only: models.Ruleset
) -> None:
    q = urlencode({"left": rhel.pk, "right": rhel_dump_only.pk, "packet": PORT_8080,
                   "lhost": rhel.hosts.get().pk, "rhost": rhel_dump_only.hosts.get().pk})
    body = client.get("/compare/?" + q).content.decode()
    assert "inet firewalld" in body
    # The left flow has firewalld's chain, marked where the two differ.
    assert re.search(r'<g id="flow&#45;INPUT&#45;nft&#45;inet&#45;firewalld&#45;filter_INPUT" class="cmp-differs', body)
    assert re.search(r"verdict-DROP", body) and re.search(r"verdict-ACCEPT", body)


def test_a_lesson_step_holds_an_nft_trace(client: Client) -> None:
    scenario = json.loads((DEMO / "home-router" / "scenarios" / "port-forward-ssh.json").read_text())
    scenario["nftables"] = ROUTER
    lesson = models.Lesson.objects.create(title="port forwards")
    models.LessonStep.objects.create(lesson=lesson, position=0, title="wan0:2222", scenario=scenario)
    body = client.get(f"/lessons/{lesson.pk}/present/1/").content.decode()
    assert "error-box" not in body
    frames = re.findall(r'data-node-\w+="([^"]+)"', body)
    assert "flow-PREROUTING-nft-ip-nat-prerouting" in frames
    svg_ids = {i.replace("&#45;", "-") for i in re.findall(r'<g id="([^"]+)" class="', body)}
    assert set(frames) <= svg_ids

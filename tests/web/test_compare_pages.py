"""The compare pages, the saved/shared comparison and the ruleset diff page."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest
from django.core.management import call_command
from django.test import Client

from netviz import models

POD_TO_INTERNET = "tcp 10.244.0.10:43210 > 93.184.216.34:443 in cali112d888c0c2"


@pytest.fixture
def natout(db: None) -> dict[str, models.Comparison]:
    call_command("load_lessons", stdout=open("/dev/null", "w"))  # noqa: SIM115
    return {c.slug.split("/")[-1]: c for c in models.Comparison.objects.filter(is_demo=True)}


def query(**params: object) -> str:
    return urlencode({k: str(v) for k, v in params.items()})


def test_it_shows_an_empty_form_with_the_prepared_comparisons(client: Client, natout: dict[str, models.Comparison]) -> None:
    response = client.get("/compare/")
    assert response.status_code == 200
    body = response.content.decode()
    assert "Pick two setups and a packet" in body
    assert "natOutgoing: pod → internet" in body
    assert 'autofocus' in body


def test_it_compares_natoutgoing_on_and_off(client: Client, natout: dict[str, models.Comparison]) -> None:
    c = natout["pod-to-internet"]
    response = client.get("/compare/?" + query(left=c.left_ruleset_id, right=c.right_ruleset_id,
                                               packet=POD_TO_INTERNET, llabel="natOutgoing on",
                                               rlabel="natOutgoing off"))
    assert response.status_code == 200
    body = response.content.decode()
    assert ("On the left (natOutgoing on), nat POSTROUTING rule 1 in cali-nat-outgoing (MASQUERADE) rewrote the "
            "source 10.244.0.10 → 10.240.0.4; on the right (natOutgoing off) cali-nat-outgoing was empty") in body
    # Both flow diagrams, the differing nat POSTROUTING box outlined on both.
    assert body.count('<g id="flow&#45;POSTROUTING&#45;nat" class="cmp-differs node') == 2
    assert 'class="hop-differs first-diff"' in body
    assert "first difference" in body


def test_it_compares_two_packets_on_one_ruleset(client: Client, natout: dict[str, models.Comparison]) -> None:
    c = natout["pod-to-internet"]
    response = client.get("/compare/?" + query(
        left=c.left_ruleset_id, packet=POD_TO_INTERNET,
        packet2="tcp 10.244.0.10:43212 > 10.244.1.7:80 in cali112d888c0c2"))
    body = response.content.decode()
    assert ("The two packets differ: destination 93.184.216.34 on the left (Calico node, natOutgoing on), "
            "10.244.1.7 on the right (second packet)") in body
    assert "on the right (second packet) the same rule did not match (! --match-set cali40all-ipam-pools dst" in body
    assert "second packet" in body


def test_it_returns_only_the_result_to_htmx(client: Client, natout: dict[str, models.Comparison]) -> None:
    c = natout["host-to-internet"]
    response = client.get(
        "/compare/?" + query(left=c.left_ruleset_id, right=c.right_ruleset_id,
                             packet="tcp 10.240.0.4:43214 > 93.184.216.34:443"),
        HTTP_HX_REQUEST="true",
    )
    body = response.content.decode()
    assert body.lstrip().startswith('<div id="compare-result"')
    assert "No difference for this packet" in body
    assert "<html" not in body


def test_it_reports_a_bad_packet_on_the_field(client: Client, natout: dict[str, models.Comparison]) -> None:
    c = natout["pod-to-internet"]
    response = client.get("/compare/?" + query(left=c.left_ruleset_id, packet="tcp nonsense"))
    assert response.status_code == 200
    assert "write the packet as" in response.content.decode()


def test_it_downloads_both_traces(client: Client, natout: dict[str, models.Comparison]) -> None:
    c = natout["pod-to-internet"]
    response = client.get("/compare/comparison.json?" + query(
        left=c.left_ruleset_id, right=c.right_ruleset_id, packet=POD_TO_INTERNET))
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment")
    data = json.loads(response.content)
    assert data["left"]["trace"]["packet_out"]["src"] == "10.240.0.4"
    assert data["right"]["trace"]["packet_out"]["src"] == "10.244.0.10"
    assert data["comparison"]["packet_out_diff"] == [
        {"field": "src", "left": "10.240.0.4", "right": "10.244.0.10"}
    ]
    assert client.get("/compare/comparison.json?packet=x").status_code == 400


def test_it_saves_a_comparison_with_a_share_link(client: Client, natout: dict[str, models.Comparison]) -> None:
    c = natout["pod-to-internet"]
    q = query(left=c.left_ruleset_id, right=c.right_ruleset_id, packet=POD_TO_INTERNET)
    response = client.post("/compare/save/", {"query": q, "title": "<b>mine</b>"})
    assert response.status_code == 302
    saved = models.Comparison.objects.get(title="<b>mine</b>")
    assert saved.owner is None and saved.is_public
    page = client.get(response["Location"]).content.decode()
    assert "&lt;b&gt;mine&lt;/b&gt;" in page and "<b>mine</b>" not in page
    assert "Add to lesson" in page
    shared = client.get(f"/comparisons/s/{saved.share_token}/").content.decode()
    assert "rewrote the source 10.244.0.10 → 10.240.0.4" in shared
    assert "Add to lesson" not in shared
    download = client.get(f"/comparisons/{saved.pk}/comparison.json")
    assert json.loads(download.content)["right"]["trace"]["verdict"] == "ACCEPT"


def test_it_hides_a_private_comparison(client: Client, natout: dict[str, models.Comparison],
                                      django_user_model: type) -> None:
    owner = django_user_model.objects.create_user("alice", password="x")
    c = natout["pod-to-internet"]
    private = models.Comparison.objects.create(
        title="private", left_ruleset=c.left_ruleset, right_ruleset=c.right_ruleset,
        left_host=c.left_host, right_host=c.right_host, left_packet=c.left_packet,
        right_packet=c.right_packet, owner=owner, is_public=False)
    assert client.get(f"/comparisons/{private.pk}/").status_code == 404
    assert client.get(f"/comparisons/{private.pk}/comparison.json").status_code == 404
    assert client.get(f"/comparisons/s/{private.share_token}/").status_code == 200
    client.force_login(owner)
    assert client.get(f"/comparisons/{private.pk}/").status_code == 200


def test_it_diffs_two_rulesets_side_by_side(client: Client, natout: dict[str, models.Comparison]) -> None:
    c = natout["pod-to-internet"]
    response = client.get("/diff/?" + query(left=c.right_ruleset_id, right=c.left_ruleset_id,
                                            ignore_counters="on", changed_only="on", view="side"))
    body = response.content.decode()
    assert "1 added, 0 removed, 0 changed" in body
    assert 'class="line-added"' in body
    assert "cali40masq-ipam-pools" in body
    assert 'id="diff-nat-cali-nat-outgoing"' in body
    assert 'id="diff-filter-input"' not in body  # unchanged chains hidden


def test_it_shows_the_unified_diff_and_downloads_it(client: Client, natout: dict[str, models.Comparison]) -> None:
    c = natout["pod-to-internet"]
    q = query(left=c.right_ruleset_id, right=c.left_ruleset_id, ignore_counters="on", view="unified")
    body = client.get("/diff/?" + q).content.decode()
    assert '<span class="u-add">+-A cali-nat-outgoing' in body
    download = client.get("/diff/unified.diff?" + q)
    assert download.status_code == 200
    assert download.content.decode().count("\n+-A cali-nat-outgoing") == 1


def test_it_escapes_hostile_dumps_in_the_diff(client: Client, natout: dict[str, models.Comparison],
                                              hostile_ruleset: models.Ruleset) -> None:
    hostile = hostile_ruleset
    c = natout["pod-to-internet"]
    body = client.get("/diff/?" + query(left=c.left_ruleset_id, right=hostile.pk, view="side")).content.decode()
    assert "<script>alert(1)</script>" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "<b>evil</b>" not in body and "&lt;b&gt;evil&lt;/b&gt;" in body

"""API tokens and the JSON API: POST /api/snapshots/, GET
/api/rulesets/<id>/trace; auth failures, revoked tokens, other users'
rulesets, CSRF only where the session is used."""

from __future__ import annotations

import json
import re
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.test import Client

from netviz import apitokens, models, store

pytestmark = pytest.mark.django_db

SNAPSHOT = Path(__file__).resolve().parents[1] / "data" / "snapshots" / "bridge-node.snapshot"
NODEPORT = "tcp 10.78.0.9:40000 > 10.78.0.1:30080 in eth0"


def _post_snapshot(client: Client, token: str | None, body: str | None = None, query: str = "") -> Any:
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    return client.post(f"/api/snapshots/{query}", data=body if body is not None else SNAPSHOT.read_text(),
                       content_type="text/plain", **headers)


def test_a_token_is_shown_once_and_stored_hashed(client: Client, alice: Any) -> None:
    client.force_login(alice)
    response = client.post("/accounts/tokens/", {"name": "collectors"})
    assert response.status_code == 201 and response["Cache-Control"] == "no-store"
    token = re.search(r'value="(nvz_[^"]+)"', response.content.decode()).group(1)  # type: ignore[union-attr]
    row = models.ApiToken.objects.get(user=alice)
    assert row.digest == apitokens.digest(token) and token not in (row.digest, row.prefix)
    assert row.prefix == token[:10]
    page = client.get("/accounts/tokens/").content.decode()
    assert "collectors" in page and row.prefix in page and token not in page


def test_the_token_page_needs_an_account(client: Client) -> None:
    response = client.get("/accounts/tokens/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_it_uploads_a_snapshot_with_a_token(alice: Any) -> None:
    _, token = apitokens.create_token(alice, "t")
    client = Client(enforce_csrf_checks=True)
    response = _post_snapshot(client, token, query="?name=node-7")
    assert response.status_code == 201, response.content
    data = response.json()
    ruleset = models.Ruleset.objects.get(pk=data["rulesets"][0]["id"])
    assert data["url"] == f"http://testserver/rulesets/{ruleset.pk}/"
    assert ruleset.owner == alice and not ruleset.is_public and ruleset.name == "node-7"
    assert data["public"] is False and [r["family"] for r in data["rulesets"]] == ["ipv4", "ipv6"]
    assert models.ApiToken.objects.get(user=alice).last_used is not None
    # --public, and a multipart upload as a browser-less client might send it.
    upload = SimpleUploadedFile("n.snapshot", SNAPSHOT.read_bytes())
    response = client.post("/api/snapshots/?public=1", {"snapshot": upload},
                           HTTP_AUTHORIZATION=f"Token {token}")
    assert response.status_code == 201 and response.json()["public"] is True


@pytest.mark.parametrize("header", [None, "Bearer nvz_not-a-token", "Basic YWxpY2U6cHc=", "Bearer"])
def test_uploads_without_a_valid_token_are_refused(alice: Any, header: str | None) -> None:
    client = Client(enforce_csrf_checks=True)
    extra = {"HTTP_AUTHORIZATION": header} if header else {}
    response = client.post("/api/snapshots/", data=SNAPSHOT.read_text(), content_type="text/plain", **extra)
    assert response.status_code == 401 and "error" in response.json()
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert models.Ruleset.objects.count() == 0


def test_a_session_is_not_enough_to_upload(client: Client, alice: Any) -> None:
    # The API skips the CSRF check only because it never trusts the cookie.
    client.force_login(alice)
    assert _post_snapshot(client, None).status_code == 401
    assert models.Ruleset.objects.count() == 0


def test_a_revoked_token_is_refused(client: Client, alice: Any) -> None:
    row, token = apitokens.create_token(alice, "t")
    assert _post_snapshot(client, token).status_code == 201
    client.force_login(alice)
    assert client.post(f"/accounts/tokens/{row.pk}/revoke/").status_code == 302
    client.logout()
    assert _post_snapshot(client, token).status_code == 401
    ruleset = models.Ruleset.objects.filter(owner=alice).first()
    assert ruleset is not None
    response = client.get(f"/api/rulesets/{ruleset.pk}/trace", {"packet": NODEPORT},
                          HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 401


def test_nobody_revokes_anothers_token(client: Client, alice: Any, bob: Any) -> None:
    row, _ = apitokens.create_token(alice, "t")
    client.force_login(bob)
    assert client.post(f"/accounts/tokens/{row.pk}/revoke/").status_code == 404
    assert models.ApiToken.objects.get(pk=row.pk).revoked is None
    # Revoking takes a POST with the CSRF token, as every form here.
    csrf = Client(enforce_csrf_checks=True)
    csrf.force_login(alice)
    assert csrf.post(f"/accounts/tokens/{row.pk}/revoke/").status_code == 403


def test_a_bad_snapshot_stores_nothing_and_says_where(alice: Any) -> None:
    _, token = apitokens.create_token(alice, "t")
    text = SNAPSHOT.read_text().replace("--to-destination", "--to-nowhere")
    response = _post_snapshot(Client(), token, text)
    assert response.status_code == 400
    data = response.json()
    assert data["section"] == "iptables" and data["stored"] is False
    assert "--to-nowhere" in text.split("\n")[data["line"] - 1]
    assert models.Ruleset.objects.count() == 0 and models.Snapshot.objects.count() == 0


def test_the_trace_api_returns_the_trace_json_document(alice: Any) -> None:
    _, token = apitokens.create_token(alice, "t")
    client = Client()
    url = _post_snapshot(client, token).json()["rulesets"][0]["trace_api"]
    response = client.get(url, {"packet": NODEPORT}, HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200, response.content
    trace = response.json()
    assert {"table": "nat", "chain": "KUBE-NODEPORTS", "rule": 2, "verdict": "ACCEPT"} in trace["hops"]
    assert trace["verdict"] == "ACCEPT" and trace["packet_out"]["dst"] == "10.77.0.2"
    # The same document `manage.py trace --json` prints for the same inputs.
    out = StringIO()
    call_command("trace", "--snapshot", str(SNAPSHOT), "--packet", NODEPORT, "--json", stdout=out)
    assert json.loads(out.getvalue())["hops"] == trace["hops"]
    nft = client.get(url, {"packet": "tcp 10.77.0.2:40002 > 10.78.0.9:9999 in br0"},
                     HTTP_AUTHORIZATION=f"Bearer {token}").json()
    assert nft["verdict"] == "DROP" and nft["hops"][-1]["table"] == "node-extra"
    assert client.get(url, {"packet": "tcp nonsense"}, HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 400
    assert client.get(url, HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 400


def test_the_trace_api_keeps_private_rulesets_private(alice: Any, bob: Any) -> None:
    _, alice_token = apitokens.create_token(alice, "a")
    _, bob_token = apitokens.create_token(bob, "b")
    client = Client()
    url = _post_snapshot(client, alice_token).json()["rulesets"][0]["trace_api"]
    query = {"packet": NODEPORT}
    assert client.get(url, query, HTTP_AUTHORIZATION=f"Bearer {bob_token}").status_code == 404
    assert client.get(url, query).status_code == 404  # anonymous
    client.force_login(bob)
    assert client.get(url, query).status_code == 404  # bob's session
    # A token is the token's user even when the cookie is someone else's.
    assert client.get(url, query, HTTP_AUTHORIZATION=f"Bearer {alice_token}").status_code == 200
    assert client.get(url, query, HTTP_AUTHORIZATION="Bearer nvz_wrong").status_code == 401
    assert client.get("/api/rulesets/999999/trace", query).status_code == 404


def test_the_trace_api_serves_public_rulesets_to_anyone(client: Client) -> None:
    ruleset = store.store_ruleset(name="public", source="*filter\n:INPUT DROP [0:0]\nCOMMIT\n")
    response = client.get(f"/api/rulesets/{ruleset.pk}/trace", {"packet": "tcp 203.0.113.7:1 > 192.0.2.10:22 in eth0"})
    assert response.status_code == 200 and response.json()["verdict"] == "DROP"


def test_the_snapshot_page_offers_the_script_and_commands(client: Client) -> None:
    page = client.get("/snapshot/").content.decode()
    assert "kubectl debug node/" in page and "chroot /host" in page
    assert 'data-copy="#cmd-k8s"' in page and "/snapshot/netviz-collect" in page
    assert "http://testserver/api/snapshots/" in page
    script = client.get("/snapshot/netviz-collect")
    assert script.status_code == 200 and "attachment" in script["Content-Disposition"]
    assert script.content.decode().startswith("#!/bin/sh")
    for url in ("/", "/upload/"):
        assert 'href="/snapshot/"' in client.get(url).content.decode()


def test_the_upload_page_takes_a_snapshot_in_one_step(client: Client, alice: Any) -> None:
    assert 'id="snapshot-form"' in client.get("/upload/").content.decode()
    client.force_login(alice)
    upload = SimpleUploadedFile("node.snapshot", SNAPSHOT.read_bytes())
    response = client.post("/upload/snapshot/", {"snapshot_file": upload, "name": "web-node"})
    ruleset = models.Ruleset.objects.get(name="web-node")
    assert response.status_code == 302 and response["Location"] == f"/rulesets/{ruleset.pk}/"
    assert ruleset.owner == alice and not ruleset.is_public and ruleset.hosts.count() == 1
    assert models.Ruleset.objects.filter(name="web-node (IPv6)").exists()


def test_a_bad_snapshot_on_the_web_names_the_line(client: Client) -> None:
    text = SNAPSHOT.read_text()
    cut = text[: text.index("=== sysctl")]
    response = client.post("/upload/snapshot/", {"snapshot_file": SimpleUploadedFile("n.snapshot", cut.encode())})
    assert response.status_code == 400
    page = response.content.decode()
    assert "cut off" in page and "Nothing was stored" in page
    evil = "netviz-snapshot 1\n<script>alert(1)</script>\n=== end\n"
    response = client.post("/upload/snapshot/", {"snapshot_file": SimpleUploadedFile("e", evil.encode())})
    assert response.status_code == 400 and "<script>alert" not in response.content.decode()
    assert models.Ruleset.objects.count() == 0


def test_staff_see_snapshots_and_revoke_tokens_in_the_admin(client: Client, alice: Any,
                                                             django_user_model: Any) -> None:
    row, token = apitokens.create_token(alice, "t")
    assert _post_snapshot(client, token).status_code == 201
    staff = django_user_model.objects.create_superuser("root", password="pw-root-123")
    client.force_login(staff)
    page = client.get("/admin/netviz/snapshot/").content.decode()
    assert "vm" in page
    page = client.get("/admin/netviz/apitoken/").content.decode()
    assert row.prefix in page and row.digest not in page
    response = client.post("/admin/netviz/apitoken/", {"action": "revoke_tokens", "_selected_action": [row.pk]})
    assert response.status_code == 302
    assert _post_snapshot(Client(), token).status_code == 401


def test_a_snapshot_in_the_dump_field_is_sent_to_the_snapshot_form(client: Client) -> None:
    upload = SimpleUploadedFile("node.snapshot", SNAPSHOT.read_bytes())
    response = client.post("/upload/", {"dump_file": upload})
    assert response.status_code == 400
    assert "node snapshot from netviz-collect" in response.content.decode()
    assert models.Ruleset.objects.count() == 0


def test_a_big_snapshot_on_the_web_is_a_job(client: Client, alice: Any, settings: Any) -> None:
    from netviz import jobs
    from netviz.models import Job

    settings.NETVIZ_IMPORT_JOB_BYTES = 1000
    client.force_login(alice)
    upload = SimpleUploadedFile("node.snapshot", SNAPSHOT.read_bytes())
    response = client.post("/upload/snapshot/", {"snapshot_file": upload, "name": "big-node"})
    job = Job.objects.get(kind="import_snapshot")
    assert response.status_code == 302 and response["Location"] == job.get_absolute_url()
    assert not models.Ruleset.objects.exists()
    jobs.execute(job.pk, fork=False)
    job.refresh_from_db()
    ruleset = models.Ruleset.objects.get(name="big-node")
    assert job.status == Job.DONE and ruleset.owner == alice and not ruleset.is_public
    assert "text" not in job.params
    page = client.get(job.get_absolute_url()).content.decode()
    assert ruleset.get_absolute_url() in page and "Snapshot stored" in page
    # A bad one fails with the line, and stores nothing.
    bad = SNAPSHOT.read_text().replace("--to-destination", "--to-nowhere")
    client.post("/upload/snapshot/", {"snapshot_file": SimpleUploadedFile("b", bad.encode())})
    job = Job.objects.filter(kind="import_snapshot").latest("pk")
    jobs.execute(job.pk, fork=False)
    job.refresh_from_db()
    assert job.status == Job.FAILED and "section iptables" in job.error and "Nothing was stored" in job.error
    assert models.Ruleset.objects.count() == 2

"""nft listings: uploaded (pasted or as a file) with or without an
iptables-save dump, imported from the command line, refused with the place of
the error and nothing stored."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from webdumps import DEMO, demo_text

from netviz import models, store

pytestmark = pytest.mark.django_db

DATA = Path(__file__).resolve().parents[1] / "data" / "nft"

# A listing whose fifth line is not nft: `acept` is no statement.
BAD_LISTING = """table inet filter {
	chain input {
		type filter hook input priority filter; policy drop;
		ct state established,related accept
		tcp dport 22 acept
	}
}
"""


def counts() -> tuple[int, ...]:
    return (
        models.Ruleset.objects.count(),
        models.Table.objects.count(),
        models.Rule.objects.count(),
        models.HostProfile.objects.count(),
    )


def test_the_form_offers_an_nft_listing(client: Client) -> None:
    body = client.get(reverse("netviz:upload")).content.decode()
    assert 'name="nftables_file"' in body and 'name="nftables_text"' in body
    assert "nft list ruleset" in body and 'href="#nftables-details"' in body


def test_it_uploads_a_listing_alone(client: Client) -> None:
    listing = demo_text("home-router", "ruleset.nft")
    r = client.post(reverse("netviz:upload"), {"nftables_file": SimpleUploadedFile("router.nft", listing.encode())})
    rs = models.Ruleset.objects.get()
    assert r.status_code == 302 and r["Location"] == reverse("netviz:ruleset", args=[rs.pk])
    assert rs.name == "router.nft"
    assert rs.source == "" and rs.nftables_source == listing
    assert rs.rule_count > 0


def test_it_uploads_a_dump_and_a_listing_together(client: Client) -> None:
    r = client.post(
        reverse("netviz:upload"),
        {
            "name": "rhel node",
            "dump_text": demo_text("rhel-firewalld-node"),
            "nftables_text": demo_text("rhel-firewalld-node", "ruleset.nft"),
        },
    )
    assert r.status_code == 302
    rs = models.Ruleset.objects.get(name="rhel node")
    assert rs.source == demo_text("rhel-firewalld-node")
    assert "table inet firewalld" in rs.nftables_source
    # The iptables tables are stored as rows as before.
    assert set(rs.tables.values_list("name", flat=True)) == {"filter", "nat"}


def test_it_uploads_a_json_listing(client: Client) -> None:
    listing = (DATA / "home-router.json").read_text()
    r = client.post(reverse("netviz:upload"), {"nftables_text": listing, "name": "router json"})
    assert r.status_code == 302
    assert models.Ruleset.objects.get(name="router json").nftables_source == listing


def test_it_wants_a_dump_or_a_listing(client: Client) -> None:
    r = client.post(reverse("netviz:upload"), {"name": "nothing"}, headers={"HX-Request": "true"})
    assert r.status_code == 200
    assert "or give an nft listing" in r.content.decode()
    assert counts() == (0, 0, 0, 0)


def test_it_refuses_a_bad_listing_inline_and_stores_nothing(client: Client) -> None:
    r = client.post(
        reverse("netviz:upload"),
        {"dump_text": demo_text("rhel-firewalld-node"), "nftables_text": BAD_LISTING,
         "host_interfaces": "eth0 10.0.0.1/24"},
        headers={"HX-Request": "true"},
    )
    body = r.content.decode()
    assert r.status_code == 200  # htmx swaps the form with the error in
    assert "The nft listing could not be read: line 5" in body
    assert "acept" in body
    assert '<details id="nftables-details" open>' in body
    assert counts() == (0, 0, 0, 0)


def test_a_plain_post_of_a_bad_listing_is_a_400(client: Client) -> None:
    r = client.post(reverse("netviz:upload"), {"nftables_text": BAD_LISTING})
    assert r.status_code == 400
    assert counts() == (0, 0, 0, 0)


def test_it_escapes_a_hostile_listing_in_the_error(client: Client) -> None:
    hostile = BAD_LISTING.replace("acept", "<script>alert(1)</script>")
    body = client.post(reverse("netviz:upload"), {"nftables_text": hostile}).content.decode()
    assert "<script>alert(1)" not in body
    assert "&lt;script&gt;" in body


def test_store_keeps_the_listing_and_reparses_it() -> None:
    rs = store.store_ruleset(
        name="docker nft", source="", nftables_source=demo_text("docker-nft-host", "ruleset.nft")
    )
    store.clear_cache()
    nft = store.load_nftables(models.Ruleset.objects.get(pk=rs.pk))
    assert nft is not None
    assert {t.name for t in nft.tables} == {"docker-bridges", "docker-user"}
    assert rs.rule_count == sum(len(c.rules) for t in nft.tables for c in t.chains)


def test_store_tells_listing_errors_apart() -> None:
    with pytest.raises(store.ParseError) as info:
        store.store_ruleset(name="x", source=demo_text("docker-host"), nftables_source=BAD_LISTING)
    assert getattr(info.value, "origin", "") == "nftables"
    assert info.value.line == 5
    assert counts() == (0, 0, 0, 0)


# --- import_dump --nftables ---------------------------------------------------


def test_it_imports_a_dump_and_a_listing(tmp_path: Path) -> None:
    node = DEMO / "rhel-firewalld-node"
    out = io.StringIO()
    call_command(
        "import_dump", str(node / "ruleset.rules"), "--nftables", str(node / "ruleset.nft"),
        "--host", str(node / "host.json"), stdout=out,
    )
    rs = models.Ruleset.objects.get()
    assert rs.name == "ruleset.rules"
    assert rs.nftables_source == (node / "ruleset.nft").read_text()
    assert "4 nft tables (2 of them managed by iptables-nft, taken from the dump)" in out.getvalue()


def test_it_imports_a_listing_alone(tmp_path: Path) -> None:
    call_command(
        "import_dump", "--nftables", str(DATA / "home-router.json"), "--name", "router",
        stdout=io.StringIO(),
    )
    rs = models.Ruleset.objects.get(name="router")
    assert rs.source == "" and rs.nftables_source.startswith('{"nftables"')


def test_it_refuses_a_bad_listing_on_the_command_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.nft"
    bad.write_text(BAD_LISTING)
    err = io.StringIO()
    with pytest.raises(SystemExit) as info:
        call_command("import_dump", str(DEMO / "docker-host" / "ruleset.rules"),
                     "--nftables", str(bad), stderr=err)
    assert info.value.code == 1
    first = err.getvalue().splitlines()[0]
    assert first.startswith(f"{bad}:5:")
    assert "nothing was stored" in err.getvalue()
    assert counts() == (0, 0, 0, 0)


def test_it_refuses_a_bad_json_listing_with_its_path(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"nftables": [{"table": {"family": "inet", "name": "t"}}, {"rule": {"family": "inet", "table": "t", "chain": "nochain", "expr": []}}]}')
    err = io.StringIO()
    with pytest.raises(SystemExit):
        call_command("import_dump", "--nftables", str(bad), stderr=err)
    assert "nftables[1]" in err.getvalue()
    assert counts() == (0, 0, 0, 0)


def test_it_needs_a_dump_or_a_listing() -> None:
    from django.core.management.base import CommandError

    with pytest.raises(CommandError):
        call_command("import_dump")


def test_the_page_after_the_upload_does_not_parse_the_listing_again(monkeypatch: pytest.MonkeyPatch) -> None:
    rs = store.store_ruleset(name="router", source="", nftables_source=demo_text("home-router", "ruleset.nft"))
    calls: list[str] = []
    monkeypatch.setattr(store, "parse_nft", lambda text: calls.append(text))
    assert store.load_nftables(rs) is not None
    assert calls == []


def test_the_form_shows_a_json_listing_error_at_its_path(client: Client) -> None:
    bad = '{"nftables": [{"table": {"family": "inet", "name": "t"}}, {"rule": {"family": "inet", "table": "t", "chain": "nochain", "expr": []}}]}'
    r = client.post(reverse("netviz:upload"), {"nftables_text": bad}, headers={"HX-Request": "true"})
    body = r.content.decode()
    assert "The nft listing could not be read: at <code>nftables[1]" in body
    assert counts() == (0, 0, 0, 0)

"""The ruleset page: tables → chains → rules, search, chain links, the call
graph (HTML, SVG, DOT) with everything uploaded escaped, and downloads."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest
from django.test import Client, override_settings
from django.urls import reverse
from webdumps import demo_text, shared_dump

from netviz import models, store
from netviz.web import pages_rulesets

pytestmark = pytest.mark.django_db
SVG = "{http://www.w3.org/2000/svg}"


def dashed_edges(fragment: str) -> int:
    svg = fragment[fragment.index("<svg"): fragment.rindex("</svg>") + 6]
    root = ET.fromstring(svg)
    return sum(
        1
        for g in root.iter(f"{SVG}g")
        if g.get("class") == "edge"
        for path in g.iter(f"{SVG}path")
        if path.get("stroke-dasharray")
    )


def page(client: Client, rs: models.Ruleset, **params: str) -> str:
    r = client.get(reverse("netviz:ruleset", args=[rs.pk]), params)
    assert r.status_code == 200
    return r.content.decode()


def test_it_lists_tables_chains_and_rules(client: Client, kube_ruleset: models.Ruleset) -> None:
    body = page(client, kube_ruleset)
    for table in ("mangle", "filter", "nat"):
        assert f"*{table}" in body
    assert 'id="chain-nat-KUBE-SERVICES"' in body
    assert 'id="chain-filter-FORWARD"' in body
    # Rule text (escaped), line numbers and comments.
    dnat = models.Rule.objects.get(chain__table__ruleset=kube_ruleset, text__contains="--to-destination 192.168.100.1:6443")
    assert f'title="line {dnat.line} of the dump"' in body
    assert "/* default/kubernetes:https */" in body
    assert "115</b> rules" in body


def test_it_links_jump_targets_to_their_chain(client: Client, kube_ruleset: models.Ruleset) -> None:
    body = page(client, kube_ruleset)
    assert '<a href="#chain-nat-KUBE-SVC-NPX46M4PTMTKRN6Y">KUBE-SVC-NPX46M4PTMTKRN6Y</a>' in body
    # DNAT is a target, not a chain: no link.
    assert "<code>DNAT</code>" in body


def test_it_names_generated_chains(client: Client, kube_ruleset: models.Ruleset, calico_ruleset: models.Ruleset) -> None:
    body = page(client, kube_ruleset)
    assert "service default/kubernetes:https" in body
    assert "endpoint 192.168.100.1:6443 of default/kubernetes:https" in body
    assert "Docker: published ports" in body
    body = page(client, calico_ruleset)
    assert "from workload cali112d888c0c2" in body
    assert "to workload cali112d888c0c2" in body
    assert "profile namespace kube-system ingress" in body
    assert "Calico: SNAT for pod egress (natOutgoing)" in body


def test_it_marks_unreachable_and_empty_chains(client: Client, kube_ruleset: models.Ruleset) -> None:
    body = page(client, kube_ruleset)
    section = body[body.index('id="chain-nat-KUBE-MARK-DROP"'):]
    section = section[: section.index("</section>")]
    assert "badge-unreachable" in section
    section = body[body.index('id="chain-nat-KUBE-NODEPORTS"'):]
    section = section[: section.index("</section>")]
    assert "badge-empty" in section and "badge-unreachable" not in section


def test_it_filters_by_text_and_highlights(client: Client, kube_ruleset: models.Ruleset) -> None:
    body = page(client, kube_ruleset, q="kube-dns:dns-tcp")
    m = re.search(r"(\d+) rules? match", body)
    assert m is not None
    # 1 KUBE-SERVICES rule, 3 in KUBE-SVC-ERIFXISQEP7F7OF4, 2 in each of its 2 KUBE-SEPs
    assert int(m.group(1)) == 8
    assert "<mark>kube-dns:dns-tcp</mark>" in body
    assert "--to-destination 192.168.100.1:6443" not in body


def test_it_filters_by_chain_and_target(client: Client, kube_ruleset: models.Ruleset) -> None:
    body = page(client, kube_ruleset, chain="POSTROUTING", target="MASQUERADE", table="nat")
    # docker0, eth0 and the two flanneld masquerades
    assert "4 rules match" in body
    body = page(client, kube_ruleset, target="DNAT")
    want = models.Rule.objects.filter(chain__table__ruleset=kube_ruleset, target="DNAT").count()
    assert f"{want} rules match" in body


def test_it_answers_htmx_searches_with_the_results_only(client: Client, kube_ruleset: models.Ruleset) -> None:
    r = client.get(
        reverse("netviz:ruleset", args=[kube_ruleset.pk]), {"q": "flanneld"},
        headers={"HX-Request": "true", "HX-Target": "results"},
    )
    body = r.content.decode()
    assert "<html" not in body and "rules match" in body
    assert "<mark>flanneld</mark>" in body
    # Clearing the search brings the chain list back, still as a fragment.
    r = client.get(reverse("netviz:ruleset", args=[kube_ruleset.pk]), headers={"HX-Request": "true", "HX-Target": "results"})
    body = r.content.decode()
    assert "<html" not in body and 'id="chain-nat-KUBE-SERVICES"' in body


def test_it_says_when_nothing_matches(client: Client, kube_ruleset: models.Ruleset) -> None:
    assert "No rule matches" in page(client, kube_ruleset, q="no-such-text-anywhere")


def test_it_escapes_uploaded_text_in_html(client: Client, hostile_ruleset: models.Ruleset) -> None:
    body = page(client, hostile_ruleset)
    assert "<script>alert(1)</script>" not in body
    assert "<img src=x" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "&lt;img src=x onerror=alert(2)&gt;" in body
    assert "&lt;b&gt;evil&lt;/b&gt;" in body  # the ruleset's name
    body = page(client, hostile_ruleset, q="<script>")
    assert "<mark>&lt;script&gt;</mark>" in body


def test_it_escapes_uploaded_text_in_the_call_graph(client: Client, hostile_ruleset: models.Ruleset, hostile_text: str) -> None:
    dot = client.get(reverse("netviz:ruleset_callgraph_dot", args=[hostile_ruleset.pk])).content.decode()
    # The KUBE-SVC chain's subtitle is the service from the comment, escaped
    # for a quoted DOT string: \" \\ \{ \| \< …
    assert "service ns/\\<script\\>alert(1)\\</script\\>\\{a\\|b\\}\\\"q\\\\x:https" in dot
    r = client.get(reverse("netviz:ruleset_callgraph_svg", args=[hostile_ruleset.pk]))
    assert r.status_code == 200 and r["Content-Type"] == "image/svg+xml"
    svg = r.content.decode()
    assert "<script>" not in svg
    root = ET.fromstring(svg)  # well-formed XML: nothing broke out
    texts = ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]
    assert f"service {hostile_text}" in texts
    fragment = client.get(reverse("netviz:ruleset_callgraph", args=[hostile_ruleset.pk])).content.decode()
    assert "<script>" not in fragment
    assert "&lt;script&gt;" in fragment


def test_it_draws_the_call_graph_with_links_to_chains(client: Client, kube_ruleset: models.Ruleset) -> None:
    r = client.get(reverse("netviz:ruleset_callgraph", args=[kube_ruleset.pk]))
    body = r.content.decode()
    assert "<svg" in body and "<?xml" not in body
    url = reverse("netviz:ruleset", args=[kube_ruleset.pk])
    assert f'href="{url}#chain-nat-KUBE-SERVICES"' in body
    # -g edges dashed, -j solid: this dump has only jumps.
    assert dashed_edges(body) == 0


def test_it_draws_one_table(client: Client, calico_ruleset: models.Ruleset) -> None:
    r = client.get(reverse("netviz:ruleset_callgraph", args=[calico_ruleset.pk]), {"table": "filter"})
    body = r.content.decode()
    assert "cali-from-wl-dispatch" in body and "cali-nat-outgoing" not in body
    # the -g dispatch to 6 cali-fw-* and 6 cali-tw-*, and cali-INPUT -g cali-wl-to-host
    assert dashed_edges(body) == 13
    r = client.get(reverse("netviz:ruleset_callgraph", args=[calico_ruleset.pk]), {"table": "nosuch"})
    assert r.status_code == 404


def test_it_offers_svg_and_dot_downloads(client: Client, calico_ruleset: models.Ruleset) -> None:
    r = client.get(reverse("netviz:ruleset_callgraph_dot", args=[calico_ruleset.pk]))
    assert r.status_code == 200 and "attachment" in r["Content-Disposition"]
    assert r.content.decode().startswith("digraph callgraph {")
    r = client.get(reverse("netviz:ruleset_callgraph_svg", args=[calico_ruleset.pk]))
    assert r.status_code == 200
    ET.fromstring(r.content)


@override_settings(NETVIZ_RENDER_MAX_DOT=500)
def test_it_explains_a_graph_too_large_to_draw(client: Client, kube_ruleset: models.Ruleset) -> None:
    body = client.get(reverse("netviz:ruleset_callgraph", args=[kube_ruleset.pk])).content.decode()
    assert "too large to draw" in body and "DOT file" in body
    r = client.get(reverse("netviz:ruleset_callgraph_svg", args=[kube_ruleset.pk]))
    assert r.status_code == 422


def test_it_downloads_the_original_dump(client: Client, calico_ruleset: models.Ruleset) -> None:
    r = client.get(reverse("netviz:ruleset_source", args=[calico_ruleset.pk]))
    assert r.status_code == 200 and r.content.decode() == demo_text("calico-node")
    r = client.get(reverse("netviz:ruleset_ipsets_source", args=[calico_ruleset.pk]))
    assert r.content.decode() == demo_text("calico-node", "ipsets.ipset")


def test_it_links_to_the_trace_page_hosts_and_saved_traces(client: Client, kube_ruleset: models.Ruleset) -> None:
    store.store_host(name="k8s1", interfaces=[{"name": "eth0", "addrs": ["10.210.52.212/24"]}], routes=[], ruleset=kube_ruleset)
    models.SavedTrace.objects.create(ruleset=kube_ruleset, title="pod to api", packet={}, verdict="ACCEPT")
    body = page(client, kube_ruleset)
    assert f'href="{reverse("netviz:trace", args=[kube_ruleset.pk])}"' in body
    assert "k8s1" in body and "pod to api" in body


def test_it_keeps_private_rulesets_private(client: Client, django_user_model: type) -> None:
    owner = django_user_model.objects.create_user("bob")
    rs = store.store_ruleset(name="private", source=demo_text("docker-host"), owner=owner)
    for name in ("netviz:ruleset", "netviz:ruleset_source", "netviz:ruleset_callgraph_dot"):
        assert client.get(reverse(name, args=[rs.pk])).status_code == 404
    assert client.get(reverse("netviz:ruleset", args=[rs.pk]), {"share": rs.share_token}).status_code == 200
    client.force_login(owner)
    assert client.get(reverse("netviz:ruleset", args=[rs.pk])).status_code == 200


def test_it_loads_chain_rules_lazily_for_big_rulesets(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pages_rulesets, "INLINE_RULES", 10)
    monkeypatch.setattr(pages_rulesets, "RULES_PER_PAGE", 4)
    rs = store.store_ruleset(name="kp", source=demo_text("kube-proxy-node"))
    body = page(client, rs)
    services = models.Chain.objects.get(table__ruleset=rs, table__name="nat", name="KUBE-SERVICES")
    lazy = reverse("netviz:ruleset_chain_rules", args=[rs.pk, services.pk])
    assert f'hx-get="{lazy}"' in body and 'hx-trigger="toggle once"' in body
    assert "kube-system/kube-dns:dns cluster IP" not in body  # rules not rendered yet
    r = client.get(lazy, {"page": 2}, headers={"HX-Request": "true"})
    fragment = r.content.decode()
    assert "rules 5–6 of 6" in fragment
    assert "<html" not in fragment


def test_it_paginates_chains_and_keeps_links_working(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pages_rulesets, "CHAINS_PER_PAGE", 10)
    rs = store.store_ruleset(name="kp", source=demo_text("kube-proxy-node"))
    body = page(client, rs)
    assert "page 1 of" in body
    # KUBE-SERVICES is further down: its link goes to its page.
    r = client.get(reverse("netviz:ruleset_chain", args=[rs.pk, "nat", "KUBE-SERVICES"]))
    assert r.status_code == 302
    target = r["Location"]
    assert re.fullmatch(rf"/rulesets/{rs.pk}/\?page=\d+#chain-nat-KUBE-SERVICES", target)
    assert 'id="chain-nat-KUBE-SERVICES"' in client.get(target.split("#")[0]).content.decode()


def test_it_lists_a_real_dump_with_counters(client: Client) -> None:
    rs = store.store_ruleset(name="k3s", source=shared_dump("k3s-kube-proxy-docker-counters.rules"))
    body = page(client, rs)
    assert "<th class=\"num\">Packets</th>" in body


def test_it_lists_rulesets(client: Client, kube_ruleset: models.Ruleset) -> None:
    body = client.get(reverse("netviz:ruleset_list")).content.decode()
    assert "kube-proxy node" in body

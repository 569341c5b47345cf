"""The ruleset page of a node with an nft listing: tables by family, base
chains with type, hook and priority, regular chains, rules with counters and
comments, sets and maps (searchable), the call graph with verdict-map edges,
iptables-nft tables noted, hostile names escaped."""

from __future__ import annotations

import json
import re
from urllib.parse import urlencode

import pytest
from django.test import Client
from django.urls import reverse
from webdumps import demo_text

from netviz import models, store
from netviz.engine.dot import chain_anchor

pytestmark = pytest.mark.django_db

# nft's own syntax keeps names to identifiers, but a JSON listing (what a
# collector stores) can carry any string as a table, chain or set name.
HOSTILE_NAME = 'in<script>alert(1)</script>"q&amp;\\{a|b}'
HOSTILE_LISTING = json.dumps({"nftables": [
    {"table": {"family": "inet", "name": "<b>x</b>"}},
    {"set": {"family": "inet", "table": "<b>x</b>", "name": "s<i>", "type": "ipv4_addr",
             "elem": ["10.0.0.1", "<u>"]}},
    {"chain": {"family": "inet", "table": "<b>x</b>", "name": HOSTILE_NAME,
               "type": "filter", "hook": "input", "prio": 0, "policy": "accept"}},
    {"chain": {"family": "inet", "table": "<b>x</b>", "name": "j<q>"}},
    {"rule": {"family": "inet", "table": "<b>x</b>", "chain": HOSTILE_NAME,
              "comment": "<img src=x onerror=alert(2)>",
              "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}},
                                  "right": "@s<i>"}},
                       {"counter": {"packets": 3, "bytes": 180}},
                       {"jump": {"target": "j<q>"}}]}},
    {"rule": {"family": "inet", "table": "<b>x</b>", "chain": "j<q>", "expr": [{"accept": None}]}},
]})


@pytest.fixture
def rhel(db: None) -> models.Ruleset:
    return store.store_ruleset(
        name="rhel", source=demo_text("rhel-firewalld-node"),
        nftables_source=demo_text("rhel-firewalld-node", "ruleset.nft"),
    )


@pytest.fixture
def router(db: None) -> models.Ruleset:
    return store.store_ruleset(name="router", source="", nftables_source=demo_text("home-router", "ruleset.nft"))


def page(client: Client, rs: models.Ruleset, query: str = "") -> str:
    r = client.get(reverse("netviz:ruleset", args=[rs.pk]) + query)
    assert r.status_code == 200
    return r.content.decode()


def test_it_lists_tables_by_family_with_base_chains(client: Client, rhel: models.Ruleset) -> None:
    body = page(client, rhel)
    assert "<code>table inet firewalld</code>" in body
    assert "<code>table ip kube-proxy</code>" in body
    # firewalld's filter_INPUT: filter type, input hook, priority filter + 10.
    row = re.search(r'<tr><td><a href="#([^"]+)">filter_INPUT</a></td>(.*?)</tr>', body, re.S)
    assert row is not None
    assert row.group(1) == chain_anchor("inet firewalld", "filter_INPUT")
    cells = re.sub(r"<[^>]+>", "|", row.group(2))
    assert "filter" in cells and "input" in cells and "10 |(filter + 10)" in cells
    assert f'id="{chain_anchor("inet firewalld", "filter_IN_public_allow")}"' in body
    assert "regular chain" in body


def test_it_notes_the_tables_iptables_nft_manages(client: Client, rhel: models.Ruleset) -> None:
    body = page(client, rhel)
    assert "<code>table ip filter</code>" in body
    assert "taken from the iptables dump" in body
    assert "table ip filter is managed by iptables-nft" in body


def test_it_shows_rules_with_counters_comments_and_jumps(client: Client, router: models.Ruleset) -> None:
    body = page(client, router)
    assert "meta l4proto . th dport @lan_services" in body
    assert "<td class=\"num\">310</td><td class=\"num\">24140</td>" in body
    assert "/* answer pings, not floods */" in body
    # The verdict map's jumps are edges: input_lan is called from input.
    lan = body[body.index(f'id="{chain_anchor("inet filter", "input_lan")}"'):]
    assert re.search(r'from <a href="#chain-nft-inet-filter-input">input</a> #2', lan[:2000])


def test_it_lists_sets_and_maps_with_their_elements(client: Client, router: models.Ruleset) -> None:
    body = page(client, router)
    assert "<code>set blocklist</code>" in body
    assert "<code>185.220.100.0/22</code>" in body
    assert "<code>map port_forwards</code>" in body
    assert "inet_proto . inet_service : ipv4_addr . inet_service" in body
    assert "<code>tcp . 2222 : 192.168.1.10 . 22</code>" in body


def test_it_searches_rules_and_set_elements(client: Client, router: models.Ruleset) -> None:
    body = page(client, router, "?nq=2222")
    assert "<mark>2222</mark>" in body
    assert "1 set element" in body
    assert "<code>set blocklist</code>" not in body
    r = client.get(reverse("netviz:ruleset", args=[router.pk]) + "?nq=203.0.113",
                   headers={"HX-Request": "true", "HX-Target": "nftables-body"})
    part = r.content.decode()
    assert "<html" not in part and "<mark>203.0.113</mark>" in part
    assert "<code>map port_forwards</code>" not in part


def test_the_call_graph_has_nft_chains_and_vmap_edges(client: Client, router: models.Ruleset) -> None:
    dot = client.get(reverse("netviz:ruleset_callgraph_dot", args=[router.pk])).content.decode()
    assert 'cluster_inet filter' in dot
    assert '"inet filter:input" -> "inet filter:input_lan"' in dot
    r = client.get(reverse("netviz:ruleset_callgraph", args=[router.pk]) + "?table=inet+filter")
    assert r.status_code == 200 and "<svg" in r.content.decode()
    assert client.get(reverse("netviz:ruleset_callgraph", args=[router.pk]) + "?table=inet+nope").status_code == 404


def test_a_chain_link_lands_on_the_nft_chain(client: Client, router: models.Ruleset) -> None:
    r = client.get(reverse("netviz:ruleset_chain", args=[router.pk, "inet filter", "input"]) + "?rule=2")
    assert r.status_code == 302
    assert r["Location"].endswith("#" + chain_anchor("inet filter", "input") + "-rule-2")
    assert client.get(reverse("netviz:ruleset_chain", args=[router.pk, "inet filter", "nope"])).status_code == 404


def test_it_downloads_the_listing(client: Client, router: models.Ruleset) -> None:
    r = client.get(reverse("netviz:ruleset_nftables_source", args=[router.pk]))
    assert r.status_code == 200 and r.content.decode() == router.nftables_source
    assert "Download dump" not in page(client, router)


def test_bridge_tables_are_shown_not_traced(client: Client) -> None:
    rs = store.store_ruleset(name="br", source="", nftables_source=(
        "table bridge filter {\n\tchain forward {\n\t\ttype filter hook forward priority -200; policy accept;\n"
        "\t\tether type arp accept\n\t}\n}\n"))
    body = page(client, rs)
    assert "<code>table bridge filter</code>" in body
    assert "bridge family: shown, not traced" in body


def test_it_escapes_hostile_names_comments_and_elements(client: Client) -> None:
    rs = store.store_ruleset(name="hostile", source="", nftables_source=HOSTILE_LISTING)
    body = page(client, rs)
    for raw in ("<script>alert(1)", "<img src=x", "<b>x</b>", "<i>", "<u>", "<q>"):
        assert raw not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    dot = client.get(reverse("netviz:ruleset_callgraph_dot", args=[rs.pk])).content.decode()
    # DOT strings keep the name, with DOT's own escapes: the quote cannot end it.
    assert 'in<script>alert(1)</script>\\"q' in dot
    svg = client.get(reverse("netviz:ruleset_callgraph_svg", args=[rs.pk]))
    assert svg.status_code == 200
    text = svg.content.decode()
    assert "<script>" not in text and "<img" not in text


def test_it_escapes_hostile_nft_names_in_the_flow_diagram(client: Client) -> None:
    listing = json.loads(HOSTILE_LISTING)
    listing["nftables"][2]["chain"]["hook"] = "output"
    rs = store.store_ruleset(name="hostile", source="", nftables_source=json.dumps(listing))
    packet = urlencode({"proto": "tcp", "src": "10.0.0.1", "sport": "40000", "dst": "10.0.0.2",
                        "dport": "80", "tcp_flags": "S", "ctstate": "NEW"})
    page_body = client.get(reverse("netviz:trace", args=[rs.pk]) + "?" + packet).content.decode()
    assert "<script>alert(1)" not in page_body and "<b>x</b>" not in page_body
    dot = client.get(reverse("netviz:trace_flow", args=[rs.pk, "dot"]) + "?" + packet).content.decode()
    # The box of the hostile chain: its id is percent-encoded, its label DOT-escaped.
    assert "flow-OUTPUT-nft-inet-~3Cb~3Ex~3C~2Fb~3E-in~3Cscript~3E" in dot
    assert r'in\<script\>alert(1)\</script\>\"q&amp;amp;\\\{a\|b\}' in dot
    svg = client.get(reverse("netviz:trace_flow", args=[rs.pk, "svg"]) + "?" + packet)
    assert svg.status_code == 200
    text = svg.content.decode()
    assert "<script>" not in text and "<b>" not in text
    assert "in&lt;script&gt;alert(1)" in text


def test_a_comment_is_shown_once_under_its_rule(client: Client, router: models.Ruleset) -> None:
    body = page(client, router)
    assert body.count("answer pings, not floods") == 1
    assert "limit rate 5/second accept</td>" in body or "limit rate 5/second accept<div" in body

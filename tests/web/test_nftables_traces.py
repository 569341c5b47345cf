"""Tracing a node uploaded with an iptables-save dump and an nft listing:
the packet firewalld drops is shown dropped, by firewalld's rule, on the
trace page, in the flow diagram, the rule-by-rule view and the downloads."""

from __future__ import annotations

import html
import json
import re
from urllib.parse import urlencode

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from webdumps import demo_text

from netviz import models

pytestmark = pytest.mark.django_db

PORT_8080 = {
    "proto": "tcp", "src": "192.168.122.1", "sport": "50808", "dst": "192.168.122.20",
    "dport": "8080", "tcp_flags": "S", "in_iface": "eth0", "mark": "0x0", "ctstate": "NEW", "seed": "0",
}
FIREWALLD = "flow-INPUT-nft-inet-firewalld-filter_INPUT"


@pytest.fixture
def rhel(client: Client) -> models.Ruleset:
    # Uploaded together, through the upload page, as a user would.
    r = client.post(reverse("netviz:upload"), {
        "name": "rhel worker",
        "dump_text": demo_text("rhel-firewalld-node"),
        "nftables_text": demo_text("rhel-firewalld-node", "ruleset.nft"),
        "host_interfaces": "eth0 192.168.122.20/24\ncni0 10.244.1.1/24",
        "host_routes": "default via 192.168.122.1 dev eth0\n10.244.2.0/24 via 192.168.122.21 dev eth0",
    })
    assert r.status_code == 302
    return models.Ruleset.objects.get(name="rhel worker")


def query(rs: models.Ruleset, **changes: str) -> str:
    return urlencode({**PORT_8080, "host": str(rs.hosts.get().pk), **changes})


def test_the_packet_firewalld_drops_is_dropped_by_the_firewalld_rule(client: Client, rhel: models.Ruleset) -> None:
    r = client.get(reverse("netviz:trace", args=[rhel.pk]) + "?" + query(rhel))
    body = html.unescape(r.content.decode())  # graphviz writes "-" in ids as &#45;
    assert r.status_code == 200
    assert re.search(r">DROP</span>\s*<span[^>]*>at inet firewalld filter_INPUT rule 7 \(line 308\)<", body)
    assert "reject with icmpx admin-prohibited" in body
    # The flow diagram: the iptables filter table and firewalld's chain
    # after it are both on the packet's way; firewalld's is the drop point.
    assert 'id="flow-INPUT-filter"' in body and f'id="{FIREWALLD}"' in body
    assert re.search(f'<g id="{FIREWALLD}" class="node [^"]* lit [^"]*drop"', body)
    assert re.search('<g id="flow-INPUT-filter" class="node [^"]* lit ', body)
    assert body.index('id="flow-INPUT-filter"') < body.index(f'id="{FIREWALLD}"')


def test_the_trace_json_carries_the_nft_hops(client: Client, rhel: models.Ruleset) -> None:
    r = client.get(reverse("netviz:trace_json", args=[rhel.pk]) + "?" + query(rhel))
    data = json.loads(r.content)
    assert data["verdict"] == "DROP"
    assert data["summary"] == "dropped by inet firewalld filter_INPUT rule 7 (line 308)"
    assert {"table": "filter", "chain": "INPUT", "policy": "ACCEPT"} in data["hops"]
    assert data["hops"][-1] == {"family": "inet", "table": "firewalld", "chain": "filter_INPUT",
                                "rule": 7, "verdict": "DROP"}


def test_the_scenario_download_has_the_listing(client: Client, rhel: models.Ruleset) -> None:
    r = client.get(reverse("netviz:trace_scenario", args=[rhel.pk]) + "?" + query(rhel))
    scenario = json.loads(r.content)
    assert scenario["nftables"] == rhel.nftables_source
    assert scenario["ruleset"] == rhel.source


def test_an_nft_hop_links_to_its_rule(client: Client, rhel: models.Ruleset) -> None:
    body = client.get(reverse("netviz:trace", args=[rhel.pk]) + "?" + query(rhel)).content.decode()
    link = reverse("netviz:ruleset_chain", args=[rhel.pk, "inet firewalld", "filter_INPUT"]) + "?rule=7"
    assert link.replace(" ", "%20") in body
    r = client.get(link)
    assert r.status_code == 302 and r["Location"].endswith("#chain-nft-inet-firewalld-filter_INPUT-rule-7")


def test_an_accepted_packet_lights_both_tables(client: Client, rhel: models.Ruleset) -> None:
    body = html.unescape(
        client.get(reverse("netviz:trace", args=[rhel.pk]) + "?" + query(rhel, dport="22")).content.decode()
    )
    assert "delivered to a local process" in body
    node = re.search(f'<g id="{FIREWALLD}" class="([^"]*)"', body)
    assert node is not None and " lit " in node.group(1) + " " and "drop" not in node.group(1)
    assert re.search('<g id="flow-INPUT-filter" class="node [^"]* lit ', body)


def test_the_demo_node_keeps_its_traces(client: Client) -> None:
    import io

    call_command("load_demo", stdout=io.StringIO())
    rs = models.Ruleset.objects.get(name__startswith="RHEL node")
    dropped = rs.traces.get(title__contains="firewalld rejects")
    assert dropped.verdict == "DROP"
    assert dropped.result["hops"][-1]["table"] == "firewalld"
    router = models.Ruleset.objects.get(name__startswith="Home router")
    forward = router.traces.get(title__contains="2222")
    assert forward.verdict == "ACCEPT" and forward.result["packet_out"]["dst"] == "192.168.1.10"


def test_the_rule_by_rule_view_names_the_deciding_expression(client: Client, rhel: models.Ruleset) -> None:
    body = html.unescape(client.get(reverse("netviz:trace", args=[rhel.pk]) + "?" + query(rhel)).content.decode())
    assert "tcp dport 8080 ≠ 22" in body
    assert 'iifname "eth0" ≠ "lo"' in body

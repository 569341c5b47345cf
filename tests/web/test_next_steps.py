"""The links that take a first-time user to the next step: the broken
flannel node from tests/data/realworld, traced by the real engine."""

from __future__ import annotations

import html
import re
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlparse

import pytest
from django.test import Client
from django.urls import reverse

from netviz import models
from netviz.store import store_host, store_ruleset

BROKEN = Path(__file__).resolve().parents[1] / "data" / "realworld" / "kube-proxy-flannel-centos7-BROKEN.rules"
pytestmark = pytest.mark.django_db

# The CentOS 7 node of kube-proxy-flannel-centos7-BROKEN.rules: the API
# server's endpoint 192.168.1.5:6443 is this node, pods hang off cni0.
FLANNEL_HOST = {
    "interfaces": [
        {"name": "eth0", "addrs": ["192.168.1.5/24"]},
        {"name": "flannel.1", "addrs": ["10.1.0.0/32"]},
        {"name": "cni0", "addrs": ["10.1.0.1/24"]},
    ],
    "routes": ["default via 192.168.1.1 dev eth0"],
}
POD_TO_APISERVER = {
    "proto": "tcp", "src": "10.1.0.5", "sport": "40000", "dst": "10.2.0.1", "dport": "443",
    "tcp_flags": "S", "in_iface": "cni0", "mark": "0x0", "ctstate": "NEW", "seed": "0",
}


@pytest.fixture
def broken() -> models.Ruleset:
    rs = store_ruleset(name="flannel BROKEN", source=BROKEN.read_text(encoding="utf-8"))
    store_host(name="centos node", interfaces=FLANNEL_HOST["interfaces"],
               routes=FLANNEL_HOST["routes"], ruleset=rs)
    return rs


def trace_url(rs: models.Ruleset) -> str:
    host = rs.hosts.first()
    assert host is not None
    return reverse("netviz:trace", args=[rs.pk]) + "?" + urlencode(
        {**POD_TO_APISERVER, "host": str(host.pk)})


def hrefs(page: str, cls: str) -> list[str]:
    return [html.unescape(h) for h in re.findall(rf'href="([^"]*)"[^>]*class="{cls}"', page)]


def test_it_links_the_drop_point_to_its_rule_on_the_ruleset_page(client: Client, broken: models.Ruleset) -> None:
    page = client.get(trace_url(broken)).content.decode()
    assert "DROP" in page and "filter INPUT rule 13" in page
    [link] = hrefs(page, "drop-rule-link")
    assert link == reverse("netviz:ruleset_chain", args=[broken.pk, "filter", "INPUT"]) + "?rule=13"
    response = client.get(link)
    assert response.status_code == 302
    rule = models.Rule.objects.get(chain__table__ruleset=broken, chain__table__name="filter",
                                   chain__name="INPUT", index=13)
    assert rule.text == "-A INPUT -j REJECT --reject-with icmp-host-prohibited"
    assert response["Location"] == reverse("netviz:ruleset", args=[broken.pk]) + f"#rule-{rule.pk}"
    # … and that anchor is on the ruleset page.
    assert f'id="rule-{rule.pk}"' in client.get(response["Location"]).content.decode()


def test_it_keeps_the_chain_anchor_for_an_unknown_rule_number(client: Client, broken: models.Ruleset) -> None:
    url = reverse("netviz:ruleset_chain", args=[broken.pk, "filter", "INPUT"]) + "?rule=999"
    assert client.get(url)["Location"].endswith("#chain-filter-INPUT")


def test_it_links_a_rule_detail_to_the_ruleset_page(client: Client, broken: models.Ruleset) -> None:
    page = client.get(trace_url(broken) + "&step=3").content.decode()
    [link] = hrefs(page, "rule-page-link")
    assert "?rule=" in link and "/chain/nat/" in link


def test_it_offers_compare_with_the_left_side_filled_in(client: Client, broken: models.Ruleset) -> None:
    page = client.get(trace_url(broken)).content.decode()
    [link] = hrefs(page, "compare-link")
    query = parse_qs(urlparse(link).query)
    assert query["left"] == [str(broken.pk)] and query["pick"] == ["right"]
    assert query["packet"] == ["tcp 10.1.0.5:40000 > 10.2.0.1:443 in cni0"]
    compare = client.get(link).content.decode()
    # Waiting for the right side: the form is filled in, nothing is compared yet.
    assert "Choose the <strong>right ruleset</strong>" in compare
    assert 'value="tcp 10.1.0.5:40000 &gt; 10.2.0.1:443 in cni0"' in compare
    assert f'<option value="{broken.pk}" selected>' in compare
    assert "Pick two setups and a packet" in compare and "Hops, aligned" not in compare


def test_the_compare_form_still_runs_without_pick(client: Client, broken: models.Ruleset) -> None:
    query = urlencode({"left": broken.pk, "packet": "tcp 10.1.0.5:40000 > 10.2.0.1:443 in cni0"})
    page = client.get(reverse("netviz:compare") + "?" + query).content.decode()
    assert "Choose the <strong>right ruleset</strong>" not in page
    assert "Hops, aligned" in page and "DROP" in page


def test_it_suggests_packets_from_the_dump_and_the_host(client: Client, broken: models.Ruleset) -> None:
    page = html.unescape(client.get(reverse("netviz:trace", args=[broken.pk])).content.decode())
    assert "Workload on cni0 to service 10.2.0.1:443 (default/kubernetes:https cluster IP)" in page
    # flannel.1 is a /32: the forwarded example goes to the cni0 LAN, not to this host.
    assert "HTTPS forwarded to 10.1.0.2" in page and "HTTPS forwarded to 10.1.0.0" not in page
    [query] = re.findall(r'href="\?([^"]*in_iface=cni0[^"]*)"', page)
    assert "mark=0x0" in query and "seed=0" in query
    traced = client.get(reverse("netviz:trace", args=[broken.pk]) + "?" + query).content.decode()
    assert "filter INPUT rule 13" in traced  # the broken node's REJECT, found from the suggestion


def test_a_saved_trace_offers_existing_lessons(client: Client, broken: models.Ruleset) -> None:
    # made in this browser without an account: the only one that may add to it
    client.post(reverse("netviz:lesson_create"), {"title": "Why pods cannot reach the API", "description": ""})
    lesson = models.Lesson.objects.get(title="Why pods cannot reach the API")
    query = urlparse(trace_url(broken)).query
    response = client.post(reverse("netviz:trace_save", args=[broken.pk]), {"query": query})
    saved_page = client.get(response["Location"]).content.decode()
    assert "Add to a new lesson" in saved_page
    assert f'<option value="{lesson.pk}">Why pods cannot reach the API</option>' in saved_page
    saved = models.SavedTrace.objects.get()
    added = client.post(reverse("netviz:lesson_add_step"),
                        {"saved_trace": saved.pk, "lesson": lesson.pk})
    assert added["Location"].startswith(reverse("netviz:lesson", args=[lesson.pk]))
    assert lesson.steps.get().saved_trace == saved


def test_an_upload_lands_on_its_ruleset_with_packets_to_trace(client: Client) -> None:
    response = client.post(reverse("netviz:upload"), {
        "dump_text": BROKEN.read_text(encoding="utf-8"), "name": "centos node",
        "host_interfaces": "eth0 UP 192.168.1.5/24\nflannel.1 UNKNOWN 10.1.0.0/32\ncni0 UP 10.1.0.1/24\n",
        "host_routes": "default via 192.168.1.1 dev eth0\n",
    }, follow=True)
    page = html.unescape(response.content.decode())
    assert "Uploaded 86 rules in 38 chains. Next: pick a packet below" in page
    rs = models.Ruleset.objects.get(name="centos node")
    trace = reverse("netviz:trace", args=[rs.pk])
    links = re.findall(rf'href="{re.escape(trace)}\?([^"]*)">([^<]*)</a>', page)
    labels = [label for _, label in links]
    assert "Workload on cni0 to service 10.2.0.1:443 (default/kubernetes:https cluster IP)" in labels
    query = dict(links)  # query → label; follow the workload one to the REJECT
    [pod] = [q for q, label in query.items() if label.startswith("Workload on cni0")]
    assert "filter INPUT rule 13" in client.get(trace + "?" + pod).content.decode()
    # The message is shown once.
    assert "Uploaded 86 rules" not in client.get(reverse("netviz:ruleset", args=[rs.pk])).content.decode()


def test_a_ruleset_without_a_host_says_the_default_host_is_assumed(client: Client, broken: models.Ruleset) -> None:
    bare = store_ruleset(name="no host", source=broken.source)
    page = client.get(reverse("netviz:ruleset", args=[bare.pk])).content.decode()
    assert "a minimal default host is assumed" in page and "DNS query sent by this host" in page


def test_home_points_to_the_three_jobs(client: Client, broken: models.Ruleset) -> None:
    page = html.unescape(client.get(reverse("netviz:home")).content.decode())
    assert "Debug a dropped packet" in page and "Compare two setups" in page and "Teach a path" in page
    # Without saved comparisons or lessons the links go to the empty pages.
    assert f'href="{reverse("netviz:compare")}">Compare →' in page
    assert f'href="{reverse("netviz:lesson_list")}">Lessons →' in page


def test_the_ruleset_list_links_straight_to_tracing(client: Client, broken: models.Ruleset) -> None:
    page = client.get(reverse("netviz:ruleset_list")).content.decode()
    assert f'<a href="{reverse("netviz:trace", args=[broken.pk])}" aria-label="Trace a packet through flannel BROKEN">' in page

"""The trace page, its htmx partials, downloads and saved traces — against
real dumps from tests/data/realworld, traced by the real engine."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from django.test import Client
from django.urls import reverse

from netviz import models
from netviz.engine.pipeline import trace_scenario
from netviz.scenario import scenario_from_dict
from netviz.store import store_host, store_ruleset

REALWORLD = Path(__file__).resolve().parents[1] / "data" / "realworld"
pytestmark = pytest.mark.django_db

DOCKER_HOST = {
    "interfaces": [
        {"name": "eth0", "addrs": ["192.0.2.10/24"]},
        {"name": "docker0", "addrs": ["172.17.0.1/16"]},
    ],
    "routes": ["default via 192.0.2.1 dev eth0"],
}
# Docker publishes -p 10080:80 to 172.17.0.2 (docker-default-published-port.rules).
PUBLISHED = {
    "proto": "tcp", "src": "198.51.100.7", "sport": "40000", "dst": "192.0.2.10",
    "dport": "10080", "tcp_flags": "S", "in_iface": "eth0", "mark": "0x0", "ctstate": "NEW",
    "seed": "0",
}


def dump(name: str) -> str:
    return (REALWORLD / name).read_text(encoding="utf-8")


@pytest.fixture
def docker() -> models.Ruleset:
    rs = store_ruleset(name="docker <node> & co", source=dump("docker-default-published-port.rules"))
    store_host(name="docker host", interfaces=DOCKER_HOST["interfaces"],
               routes=DOCKER_HOST["routes"], ruleset=rs)
    return rs


def q(rs: models.Ruleset, **changes: Any) -> str:
    data = {**PUBLISHED, "host": str(rs.hosts.first().pk), **changes}  # type: ignore[union-attr]
    return urlencode(data)


def url(name: str, rs: models.Ruleset, *args: Any) -> str:
    return reverse(f"netviz:{name}", args=[rs.pk, *args])


def test_it_shows_the_form_and_examples_without_a_query(client: Client, docker: models.Ruleset) -> None:
    r = client.get(url("trace", docker))
    assert r.status_code == 200
    body = r.content.decode()
    assert 'id="trace-form"' in body
    assert "autofocus" in body
    assert "Describe a packet" in body
    assert 'hx-push-url="true"' in body


def test_it_renders_verdict_and_lit_path_from_a_permalink(client: Client, docker: models.Ruleset) -> None:
    r = client.get(url("trace", docker) + "?" + q(docker))
    assert r.status_code == 200
    # graphviz writes "-" in ids as &#45;; the browser's DOM has "-".
    body = html.unescape(r.content.decode())
    # DNAT to the container, forwarded through docker0.
    assert "verdict-ACCEPT" in body
    assert "dst 192.0.2.10:10080 → 172.17.0.2:80" in body
    assert 'id="flow-PREROUTING-nat"' in body
    assert 'class="node flow-node flow-table lit hop-' in body
    # The FORWARD filter table was consulted and is lit; INPUT's was not.
    forward = body.split('id="flow-FORWARD-filter"', 1)[1].split(">", 1)[0]
    assert " lit " in forward + " "
    inputs = body.split('id="flow-INPUT-filter"', 1)[1].split(">", 1)[0]
    assert "lit" not in inputs
    # Every chain entered, with rule rows and line numbers.
    assert "DOCKER" in body and 'class="step-row' in body
    assert "<html" in body


def test_it_returns_only_the_workspace_to_htmx(client: Client, docker: models.Ruleset) -> None:
    r = client.get(url("trace", docker) + "?" + q(docker), HTTP_HX_REQUEST="true")
    body = r.content.decode()
    assert r.status_code == 200
    assert body.lstrip().startswith('<div id="trace-workspace"')
    assert "<html" not in body
    assert "verdict-ACCEPT" in body
    assert "HX-Request" in r["Vary"]
    # The pushed URL is the canonical permalink, and it rebuilds the same page.
    pushed = r["HX-Push-Url"]
    assert pushed.startswith(url("trace", docker) + "?proto=tcp&src=198.51.100.7&")
    assert "verdict-ACCEPT" in client.get(pushed).content.decode()


def test_it_gives_the_full_page_on_htmx_history_restore(client: Client, docker: models.Ruleset) -> None:
    r = client.get(url("trace", docker) + "?" + q(docker), HTTP_HX_REQUEST="true",
                   HTTP_HX_HISTORY_RESTORE_REQUEST="true")
    assert "<html" in r.content.decode()


def test_it_shows_validation_errors_inline(client: Client, docker: models.Ruleset) -> None:
    r = client.get(url("trace", docker) + "?" + q(docker, src="10.0.0.300", tcp_flags="SX"))
    body = r.content.decode()
    assert r.status_code == 200
    assert "is not an IP address" in body
    assert "Unknown flag letter X" in body
    assert "field-error" in body
    assert "verdict-banner" not in body


def test_it_refuses_an_address_of_the_other_family(client: Client, docker: models.Ruleset) -> None:
    r = client.get(url("trace", docker) + "?" + q(docker, dst="2001:db8::1"))
    assert "This ruleset is ipv4" in r.content.decode()


def test_it_shows_a_drop_and_its_rule(client: Client) -> None:
    rs = store_ruleset(name="centos broken", source=dump("kube-proxy-flannel-centos7-BROKEN.rules"))
    r = client.get(url("trace", rs) + "?" + urlencode({
        "proto": "tcp", "src": "10.244.0.5", "sport": "40000", "dst": "192.0.2.10",
        "dport": "6443", "tcp_flags": "S", "in_iface": "eth0", "ctstate": "NEW", "host": "default",
    }))
    body = html.unescape(r.content.decode())
    assert r.status_code == 200
    # No host profile: the default host is explained.
    assert "No host profile for this ruleset" in body
    sc = scenario_from_dict({"ruleset": rs.source, "host": {
        "interfaces": [{"name": "eth0", "addrs": ["192.0.2.10/24"]},
                       {"name": "eth1", "addrs": ["198.51.100.1/24"]}],
        "routes": ["default via 192.0.2.1 dev eth0"]},
        "packet": {"proto": "tcp", "src": "10.244.0.5", "sport": 40000, "dst": "192.0.2.10",
                   "dport": 6443, "in_iface": "eth0"}})
    expected = trace_scenario(sc)
    assert f"verdict-{expected.verdict}" in body
    if expected.verdict == "DROP":
        assert "is-drop" in body
        assert "class=\"node flow-node flow-table lit hop-" in body and " drop" in body


def test_it_serves_the_flow_svg_and_dot(client: Client, docker: models.Ruleset) -> None:
    r = client.get(url("trace_flow", docker, "svg") + "?" + q(docker))
    assert r.status_code == 200
    assert r["Content-Type"] == "image/svg+xml"
    assert r["Content-Disposition"].startswith('attachment; filename="docker-node-co-flow-tcp-')
    assert b"<svg" in r.content and 'id="flow-FORWARD-filter"' in html.unescape(r.content.decode())
    r = client.get(url("trace_flow", docker, "dot") + "?" + q(docker))
    assert r["Content-Type"].startswith("text/vnd.graphviz")
    assert r.content.decode().startswith("digraph netfilter {")
    assert client.get(url("trace_flow", docker, "png") + "?" + q(docker)).status_code == 404


def test_it_serves_chain_graphs(client: Client, docker: models.Ruleset) -> None:
    extra = "&" + urlencode({"table": "nat", "chain": "PREROUTING", "hook": "PREROUTING"})
    r = client.get(url("trace_chain", docker, "svg") + "?" + q(docker) + extra)
    assert r.status_code == 200
    assert r["Content-Type"] == "image/svg+xml"
    svg = r.content.decode()
    assert "nat PREROUTING" in svg and "DOCKER" in svg
    r = client.get(url("trace_chain", docker, "dot") + "?" + q(docker) + extra)
    assert "chain-jump" in r.content.decode()


def test_it_serves_the_trace_json_with_hops(client: Client, docker: models.Ruleset) -> None:
    r = client.get(url("trace_json", docker) + "?" + q(docker))
    assert r.status_code == 200
    assert r["Content-Type"] == "application/json"
    assert r["Content-Disposition"].endswith('.json"')
    data = json.loads(r.content)
    assert data["verdict"] == "ACCEPT"
    assert data["packet_out"]["dst"] == "172.17.0.2"
    assert {"table": "nat", "chain": "DOCKER", "rule": 2, "verdict": "ACCEPT"} in data["hops"]


def test_it_serves_the_trace_as_text(client: Client, docker: models.Ruleset) -> None:
    r = client.get(url("trace_text", docker) + "?" + q(docker))
    assert r["Content-Type"] == "text/plain; charset=utf-8"
    text = r.content.decode()
    assert "Verdict:    ACCEPT" in text
    assert "dst 192.0.2.10:10080 → 172.17.0.2:80" in text


def test_it_serves_a_scenario_that_retraces_to_the_same_hops(client: Client, docker: models.Ruleset) -> None:
    r = client.get(url("trace_scenario", docker) + "?" + q(docker))
    assert r.status_code == 200
    assert "scenario" in r["Content-Disposition"]
    data = json.loads(r.content)
    assert data["ruleset"] == docker.source
    assert data["host"] == DOCKER_HOST
    assert data["packet"]["in_iface"] == "eth0"
    retraced = trace_scenario(scenario_from_dict(data))
    served = json.loads(client.get(url("trace_json", docker) + "?" + q(docker)).content)
    assert retraced.hops() == served["hops"]
    assert retraced.verdict == served["verdict"]


def test_it_refuses_downloads_without_a_packet(client: Client, docker: models.Ruleset) -> None:
    r = client.get(url("trace_json", docker))
    assert r.status_code == 400
    assert b"cannot trace" in r.content


def test_it_opens_a_rule_detail_as_a_partial(client: Client, docker: models.Ruleset) -> None:
    data = json.loads(client.get(url("trace_json", docker) + "?" + q(docker)).content)
    index = next(i for i, s in enumerate(data["steps"])
                 if s["kind"] == "rule" and s["result"] == "nomatch")
    r = client.get(url("trace_step", docker, index) + "?" + q(docker), HTTP_HX_REQUEST="true")
    body = r.content.decode()
    assert r.status_code == 200
    assert "<html" not in body
    assert 'class="clauses"' in body
    assert "badge-nomatch" in body
    # Without htmx the link lands on the page with the detail open.
    r = client.get(url("trace_step", docker, index) + "?" + q(docker))
    assert r.status_code == 302 and f"step={index}" in r["Location"]
    page = client.get(r["Location"]).content.decode()
    assert 'class="rule-detail"' in page
    assert client.get(url("trace_step", docker, 9999) + "?" + q(docker)).status_code == 404


def test_it_saves_a_trace_and_shows_it(client: Client, docker: models.Ruleset) -> None:
    r = client.post(url("trace_save", docker), {"query": q(docker), "title": "published <port>"})
    assert r.status_code == 302
    saved = models.SavedTrace.objects.get()
    assert saved.owner is None and saved.is_public
    assert saved.verdict == "ACCEPT"
    assert saved.result["hops"]
    assert r["Location"] == reverse("netviz:saved_trace", args=[saved.pk])
    page = client.get(r["Location"]).content.decode()
    assert "published &lt;port&gt;" in page
    assert "verdict-ACCEPT" in page
    assert "different result" not in page


def test_it_refuses_to_save_get_requests(client: Client, docker: models.Ruleset) -> None:
    assert client.get(url("trace_save", docker)).status_code == 405


def test_it_hides_private_rulesets(client: Client, docker: models.Ruleset) -> None:
    docker.is_public = False
    docker.save()
    assert client.get(url("trace", docker) + "?" + q(docker)).status_code == 404
    assert client.get(url("trace_json", docker) + "?" + q(docker)).status_code == 404


def test_it_escapes_user_text_in_html_svg_and_dot(client: Client) -> None:
    evil = '<img src=x onerror=alert(1)>"}]; x [label="pwn'
    source = (
        "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
        ":EVIL-<b> - [0:0]\n"
        f'-A INPUT -p tcp -m comment --comment "{evil.replace(chr(34), chr(92) + chr(34))}" -j EVIL-<b>\n'
        "-A EVIL-<b> -p tcp -m tcp --dport 22 -j DROP\n"
        "COMMIT\n"
    )
    rs = store_ruleset(name="<script>alert(1)</script>", source=source)
    query = urlencode({"proto": "tcp", "src": "203.0.113.7", "sport": "40000",
                       "dst": "192.0.2.10", "dport": "22", "tcp_flags": "S",
                       "in_iface": "eth0", "ctstate": "NEW", "host": "default"})
    body = client.get(url("trace", rs) + "?" + query).content.decode()
    assert "<script>alert(1)</script>" not in body
    assert "<img src=x" not in body
    assert "&lt;img src=x onerror=alert(1)&gt;" in body
    assert "verdict-DROP" in body
    dot = client.get(url("trace_chain", rs, "dot") + "?" + query + "&table=filter&chain=INPUT").content.decode()
    assert "EVIL-&lt;b&gt;" in dot
    assert "<img" not in dot
    svg = client.get(url("trace_chain", rs, "svg") + "?" + query + "&table=filter&chain=INPUT").content.decode()
    assert "<img" not in svg and "<b>" not in svg
    assert "EVIL&#45;&lt;b&gt;" in svg or "EVIL-&lt;b&gt;" in svg


def test_it_offers_both_branches_of_a_statistic_rule(client: Client) -> None:
    source = (
        "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
        ":POSTROUTING ACCEPT [0:0]\n:SVC - [0:0]\n"
        "-A PREROUTING -d 192.0.2.10/32 -p tcp -m tcp --dport 80 -j SVC\n"
        "-A SVC -p tcp -m statistic --mode random --probability 0.25000000000 -j DNAT --to-destination 198.51.100.20:8080\n"
        "-A SVC -p tcp -j DNAT --to-destination 198.51.100.21:8080\n"
        "COMMIT\n"
    )
    rs = store_ruleset(name="lb", source=source)
    base = {"proto": "tcp", "src": "203.0.113.7", "sport": "40000", "dst": "192.0.2.10",
            "dport": "80", "tcp_flags": "S", "in_iface": "eth0", "ctstate": "NEW", "host": "default"}
    taken = client.get(url("trace", rs) + "?" + urlencode({**base, "stat": "nat:SVC:1:1"})).content.decode()
    assert "198.51.100.20:8080" in taken
    assert "25.0%" in taken and "75.0%" in taken
    assert "stat=nat%3ASVC%3A1%3A0" in taken  # the link to the other branch
    other = client.get(url("trace", rs) + "?" + urlencode({**base, "stat": "nat:SVC:1:0"})).content.decode()
    assert "198.51.100.21:8080" in other
    bad = client.get(url("trace", rs) + "?" + urlencode({**base, "stat": "nat:SVC:x:2"})).content.decode()
    assert "a branch is table:chain:rule:1" in bad


@pytest.mark.parametrize(
    ("dump_name", "family", "packet"),
    [
        # generated by this host: the OUTPUT path, no input interface
        ("docker-default-published-port.rules", "ipv4",
         {"proto": "udp", "src": "192.0.2.10", "sport": "53000", "dst": "203.0.113.53",
          "dport": "53", "in_iface": "", "ctstate": "NEW"}),
        # ICMP echo, ESTABLISHED (nat is not consulted)
        ("firewalld-fedora27-iptables-counters.rules", "ipv4",
         {"proto": "icmp", "src": "203.0.113.7", "dst": "192.0.2.10", "icmp_type": "8",
          "icmp_code": "0", "in_iface": "eth0", "ctstate": "ESTABLISHED"}),
        # IPv6
        ("firewalld-fedora27-ip6tables.rules", "ipv6",
         {"proto": "tcp", "src": "2001:db8:ffff::7", "sport": "40000", "dst": "2001:db8::10",
          "dport": "22", "tcp_flags": "S", "in_iface": "eth0", "ctstate": "NEW"}),
    ],
)
def test_it_traces_other_paths_and_families(
    client: Client, dump_name: str, family: str, packet: dict[str, str]
) -> None:
    rs = store_ruleset(name=dump_name, source=dump(dump_name), family=family)
    query = urlencode({**packet, "host": "default"})
    r = client.get(url("trace", rs) + "?" + query)
    body = html.unescape(r.content.decode())
    assert r.status_code == 200
    assert "verdict-banner" in body, body[body.find("error"):][:500]
    served = json.loads(client.get(url("trace_json", rs) + "?" + query).content)
    assert f"verdict-{served['verdict']}" in body
    if not packet["in_iface"]:
        assert 'id="flow-route-out"' in body
        assert served["path"].startswith("output")
    scenario = json.loads(client.get(url("trace_scenario", rs) + "?" + query).content)
    assert scenario["family"] == family
    assert trace_scenario(scenario_from_dict(scenario)).hops() == served["hops"]
    text = client.get(url("trace_text", rs) + "?" + query).content.decode()
    assert f"Verdict:    {served['verdict']}" in text


def test_it_falls_back_to_an_interface_of_the_new_host(client: Client, docker: models.Ruleset) -> None:
    other = store_host(name="other host", ruleset=docker, routes=[],
                       interfaces=[{"name": "ens3", "addrs": ["192.0.2.10/24"]}])
    r = client.get(url("trace", docker) + "?" + q(docker, host=str(other.pk)))
    body = r.content.decode()
    assert "eth0 is not an interface of this host profile; using ens3." in body
    assert "verdict-banner" in body
    assert 'value="ens3" selected' in body


def test_it_flags_unknown_and_assumed_rules(client: Client) -> None:
    source = (
        "*filter\n:INPUT DROP [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
        '-A INPUT -p tcp -m u32 --u32 "0>>22&0x3C@0>>16=0x80" -j ACCEPT\n'
        "-A INPUT -p tcp -m limit --limit 3/min -j ACCEPT\n"
        "COMMIT\n"
    )
    rs = store_ruleset(name="uncertain", source=source)
    query = urlencode({"proto": "tcp", "src": "203.0.113.7", "sport": "40000", "dst": "192.0.2.10",
                       "dport": "22", "tcp_flags": "S", "in_iface": "eth0", "ctstate": "NEW",
                       "host": "default"})
    body = client.get(url("trace", rs) + "?" + query).content.decode()
    data = json.loads(client.get(url("trace_json", rs) + "?" + query).content)
    assert data["uncertain"], "the engine should mark both rules uncertain"
    assert "The result rests on rules the dump alone cannot decide" in body
    for u in data["uncertain"]:
        index = next(i for i, s in enumerate(data["steps"])
                     if (s["table"], s["chain"], s["rule"]) == (u["table"], u["chain"], u["rule"]))
        assert f'<a href="#step-{index}">{u["table"]} {u["chain"]} #{u["rule"]}</a>' in body
    assert 'class="badge badge-unknown">unknown</span>' in body
    assert "is-uncertain" in body


def test_it_rebuilds_a_saved_trace_after_its_host_profile_is_deleted(
    client: Client, docker: models.Ruleset
) -> None:
    client.post(url("trace_save", docker), {"query": q(docker)})
    saved = models.SavedTrace.objects.get()
    docker.hosts.all().delete()
    saved.refresh_from_db()
    assert saved.host is None
    page = client.get(reverse("netviz:saved_trace", args=[saved.pk])).content.decode()
    assert "verdict-ACCEPT" in page
    assert "dst 192.0.2.10:10080 → 172.17.0.2:80" in page
    assert "different result" not in page

"""The trace page in a real browser: upload, trace, the lit flow diagram,
rule details, permalinks, a bad upload, the keyboard, screenshots."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlencode

import pytest

from netviz import models
from netviz.store import store_host, store_ruleset

from .conftest import Page

pytestmark = pytest.mark.django_db(transaction=True)

PUBLISHED = {
    "proto": "tcp", "src": "198.51.100.7", "sport": "40000", "dst": "192.0.2.10",
    "dport": "10080", "tcp_flags": "S", "in_iface": "eth0", "mark": "0x0", "ctstate": "NEW",
    "seed": "0",
}


def docker_ruleset(read: Callable[[str], str]) -> models.Ruleset:
    rs = store_ruleset(name="docker node", source=read("docker-default-published-port.rules"))
    store_host(name="docker node host", ruleset=rs, routes=["default via 192.0.2.1 dev eth0"],
               interfaces=[{"name": "eth0", "addrs": ["192.0.2.10/24"]},
                           {"name": "docker0", "addrs": ["172.17.0.1/16"]}])
    return rs


def lit_ids(web: Page) -> list[str]:
    return sorted(web.page.eval_on_selector_all(".flow svg g.flow-node.lit", "els => els.map(e => e.id)"))


def test_it_uploads_a_dump_and_traces_a_packet_with_the_keyboard(
    web: Page, shared_dump: Callable[[str], str]
) -> None:
    web.goto("/")
    web.screenshot("home")
    web.goto("/upload/")
    page = web.page
    page.fill("#id_dump_text", shared_dump("docker-default-published-port.rules"))
    page.fill("#id_name", "docker node (browser)")
    page.click("text=Host profile")
    page.fill("#id_host_interfaces", "eth0 192.0.2.10/24\ndocker0 172.17.0.1/16")
    page.fill("#id_host_routes", "default via 192.0.2.1 dev eth0")
    web.screenshot("upload")
    page.click("#upload-form button[type=submit]")
    page.wait_for_url("**/rulesets/*/")
    page.wait_for_selector("text=Trace a packet")
    web.screenshot("ruleset")
    page.click("text=Trace a packet")
    page.wait_for_url("**/trace/")
    web.screenshot("trace-empty")

    # The source field has the focus: type the packet, move with Tab, press Enter.
    assert page.evaluate("document.activeElement.id") == "id_src"
    page.keyboard.type("198.51.100.7")
    page.fill("#id_dst", "192.0.2.10")
    page.fill("#id_dport", "10080")
    page.select_option("#id_in_iface", "eth0")
    page.focus("#id_dport")
    page.keyboard.press("Enter")
    page.wait_for_selector("#trace-result .verdict-banner")

    # htmx swapped the result in place and pushed a permalink.
    assert "src=198.51.100.7" in page.url and "dport=10080" in page.url
    assert "ACCEPT" in page.inner_text(".verdict-banner h2")
    ids = lit_ids(web)
    assert "flow-PREROUTING-nat" in ids and "flow-FORWARD-filter" in ids
    assert "flow-INPUT-filter" not in ids
    # Hops are numbered in order on the diagram.
    assert page.locator(".flow svg g.hop-1").count() == 1
    assert page.locator(".flow svg g.drop").count() == 0
    web.screenshot("trace")
    web.screenshot("trace-viewport", full_page=False)
    web.assert_clean()


def test_it_opens_a_rule_detail(web: Page, shared_dump: Callable[[str], str]) -> None:
    rs = docker_ruleset(shared_dump)
    web.goto(f"/rulesets/{rs.pk}/trace/?" + urlencode({**PUBLISHED, "host": rs.hosts.get().pk}))
    page = web.page
    row = page.locator("tr.step-row.nomatch").first
    rule_text = row.locator("td.rule-text").inner_text()
    row.locator("a.rule-link").click()
    page.wait_for_selector("#rule-detail .rule-detail")
    detail = page.locator("#rule-detail")
    assert rule_text in detail.locator(".rule-full").inner_text()
    assert detail.locator("table.clauses tr.clause-nomatch").count() >= 1
    assert "line" in detail.locator("h3").inner_text()
    # The detail came as an htmx partial: the page did not reload.
    assert "step=" not in page.url
    web.screenshot("trace-rule-detail")
    web.assert_clean()


def test_it_rebuilds_the_same_trace_from_a_permalink(
    web: Page, browser: object, shared_dump: Callable[[str], str]
) -> None:
    rs = docker_ruleset(shared_dump)
    page = web.page
    web.goto(f"/rulesets/{rs.pk}/trace/")
    page.fill("#id_src", "198.51.100.7")
    page.fill("#id_dst", "192.0.2.10")
    page.fill("#id_dport", "8443")
    page.select_option("#id_in_iface", "eth0")
    page.click("#trace-form button[type=submit]")
    page.wait_for_selector("#trace-result .verdict-banner")
    verdict = page.inner_text(".verdict-banner h2")
    ids = lit_ids(web)
    permalink = page.url
    assert "dport=8443" in permalink

    other = page.context.new_page()
    other.on("console", lambda msg: web.errors.append(msg.text) if msg.type == "error" else None)
    other.goto(permalink)
    assert other.inner_text(".verdict-banner h2") == verdict
    assert sorted(other.eval_on_selector_all(".flow svg g.flow-node.lit", "els => els.map(e => e.id)")) == ids
    assert other.input_value("#id_dport") == "8443"
    other.close()
    web.assert_clean()


def test_it_shows_a_bad_upload_inline(web: Page) -> None:
    web.goto("/upload/")
    page = web.page
    page.fill("#id_dump_text", "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp --dport 22 -j ACCEPT\nthis is not a rule\nCOMMIT\n")
    page.fill("#id_name", "broken")
    page.click("#upload-form button[type=submit]")
    page.wait_for_selector("#parse-error")
    error = page.inner_text("#parse-error")
    assert "line 4" in error
    assert "this is not a rule" in error
    web.screenshot("upload-error")
    web.assert_clean()


def test_it_shows_a_drop_point_and_inline_form_errors(web: Page, shared_dump: Callable[[str], str]) -> None:
    rs = store_ruleset(name="centos broken", source=shared_dump("kube-proxy-flannel-centos7-BROKEN.rules"))
    store_host(name="centos node", ruleset=rs, routes=["default via 192.168.56.1 dev eth0"],
               interfaces=[{"name": "eth0", "addrs": ["192.168.56.11/24"]},
                           {"name": "cni0", "addrs": ["10.244.0.1/24"]}])
    query = urlencode({"proto": "tcp", "src": "10.244.0.5", "sport": "40000", "dst": "10.96.0.1",
                       "dport": "443", "tcp_flags": "S", "in_iface": "cni0", "ctstate": "NEW",
                       "host": rs.hosts.get().pk})
    web.goto(f"/rulesets/{rs.pk}/trace/?{query}")
    page = web.page
    assert "DROP" in page.inner_text(".verdict-banner h2")
    assert page.locator(".flow svg g.flow-node.drop").count() == 1
    assert page.locator("tr.step-row.is-drop").count() == 1
    web.screenshot("trace-drop")
    # A bad address: the error shows next to the field, the result goes away.
    page.fill("#id_src", "10.244.0.500")
    page.keyboard.press("Enter")
    page.wait_for_selector(".f-src .errorlist")
    assert "not an IP address" in page.inner_text(".f-src .errorlist")
    assert page.locator(".verdict-banner").count() == 0
    web.assert_clean()


LB = (
    "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
    ":POSTROUTING ACCEPT [0:0]\n:SVC - [0:0]\n"
    "-A PREROUTING -d 192.0.2.10/32 -p tcp -m tcp --dport 80 -j SVC\n"
    "-A SVC -p tcp -m statistic --mode random --probability 0.50000000000 -j DNAT --to-destination 198.51.100.20:8080\n"
    "-A SVC -p tcp -j DNAT --to-destination 198.51.100.21:8080\n"
    "COMMIT\n"
)


def test_it_follows_the_other_branch_of_a_statistic_rule(web: Page) -> None:
    rs = store_ruleset(name="load balancer", source=LB)
    query = urlencode({"proto": "tcp", "src": "203.0.113.7", "sport": "40000", "dst": "192.0.2.10",
                       "dport": "80", "tcp_flags": "S", "in_iface": "eth0", "ctstate": "NEW",
                       "host": "default", "stat": "nat:SVC:1:1"})
    web.goto(f"/rulesets/{rs.pk}/trace/?{query}")
    page = web.page
    assert "198.51.100.20:8080" in page.inner_text(".packet-io")
    assert "matches (50.0%) ✓" in page.inner_text(".stat-list")
    page.click(".stat-list a.branch")
    page.wait_for_function("document.querySelector('.packet-io').innerText.includes('198.51.100.21:8080')")
    assert "stat=nat%3ASVC%3A1%3A0" in page.url
    assert "does not match (50.0%) ✓" in page.inner_text(".stat-list")
    web.assert_clean()

"""A RHEL node uploaded in the browser with its iptables-save dump and its
nft listing together: the packet firewalld rejects is shown dropped, by
firewalld's rule, in the banner and in the flow diagram, and the drop point
leads to that rule on the ruleset page."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

from netviz import models

from .conftest import ROOT, Page

pytestmark = pytest.mark.django_db(transaction=True)

NODE = ROOT / "fixtures" / "demo" / "rhel-firewalld-node"
FIREWALLD = "flow-INPUT-nft-inet-firewalld-filter_INPUT"


def test_a_packet_firewalld_drops_is_dropped_by_the_firewalld_rule(web: Page) -> None:
    page = web.page
    web.goto("/upload/")
    page.fill("#id_name", "rhel worker")
    page.fill("#id_dump_text", (NODE / "ruleset.rules").read_text())
    page.click("#nftables-details summary")
    page.fill("#id_nftables_text", (NODE / "ruleset.nft").read_text())
    page.click("#host-details summary")
    page.fill("#id_host_interfaces", "eth0 192.168.122.20/24\ncni0 10.244.1.1/24")
    page.fill("#id_host_routes", "default via 192.168.122.1 dev eth0")
    page.click("button[type=submit]")
    page.wait_for_selector("#nftables-h")
    assert "table inet firewalld" in page.inner_text("#nftables-body")
    assert "taken from the iptables dump" in page.inner_text("#nftables-body")

    rs = models.Ruleset.objects.get(name="rhel worker")
    packet = {"proto": "tcp", "src": "192.168.122.1", "sport": "50808", "dst": "192.168.122.20",
              "dport": "8080", "tcp_flags": "S", "in_iface": "eth0", "ctstate": "NEW",
              "host": str(rs.hosts.get().pk)}
    web.goto(f"/rulesets/{rs.pk}/trace/?{urlencode(packet)}")
    page.wait_for_selector(".verdict-banner")
    banner = page.inner_text(".verdict-banner h2")
    assert "DROP" in banner and "inet firewalld filter_INPUT rule 7" in banner
    # The flow: the iptables filter table, then firewalld's chain at filter + 10,
    # both on the packet's way, firewalld's the drop point.
    page.wait_for_selector(f'[id="{FIREWALLD}"]')
    fw_class = page.get_attribute(f'[id="{FIREWALLD}"]', "class") or ""
    filter_class = page.get_attribute('[id="flow-INPUT-filter"]', "class") or ""
    assert "lit" in fw_class.split() and "drop" in fw_class.split()
    assert "lit" in filter_class.split()
    web.screenshot("nft-firewalld-drop-flow", full_page=False)

    page.click(".drop-rule-link")
    page.wait_for_selector("#nftables-h")
    assert page.url.endswith("#chain-nft-inet-firewalld-filter_INPUT-rule-7")
    assert "reject with icmpx admin-prohibited" in page.inner_text("#chain-nft-inet-firewalld-filter_INPUT-rule-7")
    web.assert_clean()

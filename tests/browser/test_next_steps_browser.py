"""A first-time user's next steps in a real browser: from the broken flannel
node's drop point to the rule on the ruleset page, from a trace to the compare
form, the enlarged comparison flows, and the phone layout."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.management import call_command

from netviz import models
from netviz.store import store_host, store_ruleset

from .conftest import Page

pytestmark = pytest.mark.django_db(transaction=True)

HOST = {
    "interfaces": [
        {"name": "eth0", "addrs": ["192.168.1.5/24"]},
        {"name": "flannel.1", "addrs": ["10.1.0.0/32"]},
        {"name": "cni0", "addrs": ["10.1.0.1/24"]},
    ],
    "routes": ["default via 192.168.1.1 dev eth0"],
}


@pytest.fixture
def broken(shared_dump: Any) -> models.Ruleset:
    rs = store_ruleset(name="flannel BROKEN", source=shared_dump("kube-proxy-flannel-centos7-BROKEN.rules"))
    store_host(name="centos node", interfaces=HOST["interfaces"], routes=HOST["routes"], ruleset=rs)
    return rs


def wait_until_centred(page: Any, selector: str) -> None:
    # Mid-screen, with the rows before it in sight, not stuck at the top edge.
    # The page scrolls again once the call graph above the rule has loaded:
    # wait for that (Playwright's timeout fails the test), never sleep.
    page.wait_for_function(
        """sel => { const r = document.querySelector(sel).getBoundingClientRect();
                    return r.top > window.innerHeight * 0.2 && r.bottom < window.innerHeight * 0.8; }""",
        arg=selector)


def test_it_goes_from_the_drop_point_to_the_rule(web: Page, broken: models.Ruleset) -> None:
    page = web.page
    web.goto(f"/rulesets/{broken.pk}/")
    page.click("text=Workload on cni0 to service 10.2.0.1:443")
    page.wait_for_selector(".verdict-banner")
    assert "DROP" in page.inner_text(".verdict-banner h2")
    page.click(".drop-rule-link")
    page.wait_for_selector("#callgraph svg")
    rule = models.Rule.objects.get(chain__table__ruleset=broken, chain__table__name="filter",
                                   chain__name="INPUT", index=13)
    assert page.url.endswith(f"#rule-{rule.pk}")
    # Brought back to mid-screen after the call graph loaded above it.
    wait_until_centred(page, f"#rule-{rule.pk}")
    assert "REJECT --reject-with icmp-host-prohibited" in page.inner_text(f"#rule-{rule.pk}")
    web.screenshot("ux-drop-rule-on-ruleset-page", full_page=False)
    web.assert_clean()


def test_it_goes_from_a_trace_to_the_compare_form(web: Page, broken: models.Ruleset) -> None:
    page = web.page
    web.goto(f"/rulesets/{broken.pk}/trace/")
    page.click("text=Workload on cni0")
    page.wait_for_selector(".compare-link")
    page.click(".compare-link")
    page.wait_for_selector(".pick-note")
    # autofocus is applied once the document has loaded, not at parse time.
    page.wait_for_function("document.activeElement && document.activeElement.id === 'id_right'", timeout=5000)
    assert page.evaluate("document.activeElement.id") == "id_right"
    assert page.input_value("#id_packet") == "tcp 10.1.0.2:40000 > 10.2.0.1:443 in cni0"
    assert page.input_value("#id_left") == str(broken.pk)
    web.assert_clean()


def test_it_enlarges_the_comparison_flows(web: Page) -> None:
    call_command("load_lessons", stdout=open("/dev/null", "w"))  # noqa: SIM115
    c = models.Comparison.objects.filter(is_demo=True).first()
    assert c is not None
    page = web.page
    web.goto(f"/comparisons/{c.pk}/")
    width = "document.querySelector('.cmp-side-left .flow svg').getBoundingClientRect().width"
    side_by_side = page.evaluate(width)
    page.click(".cmp-stack-toggle")
    assert page.get_attribute(".cmp-stack-toggle", "aria-pressed") == "true"
    assert page.evaluate(width) > 1.8 * side_by_side
    page.click(".cmp-stack-toggle")
    assert page.evaluate(width) == side_by_side
    web.assert_clean()


def test_on_a_phone_the_nav_is_short_and_the_verdict_shows(web: Page, broken: models.Ruleset) -> None:
    page = web.page
    page.set_viewport_size({"width": 390, "height": 844})
    web.goto(f"/rulesets/{broken.pk}/trace/")
    assert page.evaluate("document.querySelector('.site-header').getBoundingClientRect().height") < 120
    page.click("text=Workload on cni0")
    page.wait_for_selector(".verdict-banner")
    page.wait_for_function(
        "document.querySelector('.verdict-banner').getBoundingClientRect().top < window.innerHeight / 2")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    web.screenshot("ux-phone-verdict", full_page=False)
    web.assert_clean()

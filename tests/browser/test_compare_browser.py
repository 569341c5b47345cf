"""Compare and ruleset diff in a real browser: the form with the keyboard,
htmx swaps, side-by-side flows with the differing tables outlined."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from netviz import models

from .conftest import Page

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def natout() -> dict[str, models.Comparison]:
    call_command("load_lessons", stdout=open("/dev/null", "w"))  # noqa: SIM115
    return {c.slug.split("/")[-1]: c for c in models.Comparison.objects.filter(is_demo=True)}


def test_it_compares_natoutgoing_on_and_off_with_the_keyboard(
    web: Page, natout: dict[str, models.Comparison]
) -> None:
    c = natout["pod-to-internet"]
    page = web.page
    web.goto("/compare/")
    web.screenshot("compare-empty")
    assert page.evaluate("document.activeElement.id") == "id_packet"
    page.select_option("#id_left", str(c.left_ruleset_id))
    page.select_option("#id_right", str(c.right_ruleset_id))
    page.fill("#id_llabel", "natOutgoing on")
    page.fill("#id_rlabel", "natOutgoing off")
    page.focus("#id_packet")
    page.keyboard.type("tcp 10.244.0.10:43210 > 93.184.216.34:443 in cali112d888c0c2")
    page.keyboard.press("Enter")
    page.wait_for_selector(".cmp-explain")
    # htmx swapped the result in and pushed the permalink.
    assert "packet=tcp" in page.url and f"left={c.left_ruleset_id}" in page.url
    explain = page.inner_text(".cmp-explain")
    assert "cali-nat-outgoing (MASQUERADE) rewrote the source 10.244.0.10 → 10.240.0.4" in explain
    assert "cali-nat-outgoing was empty" in explain
    # Two flow diagrams; nat POSTROUTING outlined on both sides as differing.
    assert page.locator(".cmp-flow svg").count() == 2
    differing = page.eval_on_selector_all(".cmp-flow g.cmp-differs", "els => els.map(e => e.id)")
    assert differing == ["flow-POSTROUTING-nat", "flow-POSTROUTING-nat"]
    first = page.locator("tr.first-diff")
    assert first.count() == 1 and "cali-nat-outgoing" in first.inner_text()
    web.screenshot("compare-natoutgoing")

    # Save it; the saved page has a read-only link that works.
    page.fill("#cmp-title", "pod egress, natOutgoing on vs off")
    page.click("text=Save comparison")
    page.wait_for_url("**/comparisons/*/")
    share = page.get_attribute("a.share-link", "href")
    assert share is not None
    web.goto(share)
    assert "rewrote the source 10.244.0.10 → 10.240.0.4" in page.inner_text(".cmp-explain")
    assert page.locator("text=Add to lesson").count() == 0
    web.assert_clean()


def test_it_shows_the_ruleset_diff_both_ways(web: Page, natout: dict[str, models.Comparison]) -> None:
    c = natout["pod-to-internet"]
    page = web.page
    web.goto("/diff/")
    page.select_option("#id_left", str(c.right_ruleset_id))
    page.select_option("#id_right", str(c.left_ruleset_id))
    page.click("text=Show the diff")
    page.wait_for_selector(".diff-summary")
    assert "1 added, 0 removed, 0 changed" in page.inner_text(".diff-summary h2")
    added = page.locator("tr.line-added")
    assert added.count() == 1 and "cali40masq-ipam-pools" in added.inner_text()
    web.screenshot("diff-side")
    page.select_option("#id_view", "unified")
    page.click("text=Show the diff")
    page.wait_for_selector("pre.unified-diff")
    assert page.locator(".u-add").count() == 1
    web.screenshot("diff-unified")
    web.assert_clean()

"""Lesson authoring and presenter mode in a real browser: reorder steps with
the keyboard (htmx), step through hops with the arrow keys and watch the
highlighted node move in the flow SVG, reveal the question, change step."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from netviz import models

from .conftest import Page

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def shipped() -> dict[str, models.Lesson]:
    call_command("load_lessons", stdout=open("/dev/null", "w"))  # noqa: SIM115
    return {lesson.slug: lesson for lesson in models.Lesson.objects.all()}


def current(web: Page, key: str = "main") -> tuple[int, str, list[str]]:
    """(frame index, the frame's node, ids of the nodes highlighted in that figure)."""
    page = web.page
    index = int(page.get_attribute(".frame.current", "data-index") or -1)
    node = page.get_attribute(".frame.current", f"data-node-{key}") or ""
    lit = page.eval_on_selector_all(
        f'.pr-flow[data-flow="{key}"] g.presenter-current', "els => els.map(e => e.id)")
    return index, node, lit


def test_it_steps_through_the_hops_with_the_keyboard(web: Page, shipped: dict[str, models.Lesson]) -> None:
    lesson = shipped["04-docker-publish"]
    page = web.page
    web.goto(f"/lessons/{lesson.pk}/present/1/")
    total = int(page.get_attribute("body", "data-frames") or 0)
    assert total > 3
    index, node, lit = current(web)
    assert index == 0 and lit == [node]
    web.screenshot("presenter-step1-hop1", full_page=False)

    seen = [node]
    for expected in range(1, total):
        page.keyboard.press("ArrowRight")
        index, node, lit = current(web)
        assert index == expected and lit == [node], (index, node, lit)
        assert page.locator(".frame:not([hidden])").count() == 1
        assert page.inner_text("#pr-pos") == str(expected + 1)
        seen.append(node)
    # The highlighted node moved through the flow: PREROUTING nat → … → FORWARD filter.
    assert "flow-PREROUTING-nat" in seen and "flow-FORWARD-filter" in seen
    assert seen.index("flow-PREROUTING-nat") < seen.index("flow-route-in") < seen.index("flow-FORWARD-filter")
    page.keyboard.press("ArrowRight")  # past the end: stays on the last hop
    assert current(web)[0] == total - 1
    page.keyboard.press("ArrowLeft")
    assert current(web)[0] == total - 2
    page.keyboard.press("Home")
    assert current(web)[0] == 0
    page.keyboard.press("Space")
    assert current(web)[0] == 1
    # The chain view follows: the current rule row is marked.
    assert page.locator(".frame.current tr.r-current").count() >= 1

    # The question's answer and the result wait until the trainer presses q.
    assert page.is_hidden("#answer") and page.is_hidden("#result")
    page.keyboard.press("q")
    assert page.is_visible("#answer") and "filter DOCKER" in page.inner_text("#answer")
    web.screenshot("presenter-revealed", full_page=False)

    # PageDown: next lesson step; p: back.
    page.keyboard.press("PageDown")
    page.wait_for_url(f"**/lessons/{lesson.pk}/present/2/")
    assert "unpublished" in page.inner_text("h1").lower()
    page.keyboard.press("End")
    assert current(web)[1] == "flow-FORWARD-filter"  # dropped by the FORWARD policy
    page.keyboard.press("p")
    page.wait_for_url(f"**/lessons/{lesson.pk}/present/1/")
    web.assert_clean()


def test_it_follows_both_flows_of_a_comparison_step(web: Page, shipped: dict[str, models.Lesson]) -> None:
    lesson = shipped["05-calico-natoutgoing"]
    page = web.page
    web.goto(f"/lessons/{lesson.pk}/present/1/")
    assert page.locator(".pr-flow svg").count() == 2
    page.keyboard.press("End")
    # The last hop is the right side's only (nat POSTROUTING policy, after the
    # empty cali-nat-outgoing): nothing is lit on the left.
    assert current(web, "right")[1:] == ("flow-POSTROUTING-nat", ["flow-POSTROUTING-nat"])
    assert current(web, "left")[1:] == ("", [])
    # Walk back to the first differing hop: both sides lit, the frame marked.
    while "frame-differs" not in (page.get_attribute(".frame.current", "class") or ""):
        page.keyboard.press("ArrowLeft")
    for key in ("left", "right"):
        assert current(web, key)[1:] == ("flow-POSTROUTING-nat", ["flow-POSTROUTING-nat"])
    assert "cali-nat-outgoing" in page.inner_text(".frame.current")
    web.screenshot("presenter-comparison", full_page=False)
    web.assert_clean()


def test_it_builds_reorders_and_shares_a_lesson(web: Page, shipped: dict[str, models.Lesson]) -> None:
    page = web.page
    cmps = list(models.Comparison.objects.filter(is_demo=True).order_by("slug"))
    # From a saved comparison: "Add to lesson" → a new lesson.
    web.goto(f"/comparisons/{cmps[0].pk}/")
    page.click("text=Add to lesson >> nth=-1")
    page.wait_for_url("**/lessons/*/#steps")
    lesson = models.Lesson.objects.get(slug="")
    for c in cmps[1:3]:
        page.select_option("#add-cmp", str(c.pk))
        page.click("text=Add comparison")
        page.wait_for_load_state()
    titles = page.locator(".step-title").all_inner_texts()
    assert titles == [str(c) for c in cmps[:3]]

    # Keyboard only: focus the second step's "move up", press Enter twice.
    second = lesson.steps.order_by("position")[1]
    page.focus(f"#move-up-{second.pk}")
    page.keyboard.press("Enter")
    page.wait_for_function(
        "t => document.querySelector('.step-title').textContent === t", arg=str(cmps[1]))
    # htmx swapped the list and gave the focus back to the button used.
    assert page.evaluate("document.activeElement.id") in (f"move-up-{second.pk}", f"move-down-{second.pk}")
    assert page.locator(".step-title").all_inner_texts() == [str(cmps[1]), str(cmps[0]), str(cmps[2])]

    # Edit the first step's question.
    page.click(".lesson-step >> nth=0 >> text=Notes and question")
    page.fill(f"#id_s{second.pk}-question", "What source address leaves eth0?")
    page.click(".lesson-step >> nth=0 >> text=Save step")
    page.wait_for_selector("text=Question: What source address leaves eth0?")
    web.screenshot("lesson-authoring")

    # The class gets the read-only link: no edit controls, presenter works.
    share = page.get_attribute("a.share-link", "href")
    assert share is not None
    web.goto(share)
    assert page.locator(".move-up").count() == 0 and page.locator("text=Add a step").count() == 0
    page.click("text=Present ▶")
    page.wait_for_url("**/present/1/")
    assert "What source address leaves eth0?" in page.inner_text(".pr-question")
    web.assert_clean()

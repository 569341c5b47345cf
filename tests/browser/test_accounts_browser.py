"""Accounts and share links in a real browser: sign up and log in with the
keyboard, upload a private dump, open it by its read-only link in another
browser (a stranger), revoke the link."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from netviz import models

from .conftest import ROOT, Page

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "a-long-pass-phrase-9"
DOCKER_HOST_RULES = (ROOT / "fixtures" / "demo" / "docker-host" / "ruleset.rules").read_text()


@pytest.fixture
def stranger(browser: Any, live_server: Any) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    wrapper = Page(page, live_server.url)

    def guard(route: Any) -> None:
        # As the `web` fixture: nothing leaves the live server.
        if route.request.url.startswith(live_server.url):
            route.continue_()
        else:
            wrapper.errors.append(f"blocked external request: {route.request.url}")
            route.abort()

    context.route("**/*", guard)
    page.on("console", lambda m: wrapper.errors.append(f"console: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda exc: wrapper.errors.append(f"pageerror: {exc}"))
    page.on("response", lambda r: wrapper.errors.append(f"{r.status}: {r.url}") if r.status >= 400 else None)

    def dialog(d: Any) -> None:
        wrapper.errors.append(f"dialog: {d.message}")
        d.dismiss()

    page.on("dialog", dialog)
    page.set_default_timeout(15000)
    yield wrapper
    context.close()


def status(web: Page, path: str) -> int:
    # The context's request API shares the browser's cookies (and so its session).
    return int(web.page.context.request.get(web.base + path).status)


def test_sign_up_upload_privately_share_and_revoke(web: Page, stranger: Page) -> None:
    page = web.page
    web.goto("/")
    page.click("text=Sign up")
    page.wait_for_url("**/accounts/signup/")
    # Keyboard only: the username has the focus, Tab to each password, Enter.
    assert page.evaluate("document.activeElement.name") == "username"
    page.keyboard.type("trainer")
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(web.base + "/")
    assert "trainer" in page.inner_text(".user-menu")

    web.goto("/upload/")
    page.fill("#id_dump_text", DOCKER_HOST_RULES)
    page.fill("#id_name", "trainer's private node")
    assert not page.is_checked("#id_is_public")
    page.click("#upload-form button[type=submit]")
    page.wait_for_url("**/rulesets/*/")
    rs = models.Ruleset.objects.get(name="trainer's private node")
    assert rs.owner is not None and rs.owner.username == "trainer" and not rs.is_public
    page.wait_for_selector("#callgraph svg")
    link = page.input_value("#share-url")
    assert link == f"{web.base}/s/r/{rs.share_token}/"
    web.screenshot("share-panel", full_page=False)
    web.assert_clean()

    # A stranger: 404 everywhere until they have the link.
    ruleset_path = f"/rulesets/{rs.pk}/"
    assert status(stranger, ruleset_path) == 404
    assert status(stranger, f"/rulesets/{rs.pk}/callgraph.svg") == 404
    stranger.page.goto(link)
    stranger.page.wait_for_url(f"**{ruleset_path}")
    stranger.page.wait_for_selector("#callgraph svg")  # the htmx partial is allowed too
    assert stranger.page.locator("text=Revoke link").count() == 0
    assert stranger.page.locator("#share-url").count() == 0
    assert "read-only link" in stranger.page.inner_text("main")
    stranger.page.click("text=Trace a packet")
    stranger.page.wait_for_url("**/trace/")
    stranger.page.fill("#id_src", "198.51.100.7")
    stranger.page.fill("#id_dst", "10.0.3.121")
    stranger.page.fill("#id_dport", "10080")
    stranger.page.keyboard.press("Enter")
    stranger.page.wait_for_selector("#trace-result .verdict-banner")
    assert stranger.page.locator("text=Save trace").count() == 0
    stranger.assert_clean()

    # The owner revokes: the old link and every page it opened are gone.
    page.click("text=Revoke link")
    page.wait_for_url(f"**{ruleset_path}#share")
    rs.refresh_from_db()
    assert page.input_value("#share-url") == f"{web.base}/s/r/{rs.share_token}/" != link
    assert status(stranger, ruleset_path) == 404
    assert status(stranger, f"/rulesets/{rs.pk}/callgraph.svg") == 404
    assert status(stranger, link.removeprefix(web.base)) == 404

    # Log out and back in with the keyboard.
    page.click("text=Log out")
    page.wait_for_selector("text=Log in")
    assert status(web, ruleset_path) == 404
    page.click(".user-menu >> text=Log in")
    page.wait_for_url("**/accounts/login/**")
    assert page.evaluate("document.activeElement.name") == "username"
    page.keyboard.type("trainer")
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_selector(".user-menu >> text=trainer")
    assert status(web, ruleset_path) == 200
    web.assert_clean()

"""Playwright (sync API) driving Debian's chromium against pytest-django's
live_server.  Nothing is downloaded: the browser is the system one, and every
request that does not go to the live server is blocked and reported."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# Playwright's sync API runs an event loop in this thread; Django's ORM calls
# from the test body would otherwise refuse to run.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = os.environ.get("NETVIZ_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
REALWORLD = ROOT / "tests" / "data" / "realworld"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).resolve().parent
    for item in items:
        if Path(str(item.fspath)).resolve().parent == here:
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"chromium not found at {CHROMIUM} (set NETVIZ_CHROMIUM); browser tests skipped")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


class Page:
    """A page plus the console errors, page errors and blocked requests seen."""

    def __init__(self, page: Any, base: str) -> None:
        self.page = page
        self.base = base
        self.errors: list[str] = []

    def goto(self, path: str) -> None:
        self.page.goto(self.base + path)

    def screenshot(self, name: str, full_page: bool = True) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=full_page)

    def assert_clean(self) -> None:
        assert self.errors == [], self.errors


@pytest.fixture
def web(browser: Any, live_server: Any) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    base = live_server.url
    page = context.new_page()
    wrapper = Page(page, base)

    def guard(route: Any) -> None:
        if route.request.url.startswith(base):
            route.continue_()
        else:
            wrapper.errors.append(f"blocked external request: {route.request.url}")
            route.abort()

    context.route("**/*", guard)
    page.on("console", lambda msg: wrapper.errors.append(f"console: {msg.text}") if msg.type == "error" else None)
    page.on("pageerror", lambda exc: wrapper.errors.append(f"pageerror: {exc}"))
    page.set_default_timeout(15000)
    yield wrapper
    context.close()


@pytest.fixture
def shared_dump() -> Any:
    def read(name: str) -> str:
        return (REALWORLD / name).read_text(encoding="utf-8")

    return read

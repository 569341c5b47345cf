"""A newcomer's first minutes: on a freshly migrated database with the demo
and the lessons loaded (what `make run` serves), every link reachable from
the home page in two clicks answers 200 and shows no error box."""

from __future__ import annotations

import io
import re
from html import unescape
from urllib.parse import urldefrag, urlsplit

import pytest
from django.core.management import call_command
from django.test import Client

pytestmark = pytest.mark.django_db

HREF = re.compile(r"""<a\b[^>]*\bhref="([^"]*)\"""")
# Links a visitor follows but that change something or leave the page.
NOT_WALKED = ("/accounts/logout/", "/admin/")
ERROR_BOX = re.compile(r"""class="[^"]*\berror-box\b[^"]*"[^>]*>(.*?)</div>""", re.S)


def links(page: str) -> list[str]:
    found = []
    for href in HREF.findall(page):
        url, _ = urldefrag(unescape(href))
        parts = urlsplit(url)
        if not url or parts.scheme or parts.netloc or not parts.path.startswith("/"):
            continue
        if parts.path.startswith(NOT_WALKED):
            continue
        found.append(url)
    return found


def test_every_link_two_clicks_from_home_works_on_a_fresh_demo(client: Client) -> None:
    call_command("load_demo", stdout=io.StringIO())
    call_command("load_lessons", stdout=io.StringIO())
    seen: dict[str, str] = {}  # url → where it was found
    level = [("/", "(start)")]
    broken = []
    for _depth in range(3):  # the home page, and two clicks from it
        following = []
        for url, found_on in level:
            if url in seen:
                continue
            seen[url] = found_on
            # Redirects (a chain link to its section, a form to the login page) are followed.
            response = client.get(url, follow=True)
            if response.status_code != 200:
                broken.append(f"{url} (linked from {found_on}): {response.status_code}")
                continue
            if "html" not in response.get("Content-Type", ""):
                continue
            page = response.content.decode()
            for box in ERROR_BOX.findall(page):
                broken.append(f"{url} (linked from {found_on}): error box {' '.join(box.split())[:200]!r}")
            if "gives a different result than when it was saved" in page:
                broken.append(f"{url} (linked from {found_on}): the saved trace no longer matches")
            following += [(link, url) for link in links(page)]
        level = following
    assert len(seen) > 40 and sum(u.startswith("/traces/") for u in seen) >= 11, sorted(seen)
    assert not broken, "\n".join(broken)

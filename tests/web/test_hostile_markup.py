"""Chain names that iptables-restore would refuse but our parser reads (a `"`
in a declared chain): the pages and SVGs built from them stay inert markup."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import pytest
from django.test import Client
from django.urls import reverse

from netviz import models, store

pytestmark = pytest.mark.django_db

# Declared, never jumped to: the parser keeps a `"` in such a name.
QUOTED = ['x"/onload="alert(1)', '"><svg/onload=alert(1)>', "a'b&amp;<i>"]
DUMP = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n" + "".join(
    f":{name} - [0:0]\n" for name in QUOTED
) + "-A INPUT -m comment --comment \"</svg><script>alert(2)</script>\" -j ACCEPT\nCOMMIT\n"


class Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.bad: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "img", "iframe") and not any(
            name == "src" and (value or "").startswith("/static/") for name, value in attrs
        ):
            self.bad.append(tag)
        for name, value in attrs:
            if name.startswith("on"):
                self.bad.append(f"{tag}[{name}]")
            if name in ("href", "xlink:href", "src") and (value or "").strip().lower().startswith("javascript:"):
                self.bad.append(f"{tag}[{name}={value}]")


def inert(html: str) -> list[str]:
    parser = Elements()
    parser.feed(html)
    return parser.bad


@pytest.fixture
def quoted() -> models.Ruleset:
    rs = store.store_ruleset(name="quoted", source=DUMP)
    assert set(QUOTED) <= set(models.Chain.objects.filter(table__ruleset=rs).values_list("name", flat=True))
    return rs


def test_the_ruleset_page_and_call_graph_stay_inert(client: Client, quoted: models.Ruleset) -> None:
    page = client.get(reverse("netviz:ruleset", args=[quoted.pk])).content.decode()
    assert inert(page) == []
    assert "&lt;/svg&gt;&lt;script&gt;alert(2)&lt;/script&gt;" in page
    partial = client.get(reverse("netviz:ruleset_callgraph", args=[quoted.pk])).content.decode()
    assert "<svg" in partial and inert(partial) == []
    svg = client.get(reverse("netviz:ruleset_callgraph_svg", args=[quoted.pk])).content.decode()
    root = ET.fromstring(svg)  # well-formed: no name broke out of an attribute
    texts = "".join(root.itertext())
    for name in QUOTED:
        if "&" not in name:  # see test_call_graph_keeps_entities_literally (browser tests)
            assert name in texts
    for el in root.iter():
        for attr, value in el.attrib.items():
            assert not attr.rsplit("}", 1)[-1].startswith("on"), (el.tag, attr)
            if attr.endswith("href"):
                # Percent-encoded: graphviz copies URL= into the SVG as it is.
                assert re.fullmatch(r"[A-Za-z0-9/#?=%._~-]+", value), value


def test_the_chain_link_of_a_hostile_name_finds_its_section(client: Client, quoted: models.Ruleset) -> None:
    svg = client.get(reverse("netviz:ruleset_callgraph_svg", args=[quoted.pk])).content.decode()
    hrefs = re.findall(r'xlink:href="([^"]+)"', svg)
    page = client.get(reverse("netviz:ruleset", args=[quoted.pk])).content.decode()
    ids = set(re.findall(r'id="(chain-[^"]+)"', page))
    from html import unescape
    from urllib.parse import unquote

    # A browser decodes the fragment, then looks the id up.
    targets = {unquote(h.split("#", 1)[1]) for h in hrefs if "#" in h}
    assert {f"chain-filter-{name}" for name in QUOTED} <= targets
    assert targets <= {unescape(i) for i in ids}

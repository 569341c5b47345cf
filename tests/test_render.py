"""netviz.render: DOT → SVG through the system graphviz or the WebAssembly
build, with a size limit, a time limit and a cache."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET

import pytest
from django.test import override_settings

from netviz import render

DOT = 'digraph g { a [label="x \\"y\\" <z>"]; a -> b; }'


@pytest.mark.parametrize("backend", ["dot", "wasm"])
def test_it_renders_svg_with_either_backend(backend: str) -> None:
    if backend == "dot" and not shutil.which("dot"):
        pytest.skip("graphviz `dot` is not installed")
    svg = render.render_svg(DOT, use=backend)
    root = ET.fromstring(svg)
    texts = ["".join(t.itertext()) for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert 'x "y" <z>' in texts


def test_it_caches_by_dot_text() -> None:
    first = render.render_svg(DOT + " ")
    assert render.render_svg(DOT + " ") is first


@override_settings(NETVIZ_RENDER_MAX_DOT=10)
def test_it_refuses_dot_over_the_size_limit() -> None:
    with pytest.raises(render.GraphTooLarge):
        render.render_svg(DOT)


@override_settings(NETVIZ_RENDER_TIMEOUT=0.001)
def test_it_gives_up_on_slow_layouts() -> None:
    if not shutil.which("dot"):
        pytest.skip("graphviz `dot` is not installed")
    big = "digraph g {" + " ".join(f"n{i} -> n{(i * 7) % 3000};" for i in range(3000)) + "}"
    with pytest.raises(render.RenderError, match="longer than"):
        render.render_svg(big, use="dot")


def test_it_reports_graphviz_errors() -> None:
    with pytest.raises(render.RenderError):
        render.render_svg("digraph { a -> }", use="dot" if shutil.which("dot") else "wasm")


def test_it_strips_the_xml_prologue_for_inline_use() -> None:
    inline = render.inline_svg(render.render_svg(DOT))
    assert inline.lstrip().startswith("<svg")

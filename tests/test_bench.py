"""`manage.py bench` on the smallest size: every figure is measured."""

from __future__ import annotations

import io
import json
from pathlib import Path

from django.core.management import call_command


def test_it_measures_the_1k_dump(tmp_path: Path) -> None:
    out = io.StringIO()
    report = tmp_path / "bench.json"
    call_command("bench", sizes="1k", packets=200, nft=0, json=str(report), stdout=out, stderr=io.StringIO())
    (result,) = json.loads(report.read_text())
    assert result["size"] == "1k"
    assert 950 <= result["rules"] <= 1050
    assert result["traces"] >= 200
    assert result["parse_s"] > 0 and result["import_s"] > 0
    assert 0 < result["trace_median_ms"] <= result["trace_p95_ms"]
    assert result["maxrss_mb"] > 0
    text = out.getvalue()
    for what in ("parse", "import (SQLite)", "trace", "trace page + SVG", "peak memory"):
        assert f"  {what}  " in text


def test_it_measures_a_kube_proxy_nftables_listing(tmp_path: Path) -> None:
    out = io.StringIO()
    report = tmp_path / "bench.json"
    call_command("bench", sizes="", packets=200, nft=300, json=str(report), stdout=out, stderr=io.StringIO())
    (result,) = json.loads(report.read_text())
    nft = result["nftables"]
    assert nft["services"] == 300 and nft["lines"] > 1500
    assert nft["parse_s"] > 0 and nft["trace_median_ms"] > 0
    assert "nftables kube-proxy, 300 services" in out.getvalue()

"""`manage.py verify`: the simulation against the kernel, in namespaces."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from django.core.management import call_command

from netviz.engine.pipeline import trace_scenario
from netviz.kernel.check import check_scenario, render_text
from netviz.scenario import scenario_from_dict

ROOT = Path(__file__).resolve().parents[2]

RULES = """*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:WEB - [0:0]
-A FORWARD -i eth0 -o eth1 -j WEB
-A WEB -p tcp -m tcp --dport 22 -j DROP
-A WEB -p tcp -m tcp --dport 80 -j ACCEPT
COMMIT
"""
# u32 is evaluated by the kernel but not by the engine (its rule is
# "unknown" there, so the simulated packet goes on): a known difference.
U32_RULES = RULES.replace(
    "-A WEB -p tcp -m tcp --dport 22 -j DROP",
    '-A WEB -p tcp -m u32 --u32 "0>>22&0x3C@12>>16&0x3F=0x2" -j DROP',
)


def _scenario(rules: str, dport: int = 80) -> dict[str, object]:
    return {
        "ruleset": rules,
        "host": {
            "interfaces": [
                {"name": "eth0", "addrs": ["10.1.0.1/24"]},
                {"name": "eth1", "addrs": ["10.2.0.1/24"]},
            ],
            "routes": [],
        },
        "packet": {"proto": "tcp", "src": "10.1.0.5", "sport": 40000, "dst": "10.2.0.7",
                   "dport": dport, "in_iface": "eth0"},
    }


def _verify(path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, str(ROOT / "manage.py"), "verify", str(path), *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=ROOT, check=False)


def test_it_exits_0_when_kernel_and_simulation_agree(kernel: None, tmp_path: Path) -> None:
    path = tmp_path / "agree.json"
    path.write_text(json.dumps(_scenario(RULES)))
    proc = _verify(path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "filter WEB rule 2 → ACCEPT" in proc.stdout
    assert "agree" in proc.stdout and "!!" not in proc.stdout


def test_it_gives_both_hop_lists_as_json(kernel: None, tmp_path: Path) -> None:
    path = tmp_path / "drop.json"
    path.write_text(json.dumps(_scenario(RULES, dport=22)))
    proc = _verify(path, "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(proc.stdout)
    want = [{"table": "filter", "chain": "FORWARD", "rule": 1, "verdict": "JUMP:WEB"},
            {"table": "filter", "chain": "WEB", "rule": 1, "verdict": "DROP"}]
    assert data["kernel"]["hops"] == want
    assert data["engine"]["hops"] == want
    assert data["kernel"]["verdict"] == data["engine"]["verdict"] == "DROP"
    assert data["agree"] is True and data["differences"] == []


def test_it_exits_1_and_marks_a_feature_the_engine_cannot_decide(
    kernel: None, tmp_path: Path
) -> None:
    path = tmp_path / "u32.json"
    path.write_text(json.dumps(_scenario(U32_RULES)))
    proc = _verify(path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    marked = [ln for ln in proc.stdout.splitlines() if ln.startswith("!!")]
    assert any("filter WEB rule 1 → DROP" in ln and "filter WEB rule 2 → ACCEPT" in ln
               for ln in marked), proc.stdout
    assert "DIFFER" in proc.stdout
    data = json.loads(_verify(path, "--json").stdout)
    assert data["agree"] is False and data["differences"] == [2]


def test_it_marks_a_perturbed_simulation(kernel: None) -> None:
    scenario = scenario_from_dict(_scenario(RULES))
    # pipeline.ScenarioLike declares settable attributes; Scenario is frozen.
    good = trace_scenario(scenario)  # type: ignore[arg-type]
    steps = list(good.steps)
    i = next(n for n, s in enumerate(steps) if s.is_hop and s.chain == "WEB")
    steps[i] = replace(steps[i], rule=3)  # claim a different rule decided
    check = check_scenario(scenario, engine=replace(good, steps=tuple(steps)))
    assert check.ran and not check.agree
    assert check.differences == [2]
    text = render_text(check)
    assert "!!  2 filter WEB rule 2 → ACCEPT" in text and "filter WEB rule 3 → ACCEPT" in text
    assert check_scenario(scenario).agree


def test_it_exits_2_with_the_reason_when_not_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # In this process, as an unprivileged user would see it: a run under
    # another uid would depend on that user reading the checkout.
    monkeypatch.setattr(os, "geteuid", lambda: 65534)
    # netviz.kernel re-exports the function `replay`, which hides the module.
    monkeypatch.setattr(sys.modules["netviz.kernel.replay"], "_available", None)
    path = tmp_path / "agree.json"
    path.write_text(json.dumps(_scenario(RULES)))
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(SystemExit) as exit_:
        call_command("verify", str(path), stdout=out, stderr=err)
    assert exit_.value.code == 2, out.getvalue() + err.getvalue()
    assert "not root" in err.getvalue()


def test_it_verifies_every_packet_of_a_conversation(kernel: None, tmp_path: Path) -> None:
    rules = ("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n"
             "-A FORWARD -m conntrack --ctstate ESTABLISHED -j ACCEPT\n"
             "-A FORWARD -m conntrack --ctstate NEW -j ACCEPT\nCOMMIT\n")
    data = _scenario(rules)
    data["packets"] = [{"dir": "reply", "tcp_flags": "SA"}, {"dir": "original", "tcp_flags": "A"}]
    path = tmp_path / "conv.json"
    path.write_text(json.dumps(data))
    proc = _verify(path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "packet 2 (reply)" in proc.stdout and "packet 3 (original)" in proc.stdout
    assert "filter FORWARD rule 1 → ACCEPT" in proc.stdout
    out = json.loads(_verify(path, "--json").stdout)
    assert [p["agree"] for p in out["packets"]] == [True, True, True]
    assert out["packets"][1]["kernel"]["hops"] == [{"table": "filter", "chain": "FORWARD", "rule": 1,
                                                     "verdict": "ACCEPT"}]

"""Fleet checks: check sets, one node, the matrix, JUnit, diff, and
`manage.py check_fleet` exit codes (0 all hold, 1 one fails, 2 cannot run)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from netviz.fleet import (
    CheckSetError,
    Node,
    diff_runs,
    load_checkset,
    load_node_file,
    matrix,
    run_node,
    to_junit,
)

ROOT = Path(__file__).resolve().parents[1]
FLEET = ROOT / "fixtures" / "fleet"
NODES = sorted(str(p) for p in (FLEET / "nodes").glob("node-*.json"))

RULES = """*filter
:INPUT DROP [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT
-A INPUT -p tcp -m tcp --dport 23 -j REJECT --reject-with tcp-reset
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -d 10.96.0.10/32 -p udp -m udp --dport 53 -j DNAT --to-destination 10.244.1.2:53
-A POSTROUTING -o eth0 -j MASQUERADE
COMMIT
"""
HOST = {"interfaces": [{"name": "eth0", "addrs": ["192.0.2.10/24"]},
                       {"name": "cni0", "addrs": ["10.244.1.1/24"]}],
        "routes": ["default via 192.0.2.1 dev eth0"]}


def _checks(*checks: dict) -> str:
    return json.dumps({"name": "t", "checks": list(checks)})


def _check(name: str, expect: str, out: dict | None = None, **packet: object) -> dict:
    base = {"proto": "tcp", "src": "192.0.2.50", "sport": 40000, "dst": "$node", "dport": 22,
            "tcp_flags": "S", "in_iface": "eth0"}
    return {"name": name, "packet": {**base, **packet}, "expect": expect, **({"out": out} if out else {})}


def _cells(*checks: dict) -> dict[str, dict]:
    result = run_node(Node("n1", RULES, host=HOST), load_checkset(_checks(*checks)).checks)
    return {c["check"]: c for c in result["cells"]}


def test_it_judges_accept_drop_and_reject() -> None:
    cells = _cells(_check("ssh", "ACCEPT"), _check("telnet", "REJECT", dport=23),
                   _check("web", "DROP", dport=80), _check("web wrongly", "ACCEPT", dport=80))
    assert cells["ssh"]["ok"] and cells["ssh"]["packet"]["dst"] == "192.0.2.10"
    assert cells["telnet"]["ok"] and cells["telnet"]["fate"] == "REJECT"
    assert cells["web"]["ok"] and cells["web"]["fate"] == "DROP"
    assert not cells["web wrongly"]["ok"]
    assert "expected ACCEPT, got DROP" in cells["web wrongly"]["why"]


def test_it_judges_the_header_out() -> None:
    dns = {"proto": "udp", "src": "10.244.1.9", "sport": 5000, "dst": "10.96.0.10", "dport": 53,
           "in_iface": "cni0"}
    cells = _cells(
        {"name": "dnat", "packet": dns, "expect": "ACCEPT", "out": {"dnat_to": ["10.244.1.2:53"]}},
        {"name": "dnat elsewhere", "packet": dns, "expect": "ACCEPT",
         "out": {"dnat_to": ["10.244.1.3:53", "10.244.1.4"]}},
        {"name": "masq", "expect": "ACCEPT", "out": {"masquerade": True},
         "packet": {**dns, "dst": "198.51.100.7"}},
        {"name": "not masq", "expect": "ACCEPT", "out": {"masquerade": True},
         "packet": {**dns, "dst": "10.244.1.20", "in_iface": "cni0"}},
    )
    assert cells["dnat"]["ok"]
    assert not cells["dnat elsewhere"]["ok"]
    assert "leaves for 10.244.1.2:53, not one of 10.244.1.3:53, 10.244.1.4" in cells["dnat elsewhere"]["why"]
    assert cells["masq"]["ok"] and cells["masq"]["packet_out"]["src"] == "192.0.2.10"
    assert not cells["not masq"]["ok"] and "not masqueraded" in cells["not masq"]["why"]


@pytest.mark.parametrize("data, message", [
    ({"checks": []}, "non-empty"),
    ({"checks": [{"name": "a", "packet": {"proto": "tcp", "src": "1.1.1.1"}, "expect": "ACCEPT"}]},
     "packet.dst"),
    ({"checks": [{"name": "a", "packet": {"proto": "tcp", "src": "1.1.1.1", "dst": "2.2.2.2"},
                  "expect": "MAYBE"}]}, "expect"),
    ({"checks": [{"name": "a", "packets": []}]}, "conversations"),
    ({"checks": [{"name": "a", "packet": {"proto": "tcp", "src": "1.1.1.1", "dst": "2.2.2.2"},
                  "expect": "DROP", "out": {"masquerade": True}}]}, "expect ACCEPT"),
    ({"checks": [_check("a", "ACCEPT"), _check("a", "DROP")]}, "unique"),
])
def test_it_refuses_a_bad_check_set(data: dict, message: str) -> None:
    with pytest.raises(CheckSetError, match=message):
        load_checkset(json.dumps(data))


def test_a_node_that_does_not_parse_is_an_error_not_a_failure() -> None:
    result = run_node(Node("bad", "*filter\n-A NOPE -j ACCEPT\nCOMMIT\n", host=HOST),
                      load_checkset(_checks(_check("ssh", "ACCEPT"))).checks)
    assert "error" in result and "line" in result["error"]


def test_junit_and_diff() -> None:
    checkset = load_checkset(_checks(_check("ssh", "ACCEPT"), _check("telnet", "REJECT", dport=23)))
    before = matrix(checkset, [run_node(Node("n1", RULES, host=HOST), checkset.checks)])
    broken = RULES.replace("--dport 22 -j ACCEPT", "--dport 22 -j DROP")
    after = matrix(checkset, [run_node(Node("n1", broken, host=HOST), checkset.checks)])
    assert (before["passed"], after["passed"], after["failed"]) == (2, 1, 1)
    changed = diff_runs(before, after)
    assert changed == [{"node": "n1", "check": "ssh", "was": "holds", "now": "fails (DROP)",
                        "broke": True, "why": changed[0]["why"]}]
    suites = ET.fromstring(to_junit(after).split("\n", 1)[1])
    assert suites.get("failures") == "1"
    case = suites.find("testsuite/testcase[@name='ssh']")
    assert case is not None and case.find("failure") is not None
    assert suites.find("testsuite/testcase[@name='telnet']/failure") is None


def _check_fleet(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "manage.py", "check_fleet", *args], cwd=ROOT,
                          capture_output=True, text=True, check=False)


def test_check_fleet_exits_1_naming_the_node_that_breaks_dns(tmp_path: Path) -> None:
    junit = tmp_path / "out.xml"
    run = _check_fleet(str(FLEET / "checks.json"), "--snapshot", *NODES, "--junit", str(junit))
    assert run.returncode == 1, run.stderr
    fails = [line for line in run.stdout.splitlines() if line.startswith("FAIL")]
    assert fails == ["FAIL node-3: DNS from a pod — leaves for 10.96.0.10:53, "
                     "not one of 10.244.0.5:53, 10.244.2.21:53"]
    assert ET.parse(junit).getroot().get("failures") == "1"


def test_check_fleet_exits_0_when_all_hold_and_prints_json() -> None:
    healthy = [n for n in NODES if not n.endswith("node-3.json")]
    run = _check_fleet(str(FLEET / "checks.json"), "--snapshot", *healthy, "--json")
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["failed"] == 0 and result["passed"] == 12
    assert [n["name"] for n in result["nodes"]] == ["node-1", "node-2"]


def test_check_fleet_exits_2_when_it_cannot_run(tmp_path: Path) -> None:
    bad = tmp_path / "checks.json"
    bad.write_text("{not json")
    run = _check_fleet(str(bad), "--snapshot", *NODES)
    assert run.returncode == 2 and "cannot run" in run.stderr
    run = _check_fleet(str(FLEET / "checks.json"), "--snapshot", str(tmp_path / "missing.json"))
    assert run.returncode == 2 and "cannot read" in run.stderr
    node = load_node_file(NODES[0])
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"name": "broken", "ruleset": "*filter\n-A X -j Y\n",
                                  "host": node.host}))
    run = _check_fleet(str(FLEET / "checks.json"), "--snapshot", str(broken))
    assert run.returncode == 2 and "ERROR broken:" in run.stdout


def test_a_node_snapshot_is_a_node() -> None:
    node = load_node_file(ROOT / "tests" / "data" / "snapshots" / "bridge-node.snapshot")
    assert node.name == "vm" and "*filter" in node.ruleset_text
    assert node.host["interfaces"]

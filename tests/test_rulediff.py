"""diff_rulesets: chains and rules added, removed or changed between two dumps."""

from __future__ import annotations

from pathlib import Path

from netviz.engine.parser import parse_ruleset
from netviz.engine.rulediff import Change, diff_rulesets

ROOT = Path(__file__).resolve().parents[1]
NATOUT = ROOT / "fixtures" / "demo" / "calico-natoutgoing"
REALWORLD = ROOT / "tests" / "data" / "realworld"


def natout(side: str):  # type: ignore[no-untyped-def]
    d = NATOUT / side
    return parse_ruleset((d / "ruleset.rules").read_text(), (d / "ipsets.ipset").read_text())


def test_it_finds_the_one_rule_natoutgoing_adds() -> None:
    diff = diff_rulesets(natout("off"), natout("on"))
    assert not diff.identical
    [chain] = diff.changed_chains
    assert (chain.table, chain.name, chain.change) == ("nat", "cali-nat-outgoing", Change.CHANGED)
    [line] = chain.lines
    assert line.change is Change.ADDED and line.left is None and line.right is not None
    assert "--match-set cali40masq-ipam-pools src" in line.right_text
    assert diff.totals()["added"] == 1 and diff.totals()["removed"] == 0
    unified = diff.unified("off", "on")
    assert "@@ nat cali-nat-outgoing @@" in unified
    assert "\n+-A cali-nat-outgoing -m comment --comment \"cali:flqWnvo8yq4ULQLa\"" in unified


def base(rules: str, policy: str = "ACCEPT", counters: str = "[0:0]") -> str:
    return f"""*filter
:INPUT {policy} {counters}
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:cali-fw-a - [0:0]
:KUBE-SVC-AAAAAAAAAAAAAAAA - [0:0]
{rules}
COMMIT
"""


RULES = """[5:300] -A INPUT -p tcp --dport 22 -j ACCEPT
[1:60] -A INPUT -m comment --comment "cali:abcdefghijklmnop" -j cali-fw-a
[0:0] -A INPUT -j KUBE-SVC-AAAAAAAAAAAAAAAA
[0:0] -A cali-fw-a -j DROP"""


def test_it_ignores_counters_unless_asked() -> None:
    left = parse_ruleset(base(RULES))
    right = parse_ruleset(base(RULES.replace("[5:300]", "[9:900]"), counters="[7:70]"))
    assert diff_rulesets(left, right).identical
    strict = diff_rulesets(left, right, ignore_counters=False)
    [chain] = strict.changed_chains
    assert chain.name == "INPUT"
    assert [line.change for line in chain.lines] == [Change.CHANGED, Change.SAME, Change.SAME]


def test_it_ignores_generated_hashes_on_request() -> None:
    left = parse_ruleset(base(RULES))
    right_text = base(RULES.replace("cali:abcdefghijklmnop", "cali:ZYXWVUTSRQPONMLK")).replace(
        "KUBE-SVC-AAAAAAAAAAAAAAAA", "KUBE-SVC-BBBBBBBBBBBBBBBB"
    )
    right = parse_ruleset(right_text)
    plain = diff_rulesets(left, right)
    assert {(c.name, c.change) for c in plain.changed_chains} == {
        ("INPUT", Change.CHANGED),
        ("KUBE-SVC-AAAAAAAAAAAAAAAA", Change.REMOVED),
        ("KUBE-SVC-BBBBBBBBBBBBBBBB", Change.ADDED),
    }
    loose = diff_rulesets(left, right, ignore_hashes=True)
    assert loose.identical
    renamed = next(c for c in loose.chains if c.name == "KUBE-SVC-AAAAAAAAAAAAAAAA")
    assert renamed.right_name == "KUBE-SVC-BBBBBBBBBBBBBBBB"


def test_it_reports_policies_inserted_rules_and_tables() -> None:
    left = parse_ruleset(base(RULES))
    inserted = RULES.replace("[0:0] -A cali-fw-a -j DROP", "[0:0] -A cali-fw-a -j LOG\n[0:0] -A cali-fw-a -j DROP")
    right = parse_ruleset(base(inserted, policy="DROP") + "*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n")
    diff = diff_rulesets(left, right)
    assert diff.tables_added == ("raw",) and diff.tables_removed == ()
    by_name = {(c.table, c.name): c for c in diff.changed_chains}
    assert by_name[("filter", "INPUT")].policy_changed
    fw = by_name[("filter", "cali-fw-a")]
    # The DROP is the same rule, now at index 2: only the LOG is new.
    assert [(line.change, line.right.index if line.right else None) for line in fw.lines] == [
        (Change.ADDED, 1), (Change.SAME, 2)
    ]
    assert by_name[("raw", "PREROUTING")].change is Change.ADDED
    assert "-:INPUT ACCEPT\n+:INPUT DROP" in diff.unified()


def test_it_diffs_the_real_broken_and_fixed_node() -> None:
    broken, fixed = (REALWORLD / f"kube-proxy-flannel-centos7-{s}.rules" for s in ("BROKEN", "FIXED"))
    diff = diff_rulesets(parse_ruleset(broken.read_text()), parse_ruleset(fixed.read_text()))
    removed = [line.left_text for c in diff.chains for line in c.lines if line.change is Change.REMOVED]
    # The fix removed CentOS' static REJECT rules that broke pod → apiserver.
    assert "-A INPUT -j REJECT --reject-with icmp-host-prohibited" in removed
    assert "-A FORWARD -j REJECT --reject-with icmp-host-prohibited" in removed
    assert diff.totals()["added"] > 0

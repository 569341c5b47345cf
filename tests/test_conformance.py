"""The netfilter iptables test data as a conformance suite for the parser.

tests/data/iptables-tests (tests/data/SOURCES.md): `extensions/*.t` lines are
`RULE;SAVED;RESULT[;VARIANT[;ALT_RESULT]]`, and the shell-test dumps are fixed
points of save∘restore.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from netviz.engine.parser import (
    ParseError,
    parse_iptables_save,
    parse_ruleset,
    to_iptables_save,
)
from netviz.engine.ruleset import BUILTIN_CHAINS, Family, Rule

TESTS = Path(__file__).resolve().parent / "data" / "iptables-tests"


@dataclass(frozen=True)
class Case:
    file: str
    line: int
    table: str
    chain: str
    rule: str
    saved: str  # "" when iptables-save prints RULE itself
    result: str  # OK / FAIL / NOMATCH, for the nf_tables backend

    @property
    def family(self) -> Family | None:
        if self.file.startswith("libip6t_"):
            return Family.IPV6
        if self.file.startswith("libipt_"):
            return Family.IPV4
        return None  # libxt_: both; let the parser infer


def load_cases() -> list[Case]:
    cases: list[Case] = []
    for path in sorted(TESTS.glob("*.t")):
        table, chains = "filter", ["INPUT"]
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if not line or line[0] in "#@%":
                continue
            if line[0] == "*":
                table = line[1:].strip()
                continue
            if line[0] == ":":
                chains = line[1:].split(",")
                continue
            parts = line.split(";")
            rule, saved, result = parts[0], parts[1], parts[2]
            if len(parts) > 3 and parts[3] == "LEGACY":
                # the result is for iptables-legacy; nf_tables gets the fifth
                # field (a result, or its own SAVED text) or else the inverse
                alt = parts[4] if len(parts) > 4 else ""
                if alt in ("OK", "FAIL", "NOMATCH"):
                    result = alt
                elif alt:
                    saved = alt
                else:
                    result = {"OK": "FAIL", "FAIL": "OK", "NOMATCH": "OK"}[result]
            saved = "" if saved == "=" else saved
            for chain in chains:
                cases.append(Case(path.name, number, table, chain, rule, saved, result))
    return cases


CASES = load_cases()
OK_CASES = [c for c in CASES if c.result in ("OK", "NOMATCH")]
FAIL_CASES = [c for c in CASES if c.result == "FAIL"]


def dump(case: Case, rule_text: str) -> str:
    decl = "" if case.chain in BUILTIN_CHAINS[case.table] else f":{case.chain} - [0:0]\n"
    return f"*{case.table}\n{decl}-A {case.chain} {rule_text}\nCOMMIT\n"


def parse_case(case: Case, rule_text: str) -> Rule:
    # libxt_set.t expects "set foo does not exist": no sets are defined
    ipsets = "" if case.file == "libxt_set.t" else None
    rules = parse_ruleset(dump(case, rule_text), ipsets, family=case.family).rules()
    assert len(rules) == 1
    return rules[0]


def case_id(case: Case) -> str:
    return f"{case.file}:{case.line}:{case.chain}"


def test_the_suite_is_there() -> None:
    # 31 extension files; every rule line is tried once per chain it lists
    assert len({c.file for c in CASES}) == 31
    assert len(OK_CASES) > 400
    assert len(FAIL_CASES) > 150


@pytest.mark.parametrize("case", OK_CASES, ids=case_id)
def test_it_accepts_and_prints_back_every_ok_rule(case: Case) -> None:
    rule = parse_case(case, case.rule)
    # Rule.canonical() re-parses to the same structure
    again = parse_case(case, rule.canonical().split(" ", 2)[2] if rule.matches or rule.target else "")
    assert (again.matches, again.target) == (rule.matches, rule.target)
    if case.result != "OK":
        return
    if not case.saved:
        # RULE is what iptables-save prints: we print it back verbatim
        assert rule.canonical() == f"-A {case.chain} {case.rule}"
    else:
        # SAVED is canonical save output, so it is a fixed point too
        saved = parse_case(case, case.saved)
        assert saved.canonical() == f"-A {case.chain} {case.saved}"


def test_it_reads_rule_and_saved_forms_alike_where_no_value_rewriting_is_needed() -> None:
    # iptables rewrites some values when saving (`--dport 4:4` → `4`,
    # `--icmp-type echo-reply` → `0`, `--syn` → `--tcp-flags …`); the parser
    # keeps values as written and leaves their meaning to the matchers, so
    # only pairs without such a rewrite read the same.  This pins the count.
    same = differ = 0
    for case in OK_CASES:
        if case.result != "OK" or not case.saved:
            continue
        a, b = parse_case(case, case.rule), parse_case(case, case.saved)
        if (a.matches, a.target) == (b.matches, b.target):
            same += 1
        else:
            differ += 1
    assert (same, differ) == (16, 192)


@pytest.mark.parametrize("case", FAIL_CASES, ids=case_id)
def test_it_rejects_every_fail_rule(case: Case) -> None:
    with pytest.raises(ParseError) as info:
        parse_case(case, case.rule)
    err = info.value
    assert err.line == 2 + (case.chain not in BUILTIN_CHAINS[case.table])
    assert err.reason


# --- the shell tests' dumps --------------------------------------------------------


def dump_files(directory: str) -> list[Path]:
    return sorted((TESTS / directory).iterdir())


def without_comments(text: str, blank_lines: bool = True) -> str:
    keep = [
        line for line in text.splitlines(keepends=True) if not line.startswith("#") and (blank_lines or line.strip())
    ]
    return "".join(keep)


@pytest.mark.parametrize(
    "path",
    dump_files("dumps-ipt-save") + dump_files("dumps-firewalld-restore"),
    ids=lambda p: p.name,
)
def test_save_dumps_are_fixed_points(path: Path) -> None:
    # ipt-save/0001load-dumps_0, 0002load-fedora27-firewalld_0 and
    # firewalld-restore/0001-firewalld_0 diff iptables-save against the dump
    text = path.read_text()
    counters = any(line.startswith("[") for line in text.splitlines())
    ruleset = parse_iptables_save(text)
    assert to_iptables_save(ruleset, counters=counters) == without_comments(text)


@pytest.mark.parametrize("path", dump_files("dumps-ipt-restore"), ids=lambda p: p.name)
def test_restore_dumps_parse(path: Path) -> None:
    text = path.read_text()
    ruleset = parse_iptables_save(text)
    assert ruleset.family is (Family.IPV6 if path.name.startswith("ip6") else Family.IPV4)
    assert [t.name for t in ruleset.tables] == ["nat", "mangle", "raw", "filter"]
    assert to_iptables_save(ruleset) == without_comments(text, blank_lines=False)

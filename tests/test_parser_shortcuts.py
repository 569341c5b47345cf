"""The parser's shortcuts (shape plans, the quick tokenizer of _fast_rule)
change nothing: every input gives the same Ruleset, rule for rule down to
line, text and index, or the same error, with and without them."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netviz.engine import extcheck, parser
from netviz.engine.extcheck import check_rule
from netviz.engine.parser import KNOWN_TARGETS, ParseError, parse_ruleset
from netviz.engine.ruleset import Family, Target
from netviz.testing.gendump import generate_dump

REALWORLD = Path(__file__).resolve().parent / "data" / "realworld"
CONFORMANCE = Path(__file__).resolve().parent / "data" / "iptables-tests"

Outcome = tuple[object, ...]


def _outcome(text: str, family: Family | None = None) -> Outcome:
    try:
        rs = parse_ruleset(text, family=family)
    except ParseError as e:
        return ("error", e.line, e.column, e.reason, e.text)
    rules = [(r.table, r.chain, r.index, r.line, r.text, r.counters) for r in rs.rules()]
    chains = [(t.name, c.name, c.policy, c.line, c.counters) for t in rs.tables for c in t.chains]
    return ("ok", rs, rules, chains, rs.family)


def _both(text: str, family: Family | None = None) -> tuple[Outcome, Outcome]:
    fast = _outcome(text, family)
    parser._SHORTCUTS = False
    try:
        reference = _outcome(text, family)
    finally:
        parser._SHORTCUTS = True
    return fast, reference


def _assert_same(text: str, family: Family | None = None) -> Outcome:
    fast, reference = _both(text, family)
    assert fast == reference
    return fast


def _realworld_dumps() -> list[Path]:
    return sorted(p for p in REALWORLD.iterdir() if p.suffix in (".rules", ".restore"))


@pytest.mark.parametrize("path", _realworld_dumps(), ids=lambda p: p.name)
def test_it_parses_real_dumps_identically(path: Path) -> None:
    _assert_same(path.read_text())


def test_real_dumps_are_there() -> None:
    assert len(_realworld_dumps()) >= 10


def test_it_parses_a_generated_dump_identically() -> None:
    dump = generate_dump(400, 3, calico_pods=20, seed=11)
    outcome = _assert_same(dump.text)
    assert outcome[0] == "ok"
    assert len(outcome[2]) == dump.rule_count  # type: ignore[arg-type]


def test_the_shortcuts_take_most_lines_of_a_generated_dump(monkeypatch: pytest.MonkeyPatch) -> None:
    # the equivalence above means little if the fast path never ran
    taken: list[bool] = []
    original = parser._fast_rule

    def counting(st: parser._State, lineno: int, raw: str) -> bool:
        taken.append(original(st, lineno, raw))
        return taken[-1]

    monkeypatch.setattr(parser, "_fast_rule", counting)
    dump = generate_dump(400, 3, calico_pods=20, seed=11)
    parse_ruleset(dump.text)
    assert sum(taken) > 0.9 * len(taken)


# A valid line, then variants of the same shape: the first records the plan,
# the variants are replayed (or handed back) with other values.
SHAPES: list[tuple[str, list[str]]] = [
    (
        '-A KUBE-SERVICES -d 10.96.0.10/32 -p udp -m comment --comment "kube-system/kube-dns:dns cluster IP"'
        " -m udp --dport 53 -j KUBE-SVC-A",
        [
            "10.96.0.11/32", "10.96.0.0/8", "0.0.0.0/0", "10.0.0.1,10.0.0.2", "10.0.0.300", "::1",
            "10.0.0.1/33", "10.0.0.1/255.0.0.0", "01.2.3.4", "10.0.0.1/255.0.255.0",
        ],
    ),
    ('-A KUBE-SEP-A -s 10.244.1.5/32 -m comment --comment "x" -j KUBE-MARK-MASQ',
     ["10.244.1.6/32", "fe80::1", "10.0.0.0/0", "a.b.c.d", "10.1.1.1,fe80::1"]),
    ('-A KUBE-SEP-A -p tcp -m comment --comment "ns/svc:http" -m tcp -j DNAT --to-destination 10.244.1.5:8080',
     ["10.244.1.6:8081", "10.244.1.6:99999", "10.244.1.6:80-70", "10.244.1.6", "[fe80::1]:80", "x:y"]),
    ('-A KUBE-SVC-A -m comment --comment "ns/svc:http -> 10.244.1.5:8080" -m statistic --mode random'
     " --probability 0.33333333349 -j KUBE-SEP-A",
     ["0.5", "1.5", "abc", "-1", "0"]),
    ("-A INPUT -i eth0 -p tcp -m tcp --dport 22 -j ACCEPT",
     ["22", "65536", "1:2", "2:1", "ssh", "x-y", "-5", "0x10", "!"]),
    ("-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
     ["NEW", "BOGUS", "NEW,INVALID", "SNAT,DNAT", ""]),
    ("-A INPUT -m mark --mark 0x4000/0x4000 -j DROP",
     ["0x1", "0x100000000", "1/2", "-1", "0x1/0x1/0x1"]),
    ("-A OUTPUT -o lo -j ACCEPT",
     ["eth1", "+", "averyveryverylongname", "123456789012345", "1234567890123456"]),
    ("-A INPUT -p icmp -m icmp --icmp-type 8 -j ACCEPT", ["0", "echo-request", "any"]),
    ("-A INPUT -m set --match-set KUBE-SET src,dst -j ACCEPT", ["OTHER", "-x"]),
    ("-A INPUT -p tcp -j REJECT --reject-with tcp-reset", ["icmp-port-unreachable", "icmp6-no-route", "bogus"]),
    ("-A INPUT -c 10 20 -j ACCEPT", ["30", "x", "-1"]),
    ("-A INPUT -m comment --comment \"c\" -j LOG --log-prefix \"p: \"", ["q"]),
    ("-A INPUT -s 10.0.0.1/32 -d 10.0.0.2/32 -j ACCEPT", ["::1", "fe80::/64", "10.0.0.3", "10.0.0.0/0"]),
    # protocol numbers are not spelled out in the shape key: the plan checks them
    ("-A INPUT -p 6 -m tcp --dport 22 -j ACCEPT", ["17", "TCP", "58", "0", "256", "all"]),
    ("-A INPUT -g USER", ["ACCEPT", "INPUT", "KUBE-SEP-A", "NOWHERE"]),
    ("-A INPUT -j ACCEPT", ["NOTRACK", "MASQUERADE", "DROP", "USER", "set", "INPUT"]),
    ("-A INPUT -m recent --set --name x -j ACCEPT", ["y", "--set"]),
]


def _variants(line: str, values: list[str]) -> list[str]:
    # put each value where the first line has the one it replaces
    out = []
    base_toks = line.split()
    for value in values:
        for k, tok in enumerate(base_toks):
            if k > 2 and tok[:1] != "-" and '"' not in tok and tok not in ("tcp", "udp", "icmp", "comment",
                                                                           "statistic", "conntrack", "mark",
                                                                           "set", "random"):
                out.append(" ".join([*base_toks[:k], value, *base_toks[k + 1:]]))
    return out


def _dump(lines: list[str], table: str = "filter") -> str:
    chains = {"INPUT", "FORWARD", "OUTPUT", "PREROUTING", "POSTROUTING"}
    user = sorted({ln.split()[1] for ln in lines if ln.split()[1] not in chains}
                  | {"KUBE-SVC-A", "KUBE-SEP-A", "KUBE-MARK-MASQ", "USER"})
    head = [f"*{table}"] + [f":{c} - [0:0]" for c in user]
    return "\n".join([*head, *lines, "COMMIT", ""])


@pytest.mark.parametrize(("line", "values"), SHAPES, ids=lambda v: v if isinstance(v, str) and len(v) < 30 else None)
def test_replayed_variants_give_the_same_rule_or_error(line: str, values: list[str]) -> None:
    table = "nat" if "DNAT" in line or "MASQ" in line or "KUBE-SERVICES" in line else "filter"
    for variant in _variants(line, values):
        _assert_same(_dump([line, line, variant, line], table))
        _assert_same(_dump([line, variant], table), Family.IPV6)


def test_a_long_comment_after_short_ones_is_refused_the_same() -> None:
    line = '-A INPUT -m comment --comment "{}" -j ACCEPT'
    for text in ("x" * 255, "x" * 256, "a b", "", "-x"):
        fast = _assert_same(_dump([line.format("short"), line.format(text)]))
        assert (fast[0] == "error") == (len(text) > 255)


def test_a_rule_error_after_many_good_lines_is_reported_the_same() -> None:
    good = [f"-A INPUT -s 10.0.{k // 250}.{k % 250 + 1}/32 -p tcp -m tcp --dport {k + 1} -j ACCEPT"
            for k in range(300)]
    for bad in ("-A INPUT -s 10.0.0.1/32 -p tcp -m tcp --dport 70000 -j ACCEPT",
                "-A INPUT -s 10.0.0.999/32 -p tcp -m tcp --dport 1 -j ACCEPT",
                "-A INPUT -s 10.0.0.1/32 -p tcp -m tcp --dport 1 -j NOWHERE",
                "-A INPUT -s 10.0.0.1/32 -p tcp -m tcp --dport 1 -j INPUT",
                "-A INPUT -s 10.0.0.1/32 -p tcp -m tcp --dport 1 -j DNAT",
                "-A INPUT -s 10.0.0.1/32 -p tcp -m tcp --dport 1 -j ACCEPT -i averyveryverylongname",
                "-A NOCHAIN -s 10.0.0.1/32 -p tcp -m tcp --dport 1 -j ACCEPT"):
        # NOCHAIN is declared by _dump; the last line is the bad one
        text = _dump([*good, bad]).replace(":NOCHAIN - [0:0]", ":OTHER - [0:0]")
        fast = _assert_same(text)
        assert fast[0] == "error" and fast[1] == text.split("\n").index(bad) + 1


def test_conformance_rules_parse_identically_when_repeated() -> None:
    checked = 0
    for path in sorted(CONFORMANCE.glob("*.t")):
        table = "filter"
        family = Family.IPV6 if path.name.startswith("libip6t_") else None
        for line in path.read_text().splitlines():
            if line.startswith("*"):
                table = line[1:].strip()
            if not line or line[0] in "#@%*:":
                continue
            rule = line.split(";")[0]
            chain = "PREROUTING" if table in ("nat", "raw", "mangle") else "INPUT"
            body = f"-A {chain} {rule}"
            text = f"*{table}\n" + "\n".join([body, body, body.replace("-j ", "-j  ")]) + "\nCOMMIT\n"
            _assert_same(text, family)
            checked += 1
    assert checked > 300


TOKENS = [
    "-s", "-d", "-i", "-o", "-p", "!", "-m", "-j", "-g", "-c", "tcp", "udp", "icmp", "all", "6", "--dport",
    "--sport", "--dports", "multiport", "comment", "--comment", '"a b"', '"-x"', '""', "10.0.0.0/8", "10.0.0.1",
    "::1", "1.2.3.4,5.6.7.8", "999.1.1.1", "80", "1:2", "65536", "-1", "ACCEPT", "DROP", "REJECT", "DNAT",
    "--to-destination", "1.2.3.4:80", "conntrack", "--ctstate", "NEW", "set", "--match-set", "S", "src",
    "--set", "recent", "--name", "statistic", "--mode", "random", "--probability", "0.5", "eth0", "+",
    "--syn", "--tcp-flags", "SYN,ACK", "SYN", "-f", "--icmp-type", "8", "--reject-with", "icmp6-no-route",
    "USER", "INPUT", "--dport=80", "--foo", "-", "\t", "x\\y", "mark", "--mark", "0x1", "LOG", "--log-prefix",
]


@st.composite
def _shaped_dumps(draw: st.DrawFn) -> str:
    # a few rule bodies, each written several times with some tokens swapped,
    # so that most lines share a shape with an earlier one
    bodies = draw(st.lists(st.lists(st.sampled_from(TOKENS), min_size=1, max_size=10), min_size=1, max_size=3))
    rng = random.Random(draw(st.integers(0, 2**32)))
    lines = []
    for _ in range(draw(st.integers(2, 8))):
        body = list(rng.choice(bodies))
        if rng.random() < 0.6:
            body[rng.randrange(len(body))] = rng.choice(TOKENS)
        chain = rng.choice(["INPUT", "USER"])
        lines.append(f"-A {chain} " + " ".join(body))
    return "*filter\n:USER - [0:0]\n" + "\n".join(lines) + "\nCOMMIT\n"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
@given(_shaped_dumps())
def test_shaped_random_dumps_parse_identically(text: str) -> None:
    _assert_same(text)


def test_check_rule_takes_every_plain_jump_to_a_chain_alike() -> None:
    # _fast_rule asks check_rule about one `-j CHAIN` per shape and reuses
    # the answer for other chain names: extcheck must single out target
    # extensions only, never a chain name
    assert set(extcheck._TARGET_NEEDS) <= KNOWN_TARGETS
    assert {"REDIRECT", "MASQUERADE", "DNAT", "SNAT", "REJECT", "TCPMSS"} <= KNOWN_TARGETS
    for name in ("KUBE-SEP-X", "cali-fw-1", "set", "tcp", "comment", "x"):
        for proto, negated in (("", False), ("tcp", False), ("tcp", True), ("udp", False), ("icmp", False)):
            assert check_rule((), Target(name), proto, negated) is None
            assert check_rule((), Target(name, (), True), proto, negated) is None

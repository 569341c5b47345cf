"""Property and fuzz tests of the parsers: any input gives a Ruleset (or the
ipset tuple) or a ParseError — never another exception, never a hang — and
rules built from real option vocabulary parse and print back to themselves."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netviz.engine.parser import ParseError, parse_ipset_save, parse_ruleset
from netviz.engine.ruleset import IPSet, Match, Rule, Ruleset, Target

# database=None: no example database is written into the project tree.
# No deadline: how long an example takes depends on the machine's load, not
# on the parser (speed is `manage.py bench`'s business).
FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)


def _parse_or_error(text: str) -> Ruleset | None:
    try:
        return parse_ruleset(text)
    except ParseError as exc:
        assert exc.line >= 1
        return None


# -- anything at all ----------------------------------------------------------


@FUZZ
@given(st.text(max_size=400))
def test_any_text_parses_or_raises_parse_error(text: str) -> None:
    _parse_or_error(text)


@FUZZ
@given(st.binary(max_size=400))
def test_any_bytes_parse_or_raise_parse_error(data: bytes) -> None:
    # Uploads are decoded as UTF-8, falling back to latin-1 (every byte maps).
    _parse_or_error(data.decode("utf-8", "replace"))
    _parse_or_error(data.decode("latin-1"))


TOKENS = [
    "*filter", "*nat", "*mangle", "*raw", "*security", "*bogus", "COMMIT", ":INPUT ACCEPT [0:0]",
    ":FORWARD DROP [1:2]", ":OUTPUT ACCEPT", ":USER - [0:0]", ":USER", "-A", "-I", "-N", "-D", "-P",
    "INPUT", "FORWARD", "USER", "-s", "-d", "-i", "-o", "-p", "!", "-m", "-j", "-g", "tcp", "udp", "icmp",
    "--dport", "--sport", "--dports", "multiport", "comment", "--comment", "\"a b\"", "\"", "'", "\\",
    "10.0.0.0/8", "10.0.0.1", "::1/128", "1.2.3.4/33", "999.1.1.1", "80", "1:2", "65536", "-1", "0x10/0xff",
    "ACCEPT", "DROP", "RETURN", "REJECT", "DNAT", "--to-destination", "1.2.3.4:80", "MARK", "--set-xmark",
    "conntrack", "--ctstate", "NEW,ESTABLISHED", "set", "--match-set", "S", "src,dst", "statistic",
    "--mode", "random", "--probability", "0.5", "[0:0]", "[1:2]", "#", "\t", "", "-c", "--log-prefix",
    "LOG", "limit", "--limit", "5/sec", "mark", "--mark", "state", "--state", "addrtype", "--dst-type",
    "LOCAL", "--tcp-flags", "SYN,ACK", "SYN", "-f", "--syn", "icmp-type", "--icmp-type", "8", "any",
]


@st.composite
def token_soup(draw: st.DrawFn) -> str:
    lines = draw(st.lists(st.lists(st.sampled_from(TOKENS), max_size=12), max_size=12))
    return "\n".join(" ".join(line) for line in lines) + draw(st.sampled_from(["", "\n", "\r\n"]))


@FUZZ
@given(token_soup())
def test_token_soup_parses_or_raises_parse_error(text: str) -> None:
    _parse_or_error(text)


@FUZZ
@given(token_soup())
def test_token_soup_inside_a_table_parses_or_raises_parse_error(text: str) -> None:
    _parse_or_error("*filter\n:INPUT ACCEPT [0:0]\n:USER - [0:0]\n-A INPUT " + text + "\nCOMMIT\n")


# -- valid rules from real vocabulary -----------------------------------------

ADDRS = st.sampled_from(["10.0.0.0/8", "192.168.1.0/24", "10.96.0.10/32", "203.0.113.7/32", "0.0.0.0/0"])
IFACES = st.sampled_from(["eth0", "eth1", "cali+", "docker0", "veth1a2b", "br-lan"])
PORTS = st.integers(min_value=0, max_value=65535).map(str)
PORT_RANGES = st.tuples(st.integers(0, 65535), st.integers(0, 65535)).map(
    lambda t: f"{min(t)}:{max(t)}"
)
COMMENT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cc", "Cs", "Zl", "Zp"]),
    min_size=1, max_size=40,
).filter(lambda s: s.strip() == s and s != "")
NEG = st.sampled_from(["", "! "])


@st.composite
def rule_text(draw: st.DrawFn) -> str:
    parts: list[str] = []
    if draw(st.booleans()):
        parts.append(f"{draw(NEG)}-s {draw(ADDRS)}")
    if draw(st.booleans()):
        parts.append(f"{draw(NEG)}-d {draw(ADDRS)}")
    if draw(st.booleans()):
        parts.append(f"{draw(NEG)}-i {draw(IFACES)}")
    proto = draw(st.sampled_from(["", "tcp", "udp", "icmp"]))
    if proto:
        parts.append(f"-p {proto}")
    if draw(st.booleans()):
        text = draw(COMMENT).replace("\\", "").replace('"', "")
        if text:
            parts.append(f'-m comment --comment "{text}"')
    if proto in ("tcp", "udp"):
        choice = draw(st.sampled_from(["dport", "sport", "range", "multiport", "none"]))
        if choice == "dport":
            parts.append(f"-m {proto} {draw(NEG)}--dport {draw(PORTS)}")
        elif choice == "sport":
            parts.append(f"-m {proto} {draw(NEG)}--sport {draw(PORTS)}")
        elif choice == "range":
            parts.append(f"-m {proto} --dport {draw(PORT_RANGES)}")
        elif choice == "multiport":
            ports = draw(st.lists(PORTS, min_size=1, max_size=5, unique=True))
            parts.append(f"-m multiport {draw(NEG)}--dports {','.join(ports)}")
        if proto == "tcp" and draw(st.booleans()):
            parts.append("-m tcp --tcp-flags FIN,SYN,RST,ACK SYN")
    if proto == "icmp" and draw(st.booleans()):
        parts.append(f"-m icmp --icmp-type {draw(st.sampled_from(['8', '0', '3/4', 'any']))}")
    extra = draw(st.sampled_from([
        "", "-m conntrack --ctstate NEW", "-m conntrack ! --ctstate RELATED,ESTABLISHED",
        "-m state --state INVALID", "-m mark --mark 0x4000/0x4000", "-m mark ! --mark 0x1",
        "-m addrtype --dst-type LOCAL", "-m statistic --mode random --probability 0.50000000000",
        "-m limit --limit 5/sec --limit-burst 10", "-m pkttype --pkt-type broadcast",
    ]))
    if extra:
        parts.append(extra)
    target = draw(st.sampled_from([
        "-j ACCEPT", "-j DROP", "-j RETURN", "-j USER", "-g USER",
        "-j REJECT --reject-with icmp-port-unreachable", "-j REJECT --reject-with icmp-host-prohibited",
        "-j LOG --log-prefix \"netviz: \"", "-j MARK --set-xmark 0x4000/0x4000", "-j CONNMARK --save-mark",
        "",
    ]))
    if target:
        parts.append(target)
    return " ".join(parts)


def _wrap(rules: list[str]) -> str:
    body = "".join(f"-A INPUT {r}\n" for r in rules)
    return f"*filter\n:INPUT ACCEPT [0:0]\n:USER - [0:0]\n{body}COMMIT\n"


def _shape(rule: Rule) -> tuple[tuple[Match, ...], Target | None]:
    return rule.matches, rule.target


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
@given(st.lists(rule_text(), min_size=1, max_size=6))
def test_generated_rules_parse_and_print_back(rules: list[str]) -> None:
    parsed = parse_ruleset(_wrap(rules))
    table = parsed.table("filter")
    assert table is not None
    chain = table.chain("INPUT")
    assert chain is not None
    assert len(chain.rules) == len(rules)
    for rule in chain.rules:
        again = parse_ruleset(
            "*filter\n:INPUT ACCEPT [0:0]\n:USER - [0:0]\n" + rule.canonical() + "\nCOMMIT\n"
        )
        other_table = again.table("filter")
        assert other_table is not None
        other_chain = other_table.chain("INPUT")
        assert other_chain is not None
        (other,) = other_chain.rules
        assert _shape(other) == _shape(rule), (rule.text, rule.canonical())
        # canonical() is a fixed point.
        assert other.canonical() == rule.canonical()


# -- ipset save ---------------------------------------------------------------

SET_TYPES = {
    "hash:ip": st.sampled_from(["10.0.0.1", "192.168.7.9", "203.0.113.250"]),
    "hash:net": st.sampled_from(["10.0.0.0/8", "192.168.7.0/24", "203.0.113.128/25"]),
    "hash:ip,port": st.sampled_from(["10.0.0.1,tcp:80", "192.168.7.9,udp:53", "203.0.113.1,tcp:443"]),
    "hash:net,port": st.sampled_from(["10.0.0.0/8,tcp:80", "192.168.0.0/16,udp:53"]),
    "bitmap:port": st.sampled_from(["80", "443", "1024"]),
}


@st.composite
def ipset_text(draw: st.DrawFn) -> str:
    lines: list[str] = []
    for n, kind in enumerate(draw(st.lists(st.sampled_from(sorted(SET_TYPES)), min_size=1, max_size=4))):
        name = f"SET-{n}"
        opts = "range 0-65535" if kind == "bitmap:port" else "family inet hashsize 1024 maxelem 65536"
        if draw(st.booleans()) and kind != "bitmap:port":
            opts += " timeout 300"
        lines.append(f"create {name} {kind} {opts}")
        for member in draw(st.lists(SET_TYPES[kind], max_size=4, unique=True)):
            suffix = " timeout 60" if "timeout 300" in opts else ""
            lines.append(f"add {name} {member}{suffix}")
    return "\n".join(lines) + "\n"


def _ipset_back(sets: tuple[IPSet, ...]) -> str:
    lines: list[str] = []
    for s in sets:
        opts = " ".join(f"{k} {v}" if v else k for k, v in s.options)
        lines.append(f"create {s.name} {s.type} {opts}".rstrip())
        for m in s.members:
            text = f"add {s.name} {','.join(m.elements)}"
            if m.timeout is not None:
                text += f" timeout {m.timeout}"
            if m.nomatch:
                text += " nomatch"
            lines.append(text)
    return "\n".join(lines) + "\n"


def _no_lines(sets: tuple[IPSet, ...]) -> tuple[IPSet, ...]:
    return tuple(
        dataclasses.replace(s, line=0, members=tuple(dataclasses.replace(m, line=0) for m in s.members))
        for s in sets
    )


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
@given(ipset_text())
def test_generated_ipset_saves_parse_and_print_back(text: str) -> None:
    sets = parse_ipset_save(text)
    assert len(sets) == text.count("create ")
    assert sum(len(s.members) for s in sets) == text.count("\nadd ") + text.startswith("add ")
    assert _no_lines(parse_ipset_save(_ipset_back(sets))) == _no_lines(sets)


IPSET_TOKENS = [
    "create", "add", "del", "-exist", "S", "T", "hash:ip", "hash:net", "hash:ip,port", "bitmap:port",
    "hash:net,iface", "list:set", "family", "inet", "inet6", "hashsize", "1024", "maxelem", "timeout",
    "300", "range", "0-65535", "10.0.0.1", "10.0.0.0/8", "::1", "tcp:80", "udp:53", "10.0.0.1,tcp:80",
    "nomatch", "counters", "comment", "\"x y\"", "\"", "Name:", "Type:", "Members:", "Header:", "", "#",
]


@FUZZ
@given(st.lists(st.lists(st.sampled_from(IPSET_TOKENS), max_size=8), max_size=10))
def test_ipset_token_soup_parses_or_raises_parse_error(lines: list[list[str]]) -> None:
    try:
        parse_ipset_save("\n".join(" ".join(line) for line in lines))
    except ParseError:
        pass


@FUZZ
@given(st.text(max_size=300))
def test_any_text_as_ipset_save_parses_or_raises_parse_error(text: str) -> None:
    try:
        parse_ipset_save(text)
    except ParseError:
        pass


# -- every rule of the real dumps prints back to itself -------------------------

DATA = Path(__file__).resolve().parent / "data"


def _real_dumps() -> list[Path]:
    found: list[Path] = []
    for folder in ("realworld", "iptables-tests/dumps-ipt-save", "iptables-tests/dumps-ipt-restore",
                   "iptables-tests/dumps-firewalld-restore"):
        for path in sorted((DATA / folder).iterdir()):
            # Notes, ipset saves and trace oracles are not iptables-save text.
            if path.is_file() and path.suffix != ".md" and not any(
                word in path.name for word in ("ipset", "oracles")
            ):
                found.append(path)
    return found


@pytest.mark.parametrize("path", _real_dumps(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_real_rules_print_back_to_themselves(path: Path) -> None:
    try:
        ruleset = parse_ruleset(path.read_text(errors="replace"))
    except ParseError as exc:
        pytest.skip(f"{path.name} does not parse: {exc}")
    count = 0
    for table in ruleset.tables:
        declared = "".join(f":{c.name} {'ACCEPT' if c.builtin else '-'} [0:0]\n" for c in table.chains)
        for chain in table.chains:
            for rule in chain.rules:
                again = parse_ruleset(f"*{table.name}\n{declared}{rule.canonical()}\nCOMMIT\n",
                                      family=ruleset.family)
                other_table = again.table(table.name)
                assert other_table is not None
                other_chain = other_table.chain(chain.name)
                assert other_chain is not None
                assert _shape(other_chain.rules[0]) == _shape(rule), (rule.text, rule.canonical())
                count += 1
    assert count > 0 or not ruleset.rules()

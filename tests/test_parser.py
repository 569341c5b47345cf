from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netviz.engine.parser import (
    KNOWN_TARGETS,
    ParseError,
    _tokenize_exact,
    parse_ipset_save,
    parse_iptables_save,
    parse_ruleset,
    tokenize,
)
from netviz.engine.ruleset import Counters, Family, Match, Option, Rule, Target
from netviz.testing.gendump import SIZES, generate_dump

REALWORLD = Path(__file__).resolve().parent / "data" / "realworld"


def realworld_dumps() -> list[Path]:
    return sorted([*REALWORLD.glob("*.rules"), *REALWORLD.glob("*.restore")])


def table(body: str, name: str = "filter") -> str:
    return f"*{name}\n{body.strip()}\nCOMMIT\n"


def one_rule(body: str, name: str = "filter", family: Family | None = None) -> Rule:
    rules = parse_iptables_save(table(body, name), family).rules()
    assert len(rules) == 1
    return rules[0]


def error_of(text: str, **kw: object) -> ParseError:
    with pytest.raises(ParseError) as info:
        parse_ruleset(text, **kw)  # type: ignore[arg-type]
    return info.value


# --- real dumps ------------------------------------------------------------------


def count_appends(text: str) -> int:
    # "-A" lines, with or without a [p:b] counter prefix
    return len(re.findall(r"^(?:\[\d+:\d+\] )?-A ", text, flags=re.MULTILINE))


@pytest.mark.parametrize("path", realworld_dumps(), ids=lambda p: p.name)
def test_it_parses_every_realworld_dump(path: Path) -> None:
    text = path.read_text()
    if path.name == "ufw-libvirt-counters.rules":
        # anonymised: 255.255.255.255 was replaced by "IP4_2" (see its header);
        # iptables-restore refuses it too
        err = error_of(text)
        line = text.splitlines()[err.line - 1]
        assert "IP4_2/32" in line
        assert err.reason == 'bad address "IP4_2/32"'
        assert line[err.column - 1 :].startswith("IP4_2/32")
        return
    ruleset = parse_iptables_save(text)
    assert len(ruleset.rules()) == count_appends(text)
    lines = text.splitlines()
    for rule in ruleset.rules():
        source = lines[rule.line - 1]
        # the text is the source line without its counters
        assert source.endswith(rule.text) or source.rstrip().endswith(rule.text)
        assert rule.text.startswith(f"-A {rule.chain} ") or rule.text == f"-A {rule.chain}"
    for t in ruleset.tables:
        assert lines[t.line - 1] == f"*{t.name}"
        for chain in t.chains:
            assert [r.index for r in chain.rules] == list(range(1, len(chain.rules) + 1))
            if chain.line:
                assert lines[chain.line - 1].startswith(f":{chain.name} ")


def test_it_expected_families_and_sizes() -> None:
    want = {
        "kube-proxy-flannel-docker-libvirt-v1.22.rules": (Family.IPV4, 115),
        "ufw-libvirt-ip6tables-counters.rules": (Family.IPV6, 113),
        "firewalld-fedora27-ip6tables.rules": (Family.IPV6, 63),
        "calico-aks-kubenet-policy-only-filter.rules": (Family.IPV4, 194),
        "kube-proxy-test-overall-iptables-rules.restore": (Family.IPV4, 65),
    }
    for name, (family, count) in want.items():
        ruleset = parse_iptables_save((REALWORLD / name).read_text())
        assert (ruleset.family, len(ruleset.rules())) == (family, count), name


def test_it_reads_back_save_output_token_for_token() -> None:
    # iptables-save output is canonical already: printing a parsed rule gives
    # the same arguments back (quoting of comments aside, which Rule.canonical
    # only applies where a tokenizer needs it)
    checked = 0
    for path in realworld_dumps():
        if path.suffix != ".rules" or path.name.startswith(("ufw-libvirt-counters", "calico-aks")):
            continue
        for rule in parse_iptables_save(path.read_text()).rules():
            assert tokenize(rule.canonical()) == tokenize(rule.text), (
                path.name,
                rule.line,
            )
            checked += 1
    assert checked >= 890


def test_it_keeps_counters_of_a_counted_dump() -> None:
    ruleset = parse_iptables_save((REALWORLD / "k3s-kube-proxy-docker-counters.rules").read_text())
    text = (REALWORLD / "k3s-kube-proxy-docker-counters.rules").read_text().splitlines()
    for rule in ruleset.rules():
        m = re.match(r"\[(\d+):(\d+)\] ", text[rule.line - 1])
        assert m is not None
        assert rule.counters == Counters(int(m[1]), int(m[2]))
    chain = ruleset.table("nat").chain("PREROUTING")  # type: ignore[union-attr]
    assert chain is not None and chain.counters is not None


# --- representation ---------------------------------------------------------------


def test_it_puts_basic_criteria_first_in_canonical_order() -> None:
    rule = one_rule(
        ":INPUT ACCEPT [0:0]\n"
        "-A INPUT -m comment --comment x -p TCP --dport 80 ! --source 10.0.0.1 "
        "-o eth1 --in-interface eth0 -d 10.1.0.0/255.255.0.0 -j ACCEPT"
    )
    basic = rule.matches[0]
    assert basic.module == ""
    assert basic.options == (
        Option("-s", ("10.0.0.1/32",), negated=True),
        Option("-d", ("10.1.0.0/16",)),
        Option("-i", ("eth0",)),
        Option("-o", ("eth1",)),
        Option("-p", ("tcp",)),
    )
    assert [m.module for m in rule.matches] == ["", "comment", "tcp"]
    assert rule.matches[2].options == (Option("--dport", ("80",)),)
    assert rule.target == Target("ACCEPT")


def test_it_omits_the_basic_match_when_there_are_no_basic_criteria() -> None:
    rule = one_rule("-A INPUT -m mark --mark 0x1/0x1 -j DROP")
    assert rule.matches == (Match("mark", (Option("--mark", ("0x1/0x1",)),)),)
    assert one_rule("-A FORWARD").matches == ()
    assert one_rule("-A FORWARD").target is None


def test_it_normalises_addresses_like_iptables() -> None:
    cases = {
        "10.0.0.1": "10.0.0.1/32",
        "10.0.0.1/8": "10.0.0.0/8",
        "10.0.0.0/255.255.0.0": "10.0.0.0/16",
        "10.1.2.3/255.0.255.0": "10.0.2.0/255.0.255.0",
        "10.0.0.0/0": None,
        "0.0.0.0/0": None,
    }
    for written, saved in cases.items():
        rule = one_rule(f"-A INPUT -s {written} -j ACCEPT")
        if saved is None:
            # save_ipv4_addr prints nothing for a zero mask
            assert rule.matches == ()
        else:
            assert rule.matches[0].options == (Option("-s", (saved,)),)
    rule = one_rule("-A INPUT -d fe80::1:2/64 -j ACCEPT")
    assert rule.matches[0].options == (Option("-d", ("fe80::/64",)),)
    assert one_rule("-A INPUT -s 2001:db8::1 -j ACCEPT").matches[0].options[0].value == "2001:db8::1/128"


def test_it_expands_address_lists_into_rules_like_iptables() -> None:
    ruleset = parse_iptables_save(
        table("-A INPUT -j DROP\n-A INPUT -s 10.0.0.1,10.0.0.2 -d 1.1.1.1,2.2.2.2 -p udp -j ACCEPT\n-A INPUT -j LOG")
    )
    rules = ruleset.table("filter").chain("INPUT").rules  # type: ignore[union-attr]
    pairs = [(r.matches[0].options[0].value, r.matches[0].options[1].value) for r in rules[1:5]]
    assert pairs == [
        ("10.0.0.1/32", "1.1.1.1/32"),
        ("10.0.0.1/32", "2.2.2.2/32"),
        ("10.0.0.2/32", "1.1.1.1/32"),
        ("10.0.0.2/32", "2.2.2.2/32"),
    ]
    assert [r.index for r in rules] == [1, 2, 3, 4, 5, 6]
    assert {r.line for r in rules[1:5]} == {3}
    assert rules[5].target == Target("LOG")


def test_it_loads_the_protocol_match_implicitly() -> None:
    # restore input may leave out "-m tcp"; iptables loads it for --dport
    rule = one_rule("-A INPUT -p tcp --dport 22 --syn -j ACCEPT")
    assert rule.canonical() == "-A INPUT -p tcp -m tcp --dport 22 --syn -j ACCEPT"
    rule = one_rule("-A INPUT -p tcp -m comment --comment x --dport 80")
    assert [m.module for m in rule.matches] == ["", "comment", "tcp"]
    rule = one_rule("-A INPUT -p 17 --sport 53")
    assert rule.canonical() == "-A INPUT -p udp -m udp --sport 53"
    rule = one_rule("-A INPUT -p ipv6-icmp --icmpv6-type 128", family=Family.IPV6)
    assert rule.matches[1].module == "icmp6"


def test_it_keeps_kube_proxy_restore_order_semantics() -> None:
    rule = one_rule(
        ":KUBE-SERVICES - [0:0]\n:KUBE-SVC-X - [0:0]\n"
        '-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp '
        "-d 172.30.0.41 --dport 80 -j KUBE-SVC-X",
        name="nat",
    )
    assert rule.canonical() == (
        '-A KUBE-SERVICES -d 172.30.0.41/32 -p tcp -m comment --comment "ns1/svc1:p80 cluster IP" '
        "-m tcp --dport 80 -j KUBE-SVC-X"
    )


def test_it_keeps_unknown_modules_verbatim() -> None:
    rule = one_rule("-A INPUT -m geoip --src-cc CN,RU --whatever a b -j DROP")
    assert rule.matches == (Match("geoip", (Option("--src-cc", ("CN,RU",)), Option("--whatever", ("a", "b")))),)


def test_it_knows_option_arity() -> None:
    rule = one_rule(
        ":INPUT ACCEPT\n-A INPUT -p tcp -m tcp --tcp-flags SYN,RST SYN -m recent --name x --rcheck --rsource "
        '-m set ! --match-set S src,dst -j LOG --log-prefix "-x- " --log-uid'
    )
    assert rule.matches[1].options == (Option("--tcp-flags", ("SYN,RST", "SYN")),)
    assert rule.matches[2].options == (
        Option("--name", ("x",)),
        Option("--rcheck"),
        Option("--rsource"),
    )
    assert rule.matches[3].options == (Option("--match-set", ("S", "src,dst"), negated=True),)
    assert rule.target == Target("LOG", (Option("--log-prefix", ("-x- ",)), Option("--log-uid")))


# --- negation ------------------------------------------------------------------------


def test_it_reads_every_negation_form() -> None:
    new = one_rule("-A INPUT ! -s 10.0.0.1 -p tcp -m tcp ! --dport 22 -m set ! --match-set S dst")
    # iptables ≤ 1.4.2 wrote the "!" after the option
    old = one_rule("-A INPUT -s ! 10.0.0.1 -p tcp -m tcp --dport ! 22 -m set --match-set ! S dst")
    assert new.matches == old.matches
    assert new.matches[0].options[0] == Option("-s", ("10.0.0.1/32",), negated=True)
    assert new.matches[1].options == (Option("--dport", ("22",), negated=True),)
    assert new.matches[2].options == (Option("--match-set", ("S", "dst"), negated=True),)
    assert one_rule("-A INPUT ! -i eth0 ! -p udp -f").matches[0].options == (
        Option("-i", ("eth0",), negated=True),
        Option("-p", ("udp",), negated=True),
        Option("-f"),
    )


# --- quoting ---------------------------------------------------------------------------


def test_it_tokenizes_like_iptables_restore() -> None:
    assert tokenize('-m comment --comment "a \\"b\\" c"') == [
        "-m",
        "comment",
        "--comment",
        'a "b" c',
    ]
    # quotes may open inside a word; the closing quote ends the argument
    assert tokenize('--log-prefix pre"fix x"tail') == [
        "--log-prefix",
        "prefix x",
        "tail",
    ]
    # backslash is an ordinary character outside quotes; single quotes too
    assert tokenize("a\\b 'c d'") == ["a\\b", "'c", "d'"]
    assert tokenize('x "" y\t z') == ["x", "", "y", "z"]
    assert tokenize('"with \\\\ backslash"') == ["with \\ backslash"]


def test_it_reads_quoted_and_repeated_comments() -> None:
    rule = one_rule(
        '-A INPUT -m comment --comment "a \\"b\\" c" -m comment --comment plain '
        '-m comment --comment "[UFW BLOCK] " -j DROP'
    )
    assert rule.comments() == ('a "b" c', "plain", "[UFW BLOCK] ")
    assert parse_iptables_save(table(rule.canonical())).rules()[0].matches == rule.matches


def test_it_reports_an_unterminated_quote() -> None:
    err = error_of(table('-A INPUT -m comment --comment "abc -j ACCEPT'))
    assert (err.line, err.column, err.reason) == (2, 31, "unterminated quote")


# --- counters, line numbers ------------------------------------------------------------


def test_it_reads_counters_and_keeps_line_numbers() -> None:
    text = (
        "# Generated by iptables-save\n"
        "*filter\n"
        ":INPUT DROP [10:600]\n"
        ":FOO - [0:0]\n"
        "\n"
        "[3:180] -A INPUT -i lo -j ACCEPT\n"
        "# a comment in between\n"
        "-A INPUT -j FOO\n"
        "COMMIT\n"
    )
    ruleset = parse_iptables_save(text)
    filt = ruleset.table("filter")
    assert filt is not None and filt.line == 2
    inp = filt.chain("INPUT")
    assert inp is not None
    assert (inp.policy, inp.line, inp.counters) == ("DROP", 3, Counters(10, 600))
    first, second = inp.rules
    assert (first.line, first.text, first.counters) == (
        6,
        "-A INPUT -i lo -j ACCEPT",
        Counters(3, 180),
    )
    assert (second.line, second.index, second.counters) == (8, 2, None)
    foo = filt.chain("FOO")
    assert foo is not None and foo.policy is None and not foo.builtin
    # built-in chains the dump did not declare exist with policy ACCEPT
    fwd = filt.chain("FORWARD")
    assert fwd is not None and fwd.policy == "ACCEPT" and fwd.line == 0
    assert [c.name for c in filt.chains] == ["INPUT", "FORWARD", "OUTPUT", "FOO"]


def test_it_reads_crlf_and_tables_in_any_order() -> None:
    text = "*nat\r\n:PREROUTING ACCEPT [0:0]\r\nCOMMIT\r\n*raw\r\n-A OUTPUT -j NOTRACK\r\nCOMMIT\r\n"
    ruleset = parse_iptables_save(text)
    assert [t.name for t in ruleset.tables] == ["nat", "raw"]
    assert ruleset.rules()[0].text == "-A OUTPUT -j NOTRACK"


# --- restore verbs -------------------------------------------------------------------


def test_it_applies_restore_insert_and_chain_commands() -> None:
    text = table(
        "-N FOO\n"
        "-A INPUT -j DROP\n"  # line 3
        "-I INPUT -j ACCEPT\n"  # line 4, goes first
        "-I INPUT 2 -p udp -j FOO\n"  # line 5, between
        "-A FOO -j RETURN\n"
        "-P INPUT DROP\n"
        "-N TMP\n-A TMP -j ACCEPT\n-F TMP\n-X TMP\n"
        "-N OLD\n-A INPUT -j OLD\n-E OLD NEW\n"
        "-A INPUT -p tcp -j REJECT\n-D INPUT -p tcp -j REJECT\n"
        "-A INPUT -j LOG\n-R INPUT 5 -j NFLOG\n"
    )
    filt = parse_iptables_save(text).table("filter")
    assert filt is not None
    inp = filt.chain("INPUT")
    assert inp is not None and inp.policy == "DROP"
    assert [(r.index, r.line, r.canonical()) for r in inp.rules] == [
        (1, 4, "-A INPUT -j ACCEPT"),
        (2, 5, "-A INPUT -p udp -j FOO"),
        (3, 3, "-A INPUT -j DROP"),
        (4, 13, "-A INPUT -j NEW"),
        (5, 18, "-A INPUT -j NFLOG"),
    ]
    assert filt.chain("TMP") is None and filt.chain("OLD") is None
    assert filt.chain("NEW") is not None


def test_it_replaces_a_table_that_appears_twice() -> None:
    # iptables-restore flushes each table it reads (no --noflush)
    text = table("-A INPUT -j DROP") + table("-A INPUT -j ACCEPT")
    ruleset = parse_iptables_save(text)
    assert [r.canonical() for r in ruleset.rules()] == ["-A INPUT -j ACCEPT"]
    assert ruleset.table("filter").line == 4  # type: ignore[union-attr]


def test_it_resolves_forward_references_at_commit() -> None:
    ruleset = parse_iptables_save(table("-A INPUT -j LATER\n-N LATER"))
    assert ruleset.rules()[0].target == Target("LATER")


# --- errors ---------------------------------------------------------------------------

ERRORS = [
    # (text, line, column, reason)
    ("-A INPUT -j ACCEPT\n", 1, 1, "rule outside a table (missing *table line)"),
    (
        "*mangle\n-A INPUT -j ACCEPT\n",
        2,
        1,
        "missing COMMIT at end of table mangle (opened on line 1)",
    ),
    (
        "*filter\nCOMMIT\n*bogus\nCOMMIT\n",
        3,
        2,
        'unknown table "bogus" (expected raw, mangle, nat, filter or security)',
    ),
    (
        "*filter\n*nat\nCOMMIT\n",
        2,
        1,
        "*table line before COMMIT of table filter (opened on line 1)",
    ),
    ("COMMIT\n", 1, 1, "COMMIT without a *table line before it"),
    (
        ":INPUT ACCEPT [0:0]\n",
        1,
        1,
        "chain declaration outside a table (missing *table line)",
    ),
    (table("-A FOO -j ACCEPT"), 2, 4, 'chain "FOO" is not declared in table filter'),
    (
        table("-A INPUT -p tcp -j KUBE-FOO"),
        2,
        20,
        'unknown chain or target "KUBE-FOO" in jump',
    ),
    (table("-A INPUT -g NOPE"), 2, 13, 'unknown chain or target "NOPE" in goto'),
    (
        table("-A INPUT -g ACCEPT"),
        2,
        13,
        "-g needs a user-defined chain, ACCEPT is a target",
    ),
    (table("-A FORWARD -j INPUT"), 2, 15, "cannot jump to built-in chain INPUT"),
    (
        table("-A INPUT -j DNAT --to-destination 1.2.3.4"),
        2,
        13,
        "target DNAT is only valid in the nat table",
    ),
    (
        table(":INPUT REJECT [0:0]"),
        2,
        8,
        'bad policy "REJECT" for chain INPUT (ACCEPT, DROP or - expected)',
    ),
    (
        table(":FOO BLAH [0:0]"),
        2,
        6,
        'bad policy "BLAH" for chain FOO (ACCEPT, DROP or - expected)',
    ),
    (
        table(":FOO - [0:0]\n:FOO - [0:0]"),
        3,
        2,
        "chain FOO is declared twice (first on line 2)",
    ),
    (
        table(":LOG - [0:0]"),
        2,
        2,
        'chain name "LOG" clashes with the target of the same name',
    ),
    (
        table(":FORWARD ACCEPT bar"),
        2,
        17,
        'bad counters "bar" (expected [packets:bytes])',
    ),
    (table("[1:2 -A INPUT -j ACCEPT"), 2, 1, 'bad counters: missing "]"'),
    (
        table("[1:x] -A INPUT -j ACCEPT"),
        2,
        1,
        'bad counters "[1:x]" (expected [packets:bytes])',
    ),
    (table("-A INPUT -s 10.0.0.300 -j ACCEPT"), 2, 13, 'bad address "10.0.0.300"'),
    (
        table("-A INPUT -s 10.0.0.0/33 -j ACCEPT"),
        2,
        13,
        'bad mask "33" in "10.0.0.0/33" (at most /32)',
    ),
    (
        table("-A INPUT -d 10.0.0.0/255.0.x.0"),
        2,
        13,
        'bad mask "255.0.x.0" in "10.0.0.0/255.0.x.0"',
    ),
    (table("-A INPUT -s host.example.com"), 2, 13, 'bad address "host.example.com"'),
    (table("-A INPUT -p tcp !"), 2, 17, '"!" is not followed by an option'),
    (table("-A INPUT ! -j ACCEPT"), 2, 10, 'unexpected "!" before -j'),
    (table("-A INPUT ! ! -s 1.2.3.4"), 2, 12, 'two "!" in a row'),
    (table("-A INPUT -p foo -j ACCEPT"), 2, 13, 'unknown protocol "foo"'),
    (table("-A INPUT ! -p all"), 2, 15, "! -p all would never match"),
    (table("-A INPUT -x foo"), 2, 10, 'unknown option "-x"'),
    (
        table("-A INPUT --dport 80"),
        2,
        10,
        'unknown option "--dport" (no -m module or -p protocol before it)',
    ),
    (
        table("-A INPUT -m comment --comment x --dport 80"),
        2,
        33,
        'unknown option "--dport" for -m comment',
    ),
    (
        table("-A INPUT -t nat -j ACCEPT"),
        2,
        10,
        "-t is not allowed in restore input (the *table line sets the table)",
    ),
    (
        table("-A INPUT -m comment --comment foo bar"),
        2,
        35,
        'unexpected argument "bar"',
    ),
    (
        table("-A INPUT -s 1.1.1.1 -s 2.2.2.2"),
        2,
        21,
        "multiple -s options are not allowed",
    ),
    (
        table("-A INPUT -j ACCEPT -j DROP"),
        2,
        20,
        "multiple -j/-g options are not allowed",
    ),
    (
        table("-A INPUT -i abcdefghijklmnop"),
        2,
        13,
        'interface name "abcdefghijklmnop" is longer than 15 characters',
    ),
    (table("-D INPUT 1"), 2, 10, "chain INPUT has no rule 1"),
    (
        table("-I INPUT 3 -j ACCEPT"),
        2,
        10,
        "index of insertion too big: chain INPUT has 0 rules",
    ),
    (table("-Z INPUT extra"), 2, 10, 'unexpected argument "extra"'),
    (table("-L INPUT"), 2, 1, 'expected a command (-A, -I, -N, …), found "-L"'),
    (table("-A INPUT -m nosuchmatch"), 2, 13, 'unknown match "nosuchmatch"'),
    (table("-A INPUT -m tcp --dport 1"), 2, 13, "-m tcp needs -p tcp"),
    (
        table("-A INPUT -m mark --mark 4294967296"),
        2,
        18,
        'bad mark value "4294967296" (at most 0xffffffff)',
    ),
    (
        table("-A INPUT -m conntrack --ctstate NEW,BOGUS"),
        2,
        23,
        'unknown conntrack state "BOGUS"',
    ),
    (table("-A INPUT -m comment"), 2, 13, "-m comment needs one of --comment"),
    (
        table("-A INPUT -m comment --comment"),
        2,
        30,
        "option --comment requires a value",
    ),
    (
        table("-A INPUT -p tcp -j REJECT --reject-with tcp-rst"),
        2,
        27,
        'unknown --reject-with type "tcp-rst"',
    ),
    (
        table("-A INPUT -j REJECT --reject-with tcp-reset"),
        2,
        20,
        "--reject-with tcp-reset needs -p tcp",
    ),
]


@pytest.mark.parametrize(("text", "line", "column", "reason"), ERRORS, ids=[e[3][:40] for e in ERRORS])
def test_it_reports_errors_with_line_and_column(text: str, line: int, column: int, reason: str) -> None:
    err = error_of(text)
    assert (err.line, err.column, err.reason) == (line, column, reason)
    assert err.text == text.splitlines()[line - 1]
    assert str(err) == f"line {line}, column {column}: {reason}"
    assert isinstance(err, ValueError)


def test_it_points_at_the_offending_token_after_counters_and_quotes() -> None:
    err = error_of(table('[1:2] -A INPUT -m comment --comment "x y" -j KUBE-NOPE'))
    assert (err.line, err.column) == (2, 46)
    assert err.text[err.column - 1 :].startswith("KUBE-NOPE")


def test_it_checks_the_family() -> None:
    mixed = table("-A INPUT -s fe80::1 -j ACCEPT\n-A INPUT -s 10.0.0.1 -j ACCEPT")
    err = error_of(mixed)
    assert (err.line, err.column, err.reason) == (
        3,
        13,
        "IPv4 address or option in an IPv6 ruleset",
    )
    err = error_of(table("-A INPUT -s 10.0.0.1"), family=Family.IPV6)
    assert err.reason == "IPv4 address or option in an IPv6 ruleset"
    err = error_of(table("-A INPUT -s 10.0.0.1 -d ::1"))
    assert err.reason == 'address "::1" mixes IPv4 and IPv6 in one rule'
    assert parse_iptables_save(table("-A INPUT -p ipv6-icmp -j ACCEPT")).family is Family.IPV6
    assert parse_iptables_save(table("-A INPUT -j ACCEPT")).family is Family.IPV4
    assert parse_iptables_save(table("-A INPUT -j ACCEPT"), Family.IPV6).family is Family.IPV6


def test_it_knows_real_target_names() -> None:
    for name in (
        "ACCEPT",
        "DROP",
        "RETURN",
        "MASQUERADE",
        "CT",
        "TPROXY",
        "NFQUEUE",
        "SYNPROXY",
    ):
        assert name in KNOWN_TARGETS
    assert "KUBE-MARK-MASQ" not in KNOWN_TARGETS


# --- ipset -------------------------------------------------------------------------------

IPSET_SAVE = """\
create KUBE-CLUSTER-IP hash:ip,port family inet hashsize 1024 maxelem 65536
add KUBE-CLUSTER-IP 10.96.0.10,udp:53
add KUBE-CLUSTER-IP 10.96.0.1,443 timeout 30
create NETS hash:net family inet6 counters comment
add NETS 2001:db8::/32 nomatch packets 5 bytes 300 comment "no \\"quote\\" here"
create PORTS bitmap:port range 0-1024
add PORTS 22
add PORTS 80-88
create IFACES hash:net,iface
add IFACES 10.0.0.0/8,eth0
create TRIPLE hash:ip,port,net
add TRIPLE 10.0.0.1,tcp:80,10.1.0.0/16
create LIST list:set size 8
add LIST NETS
create IPI hash:ip,port,ip
add IPI 10.0.0.1,udp:53,10.0.0.2
create BIP bitmap:ip range 10.0.0.0-10.0.0.255
add BIP 10.0.0.7
"""


def test_it_parses_ipset_save() -> None:
    sets = {s.name: s for s in parse_ipset_save(IPSET_SAVE)}
    cip = sets["KUBE-CLUSTER-IP"]
    assert (cip.type, cip.family, cip.line) == ("hash:ip,port", "inet", 1)
    assert cip.options == (("hashsize", "1024"), ("maxelem", "65536"))
    assert [m.elements for m in cip.members] == [
        ("10.96.0.10", "udp:53"),
        ("10.96.0.1", "tcp:443"),
    ]
    assert (cip.members[1].timeout, cip.members[1].line) == (30, 3)
    nets = sets["NETS"]
    assert nets.family == "inet6"
    assert nets.options == (("counters", ""), ("comment", ""))
    assert nets.members[0].elements == ("2001:db8::/32",)
    assert nets.members[0].nomatch
    assert [m.elements for m in sets["PORTS"].members] == [("22",), ("80-88",)]
    assert sets["IFACES"].members[0].elements == ("10.0.0.0/8", "eth0")
    assert sets["TRIPLE"].members[0].elements == ("10.0.0.1", "tcp:80", "10.1.0.0/16")
    assert sets["LIST"].members[0].elements == ("NETS",)
    assert sets["IPI"].members[0].elements == ("10.0.0.1", "udp:53", "10.0.0.2")
    assert sets["BIP"].options == (("range", "10.0.0.0-10.0.0.255"),)
    assert sets["BIP"].members[0].elements == ("10.0.0.7",)


def test_it_parses_ipset_list_output() -> None:
    sets = parse_ipset_save((REALWORLD / "ipset-kube-proxy-ipvs-cluster-ip.ipset.txt").read_text())
    assert len(sets) == 1
    cip = sets[0]
    assert (cip.name, cip.type, cip.family) == (
        "KUBE-CLUSTER-IP",
        "hash:ip,port",
        "inet",
    )
    assert cip.options == (("hashsize", "1024"), ("maxelem", "65536"))
    assert len(cip.members) == 7
    assert cip.members[4].elements == ("10.96.0.10", "udp:53")


IPSET_ERRORS = [
    ("add NOPE 1.2.3.4\n", 1, 5, 'set "NOPE" is not defined'),
    ("create S hash:foo\n", 1, 10, 'unknown set type "hash:foo"'),
    (
        "create S hash:ip\nadd S 1.2.3.4,80\n",
        2,
        7,
        'element "1.2.3.4,80" does not fit type hash:ip (1 parts expected)',
    ),
    ("create S hash:ip\nadd S 1.2.3.400\n", 2, 7, 'bad address "1.2.3.400"'),
    (
        "create S hash:ip family inet6\nadd S 1.2.3.4\n",
        2,
        7,
        'address "1.2.3.4" does not belong to a family inet6 set',
    ),
    (
        "create S hash:ip,port\nadd S 1.2.3.4,tcp:99999\n",
        2,
        7,
        'port "99999" out of range',
    ),
    (
        "create S hash:ip\ncreate S hash:net\n",
        2,
        8,
        "set S is already defined (line 1)",
    ),
    ("create S hash:ip bogus 1\n", 1, 18, 'unknown create option "bogus"'),
    ("flush S\n", 1, 1, 'unknown command "flush" (create or add expected)'),
]


@pytest.mark.parametrize(
    ("text", "line", "column", "reason"),
    IPSET_ERRORS,
    ids=[e[3][:30] for e in IPSET_ERRORS],
)
def test_it_reports_ipset_errors(text: str, line: int, column: int, reason: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_ipset_save(text)
    err = info.value
    assert (err.line, err.column, err.reason) == (line, column, reason)


def test_it_combines_rules_and_sets() -> None:
    rules = table("-A INPUT -m set --match-set KUBE-CLUSTER-IP dst,dst -j ACCEPT")
    ruleset = parse_ruleset(rules, IPSET_SAVE)
    assert ruleset.ipset("KUBE-CLUSTER-IP") is not None
    assert len(ruleset.ipsets) == 8
    # without ipset text the reference is left for the matcher to call unknown
    assert parse_ruleset(rules).ipsets == ()
    err = error_of(table("-A INPUT -m set --match-set MISSING src -j DROP"), ipsets=IPSET_SAVE)
    assert (err.line, err.column, err.reason) == (2, 29, "ipset MISSING is not defined")


def test_it_pairs_the_ipvs_dump_with_its_ipset() -> None:
    rules = (REALWORLD / "kube-proxy-ipvs-calico-natoutgoing-on.rules").read_text()
    listing = (REALWORLD / "ipset-kube-proxy-ipvs-cluster-ip.ipset.txt").read_text()
    # the dump also references KUBE-LOOP-BACK etc., which the listing lacks
    err = error_of(rules, ipsets=listing)
    assert err.reason.startswith("ipset ") and err.reason.endswith(" is not defined")
    assert "KUBE-CLUSTER-IP" not in err.reason


def test_it_refuses_to_delete_a_busy_chain() -> None:
    err = error_of(table("-N A\n-A INPUT -j A\n-X A"))
    assert (err.line, err.reason) == (
        4,
        "chain A is still referenced from chain INPUT (line 3)",
    )
    err = error_of(table("-N A\n-A A -j ACCEPT\n-X"))
    assert (err.line, err.reason) == (4, "chain A is not empty")
    ruleset = parse_iptables_save(table("-N A\n-N B\n-A A -j B\n-F\n-X"))
    assert [c.name for c in ruleset.tables[0].chains] == ["INPUT", "FORWARD", "OUTPUT"]


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet=" \t\"\\'ab-!", max_size=24))
def test_the_fast_tokenizer_paths_agree_with_add_param_to_argv(line: str) -> None:
    exact, _, _, unterminated = _tokenize_exact(line)
    if unterminated < 0:
        assert tokenize(line) == exact


def test_it_parses_a_generated_kube_proxy_dump() -> None:
    # about 10,000 rules (how fast: `manage.py bench`)
    dump = generate_dump(*SIZES["10k"], seed=3)
    ruleset = parse_iptables_save(dump.text)
    assert len(ruleset.rules()) == count_appends(dump.text)


def test_it_treats_a_foreign_builtin_name_as_a_user_chain() -> None:
    # iptables-nft accepts ":PREROUTING" in filter and makes a user chain of it
    filt = parse_iptables_save(table(":PREROUTING ACCEPT [0:0]\n-A INPUT -j PREROUTING")).table("filter")
    assert filt is not None
    chain = filt.chain("PREROUTING")
    assert chain is not None and chain.policy is None and not chain.builtin
    assert filt.chains[-1] is chain


def test_it_reads_counters_given_with_dash_c() -> None:
    rule = one_rule("-A INPUT -c 7 420 -p udp -j ACCEPT")
    assert rule.counters == Counters(7, 420)
    assert rule.canonical() == "-A INPUT -p udp -j ACCEPT"


# Kernel counters are u64.  iptables-restore clamps a larger value to 2^64-1
# (strtoull); netviz refuses it with the line, as no iptables-save wrote it.
U64_MAX = 2**64 - 1


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("*filter\n:INPUT ACCEPT [99999999999999999999:1]\nCOMMIT\n", 2),
        ("*filter\n:INPUT ACCEPT [0:18446744073709551616]\nCOMMIT\n", 2),
        ("*filter\n:INPUT ACCEPT [0:0]\n[18446744073709551616:1] -A INPUT -j ACCEPT\nCOMMIT\n", 3),
        ("*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -c 1 18446744073709551616 -j ACCEPT\nCOMMIT\n", 3),
        ("*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp --dport 22 -c 18446744073709551616 1 -j ACCEPT\nCOMMIT\n", 3),
    ],
)
def test_it_refuses_counters_above_64_bits_with_the_line(text: str, line: int) -> None:
    with pytest.raises(ParseError) as info:
        parse_ruleset(text)
    assert info.value.line == line and "2^64-1" in info.value.reason


def test_it_keeps_counters_up_to_64_bits_exactly() -> None:
    rs = parse_ruleset(
        f"*filter\n:INPUT ACCEPT [{U64_MAX}:{2**63}]\n[{2**63}:{U64_MAX}] -A INPUT -j ACCEPT\n"
        f"-A INPUT -p tcp --dport 22 -c {U64_MAX} 7 -j ACCEPT\nCOMMIT\n"
    )
    chain = rs.rules()[0]
    table = rs.table("filter")
    assert table is not None and table.chain("INPUT") is not None
    assert table.chain("INPUT").counters == Counters(U64_MAX, 2**63)  # type: ignore[union-attr]
    assert chain.counters == Counters(2**63, U64_MAX)
    assert rs.rules()[1].counters == Counters(U64_MAX, 7)


def test_it_reports_lines_read_while_parsing() -> None:
    text = "*filter\n:INPUT ACCEPT [0:0]\n" + "".join(
        f"-A INPUT -s 10.{i // 65536}.{i // 256 % 256}.{i % 256}/32 -j ACCEPT\n" for i in range(9000)
    ) + "COMMIT\n"
    seen: list[tuple[int, int]] = []
    parse_ruleset(text, progress=lambda done, total: seen.append((done, total)))
    total = text.count("\n") + 1
    assert seen == [(4096, total), (8192, total)]

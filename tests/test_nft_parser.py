"""nft list ruleset text and `nft -j` JSON → the nft model."""

from __future__ import annotations

from pathlib import Path

import pytest

from netviz.engine.nft.model import (
    Binop,
    Concat,
    Ct,
    Flags,
    Match,
    Meta,
    Nat,
    NftParseError,
    Payload,
    Prefix,
    SetLit,
    SetRef,
    SetStmt,
    Unknown,
    Value,
    Verdict,
    VMap,
)
from netviz.engine.nft.parse_json import parse_nft, parse_nft_json
from netviz.engine.nft.parse_text import parse_nft_text

DATA = Path(__file__).parent / "data" / "realworld-nft"
LISTINGS = sorted(DATA.glob("*.nft"))


@pytest.mark.parametrize("path", LISTINGS, ids=lambda p: p.stem)
def test_it_reads_every_real_listing_as_text_and_as_json_alike(path: Path) -> None:
    text = parse_nft_text(path.read_text())
    js = parse_nft_json(path.with_suffix(".json").read_text())
    assert [(t.family, t.name) for t in text.tables] == [(t.family, t.name) for t in js.tables]
    for a, b in zip(text.tables, js.tables, strict=True):
        assert [c.name for c in a.chains] == [c.name for c in b.chains]
        assert [c.base for c in a.chains] == [c.base for c in b.chains]
        assert sorted(s.name for s in a.sets) == sorted(s.name for s in b.sets)
        for ca, cb in zip(a.chains, b.chains, strict=True):
            assert len(ca.rules) == len(cb.rules)
            for ra, rb in zip(ca.rules, cb.rules, strict=True):
                assert ra.index == rb.index
                # nft drops implied dependencies (`meta l4proto udp udp dport`) in JSON.
                kinds_a = [type(s).__name__ for s in ra.statements]
                kinds_b = [type(s).__name__ for s in rb.statements]
                assert kinds_b == kinds_a or len(kinds_a) == len(kinds_b) + 1, ra.text
    assert not any(isinstance(s, Unknown) for r in text.rules() for s in r.statements)


def test_it_reads_base_chains_with_named_priorities_and_offsets() -> None:
    rs = parse_nft_text(
        "table inet t {\n"
        "\tchain a {\n\t\ttype filter hook prerouting priority dstnat - 10; policy accept;\n\t}\n"
        "\tchain b {\n\t\ttype filter hook input priority filter + 10; policy drop;\n\t}\n"
        "\tchain c {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n\t}\n"
        "\tchain d {\n\t\ttype route hook output priority mangle; policy accept;\n\t}\n"
        "}\n"
    )
    bases = [(c.name, c.base.type, c.base.hook, c.base.priority, c.base.policy) for c in rs.tables[0].chains if c.base]
    assert bases == [
        ("a", "filter", "prerouting", -110, "accept"),
        ("b", "filter", "input", 10, "drop"),
        ("c", "nat", "postrouting", 100, "accept"),
        ("d", "route", "output", -150, "accept"),
    ]


def test_it_reads_matches_sets_vmaps_and_nat() -> None:
    rs = parse_nft_text(
        "table ip t {\n"
        "\tset allowed {\n\t\ttype ipv4_addr\n\t\tflags interval\n\t\telements = { 10.0.0.0/8, 192.0.2.1 }\n\t}\n"
        "\tchain c {\n"
        "\t\tip saddr != @allowed ct state established,related tcp dport { 22, 80 } accept # handle 4\n"
        "\t\tip daddr . tcp dport vmap { 10.0.0.1 . 80 : jump x, 10.0.0.2 . 443 : drop }\n"
        "\t\tmeta l4proto tcp dnat to 192.0.2.2:8080\n"
        "\t}\n"
        "\tchain x {\n\t}\n"
        "}\n"
    )
    table = rs.tables[0]
    allowed = table.set("allowed")
    assert allowed is not None and [e.key for e in allowed.elements] == [Prefix("10.0.0.0", 8), Value("192.0.2.1")]
    r1, r2, r3 = table.chain("c").rules  # type: ignore[union-attr]
    assert r1.handle == 4 and r1.line == 8
    assert r1.statements[0] == Match(Payload("ip", "saddr"), "!=", SetRef("allowed"), "ip saddr != @allowed")
    assert r1.statements[1] == Match(Ct("state"), "implicit", Flags(("established", "related")), "ct state established,related")
    assert isinstance(r1.statements[2], Match) and isinstance(r1.statements[2].right, SetLit)
    assert r1.statements[3] == Verdict("accept")
    vmap = r2.statements[0]
    assert isinstance(vmap, VMap) and vmap.key == Concat((Payload("ip", "daddr"), Payload("tcp", "dport")))
    assert isinstance(vmap.map, SetLit) and vmap.map.elements[0].data == Verdict("jump", "x")
    assert r3.statements == (Match(Meta("l4proto"), "implicit", Value("tcp"), "meta l4proto tcp"),
                             Nat("dnat", "", Value("192.0.2.2"), Value("8080")))


def test_it_marks_tables_managed_by_iptables_nft() -> None:
    rs = parse_nft_text(
        "# Warning: table ip filter is managed by iptables-nft, do not touch!\n"
        "table ip filter {\n\tchain INPUT {\n\t\ttype filter hook input priority filter; policy accept;\n\t}\n}\n"
        "table ip nat {\n\tchain POSTROUTING {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n"
        "\t\tcounter xt target MASQUERADE\n\t}\n}\n"
        "table inet fw {\n}\n"
    )
    assert [(t.name, t.managed, t.traced) for t in rs.tables] == [
        ("filter", True, False), ("nat", True, False), ("fw", False, True),
    ]
    assert len(rs.notes) == 2 and "ip filter is managed by iptables-nft" in rs.notes[0]


def test_it_keeps_bridge_tables_untraced_and_unknown_statements() -> None:
    rs = parse_nft_text(
        "table bridge br {\n\tchain f {\n\t\ttype filter hook forward priority filter; policy accept;\n\t}\n}\n"
        "table inet t {\n\tchain c {\n\t\tsynproxy mss 1460 wscale 7 accept\n\t}\n}\n"
    )
    assert [t.traced for t in rs.tables] == [False, True]
    stmts = rs.tables[1].chains[0].rules[0].statements
    assert stmts == (Unknown("synproxy mss 1460 wscale 7"), Verdict("accept"))


@pytest.mark.parametrize(
    ("text", "line", "col", "words"),
    [
        ("table inet t {\n\tchain c {\n\t\tip saddr\n\t}\n}\n", 3, 6, "value to compare"),
        ("table inet t {\n\tchain c {\n\t\tbogus 1 accept\n", 1, 14, "never closed"),
        ("tables inet t {\n}\n", 1, 1, "expected `table`"),
        ("table inet t {\n\tchain c {\n\t\ttype filter hook input priority nonsense; policy accept;\n\t}\n}\n", 2, 2, "priority"),
        ("table inet t {\n\tchain c {\n\t\tfrobnicate eq 1\n\t}\n}\n", 3, 3, "frobnicate"),
    ],
)
def test_it_names_line_column_and_construct_in_errors(text: str, line: int, col: int, words: str) -> None:
    with pytest.raises(NftParseError) as info:
        parse_nft_text(text)
    assert (info.value.line, info.value.column) == (line, col)
    assert words in str(info.value)


def test_it_names_the_json_path_in_errors() -> None:
    with pytest.raises(NftParseError) as info:
        parse_nft_json('{"nftables": [{"table": {"family": "inet", "name": "t"}}, {"rule": {"family": "inet", "table": "t", "chain": "nope", "expr": []}}]}')
    assert info.value.path == "nftables[1]" and "nope" in str(info.value)


def test_parse_nft_tells_json_from_text() -> None:
    path = DATA / "gorbe-webserver.nft"
    assert parse_nft(path.read_text()) == parse_nft_text(path.read_text())
    assert len(parse_nft(path.with_suffix(".json").read_text()).rules()) == len(parse_nft_text(path.read_text()).rules())


def test_it_reads_binary_operators_written_as_words() -> None:
    # `nft list ruleset` prints a mark set by iptables-nft's
    # `-j MARK --set-xmark 0x4000/0x4000` (kube-proxy) with `or`, and the
    # JSON of the same rule has "|".
    rs = parse_nft_text(
        "table inet t {\n"
        "\tchain c {\n"
        "\t\ttcp dport 30080 counter packets 0 bytes 0 meta mark set mark or 0x4000\n"
        "\t\tmeta mark set mark and 0xffffbfff xor 0x8000\n"
        "\t}\n"
        "}\n"
    )
    r1, r2 = rs.tables[0].chain("c").rules  # type: ignore[union-attr]
    set1 = r1.statements[-1]
    assert isinstance(set1, SetStmt) and set1.value == Binop("|", Meta("mark"), Value("0x4000"))
    set2 = r2.statements[-1]
    assert isinstance(set2, SetStmt)
    assert set2.value == Binop("^", Binop("&", Meta("mark"), Value("0xffffbfff")), Value("0x8000"))

"""`nft list ruleset` text → NftRuleset.

The listing is nft's own output, so tokens are separated by blanks except
`{ } ; ,` and quoted strings.  A rule is one line (braces may span lines).
Errors name the line and column and the construct.  A statement the engine
does not know is kept as `Unknown` (it evaluates as unknown), never dropped.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from .model import (
    Action,
    BaseHook,
    Binop,
    Chain,
    Concat,
    Ct,
    DynSet,
    Element,
    Expr,
    Fib,
    Flags,
    Limit,
    MapLookup,
    Match,
    Meta,
    Nat,
    NftParseError,
    NftRuleset,
    NftSet,
    Numgen,
    Opaque,
    Payload,
    Prefix,
    Quota,
    Range,
    Reject,
    Rule,
    SetLit,
    SetRef,
    SetStmt,
    Statement,
    Table,
    Unknown,
    Value,
    Verdict,
    VMap,
)
from .names import (
    BARE_META,
    FAMILIES,
    PAYLOAD_PROTOCOLS,
    VERDICT_WORDS,
    managed_note,
    priority_value,
)

_TOKEN = re.compile(
    r'(?P<nl>\n)|(?P<ws>[ \t\r]+)|(?P<comment>#[^\n]*)|(?P<str>"(?:[^"\\\n]|\\.)*")'
    r'|(?P<punct>[{};,])|(?P<word>[^\s{};,"#]+)'
)


class Tok(NamedTuple):
    kind: str  # nl, comment, str, punct, word
    text: str
    line: int
    col: int


_PLAIN = re.compile(r"[{};,]|[^\s{};,]+")
_PUNCT = frozenset("{};,")


def tokenize(text: str) -> list[Tok]:
    toks: list[Tok] = []
    append = toks.append
    lines = text.split("\n")
    for n, line in enumerate(lines, 1):
        if '"' in line or "#" in line:
            _tokenize_line(line, n, append)
        else:
            # Most lines hold neither strings nor comments: words and `{};,`.
            for m in _PLAIN.finditer(line):
                word = m.group()
                append(Tok("punct" if word in _PUNCT else "word", word, n, m.start() + 1))
        if n < len(lines):
            append(Tok("nl", "\n", n, len(line) + 1))
    return toks


def _tokenize_line(line: str, n: int, append: Any) -> None:
    pos = 0
    for m in _TOKEN.finditer(line):
        start = m.start()
        if start != pos:
            raise NftParseError(f"unexpected character {line[pos]!r}", n, pos + 1)
        pos = m.end()
        kind = m.lastgroup
        if kind != "ws":
            append(Tok(kind or "", m.group(), n, start + 1))
    if pos != len(line):
        raise NftParseError(f"unexpected character {line[pos]!r}", n, pos + 1)


def unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        return re.sub(r"\\(.)", r"\1", text[1:-1])
    return text


_HANDLE = re.compile(r"#\s*handle\s+(\d+)")
_WARNING = re.compile(r"#\s*Warning: table (\S+) (\S+) is managed by iptables-nft")


class _Stream:
    def __init__(self, toks: list[Tok]) -> None:
        self.toks = toks
        self.texts = [t.text for t in toks]
        self.n = len(toks)
        self.i = 0

    def peek(self, ahead: int = 0) -> Tok | None:
        j = self.i + ahead
        return self.toks[j] if j < self.n else None

    def text(self, ahead: int = 0) -> str:
        j = self.i + ahead
        return self.texts[j] if j < self.n else ""

    def next(self, what: str) -> Tok:
        tok = self.peek()
        if tok is None:
            last = self.toks[-1] if self.toks else Tok("nl", "", 1, 1)
            raise NftParseError(f"{what} expected, found the end", last.line, last.col)
        self.i += 1
        return tok

    def expect(self, text: str, what: str) -> Tok:
        tok = self.next(what)
        if tok.text != text:
            raise NftParseError(f"{what}: expected {text!r}, found {tok.text!r}", tok.line, tok.col)
        return tok

    def word(self, what: str) -> str:
        tok = self.next(what)
        if tok.kind not in ("word", "str"):
            raise NftParseError(f"{what} expected, found {tok.text!r}", tok.line, tok.col)
        return tok.text

    def done(self) -> bool:
        return self.i >= self.n


def parse_nft_text(text: str) -> NftRuleset:
    toks = tokenize(text)
    tables: list[Table] = []
    warned: set[tuple[str, str]] = set()
    i = 0
    while i < len(toks):
        tok = toks[i]
        if tok.kind == "nl" or (tok.kind == "punct" and tok.text == ";"):
            i += 1
            continue
        if tok.kind == "comment":
            m = _WARNING.match(tok.text)
            if m:
                warned.add((m.group(1), m.group(2)))
            i += 1
            continue
        if tok.text != "table":
            raise NftParseError(f"expected `table`, found {tok.text!r}", tok.line, tok.col)
        table, i = _table(toks, i, warned)
        tables.append(table)
    notes = tuple(managed_note(t) for t in tables if t.managed)
    return NftRuleset(tables=tuple(tables), notes=notes)


def _block_end(toks: list[Tok], i: int) -> int:
    """Index of the `}` closing the `{` at toks[i]."""
    depth = 0
    for j in range(i, len(toks)):
        if toks[j].kind == "punct":
            if toks[j].text == "{":
                depth += 1
            elif toks[j].text == "}":
                depth -= 1
                if depth == 0:
                    return j
    raise NftParseError("`{` is never closed", toks[i].line, toks[i].col)


def _lines(toks: list[Tok]) -> list[list[Tok]]:
    """Split a block body into lines at newlines and `;` outside braces."""
    lines: list[list[Tok]] = []
    cur: list[Tok] = []
    depth = 0
    for tok in toks:
        if tok.kind == "punct" and tok.text == "{":
            depth += 1
        elif tok.kind == "punct" and tok.text == "}":
            depth -= 1
        if depth == 0 and (tok.kind == "nl" or (tok.kind == "punct" and tok.text == ";")):
            if cur:
                lines.append(cur)
            cur = []
            continue
        if tok.kind == "nl":
            continue
        cur.append(tok)
    if cur:
        lines.append(cur)
    return lines


def _table(toks: list[Tok], i: int, warned: set[tuple[str, str]]) -> tuple[Table, int]:
    start = toks[i]
    j = i + 1
    family = "ip"
    if j < len(toks) and toks[j].text in FAMILIES and j + 1 < len(toks) and toks[j + 1].kind in ("word", "str"):
        family = toks[j].text
        j += 1
    if j >= len(toks) or toks[j].kind not in ("word", "str"):
        raise NftParseError("table: name expected", start.line, start.col)
    name = unquote(toks[j].text)
    j += 1
    while j < len(toks) and toks[j].kind in ("comment", "nl"):
        j += 1
    if j >= len(toks) or toks[j].text != "{":
        raise NftParseError(f"table {family} {name}: `{{` expected", start.line, start.col)
    end = _block_end(toks, j)
    body = toks[j + 1 : end]
    chains: list[Chain] = []
    sets: list[NftSet] = []
    comment = ""
    k = 0
    while k < len(body):
        tok = body[k]
        if tok.kind in ("nl", "comment") or tok.text == ";":
            k += 1
            continue
        if tok.text in ("chain", "set", "map"):
            if k + 1 >= len(body):
                raise NftParseError(f"{tok.text}: name expected", tok.line, tok.col)
            obj_name = unquote(body[k + 1].text)
            m = k + 2
            while m < len(body) and body[m].kind in ("comment", "nl"):
                m += 1
            if m >= len(body) or body[m].text != "{":
                raise NftParseError(f"{tok.text} {obj_name}: `{{` expected", tok.line, tok.col)
            close = _block_end(body, m)
            inner = body[m + 1 : close]
            if tok.text == "chain":
                chains.append(_chain(family, name, obj_name, inner, tok))
            else:
                sets.append(_set(obj_name, inner, tok, is_map=tok.text == "map"))
            k = close + 1
            continue
        if tok.text == "comment" and k + 1 < len(body):
            comment = unquote(body[k + 1].text)
            k += 2
            continue
        # Other objects (ct helper, counter, quota, flowtable, flags…): kept
        # out of the model; a block is skipped whole.
        m = k
        while m < len(body) and body[m].kind != "nl" and body[m].text != "{":
            m += 1
        k = _block_end(body, m) + 1 if m < len(body) and body[m].text == "{" else m
    managed = (family, name) in warned or any(
        isinstance(s, Unknown) and s.text.startswith("xt ")
        for c in chains for r in c.rules for s in r.statements
    )
    table = Table(family=family, name=name, chains=tuple(chains), sets=tuple(sets), line=start.line,
                  managed=managed, comment=comment)
    return table, end + 1


def _chain(family: str, table: str, name: str, body: list[Tok], start: Tok) -> Chain:
    base: BaseHook | None = None
    rules: list[Rule] = []
    comment = ""
    pending: dict[str, str] = {}
    for line in _lines(body):
        handle = None
        while line and line[-1].kind == "comment":
            m = _HANDLE.match(line[-1].text)
            if m:
                handle = int(m.group(1))
            line = line[:-1]
        line = [t for t in line if t.kind != "comment"]
        if not line:
            continue
        head = line[0].text
        if head == "type" and len(line) >= 4 and "hook" in [t.text for t in line]:
            pending = _hook_spec(line)
            continue
        if head == "policy" and len(line) == 2:
            pending["policy"] = line[1].text
            continue
        if head == "comment" and len(line) == 2 and not rules:
            comment = unquote(line[1].text)
            continue
        if head in ("devices", "device"):
            continue
        rules.append(_rule(family, table, name, len(rules) + 1, line, handle))
    if pending:
        try:
            priority = priority_value(pending.get("priority", "0"), family)
        except ValueError as exc:
            raise NftParseError(f"chain {name}: {exc}", start.line, start.col) from exc
        base = BaseHook(
            type=pending.get("type", "filter"),
            hook=pending.get("hook", ""),
            priority=priority,
            policy=pending.get("policy", "accept"),
            device=unquote(pending.get("device", "")),
        )
    return Chain(family=family, table=table, name=name, base=base, rules=tuple(rules), line=start.line,
                 comment=comment)


def _hook_spec(line: list[Tok]) -> dict[str, str]:
    spec: dict[str, str] = {}
    words = [t.text for t in line]
    k = 0
    while k < len(words):
        w = words[k]
        if w in ("type", "hook", "device") and k + 1 < len(words):
            spec[w] = words[k + 1]
            k += 2
        elif w == "priority":
            spec["priority"] = " ".join(words[k + 1 :])
            break
        else:
            k += 1
    return spec


def _set(name: str, body: list[Tok], start: Tok, is_map: bool) -> NftSet:
    key_type: tuple[str, ...] = ()
    data_type = ""
    flags: tuple[str, ...] = ()
    elements: tuple[Element, ...] = ()
    comment = ""
    typeof = ""
    for line in _lines(body):
        line = [t for t in line if t.kind != "comment"]
        if not line:
            continue
        head = line[0].text
        words = [t.text for t in line[1:]]
        if head in ("type", "typeof"):
            text = " ".join(words)
            key, _, data = text.partition(" : ")
            if head == "typeof":
                typeof = text
            key_type = tuple(p.strip() for p in key.split(" . "))
            data_type = data.strip()
        elif head == "flags":
            flags = tuple(w for w in words if w != ",")
        elif head == "comment" and words:
            comment = unquote(words[0])
        elif head == "elements":
            s = _Stream(line[1:])
            s.expect("=", f"{'map' if is_map else 'set'} {name} elements")
            lit = _set_literal(s)
            elements = lit.elements
    return NftSet(name=name, key_type=key_type, data_type=data_type, flags=flags, elements=elements,
                  line=start.line, comment=comment, is_map=is_map, typeof=typeof)


# -- rules ---------------------------------------------------------------------

_OPS = ("==", "!=", "<", ">", "<=", ">=", "eq", "ne", "lt", "gt", "le", "ge")
_OP_WORDS = {"eq": "==", "ne": "!=", "lt": "<", "gt": ">", "le": "<=", "ge": ">="}
_BINOPS = ("&", "|", "^", "<<", ">>")
# nft prints the operators of a statement's expression as words
# (`meta mark set mark or 0x4000`); the JSON of the same rule has "|".
_BINOP_WORDS = {"and": "&", "or": "|", "xor": "^", "lshift": "<<", "rshift": ">>"}


def _binop(s: _Stream) -> str | None:
    """The binary operator at the cursor, consumed, or None."""
    text = s.text()
    if text in _BINOPS:
        return s.next("operator").text
    if text in _BINOP_WORDS:
        s.next("operator")
        return _BINOP_WORDS[text]
    return None
_SELECTORS = frozenset({*PAYLOAD_PROTOCOLS, "meta", "ct", "fib", "numgen", *BARE_META, "jhash", "symhash",
                        "socket", "osf", "rt", "ipsec", "exthdr", "hbh", "frag", "dst", "mh", "srh", "tunnel"})


def _rule(family: str, table: str, chain: str, index: int, line: list[Tok], handle: int | None) -> Rule:
    s = _Stream(line)
    statements: list[Statement] = []
    comment = ""
    counter: tuple[int, int] | None = None
    while not s.done():
        tok = s.peek()
        assert tok is not None
        if tok.text == "comment":
            s.next("comment")
            comment = unquote(s.word("comment text"))
            continue
        if tok.text == "counter":
            s.next("counter")
            if s.text() == "packets":
                s.next("packets")
                packets = int(s.word("packet count"))
                s.expect("bytes", "counter")
                counter = (packets, int(s.word("byte count")))
            elif s.text() == "name":
                s.next("name")
                s.word("counter name")
            statements.append(Action("counter", "counter"))
            continue
        statements.append(_statement(s, family))
    text = join_tokens(line)
    return Rule(family=family, table=table, chain=chain, index=index, line=line[0].line, text=text,
                statements=tuple(statements), comment=comment, handle=handle, counter=counter)


def _span(s: _Stream, start: int) -> str:
    return join_tokens(s.toks[start : s.i])


def join_tokens(toks: list[Tok]) -> str:
    """Tokens back to nft's spelling: `fin,syn,rst`, `{ 22, 80 }`."""
    out: list[str] = []
    depth = 0
    glue = False
    for tok in toks:
        if tok.text == "," and tok.kind == "punct":
            out.append(",")
            glue = depth == 0
            continue
        if tok.text == "{":
            depth += 1
        elif tok.text == "}":
            depth -= 1
        if out and not glue:
            out.append(" ")
        out.append(tok.text)
        glue = False
    return "".join(out)


def _statement(s: _Stream, family: str) -> Statement:
    start = s.i
    tok = s.peek()
    assert tok is not None
    w = tok.text
    if w in VERDICT_WORDS:
        s.next(w)
        if w in ("jump", "goto"):
            return Verdict(w, unquote(s.word(f"{w}: chain name")))
        if w == "queue":
            while not s.done() and s.text() not in ("comment", "counter"):
                s.next("queue option")
        return Verdict(w)
    if w == "log":
        s.next("log")
        while not s.done() and s.text() in ("prefix", "level", "flags", "group", "snaplen", "queue-threshold"):
            s.next("log option")
            _skip_list(s)
        return Action("log", _span(s, start))
    if w == "limit":
        return _limit(s)
    if w == "quota":
        return _quota(s)
    if w == "notrack":
        s.next(w)
        return Action("notrack", w)
    if w == "reject":
        s.next(w)
        rtype = code = ""
        if s.text() == "with":
            s.next("with")
            rtype = s.word("reject type")
            if rtype == "tcp":
                s.expect("reset", "reject with tcp")
                rtype = "tcp reset"
            elif s.text() == "type":
                s.next("type")
                code = s.word("reject code")
            elif not s.done() and s.text() not in ("comment", "counter"):
                code = s.word("reject code")
        return Reject(rtype, code)
    if w in ("dnat", "snat", "masquerade", "redirect"):
        return _nat(s)
    if w in ("add", "update", "delete") and s.text(1).startswith("@"):
        s.next(w)
        name = s.next("set").text[1:]
        s.expect("{", f"{w} @{name}")
        key = _concat_value(s, in_braces=True, selectors=True)
        while s.text() in ("timeout", "expires", "counter", "limit"):
            s.next("option")
            if s.text() == "rate":
                _limit_body(s)
            elif not s.done() and s.text() != "}":
                s.next("value")
        s.expect("}", f"{w} @{name}")
        return DynSet(w, name, key)
    if w == "xt":
        while not s.done() and s.text() not in ("comment", "counter"):
            s.next("xt")
        return Unknown(_span(s, start))
    if w in _UNEVALUATED and not _is_match_start(s):
        return _unknown(s, start)
    if w in _SELECTORS or w.startswith("@"):
        return _expr_statement(s, start)
    raise NftParseError(f"unknown statement {w!r}", tok.line, tok.col)


# Statements nft knows that the engine keeps without evaluating them.
_UNEVALUATED = frozenset({"flow", "synproxy", "tproxy", "dup", "fwd", "osf", "secmark", "objref", "meter", "last"})


def _is_match_start(s: _Stream) -> bool:
    return s.text() == "osf" and s.text(1) in ("name", "version")


def _unknown(s: _Stream, start: int) -> Unknown:
    s.next("statement")
    while not s.done() and s.text() not in (*VERDICT_WORDS, "comment", "counter", "log"):
        if s.text() == "{":
            _set_literal(s)
        else:
            s.next("statement")
    return Unknown(_span(s, start))


def _skip_list(s: _Stream) -> None:
    s.next("value")
    while s.text() == ",":
        s.next(",")
        s.next("value")


def _expr_statement(s: _Stream, start: int) -> Statement:
    left = _selector_expr(s)
    if s.text() == "set":
        s.next("set")
        value = _concat_value(s, in_braces=False, selectors=True)
        if s.text() == "map":
            s.next("map")
            value = MapLookup(value, _map_ref(s))
        target = left
        if isinstance(target, Opaque):
            return Action(f"{target.text} set", _span(s, start))
        if isinstance(target, (Meta, Ct)) and target.key in ("nftrace", "helper", "event", "label", "expectation", "priority", "secmark"):
            return Action(f"{_expr_name(target)} set", _span(s, start))
        return SetStmt(target, value)
    if s.text() == "vmap":
        s.next("vmap")
        return VMap(left, _map_ref(s), _span(s, start))
    if s.text() == "map":
        s.next("map")
        left = MapLookup(left, _map_ref(s))
    op = "implicit"
    if s.text() in _OPS:
        op = _OP_WORDS.get(s.text(), s.text())
        s.next("operator")
    if s.done() or s.text() in (*VERDICT_WORDS, "comment", "counter"):
        if isinstance(left, (Opaque, Numgen)):
            return Unknown(_span(s, start))
        tok = s.peek() or s.toks[-1]
        raise NftParseError(f"`{_span(s, start)}`: a value to compare with is expected", tok.line, tok.col)
    right = _concat_value(s, in_braces=False, selectors=False)
    if s.text() == "/" and op in ("implicit", "=="):
        # `tcp flags syn / fin,syn,rst,ack`: (flags & mask) == value.
        s.next("/")
        mask = _concat_value(s, in_braces=False, selectors=False)
        return Match(Binop("&", left, mask), "==", right, _span(s, start))
    return Match(left, op, right, _span(s, start))


def _expr_name(expr: Expr) -> str:
    if isinstance(expr, Meta):
        return f"meta {expr.key}"
    if isinstance(expr, Ct):
        return f"ct {expr.key}"
    return "expression"


def _map_ref(s: _Stream) -> SetLit | SetRef:
    if s.text() == "{":
        return _set_literal(s)
    tok = s.next("map")
    if not tok.text.startswith("@"):
        raise NftParseError(f"a map (`{{…}}` or `@name`) expected, found {tok.text!r}", tok.line, tok.col)
    return SetRef(tok.text[1:])


def _selector_expr(s: _Stream) -> Expr:
    items = [_binop_expr(s)]
    while s.text() == ".":
        s.next(".")
        items.append(_binop_expr(s))
    return items[0] if len(items) == 1 else Concat(tuple(items))


def _binop_expr(s: _Stream) -> Expr:
    expr = _selector(s)
    while (op := _binop(s)) is not None:
        expr = Binop(op, expr, _value(s, in_braces=False))
    return expr


def _selector(s: _Stream) -> Expr:
    tok = s.next("expression")
    w = tok.text
    if w in BARE_META:
        return Meta(w)
    if w == "meta":
        return Meta(s.word("meta key"))
    if w == "ct":
        direction = ct_family = ""
        if s.text() in ("original", "reply"):
            direction = s.next("direction").text
        if s.text() in ("ip", "ip6") and s.text(1) in ("saddr", "daddr"):
            ct_family = s.next("family").text
        key = s.word("ct key")
        if key == "count":
            if s.text() == "over":
                s.next("over")
            return Opaque(f"ct count {s.word('count')}")
        return Ct(key, direction, ct_family)
    if w == "fib":
        flags = [s.word("fib flag")]
        while s.text() == ".":
            s.next(".")
            flags.append(s.word("fib flag"))
        return Fib(tuple(flags), s.word("fib result"))
    if w == "numgen":
        mode = s.word("numgen mode")
        s.expect("mod", "numgen")
        mod = int(s.word("modulus"), 0)
        offset = 0
        if s.text() == "offset":
            s.next("offset")
            offset = int(s.word("offset"), 0)
        return Numgen(mode, mod, offset)
    if w in ("jhash", "symhash"):
        parts = [w]
        while not s.done() and s.text() != "mod":
            parts.append(s.next("hash").text)
        s.next("mod")
        parts.append("mod " + s.word("modulus"))
        for opt in ("seed", "offset"):
            if s.text() == opt:
                s.next(opt)
                parts.append(f"{opt} {s.word(opt)}")
        return Opaque(" ".join(parts))
    if w == "tcp" and s.text() == "option":
        s.next("option")
        name = s.word("tcp option")
        text = f"tcp option {name}"
        if s.text() in ("kind", "length", "size", "count", "left", "right", "tsval", "tsecr", "value"):
            text += " " + s.next("field").text
        return Opaque(text)
    if w in PAYLOAD_PROTOCOLS:
        return Payload(w, s.word(f"{w} field"))
    if w.startswith("@") or w in ("socket", "rt", "ipsec", "osf", "exthdr", "hbh", "frag", "dst", "mh", "srh", "tunnel"):
        parts = [w]
        while not s.done() and s.text() not in (*_OPS, *_STOP, "set", "vmap", "map", "{", ".", *_BINOPS,
                                                *_BINOP_WORDS) \
                and len(parts) < 4 and not _looks_like_value(s.text()):
            parts.append(s.next("field").text)
        return Opaque(" ".join(parts))
    raise NftParseError(f"unknown expression {w!r}", tok.line, tok.col)


_STOP = (*VERDICT_WORDS, "comment", "counter", "log")


def _looks_like_value(text: str) -> bool:
    return text[:1].isdigit() or text.startswith('"') or text in VERDICT_WORDS


def _concat_value(s: _Stream, in_braces: bool, selectors: bool) -> Expr:
    items = [_value_or_selector(s, in_braces, selectors)]
    while s.text() == ".":
        s.next(".")
        items.append(_value_or_selector(s, in_braces, selectors))
    return items[0] if len(items) == 1 else Concat(tuple(items))


def _value_or_selector(s: _Stream, in_braces: bool, selectors: bool) -> Expr:
    if selectors and s.text() in _SELECTORS and s.peek(1) is not None and s.peek(1).kind == "word":  # type: ignore[union-attr]
        return _binop_expr(s)
    expr = _value(s, in_braces)
    while not in_braces and (op := _binop(s)) is not None:
        expr = Binop(op, expr, _value(s, in_braces))
    return expr


def _value(s: _Stream, in_braces: bool) -> Expr:
    tok = s.peek()
    if tok is None:
        raise NftParseError("a value expected, found the end", s.toks[-1].line, s.toks[-1].col)
    if tok.text == "{":
        return _set_literal(s)
    if tok.text.startswith("("):
        # `tcp flags & (syn | ack) == syn`: a parenthesised OR of flags.
        parts = [s.next("value").text]
        while not parts[-1].endswith(")"):
            if s.done():
                raise NftParseError("`(` is never closed", tok.line, tok.col)
            parts.append(s.next("value").text)
        ored = tuple(x.strip() for x in "".join(parts)[1:-1].split("|") if x.strip())
        return Flags(ored) if len(ored) > 1 else literal(ored[0])
    s.next("value")
    if tok.kind not in ("word", "str"):
        raise NftParseError(f"a value expected, found {tok.text!r}", tok.line, tok.col)
    if tok.text.startswith("@"):
        return SetRef(tok.text[1:])
    if not in_braces and s.text() == ",":
        items = [tok.text]
        while s.text() == ",":
            s.next(",")
            items.append(s.word("flag"))
        return Flags(tuple(items))
    return literal(tok.text)


def literal(text: str) -> Expr:
    """A listed value: prefix `a/n`, range `a-b`, or a plain value."""
    if text.startswith('"'):
        return Value(text)
    if "/" in text:
        addr, _, length = text.rpartition("/")
        if length.isdigit() and (":" in addr or addr.count(".") == 3):
            return Prefix(addr, int(length))
    if "-" in text and not text.startswith("-"):
        low, high = _split_range(text)
        if low is not None and high is not None:
            return Range(Value(low), Value(high))
    return Value(text)


_NUMERIC = re.compile(r"^(0x[0-9a-fA-F]+|\d+|[0-9a-fA-F:.]*[:.][0-9a-fA-F:.]*)$")


def _split_range(text: str) -> tuple[str | None, str | None]:
    # Split on the '-' whose both sides look numeric/address-like.
    for k, ch in enumerate(text):
        if ch == "-":
            low, high = text[:k], text[k + 1 :]
            if _NUMERIC.match(low) and _NUMERIC.match(high):
                return low, high
    return None, None


def _set_literal(s: _Stream) -> SetLit:
    s.expect("{", "set")
    elements: list[Element] = []
    while True:
        while s.text() in ("\n", ","):
            s.next(",")
        if s.text() == "}":
            s.next("}")
            return SetLit(tuple(elements))
        key = _concat_value(s, in_braces=True, selectors=False)
        comment = ""
        while s.text() in ("timeout", "expires", "comment", "counter"):
            opt = s.next("element option").text
            if opt == "comment":
                comment = unquote(s.word("comment"))
            elif opt == "counter":
                if s.text() == "packets":
                    s.next("packets")
                    s.next("count")
                    s.next("bytes")
                    s.next("count")
            else:
                s.next("value")
        data: Expr | Verdict | None = None
        if s.text() == ":":
            s.next(":")
            if s.text() in VERDICT_WORDS:
                word = s.next("verdict").text
                data = Verdict(word, unquote(s.word("chain")) if word in ("jump", "goto") else "")
            else:
                data = _concat_value(s, in_braces=True, selectors=False)
        elements.append(Element(key, data, comment))
        if s.text() not in (",", "}", "\n"):
            tok = s.peek() or s.toks[-1]
            raise NftParseError(f"set element: `,` or `}}` expected, found {tok.text!r}", tok.line, tok.col)


def _limit(s: _Stream) -> Limit:
    s.next("limit")
    return _limit_body(s)


_UNITS = {"bytes": 1, "kbytes": 1024, "mbytes": 1024 * 1024}


def _limit_body(s: _Stream) -> Limit:
    s.expect("rate", "limit")
    over = False
    if s.text() == "over":
        s.next("over")
        over = True
    elif s.text() == "until":
        s.next("until")
    word = s.word("limit rate")
    unit = "packets"
    scale = 1
    if "/" not in word:
        scale = _UNITS.get(s.text().split("/")[0], 1)
        unit = "bytes"
        rate_text, per = word, s.next("unit").text.split("/")[1]
    else:
        rate_text, per = word.split("/", 1)
        if rate_text.isdigit() is False:
            raise NftParseError(f"limit rate {word!r} not understood", s.toks[s.i - 1].line, s.toks[s.i - 1].col)
    burst = 5 if unit == "packets" else 0
    if s.text() == "burst":
        s.next("burst")
        burst = int(s.word("burst"))
        burst_unit = s.text()
        if burst_unit in ("packets", *_UNITS):
            s.next("unit")
            burst *= _UNITS.get(burst_unit, 1)
    return Limit(rate=int(rate_text) * scale, per=per, burst=burst, unit=unit, over=over)


def _quota(s: _Stream) -> Quota:
    s.next("quota")
    over = False
    if s.text() in ("over", "until"):
        over = s.next("over").text == "over"
    amount = int(s.word("quota"))
    amount *= _UNITS.get(s.word("quota unit"), 1)
    used = 0
    if s.text() == "used":
        s.next("used")
        used = int(s.word("used")) * _UNITS.get(s.word("unit"), 1)
    return Quota(amount, over, used)


def _nat(s: _Stream) -> Nat:
    kind = s.next("nat").text
    family = ""
    if s.text() in ("ip", "ip6") and s.text(1) in ("to", "addr", "prefix"):
        family = s.next("family").text
    addr: Expr | None = None
    port: Expr | None = None
    flags: list[str] = []
    if s.text() in ("addr", "prefix"):
        # `dnat ip addr . port to ip daddr map {…}`
        while s.text() != "to":
            s.next("nat")
    if s.text() == "to":
        s.next("to")
        if s.text() in _SELECTORS and s.peek(1) is not None and s.peek(1).kind == "word" and s.text(1) not in (",",):  # type: ignore[union-attr]
            key = _selector_expr(s)
            s.expect("map", "nat to … map")
            addr = MapLookup(key, _map_ref(s))
        else:
            word = s.word("nat address")
            addr, port = _nat_target(word)
            if s.text() == "." and addr is not None:
                s.next(".")
                port = literal(s.word("port"))
    while not s.done() and s.text() in ("random", "fully-random", "persistent", "netmap", ","):
        tok = s.next("flag")
        if tok.text != ",":
            flags.append(tok.text)
    return Nat(kind, family, addr, port, tuple(flags))


def _nat_target(word: str) -> tuple[Expr | None, Expr | None]:
    if word.startswith(":"):
        return None, literal(word[1:])
    if word.startswith("["):
        addr, _, rest = word[1:].partition("]")
        return literal(addr), literal(rest[1:]) if rest.startswith(":") else None
    if word.count(":") == 1:
        addr, _, port = word.partition(":")
        return literal(addr), literal(port)
    return literal(word), None


def without_tables(text: str, drop: list[tuple[str, str]]) -> str:
    """The listing without the named tables' blocks (for loading the rest)."""
    toks = tokenize(text)
    lines = text.splitlines(keepends=True)
    cut: set[int] = set()
    i = 0
    while i < len(toks):
        tok = toks[i]
        if tok.kind == "word" and tok.text == "table" and tok.col == 1:
            family = toks[i + 1].text if toks[i + 1].text in FAMILIES else "ip"
            name_tok = toks[i + 2] if toks[i + 1].text in FAMILIES else toks[i + 1]
            j = i
            while toks[j].text != "{":
                j += 1
            end = _block_end(toks, j)
            if (family, unquote(name_tok.text)) in drop:
                cut.update(range(tok.line, toks[end].line + 1))
            i = end + 1
            continue
        i += 1
    return "".join(line for n, line in enumerate(lines, 1) if n not in cut)

"""Model → nft's spelling, for rules read from JSON and for trace reasons."""

from __future__ import annotations

from functools import lru_cache

from .model import (
    Action,
    Binop,
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
    Numgen,
    Opaque,
    Payload,
    Prefix,
    Quota,
    Range,
    Reject,
    SetLit,
    SetRef,
    SetStmt,
    Statement,
    Unknown,
    Value,
    Verdict,
    VMap,
)
from .names import BARE_META


@lru_cache(maxsize=65536)
def expr_text(expr: Expr | Verdict | None) -> str:
    if expr is None:
        return ""
    if isinstance(expr, Payload):
        return f"{expr.protocol} {expr.field}"
    if isinstance(expr, Meta):
        return expr.key if expr.key in BARE_META and expr.key != "mark" else f"meta {expr.key}"
    if isinstance(expr, Ct):
        return " ".join(p for p in ("ct", expr.dir, expr.family, expr.key) if p)
    if isinstance(expr, Fib):
        return f"fib {' . '.join(expr.flags)} {expr.result}"
    if isinstance(expr, Value):
        return expr.text
    if isinstance(expr, Prefix):
        return f"{expr.addr}/{expr.length}"
    if isinstance(expr, Range):
        return f"{expr_text(expr.low)}-{expr_text(expr.high)}"
    if isinstance(expr, Flags):
        return ",".join(expr.items)
    if isinstance(expr, Concat):
        return " . ".join(expr_text(i) for i in expr.items)
    if isinstance(expr, Binop):
        return f"{expr_text(expr.left)} {expr.op} {expr_text(expr.right)}"
    if isinstance(expr, SetLit):
        return "{ " + ", ".join(element_text(e) for e in expr.elements) + " }"
    if isinstance(expr, SetRef):
        return f"@{expr.name}"
    if isinstance(expr, MapLookup):
        return f"{expr_text(expr.key)} map {expr_text(expr.map)}"
    if isinstance(expr, Numgen):
        text = f"numgen {expr.mode} mod {expr.mod}"
        return text + (f" offset {expr.offset}" if expr.offset else "")
    if isinstance(expr, Opaque):
        return expr.text
    if isinstance(expr, Verdict):
        return f"{expr.kind} {expr.chain}" if expr.chain else expr.kind
    return str(expr)


def element_text(element: Element) -> str:
    text = expr_text(element.key)
    if element.data is not None:
        text += f" : {expr_text(element.data)}"
    return text


@lru_cache(maxsize=65536)
def statement_text(stmt: Statement) -> str:
    if isinstance(stmt, Match):
        if stmt.text:
            return stmt.text
        op = "" if stmt.op == "implicit" else f" {stmt.op}"
        if isinstance(stmt.left, Binop) and stmt.left.op == "&" and stmt.op == "==" and isinstance(stmt.left.right, Flags):
            return f"{expr_text(stmt.left.left)} {expr_text(stmt.right)} / {expr_text(stmt.left.right)}"
        return f"{expr_text(stmt.left)}{op} {expr_text(stmt.right)}"
    if isinstance(stmt, Verdict):
        return expr_text(stmt)
    if isinstance(stmt, VMap):
        return stmt.text or f"{expr_text(stmt.key)} vmap {expr_text(stmt.map)}"
    if isinstance(stmt, Nat):
        parts = [stmt.kind]
        if stmt.family:
            parts.append(stmt.family)
        if stmt.addr is not None or stmt.port is not None:
            target = expr_text(stmt.addr) if stmt.addr is not None else ""
            if stmt.port is not None:
                target += f":{expr_text(stmt.port)}"
            parts += ["to", target]
        if stmt.flags:
            parts.append(",".join(stmt.flags))
        return " ".join(parts)
    if isinstance(stmt, SetStmt):
        return f"{expr_text(stmt.target)} set {expr_text(stmt.value)}"
    if isinstance(stmt, DynSet):
        return f"{stmt.op} @{stmt.set} {{ {expr_text(stmt.key)} }}"
    if isinstance(stmt, Limit):
        over = "over " if stmt.over else ""
        unit = "" if stmt.unit == "packets" else " bytes"
        return f"limit rate {over}{stmt.rate}{unit}/{stmt.per} burst {stmt.burst} {stmt.unit}"
    if isinstance(stmt, Quota):
        return f"quota {'over ' if stmt.over else ''}{stmt.bytes} bytes"
    if isinstance(stmt, Reject):
        if stmt.type == "tcp reset":
            return "reject with tcp reset"
        if stmt.type:
            return f"reject with {stmt.type} {stmt.code}".rstrip()
        return "reject"
    if isinstance(stmt, Action):
        return stmt.text or stmt.name
    if isinstance(stmt, Unknown):
        return stmt.text
    return str(stmt)

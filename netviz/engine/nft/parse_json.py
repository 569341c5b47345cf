"""`nft -j list ruleset` (libnftables JSON, libnftables-json(5)) → NftRuleset.

Errors name the JSON path (`nftables[12].rule.expr[2]`) and the construct.
A rule's `line` is its object's position in the `nftables` array (1-based).
"""

from __future__ import annotations

import json
from typing import Any

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
from .names import VERDICT_WORDS, managed_note, priority_value
from .printer import statement_text


def parse_nft_json(text: str | dict[str, Any]) -> NftRuleset:
    if isinstance(text, str):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise NftParseError(f"not JSON: {exc.msg}", exc.lineno, exc.colno) from exc
    else:
        data = text
    if not isinstance(data, dict) or not isinstance(data.get("nftables"), list):
        raise NftParseError("an object with an `nftables` list expected", path="$")
    order: list[tuple[str, str]] = []
    tables: dict[tuple[str, str], dict[str, Any]] = {}
    chains: dict[tuple[str, str, str], dict[str, Any]] = {}
    for pos, item in enumerate(data["nftables"]):
        path = f"nftables[{pos}]"
        if not isinstance(item, dict) or len(item) != 1:
            raise NftParseError("an object with one key expected", path=path)
        ((kind, body),) = item.items()
        if kind in ("metainfo",):
            continue
        if not isinstance(body, dict):
            raise NftParseError(f"{kind}: an object expected", path=f"{path}.{kind}")
        key = (str(body.get("family", "ip")), str(body.get("table", body.get("name", ""))))
        if kind == "table":
            key = (str(body.get("family", "ip")), _need(body, "name", f"{path}.table"))
            tables[key] = {"line": pos + 1, "chains": [], "sets": [], "comment": body.get("comment", "")}
            order.append(key)
            continue
        if key not in tables:
            raise NftParseError(f"{kind} of an undeclared table {key[0]} {key[1]}", path=path)
        if kind == "chain":
            name = _need(body, "name", f"{path}.chain")
            chains[(*key, name)] = {"body": body, "rules": [], "line": pos + 1}
            tables[key]["chains"].append(name)
        elif kind in ("set", "map"):
            tables[key]["sets"].append(_set(body, kind, f"{path}.{kind}", pos + 1))
        elif kind == "rule":
            chain = _need(body, "chain", f"{path}.rule")
            entry = chains.get((*key, chain))
            if entry is None:
                raise NftParseError(f"rule in an undeclared chain {chain}", path=path)
            entry["rules"].append((pos, body))
        # ct helpers, counters, quotas, flowtables…: not part of the trace.
    result: list[Table] = []
    for key in order:
        family, tname = key
        info = tables[key]
        built: list[Chain] = []
        for cname in info["chains"]:
            entry = chains[(family, tname, cname)]
            rules = tuple(
                _rule(family, tname, cname, i + 1, pos, body)
                for i, (pos, body) in enumerate(entry["rules"])
            )
            built.append(_chain(family, tname, cname, entry["body"], rules, entry["line"]))
        managed = any(
            isinstance(s, Unknown) and s.text.startswith("xt ") for c in built for r in c.rules for s in r.statements
        )
        result.append(Table(family=family, name=tname, chains=tuple(built), sets=tuple(info["sets"]),
                            line=info["line"], managed=managed, comment=str(info["comment"] or "")))
    notes = tuple(managed_note(t) for t in result if t.managed)
    return NftRuleset(tables=tuple(result), notes=notes)


def _need(body: dict[str, Any], key: str, path: str) -> str:
    if key not in body:
        raise NftParseError(f"`{key}` missing", path=path)
    return str(body[key])


def _chain(family: str, table: str, name: str, body: dict[str, Any], rules: tuple[Rule, ...], line: int) -> Chain:
    base = None
    if "hook" in body:
        prio = body.get("prio", 0)
        base = BaseHook(
            type=str(body.get("type", "filter")),
            hook=str(body["hook"]),
            priority=prio if isinstance(prio, int) else priority_value(str(prio), family),
            policy=str(body.get("policy", "accept")),
            device=str(body.get("dev", "")),
        )
    return Chain(family=family, table=table, name=name, base=base, rules=rules, line=line,
                 comment=str(body.get("comment", "")))


def _set(body: dict[str, Any], kind: str, path: str, line: int) -> NftSet:
    stype = body.get("type", "")
    key_type = tuple(str(t) for t in stype) if isinstance(stype, list) else (str(stype),)
    is_map = kind == "map"
    data_type = str(body.get("map", "")) if is_map else ""
    flags = body.get("flags", [])
    elements = _elements(body.get("elem", []), is_map, f"{path}.elem")
    return NftSet(name=_need(body, "name", path), key_type=key_type, data_type=data_type,
                  flags=tuple(flags) if isinstance(flags, list) else (str(flags),), elements=elements,
                  line=line, comment=str(body.get("comment", "")), is_map=is_map)


def _elements(items: Any, is_map: bool, path: str) -> tuple[Element, ...]:
    if not isinstance(items, list):
        items = [items]
    out: list[Element] = []
    for i, item in enumerate(items):
        p = f"{path}[{i}]"
        data: Expr | Verdict | None = None
        if is_map or (isinstance(item, list) and len(item) == 2):
            if not isinstance(item, list) or len(item) != 2:
                raise NftParseError("a [key, value] pair expected", path=p)
            item, raw = item
            data = _verdict(raw) or _expr(raw, f"{p}[1]")
        comment = ""
        if isinstance(item, dict) and "elem" in item:
            comment = str(item["elem"].get("comment", ""))
            item = item["elem"].get("val")
        out.append(Element(_expr(item, p), data, comment))
    return tuple(out)


def _verdict(raw: Any) -> Verdict | None:
    if isinstance(raw, dict) and len(raw) == 1:
        ((kind, body),) = raw.items()
        if kind in VERDICT_WORDS:
            target = body.get("target", "") if isinstance(body, dict) else ""
            return Verdict(kind, str(target))
    return None


_BINOPS = ("&", "|", "^", "<<", ">>")


def _expr(raw: Any, path: str) -> Expr:
    if isinstance(raw, bool):
        return Value(str(int(raw)))
    if isinstance(raw, (int, float)):
        return Value(str(raw))
    if isinstance(raw, str):
        if raw.startswith("@"):
            return SetRef(raw[1:])
        return Value(raw)
    if isinstance(raw, list):
        return Flags(tuple(str(x) for x in raw))
    if not isinstance(raw, dict) or len(raw) != 1:
        raise NftParseError("an expression expected", path=path)
    ((kind, body),) = raw.items()
    p = f"{path}.{kind}"
    if kind == "payload":
        if "protocol" in body:
            return Payload(str(body["protocol"]), str(body["field"]))
        return Opaque(f"@{body.get('base')},{body.get('offset')},{body.get('len')}")
    if kind == "meta":
        return Meta(str(body["key"]))
    if kind == "ct":
        return Ct(str(body["key"]), str(body.get("dir", "")), str(body.get("family", "")))
    if kind == "fib":
        flags = body.get("flags", [])
        return Fib(tuple(flags) if isinstance(flags, list) else (str(flags),), str(body["result"]))
    if kind == "prefix":
        return Prefix(str(body["addr"]), int(body["len"]))
    if kind == "range":
        return Range(_expr(body[0], f"{p}[0]"), _expr(body[1], f"{p}[1]"))
    if kind == "concat":
        return Concat(tuple(_expr(x, f"{p}[{i}]") for i, x in enumerate(body)))
    if kind == "set":
        return SetLit(_elements(body, False, p))
    if kind == "map":
        data = body["data"]
        lookup = _expr(data, f"{p}.data")
        if isinstance(data, dict) and "set" in data:
            lookup = SetLit(_elements(data["set"], True, f"{p}.data.set"))
        if not isinstance(lookup, (SetLit, SetRef)):
            raise NftParseError("a map expected", path=f"{p}.data")
        return MapLookup(_expr(body["key"], f"{p}.key"), lookup)
    if kind in _BINOPS:
        return Binop(kind, _expr(body[0], f"{p}[0]"), _expr(body[1], f"{p}[1]"))
    if kind == "numgen":
        return Numgen(str(body.get("mode", "random")), int(body["mod"]), int(body.get("offset", 0)))
    if kind == "elem":
        return _expr(body.get("val"), f"{p}.val")
    return Opaque(json.dumps(raw, sort_keys=True))


def _rule(family: str, table: str, chain: str, index: int, pos: int, body: dict[str, Any]) -> Rule:
    path = f"nftables[{pos}].rule"
    statements: list[Statement] = []
    counter = None
    for i, raw in enumerate(body.get("expr", [])):
        p = f"{path}.expr[{i}]"
        if not isinstance(raw, dict) or len(raw) != 1:
            raise NftParseError("a statement object expected", path=p)
        ((kind, stmt),) = raw.items()
        if kind == "counter" and isinstance(stmt, dict) and "packets" in stmt:
            counter = (int(stmt["packets"]), int(stmt.get("bytes", 0)))
        statements.append(_statement(kind, stmt, f"{p}.{kind}"))
    text = " ".join(statement_text(s) for s in statements)
    comment = str(body.get("comment", ""))
    if comment:
        text += f' comment "{comment}"'
    return Rule(family=family, table=table, chain=chain, index=index, line=pos + 1, text=text,
                statements=tuple(statements), comment=comment, handle=body.get("handle"), counter=counter)


_ACTION_KEYS = ("nftrace", "helper", "event", "label", "expectation", "priority", "secmark")


def _statement(kind: str, body: Any, path: str) -> Statement:
    if kind == "match":
        op = str(body.get("op", "=="))
        if op == "in":
            op = "implicit"
        return Match(_expr(body["left"], f"{path}.left"), op, _expr(body["right"], f"{path}.right"))
    if kind in VERDICT_WORDS:
        target = body.get("target", "") if isinstance(body, dict) else ""
        return Verdict(kind, str(target))
    if kind == "vmap":
        data = body["data"]
        vmap: SetLit | SetRef
        if isinstance(data, dict) and "set" in data:
            vmap = SetLit(_elements(data["set"], True, f"{path}.data.set"))
        else:
            ref = _expr(data, f"{path}.data")
            if not isinstance(ref, SetRef):
                raise NftParseError("a verdict map expected", path=f"{path}.data")
            vmap = ref
        return VMap(_expr(body["key"], f"{path}.key"), vmap)
    if kind == "counter":
        return Action("counter", "counter")
    if kind in ("log", "notrack"):
        return Action(kind, kind)
    if kind == "mangle":
        target = _expr(body["key"], f"{path}.key")
        if isinstance(target, (Meta, Ct)) and target.key in _ACTION_KEYS:
            return Action(f"{target.key} set")
        if isinstance(target, Opaque):
            return Action("set", target.text)
        return SetStmt(target, _expr(body["value"], f"{path}.value"))
    if kind in ("dnat", "snat", "masquerade", "redirect"):
        body = body or {}
        flags = body.get("flags", [])
        if isinstance(flags, str):
            flags = [flags]
        addr = _expr(body["addr"], f"{path}.addr") if "addr" in body else None
        port = _expr(body["port"], f"{path}.port") if "port" in body else None
        return Nat(kind, str(body.get("family", "")), addr, port, tuple(str(f) for f in flags))
    if kind == "reject":
        body = body or {}
        rtype = str(body.get("type", ""))
        return Reject(rtype, str(body.get("expr", "")))
    if kind == "limit":
        rate_unit = str(body.get("rate_unit", "packets"))
        scale = {"bytes": 1, "kbytes": 1024, "mbytes": 1024 * 1024}.get(rate_unit, 1)
        unit = "packets" if rate_unit == "packets" else "bytes"
        return Limit(rate=int(body["rate"]) * scale, per=str(body.get("per", "second")),
                     burst=int(body.get("burst", 5 if unit == "packets" else 0)), unit=unit,
                     over=bool(body.get("inv", False)))
    if kind == "quota":
        units = {"bytes": 1, "kbytes": 1024, "mbytes": 1024 * 1024}
        return Quota(int(body["val"]) * units.get(str(body.get("val_unit", "bytes")), 1),
                     bool(body.get("inv", False)),
                     int(body.get("used", 0)) * units.get(str(body.get("used_unit", "bytes")), 1))
    if kind == "set":
        op = str(body.get("op", "add"))
        return DynSet(op, str(body["set"]).lstrip("@"), _expr(body["elem"], f"{path}.elem"))
    if kind in ("ct helper", "ct timeout", "ct expectation", "synproxy", "flow", "tcp option"):
        return Action(kind, kind)
    if kind == "xt":
        return Unknown(f"xt {body.get('type', '')} {body.get('name', '')}".rstrip())
    return Unknown(json.dumps({kind: body}, sort_keys=True))


def parse_nft(text: str) -> NftRuleset:
    """Text or JSON, whichever the listing is."""
    from .parse_text import parse_nft_text

    if text.lstrip().startswith("{"):
        return parse_nft_json(text)
    return parse_nft_text(text)

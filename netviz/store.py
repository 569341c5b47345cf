"""Storing parsed dumps in the database, and getting the engine's view back.

A dump is parsed first (a ParseError propagates and nothing is written), then
all rows go in inside one transaction, so a failure half-way leaves nothing.
The engine never reads the rows: `load_ruleset` re-parses the stored text,
with a per-process cache so a trace does not re-parse a big dump every time.
"""

from __future__ import annotations

import gc
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any, TypeVar, cast

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Model

from netviz import models
from netviz.engine.limits import LoadLimits
from netviz.engine.nft.evaluate import NftEval, compile_nft
from netviz.engine.nft.model import NftParseError, NftRuleset
from netviz.engine.nft.parse_json import parse_nft
from netviz.engine.parser import ParseError, parse_ipset_save, parse_ruleset
from netviz.engine.ruleset import Family
from netviz.engine.ruleset import Ruleset as EngineRuleset

__all__ = ["ParseError", "load_nftables", "load_ruleset", "store_host", "store_ruleset"]

BATCH_SIZE = 5000
# Imports at least this big refresh the planner statistics (see _analyze).
ANALYZE_MIN_ROWS = 5000
# Derived data (call graph analysis, chain index, nft listings) kept per
# process; an entry goes with its ruleset when the parse cache drops it.
DERIVED_SIZE = 32

Progress = Callable[[int, int], None]
T = TypeVar("T")


def _family(value: str | None) -> Family | None:
    if value in (None, ""):
        return None
    return Family(value)


def member_text(member: Any) -> str:
    # `ipset save` prints "add NAME elem[,elem…] [nomatch] [timeout N]"; keep
    # the part after the set name, the way it was saved.
    text = ",".join(member.elements)
    if member.timeout is not None:
        text += f" timeout {member.timeout}"
    if member.nomatch:
        text += " nomatch"
    return text


def store_ruleset(
    *,
    name: str,
    source: str,
    ipsets_source: str = "",
    nftables_source: str = "",
    family: str | None = None,
    owner: Any = None,
    description: str = "",
    progress: Progress | None = None,
    is_demo: bool = False,
    parse_progress: Progress | None = None,
) -> models.Ruleset:
    limits = load_limits()
    if ipsets_source:
        # Parse the ipset text alone first, so an error in it can be told
        # apart from one in the dump (the line numbers are the ipset text's).
        try:
            parse_ipset_save(ipsets_source, limits)
        except ParseError as exc:
            exc.origin = "ipsets"  # type: ignore[attr-defined]
            raise _name_setting(exc) from None
    nft = parse_nftables(nftables_source) if nftables_source.strip() else None
    try:
        parsed = parse_ruleset(source, ipsets_source or None, _family(family), progress=parse_progress,
                               limits=limits)
    except ParseError as exc:
        raise _name_setting(exc) from None
    return save_parsed(
        parsed,
        name=name,
        source=source,
        ipsets_source=ipsets_source,
        nftables_source=nftables_source,
        nft=nft,
        owner=owner,
        description=description,
        progress=progress,
        is_demo=is_demo,
    )


LIMIT_SETTINGS = {
    "rules": "NETVIZ_MAX_RULES",
    "chains": "NETVIZ_MAX_CHAINS",
    "set members": "NETVIZ_MAX_SET_MEMBERS",
}


def load_limits() -> LoadLimits:
    """What this server accepts in one upload (settings, README "Limits")."""
    return LoadLimits(
        max_rules=settings.NETVIZ_MAX_RULES,
        max_chains=settings.NETVIZ_MAX_CHAINS,
        max_set_members=settings.NETVIZ_MAX_SET_MEMBERS,
    )


def _name_setting(exc: ParseError) -> ParseError:
    what = getattr(exc, "limit", None)
    if what in LIMIT_SETTINGS:
        exc.reason += f" ({LIMIT_SETTINGS[what]})"
        exc.args = (f"line {exc.line}, column {exc.column}: {exc.reason}",)
    return exc


def parse_nftables(text: str) -> NftRuleset:
    """The listing, or a ParseError that says where (line and column, or the
    JSON path) and names the listing as its origin."""
    try:
        return parse_nft(text)
    except NftParseError as exc:
        reason = str(exc)
        # NftParseError prefixes its message with the place; the page and the
        # command say the place themselves.
        for where in (f"line {exc.line}, column {exc.column}: ", f"{exc.path}: "):
            if reason.startswith(where):
                reason = reason[len(where):]
                break
        error = ParseError(exc.line, exc.column, reason)
        error.origin = "nftables"  # type: ignore[attr-defined]
        error.json_path = "" if exc.line else exc.path  # type: ignore[attr-defined]
        raise error from exc


def save_parsed(
    parsed: EngineRuleset,
    *,
    name: str,
    source: str,
    ipsets_source: str = "",
    nftables_source: str = "",
    nft: NftRuleset | None = None,
    owner: Any = None,
    description: str = "",
    progress: Progress | None = None,
    is_demo: bool = False,
) -> models.Ruleset:
    all_rules = [r for t in parsed.tables for c in t.chains for r in c.rules]
    chain_count = sum(len(t.chains) for t in parsed.tables)
    total = len(all_rules)
    # The listing's own tables count too; the copies of iptables-nft's tables
    # are the dump's rules again.
    nft_tables = [t for t in nft.tables if not t.managed] if nft is not None else []
    nft_rules = sum(len(c.rules) for t in nft_tables for c in t.chains)
    nft_chains = sum(len(t.chains) for t in nft_tables)
    with transaction.atomic():
        ruleset = models.Ruleset.objects.create(
            name=name[:200],
            description=description,
            family=parsed.family.value,
            source=source,
            ipsets_source=ipsets_source,
            nftables_source=nftables_source,
            rule_count=total + nft_rules,
            chain_count=chain_count + nft_chains,
            is_demo=is_demo,
            owner=owner,
            # Anonymous uploads are public (there is nobody to own them);
            # an owner's upload stays private until shared.
            is_public=owner is None,
        )
        tables = models.Table.objects.bulk_create(
            models.Table(ruleset=ruleset, name=t.name, line=t.line, position=i)
            for i, t in enumerate(parsed.tables)
        )
        # Rows go in with executemany: model instances and bulk_create cost
        # several seconds for a 100k-rule dump, plain parameter tuples do not.
        chain_params = [
            (
                table_row.pk,
                chain.name,
                chain.policy or "",
                chain.builtin,
                chain.line,
                i,
                models.u64_to_db(chain.counters.packets if chain.counters else None),
                models.u64_to_db(chain.counters.bytes if chain.counters else None),
            )
            for table_row, table in zip(tables, parsed.tables, strict=True)
            for i, chain in enumerate(table.chains)
        ]
        _insert(
            models.Chain,
            ["table", "name", "policy", "builtin", "line", "position", "packets", "bytes"],
            chain_params,
        )
        table_names = {t.pk: t.name for t in tables}
        chain_ids = {
            (table_names[table_id], name): pk
            for pk, table_id, name in models.Chain.objects.filter(table__ruleset=ruleset).values_list(
                "pk", "table_id", "name"
            )
        }

        if progress:
            progress(0, total)
        done = 0
        rule_fields = ["chain", "index", "line", "text", "target", "goto", "comment", "packets", "bytes"]
        for batch in _batches(all_rules, BATCH_SIZE):
            _insert(
                models.Rule,
                rule_fields,
                [
                    (
                        chain_ids[(rule.table, rule.chain)],
                        rule.index,
                        rule.line,
                        rule.text,
                        rule.target.name if rule.target else "",
                        bool(rule.target and rule.target.goto),
                        "; ".join(rule.comments()),
                        models.u64_to_db(rule.counters.packets if rule.counters else None),
                        models.u64_to_db(rule.counters.bytes if rule.counters else None),
                    )
                    for rule in batch
                ],
            )
            done += len(batch)
            if progress:
                progress(done, total)

        models.IPSet.objects.bulk_create(
            (
                models.IPSet(
                    ruleset=ruleset,
                    name=s.name,
                    type=s.type,
                    family=s.family,
                    line=s.line,
                    member_count=len(s.members),
                    members=[member_text(m) for m in s.members],
                )
                for s in parsed.ipsets
            ),
            batch_size=BATCH_SIZE,
        )
        if total >= ANALYZE_MIN_ROWS:
            _analyze(models.Table, models.Chain, models.Rule)
    _remember(ruleset, parsed)
    if nft is not None:
        # The page right after the upload reads it: no second parse.
        with _cache_lock:
            _derived[(*_key(ruleset), "nftables")] = nft
    return ruleset


def _analyze(*tables: type[Model]) -> None:
    # PostgreSQL plans joins by its statistics, which autovacuum refreshes
    # only some time after a commit.  Right after a bulk import they still
    # describe the tables before it, and a join of rules and chains for the
    # new ruleset became nested loops over every row (minutes for 110k
    # rules).  ANALYZE in the importing transaction sees its own rows and
    # only samples them (default_statistics_target), so it stays cheap.
    if connection.vendor != "postgresql":
        return
    qn = connection.ops.quote_name
    with connection.cursor() as cursor:
        for model in tables:
            cursor.execute(f"ANALYZE {qn(model._meta.db_table)}")


def _insert(model: type[Model], fields: list[str], rows: list[tuple[Any, ...]]) -> None:
    if not rows:
        return
    meta = model._meta
    qn = connection.ops.quote_name
    columns = ", ".join(qn(meta.get_field(f).column) for f in fields)
    marks = ", ".join(["%s"] * len(fields))
    with connection.cursor() as cursor:
        cursor.executemany(f"INSERT INTO {qn(meta.db_table)} ({columns}) VALUES ({marks})", rows)


def _batches(items: list[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def store_host(
    *,
    name: str,
    interfaces: list[dict[str, Any]],
    routes: list[str],
    ruleset: models.Ruleset | None = None,
    owner: Any = None,
    rules: list[str] | None = None,
    sysctls: dict[str, str] | None = None,
) -> models.HostProfile:
    return models.HostProfile.objects.create(
        name=name[:200],
        interfaces=interfaces,
        routes=routes,
        rules=rules or [],
        sysctls=sysctls or {},
        ruleset=ruleset,
        owner=owner,
        is_public=owner is None,
    )


# --- the engine's view of a stored ruleset --------------------------------

_cache: OrderedDict[tuple[int, str], tuple[EngineRuleset, int]] = OrderedDict()
_cache_lock = threading.Lock()


def _key(model: models.Ruleset) -> tuple[int, str]:
    digest = hashlib.sha256()
    digest.update(model.family.encode())
    digest.update(b"\0")
    digest.update(model.source.encode())
    digest.update(b"\0")
    digest.update(model.ipsets_source.encode())
    digest.update(b"\0")
    digest.update(model.nftables_source.encode())
    return (int(model.pk), digest.hexdigest())


# A parsed dump holds about this many bytes per byte of its text (measured
# with tracemalloc: 7.5 for a 110k-rule kube-proxy dump, 15 for a dump of
# bare chains; rules dominate real dumps).
BYTES_PER_TEXT_BYTE = 10


def cache_weight(model: models.Ruleset) -> int:
    """The parse cache's estimate of a parsed ruleset's size in memory."""
    text = len(model.source) + len(model.ipsets_source) + len(model.nftables_source)
    return BYTES_PER_TEXT_BYTE * text


def is_cached(model: models.Ruleset) -> bool:
    with _cache_lock:
        return _key(model) in _cache


def _remember(model: models.Ruleset, parsed: EngineRuleset) -> None:
    # Bounded by size, not count: eight 110k-rule dumps are gigabytes, eight
    # small ones nothing.  A ruleset larger than the whole budget is used
    # and not kept.
    key = _key(model)
    weight = cache_weight(model)
    budget = int(settings.NETVIZ_PARSE_CACHE_BYTES)
    with _cache_lock:
        if weight > budget:
            return
        _cache[key] = (parsed, weight)
        _cache.move_to_end(key)
        while sum(w for _, w in _cache.values()) > budget:
            old, _ = _cache.popitem(last=False)
            for dkey in [k for k in _derived if k[:2] == old]:
                del _derived[dkey]
    # A parsed 100k-rule dump is millions of long-lived objects: move them
    # out of the collector's reach, or every later full collection walks them
    # all (seen as multi-second pauses in the middle of a trace).
    gc.collect()
    gc.freeze()


def load_ruleset(model: models.Ruleset) -> EngineRuleset:
    key = _key(model)
    with _cache_lock:
        cached = _cache.get(key)
        if cached is not None:
            _cache.move_to_end(key)
            return cached[0]
    parsed = parse_ruleset(model.source, model.ipsets_source or None, Family(model.family))
    _remember(model, parsed)
    return parsed


def load_nftables(model: models.Ruleset) -> NftRuleset | None:
    """The stored nft listing, parsed (None when the node has none)."""
    if not model.nftables_source.strip():
        return None
    return derived(model, "nftables", lambda: parse_nft(model.nftables_source))


def load_nft_eval(model: models.Ruleset) -> NftEval | None:
    """The listing compiled for tracing in the ruleset's family (set indexes
    built once per process, not per trace)."""
    nft = load_nftables(model)
    if nft is None:
        return None
    return derived(model, "nft_eval", lambda: compile_nft(nft, Family(model.family)))


_derived: OrderedDict[tuple[int, str, str], Any] = OrderedDict()


def derived(model: models.Ruleset, name: str, compute: Callable[[], T]) -> T:
    """`compute()` once per stored ruleset and process: for what pages derive
    from a ruleset that never changes after import (call graph analysis,
    chain index), so a 100k-rule ruleset is not re-analysed per request."""
    key = (*_key(model), name)
    with _cache_lock:
        if key in _derived:
            _derived.move_to_end(key)
            return cast(T, _derived[key])
    value = compute()
    with _cache_lock:
        _derived[key] = value
        while len(_derived) > DERIVED_SIZE:
            _derived.popitem(last=False)
    return value


def clear_cache() -> None:
    with _cache_lock:
        _cache.clear()
        _derived.clear()

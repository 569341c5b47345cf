"""Node snapshots (docs/snapshot.md): the container `netviz-collect` writes.

A snapshot is text: a version line, `key: value` header lines, then sections,
each opened by a line `=== NAME attr=value …` and holding one command's
output verbatim, and a closing `=== end` line (so a cut-off upload is told
apart from a node that had little to say).  This module splits and checks the
container and picks what a scenario needs from it; it reads no files.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from .iproute import host_from_ip_json, host_from_ip_text

FORMAT = "netviz-snapshot"
VERSIONS = (1,)
MARK = "=== "

# Sections netviz reads; others are kept and shown, never an error, so a newer
# collector's additions do not break an older server.
KNOWN_SECTIONS = (
    "iptables",
    "ip6tables",
    "ipset",
    "nft",
    "ip-addr",
    "ip-link",
    "ip-route",
    "ip6-route",
    "ip-rule",
    "ip6-rule",
    "sysctl",
)
JSON_SECTIONS = ("ip-addr", "ip-link", "ip-route", "ip6-route", "ip-rule", "ip6-rule")

_ATTR = re.compile(r'\s*([A-Za-z][A-Za-z0-9_-]*)=("[^"]*"|\S*)')
_SYSCTL = re.compile(r"^(net(?:\.[^\s=.]+)+)\s*=\s*(.*)$")


class SnapshotError(ValueError):
    """A defect at a line of the snapshot (1-based), inside a section or not."""

    def __init__(self, line: int, reason: str, section: str = "", text: str = "") -> None:
        self.line = line
        self.reason = reason
        self.section = section
        self.text = text
        where = f"line {line}" + (f" (section {section})" if section else "")
        super().__init__(f"{where}: {reason}")


@dataclass(frozen=True)
class Section:
    name: str
    attrs: tuple[tuple[str, str], ...]
    line: int  # the line of the `===` header
    body: str  # the command's output, verbatim (ends with a newline unless empty)

    def attr(self, key: str, default: str = "") -> str:
        for k, v in self.attrs:
            if k == key:
                return v
        return default

    @property
    def body_line(self) -> int:
        return self.line + 1

    @property
    def skipped(self) -> str:
        return self.attr("skipped")

    @property
    def failed(self) -> bool:
        status = self.attr("status", "0")
        return bool(self.skipped) or status not in ("", "0")

    def label(self) -> str:
        backend = self.attr("backend")
        return f"{self.name} ({backend})" if backend else self.name


@dataclass(frozen=True)
class Snapshot:
    version: int
    header: tuple[tuple[str, str], ...]
    sections: tuple[Section, ...]

    def meta(self, key: str, default: str = "") -> str:
        for k, v in self.header:
            if k == key:
                return v
        return default

    @property
    def hostname(self) -> str:
        return self.meta("hostname")

    def all(self, name: str) -> list[Section]:
        return [s for s in self.sections if s.name == name]

    def one(self, name: str) -> Section | None:
        found = [s for s in self.all(name) if not s.skipped]
        return found[0] if found else None


def looks_like_snapshot(text: str) -> bool:
    return text.lstrip("\ufeff").startswith(FORMAT + " ")


def _attrs(rest: str, line_no: int, raw: str) -> tuple[tuple[str, str], ...]:
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(rest):
        if not rest[pos:].strip():
            break
        m = _ATTR.match(rest, pos)
        if m is None:
            raise SnapshotError(line_no, f"cannot read the section attributes at {rest[pos:].strip()[:40]!r}", text=raw)
        value = m.group(2)
        if value.startswith('"'):
            value = value[1:-1]
        out.append((m.group(1), value))
        pos = m.end()
    return tuple(out)


def parse_snapshot(text: str) -> Snapshot:
    lines = text.lstrip("\ufeff").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    first = lines[0].rstrip("\r") if lines else ""
    parts = first.split()
    if len(parts) != 2 or parts[0] != FORMAT:
        raise SnapshotError(1, f"not a netviz snapshot: the first line must be `{FORMAT} N`", text=first[:200])
    if not parts[1].isdigit() or int(parts[1]) not in VERSIONS:
        raise SnapshotError(
            1, f"snapshot format version {parts[1]} is not one this netviz reads "
            f"({', '.join(map(str, VERSIONS))})", text=first,
        )
    header: list[tuple[str, str]] = []
    sections: list[Section] = []
    current: tuple[str, tuple[tuple[str, str], ...], int] | None = None
    body: list[str] = []
    ended = False
    for n, raw in enumerate(lines[1:], start=2):
        line = raw.rstrip("\r")
        if ended:
            if line.strip():
                raise SnapshotError(n, "text after the closing `=== end` line", text=line[:200])
            continue
        if line.startswith(MARK) or line == "===":
            if current is not None:
                sections.append(Section(current[0], current[1], current[2], "".join(body)))
                body = []
                current = None
            rest = line[len(MARK):].strip()
            name, _, attr_text = rest.partition(" ")
            if not name:
                raise SnapshotError(n, "a section line needs a name: `=== NAME attr=value …`", text=line)
            if name == "end":
                ended = True
                continue
            if not re.fullmatch(r"[a-z0-9][a-z0-9_.-]*", name):
                raise SnapshotError(n, f"bad section name {name!r}", text=line)
            current = (name, _attrs(attr_text, n, line), n)
            continue
        if current is None:
            if not line.strip():
                continue
            key, sep, value = line.partition(":")
            if not sep or not re.fullmatch(r"[a-z][a-z0-9_-]*", key):
                raise SnapshotError(n, "expected a `key: value` header line or a `=== SECTION` line", text=line[:200])
            header.append((key, value.strip()))
            continue
        body.append(raw + "\n")
    if not ended:
        raise SnapshotError(
            len(lines), "the snapshot is cut off: the closing `=== end` line is missing",
            section=current[0] if current else "",
        )
    snapshot = Snapshot(int(parts[1]), tuple(header), tuple(sections))
    _check(snapshot)
    return snapshot


def _json_error(section: Section, exc: json.JSONDecodeError) -> SnapshotError:
    lines = section.body.split("\n")
    lineno = exc.lineno
    if exc.pos >= len(section.body.rstrip()):
        # Cut short: the defect is at the end of the last line with text.
        lineno = section.body.rstrip().count("\n") + 1
    text = lines[lineno - 1] if 0 < lineno <= len(lines) else ""
    return SnapshotError(
        section.body_line + lineno - 1,
        f"{section.label()}: not valid JSON at column {exc.colno}: {exc.msg}",
        section.name, text[max(0, exc.colno - 40) : exc.colno + 40],
    )


def _check(snapshot: Snapshot) -> None:
    """What the container itself promises, section by section (the rule
    listings are checked by their own parsers, with their own line numbers)."""
    seen: set[tuple[str, str]] = set()
    for s in snapshot.sections:
        key = (s.name, s.attr("backend"))
        if key in seen and s.name in KNOWN_SECTIONS:
            raise SnapshotError(s.line, f"section {s.label()} appears twice", s.name)
        seen.add(key)
        if s.name in ("iptables", "ip6tables") and s.attr("backend") not in ("", "nft", "legacy"):
            raise SnapshotError(s.line, f"unknown backend {s.attr('backend')!r} (nft or legacy)", s.name)
        if s.skipped or not s.body.strip():
            continue
        if s.name in JSON_SECTIONS and s.attr("format", "json") == "json":
            try:
                value = json.loads(s.body)
            except json.JSONDecodeError as exc:
                raise _json_error(s, exc) from None
            if not isinstance(value, list):
                raise SnapshotError(s.body_line, f"{s.name}: expected a JSON list, as `ip -j` prints", s.name)
        elif s.name == "nft" and s.attr("format", "json") == "json":
            try:
                value = json.loads(s.body)
            except json.JSONDecodeError as exc:
                raise _json_error(s, exc) from None
            if not isinstance(value, dict) or not isinstance(value.get("nftables"), list):
                raise SnapshotError(
                    s.body_line, 'nft: expected {"nftables": [...]}, as `nft -j list ruleset` prints', s.name
                )
        elif s.name == "sysctl":
            for n, line in enumerate(s.body.split("\n"), start=s.body_line):
                if line.strip() and not _SYSCTL.match(line.strip()):
                    raise SnapshotError(n, "sysctl: expected `net.… = VALUE`", s.name, line[:200])


def sysctls(snapshot: Snapshot) -> dict[str, str]:
    section = snapshot.one("sysctl")
    out: dict[str, str] = {}
    if section is None:
        return out
    for line in section.body.split("\n"):
        m = _SYSCTL.match(line.strip())
        if m:
            out[m.group(1)] = m.group(2).strip()
    return out


def json_section(snapshot: Snapshot, name: str) -> Any:
    """A JSON section's value, None when it is missing, skipped or failed."""
    section = snapshot.one(name)
    if section is None or section.failed or not section.body.strip():
        return None
    if section.name in JSON_SECTIONS and section.attr("format", "json") != "json":
        return None
    return json.loads(section.body)


_RULE = re.compile(r"^(?:\[\d+:\d+\] )?-A ")


def _rule_lines(body: str) -> int:
    # `-A CHAIN …`, with `[packets:bytes] ` in front when saved with -c.
    return sum(1 for line in body.split("\n") if _RULE.match(line))


@dataclass(frozen=True)
class Rules:
    """The iptables-save listing chosen for one family, and why."""

    section: Section | None
    notes: tuple[str, ...] = field(default=())

    @property
    def text(self) -> str:
        return self.section.body if self.section is not None else ""


def choose_rules(snapshot: Snapshot, name: str) -> Rules:
    """One listing per family for the engine, which walks one set of xtables.

    A node where both backends hold rules runs both (legacy and nf_tables
    hooks are both registered), which netviz cannot model as one ruleset; it
    takes the one with more rules and says so.  A backend with no rules is
    the usual case (the other tool is only installed)."""
    candidates = [s for s in snapshot.all(name) if not s.skipped and not s.failed]
    notes: list[str] = []
    for s in snapshot.all(name):
        if s.skipped:
            notes.append(f"{s.label()}: skipped on the node ({s.skipped})")
        elif s.failed:
            notes.append(f"{s.label()}: failed on the node (exit status {s.attr('status')}: {s.attr('stderr')})")
    if not candidates:
        return Rules(None, tuple(notes))
    counted = sorted(candidates, key=lambda s: -_rule_lines(s.body))
    chosen = counted[0]
    if _rule_lines(chosen.body) == 0:
        # No rules anywhere: the listing that declares tables, nft first.
        with_tables = [s for s in candidates if "\n*" in "\n" + s.body]
        chosen = with_tables[0] if with_tables else candidates[0]
    for other in candidates:
        if other is not chosen and _rule_lines(other.body):
            notes.append(
                f"{other.label()} also holds {_rule_lines(other.body)} rules; both backends run in "
                f"the kernel, but netviz traces {chosen.label()} only"
            )
    return Rules(chosen, tuple(notes))


# --- from a snapshot to the scenario's parts --------------------------------


def _ipset_text(snapshot: Snapshot) -> str:
    section = snapshot.one("ipset")
    if section is None or section.failed:
        return ""
    return section.body


def iptables_nft_tables(snapshot: Snapshot) -> set[tuple[str, str]]:
    """(family, table) of the tables iptables-nft manages, as the nf_tables
    backend's iptables-save sections declare them (`*filter` …)."""
    out: set[tuple[str, str]] = set()
    for name, family in (("iptables", "ip"), ("ip6tables", "ip6")):
        for section in snapshot.all(name):
            if section.attr("backend") == "nft" and not section.failed:
                out.update((family, line[1:].strip()) for line in section.body.split("\n") if line.startswith("*"))
    return out


def _without_tables(listing: str, tables: set[tuple[str, str]]) -> str:
    """`nft list ruleset` text without some tables.  nft prints each table
    as a `table FAMILY NAME {` line and a closing `}` line, both unindented
    (its "# Warning: … managed by iptables-nft" goes to standard error, so
    the text alone cannot tell)."""
    out: list[str] = []
    skipping = False
    for line in listing.splitlines(keepends=True):
        if skipping:
            skipping = line.rstrip() != "}"
            continue
        words = line.split()
        if len(words) == 4 and words[0] == "table" and words[3] == "{" and (words[1], words[2]) in tables:
            skipping = True
            continue
        out.append(line)
    return "".join(out)


def _nft_text(snapshot: Snapshot) -> str:
    """The nft listing without the tables iptables-nft manages: those come
    from the iptables-save sections (scenario-v2 §2), and the snapshot knows
    which they are even where the JSON cannot tell (a table whose rules all
    translate to native expressions carries no `xt` and no warning)."""
    section = snapshot.one("nft")
    if section is None or section.failed or not section.body.strip():
        return ""
    managed = iptables_nft_tables(snapshot)
    if not managed:
        return section.body
    if section.attr("format", "json") != "json":
        return _without_tables(section.body, managed)
    data = json.loads(section.body)

    def keep(item: Any) -> bool:
        if not isinstance(item, dict) or len(item) != 1:
            return True
        (kind, body), = item.items()
        if not isinstance(body, dict):
            return True
        table = body.get("name") if kind == "table" else body.get("table")
        return (body.get("family"), table) not in managed

    data["nftables"] = [item for item in data["nftables"] if keep(item)]
    return json.dumps(data) + "\n"


def _text_section(snapshot: Snapshot, name: str) -> str:
    section = snapshot.one(name)
    if section is None or section.failed:
        return ""
    return section.body


def host_dict(snapshot: Snapshot, family: str) -> dict[str, Any]:
    """The scenario's `host` object: interfaces (types, bridge ports), the
    family's routes of every table, its `ip rule`s, and the path sysctls."""
    route, rule = ("ip6-route", "ip6-rule") if family == "ipv6" else ("ip-route", "ip-rule")
    values = sysctls(snapshot) or None
    addr = snapshot.one("ip-addr")
    if addr is not None and addr.attr("format", "json") == "text":
        # An iproute2 without JSON output: the collector took the text.
        return host_from_ip_text(
            _text_section(snapshot, "ip-addr"), _text_section(snapshot, route),
            _text_section(snapshot, rule), _text_section(snapshot, "ip-link"), values,
        )
    return host_from_ip_json(
        json_section(snapshot, "ip-addr") or [], json_section(snapshot, "ip-link"),
        json_section(snapshot, route), json_section(snapshot, rule), values,
    )


def scenario_parts(snapshot: Snapshot, family: str) -> dict[str, Any]:
    """`ruleset`, `ipsets`, `nftables`, `family` and `host` of a scenario
    (scenario.md, scenario-v2.md) for one address family of the node."""
    rules = choose_rules(snapshot, "ip6tables" if family == "ipv6" else "iptables")
    parts: dict[str, Any] = {"ruleset": rules.text, "family": family, "host": host_dict(snapshot, family)}
    ipsets = _ipset_text(snapshot)
    if ipsets.strip():
        parts["ipsets"] = ipsets
    nft = _nft_text(snapshot)
    if nft:
        parts["nftables"] = nft
    return parts

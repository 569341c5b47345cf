"""Fleet checks: a check set (docs/fleet.md) run against a fleet of nodes.

A node is a ruleset with its host profile.  Each node is parsed once and
every check traced through it with the engine; a cell of the results matrix
says whether the check's expectation held there, and why not.  The same
functions serve the worker (fleet_jobs.py), `manage.py check_fleet` and the
pages: load_checkset → run_node per node → matrix → to_junit / diff_runs.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from netviz.engine.host import Host
from netviz.engine.parser import ParseError, parse_ruleset
from netviz.engine.pipeline import packet_from_dict, trace_packet
from netviz.engine.ruleset import Family
from netviz.engine.snapshot import SnapshotError, looks_like_snapshot, parse_snapshot, scenario_parts
from netviz.engine.trace import StepKind, Trace
from netviz.scenario import PACKET_KEYS

FATES = ("ACCEPT", "DROP", "REJECT")
OUT_KEYS = frozenset({"src", "dst", "sport", "dport", "masquerade", "dnat_to"})
NODE = "$node"  # in a packet: the node's own address
MAX_CHECKS = 1000


class CheckSetError(ValueError):
    pass


@dataclass(frozen=True)
class Check:
    name: str
    packet: dict[str, Any]
    expect: str
    out: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CheckSet:
    name: str
    checks: tuple[Check, ...]


@dataclass(frozen=True)
class Node:
    name: str
    ruleset_text: str
    ipsets_text: str | None = None
    family: str = "ipv4"
    host: dict[str, Any] = field(default_factory=dict)
    # Where the pages link a cell to (the trace page of the stored ruleset).
    ruleset_pk: int | None = None
    host_pk: int | None = None


def _endpoint(text: str) -> tuple[str, int | None]:
    """"10.0.0.1:53", "10.0.0.1", "[fd00::1]:53" → (address, port)."""
    text = str(text).strip()
    m = re.fullmatch(r"\[([^\]]+)\](?::(\d+))?", text)
    if m:
        return str(ipaddress.ip_address(m.group(1))), int(m.group(2)) if m.group(2) else None
    if text.count(":") == 1:
        addr, port = text.split(":")
        return str(ipaddress.ip_address(addr)), int(port)
    return str(ipaddress.ip_address(text)), None


def _check_from_dict(data: Any, index: int) -> Check:
    where = f"check {index + 1}"
    if not isinstance(data, dict):
        raise CheckSetError(f"{where}: a check is an object")
    name = str(data.get("name") or "").strip()
    if not name:
        raise CheckSetError(f"{where}: `name` is required")
    where = f"check {index + 1} ({name})"
    if "packets" in data:
        # A conversation (several packets, each with its own expectation) has
        # its place in the format but no evaluator yet.
        raise CheckSetError(f"{where}: conversations (`packets`) are not supported yet; "
                            "use one `packet` per check")
    packet = data.get("packet")
    if not isinstance(packet, dict):
        raise CheckSetError(f"{where}: `packet` is required and must be an object")
    unknown = set(packet) - PACKET_KEYS
    if unknown:
        raise CheckSetError(f"{where}: unknown packet keys: {', '.join(sorted(unknown))}")
    for key in ("proto", "src", "dst"):
        if key not in packet:
            raise CheckSetError(f"{where}: `packet.{key}` is required")
    expect = str(data.get("expect", "")).upper()
    if expect not in FATES:
        raise CheckSetError(f"{where}: `expect` must be one of {', '.join(FATES)}")
    out = data.get("out") or {}
    if not isinstance(out, dict):
        raise CheckSetError(f"{where}: `out` must be an object")
    unknown = set(out) - OUT_KEYS
    if unknown:
        raise CheckSetError(f"{where}: unknown `out` keys: {', '.join(sorted(unknown))}")
    if out and expect != "ACCEPT":
        raise CheckSetError(f"{where}: `out` describes a packet that leaves: expect ACCEPT")
    if "dnat_to" in out:
        targets = out["dnat_to"]
        if not isinstance(targets, list) or not targets:
            raise CheckSetError(f"{where}: `out.dnat_to` is a list of addresses or address:port")
        try:
            for target in targets:
                _endpoint(target)
        except ValueError as exc:
            raise CheckSetError(f"{where}: `out.dnat_to`: {exc}") from None
    return Check(name=name, packet=dict(packet), expect=expect, out=dict(out))


def checkset_from_dict(data: Any) -> CheckSet:
    if not isinstance(data, dict):
        raise CheckSetError("a check set is a JSON object with `checks`")
    checks = data.get("checks")
    if not isinstance(checks, list) or not checks:
        raise CheckSetError("`checks` must be a non-empty list")
    if len(checks) > MAX_CHECKS:
        raise CheckSetError(f"at most {MAX_CHECKS} checks in a set")
    parsed = tuple(_check_from_dict(c, i) for i, c in enumerate(checks))
    names = [c.name for c in parsed]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise CheckSetError(f"check names must be unique: {', '.join(dupes)}")
    return CheckSet(name=str(data.get("name") or "checks"), checks=parsed)


def load_checkset(text: str) -> CheckSet:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CheckSetError(f"line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    return checkset_from_dict(data)


# --- one node --------------------------------------------------------------------


def node_addresses(host: Host) -> list[str]:
    out = []
    for iface in host.interfaces:
        if iface.name == "lo":
            continue
        out.extend(str(a.ip) for a in iface.addrs)
    return out


def _node_packet(packet: dict[str, Any], addrs: list[str]) -> dict[str, Any]:
    out = dict(packet)
    for key in ("src", "dst"):
        if out.get(key) == NODE:
            if not addrs:
                raise ValueError(f"`{key}: $node` but the node has no address")
            out[key] = addrs[0]
    return out


def fate(trace: Trace) -> str:
    """ACCEPT, DROP, or REJECT when the rule that dropped it is a REJECT."""
    if trace.verdict != "DROP":
        return trace.verdict
    deciding = [s for s in trace.steps if s.kind in (StepKind.RULE, StepKind.POLICY) and s.verdict]
    if deciding and deciding[-1].kind == StepKind.RULE and re.search(r"-j REJECT\b", deciding[-1].text or ""):
        return "REJECT"
    return "DROP"


def _judge_out(check: Check, trace: Trace, addrs: list[str]) -> str:
    """"" when the header out matches `out`, else why not."""
    header = trace.packet_out.header()
    problems = []
    for key in ("src", "dst", "sport", "dport"):
        if key in check.out:
            want = check.out[key]
            want = addrs[0] if want == NODE and addrs else want
            if str(header.get(key)) != str(want):
                problems.append(f"{key} is {header.get(key)}, expected {want}")
    if check.out.get("masquerade") and header["src"] not in addrs:
        problems.append(f"src {header['src']} is not one of the node's addresses "
                        f"({', '.join(addrs) or 'none'}): not masqueraded")
    if "dnat_to" in check.out:
        targets = [_endpoint(t) for t in check.out["dnat_to"]]
        hit = any(header["dst"] == addr and (port is None or header.get("dport") == port)
                  for addr, port in targets)
        if not hit:
            got = header["dst"] + (f":{header['dport']}" if "dport" in header else "")
            problems.append(f"leaves for {got}, not one of {', '.join(map(str, check.out['dnat_to']))}")
    return "; ".join(problems)


def run_node(node: Node, checks: Iterable[Check],
             on_cell: Callable[[], None] | None = None) -> dict[str, Any]:
    """Parse the node once and trace every check: {"name", "cells"} or
    {"name", "error"} when the node cannot be read."""
    checks = list(checks)
    family = Family(node.family or "ipv4")
    out: dict[str, Any] = {"name": node.name}
    if node.ruleset_pk is not None:
        out["ruleset"] = node.ruleset_pk
    if node.host_pk is not None:
        out["host"] = node.host_pk
    try:
        ruleset = parse_ruleset(node.ruleset_text, node.ipsets_text or None, family)
        host = Host.from_dict(node.host, family)
    except ParseError as exc:
        out["error"] = f"the ruleset does not parse: line {exc.line}: {exc.reason}"
        return out
    except ValueError as exc:
        out["error"] = f"the host profile is not valid: {exc}"
        return out
    addrs = node_addresses(host)
    cells = []
    for check in checks:
        cells.append(_run_check(ruleset, host, addrs, family, check))
        if on_cell is not None:
            on_cell()
    out["cells"] = cells
    return out


def _run_check(ruleset: Any, host: Host, addrs: list[str], family: Family,
               check: Check) -> dict[str, Any]:
    cell: dict[str, Any] = {"check": check.name, "expect": check.expect}
    try:
        packet = _node_packet(check.packet, addrs)
        trace = trace_packet(ruleset, host, packet_from_dict(packet, family))
    except ValueError as exc:
        cell.update(ok=False, fate="", why=f"cannot trace it here: {exc}", packet=check.packet)
        return cell
    got = fate(trace)
    cell.update(fate=got, packet=packet, packet_out=trace.packet_out.header(),
                uncertain=bool(trace.uncertain), summary=trace.summary)
    if got != check.expect:
        cell.update(ok=False, why=f"expected {check.expect}, got {got}: {trace.summary}")
        return cell
    problem = _judge_out(check, trace, addrs) if check.out else ""
    cell.update(ok=not problem, why=problem)
    return cell


# --- the whole fleet ---------------------------------------------------------------


def matrix(checkset: CheckSet, nodes: list[dict[str, Any]]) -> dict[str, Any]:
    """The run's result: checks × nodes with counts (the JSON download)."""
    passed = sum(1 for n in nodes for c in n.get("cells", []) if c["ok"])
    failed = sum(1 for n in nodes for c in n.get("cells", []) if not c["ok"])
    return {
        "checkset": checkset.name,
        "checks": [c.name for c in checkset.checks],
        "nodes": nodes,
        "passed": passed,
        "failed": failed,
        "errors": sum(1 for n in nodes if "error" in n),
    }


def failures(result: dict[str, Any]) -> list[str]:
    """One line per unreadable node ("ERROR node: why") and failed cell
    ("FAIL node: check — why")."""
    lines = []
    for node in result["nodes"]:
        if "error" in node:
            lines.append(f"ERROR {node['name']}: {node['error']}")
        for cell in node.get("cells", []):
            if not cell["ok"]:
                lines.append(f"FAIL {node['name']}: {cell['check']} — {cell['why']}")
    return lines


def to_junit(result: dict[str, Any]) -> str:
    """JUnit XML: a testsuite per node, a testcase per check."""
    total = sum(len(n.get("cells", [])) for n in result["nodes"])
    suites = ET.Element("testsuites", name=result["checkset"], tests=str(total),
                        failures=str(result["failed"]), errors=str(result["errors"]))
    for node in result["nodes"]:
        cells = node.get("cells", [])
        suite = ET.SubElement(suites, "testsuite", name=node["name"], tests=str(len(cells)),
                              failures=str(sum(1 for c in cells if not c["ok"])),
                              errors="1" if "error" in node else "0")
        if "error" in node:
            case = ET.SubElement(suite, "testcase", classname=node["name"], name="read the node")
            ET.SubElement(case, "error", message=node["error"])
        for cell in cells:
            case = ET.SubElement(suite, "testcase", classname=node["name"], name=cell["check"])
            if not cell["ok"]:
                ET.SubElement(case, "failure", message=cell["why"]).text = json.dumps(
                    {"packet": cell.get("packet"), "packet_out": cell.get("packet_out")})
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def diff_runs(before: dict[str, Any] | None, after: dict[str, Any]) -> list[dict[str, Any]]:
    """Cells whose outcome changed since the previous run: what a change broke
    (or fixed).  Nodes or checks new in this run count as changed from nothing."""
    if not before:
        return []
    old = {(n["name"], c["check"]): c for n in before.get("nodes", []) for c in n.get("cells", [])}
    out = []
    for node in after.get("nodes", []):
        for cell in node.get("cells", []):
            prev = old.get((node["name"], cell["check"]))
            if prev is None:
                continue
            if prev["ok"] != cell["ok"] or prev.get("fate") != cell.get("fate"):
                out.append({"node": node["name"], "check": cell["check"],
                            "was": "holds" if prev["ok"] else f"fails ({prev.get('fate')})",
                            "now": "holds" if cell["ok"] else f"fails ({cell.get('fate')})",
                            "broke": prev["ok"] and not cell["ok"], "why": cell.get("why", "")})
    return out


# --- node files for the command line -------------------------------------------------


def _text_or_file(value: Any, base: Path, key: str, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise CheckSetError(f"{where}: `{key}` must be a string (a path or the text)")
    if "\n" in value:
        return value
    path = Path(value) if Path(value).is_absolute() else base / value
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CheckSetError(f"{where}: `{key}`: cannot read {value}: {exc.strerror}") from None


def node_from_snapshot(text: str, name: str = "", family: str = "ipv4") -> Node:
    """A node snapshot (docs/snapshot.md) as a fleet node."""
    try:
        snapshot = parse_snapshot(text)
        parts = scenario_parts(snapshot, family)
    except SnapshotError as exc:
        raise CheckSetError(f"{name or 'snapshot'}: {exc}") from None
    return Node(name=snapshot.hostname or name, ruleset_text=parts["ruleset"],
                ipsets_text=parts.get("ipsets"), family=family, host=parts["host"])


def load_node_file(path: str | Path) -> Node:
    """A node snapshot (netviz-collect), or a node file: {"name", "ruleset"
    (text or path), "ipsets"?, "family"?, "host": {interfaces, routes}} — a
    scenario without a packet."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CheckSetError(f"cannot read {path}: {exc.strerror}") from None
    if looks_like_snapshot(text):
        return node_from_snapshot(text, path.stem)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CheckSetError(f"{path}: line {exc.lineno}: {exc.msg}") from None
    if not isinstance(data, dict) or "ruleset" not in data:
        raise CheckSetError(f"{path}: a node file is an object with `ruleset` and `host`")
    host = data.get("host") or {}
    if not isinstance(host, dict):
        raise CheckSetError(f"{path}: `host` must be an object")
    return Node(
        name=str(data.get("name") or path.stem),
        ruleset_text=_text_or_file(data["ruleset"], path.parent, "ruleset", str(path)) or "",
        ipsets_text=_text_or_file(data.get("ipsets"), path.parent, "ipsets", str(path)),
        family=str(data.get("family") or "ipv4"),
        host=host,
    )

"""Read a running host's (or a namespace's) rules, sets and network config.

iptables has two backends that can both hold rules at once: nf_tables
(`iptables-nft-save`) and the legacy x_tables (`iptables-legacy-save`).
python-iptables (import name `iptc`, optional: requirements-live.txt) reads the
legacy backend only, through libiptc, and needs root; where it is installed
and legacy tables exist it is used, with the save tool as the fallback.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netviz.engine.parser import ParseError, parse_ruleset

TABLE_ORDER = ("raw", "mangle", "nat", "filter", "security")
PROJECT_ROOT = Path(__file__).resolve().parents[2]


class LiveError(RuntimeError):
    pass


@dataclass
class LiveSnapshot:
    ruleset_text: str
    ipsets_text: str
    family: str
    interfaces: list[dict[str, Any]]
    routes: list[str]
    backend: str  # "nf_tables", "legacy" or "none"
    reader: str  # the tool that produced ruleset_text
    notes: list[str] = field(default_factory=list)


def _prefix(netns: str | None) -> list[str]:
    return ["ip", "netns", "exec", netns] if netns else []


def _run(cmd: list[str], netns: str | None, env: dict[str, str] | None = None) -> str:
    try:
        proc = subprocess.run([*_prefix(netns), *cmd], capture_output=True, text=True,
                              timeout=30, check=False, env=env)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LiveError(f"{cmd[0]}: {exc}") from exc
    if proc.returncode != 0:
        raise LiveError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def _tables(text: str) -> list[str]:
    return [ln[1:].strip() for ln in text.splitlines() if ln.startswith("*")]


def _rule_count(text: str) -> int:
    return sum(1 for ln in text.splitlines() if ln.startswith("-A "))


def read_live(netns: str | None = None, family: str = "ipv4", use_iptc: bool = True
              ) -> LiveSnapshot:
    if os.geteuid() != 0:
        raise LiveError("reading netfilter rules needs root (CAP_NET_ADMIN)")
    base = "ip6tables" if family == "ipv6" else "iptables"
    notes: list[str] = []
    texts: dict[str, str] = {}
    for backend in ("nft", "legacy"):
        tool = f"{base}-{backend}-save"
        if shutil.which(tool) is None:
            notes.append(f"{tool} is not installed")
            continue
        try:
            texts[backend] = _run([tool], netns)
        except LiveError as exc:
            notes.append(str(exc))
    nft, legacy = texts.get("nft", ""), texts.get("legacy", "")
    if _tables(nft) and _tables(legacy) and _rule_count(legacy):
        notes.append(
            f"both backends hold tables: read nf_tables ({_rule_count(nft)} rules); the legacy "
            f"backend also has {_rule_count(legacy)} rules, which the kernel runs as well"
        )
    if _tables(nft) and (_rule_count(nft) or not _rule_count(legacy)):
        ruleset_text, backend, reader = nft, "nf_tables", f"{base}-nft-save"
    elif _tables(legacy):
        ruleset_text, backend, reader = legacy, "legacy", f"{base}-legacy-save"
        if use_iptc and family == "ipv4":
            try:
                ruleset_text = iptc_save(netns, _tables(legacy))
                reader = "python-iptables"
            except LiveError as exc:
                notes.append(f"python-iptables not used: {exc}")
    else:
        ruleset_text, backend, reader = "", "none", ""
        notes.append("no iptables tables in either backend")
    ipsets = ""
    if shutil.which("ipset"):
        try:
            ipsets = _run(["ipset", "save"], netns)
        except LiveError as exc:
            notes.append(str(exc))
    interfaces = interfaces_from_json(_run(["ip", "-j", "addr", "show"], netns), family)
    flag = "-6" if family == "ipv6" else "-4"
    routes = routes_from_json(_run(["ip", "-j", flag, "route", "show"], netns))
    return LiveSnapshot(ruleset_text, ipsets, family, interfaces, routes, backend, reader, notes)


def interfaces_from_json(text: str, family: str = "ipv4") -> list[dict[str, Any]]:
    want = "inet6" if family == "ipv6" else "inet"
    out: list[dict[str, Any]] = []
    for link in json.loads(text or "[]"):
        name = link.get("ifname", "")
        if not name or name == "lo":
            continue  # lo and its addresses exist implicitly (scenario.md)
        addrs = [
            f"{a['local']}/{a['prefixlen']}"
            for a in link.get("addr_info", [])
            if a.get("family") == want and a.get("scope") != "link"
        ]
        out.append({"name": name, "addrs": addrs})
    return out


def routes_from_json(text: str) -> list[str]:
    out: list[str] = []
    for route in json.loads(text or "[]"):
        if route.get("protocol") == "kernel" and route.get("scope") == "link":
            continue  # connected routes of the addresses exist implicitly
        words = []
        if route.get("type") and route["type"] != "unicast":
            words.append(route["type"])
        words.append(route.get("dst", "default"))
        if route.get("gateway"):
            words += ["via", route["gateway"]]
        if route.get("dev"):
            words += ["dev", route["dev"]]
        if route.get("prefsrc"):
            words += ["src", route["prefsrc"]]
        if route.get("metric") is not None:
            words += ["metric", str(route["metric"])]
        out.append(" ".join(words))
    return out


# ---------------------------------------------------------------------------
# python-iptables


def iptc_save(netns: str | None, tables: list[str]) -> str:
    """iptables-save text of the legacy tables, read with python-iptables.

    In a namespace it runs as `ip netns exec NS python -m netviz.kernel.live`
    (libiptc talks to the namespace of the calling process).  The text is
    checked by parsing it; any failure raises LiveError so the caller falls
    back to iptables-legacy-save.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    cmd = [sys.executable, "-m", "netviz.kernel.live", "--iptc-save", *tables]
    text = _run(cmd, netns, env=env)
    try:
        parse_ruleset(text)
    except ParseError as exc:
        raise LiveError(f"python-iptables output does not parse: {exc}") from exc
    return text


def _value(text: str) -> str:
    if text and not any(ch in text for ch in ' \t"\'\\'):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _neg(value: str) -> tuple[str, str]:
    return ("! ", value[1:]) if value.startswith("!") else ("", value)


def _addr(value: str) -> str | None:
    neg, value = _neg(value)
    net = ipaddress.ip_network(value, strict=False)
    if net.prefixlen == 0:
        return None
    return neg + str(net)


def _params(params: dict[str, list[str]]) -> list[str]:
    out: list[str] = []
    for name, values in params.items():
        values = list(values)
        neg = ""
        if values and values[0] == "!":
            neg, values = "! ", values[1:]
        out.append(f"{neg}--{name}" + "".join(" " + _value(v) for v in values))
    return out


def _iptc_rule(chain: str, rule: Any) -> str:
    parts = [f"-A {_value(chain)}"]
    for flag, value in (("-s", rule.src), ("-d", rule.dst)):
        addr = _addr(value) if value else None
        if addr:
            neg, addr = _neg(addr.replace("! ", "!"))
            parts.append(f"{neg}{flag} {addr}")
    for flag, value in (("-i", rule.in_interface), ("-o", rule.out_interface)):
        if value:
            neg, name = _neg(value)
            parts.append(f"{neg}{flag} {name}")
    if rule.protocol and rule.protocol not in ("ip", "all", "0"):
        neg, proto = _neg(rule.protocol)
        parts.append(f"{neg}-p {proto}")
    for match in rule.matches:
        parts.append(" ".join([f"-m {match.name}", *_params(match.get_all_parameters())]))
    target = rule.target
    if target is not None and target.name:
        flag = "-g" if getattr(target, "goto", False) else "-j"
        parts.append(" ".join([f"{flag} {target.name}", *_params(target.get_all_parameters())]))
    return " ".join(parts)


def _iptc_main(tables: list[str]) -> str:
    import iptc  # type: ignore[import-untyped]  # optional: requirements-live.txt

    lines = ["# Generated by netviz import_live from python-iptables"]
    for name in [t for t in TABLE_ORDER if t in tables] + [t for t in tables if t not in TABLE_ORDER]:
        table = iptc.Table(name)
        table.refresh()
        lines.append(f"*{name}")
        body: list[str] = []
        for chain in table.chains:
            if chain.is_builtin():
                lines.append(f":{chain.name} {chain.get_policy().name} [0:0]")
            else:
                lines.append(f":{chain.name} - [0:0]")
            body.extend(_iptc_rule(chain.name, rule) for rule in chain.rules)
        lines.extend(body)
        lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) >= 1 and argv[0] == "--iptc-save":
        try:
            import iptc  # type: ignore[import-untyped]
        except ImportError:
            sys.stderr.write("python-iptables (iptc) is not installed\n")
            return 3
        try:
            sys.stdout.write(_iptc_main(argv[1:]))
        except (iptc.IPTCError, OSError) as exc:
            sys.stderr.write(f"python-iptables: {exc}\n")
            return 4
        return 0
    sys.stderr.write("usage: python -m netviz.kernel.live --iptc-save TABLE…\n")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))


def store_live(snap: LiveSnapshot, name: str, owner: Any = None) -> tuple[Any, Any]:
    """Store a snapshot as a Ruleset and its HostProfile (netviz.store);
    raises ParseError when the text read does not parse."""
    from netviz.store import store_host, store_ruleset  # Django only when storing

    ruleset = store_ruleset(
        name=name, source=snap.ruleset_text, ipsets_source=snap.ipsets_text,
        family=snap.family, owner=owner,
        description=f"Read live: {snap.backend} backend via {snap.reader}.",
    )
    host = store_host(name=name, interfaces=snap.interfaces, routes=snap.routes,
                      ruleset=ruleset, owner=owner)
    return ruleset, host

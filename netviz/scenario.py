"""Scenario files (shared spec: scenario.md): load, validate, write.

This module does the file I/O the engine may not do: `ruleset` and `ipsets`
are paths relative to the scenario file unless they hold a newline.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netviz.engine.conversation import validate_packets
from netviz.engine.pipeline import PacketError

PACKET_KEYS = frozenset(
    {
        "proto",
        "src",
        "sport",
        "dst",
        "dport",
        "tcp_flags",
        "icmp_type",
        "icmp_code",
        "in_iface",
        "mark",
        "ctstate",
        "length",
        "ttl",
        "tos",
        "mac",
        "uid",
        "gid",
    }
)


class ScenarioError(ValueError):
    pass


@dataclass(frozen=True)
class Scenario:
    ruleset_text: str
    ipsets_text: str | None = None
    family: str = "ipv4"
    host: dict[str, Any] = field(default_factory=dict)
    packet: dict[str, Any] = field(default_factory=dict)
    # Our own optional keys: seed and statistic choices for reproducible traces.
    options: dict[str, Any] = field(default_factory=dict)
    name: str = ""
    # scenario-v2 §2: `nft list ruleset` text or `nft -j list ruleset` JSON.
    nftables_text: str | None = None
    # Later packets of the connection (scenario-v2 §3): [{"dir": "reply", …}].
    packets: list[dict[str, Any]] = field(default_factory=list)


def _text_or_file(value: Any, base_dir: Path | None, key: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ScenarioError(f"`{key}` must be a string (a path or the text itself)")
    if not value.strip() or "\n" in value or value.lstrip().startswith("{"):
        return value
    path = Path(value)
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"`{key}`: cannot read {value}: {exc.strerror}") from exc


def scenario_from_dict(data: dict[str, Any], base_dir: Path | None = None) -> Scenario:
    if not isinstance(data, dict):
        raise ScenarioError("a scenario is a JSON object")
    if "ruleset" not in data and "nftables" not in data:
        raise ScenarioError("`ruleset` (or `nftables`) is required")
    ruleset_text = _text_or_file(data.get("ruleset"), base_dir, "ruleset") or ""
    nftables_text = _text_or_file(data.get("nftables"), base_dir, "nftables")
    ipsets_text = _text_or_file(data.get("ipsets"), base_dir, "ipsets")
    family = data.get("family", "ipv4")
    if family not in ("ipv4", "ipv6"):
        raise ScenarioError(f"`family` must be ipv4 or ipv6, not {family!r}")
    host = data.get("host") or {}
    if not isinstance(host, dict):
        raise ScenarioError("`host` must be an object with interfaces and routes")
    packet = data.get("packet")
    if not isinstance(packet, dict):
        raise ScenarioError("`packet` is required and must be an object")
    for key in ("proto", "src", "dst"):
        if key not in packet:
            raise ScenarioError(f"`packet.{key}` is required")
    try:
        packets = validate_packets(data.get("packets"))
    except PacketError as exc:
        raise ScenarioError(str(exc)) from exc
    options = data.get("options") or {}
    if not isinstance(options, dict):
        raise ScenarioError("`options` must be an object")
    return Scenario(
        ruleset_text=ruleset_text,
        ipsets_text=ipsets_text,
        family=family,
        host=host,
        packet=packet,
        options=options,
        name=str(data.get("name", "")),
        nftables_text=nftables_text,
        packets=packets,
    )


def load_scenario(path: str | Path) -> Scenario:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScenarioError(f"cannot read {path}: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise ScenarioError(f"{path}: line {exc.lineno}, column {exc.colno}: {exc.msg}") from exc
    return scenario_from_dict(data, base_dir=path.parent)


def scenario_to_dict(scenario: Scenario) -> dict[str, Any]:
    """The scenario with ruleset and ipsets inline: one self-contained file."""
    out: dict[str, Any] = {}
    if scenario.name:
        out["name"] = scenario.name
    out["ruleset"] = _inline(scenario.ruleset_text)
    if scenario.ipsets_text:
        out["ipsets"] = _inline(scenario.ipsets_text)
    if scenario.nftables_text:
        out["nftables"] = _inline(scenario.nftables_text)
    out["family"] = scenario.family
    out["host"] = scenario.host
    out["packet"] = scenario.packet
    if scenario.packets:
        out["packets"] = scenario.packets
    if scenario.options:
        out["options"] = scenario.options
    return out


def _inline(text: str) -> str:
    # A value without a newline would be read back as a path.
    return text if "\n" in text else text + "\n"

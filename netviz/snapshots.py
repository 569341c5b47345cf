"""A node snapshot in, rulesets and host profiles out (docs/snapshot.md).

`check_snapshot` parses the container and every listing in it with the
engine's parsers before anything is stored, translating their line numbers
into the snapshot's, so a bad snapshot is refused with the section and line
at fault.  `import_snapshot` then stores all of it in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db import transaction

from netviz import models, store
from netviz.engine.host import Host
from netviz.engine.nft.model import NftRuleset
from netviz.engine.parser import ParseError, parse_ipset_save, parse_ruleset
from netviz.engine.ruleset import Family
from netviz.engine.ruleset import Ruleset as EngineRuleset
from netviz.engine.snapshot import (
    Section,
    Snapshot,
    SnapshotError,
    choose_rules,
    parse_snapshot,
    scenario_parts,
)
from netviz.scenario import Scenario

__all__ = ["SnapshotError", "check_snapshot", "import_snapshot", "snapshot_scenario"]


@dataclass
class Checked:
    snapshot: Snapshot
    parts: dict[str, dict[str, Any]]  # family → scenario parts
    parsed: dict[str, EngineRuleset]  # family → the parsed iptables listing
    notes: list[str] = field(default_factory=list)
    nft: NftRuleset | None = None  # the parsed `nft -j list ruleset`


def _in_section(section: Section | None, exc: ParseError) -> SnapshotError:
    if section is None:
        return SnapshotError(0, exc.reason)
    return SnapshotError(
        section.body_line + max(exc.line, 1) - 1,
        f"{section.label()}: line {exc.line} of the listing, column {exc.column}: {exc.reason}",
        section.name,
        exc.text,
    )


def check_snapshot(text: str) -> Checked:
    snapshot = parse_snapshot(text)
    ipset_section = snapshot.one("ipset")
    ipsets = ""
    if ipset_section is not None and not ipset_section.failed:
        ipsets = ipset_section.body
        try:
            parse_ipset_save(ipsets)
        except ParseError as exc:
            raise _in_section(ipset_section, exc) from None
    checked = Checked(snapshot, {}, {})
    nft_section = snapshot.one("nft")
    nft_text = scenario_parts(snapshot, "ipv4").get("nftables", "")
    if nft_text and nft_section is not None:
        try:
            # The listing as the node printed it first, so that a JSON path
            # in an error points into the snapshot; then without the tables
            # iptables-nft manages, as it is stored.
            store.parse_nftables(nft_section.body)
            checked.nft = store.parse_nftables(nft_text)
        except ParseError as exc:
            path = getattr(exc, "json_path", "")
            if path and nft_section is not None:
                raise SnapshotError(nft_section.body_line, f"nft: at {path}: {exc.reason}", "nft") from None
            raise _in_section(nft_section, exc) from None
    for family, name in (("ipv4", "iptables"), ("ipv6", "ip6tables")):
        rules = choose_rules(snapshot, name)
        checked.notes.extend(rules.notes)
        parts = scenario_parts(snapshot, family)
        try:
            checked.parsed[family] = parse_ruleset(rules.text, ipsets or None, Family(family))
        except ParseError as exc:
            raise _in_section(rules.section, exc) from None
        try:
            Host.from_dict(parts["host"], Family(family))
        except ValueError as exc:
            section = snapshot.one("ip-addr")
            raise SnapshotError(section.line if section else 0, f"the host does not add up: {exc}", "ip-addr") from None
        checked.parts[family] = parts
    for section in snapshot.sections:
        if section.skipped and section.name not in ("iptables", "ip6tables"):
            checked.notes.append(f"{section.label()}: skipped on the node ({section.skipped})")
        elif section.failed and section.name not in ("iptables", "ip6tables"):
            checked.notes.append(
                f"{section.label()}: failed on the node (exit status {section.attr('status')}: "
                f"{section.attr('stderr')})"
            )
    return checked


def _has_rules(parsed: EngineRuleset) -> bool:
    return any(chain.rules for table in parsed.tables for chain in table.chains)


@dataclass
class Imported:
    snapshot: models.Snapshot
    rulesets: list[models.Ruleset]
    hosts: list[models.HostProfile]
    notes: list[str]

    @property
    def ruleset(self) -> models.Ruleset:
        return self.rulesets[0]


def import_snapshot(text: str, *, name: str = "", owner: Any = None, is_public: bool = False) -> Imported:
    """Store a snapshot: the IPv4 ruleset always (it may be empty on a node
    that only has nftables), the IPv6 one when ip6tables holds rules, each
    with its host profile.  All or nothing."""
    checked = check_snapshot(text)
    snap = checked.snapshot
    name = (name or snap.hostname or "snapshot").strip()[:180]
    public = owner is None or is_public
    description = f"From a netviz-collect snapshot of {snap.hostname or 'a node'}, taken {snap.meta('time') or 'at an unknown time'}."
    rulesets: list[models.Ruleset] = []
    hosts: list[models.HostProfile] = []
    with transaction.atomic():
        for family in ("ipv4", "ipv6"):
            parsed = checked.parsed[family]
            if family == "ipv6" and not _has_rules(parsed):
                continue
            parts = checked.parts[family]
            ruleset = store.save_parsed(
                parsed,
                name=name if family == "ipv4" else f"{name} (IPv6)",
                source=parts["ruleset"],
                ipsets_source=parts.get("ipsets", ""),
                nftables_source=parts.get("nftables", ""),
                nft=checked.nft,
                owner=owner,
                description=description,
            )
            host = store.store_host(
                name=f"{snap.hostname or name} ({family})",
                interfaces=parts["host"]["interfaces"],
                routes=parts["host"]["routes"],
                rules=parts["host"].get("rules"),
                sysctls=parts["host"].get("sysctls"),
                ruleset=ruleset,
                owner=owner,
            )
            rulesets.append(ruleset)
            hosts.append(host)
        row = models.Snapshot.objects.create(
            name=name,
            hostname=snap.hostname[:255],
            taken=snap.meta("time")[:40],
            text=text,
            notes=checked.notes,
            ruleset=rulesets[0],
            ruleset6=rulesets[1] if len(rulesets) > 1 else None,
            owner=owner,
            is_public=public,
        )
        if public and owner is not None:
            models.Ruleset.objects.filter(pk__in=[r.pk for r in rulesets]).update(is_public=True)
            models.HostProfile.objects.filter(pk__in=[h.pk for h in hosts]).update(is_public=True)
            for obj in (*rulesets, *hosts):
                obj.is_public = True
    return Imported(row, rulesets, hosts, checked.notes)


def snapshot_scenario(text: str, packet: dict[str, Any], family: str = "ipv4") -> Scenario:
    checked = check_snapshot(text)
    parts = checked.parts[family]
    return Scenario(
        ruleset_text=parts["ruleset"],
        ipsets_text=parts.get("ipsets"),
        nftables_text=parts.get("nftables"),
        family=family,
        host=parts["host"],
        packet=packet,
        name=checked.snapshot.hostname,
    )

"""python manage.py load_demo — the demo nodes of fixtures/demo, with traces.

Idempotent: a demo ruleset is found again by its name; when its files have
not changed it is kept, otherwise it is replaced.  Host profiles and saved
traces are updated in place, and every trace is computed by the engine now —
if the engine cannot trace a scenario the command fails and stores nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from netviz import models, store
from netviz.engine.host import Host
from netviz.engine.pipeline import state_from_options, trace_dicts
from netviz.engine.ruleset import Family
from netviz.fleet import load_checkset, load_node_file
from netviz.fleet_jobs import run_now
from netviz.scenario import load_scenario

FLEET_SUFFIX = " (demo fleet)"


def demo_dir() -> Path:
    return Path(settings.BASE_DIR) / "fixtures" / "demo"


def _read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def load_node(directory: Path) -> dict[str, Any]:
    meta = json.loads((directory / "meta.json").read_text())
    return {
        "name": meta["name"],
        "description": meta.get("description", ""),
        # A node has an iptables-save dump, an nft listing, or both.
        "source": _read(directory / "ruleset.rules"),
        "ipsets": _read(directory / "ipsets.ipset"),
        "nftables": _read(directory / "ruleset.nft"),
        "host": json.loads((directory / "host.json").read_text()),
        "scenarios": sorted((directory / "scenarios").glob("*.json")),
    }


class Command(BaseCommand):
    help = "Store the demo rulesets, host profiles and traces (idempotent)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dir", help="demo directory (default: fixtures/demo)")

    def handle(self, *args: Any, **options: Any) -> None:
        root = Path(options["dir"]) if options.get("dir") else demo_dir()
        nodes = sorted(p for p in root.iterdir() if (p / "meta.json").exists()) if root.is_dir() else []
        if not nodes:
            raise CommandError(f"no demo nodes under {root}")
        with transaction.atomic():
            for directory in nodes:
                self.load(load_node(directory))
            fleet_dir = root.parent / "fleet"
            if (fleet_dir / "checks.json").exists():
                self.load_fleet(fleet_dir)

    def load_fleet(self, directory: Path) -> None:
        """The demo fleet (fixtures/fleet): three kube-proxy nodes, the third
        without its kube-dns rule, the demo check set, and a finished run.
        Loading again keeps what is unchanged (and the runs made since)."""
        text = (directory / "checks.json").read_text()
        checkset, _ = models.CheckSet.objects.update_or_create(
            is_demo=True, defaults={"name": load_checkset(text).name, "text": text})
        fleet, _ = models.Fleet.objects.update_or_create(
            is_demo=True, name="Demo cluster",
            defaults={"description": "Three kube-proxy nodes of one cluster; "
                                     "node-3 lost its kube-dns rule."})
        keep = []
        for i, path in enumerate(sorted((directory / "nodes").glob("*.json"))):
            node = load_node_file(path)
            # The fleet's nodes are rulesets of their own (public, not listed
            # among the demo nodes).
            name = node.name + FLEET_SUFFIX
            ruleset = models.Ruleset.objects.filter(owner=None, is_demo=False, name=name).first()
            if ruleset is not None and ruleset.source != node.ruleset_text:
                ruleset.delete()
                ruleset = None
            if ruleset is None:
                ruleset = store.store_ruleset(name=name, source=node.ruleset_text,
                                              description="A node of the demo fleet.")
            host_dict = Host.from_dict(node.host, Family(ruleset.family)).to_dict()
            host, _ = models.HostProfile.objects.update_or_create(
                ruleset=ruleset, name=f"{node.name} host",
                defaults={"interfaces": host_dict["interfaces"], "routes": host_dict["routes"],
                          "is_public": True})
            fleet_node, _ = models.FleetNode.objects.update_or_create(
                fleet=fleet, name=node.name,
                defaults={"ruleset": ruleset, "host": host, "position": i})
            keep.append(fleet_node.pk)
        fleet.nodes.exclude(pk__in=keep).delete()
        run = fleet.runs.filter(checkset=checkset, status="done").first() or run_now(fleet, checkset)
        self.stdout.write(f"demo fleet \"{fleet.name}\": {len(keep)} nodes, "
                          f"{run.result['passed']} of {run.total} expectations hold")

    def load(self, node: dict[str, Any]) -> None:
        ruleset = models.Ruleset.objects.filter(is_demo=True, name=node["name"]).first()
        if ruleset is not None and (
            ruleset.source != node["source"]
            or ruleset.ipsets_source != node["ipsets"]
            or ruleset.nftables_source != node["nftables"]
        ):
            ruleset.delete()  # the files changed: store them afresh
            ruleset = None
        if ruleset is None:
            try:
                ruleset = store.store_ruleset(
                    name=node["name"],
                    source=node["source"],
                    ipsets_source=node["ipsets"],
                    nftables_source=node["nftables"],
                    description=node["description"],
                    is_demo=True,
                )
            except store.ParseError as exc:
                raise CommandError(f"{node['name']}: line {exc.line}: {exc.reason}") from exc
        elif ruleset.description != node["description"]:
            ruleset.description = node["description"]
            ruleset.save(update_fields=["description"])

        family = Family(ruleset.family)
        host_dict = Host.from_dict(node["host"], family).to_dict()
        host, _ = models.HostProfile.objects.update_or_create(
            ruleset=ruleset,
            name=f"{node['name']} host",
            defaults={"interfaces": host_dict["interfaces"], "routes": host_dict["routes"], "is_public": True},
        )

        parsed = store.load_ruleset(ruleset)
        nft = store.load_nftables(ruleset)
        titles = []
        for path in node["scenarios"]:
            scenario = load_scenario(path)
            title = scenario.name or path.stem
            titles.append(title)
            try:
                trace = trace_dicts(
                    parsed, scenario.host or node["host"], scenario.packet, family,
                    state_from_options(scenario.options or {}), nft=nft,
                )
            except Exception as exc:
                # No fake results: a scenario the engine cannot trace stops the load.
                raise CommandError(f"{path}: the engine could not trace it: {exc}") from exc
            models.SavedTrace.objects.update_or_create(
                ruleset=ruleset,
                title=title,
                defaults={
                    "host": host,
                    "packet": scenario.packet,
                    "options": scenario.options or {},
                    "result": trace.to_dict(),
                    "verdict": trace.verdict,
                    "is_public": True,
                },
            )
            self.stdout.write(f"  {trace.verdict:6} {title}")
        # Scenarios removed from the fixtures disappear from the demo too.
        models.SavedTrace.objects.filter(ruleset=ruleset).exclude(title__in=titles).delete()
        self.stdout.write(
            f"demo ruleset {ruleset.pk} \"{ruleset.name}\": {ruleset.rule_count} rules, "
            f"{len(titles)} traces"
        )

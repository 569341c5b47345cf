"""python manage.py import_snapshot FILE [--name NAME]: a netviz-collect
snapshot (docs/snapshot.md) becomes rulesets and host profiles, all or nothing."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from netviz.snapshots import SnapshotError, import_snapshot

from .import_dump import read_text


class Command(BaseCommand):
    help = "Store a netviz-collect snapshot: its rulesets, ipsets and host profiles (all or nothing)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="a snapshot written by netviz-collect")
        parser.add_argument("--name", default="", help="name of the ruleset (default: the node's host name)")

    def handle(self, *args: Any, **options: Any) -> None:
        path: str = options["file"]
        try:
            result = import_snapshot(read_text(path), name=options["name"])
        except SnapshotError as exc:
            # The compiler-style location lets editors jump to the line.
            self.stderr.write(f"{path}:{exc.line}: {exc.reason}")
            if exc.text:
                self.stderr.write(f"    {exc.text}")
            self.stderr.write("nothing was stored")
            raise SystemExit(1) from exc
        for ruleset, host in zip(result.rulesets, result.hosts, strict=True):
            self.stdout.write(
                f'stored ruleset {ruleset.pk} "{ruleset.name}" ({ruleset.family}): '
                f"{ruleset.chain_count} chains, {ruleset.rule_count} rules, "
                f"{ruleset.ipsets.count()} ipsets, host profile {host.pk} with "
                f"{len(host.interfaces)} interfaces"
            )
        for note in result.notes:
            self.stdout.write(f"note: {note}")

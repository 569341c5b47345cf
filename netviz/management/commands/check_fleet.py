"""python manage.py check_fleet CHECKS.json --snapshot NODE.json… [--json] [--junit OUT]

Run a check set (docs/fleet.md) against nodes, for CI: exit 0 when every
expectation holds on every node, 1 when one fails (each failure printed as
"node: check — why"), 2 when it cannot run (unreadable check set or node
file, a node whose ruleset does not parse).  A node file is a ruleset with
its host profile: {"name", "ruleset", "ipsets"?, "family"?, "host"}.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from netviz.fleet import CheckSetError, failures, load_checkset, load_node_file, matrix, run_node, to_junit


class Command(BaseCommand):
    help = "Check that a check set's expectations hold on every node (exit 0/1/2)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("checks", help="the check set (JSON)")
        parser.add_argument("--snapshot", nargs="+", required=True, metavar="FILE",
                            help="node files: a ruleset with its host profile")
        parser.add_argument("--json", action="store_true", help="print the results matrix as JSON")
        parser.add_argument("--junit", metavar="OUT", help="write JUnit XML to OUT")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            text = Path(options["checks"]).read_text(encoding="utf-8")
        except OSError as exc:
            self._cannot(f"cannot read {options['checks']}: {exc.strerror}")
        try:
            checkset = load_checkset(text)
            nodes = [load_node_file(path) for path in options["snapshot"]]
        except CheckSetError as exc:
            self._cannot(str(exc))
        results = [run_node(node, checkset.checks) for node in nodes]
        result = matrix(checkset, results)
        if options["junit"]:
            Path(options["junit"]).write_text(to_junit(result), encoding="utf-8")
        if options["json"]:
            self.stdout.write(json.dumps(result, indent=2, ensure_ascii=False))
        lines = failures(result)
        total = sum(len(n.get("cells", [])) for n in results)
        out = self.stderr if options["json"] else self.stdout
        for line in lines:
            out.write(line)
        if result["errors"]:
            out.write(f"cannot check {result['errors']} node(s)")
            sys.exit(2)
        out.write(f"{result['passed']} of {total} expectations hold on {len(nodes)} node(s)")
        sys.exit(1 if result["failed"] else 0)

    def _cannot(self, reason: str) -> None:
        self.stderr.write(f"cannot run: {reason}")
        sys.exit(2)

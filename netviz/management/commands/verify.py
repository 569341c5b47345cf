"""`manage.py verify SCENARIO.json`: the simulation against the real kernel.

Exit status: 0 when kernel and simulation agree, 1 when they differ, 2 when
the kernel cannot be asked here (not root, not Linux, tools missing, the
kernel refused the dump) — with the reason on stderr.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from netviz.engine.parser import ParseError
from netviz.engine.pipeline import PacketError
from netviz.kernel.check import check_scenario, render_text
from netviz.scenario import ScenarioError, load_scenario


class Command(BaseCommand):
    help = "Replay a scenario in a throw-away network namespace and compare the kernel's trace."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("scenario", help="scenario file (JSON, shared spec scenario.md)")
        parser.add_argument("--json", action="store_true", help="print both hop lists as JSON")
        parser.add_argument("--timeout", type=float, default=10.0,
                            help="seconds the kernel replay may take (default 10)")

    def handle(self, *args: Any, **opts: Any) -> None:
        try:
            scenario = load_scenario(opts["scenario"])
        except ScenarioError as exc:
            raise CommandError(str(exc)) from exc
        try:
            check = check_scenario(scenario, timeout=opts["timeout"])
        except ParseError as exc:
            raise CommandError(f"ruleset: {exc}") from exc
        except (PacketError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        if opts["json"]:
            self.stdout.write(json.dumps(check.to_dict(), indent=1))
        else:
            self.stdout.write(render_text(check), ending="")
        if not check.ran:
            self.stderr.write(f"verify: cannot ask the kernel here: {check.unavailable}")
            sys.exit(2)
        sys.exit(0 if check.agree else 1)

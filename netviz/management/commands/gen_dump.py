"""python manage.py gen_dump --services N --endpoints M [--calico-pods P] [--seed S] [-o FILE]"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, ClassVar

from django.core.management.base import BaseCommand, CommandError, CommandParser

from netviz.testing.gendump import generate_dump


class Command(BaseCommand):
    # Needs no database, URLs or apps: skip the system checks.
    requires_system_checks: ClassVar[list[str]] = []
    help = "Write a realistic kube-proxy (iptables mode) iptables-save dump, optionally with Calico pods."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--services", type=int, required=True, help="service ports")
        parser.add_argument("--endpoints", type=int, required=True, help="endpoints per service")
        parser.add_argument("--calico-pods", type=int, default=0, help="pods with Calico workload chains")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("-o", "--output", help="file to write (default: standard output)")

    def handle(self, *args: Any, **options: Any) -> None:
        services: int = options["services"]
        endpoints: int = options["endpoints"]
        pods: int = options["calico_pods"]
        if services < 0 or endpoints < 0 or pods < 0:
            raise CommandError("--services, --endpoints and --calico-pods must not be negative")
        if endpoints > 1000:
            raise CommandError("--endpoints: at most 1000 per service")
        dump = generate_dump(services, endpoints, calico_pods=pods, seed=options["seed"])
        out: str | None = options.get("output")
        if out:
            Path(out).write_text(dump.text)
            self.stderr.write(f"{out}: {dump.rule_count} rules, {len(dump.services)} services, {len(dump.pods)} pods")
        else:
            sys.stdout.write(dump.text)

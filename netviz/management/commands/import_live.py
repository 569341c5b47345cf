"""`manage.py import_live [--netns NAME] [--name NAME]`: store the running
host's (or a namespace's) iptables rules, ipsets and network config."""

from __future__ import annotations

import socket
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from netviz.engine.parser import ParseError
from netviz.kernel.live import LiveError, read_live, store_live


class Command(BaseCommand):
    help = "Read this host's (or a network namespace's) rules, sets, addresses and routes."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--netns", help="read this network namespace instead of the host")
        parser.add_argument("--name", help="name of the stored ruleset (default: host name)")
        parser.add_argument("--family", choices=["ipv4", "ipv6"], default="ipv4")
        parser.add_argument("--owner", help="username owning the import (private to them); "
                            "without it the ruleset is public like an anonymous upload")
        parser.add_argument("--no-iptc", action="store_true",
                            help="do not use python-iptables for the legacy backend")

    def handle(self, *args: Any, **opts: Any) -> None:
        owner = None
        if opts["owner"]:
            try:
                owner = get_user_model().objects.get(username=opts["owner"])
            except get_user_model().DoesNotExist as exc:
                raise CommandError(f"no user {opts['owner']!r}") from exc
        try:
            snap = read_live(opts["netns"], opts["family"], use_iptc=not opts["no_iptc"])
        except LiveError as exc:
            raise CommandError(str(exc)) from exc
        if snap.backend == "none":
            raise CommandError("no iptables rules found: " + "; ".join(snap.notes))
        name = opts["name"] or (f"{opts['netns']} (netns)" if opts["netns"] else socket.gethostname())
        try:
            ruleset, host = store_live(snap, name, owner)
        except ParseError as exc:
            raise CommandError(f"the live ruleset does not parse: {exc}") from exc
        self.stdout.write(
            f"stored ruleset {ruleset.pk} {name!r}: {ruleset.rule_count} rules, "
            f"{snap.backend} backend read with {snap.reader}"
        )
        self.stdout.write(
            f"stored host profile {host.pk}: {len(snap.interfaces)} interfaces, "
            f"{len(snap.routes)} routes"
        )
        for note in snap.notes:
            self.stdout.write(f"note: {note}")

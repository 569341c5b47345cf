"""python manage.py import_dump [FILE] [--nftables FILE] [--ipsets FILE] [--name NAME] [--host JSON]"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from netviz import store
from netviz.engine.host import Host
from netviz.engine.ruleset import Family


def read_text(path: str) -> str:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise CommandError(f"{path}: {exc.strerror}") from exc
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def read_host(path: str, family: str) -> dict[str, Any]:
    """A host profile from a scenario file (its `host` object) or a bare
    `{"interfaces": […], "routes": […]}` file, validated by the engine."""
    try:
        data = json.loads(read_text(path))
    except json.JSONDecodeError as exc:
        raise CommandError(f"{path}:{exc.lineno}:{exc.colno}: {exc.msg}") from exc
    if isinstance(data, dict) and "host" in data:
        data = data["host"]
    try:
        host = Host.from_dict(data, Family(family))
    except ValueError as exc:
        raise CommandError(f"{path}: {exc}") from exc
    return host.to_dict()


def _nft_summary(ruleset: Any) -> str:
    nft = store.load_nftables(ruleset)
    if nft is None:
        return ""
    count = len(nft.tables)
    managed = sum(1 for t in nft.tables if t.managed)
    return f", {count} nft table{'s' if count != 1 else ''}" + (
        f" ({managed} of them managed by iptables-nft, taken from the dump)" if managed else ""
    )


class Command(BaseCommand):
    help = "Parse an iptables-save dump and/or an nft listing and store them (all or nothing)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", nargs="?", help="iptables-save / ip6tables-save output")
        parser.add_argument(
            "--nftables", help="`nft list ruleset` or `nft -j list ruleset` output (with or without FILE)"
        )
        parser.add_argument("--ipsets", help="`ipset save` output")
        parser.add_argument("--name", help="name of the ruleset (default: the file name)")
        parser.add_argument("--family", choices=["ipv4", "ipv6"], help="default: detect")
        parser.add_argument(
            "--host", help="scenario JSON or host JSON with interfaces and routes"
        )
        parser.add_argument("--description", default="")

    def handle(self, *args: Any, **options: Any) -> None:
        path: str | None = options.get("file")
        nft_path: str | None = options.get("nftables")
        if not path and not nft_path:
            raise CommandError("give an iptables-save FILE, --nftables FILE, or both")
        source = read_text(path) if path else ""
        nftables = read_text(nft_path) if nft_path else ""
        ipsets_path: str | None = options.get("ipsets")
        ipsets = read_text(ipsets_path) if ipsets_path else ""
        verbose = int(options.get("verbosity", 1)) >= 2

        def progress(done: int, total: int) -> None:
            if verbose and total:
                self.stderr.write(f"stored {done}/{total} rules")

        try:
            with transaction.atomic():
                ruleset = store.store_ruleset(
                    name=options.get("name") or Path(path or nft_path or "").name,
                    source=source,
                    ipsets_source=ipsets,
                    nftables_source=nftables,
                    family=options.get("family"),
                    description=options["description"],
                    progress=progress,
                )
                host = None
                if options.get("host"):
                    host_dict = read_host(options["host"], ruleset.family)
                    host = store.store_host(
                        name=Path(options["host"]).stem,
                        interfaces=host_dict["interfaces"],
                        routes=host_dict["routes"],
                        ruleset=ruleset,
                    )
        except store.ParseError as exc:
            origin = getattr(exc, "origin", "")
            where = {"ipsets": ipsets_path, "nftables": nft_path}.get(origin) or path or nft_path
            json_path = getattr(exc, "json_path", "")
            if json_path:
                # A JSON listing: the place is a path into the document.
                self.stderr.write(f"{where}: at {json_path}: {exc.reason}")
            else:
                # The compiler-style location lets editors jump to the line.
                self.stderr.write(f"{where}:{exc.line}:{exc.column}: {exc.reason}")
            if exc.text:
                self.stderr.write(f"    {exc.text}")
                if exc.column:
                    self.stderr.write("    " + " " * (exc.column - 1) + "^")
            self.stderr.write("nothing was stored")
            raise SystemExit(1) from exc

        tables = ruleset.tables.count()
        ipset_count = ruleset.ipsets.count()
        self.stdout.write(
            f'stored ruleset {ruleset.pk} "{ruleset.name}": '
            f"{tables} table{'s' if tables != 1 else ''}, "
            f"{ruleset.chain_count} chain{'s' if ruleset.chain_count != 1 else ''}, "
            f"{ruleset.rule_count} rule{'s' if ruleset.rule_count != 1 else ''}, "
            f"{ipset_count} ipset{'s' if ipset_count != 1 else ''}"
            + _nft_summary(ruleset)
            + (f", host profile {host.pk} \"{host.name}\"" if host else "")
        )

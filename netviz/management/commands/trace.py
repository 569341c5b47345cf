"""python manage.py trace SCENARIO.json [--json]
python manage.py trace --ruleset FILE [--ipsets FILE] [--host FILE] --packet "tcp 10.0.0.1:1234 > 10.0.0.2:80 in eth0"
python manage.py trace --snapshot FILE --packet "…"
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from netviz.engine.conversation import trace_conversation
from netviz.engine.nft.model import NftParseError
from netviz.engine.nft.parse_json import parse_nft
from netviz.engine.packetspec import PacketSpecError, parse_packet_spec
from netviz.engine.parser import ParseError, parse_ruleset
from netviz.engine.pipeline import state_from_options, trace_dicts
from netviz.engine.report import render_conversation_text, render_text
from netviz.engine.ruleset import Family
from netviz.scenario import Scenario, ScenarioError, load_scenario, scenario_from_dict
from netviz.snapshots import SnapshotError, snapshot_scenario

from .import_dump import read_text


class Command(BaseCommand):
    help = "Trace one packet through an iptables ruleset, as the kernel would."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("scenario", nargs="?", help="scenario file (JSON, see the README)")
        parser.add_argument("--json", action="store_true", help="print the trace as JSON")
        parser.add_argument("--ruleset", help="iptables-save file (instead of a scenario)")
        parser.add_argument("--ipsets", help="ipset save file")
        parser.add_argument("--nftables", help="nft list ruleset file (text or nft -j JSON), alone or beside --ruleset")
        parser.add_argument(
            "--snapshot", help="a netviz-collect snapshot: rules, ipsets and host in one file"
        )
        parser.add_argument(
            "--host",
            help="host profile: a JSON file with interfaces and routes (or a scenario file)",
        )
        parser.add_argument(
            "--packet",
            help='the packet, e.g. "tcp 10.0.0.1:1234 > 10.0.0.2:80 in eth0"',
        )
        parser.add_argument("--family", choices=["ipv4", "ipv6"])
        parser.add_argument("--seed", type=int, help="seed for statistic --mode random rules")

    def handle(self, *args: Any, **opts: Any) -> None:
        scenario = self._scenario(opts)
        family = Family(scenario.family)
        try:
            ruleset = parse_ruleset(scenario.ruleset_text, scenario.ipsets_text, family=family)
        except ParseError as exc:
            raise CommandError(f"ruleset: {exc}\n    {exc.text}") from exc
        nft = None
        if scenario.nftables_text:
            try:
                nft = parse_nft(scenario.nftables_text)
            except NftParseError as exc:
                raise CommandError(f"nftables: {exc}") from exc
            for note in nft.notes:
                self.stderr.write(f"note: {note}")
        options = dict(scenario.options)
        if opts["seed"] is not None:
            options["seed"] = opts["seed"]
        try:
            if scenario.packets:
                conv = trace_conversation(ruleset, scenario.host, scenario.packet, scenario.packets,
                                          family, state_from_options(options), nft=nft)
            else:
                trace = trace_dicts(ruleset, scenario.host, scenario.packet, family, state_from_options(options), nft=nft)
        except ValueError as exc:  # a bad host profile or packet (PacketError is one)
            raise CommandError(str(exc)) from exc
        if scenario.packets:
            if opts["json"]:
                self.stdout.write(json.dumps(conv.trace_json(), indent=1))
            else:
                self.stdout.write(render_conversation_text(conv, ruleset))
            return
        if opts["json"]:
            self.stdout.write(json.dumps(trace.to_dict(), indent=1))
        else:
            self.stdout.write(render_text(trace, ruleset))

    def _scenario(self, opts: dict[str, Any]) -> Scenario:
        if opts["snapshot"]:
            return self._from_snapshot(opts)
        try:
            if opts["scenario"]:
                if opts["ruleset"] or opts["packet"]:
                    raise CommandError("give a scenario file, or --ruleset and --packet, not both")
                scenario = load_scenario(opts["scenario"])
                if opts["nftables"]:
                    scenario = replace(scenario, nftables_text=read_text(opts["nftables"]))
                return scenario
            if not ((opts["ruleset"] or opts["nftables"]) and opts["packet"]):
                raise CommandError("give a scenario file, or --ruleset FILE and/or --nftables FILE, and --packet SPEC")
            packet = parse_packet_spec(opts["packet"])
            host = self._host(opts.get("host"), packet)
            data: dict[str, Any] = {"host": host, "packet": packet}
            if opts["ruleset"]:
                data["ruleset"] = str(Path(opts["ruleset"]).resolve())
            if opts["nftables"]:
                data["nftables"] = str(Path(opts["nftables"]).resolve())
            if opts["ipsets"]:
                data["ipsets"] = str(Path(opts["ipsets"]).resolve())
            if opts["family"]:
                data["family"] = opts["family"]
            elif ":" in packet["src"]:
                data["family"] = "ipv6"
            return scenario_from_dict(data)
        except (ScenarioError, PacketSpecError) as exc:
            raise CommandError(str(exc)) from exc

    def _from_snapshot(self, opts: dict[str, Any]) -> Scenario:
        if opts["scenario"] or opts["ruleset"] or opts["host"] or opts["ipsets"]:
            raise CommandError("--snapshot holds the rules, ipsets and host: give it with --packet only")
        if not opts["packet"]:
            raise CommandError("--snapshot needs --packet SPEC")
        try:
            packet = parse_packet_spec(opts["packet"])
        except PacketSpecError as exc:
            raise CommandError(str(exc)) from exc
        family = opts["family"] or ("ipv6" if ":" in packet["src"] else "ipv4")
        path = opts["snapshot"]
        try:
            return snapshot_scenario(read_text(path), packet, family)
        except SnapshotError as exc:
            raise CommandError(f"{path}:{exc.line}: {exc.reason}") from exc

    def _host(self, path: str | None, packet: dict[str, Any]) -> dict[str, Any]:
        if path:
            try:
                data = json.loads(Path(path).read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as exc:
                raise CommandError(f"--host {path}: {exc}") from exc
            return data.get("host", data) if isinstance(data, dict) else {}
        # No host profile: the input interface exists and everything not
        # local is routed back out of it, so the trace can still be walked.
        iface = packet.get("in_iface") or "eth0"
        self.stderr.write(
            f"note: no --host given; assuming one interface {iface} and a default route out of it"
        )
        return {"interfaces": [{"name": iface, "addrs": []}], "routes": [f"default dev {iface}"]}

"""python manage.py load_lessons — the prepared comparisons (fixtures/demo/
calico-natoutgoing) and the shipped lessons (fixtures/lessons).

Idempotent: rulesets are found again by name (replaced when their files
changed), comparisons and lessons by slug (their steps are rewritten).  Every
scenario is traced by the engine while loading, so a fixture the engine
cannot trace stops the load and stores nothing.  No result is stored: pages
trace again when they are drawn.
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
from netviz.engine.pipeline import trace_scenario
from netviz.engine.ruleset import Family
from netviz.scenario import (
    Scenario,
    ScenarioError,
    load_scenario,
    scenario_from_dict,
    scenario_to_dict,
)


def fixtures_dir() -> Path:
    return Path(settings.BASE_DIR) / "fixtures"


def _ruleset(name: str, source: str, ipsets: str, description: str) -> models.Ruleset:
    ruleset = models.Ruleset.objects.filter(is_demo=True, name=name).first()
    if ruleset is not None and (ruleset.source != source or ruleset.ipsets_source != ipsets):
        ruleset.delete()
        ruleset = None
    if ruleset is None:
        try:
            ruleset = store.store_ruleset(
                name=name, source=source, ipsets_source=ipsets, description=description, is_demo=True
            )
        except store.ParseError as exc:
            raise CommandError(f"{name}: line {exc.line}: {exc.reason}") from exc
    return ruleset


def load_comparison_set(directory: Path) -> dict[str, models.Comparison]:
    """One compare.json: two demo rulesets sharing a host, and the packets to compare."""
    meta = json.loads((directory / "compare.json").read_text())
    host = json.loads((directory / meta.get("host", "host.json")).read_text())
    sides: dict[str, tuple[models.Ruleset, models.HostProfile, str]] = {}
    for key in ("left", "right"):
        side = meta[key]
        d = directory / side["dir"]
        ipsets = (d / "ipsets.ipset").read_text() if (d / "ipsets.ipset").exists() else ""
        ruleset = _ruleset(side["name"], (d / "ruleset.rules").read_text(), ipsets,
                           meta.get("description", ""))
        host_dict = Host.from_dict(host, Family(ruleset.family)).to_dict()
        profile, _ = models.HostProfile.objects.update_or_create(
            ruleset=ruleset, name=f"{side['name']} host",
            defaults={"interfaces": host_dict["interfaces"], "routes": host_dict["routes"],
                      "is_public": True},
        )
        sides[key] = (ruleset, profile, side.get("label", side["name"]))
    out: dict[str, models.Comparison] = {}
    for item in meta["comparisons"]:
        for key in ("left", "right"):
            ruleset, _, _ = sides[key]
            _check(Scenario(ruleset_text=ruleset.source, ipsets_text=ruleset.ipsets_source or None,
                            family=ruleset.family, host=host, packet=item["packet"]),
                   f"{directory.name}/{item['slug']} ({key})")
        slug = f"{directory.name}/{item['slug']}"[:100]
        (lrs, lhost, llabel), (rrs, rhost, rlabel) = sides["left"], sides["right"]
        comparison, _ = models.Comparison.objects.update_or_create(
            slug=slug, is_demo=True,
            defaults={
                "title": item["title"], "description": item.get("question", ""),
                "left_ruleset": lrs, "right_ruleset": rrs,
                "left_label": llabel, "right_label": rlabel,
                "left_host": lhost.as_scenario_host(), "right_host": rhost.as_scenario_host(),
                "left_packet": item["packet"], "right_packet": item.get("right_packet", item["packet"]),
                "options": {}, "is_public": True, "owner": None,
            },
        )
        out[slug] = comparison
    return out


def _check(scenario: Scenario, what: str) -> None:
    try:
        trace_scenario(scenario)
    except Exception as exc:
        # No fake results: a scenario the engine cannot trace stops the load.
        raise CommandError(f"{what}: the engine could not trace it: {exc}") from exc


def step_scenario(spec: dict[str, Any], base: Path) -> dict[str, Any]:
    """A lesson's scenario reference → an inline scenario (scenario.md format):
    `scenario` is a path relative to the lesson file; `packet` overrides
    fields of the scenario's packet."""
    try:
        scenario = load_scenario(base / spec["scenario"])
    except ScenarioError as exc:
        raise CommandError(str(exc)) from exc
    data = scenario_to_dict(scenario)
    if spec.get("packet"):
        data["packet"] = {**data["packet"], **spec["packet"]}
    _check(scenario_from_dict(data), spec["scenario"])
    return data


def load_lesson(path: Path, comparisons: dict[str, models.Comparison]) -> models.Lesson:
    meta = json.loads(path.read_text())
    slug = path.stem[:100]
    lesson, _ = models.Lesson.objects.update_or_create(
        slug=slug,
        defaults={"title": meta["title"], "description": meta.get("description", ""),
                  "owner": None, "is_public": True},
    )
    lesson.steps.all().delete()
    for position, spec in enumerate(meta["steps"]):
        step = models.LessonStep(
            lesson=lesson, position=position, title=spec.get("title", ""),
            notes=spec.get("notes", ""), question=spec.get("question", ""), answer=spec.get("answer", ""),
        )
        if "comparison" in spec:
            if spec["comparison"] not in comparisons:
                raise CommandError(f"{path.name}: no prepared comparison {spec['comparison']!r}")
            step.comparison = comparisons[spec["comparison"]]
        elif "compare" in spec:
            c = spec["compare"]
            step.scenario = {
                "left": step_scenario(c["left"], path.parent),
                "right": step_scenario(c["right"], path.parent),
                "labels": c.get("labels", ["left", "right"]),
            }
        else:
            step.scenario = step_scenario(spec, path.parent)
        step.save()
    return lesson


class Command(BaseCommand):
    help = "Store the prepared comparisons and the shipped lessons (idempotent)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dir", help="fixtures directory (default: fixtures/)")

    def handle(self, *args: Any, **options: Any) -> None:
        root = Path(options["dir"]) if options.get("dir") else fixtures_dir()
        demo = root / "demo"
        sets = sorted(p for p in demo.iterdir() if (p / "compare.json").exists()) if demo.is_dir() else []
        lesson_files = sorted((root / "lessons").glob("*.json"))
        if not sets and not lesson_files:
            raise CommandError(f"no comparisons or lessons under {root}")
        with transaction.atomic():
            comparisons: dict[str, models.Comparison] = {}
            for directory in sets:
                comparisons.update(load_comparison_set(directory))
            for slug, c in comparisons.items():
                self.stdout.write(f"  comparison {slug}: {c.title}")
            for path in lesson_files:
                lesson = load_lesson(path, comparisons)
                self.stdout.write(f"  lesson {lesson.slug}: {lesson.title} ({lesson.steps.count()} steps)")

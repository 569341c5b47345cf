"""Parsed dumps, host profiles and saved traces.

The dump text is kept verbatim (Ruleset.source) so a ruleset can always be
re-parsed into the engine's frozen objects; the Table/Chain/Rule rows exist
for browsing, searching and counting in the database.
"""

from __future__ import annotations

import secrets
from typing import Any

from django.conf import settings
from django.db import models
from django.urls import reverse


def new_token() -> str:
    return secrets.token_urlsafe(16)


_U64 = 2**64


def u64_to_db(value: int | None) -> int | None:
    """A kernel counter (u64) as the signed 64-bit integer SQLite and
    PostgreSQL store: the same 64 bits, as the kernel's s64/u64 casts read
    them.  Values up to 2^63-1 are stored as they are."""
    if value is not None and value >= _U64 // 2:
        return value - _U64
    return value


class CounterField(models.BigIntegerField):  # type: ignore[type-arg]
    """A u64 counter in a bigint column (see u64_to_db).  The column is a
    plain bigint, so migrations see a BigIntegerField."""

    def get_db_prep_value(self, value: Any, connection: Any, prepared: bool = False) -> Any:
        value = super().get_db_prep_value(value, connection, prepared)
        return u64_to_db(value) if isinstance(value, int) else value

    def from_db_value(self, value: int | None, expression: Any, connection: Any) -> int | None:
        if value is not None and value < 0:
            return value + _U64
        return value

    def deconstruct(self) -> Any:
        name, _path, args, kwargs = super().deconstruct()
        return name, "django.db.models.BigIntegerField", args, kwargs


class Owned(models.Model):
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE
    )
    # Demo data and uploads of anonymous users are public; an owner's uploads
    # are private unless shared by the read-only link.
    is_public = models.BooleanField(default=True)
    share_token = models.CharField(max_length=32, default=new_token, unique=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        abstract = True


class Ruleset(Owned):
    FAMILIES = [("ipv4", "IPv4"), ("ipv6", "IPv6")]

    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    family = models.CharField(max_length=4, choices=FAMILIES, default="ipv4")
    source = models.TextField(blank=True)  # the iptables-save text as uploaded
    ipsets_source = models.TextField(blank=True)  # the `ipset save` text as uploaded
    # `nft list ruleset` text or `nft -j list ruleset` JSON, as uploaded; a
    # node may come with it, with `source`, or with both.
    nftables_source = models.TextField(blank=True)
    rule_count = models.PositiveIntegerField(default=0)
    chain_count = models.PositiveIntegerField(default=0)
    is_demo = models.BooleanField(default=False)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("netviz:ruleset", args=[self.pk])


class Table(models.Model):
    ruleset = models.ForeignKey(Ruleset, on_delete=models.CASCADE, related_name="tables")
    name = models.CharField(max_length=16)
    line = models.PositiveIntegerField()
    position = models.PositiveIntegerField()

    class Meta:
        ordering = ["position"]
        constraints = [
            models.UniqueConstraint(fields=["ruleset", "name"], name="unique_table")
        ]


class Chain(models.Model):
    table = models.ForeignKey(Table, on_delete=models.CASCADE, related_name="chains")
    name = models.CharField(max_length=64)
    policy = models.CharField(max_length=8, blank=True)  # "" for user chains
    builtin = models.BooleanField(default=False)
    line = models.PositiveIntegerField()
    position = models.PositiveIntegerField()
    packets = CounterField(null=True)
    bytes = CounterField(null=True)

    class Meta:
        ordering = ["position"]
        constraints = [
            models.UniqueConstraint(fields=["table", "name"], name="unique_chain")
        ]


class Rule(models.Model):
    chain = models.ForeignKey(Chain, on_delete=models.CASCADE, related_name="rules")
    index = models.PositiveIntegerField()  # 1-based position in the chain
    line = models.PositiveIntegerField()  # source line in Ruleset.source
    text = models.TextField()
    target = models.CharField(max_length=64, blank=True)
    goto = models.BooleanField(default=False)
    comment = models.TextField(blank=True)
    packets = CounterField(null=True)
    bytes = CounterField(null=True)

    class Meta:
        ordering = ["index"]


class IPSet(models.Model):
    ruleset = models.ForeignKey(Ruleset, on_delete=models.CASCADE, related_name="ipsets")
    name = models.CharField(max_length=64)
    type = models.CharField(max_length=32)
    family = models.CharField(max_length=8, default="inet")
    line = models.PositiveIntegerField()
    member_count = models.PositiveIntegerField(default=0)
    members = models.JSONField(default=list)  # ["10.0.0.1,tcp:80", …] as saved

    class Meta:
        ordering = ["name"]


class HostProfile(Owned):
    """Interfaces, addresses and routes: the scenario's `host` object."""

    name = models.CharField(max_length=200)
    ruleset = models.ForeignKey(
        Ruleset, null=True, blank=True, on_delete=models.CASCADE, related_name="hosts"
    )
    interfaces = models.JSONField(default=list)  # [{"name": "eth0", "addrs": ["10.0.0.1/24"]}]
    routes = models.JSONField(default=list)  # ["default via 10.0.0.254 dev eth0"]
    rules = models.JSONField(default=list)  # ["from all fwmark 0x4000 lookup 100"], beyond the defaults
    sysctls = models.JSONField(default=dict)  # {"net.ipv4.conf.all.rp_filter": "1"}, as sysctl -a names them

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def as_scenario_host(self) -> dict[str, object]:
        host: dict[str, object] = {"interfaces": self.interfaces, "routes": self.routes}
        # Absent keys mean the defaults (scenario-v2 §1), so leave them out.
        if self.rules:
            host["rules"] = self.rules
        if self.sysctls:
            host["sysctls"] = self.sysctls
        return host


class SavedTrace(Owned):
    title = models.CharField(max_length=200, blank=True)
    ruleset = models.ForeignKey(Ruleset, on_delete=models.CASCADE, related_name="traces")
    host = models.ForeignKey(HostProfile, null=True, blank=True, on_delete=models.SET_NULL)
    packet = models.JSONField()  # the scenario's `packet` object
    options = models.JSONField(default=dict)  # seed, statistic choices
    result = models.JSONField(default=dict)  # Trace.to_dict() when saved
    verdict = models.CharField(max_length=8, blank=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return self.title or f"trace {self.pk}"


class Comparison(Owned):
    """Two traces side by side: two rulesets (and hosts) and one packet, or one
    ruleset and two packets.  Each side is stored as its inputs, never as a
    result: the page recomputes both traces with the engine."""

    title = models.CharField(max_length=200, blank=True)
    description = models.TextField(blank=True)
    left_ruleset = models.ForeignKey(
        Ruleset, on_delete=models.CASCADE, related_name="comparisons_left"
    )
    right_ruleset = models.ForeignKey(
        Ruleset, on_delete=models.CASCADE, related_name="comparisons_right"
    )
    left_label = models.CharField(max_length=100, blank=True)
    right_label = models.CharField(max_length=100, blank=True)
    left_host = models.JSONField(default=dict)  # the scenario's `host` object
    right_host = models.JSONField(default=dict)
    left_packet = models.JSONField(default=dict)  # the scenario's `packet` object
    right_packet = models.JSONField(default=dict)
    options = models.JSONField(default=dict)  # seed, statistic choices, the permalink query
    is_demo = models.BooleanField(default=False)
    slug = models.SlugField(max_length=100, blank=True)  # demo comparisons are found again by it

    class Meta:
        ordering = ("-created",)

    def __str__(self) -> str:
        return self.title or f"comparison {self.pk}"


class Lesson(Owned):
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    slug = models.SlugField(max_length=100, blank=True)  # shipped lessons are found again by it

    class Meta:
        ordering = ("title",)

    def __str__(self) -> str:
        return self.title


class LessonStep(models.Model):
    """One step of a lesson: a scenario (inline, scenario.md format), a saved
    trace or a comparison, with what the trainer says and asks about it."""

    lesson = models.ForeignKey(Lesson, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveIntegerField(default=0)
    title = models.CharField(max_length=200, blank=True)
    scenario = models.JSONField(null=True, blank=True)
    saved_trace = models.ForeignKey(
        SavedTrace, null=True, blank=True, on_delete=models.CASCADE, related_name="lesson_steps"
    )
    comparison = models.ForeignKey(
        Comparison, null=True, blank=True, on_delete=models.CASCADE, related_name="lesson_steps"
    )
    notes = models.TextField(blank=True)  # the trainer's notes
    question = models.TextField(blank=True)
    answer = models.TextField(blank=True)

    class Meta:
        ordering = ("position", "pk")

    def __str__(self) -> str:
        return self.title or f"step {self.position + 1}"

    @property
    def kind(self) -> str:
        if self.comparison_id is not None:
            return "comparison"
        if self.saved_trace_id is not None:
            return "trace"
        return "scenario"


class Job(models.Model):
    """One piece of long work run by a worker (netviz/jobs.py): a kernel check,
    a live read, a big import, a fleet run.  The queue itself is
    django-tasks; this row is what the pages show and what dedupes."""

    QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
    STATUSES = [(s, s) for s in (QUEUED, RUNNING, DONE, FAILED)]
    ACTIVE = (QUEUED, RUNNING)

    kind = models.CharField(max_length=32)
    title = models.CharField(max_length=200, blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE
    )
    status = models.CharField(max_length=8, choices=STATUSES, default=QUEUED)
    # The same request (kind + inputs) never runs twice at once: a second
    # submit while one is queued or running gets the first (constraint below).
    dedupe_key = models.CharField(max_length=200, blank=True)
    params = models.JSONField(default=dict)
    result = models.JSONField(default=dict)
    error = models.TextField(blank=True)
    stage = models.CharField(max_length=200, blank=True)  # "namespaces built", "parsed 40%"…
    done = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(default=0)
    attempts = models.PositiveIntegerField(default=0)
    task_id = models.CharField(max_length=64, blank=True)
    worker = models.CharField(max_length=100, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)
    heartbeat = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created", "-pk")
        constraints = [
            models.UniqueConstraint(
                fields=["dedupe_key"],
                condition=models.Q(status__in=["queued", "running"]) & ~models.Q(dedupe_key=""),
                name="one_active_job_per_key",
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk} ({self.status})"

    def get_absolute_url(self) -> str:
        return reverse("netviz:job", args=[self.pk])

    @property
    def finished_ok(self) -> bool:
        return self.status == self.DONE

    @property
    def active(self) -> bool:
        return self.status in self.ACTIVE

    @property
    def percent(self) -> int | None:
        if not self.total:
            return None
        return min(100, int(100 * self.done / self.total))


class Snapshot(Owned):
    """A node snapshot as `netviz-collect` wrote it (docs/snapshot.md), and
    the rulesets and host profiles it became."""

    name = models.CharField(max_length=200)
    hostname = models.CharField(max_length=255, blank=True)
    taken = models.CharField(max_length=40, blank=True)  # the collector's `time:` line
    text = models.TextField()
    notes = models.JSONField(default=list)  # what was skipped or left out, in words
    ruleset = models.ForeignKey(
        Ruleset, null=True, blank=True, on_delete=models.SET_NULL, related_name="snapshots"
    )
    ruleset6 = models.ForeignKey(
        Ruleset, null=True, blank=True, on_delete=models.SET_NULL, related_name="snapshots6"
    )

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return self.name


class ApiToken(models.Model):
    """A personal API token.  Only its SHA-256 is stored: the token itself is
    shown once, when it is made (it is random and long, so a fast hash is
    enough; nothing to brute-force)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16)  # the first characters, to tell tokens apart
    digest = models.CharField(max_length=64, unique=True)
    created = models.DateTimeField(auto_now_add=True)
    last_used = models.DateTimeField(null=True, blank=True)
    revoked = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class CheckSet(Owned):
    """A check set (docs/fleet.md): named packets and what must happen."""

    name = models.CharField(max_length=200)
    text = models.TextField()  # the JSON as written
    is_demo = models.BooleanField(default=False)

    class Meta:
        ordering = ("name", "pk")

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("netviz:checkset", args=[self.pk])


class Fleet(Owned):
    """A named group of nodes: rulesets with their host profiles."""

    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    is_demo = models.BooleanField(default=False)

    class Meta:
        ordering = ("name", "pk")

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("netviz:fleet", args=[self.pk])


class FleetNode(models.Model):
    fleet = models.ForeignKey(Fleet, on_delete=models.CASCADE, related_name="nodes")
    name = models.CharField(max_length=200)
    ruleset = models.ForeignKey(Ruleset, on_delete=models.CASCADE, related_name="+")
    host = models.ForeignKey(HostProfile, null=True, blank=True, on_delete=models.SET_NULL,
                             related_name="+")
    position = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ("position", "pk")

    def __str__(self) -> str:
        return self.name


class FleetRun(models.Model):
    """One run of a check set against a fleet.  Its parts are jobs
    (kind fleet_part) that workers take in parallel; `result` is the matrix
    once every part has finished (netviz/fleet_jobs.py)."""

    fleet = models.ForeignKey(Fleet, on_delete=models.CASCADE, related_name="runs")
    checkset = models.ForeignKey(CheckSet, null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="runs")
    checkset_name = models.CharField(max_length=200)
    checkset_text = models.TextField()  # the checks as they were when run
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE
    )
    status = models.CharField(max_length=8, default="running")  # running, done, failed
    total = models.PositiveIntegerField(default=0)  # nodes × checks
    result = models.JSONField(default=dict)
    error = models.TextField(blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("-created", "-pk")

    def __str__(self) -> str:
        return f"run {self.pk} of {self.checkset_name} on {self.fleet}"

    def get_absolute_url(self) -> str:
        return reverse("netviz:fleet_run", args=[self.pk])

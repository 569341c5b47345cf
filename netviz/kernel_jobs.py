"""Job handlers that need the kernel (queue "kernel": only the worker that
holds CAP_NET_ADMIN takes them): kernel checks and live reads."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model

from netviz.engine.parser import ParseError
from netviz.jobs import JobError, Progress, handler
from netviz.kernel.check import KernelCheck, check_scenario
from netviz.kernel.live import LiveError, read_live, store_live
from netviz.models import Job, Ruleset
from netviz.scenario import Scenario


def check_summary(check: KernelCheck) -> dict[str, Any]:
    """What the kernel check partial shows, as JSON for the job row."""
    out: dict[str, Any] = {
        "ran": check.ran, "agree": check.agree, "unavailable": check.unavailable,
        "differences": check.differences, "verdicts_agree": check.verdicts_agree,
        "rows": [{"index": r.index, "same": r.same, "kernel_text": r.kernel_text,
                  "engine_text": r.engine_text} for r in check.rows],
        "engine": {"verdict": check.engine.verdict if check.engine else ""},
    }
    if check.kernel is not None:
        out["kernel"] = {"verdict": check.kernel.verdict, "seconds": check.kernel.seconds,
                         "sent_with": check.kernel.sent_with, "raw": list(check.kernel.raw)}
    return out


@handler("kernel_check", queue="kernel")
def kernel_check(job: Job, progress: Progress) -> dict[str, Any]:
    params = job.params
    try:
        ruleset = Ruleset.objects.get(pk=params["ruleset"])
    except Ruleset.DoesNotExist:
        raise JobError("the ruleset was deleted") from None
    scenario = Scenario(
        ruleset_text=ruleset.source, ipsets_text=ruleset.ipsets_source or None,
        nftables_text=ruleset.nftables_source or None, family=ruleset.family, host=params.get("host") or {}, packet=params["packet"],
        options=params.get("options") or {}, name=ruleset.name,
    )
    progress("tracing in the simulation")
    check = check_scenario(scenario, progress=progress)
    return check_summary(check)


@handler("live_read", queue="kernel")
def live_read(job: Job, progress: Progress) -> dict[str, Any]:
    params = job.params
    progress("reading the rules")
    try:
        snap = read_live(params.get("netns") or None, params.get("family", "ipv4"))
    except LiveError as exc:
        raise JobError(str(exc)) from None
    if snap.backend == "none":
        raise JobError("No iptables rules found. " + " ".join(snap.notes))
    progress("storing the rules")
    owner = get_user_model().objects.filter(pk=job.owner_id).first()
    try:
        ruleset, _host = store_live(snap, params["name"], owner=owner)
    except ParseError as exc:
        raise JobError(f"The rules read do not parse: {exc}") from None
    return {"ruleset": ruleset.pk, "url": ruleset.get_absolute_url(),
            "message": f"Read {ruleset.rule_count} rules from the {snap.backend} backend "
                       f"with {snap.reader}.", "notes": list(snap.notes)}

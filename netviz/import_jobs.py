"""Big uploads as jobs (queue "default", no privilege needed): parse, then
store the rows with progress, as the upload page would in the request."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction

from netviz import models, store
from netviz.jobs import JobError, Progress, handler
from netviz.models import Job


@handler("import_dump")
def import_dump(job: Job, progress: Progress) -> dict[str, Any]:
    data = job.params
    owner = get_user_model().objects.filter(pk=job.owner_id).first()
    progress("parsing the dump")

    def parsed(done: int, total: int) -> None:
        progress("parsing the dump (lines read)", done, total)

    def stored(done: int, total: int) -> None:
        progress("storing rules", done, total)

    try:
        with transaction.atomic():
            ruleset = store.store_ruleset(
                name=data["name"], source=data["source"],
                ipsets_source=data.get("ipsets_source") or "",
                nftables_source=data.get("nftables_source") or "",
                family=data.get("family") or None, owner=owner,
                description=data.get("description") or "", progress=stored, parse_progress=parsed,
            )
            if data.get("host_interfaces") or data.get("host_routes"):
                store.store_host(name=f"{ruleset.name} host",
                                 interfaces=data.get("host_interfaces") or [],
                                 routes=data.get("host_routes") or [], ruleset=ruleset, owner=owner)
            if owner is not None and data.get("is_public"):
                models.Ruleset.objects.filter(pk=ruleset.pk).update(is_public=True)
                models.HostProfile.objects.filter(ruleset=ruleset, owner=owner).update(is_public=True)
    except store.ParseError as exc:
        origin = getattr(exc, "origin", "")
        where = {"ipsets": " of the ipset text", "nftables": " of the nft listing"}.get(origin, "")
        raise JobError(f"The dump does not parse: line {exc.line}{where}: {exc.reason}") from None
    # The dump text is in the ruleset now; the job row need not keep a copy.
    models.Job.objects.filter(pk=job.pk).update(params={"name": data["name"]})
    return {"ruleset": ruleset.pk, "url": ruleset.get_absolute_url(),
            "message": f"Uploaded {ruleset.rule_count} rules in {ruleset.chain_count} chains."}


@handler("import_snapshot")
def import_snapshot_job(job: Job, progress: Progress) -> dict[str, Any]:
    from netviz.snapshots import SnapshotError, import_snapshot

    data = job.params
    owner = get_user_model().objects.filter(pk=job.owner_id).first()
    progress("parsing and storing the snapshot")
    try:
        result = import_snapshot(data["text"], name=data.get("name") or "", owner=owner,
                                 is_public=bool(data.get("is_public")))
    except SnapshotError as exc:
        raise JobError(f"The snapshot does not read: {exc}. Nothing was stored.") from None
    # The snapshot is stored now; the job row need not keep a copy.
    models.Job.objects.filter(pk=job.pk).update(params={"name": data.get("name") or ""})
    parts = [f"{r.get_family_display()}: {r.rule_count} rules in {r.chain_count} chains" for r in result.rulesets]
    return {"ruleset": result.ruleset.pk, "url": result.ruleset.get_absolute_url(),
            "message": f"Snapshot stored ({'; '.join(parts)}), with its host profile.",
            "notes": result.notes}

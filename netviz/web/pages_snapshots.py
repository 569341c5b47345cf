"""Node snapshots on the web: the "Get a node's snapshot" page with the
collector script, uploading a snapshot in one step, and the account page's
API tokens."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from netviz import apitokens, jobs, models
from netviz.snapshots import SnapshotError, import_snapshot

from . import access
from .forms import SnapshotForm, human_size, max_upload

COLLECTOR = settings.BASE_DIR / "scripts" / "netviz-collect"


def collector_text() -> str:
    return COLLECTOR.read_text(encoding="utf-8")


@require_GET
def snapshot_page(request: HttpRequest) -> HttpResponse:
    api = request.build_absolute_uri(reverse("netviz:api_snapshots"))
    ctx: dict[str, Any] = {
        "api_url": api,
        "script_url": request.build_absolute_uri(reverse("netviz:collector")),
        "form": SnapshotForm(),
        "max_upload_human": human_size(max_upload()),
    }
    return render(request, "netviz/snapshot.html", ctx)


@require_GET
def collector(request: HttpRequest) -> HttpResponse:
    response = HttpResponse(collector_text(), content_type="text/x-shellscript; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="netviz-collect"'
    return response


@require_POST
def snapshot_upload(request: HttpRequest) -> HttpResponse:
    ctx: dict[str, Any] = {"max_upload_human": human_size(max_upload())}
    try:
        form = SnapshotForm(request.POST, request.FILES)
        valid = form.is_valid()
    except RequestDataTooBig:
        ctx["form"] = SnapshotForm()
        ctx["error"] = {"reason": f"The upload is larger than the limit of {human_size(max_upload())}."}
        return render(request, "netviz/snapshot_upload.html", ctx, status=413)
    ctx["form"] = form
    if not valid:
        return render(request, "netviz/snapshot_upload.html", ctx, status=400)
    owner = request.user if request.user.is_authenticated else None
    data = form.cleaned_data
    if len(data["snapshot_file"]) > settings.NETVIZ_IMPORT_JOB_BYTES:
        # A big node takes seconds to parse and store: a worker does it as
        # a job, as for a big dump, and the job page shows how it went.
        job = jobs.submit(
            "import_snapshot",
            {"text": data["snapshot_file"], "name": data.get("name", ""), "is_public": bool(data.get("is_public"))},
            owner=owner, title=f"Import · snapshot {data.get('name') or ''}".rstrip(),
        )
        access.remember_job(request, job)
        return redirect(job.get_absolute_url())
    try:
        result = import_snapshot(
            data["snapshot_file"], name=data.get("name", ""), owner=owner, is_public=bool(data.get("is_public"))
        )
    except SnapshotError as exc:
        ctx["error"] = {"line": exc.line, "section": exc.section, "reason": exc.reason, "text": exc.text}
        return render(request, "netviz/snapshot_upload.html", ctx, status=400)
    ruleset = result.ruleset
    parts = [f"{r.get_family_display()}: {r.rule_count} rules in {r.chain_count} chains" for r in result.rulesets]
    messages.success(
        request,
        f"Snapshot of {result.snapshot.hostname or 'the node'} stored ({'; '.join(parts)}), "
        "with its host profile. Next: pick a packet below to follow it.",
    )
    for note in result.notes:
        messages.warning(request, note)
    return redirect(ruleset.get_absolute_url())


# --- API tokens ------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def tokens(request: HttpRequest) -> HttpResponse:
    new_token = ""
    if request.method == "POST":
        _, new_token = apitokens.create_token(request.user, request.POST.get("name", ""))
    ctx = {
        "tokens": models.ApiToken.objects.filter(user=request.user),
        # Shown once, on the answer to the POST that made it; only its
        # digest is kept.
        "new_token": new_token,
        "api_url": request.build_absolute_uri(reverse("netviz:api_snapshots")),
    }
    response = render(request, "netviz/accounts/tokens.html", ctx, status=201 if new_token else 200)
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    row = get_object_or_404(models.ApiToken, pk=pk, user=request.user)
    apitokens.revoke(row)
    messages.success(request, f"Revoked the token {row.prefix}… ({row.name}).")
    return redirect("netviz:tokens")


urlpatterns = [
    path("snapshot/", snapshot_page, name="snapshot"),
    path("snapshot/netviz-collect", collector, name="collector"),
    path("upload/snapshot/", snapshot_upload, name="snapshot_upload"),
    path("accounts/tokens/", tokens, name="tokens"),
    path("accounts/tokens/<int:pk>/revoke/", token_revoke, name="token_revoke"),
]

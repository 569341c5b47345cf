"""Fleet pages: fleets (named groups of nodes), check sets (edited as JSON,
docs/fleet.md), and runs — the matrix nodes × checks, polled while the
workers fill it, its diff against the previous run, JSON and JUnit downloads."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.db.models import Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.utils.cache import patch_vary_headers
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from netviz import apitokens, fleet_jobs
from netviz.fleet import CheckSetError, failures, load_checkset, to_junit
from netviz.models import CheckSet, Fleet, FleetNode, FleetRun, HostProfile, Ruleset
from netviz.web import access

MAX_CHECKSET_BYTES = 512 * 1024
TRACE_KEYS = ("proto", "src", "sport", "dst", "dport", "tcp_flags", "icmp_type", "icmp_code",
              "in_iface", "mark", "ctstate")


def _visible(request: HttpRequest, model: type[Any]) -> QuerySet[Any]:
    # Fleets and check sets follow the rule of every object: public ones,
    # the user's own, all for staff.
    if access.is_staff(request):
        return model.objects.all()
    q = Q(is_public=True)
    if request.user.is_authenticated:
        q |= Q(owner=request.user)
    return model.objects.filter(q)


def _get(request: HttpRequest, model: type[Any], pk: int) -> Any:
    obj = _visible(request, model).filter(pk=pk).first()
    if obj is None:
        raise Http404("Not found")
    return obj


def _run_or_404(request: HttpRequest, pk: int) -> FleetRun:
    run = FleetRun.objects.select_related("fleet").filter(pk=pk).first()
    if run is None or not _visible(request, Fleet).filter(pk=run.fleet_id).exists():
        raise Http404("No such run")
    return run


def _owned(request: HttpRequest) -> dict[str, Any]:
    if request.user.is_authenticated:
        return {"owner": request.user, "is_public": False}
    return {"owner": None, "is_public": True}


# --- fleets ------------------------------------------------------------------------


class FleetForm(forms.Form):
    name = forms.CharField(max_length=200)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    rulesets = forms.ModelMultipleChoiceField(
        queryset=Ruleset.objects.none(), label="Nodes",
        help_text="Each ruleset with its first host profile is one node.",
        widget=forms.SelectMultiple(attrs={"size": 10}))

    def __init__(self, *args: Any, request: HttpRequest, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["rulesets"].queryset = (  # type: ignore[attr-defined]
            access.visible(request, "r").order_by("name"))


@require_http_methods(["GET", "POST"])
def fleet_list(request: HttpRequest) -> HttpResponse:
    form = FleetForm(request.POST or None, request=request)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        fleet = Fleet.objects.create(name=data["name"], description=data["description"],
                                     **_owned(request))
        _add_nodes(fleet, data["rulesets"])
        return redirect(fleet.get_absolute_url())
    return render(request, "netviz/fleet_list.html", {
        "fleets": _visible(request, Fleet), "checksets": _visible(request, CheckSet),
        "form": form})


class AddNodesForm(forms.Form):
    rulesets = forms.ModelMultipleChoiceField(
        queryset=Ruleset.objects.none(), label="Add nodes",
        help_text="Uploaded rulesets and snapshots (each with its first host profile).",
        widget=forms.SelectMultiple(attrs={"size": 6}))

    def __init__(self, *args: Any, request: HttpRequest, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["rulesets"].queryset = (  # type: ignore[attr-defined]
            access.visible(request, "r").order_by("-created"))


def _add_nodes(fleet: Fleet, rulesets: Any) -> None:
    position = fleet.nodes.count()
    for i, ruleset in enumerate(rulesets):
        host = HostProfile.objects.filter(ruleset=ruleset).order_by("pk").first()
        FleetNode.objects.create(fleet=fleet, name=ruleset.name, ruleset=ruleset, host=host,
                                 position=position + i)


@require_http_methods(["GET", "POST"])
def fleet_page(request: HttpRequest, pk: int) -> HttpResponse:
    fleet = _get(request, Fleet, pk)
    editable = access.owns(request, fleet) and request.user.is_authenticated
    form = AddNodesForm(request.POST or None, request=request)
    if request.method == "POST":
        if not editable:
            return HttpResponse("Only the owner changes a fleet.", status=403)
        remove = request.POST.get("remove", "")
        if remove.isdigit():
            fleet.nodes.filter(pk=int(remove)).delete()
            return redirect(fleet.get_absolute_url())
        if form.is_valid():
            _add_nodes(fleet, form.cleaned_data["rulesets"])
            return redirect(fleet.get_absolute_url())
    return render(request, "netviz/fleet.html", {
        "fleet": fleet, "nodes": fleet.nodes.select_related("ruleset", "host"),
        "checksets": _visible(request, CheckSet), "runs": fleet.runs.all()[:30],
        "can_run": request.user.is_authenticated, "editable": editable, "form": form})


@require_POST
def fleet_run_start(request: HttpRequest, pk: int) -> HttpResponse:
    fleet = _get(request, Fleet, pk)
    if not request.user.is_authenticated:
        return HttpResponse("Log in to run a check set.", status=403)
    raw = request.POST.get("checkset", "")
    checkset = _get(request, CheckSet, int(raw)) if raw.isdigit() else None
    if checkset is None:
        raise Http404("Pick a check set")
    try:
        run = fleet_jobs.start_run(fleet, checkset, owner=request.user)
    except CheckSetError as exc:
        return HttpResponse(f"The check set is not valid: {exc}", status=400)
    return redirect(run.get_absolute_url())


# --- runs --------------------------------------------------------------------------


def _trace_url(node: dict[str, Any], cell: dict[str, Any]) -> str:
    if not node.get("ruleset") or not cell.get("packet"):
        return ""
    # In the trace form's order whatever the database did to the keys
    # (PostgreSQL's jsonb sorts them).
    query = {k: cell["packet"][k] for k in TRACE_KEYS if cell["packet"].get(k) is not None}
    if node.get("host"):
        query["host"] = node["host"]
    return reverse("netviz:trace", args=[node["ruleset"]]) + "?" + urlencode(query)


def run_context(request: HttpRequest, run: FleetRun) -> dict[str, Any]:
    state = fleet_jobs.refresh(run)
    ctx: dict[str, Any] = {"run": run, "fleet": run.fleet, **state,
                           "percent": int(100 * state["done"] / run.total) if run.total else 100}
    if run.status == "done":
        checks = run.result.get("checks", [])
        rows = []
        for node in run.result.get("nodes", []):
            by_check = {c["check"]: c for c in node.get("cells", [])}
            cells = []
            for name in checks:
                cell = by_check.get(name)
                cells.append({**cell, "url": _trace_url(node, cell)} if cell else None)
            rows.append({"name": node["name"], "error": node.get("error", ""), "cells": cells})
        before, changes = fleet_jobs.run_diff(run)
        ctx.update(checks=checks, rows=rows, before=before, changes=changes)
    return ctx


@require_GET
def fleet_run_page(request: HttpRequest, pk: int) -> HttpResponse:
    run = _run_or_404(request, pk)
    template = "netviz/partials/fleet_run_result.html" if request.htmx else "netviz/fleet_run.html"
    response = render(request, template, run_context(request, run))
    patch_vary_headers(response, ["HX-Request"])
    return response


def _download(request: HttpRequest, pk: int, fmt: str) -> HttpResponse:
    run = _run_or_404(request, pk)
    fleet_jobs.refresh(run)
    if run.status != "done":
        return HttpResponse("The run has not finished.", status=409)
    if fmt == "xml":
        body, ctype = to_junit(run.result), "application/xml"
    else:
        body, ctype = json.dumps(run.result, indent=2, ensure_ascii=False) + "\n", "application/json"
    response = HttpResponse(body, content_type=ctype)
    response["Content-Disposition"] = f'attachment; filename="fleet-run-{run.pk}.{fmt}"'
    return response


@require_GET
def fleet_run_json(request: HttpRequest, pk: int) -> HttpResponse:
    return _download(request, pk, "json")


@require_GET
def fleet_run_junit(request: HttpRequest, pk: int) -> HttpResponse:
    return _download(request, pk, "xml")


# --- check sets ----------------------------------------------------------------------


class CheckSetForm(forms.Form):
    text = forms.CharField(
        label="Checks (JSON)", strip=False,
        widget=forms.Textarea(attrs={"rows": 24, "spellcheck": "false", "class": "mono"}),
        help_text="Named packets and what must happen to them: see docs/fleet.md.")

    def clean_text(self) -> str:
        text: str = self.cleaned_data["text"]
        if len(text.encode()) > MAX_CHECKSET_BYTES:
            raise forms.ValidationError("A check set is at most 512 KB.")
        try:
            self.checkset = load_checkset(text)
        except CheckSetError as exc:
            raise forms.ValidationError(str(exc)) from None
        return text


@require_http_methods(["GET", "POST"])
def checkset_new(request: HttpRequest) -> HttpResponse:
    if not request.user.is_authenticated:
        return redirect(reverse("netviz:login") + "?next=" + request.path)
    form = CheckSetForm(request.POST or None, initial={"text": _EXAMPLE})
    if request.method == "POST" and form.is_valid():
        checkset = CheckSet.objects.create(name=form.checkset.name, text=form.cleaned_data["text"],
                                           **_owned(request))
        return redirect(checkset.get_absolute_url())
    return render(request, "netviz/checkset.html", {"form": form, "checkset": None})


@require_http_methods(["GET", "POST"])
def checkset_page(request: HttpRequest, pk: int) -> HttpResponse:
    checkset = _get(request, CheckSet, pk)
    editable = access.owns(request, checkset)
    form = CheckSetForm(request.POST or None, initial={"text": checkset.text})
    if request.method == "POST":
        if not editable:
            return HttpResponse("Only the owner edits a check set.", status=403)
        if form.is_valid():
            checkset.text = form.cleaned_data["text"]
            checkset.name = form.checkset.name
            checkset.save(update_fields=["text", "name"])
            return redirect(checkset.get_absolute_url())
    checks = []
    try:
        checks = list(load_checkset(checkset.text).checks)
    except CheckSetError:
        pass
    return render(request, "netviz/checkset.html", {"form": form, "checkset": checkset,
                                                    "editable": editable, "checks": checks})


# --- the API (a personal token, as check_fleet in CI) -------------------------------


def _token_user(request: HttpRequest) -> Any | None:
    token = apitokens.bearer(request.headers.get("Authorization", ""))
    return apitokens.user_for(token) if token else None


def _api_error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def run_summary(request: HttpRequest, run: FleetRun) -> dict[str, Any]:
    """A run for the API: `exit` is check_fleet's status (0 all hold, 1 one
    fails, 2 cannot run), null while running."""
    state = fleet_jobs.refresh(run)
    out: dict[str, Any] = {
        "run": run.pk, "status": run.status, "done": state["done"], "total": run.total,
        "url": request.build_absolute_uri(run.get_absolute_url()), "exit": None,
    }
    if run.status == "failed":
        out.update(exit=2, error=run.error)
    elif run.status == "done":
        out["exit"] = 2 if run.result["errors"] else (1 if run.result["failed"] else 0)
        out["failures"] = failures(run.result)
        out["result"] = run.result
    return out


@csrf_exempt  # a token, not a cookie: no cross-site request can carry it
@require_POST
def api_fleet_run(request: HttpRequest, pk: int) -> JsonResponse:
    user = _token_user(request)
    if user is None:
        return _api_error(401, "a valid API token is required (Authorization: Bearer nvz_…)")
    request.user = user
    fleet = _visible(request, Fleet).filter(pk=pk).first()
    if fleet is None:
        return _api_error(404, "no such fleet")
    raw = request.POST.get("checkset", "")
    checkset = _visible(request, CheckSet).filter(pk=int(raw)).first() if raw.isdigit() else None
    if checkset is None:
        return _api_error(400, "checkset: the pk of a check set you can see")
    try:
        run = fleet_jobs.start_run(fleet, checkset, owner=user)
    except CheckSetError as exc:
        return _api_error(400, f"the check set is not valid: {exc}")
    return JsonResponse(run_summary(request, run), status=202)


@require_GET
def api_fleet_run_status(request: HttpRequest, pk: int) -> JsonResponse:
    user = _token_user(request)
    if user is None:
        return _api_error(401, "a valid API token is required (Authorization: Bearer nvz_…)")
    request.user = user
    run = FleetRun.objects.filter(pk=pk, fleet__in=_visible(request, Fleet)).first()
    if run is None:
        return _api_error(404, "no such run")
    return JsonResponse(run_summary(request, run))


_EXAMPLE = json.dumps({
    "name": "my checks",
    "checks": [
        {"name": "SSH to the node", "expect": "ACCEPT",
         "packet": {"proto": "tcp", "src": "192.0.2.50", "sport": 50000, "dst": "$node",
                    "dport": 22, "tcp_flags": "S", "in_iface": "eth0"}},
    ],
}, indent=2)


urlpatterns = [
    path("fleets/", fleet_list, name="fleet_list"),
    path("fleets/<int:pk>/", fleet_page, name="fleet"),
    path("fleets/<int:pk>/run/", fleet_run_start, name="fleet_run_start"),
    path("fleets/runs/<int:pk>/", fleet_run_page, name="fleet_run"),
    path("fleets/runs/<int:pk>.json", fleet_run_json, name="fleet_run_json"),
    path("fleets/runs/<int:pk>.xml", fleet_run_junit, name="fleet_run_junit"),
    path("api/fleets/<int:pk>/runs/", api_fleet_run, name="api_fleet_run"),
    path("api/fleet-runs/<int:pk>/", api_fleet_run_status, name="api_fleet_run_status"),
    path("checksets/new/", checkset_new, name="checkset_new"),
    path("checksets/<int:pk>/", checkset_page, name="checkset"),
]

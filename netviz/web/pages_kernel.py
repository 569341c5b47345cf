"""Kernel pages: check a trace in the real kernel, import a real kernel trace,
read a live host (staff only).

Same shape as the other pages: a form or the trace permalink query → one call
(check_scenario / import_trace / read_live) → a dict → a template.
"""

from __future__ import annotations

import json
import re
from typing import Any

from django import forms
from django.conf import settings
from django.contrib.admin.views.decorators import staff_member_required
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_http_methods, require_POST

from netviz import jobs
from netviz.engine.dot_trace import chain_dot, flow_dot
from netviz.engine.kerneltrace import (
    KernelTraceError,
    TraceFormat,
    import_trace,
    packet_hops,
    to_trace,
)
from netviz.engine.parser import ParseError
from netviz.engine.report import packet_line, sections, step_location, summary_rows
from netviz.engine.ruleset import Family
from netviz.engine.trace import StepKind, Trace
from netviz.models import Ruleset
from netviz.render import RenderError, inline_svg, render_svg
from netviz.store import load_nft_eval, load_ruleset
from netviz.web import access
from netviz.web.pages_jobs import job_context
from netviz.web.pages_rulesets import get_ruleset_for
from netviz.web.pages_traces import run_trace

MAX_TRACE_BYTES = 2 * 1024 * 1024
MAX_DRAWN_PACKETS = 200


def _svg(dot: str) -> tuple[str, str]:
    try:
        return inline_svg(render_svg(dot)), ""
    except RenderError as exc:
        return "", str(exc)


# --- Check in the kernel -----------------------------------------------------


def may_check(request: HttpRequest) -> bool:
    """NETVIZ_KERNEL_CHECKS: "users" (signed in), "staff", or "anyone"."""
    who = getattr(settings, "NETVIZ_KERNEL_CHECKS", "users")
    if who == "anyone":
        return True
    if who == "staff":
        return access.is_staff(request)
    return bool(request.user.is_authenticated)


@require_POST
def trace_kernel(request: HttpRequest, pk: int) -> HttpResponse:
    # A POST (an <img> elsewhere cannot trigger it), by a signed-in user by
    # default, and run by the kernel worker, never in this process: it needs
    # CAP_NET_ADMIN and takes seconds.  The packet is the trace's permalink
    # query, as on the trace page.
    ruleset = get_ruleset_for(request, pk)
    template = "netviz/partials/kernel_check.html" if request.htmx else "netviz/kernel_check.html"
    ctx: dict[str, Any] = {"ruleset": ruleset, "query": request.GET.urlencode(),
                           "available": True}
    if not may_check(request):
        ctx["error"] = "Log in to check a trace in the kernel."
        ctx["login"] = True
        return render(request, template, ctx, status=403)
    traced = run_trace(request.GET, ruleset)
    if traced.trace is None:
        errors = "; ".join(f"{name}: {' '.join(msgs)}" for name, msgs in traced.form.errors.items())
        ctx["error"] = traced.error or (
            f"The packet is not complete: {errors}" if errors else "Describe a packet first."
        )
        return render(request, template, ctx, status=400)
    form = traced.form
    params = {"ruleset": ruleset.pk, "host": form.host_dict(), "packet": form.packet_dict(),
              "options": form.options()}
    owner = request.user if request.user.is_authenticated else None
    job = jobs.submit("kernel_check", params, owner=owner,
                      title=f"Kernel check · {ruleset.name}",
                      dedupe=json.dumps([getattr(owner, "pk", None), params], sort_keys=True))
    access.remember_job(request, job)
    if not request.htmx:
        return redirect(job.get_absolute_url())
    response = render(request, "netviz/partials/job_status.html", job_context(job), status=202)
    patch_vary_headers(response, ["HX-Request"])
    return response


# --- Import a real trace -------------------------------------------------------


def visible_rulesets(request: HttpRequest) -> QuerySet[Ruleset]:
    # Every ruleset this request may read (access.py), a shared one too.
    rulesets: QuerySet[Ruleset] = access.visible(request, "r").order_by("-created")
    return rulesets


FORMAT_CHOICES = [("", "Detect automatically")] + [(f.value, {
    TraceFormat.XTABLES_MONITOR: "xtables-monitor --trace (nf_tables backend)",
    TraceFormat.KERNEL_LOG: "TRACE: lines from dmesg / journalctl -k (legacy backend)",
    TraceFormat.NFT_MONITOR: "nft monitor trace",
}[f]) for f in TraceFormat]


class ImportTraceForm(forms.Form):
    text = forms.CharField(
        label="Kernel trace", required=False, strip=False,
        widget=forms.Textarea(attrs={"rows": 12, "spellcheck": "false", "autofocus": True,
                                     "class": "mono"}),
        help_text="Paste the output of xtables-monitor --trace, nft monitor trace, "
                  "or the TRACE: lines of dmesg / journalctl -k.",
    )
    upload = forms.FileField(label="…or upload a file", required=False)
    ruleset = forms.ModelChoiceField(
        queryset=Ruleset.objects.none(), required=False, empty_label="None (positions as logged)",
        label="The ruleset it came from",
        help_text="With the ruleset, rules are shown with their text and line, and legacy "
                  "TRACE lines get their verdicts.",
    )
    format = forms.ChoiceField(choices=FORMAT_CHOICES, required=False, label="Format")
    packet = forms.IntegerField(required=False, min_value=0, widget=forms.HiddenInput)

    def __init__(self, *args: Any, request: HttpRequest, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["ruleset"].queryset = visible_rulesets(request)  # type: ignore[attr-defined]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        upload = data.get("upload")
        if upload is not None:
            if upload.size > MAX_TRACE_BYTES:
                raise forms.ValidationError("The file is larger than 2 MB.")
            data["text"] = upload.read().decode("utf-8", "replace")
        if not (data.get("text") or "").strip():
            raise forms.ValidationError("Paste a kernel trace or upload a file.")
        if len(data["text"]) > MAX_TRACE_BYTES:
            raise forms.ValidationError("The trace is larger than 2 MB.")
        return data


def _chain_views(trace: Trace, engine: Any) -> list[dict[str, str]]:
    seen: list[tuple[str, str, str]] = []
    for step in trace.steps:
        if step.kind in (StepKind.RULE, StepKind.POLICY) and step.depth == 0 and step.hook:
            key = (step.hook, step.table, step.chain)
            if key not in seen:
                seen.append(key)
    views = []
    for hook, table, chain in seen:
        svg, error = _svg(chain_dot(trace, table, chain, hook, engine))
        views.append({"hook": hook, "table": table, "chain": chain, "svg": svg, "error": error})
    return views


def import_context(form: ImportTraceForm) -> dict[str, Any]:
    data = form.cleaned_data
    ruleset: Ruleset | None = data.get("ruleset")
    engine = None
    if ruleset is not None:
        try:
            engine = load_ruleset(ruleset)
        except ParseError as exc:
            return {"import_error": f"The ruleset no longer parses: {exc}"}
    try:
        parsed, packets = import_trace(data["text"], engine, data.get("format") or None)
    except KernelTraceError as exc:
        return {"import_error": str(exc)}
    if not packets:
        return {"import_error": "The trace holds packet lines but no rule or policy lines."}
    family = Family(ruleset.family) if ruleset is not None else None
    rows = []
    for i, pkt in enumerate(packets[:MAX_DRAWN_PACKETS]):
        hops = packet_hops(pkt, engine)
        last = hops[-1] if hops else {}
        rows.append({"index": i, "label": pkt.label(), "hops": len(hops),
                     "ids": ", ".join(pkt.ids), "last": last})
    selected = data.get("packet") or 0
    selected = selected if selected < len(rows) else 0
    pkt = packets[selected]
    try:
        trace = to_trace(pkt, engine, family)
    except ValueError as exc:
        return {"import_error": f"Cannot read packet {selected + 1}: {exc}"}
    # The listing's base chains have their places in the flow too.
    flow_svg, flow_error = _svg(flow_dot(trace, engine, load_nft_eval(ruleset) if ruleset is not None else None))
    return {
        "parsed": parsed,
        "format_label": dict(FORMAT_CHOICES).get(parsed.format.value, parsed.format.value),
        "packets": rows,
        "more_packets": max(len(packets) - MAX_DRAWN_PACKETS, 0),
        "selected": selected,
        "chosen_ruleset": ruleset,
        "trace": trace,
        "hops": packet_hops(pkt, engine),
        "summary": summary_rows(trace),
        "sections": sections(trace),
        "packet_in": packet_line(trace.packet_in),
        "packet_out": packet_line(trace.packet_out),
        "flow_svg": flow_svg,
        "flow_error": flow_error,
        "chain_views": _chain_views(trace, engine),
        "raw_lines": [e.raw for e in pkt.events],
        "where": [step_location(s) for s in trace.steps if s.is_hop],
    }


@require_http_methods(["GET", "POST"])
def import_trace_page(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        form = ImportTraceForm(request.POST, request.FILES, request=request)
    else:
        initial = {}
        if request.GET.get("ruleset", "").isdigit():
            initial["ruleset"] = int(request.GET["ruleset"])
        form = ImportTraceForm(initial=initial, request=request)
    ctx: dict[str, Any] = {"form": form}
    if form.is_bound and form.is_valid():
        ctx.update(import_context(form))
        # Keep an uploaded file's text in the textarea so packet buttons
        # re-submit it.
        ctx["text"] = form.cleaned_data["text"]
    partial = request.htmx and not request.htmx.history_restore_request and form.is_bound
    template = "netviz/partials/import_trace_result.html" if partial else "netviz/import_trace.html"
    response = render(request, template, ctx)
    patch_vary_headers(response, ["HX-Request"])
    return response


# --- Read a live host (staff) ----------------------------------------------------

NETNS_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class ImportLiveForm(forms.Form):
    netns = forms.CharField(
        label="Network namespace", required=False, max_length=64,
        help_text="Leave empty to read this server itself (its own rules, sets, "
                  "addresses and routes).",
        widget=forms.TextInput(attrs={"autofocus": True, "autocomplete": "off"}),
    )
    name = forms.CharField(label="Name", required=False, max_length=200)
    family = forms.ChoiceField(choices=[("ipv4", "IPv4"), ("ipv6", "IPv6")], initial="ipv4")

    def clean_netns(self) -> str:
        value: str = self.cleaned_data["netns"].strip()
        if value and not NETNS_RE.match(value):
            raise forms.ValidationError("A namespace name is letters, digits, '.', '_' or '-'.")
        return value


@staff_member_required
@require_http_methods(["GET", "POST"])
def import_live_page(request: HttpRequest) -> HttpResponse:
    form = ImportLiveForm(request.POST or None)
    ctx: dict[str, Any] = {"form": form}
    if request.method == "POST" and form.is_valid():
        # Read by the kernel worker (it holds CAP_NET_ADMIN; this process does not).
        data = form.cleaned_data
        name = data["name"] or (f"{data['netns']} (netns)" if data["netns"] else "this server")
        job = jobs.submit("live_read", {"netns": data["netns"], "family": data["family"],
                                        "name": name},
                          owner=request.user, title=f"Live read · {name}",
                          dedupe=json.dumps([request.user.pk, data["netns"], data["family"]]))
        access.remember_job(request, job)
        return redirect(job.get_absolute_url())
    return render(request, "netviz/kernel_live.html", ctx)


urlpatterns = [
    path("rulesets/<int:pk>/trace/kernel/", trace_kernel, name="trace_kernel"),
    path("traces/import/", import_trace_page, name="import_trace"),
    path("live/", import_live_page, name="import_live"),
]

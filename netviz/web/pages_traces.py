"""The trace page: a packet form, the packet's way through netfilter, downloads.

Every view here is the same shape: the GET query string (the permalink) →
TraceForm → one engine call (trace_packet) → a dict → a template or a file.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    QueryDict,
)
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, path, reverse
from django.utils.cache import patch_vary_headers
from django.utils.text import slugify
from django.views.decorators.http import require_GET, require_POST

from netviz.engine.dot_trace import chain_dot, flow_dot
from netviz.engine.graph import nft_table_key
from netviz.engine.host import Host
from netviz.engine.limits import WalkLimitError
from netviz.engine.nft.evaluate import NftEval
from netviz.engine.pipeline import (
    PacketError,
    packet_from_dict,
    state_from_options,
    trace_packet,
)
from netviz.engine.report import (
    clause_rows,
    drop_step,
    find_rule,
    packet_changes,
    packet_line,
    render_text,
    sections,
    summary_rows,
    verdict_words,
)
from netviz.engine.ruleset import Family
from netviz.engine.ruleset import Ruleset as EngineRuleset
from netviz.engine.trace import Step, StepKind, Trace
from netviz.models import Ruleset, SavedTrace
from netviz.render import RenderError, inline_svg, render_svg
from netviz.scenario import Scenario, scenario_to_dict
from netviz.store import load_nft_eval, load_ruleset
from netviz.web import access
from netviz.web.pages_compare import _editable_lessons, packet_spec_text
from netviz.web.pages_rulesets import get_ruleset_for
from netviz.web.pages_share import share_context
from netviz.web.trace_forms import TraceForm, example_queries

FORM_KEYS = (
    "proto", "src", "sport", "dst", "dport", "tcp_flags", "icmp_type", "icmp_code",
    "in_iface", "mark", "ctstate", "host", "seed", "stat",
    "share",  # a private ruleset's read-only link keeps working in permalinks
)


def _ruleset(request: HttpRequest, pk: int) -> Ruleset:
    return get_ruleset_for(request, pk)


@dataclass
class Traced:
    form: TraceForm
    ruleset: Ruleset
    engine: EngineRuleset | None = None
    nft: NftEval | None = None  # the nft listing beside the dump, compiled
    trace: Trace | None = None
    error: str = ""

    @property
    def query(self) -> str:
        return permalink_query(self.form)


def permalink_query(form: TraceForm, **override: Any) -> str:
    """The form's fields as a query string, in a fixed order."""
    data = form.data
    pairs: list[tuple[str, str]] = []
    for key in FORM_KEYS:
        if key in override:
            values = override[key]
            values = values if isinstance(values, list) else [values]
        elif hasattr(data, "getlist"):
            values = data.getlist(key)
        else:
            values = [data[key]] if key in data else []
        pairs.extend((key, str(v)) for v in values if v is not None)
    return urlencode(pairs)


def run_trace(
    request_data: QueryDict | None, ruleset: Ruleset, host_override: dict[str, Any] | None = None
) -> Traced:
    form = TraceForm(request_data or None, ruleset=ruleset)
    out = Traced(form, ruleset)
    if not form.is_bound or not form.is_valid():
        return out
    family = Family(ruleset.family)
    try:
        out.engine = load_ruleset(ruleset)
        out.nft = load_nft_eval(ruleset)
    except ValueError as exc:
        out.error = f"The ruleset no longer parses: {exc}"
        return out
    try:
        host = Host.from_dict(host_override or form.host_dict(), family)
        packet = packet_from_dict(form.packet_dict(), family)
    except (PacketError, ValueError) as exc:
        form.add_error(None, str(exc))
        return out
    try:
        out.trace = trace_packet(out.engine, host, packet, state_from_options(form.options()), nft=out.nft)
    except WalkLimitError as exc:
        out.error = f"The trace was stopped: {exc}"
    return out


def _svg(dot: str) -> tuple[str, str]:
    try:
        return inline_svg(render_svg(dot)), ""
    except RenderError as exc:
        return "", str(exc)


def _statistic_branches(traced: Traced) -> list[dict[str, Any]]:
    """Each statistic rule met, both branches, and the link that follows each."""
    assert traced.trace is not None
    forced = traced.form.cleaned_data.get("stat") or {}
    out = []
    for table, chain, rule, probability, chosen in traced.trace.statistic:
        key = f"{table}:{chain}:{rule}"
        branches = []
        for value, p in ((True, probability), (False, 1 - probability)):
            stat = [f"{k}:{int(v)}" for k, v in forced.items() if k != key]
            stat.append(f"{key}:{int(value)}")
            branches.append({
                "matches": value, "probability": p, "percent": f"{p * 100:.1f}",
                "chosen": chosen == value, "query": permalink_query(traced.form, stat=stat),
            })
        out.append({"table": table, "chain": chain, "rule": rule, "key": key,
                    "forced": key in forced, "branches": branches})
    return out


def _chain_links(traced: Traced) -> list[dict[str, str]]:
    """One chain graph per table visit: (hook, table, first chain)."""
    assert traced.trace is not None
    seen: list[tuple[str, str, str]] = []
    for step in traced.trace.steps:
        if step.kind in (StepKind.RULE, StepKind.POLICY, StepKind.RETURN) and step.depth == 0:
            key = (step.hook, step.table, step.chain)
            if key not in seen:
                seen.append(key)
    query = traced.query
    return [
        {"hook": h, "table": t, "chain": c,
         "query": query + "&" + urlencode({"table": t, "chain": c, "hook": h})}
        for (h, t, c) in seen
    ]


def rule_url(traced: Traced, step: Step | None) -> str:
    """The rule (or chain, for a policy) of a step on the ruleset page."""
    if step is None or not step.table or not step.chain:
        return ""
    try:
        # An nft table is addressed as "<family> <table>" (graph.nft_table_key).
        table = nft_table_key(step.family, step.table) if step.family else step.table
        url = reverse("netviz:ruleset_chain", args=[traced.ruleset.pk, table, step.chain])
    except NoReverseMatch:
        return ""  # a chain name the URL pattern cannot carry (it holds a "/")
    params: list[tuple[str, str]] = []
    if step.kind is StepKind.RULE and step.rule:
        params.append(("rule", str(step.rule)))
    share = traced.form.data.get("share") if traced.form.is_bound else None
    if share:
        params.append(("share", str(share)))
    return url + ("?" + urlencode(params) if params else "")


def compare_query(traced: Traced) -> str:
    """The compare form with this trace's ruleset, host and packet filled in;
    `pick=right` asks it to wait for the other side instead of running."""
    if not traced.form.is_valid():
        return ""
    pairs = [("left", str(traced.ruleset.pk))]
    host = traced.form.selected_host()
    if host is not None:
        pairs.append(("lhost", str(host.pk)))
    pairs += [("packet", packet_spec_text(traced.form.packet_dict())), ("pick", "right")]
    return urlencode(pairs)


def result_context(traced: Traced, selected_step: int | None = None) -> dict[str, Any]:
    trace = traced.trace
    if trace is None:
        return {}
    flow_svg, flow_error = _svg(flow_dot(trace, traced.engine, traced.nft))
    dropped = drop_step(trace)
    timeline = []
    previous = trace.packet_in
    for i, step in enumerate(trace.steps):
        changes = packet_changes(previous, step.packet)
        if changes and step.packet is not None:
            timeline.append({"index": i, "step": step, "changes": changes,
                             "packet": packet_line(step.packet)})
        if step.packet is not None:
            previous = step.packet
    ctx: dict[str, Any] = {
        "trace": trace,
        # The banner prints the verdict word large and the rest beside it.
        "verdict_text": verdict_words(trace).removeprefix(trace.verdict).strip(),
        "drop_index": trace.steps.index(dropped) if dropped is not None else None,
        "drop_rule_url": rule_url(traced, dropped),
        "compare_query": compare_query(traced),
        "packet_in": packet_line(trace.packet_in),
        "packet_out": packet_line(trace.packet_out),
        "out_changes": packet_changes(trace.packet_in, trace.packet_out),
        "sections": sections(trace),
        "summary": summary_rows(trace),
        "timeline": timeline,
        "flow_svg": flow_svg,
        "flow_error": flow_error,
        "statistic": _statistic_branches(traced),
        "chain_links": _chain_links(traced),
        "hops": trace.hops(),
        "uncertain": [
            {"label": f"{t} {c} #{r}", "index": next(
                (i for i, st in enumerate(trace.steps)
                 if (st.table, st.chain, st.rule) == (t, c, r)), None)}
            for (t, c, r) in trace.uncertain
        ],
    }
    if selected_step is not None:
        ctx["detail"] = step_detail(traced, selected_step)
    return ctx


def step_detail(traced: Traced, index: int) -> dict[str, Any] | None:
    trace = traced.trace
    if trace is None or not 0 <= index < len(trace.steps):
        return None
    step = trace.steps[index]
    if step.kind is not StepKind.RULE:
        return None  # only rules have a detail: clauses, comments, packet before/after
    rule = find_rule(traced.engine, step)
    before = next(
        (s.packet for s in reversed(trace.steps[:index]) if s.packet is not None),
        trace.packet_in,
    )
    return {
        "index": index,
        "step": step,
        "rule_url": rule_url(traced, step),
        "rule": rule,
        "clauses": clause_rows(rule, step) if rule is not None else [],
        "comments": rule.comments() if rule is not None else (),
        "packet_before": packet_line(before),
        "packet_after": packet_line(step.packet) if step.packet is not None else "",
        "changes": packet_changes(before, step.packet),
    }


def _selected_step(request: HttpRequest) -> int | None:
    text = request.GET.get("step", "")
    return int(text) if text.isdigit() else None


def page_context(request: HttpRequest, ruleset: Ruleset) -> dict[str, Any]:
    traced = run_trace(request.GET, ruleset)
    ctx: dict[str, Any] = {
        "ruleset": ruleset,
        "form": traced.form,
        "traced": traced,
        "error": traced.error,
        "query": traced.query if traced.form.is_bound else "",
        "has_hosts": bool(traced.form.hosts),
        "host": traced.form.host_dict(),
        "examples": example_queries(traced.form),
        # Seen only by its read-only link: no "Save trace" (a saved copy would
        # outlive a revoked link).
        "readonly": not (ruleset.is_public or access.owns(request, ruleset)),
    }
    ctx.update(result_context(traced, _selected_step(request)))
    return ctx


@require_GET
def trace_page(request: HttpRequest, pk: int) -> HttpResponse:
    ruleset = _ruleset(request, pk)
    ctx = page_context(request, ruleset)
    # htmx swaps the workspace (form + result) in place; a history restore or
    # a plain GET gets the whole page, so the permalink works without JS.
    partial = request.htmx and not request.htmx.history_restore_request
    template = "netviz/partials/trace_workspace.html" if partial else "netviz/trace.html"
    response = render(request, template, ctx)
    if partial and ctx["query"]:
        # Push the canonical permalink (fixed field order, corrected
        # interface) rather than whatever the form happened to send.
        response["HX-Push-Url"] = reverse("netviz:trace", args=[pk]) + "?" + ctx["query"]
    patch_vary_headers(response, ["HX-Request"])
    return response


@require_GET
def trace_step(request: HttpRequest, pk: int, index: int) -> HttpResponse:
    ruleset = _ruleset(request, pk)
    traced = run_trace(request.GET, ruleset)
    detail = step_detail(traced, index)
    if detail is None:
        raise Http404("no such step in this trace")
    ctx = {"ruleset": ruleset, "detail": detail, "query": traced.query}
    if request.htmx:
        response = render(request, "netviz/partials/trace_rule_detail.html", ctx)
    else:
        response = redirect(
            reverse("netviz:trace", args=[pk]) + f"?{traced.query}&step={index}#rule-detail"
        )
    patch_vary_headers(response, ["HX-Request"])
    return response


# --- downloads -------------------------------------------------------------------


def _filename(ruleset: Ruleset, traced: Traced, ext: str, what: str = "trace") -> str:
    d = traced.form.cleaned_data
    parts = [slugify(ruleset.name) or f"ruleset-{ruleset.pk}", what, d.get("proto", "")]
    parts.append(re.sub(r"[^0-9A-Za-z]+", "-", str(d.get("dst", ""))).strip("-"))
    if d.get("dport") is not None and d.get("proto") in ("tcp", "udp"):
        parts.append(str(d["dport"]))
    return "-".join(p for p in parts if p) + "." + ext


def _download(body: str | bytes, content_type: str, filename: str) -> HttpResponse:
    response = HttpResponse(body, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def _traced_or_400(request: HttpRequest, pk: int) -> tuple[Ruleset, Traced] | HttpResponse:
    ruleset = _ruleset(request, pk)
    traced = run_trace(request.GET, ruleset)
    if traced.trace is None:
        errors = traced.error or "; ".join(
            f"{field}: {' '.join(msgs)}" for field, msgs in traced.form.errors.items()
        ) or "describe a packet: the query string needs at least src and dst"
        return HttpResponseBadRequest(f"cannot trace: {errors}\n", content_type="text/plain")
    return ruleset, traced


@require_GET
def download_flow(request: HttpRequest, pk: int, fmt: str) -> HttpResponse:
    if fmt not in ("svg", "dot"):
        raise Http404("flow.svg or flow.dot")
    got = _traced_or_400(request, pk)
    if isinstance(got, HttpResponse):
        return got
    ruleset, traced = got
    dot = flow_dot(traced.trace, traced.engine, traced.nft)
    if fmt == "dot":
        return _download(dot, "text/vnd.graphviz; charset=utf-8",
                         _filename(ruleset, traced, "dot", "flow"))
    try:
        svg = render_svg(dot)
    except RenderError as exc:
        return HttpResponse(f"cannot draw: {exc}\n", status=503, content_type="text/plain")
    return _download(svg, "image/svg+xml", _filename(ruleset, traced, "svg", "flow"))


@require_GET
def download_chain(request: HttpRequest, pk: int, fmt: str) -> HttpResponse:
    if fmt not in ("svg", "dot"):
        raise Http404("chain.svg or chain.dot")
    got = _traced_or_400(request, pk)
    if isinstance(got, HttpResponse):
        return got
    ruleset, traced = got
    assert traced.trace is not None
    table = request.GET.get("table", "filter")
    chain = request.GET.get("chain", "")
    hook = request.GET.get("hook") or None
    dot = chain_dot(traced.trace, table, chain, hook, traced.engine)
    name = _filename(ruleset, traced, fmt, f"{slugify(table)}-{slugify(chain) or 'chain'}")
    if fmt == "dot":
        return _download(dot, "text/vnd.graphviz; charset=utf-8", name)
    try:
        svg = render_svg(dot)
    except RenderError as exc:
        return HttpResponse(f"cannot draw: {exc}\n", status=503, content_type="text/plain")
    response = HttpResponse(svg, content_type="image/svg+xml")
    # Shown inline on the page (<img>) and downloadable under a good name.
    disposition = "attachment" if request.GET.get("download") else "inline"
    response["Content-Disposition"] = f'{disposition}; filename="{name}"'
    return response


@require_GET
def download_json(request: HttpRequest, pk: int) -> HttpResponse:
    got = _traced_or_400(request, pk)
    if isinstance(got, HttpResponse):
        return got
    ruleset, traced = got
    assert traced.trace is not None
    body = json.dumps(traced.trace.to_dict(), indent=2, ensure_ascii=False) + "\n"
    return _download(body, "application/json", _filename(ruleset, traced, "json"))


@require_GET
def download_text(request: HttpRequest, pk: int) -> HttpResponse:
    got = _traced_or_400(request, pk)
    if isinstance(got, HttpResponse):
        return got
    ruleset, traced = got
    assert traced.trace is not None
    body = render_text(traced.trace, traced.engine)
    return _download(body, "text/plain; charset=utf-8", _filename(ruleset, traced, "txt"))


def scenario_for(ruleset: Ruleset, form: TraceForm) -> Scenario:
    return Scenario(
        ruleset_text=ruleset.source,
        ipsets_text=ruleset.ipsets_source or None,
        nftables_text=ruleset.nftables_source or None,
        family=ruleset.family,
        host=form.host_dict(),
        packet=form.packet_dict(),
        options=form.options(),
        name=ruleset.name,
    )


@require_GET
def download_scenario(request: HttpRequest, pk: int) -> HttpResponse:
    got = _traced_or_400(request, pk)
    if isinstance(got, HttpResponse):
        return got
    ruleset, traced = got
    body = json.dumps(scenario_to_dict(scenario_for(ruleset, traced.form)), indent=2,
                      ensure_ascii=False) + "\n"
    return _download(body, "application/json", _filename(ruleset, traced, "json", "scenario"))


# --- saved traces ------------------------------------------------------------------


@require_POST
def save_trace(request: HttpRequest, pk: int) -> HttpResponse:
    ruleset = _ruleset(request, pk)
    if not (ruleset.is_public or access.owns(request, ruleset)):
        # A share link is read-only: its holder may trace, not keep a copy.
        raise Http404("No such ruleset")
    query = request.POST.get("query", "")
    traced = run_trace(QueryDict(query), ruleset)
    if traced.trace is None:
        return HttpResponseBadRequest("cannot save: the packet form is not valid\n",
                                      content_type="text/plain")
    user = request.user if request.user.is_authenticated else None
    title = (request.POST.get("title") or "").strip()[:200]
    saved = SavedTrace.objects.create(
        title=title or f"{traced.trace.verdict}: {packet_line(traced.trace.packet_in)}"[:200],
        ruleset=ruleset,
        host=traced.form.selected_host(),
        packet=traced.form.packet_dict(),
        options={**traced.form.options(), "host": traced.form.host_dict(), "query": query},
        result=traced.trace.to_dict(),
        verdict=traced.trace.verdict,
        owner=user,
        # Like uploads: an anonymous user's trace is public; an owner's is
        # theirs until shared.
        is_public=user is None,
    )
    return redirect("netviz:saved_trace", pk=saved.pk)


PACKET_KEYS = ("proto", "src", "sport", "dst", "dport", "tcp_flags", "icmp_type", "icmp_code",
               "in_iface", "mark", "ctstate")


def saved_query(saved: SavedTrace) -> str:
    """The tracer's query for a saved trace: the one it was saved from, or,
    for a trace stored without a page (load_demo stores a scenario's packet
    and options), one built from its packet, host and options."""
    query = saved.options.get("query")
    if isinstance(query, str) and query:
        return query
    packet = saved.packet or {}
    pairs = [(key, "" if packet.get(key) is None else str(packet[key]))
             for key in PACKET_KEYS if key in packet]
    if saved.host_id is not None:
        pairs.append(("host", str(saved.host_id)))
    pairs.append(("seed", str(saved.options.get("seed", 0))))
    # options.statistic is {"table:chain:rule": taken}; the form's `stat`
    # spells a choice table:chain:rule:1 or :0.
    for head, taken in (saved.options.get("statistic") or {}).items():
        pairs.append(("stat", f"{head}:{1 if taken else 0}"))
    return urlencode(pairs)


@require_GET
def saved_trace(request: HttpRequest, pk: int) -> HttpResponse:
    saved: SavedTrace = access.get_or_404(request, "t", pk)
    ruleset = saved.ruleset
    query = saved_query(saved)
    data = QueryDict(query, mutable=True)
    stored_host = saved.options.get("host")
    if saved.host is None and isinstance(stored_host, dict):
        # The host profile was deleted since: trace with the copy kept at save time.
        data["host"] = ""
    else:
        stored_host = None
    traced = run_trace(data, ruleset, host_override=stored_host)
    ctx: dict[str, Any] = {
        "saved": saved,
        "ruleset": ruleset,
        "form": traced.form,
        "traced": traced,
        "query": query,
        "error": traced.error,
        "stored_hops": saved.result.get("hops", []),
        "stored_verdict": saved.verdict,
        "share": share_context(request, "t", saved),
        "readonly": access.read_only(request, saved),
    }
    # The same lessons the saved comparison page offers to add to.
    ctx["lessons"] = _editable_lessons(request) if not ctx["readonly"] else []
    ctx.update(result_context(traced))
    ctx["changed"] = traced.trace is not None and (
        traced.trace.hops() != ctx["stored_hops"] or traced.trace.verdict != saved.verdict
    )
    return render(request, "netviz/trace_saved.html", ctx)


urlpatterns = [
    path("rulesets/<int:pk>/trace/", trace_page, name="trace"),
    path("rulesets/<int:pk>/trace/step/<int:index>/", trace_step, name="trace_step"),
    path("rulesets/<int:pk>/trace/flow.<str:fmt>", download_flow, name="trace_flow"),
    path("rulesets/<int:pk>/trace/chain.<str:fmt>", download_chain, name="trace_chain"),
    path("rulesets/<int:pk>/trace/trace.json", download_json, name="trace_json"),
    path("rulesets/<int:pk>/trace/trace.txt", download_text, name="trace_text"),
    path("rulesets/<int:pk>/trace/scenario.json", download_scenario, name="trace_scenario"),
    path("rulesets/<int:pk>/trace/save/", save_trace, name="trace_save"),
    path("traces/<int:pk>/", saved_trace, name="saved_trace"),
]

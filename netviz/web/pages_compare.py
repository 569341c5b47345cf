"""Compare two setups: two rulesets (and hosts) with one packet, or one ruleset
with two packets; and the ruleset diff.

Each view: the query string (the permalink) → CompareForm / DiffForm → the
engine (two traces and compare_traces, or diff_rulesets) → a dict → a template.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.db.models import Q
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    QueryDict,
)
from django.shortcuts import redirect, render
from django.urls import path
from django.utils.cache import patch_vary_headers
from django.utils.text import slugify
from django.views.decorators.http import require_GET, require_POST

from netviz import models
from netviz.engine.compare import Comparison, HopMark, compare_traces, target_name
from netviz.engine.dot_trace import flow_dot, step_flow_nodes
from netviz.engine.packetspec import PacketSpecError, parse_packet_spec
from netviz.engine.pipeline import PacketError, state_from_options, trace_dicts
from netviz.engine.report import packet_changes, packet_line
from netviz.engine.rulediff import Change, RulesetDiff, diff_rulesets
from netviz.engine.ruleset import Family
from netviz.engine.trace import Step, StepKind, Trace
from netviz.render import RenderError, inline_svg, render_svg
from netviz.store import load_nft_eval, load_nftables, load_ruleset
from netviz.web import access
from netviz.web.pages_share import share_context
from netviz.web.trace_forms import host_dict

# --- shared helpers ----------------------------------------------------------------


def visible(request: HttpRequest) -> Q:
    # What lists and "add to" choices offer: public objects and the user's
    # own (access.py; share-link grants are for reading, not for reuse).
    return access.listed_q(request)


def packet_spec_text(packet: dict[str, Any]) -> str:
    """The scenario's packet object back on one line (engine/packetspec.py syntax)."""

    def end(addr: str, port: Any) -> str:
        if port is None:
            return addr
        return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"

    words = [str(packet.get("proto", "tcp")), end(str(packet["src"]), packet.get("sport")), ">",
             end(str(packet["dst"]), packet.get("dport"))]
    if packet.get("in_iface"):
        words += ["in", str(packet["in_iface"])]
    if packet.get("tcp_flags") and packet.get("tcp_flags") != "S":
        words += ["flags", str(packet["tcp_flags"])]
    if packet.get("mark"):
        words += ["mark", hex(int(packet["mark"]))]
    if packet.get("ctstate") and str(packet["ctstate"]).upper() != "NEW":
        words += ["state", str(packet["ctstate"]).upper()]
    if packet.get("icmp_type") is not None:
        code = packet.get("icmp_code")
        words += ["type", f"{packet['icmp_type']}" + (f"/{code}" if code is not None else "")]
    return " ".join(words)


def mark_svg_nodes(svg: str, ids: set[str], css_class: str) -> str:
    """Add a class to graphviz's <g id="…" class="node …"> of the given node ids."""
    for node_id in ids:
        # graphviz writes "-" in ids as the entity &#45;
        written = "(?:" + "|".join(
            re.escape(v) for v in {node_id, node_id.replace("-", "&#45;")}
        ) + ")"
        svg = re.sub(rf'(<g id="{written}" class=")', rf"\g<1>{css_class} ", svg, count=1)
    return svg


def svg_or_error(dot: str) -> tuple[str, str]:
    try:
        return inline_svg(render_svg(dot)), ""
    except RenderError as exc:
        return "", str(exc)


def step_flow_node(trace: Trace, index: int) -> str:
    """The flow diagram node (dot_trace.py ids) a step happens in."""
    return step_flow_nodes(trace)[index] or f"flow-{trace.steps[index].hook}"


# --- one side of a comparison --------------------------------------------------------


@dataclass
class Side:
    ruleset: models.Ruleset
    host: dict[str, Any]
    packet: dict[str, Any]
    label: str = ""
    host_profile: models.HostProfile | None = None
    trace: Trace | None = None
    error: str = ""


def trace_side(side: Side, options: dict[str, Any] | None = None) -> Side:
    family = Family(side.ruleset.family)
    try:
        engine = load_ruleset(side.ruleset)
        # Tracing refuses a packet the host cannot receive (an input
        # interface it does not have): an error to show, not a 500.
        side.trace = trace_dicts(
            engine, side.host, side.packet, family, state_from_options(options or {}),
            nft=load_nftables(side.ruleset),
        )
    except (PacketError, ValueError) as exc:
        side.error = str(exc)
    return side


def _hop_row(trace: Trace | None, step: Step | None, index: int | None) -> dict[str, Any] | None:
    if trace is None or step is None or index is None:
        return None
    return {
        "step": step,
        "index": index,
        "where": f"{step.table} {step.chain}",
        "what": f"#{step.rule} → {step.verdict}" if step.kind is StepKind.RULE else f"policy {step.verdict}",
        "target": target_name(step),
        "hook": step.hook,
        "text": step.text,
        "changes": packet_changes(
            next((s.packet for s in reversed(trace.steps[:index]) if s.packet is not None), trace.packet_in),
            step.packet,
        ),
    }


def comparison_context(left: Side, right: Side, options: dict[str, Any] | None = None) -> dict[str, Any]:
    trace_side(left, options)
    trace_side(right, options)
    ctx: dict[str, Any] = {"left": left, "right": right}
    if left.trace is None or right.trace is None:
        return ctx
    cmp: Comparison = compare_traces(left.trace, right.trace)
    lname = f"the left ({left.label})" if left.label else "the left"
    rname = f"the right ({right.label})" if right.label else "the right"
    rows = []
    for n, hop in enumerate(cmp.hops):
        rows.append({
            "n": n + 1,
            "mark": hop.mark.value,
            "first": n == cmp.first_difference,
            "left": _hop_row(left.trace, hop.left, hop.left_index),
            "right": _hop_row(right.trace, hop.right, hop.right_index),
        })
    sides = []
    for side, name in ((left, "left"), (right, "right")):
        assert side.trace is not None
        differing = {step_flow_node(side.trace, i) for i in cmp.differing_steps(name)}
        svg, err = svg_or_error(flow_dot(side.trace, load_ruleset(side.ruleset), load_nft_eval(side.ruleset)))
        sides.append({
            "name": name,
            "side": side,
            "trace": side.trace,
            "flow_svg": mark_svg_nodes(svg, differing, "cmp-differs") if svg else "",
            "flow_error": err,
            "packet_in": packet_line(side.trace.packet_in),
            "packet_out": packet_line(side.trace.packet_out),
            "out_changes": packet_changes(side.trace.packet_in, side.trace.packet_out),
        })
    ctx.update({
        "cmp": cmp,
        "explain": cmp.explain(lname, rname),
        "rows": rows,
        "sides": sides,
        "deciding": [
            {"side": d.side, "where": f"{d.step.table} {d.step.hook} · {d.step.chain}"
             + (f" #{d.step.rule}" if d.step.rule and d.step.kind is StepKind.RULE else " policy"),
             "text": d.step.text, "effect": d.effect}
            for d in cmp.deciding
        ],
        "out_diff": cmp.packet_out_diff,
        "first_row": cmp.first_difference + 1 if cmp.first_difference is not None else None,
        "same_count": sum(1 for h in cmp.hops if h.mark is HopMark.SAME),
    })
    return ctx


def comparison_json(left: Side, right: Side) -> dict[str, Any]:
    assert left.trace is not None and right.trace is not None
    cmp = compare_traces(left.trace, right.trace)
    return {
        "left": {"ruleset": left.ruleset.name, "label": left.label, "host": left.host,
                 "packet": left.packet, "trace": left.trace.to_dict()},
        "right": {"ruleset": right.ruleset.name, "label": right.label, "host": right.host,
                  "packet": right.packet, "trace": right.trace.to_dict()},
        "comparison": cmp.to_dict(),
    }


# --- the compare form -------------------------------------------------------------


class CompareForm(forms.Form):
    left = forms.ModelChoiceField(queryset=models.Ruleset.objects.none(), label="Left ruleset")
    right = forms.ModelChoiceField(
        queryset=models.Ruleset.objects.none(), label="Right ruleset", required=False,
        help_text="Leave empty to compare two packets on the left ruleset.",
    )
    lhost = forms.ModelChoiceField(
        queryset=models.HostProfile.objects.none(), label="Left host", required=False
    )
    rhost = forms.ModelChoiceField(
        queryset=models.HostProfile.objects.none(), label="Right host", required=False
    )
    packet = forms.CharField(
        label="Packet", max_length=300,
        help_text="PROTO SRC[:PORT] > DST[:PORT] [in IFACE] [flags S] [mark 0x1] [state NEW]; "
        "without “in IFACE” the host itself sends it.",
    )
    packet2 = forms.CharField(
        label="Right packet", max_length=300, required=False,
        help_text="Optional: another packet for the right side (same syntax).",
    )
    llabel = forms.CharField(label="Left label", max_length=100, required=False)
    rlabel = forms.CharField(label="Right label", max_length=100, required=False)

    def __init__(self, *args: Any, request: HttpRequest, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Any ruleset this request may read, a shared one too: comparing is reading.
        rulesets = access.visible(request, "r").order_by("name")
        hosts = models.HostProfile.objects.filter(
            visible(request) | Q(ruleset__in=rulesets)
        ).distinct().order_by("name")
        for name in ("left", "right"):
            self.fields[name].queryset = rulesets  # type: ignore[attr-defined]
        for name in ("lhost", "rhost"):
            self.fields[name].queryset = hosts  # type: ignore[attr-defined]

    def _spec(self, name: str) -> dict[str, Any] | None:
        text = (self.cleaned_data.get(name) or "").strip()
        if not text:
            return None
        try:
            return parse_packet_spec(text)
        except PacketSpecError as exc:
            raise forms.ValidationError(str(exc)) from exc

    def clean_packet(self) -> dict[str, Any] | None:
        return self._spec("packet")

    def clean_packet2(self) -> dict[str, Any] | None:
        return self._spec("packet2")

    def sides(self) -> tuple[Side, Side]:
        d = self.cleaned_data
        left_rs: models.Ruleset = d["left"]
        right_rs: models.Ruleset = d.get("right") or left_rs
        lhost: models.HostProfile | None = d.get("lhost") or left_rs.hosts.first()
        rhost: models.HostProfile | None = d.get("rhost") or (
            lhost if right_rs == left_rs else right_rs.hosts.first()
        )
        packet = d["packet"]
        packet2 = d.get("packet2") or packet
        return (
            Side(left_rs, host_dict(lhost, left_rs.family), packet, d.get("llabel") or left_rs.name, lhost),
            Side(right_rs, host_dict(rhost, right_rs.family), packet2,
                 d.get("rlabel") or (right_rs.name if right_rs != left_rs else "second packet"), rhost),
        )


FORM_KEYS = ("left", "right", "lhost", "rhost", "packet", "packet2", "llabel", "rlabel")


def form_query(data: QueryDict | dict[str, Any]) -> str:
    return urlencode([(k, str(data.get(k))) for k in FORM_KEYS if data.get(k)])


@require_GET
def compare_page(request: HttpRequest) -> HttpResponse:
    # "Compare with another ruleset…" from a trace fills in the left side and
    # the packet and waits for the right side: running the half-filled form
    # would compare the packet with itself.
    picking = request.GET.get("pick") == "right" and not (
        request.GET.get("right") or request.GET.get("packet2")
    )
    if picking:
        form = CompareForm(initial={k: request.GET.get(k) for k in FORM_KEYS if request.GET.get(k)},
                           request=request)
        form.fields["right"].widget.attrs["autofocus"] = True
    else:
        form = CompareForm(request.GET or None, request=request)
    ctx: dict[str, Any] = {"form": form, "query": "", "demos": _demo_comparisons(request),
                           "picking": picking}
    if form.is_bound and form.is_valid():
        left, right = form.sides()
        ctx.update(comparison_context(left, right))
        ctx["query"] = form_query(request.GET)
        ctx["readonly"] = not _keepable(request, left, right)
    partial = request.htmx and not request.htmx.history_restore_request
    response = render(
        request, "netviz/partials/compare_result.html" if partial else "netviz/compare.html", ctx
    )
    patch_vary_headers(response, ["HX-Request"])
    return response


def _keepable(request: HttpRequest, left: Side, right: Side) -> bool:
    """A ruleset or host profile seen by its share link can be compared, not
    saved: a saved copy would outlive a revoked link."""
    objs = (left.ruleset, right.ruleset, left.host_profile, right.host_profile)
    return all(obj is None or obj.is_public or access.owns(request, obj) for obj in objs)


def _demo_comparisons(request: HttpRequest) -> list[models.Comparison]:
    return list(models.Comparison.objects.filter(visible(request)).order_by("-is_demo", "-created")[:12])


def _download(body: str, content_type: str, filename: str) -> HttpResponse:
    response = HttpResponse(body, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@require_GET
def compare_download(request: HttpRequest) -> HttpResponse:
    form = CompareForm(request.GET, request=request)
    if not form.is_valid():
        errors = "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items())
        return HttpResponseBadRequest(f"cannot compare: {errors}\n", content_type="text/plain")
    left, right = (trace_side(s) for s in form.sides())
    if left.trace is None or right.trace is None:
        return HttpResponseBadRequest(f"cannot trace: {left.error or right.error}\n",
                                      content_type="text/plain")
    body = json.dumps(comparison_json(left, right), indent=2, ensure_ascii=False) + "\n"
    return _download(body, "application/json", "comparison.json")


@require_POST
def compare_save(request: HttpRequest) -> HttpResponse:
    query = request.POST.get("query", "")
    form = CompareForm(QueryDict(query), request=request)
    if not form.is_valid():
        return HttpResponseBadRequest("cannot save: the comparison form is not valid\n",
                                      content_type="text/plain")
    left, right = form.sides()
    if not _keepable(request, left, right):
        raise Http404("No such ruleset or host profile")
    user = request.user if request.user.is_authenticated else None
    title = (request.POST.get("title") or "").strip()[:200]
    saved = models.Comparison.objects.create(
        title=title or f"{left.label} vs {right.label}: {packet_spec_text(left.packet)}"[:200],
        left_ruleset=left.ruleset, right_ruleset=right.ruleset,
        left_label=left.label[:100], right_label=right.label[:100],
        left_host=left.host, right_host=right.host,
        left_packet=left.packet, right_packet=right.packet,
        options={"query": query},
        owner=user,
        # Like uploads: an anonymous user's comparison is public; an owner's
        # is theirs until shared by its link.
        is_public=user is None,
    )
    return redirect("netviz:comparison", pk=saved.pk)


def saved_sides(saved: models.Comparison) -> tuple[Side, Side]:
    return (
        Side(saved.left_ruleset, saved.left_host, saved.left_packet,
             saved.left_label or saved.left_ruleset.name),
        Side(saved.right_ruleset, saved.right_host, saved.right_packet,
             saved.right_label or saved.right_ruleset.name),
    )


def _saved_query(saved: models.Comparison) -> str:
    data = {
        "left": saved.left_ruleset_id, "right": saved.right_ruleset_id,
        "packet": packet_spec_text(saved.left_packet),
        "llabel": saved.left_label, "rlabel": saved.right_label,
    }
    if saved.right_packet != saved.left_packet:
        data["packet2"] = packet_spec_text(saved.right_packet)
    return form_query(data)


def _render_saved(request: HttpRequest, saved: models.Comparison, shared: bool) -> HttpResponse:
    left, right = saved_sides(saved)
    shared = shared or access.read_only(request, saved)
    ctx: dict[str, Any] = {"saved": saved, "shared": shared, "query": _saved_query(saved),
                           "token": access.given_token(request, "c", saved),
                           "share": None if shared else share_context(request, "c", saved)}
    ctx.update(comparison_context(left, right, saved.options))
    ctx["lessons"] = _editable_lessons(request) if not shared else []
    return render(request, "netviz/compare_saved.html", ctx)


def _editable_lessons(request: HttpRequest) -> list[models.Lesson]:
    # The lessons this request may edit (pages_lessons.can_edit).
    mine = Q(owner=None, pk__in=access.authored_pks(request, "l"))
    if request.user.is_authenticated:
        mine |= Q(owner=request.user)
    return list(models.Lesson.objects.filter(mine, slug=""))


@require_GET
def comparison_detail(request: HttpRequest, pk: int) -> HttpResponse:
    saved: models.Comparison = access.get_or_404(request, "c", pk)
    return _render_saved(request, saved, shared=False)


def render_shared_comparison(request: HttpRequest, saved: models.Comparison) -> HttpResponse:
    return _render_saved(request, saved, shared=True)


@require_GET
def comparison_shared(request: HttpRequest, token: str) -> HttpResponse:
    # The first form of the link (kept working); /s/c/<token>/ is the same page.
    saved = access.by_token_or_404("c", token)
    access.grant(request, "c", saved)
    return _render_saved(request, saved, shared=True)


def _comparison_for(request: HttpRequest, pk: int) -> models.Comparison:
    saved: models.Comparison = access.get_or_404(request, "c", pk)
    return saved


@require_GET
def comparison_download(request: HttpRequest, pk: int) -> HttpResponse:
    saved = _comparison_for(request, pk)
    left, right = (trace_side(s, saved.options) for s in saved_sides(saved))
    if left.trace is None or right.trace is None:
        return HttpResponseBadRequest(f"cannot trace: {left.error or right.error}\n",
                                      content_type="text/plain")
    body = json.dumps(comparison_json(left, right), indent=2, ensure_ascii=False) + "\n"
    name = slugify(saved.title) or f"comparison-{saved.pk}"
    return _download(body, "application/json", f"{name}.json")


# --- ruleset diff -------------------------------------------------------------------


class DiffForm(forms.Form):
    left = forms.ModelChoiceField(queryset=models.Ruleset.objects.none(), label="Left (old) ruleset")
    right = forms.ModelChoiceField(queryset=models.Ruleset.objects.none(), label="Right (new) ruleset")
    ignore_counters = forms.BooleanField(label="Ignore counters", required=False, initial=True)
    ignore_hashes = forms.BooleanField(
        label="Ignore generated hashes (cali:… comments, KUBE-SVC-… names)", required=False
    )
    view = forms.ChoiceField(
        choices=[("side", "Side by side"), ("unified", "Unified")], required=False, initial="side"
    )
    changed_only = forms.BooleanField(label="Only changed chains", required=False, initial=True)

    def __init__(self, *args: Any, request: HttpRequest, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        rulesets = access.visible(request, "r").order_by("name")
        for name in ("left", "right"):
            self.fields[name].queryset = rulesets  # type: ignore[attr-defined]


def _diff(form: DiffForm) -> RulesetDiff:
    d = form.cleaned_data
    return diff_rulesets(
        load_ruleset(d["left"]), load_ruleset(d["right"]),
        ignore_counters=bool(d.get("ignore_counters")), ignore_hashes=bool(d.get("ignore_hashes")),
        left_nft=load_nftables(d["left"]), right_nft=load_nftables(d["right"]),
    )


@require_GET
def diff_page(request: HttpRequest) -> HttpResponse:
    # A first visit shows the form with its defaults ticked; a submitted form
    # says exactly what it wants (an unticked box is absent from the query).
    form = DiffForm(request.GET or None, request=request,
                    initial={"ignore_counters": True, "changed_only": True, "view": "side"})
    ctx: dict[str, Any] = {"form": form}
    if form.is_bound and form.is_valid():
        diff = _diff(form)
        d = form.cleaned_data
        chains = diff.changed_chains if d.get("changed_only") else diff.chains
        ctx.update({
            "diff": diff,
            "chains": chains,
            "totals": diff.totals(),
            "view": d.get("view") or "side",
            "unified": diff.unified(d["left"].name, d["right"].name),
            "left_rs": d["left"],
            "right_rs": d["right"],
            "query": request.GET.urlencode(),
            "Change": {c.name: c.value for c in Change},
        })
    partial = request.htmx and not request.htmx.history_restore_request
    response = render(request, "netviz/partials/diff_result.html" if partial else "netviz/diff.html", ctx)
    patch_vary_headers(response, ["HX-Request"])
    return response


@require_GET
def diff_download(request: HttpRequest) -> HttpResponse:
    form = DiffForm(request.GET, request=request)
    if not form.is_valid():
        return HttpResponseBadRequest("choose two rulesets (left and right)\n", content_type="text/plain")
    d = form.cleaned_data
    body = _diff(form).unified(d["left"].name, d["right"].name)
    name = f"{slugify(d['left'].name)}-vs-{slugify(d['right'].name)}.diff"
    return _download(body, "text/x-diff; charset=utf-8", name)


urlpatterns = [
    path("compare/", compare_page, name="compare"),
    path("compare/comparison.json", compare_download, name="compare_json"),
    path("compare/save/", compare_save, name="compare_save"),
    path("comparisons/<int:pk>/", comparison_detail, name="comparison"),
    path("comparisons/<int:pk>/comparison.json", comparison_download, name="comparison_json"),
    path("comparisons/s/<str:token>/", comparison_shared, name="comparison_shared"),
    path("diff/", diff_page, name="diff"),
    path("diff/unified.diff", diff_download, name="diff_download"),
]

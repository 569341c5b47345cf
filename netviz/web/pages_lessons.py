"""Training sessions: lessons (ordered steps, each a scenario, saved trace or
comparison with the trainer's notes and a question), their authoring, the
read-only share link, and the presenter mode.

Every trace a lesson shows is computed by the engine when the page is drawn;
a lesson stores inputs, never results.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from django import forms
from django.db import transaction
from django.db.models import Max
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET, require_POST

from netviz import models
from netviz.engine.compare import HopMark, compare_traces
from netviz.engine.dot_trace import flow_dot
from netviz.engine.nft.evaluate import NftEval, compile_nft
from netviz.engine.nft.parse_json import parse_nft
from netviz.engine.parser import ParseError, parse_ruleset
from netviz.engine.pipeline import PacketError, trace_scenario
from netviz.engine.report import packet_changes, packet_line
from netviz.engine.ruleset import Family
from netviz.engine.ruleset import Ruleset as EngineRuleset
from netviz.engine.trace import Step, StepKind, Trace
from netviz.scenario import ScenarioError, scenario_from_dict
from netviz.store import load_nft_eval, load_ruleset
from netviz.web import access
from netviz.web.pages_compare import (
    Side,
    comparison_context,
    mark_svg_nodes,
    saved_sides,
    step_flow_node,
    svg_or_error,
    trace_side,
    visible,
)
from netviz.web.pages_share import share_context

# --- permissions ---------------------------------------------------------------------


def can_edit(request: HttpRequest, lesson: models.Lesson) -> bool:
    # Shipped lessons (slug set) are read-only; a lesson made without an
    # account only for the browser that made it (access.can_edit).
    if lesson.slug:
        return False
    return access.can_edit(request, "l", lesson)


def _lesson(request: HttpRequest, pk: int) -> models.Lesson:
    lesson: models.Lesson = access.get_or_404(request, "l", pk)
    return lesson


def _editable(request: HttpRequest, pk: int) -> models.Lesson:
    lesson = _lesson(request, pk)
    if not can_edit(request, lesson):
        raise Http404("No such lesson to edit")
    return lesson


# --- what a step shows -----------------------------------------------------------------


@dataclass
class Frame:
    """One stop of the presenter: a hop (or routing decision / drop) and
    the flow node(s) it lights."""

    index: int
    nodes: dict[str, str]  # figure key ("main", "left", "right") → flow node id
    title: str
    body: list[dict[str, Any]] = field(default_factory=list)
    mark: str = ""


@dataclass
class StepView:
    step: models.LessonStep
    kind: str  # "trace" or "comparison"
    trace: Trace | None = None
    figures: list[dict[str, Any]] = field(default_factory=list)  # key, label, svg
    frames: list[Frame] = field(default_factory=list)
    compare: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    summary: str = ""


def _scenario_trace(data: dict[str, Any]) -> tuple[Trace, EngineRuleset, NftEval | None]:
    scenario = scenario_from_dict(data)
    family = Family(scenario.family)
    ruleset = parse_ruleset(scenario.ruleset_text, scenario.ipsets_text, family)
    # The flow diagram places the listing's base chains (an nft trace lesson).
    nft = compile_nft(parse_nft(scenario.nftables_text), family) if scenario.nftables_text else None
    return trace_scenario(scenario), ruleset, nft


def _frames_for_trace(trace: Trace, key: str = "main") -> list[Frame]:
    frames: list[Frame] = []
    for i, step in enumerate(trace.steps):
        if not (step.is_hop or step.kind in (StepKind.ROUTE, StepKind.DROP)):
            continue
        frames.append(Frame(
            index=len(frames),
            nodes={key: step_flow_node(trace, i)},
            title=_step_title(step),
            body=[_step_body(trace, i, key)],
        ))
    return frames


def _step_title(step: Step) -> str:
    if step.kind is StepKind.ROUTE:
        return f"{step.hook}: routing decision"
    if step.kind is StepKind.DROP:
        return f"{step.hook}: dropped"
    where = f"{step.hook} · {step.table} {step.chain}"
    return f"{where} policy {step.verdict}" if step.kind is StepKind.POLICY else f"{where} #{step.rule} → {step.verdict}"


def _chain_rows(trace: Trace, index: int) -> list[dict[str, Any]]:
    """The rules of the chain visit a hop belongs to, up to the hop: what the
    chain view shows while the presenter stands on that hop."""
    step = trace.steps[index]
    if step.kind not in (StepKind.RULE, StepKind.POLICY):
        return []
    rows = []
    j = index
    while j >= 0:
        s = trace.steps[j]
        if s.hook != step.hook or s.table != step.table or s.depth < step.depth:
            break
        if s.chain == step.chain and s.depth == step.depth and s.kind in (StepKind.RULE, StepKind.POLICY):
            rows.append({"step": s, "current": j == index,
                         "result": s.result.value if s.result else "policy"})
        j -= 1
    rows.reverse()
    return rows


def _step_body(trace: Trace, index: int, key: str) -> dict[str, Any]:
    step = trace.steps[index]
    before = next((s.packet for s in reversed(trace.steps[:index]) if s.packet is not None), trace.packet_in)
    return {
        "key": key,
        "step": step,
        "rows": _chain_rows(trace, index),
        "packet": packet_line(step.packet) if step.packet is not None else "",
        "changes": packet_changes(before, step.packet),
    }


def _frames_for_comparison(left: Trace, right: Trace) -> list[Frame]:
    cmp = compare_traces(left, right)
    frames: list[Frame] = []
    for n, hop in enumerate(cmp.hops):
        nodes, body = {}, []
        if hop.left is not None and hop.left_index is not None:
            nodes["left"] = step_flow_node(left, hop.left_index)
            body.append(_step_body(left, hop.left_index, "left"))
        if hop.right is not None and hop.right_index is not None:
            nodes["right"] = step_flow_node(right, hop.right_index)
            body.append(_step_body(right, hop.right_index, "right"))
        shown = hop.left or hop.right
        assert shown is not None
        frames.append(Frame(index=n, nodes=nodes, title=_step_title(shown), body=body,
                            mark=hop.mark.value))
    return frames


def step_view(lstep: models.LessonStep) -> StepView:
    if lstep.comparison is not None:
        return _comparison_view(lstep, *saved_sides(lstep.comparison), lstep.comparison.options)
    if lstep.scenario and "left" in lstep.scenario and "right" in lstep.scenario:
        return _inline_comparison_view(lstep)
    view = StepView(lstep, "trace")
    try:
        if lstep.saved_trace is not None:
            saved = lstep.saved_trace
            side = trace_side(Side(saved.ruleset, saved.options.get("host") or (
                saved.host.as_scenario_host() if saved.host else {}), saved.packet), saved.options)
            if side.trace is None:
                raise PacketError(side.error)
            trace, ruleset, nft = side.trace, load_ruleset(saved.ruleset), load_nft_eval(saved.ruleset)
        elif lstep.scenario:
            trace, ruleset, nft = _scenario_trace(lstep.scenario)
        else:
            view.error = "This step has no scenario."
            return view
    except (ScenarioError, ParseError, PacketError, ValueError) as exc:
        view.error = f"This step cannot be traced: {exc}"
        return view
    svg, err = svg_or_error(flow_dot(trace, ruleset, nft))
    view.trace = trace
    view.figures = [{"key": "main", "label": "", "svg": svg, "error": err}]
    view.frames = _frames_for_trace(trace)
    view.summary = trace.summary or trace.verdict
    return view


def _comparison_view(lstep: models.LessonStep, left: Side, right: Side, options: dict[str, Any]) -> StepView:
    view = StepView(lstep, "comparison")
    ctx = comparison_context(left, right, options)
    if "cmp" not in ctx:
        view.error = f"This comparison cannot be traced: {left.error or right.error}"
        return view
    view.compare = ctx
    view.figures = [{"key": s["name"], "label": s["side"].label, "svg": s["flow_svg"], "error": s["flow_error"]}
                    for s in ctx["sides"]]
    assert left.trace is not None and right.trace is not None
    view.frames = _frames_for_comparison(left.trace, right.trace)
    view.summary = " ".join(ctx["explain"])
    return view


def _inline_comparison_view(lstep: models.LessonStep) -> StepView:
    """A shipped comparison step: two inline scenarios (scenario.md format)."""
    view = StepView(lstep, "comparison")
    data = lstep.scenario or {}
    try:
        traces = []
        for key in ("left", "right"):
            trace, ruleset, nft = _scenario_trace(data[key])
            svg, err = svg_or_error(flow_dot(trace, ruleset, nft))
            traces.append((key, trace, svg, err))
    except (ScenarioError, ParseError, PacketError, ValueError) as exc:
        view.error = f"This step cannot be traced: {exc}"
        return view
    lt, rt = traces[0][1], traces[1][1]
    cmp = compare_traces(lt, rt)
    labels = data.get("labels") or ["left", "right"]
    view.figures = []
    for (key, trace, svg, err), label in zip(traces, labels, strict=True):
        differing = {step_flow_node(trace, i) for i in cmp.differing_steps(key)}
        view.figures.append({"key": key, "label": label,
                             "svg": mark_svg_nodes(svg, differing, "cmp-differs") if svg else "",
                             "error": err})
    view.frames = _frames_for_comparison(lt, rt)
    explain = cmp.explain(f"the left ({labels[0]})", f"the right ({labels[1]})")
    view.compare = {"explain": explain, "cmp": cmp}
    view.summary = " ".join(explain)
    return view


# --- forms ---------------------------------------------------------------------------------


class LessonForm(forms.ModelForm):
    class Meta:
        model = models.Lesson
        fields: ClassVar = ["title", "description"]
        widgets: ClassVar = {"description": forms.Textarea(attrs={"rows": 3})}


class StepForm(forms.ModelForm):
    class Meta:
        model = models.LessonStep
        fields: ClassVar = ["title", "notes", "question", "answer"]
        widgets: ClassVar = {
            "notes": forms.Textarea(attrs={"rows": 3}),
            "question": forms.TextInput(),
            "answer": forms.Textarea(attrs={"rows": 2}),
        }
        labels: ClassVar = {"notes": "Trainer's notes"}


# --- views: list, create, show ---------------------------------------------------------------


@require_GET
def lesson_list(request: HttpRequest) -> HttpResponse:
    lessons = models.Lesson.objects.filter(visible(request)).order_by("-slug", "title")
    return render(request, "netviz/lesson_list.html", {
        "lessons": [(lesson, lesson.steps.count()) for lesson in lessons],
        "form": LessonForm(),
    })


@require_POST
def lesson_create(request: HttpRequest) -> HttpResponse:
    form = LessonForm(request.POST)
    if not form.is_valid():
        lessons = models.Lesson.objects.filter(visible(request))
        return render(request, "netviz/lesson_list.html", {
            "lessons": [(lesson, lesson.steps.count()) for lesson in lessons], "form": form,
        }, status=400)
    lesson = form.save(commit=False)
    user = request.user if request.user.is_authenticated else None
    lesson.owner = user
    lesson.is_public = user is None
    lesson.save()
    access.mark_authored(request, "l", lesson)
    return redirect("netviz:lesson", pk=lesson.pk)


def _lesson_context(request: HttpRequest, lesson: models.Lesson, shared: bool) -> dict[str, Any]:
    shared = shared or access.read_only(request, lesson)
    editable = not shared and can_edit(request, lesson)
    steps = list(lesson.steps.select_related("saved_trace", "comparison"))
    ctx: dict[str, Any] = {
        "lesson": lesson,
        "shared": shared,
        # Links by token only for whoever holds it; others present by pk.
        "token": access.given_token(request, "l", lesson) if shared else "",
        "editable": editable,
        "steps": [(s, StepForm(instance=s, prefix=f"s{s.pk}") if editable else None) for s in steps],
        "share": None if shared else share_context(request, "l", lesson),
    }
    if editable:
        ctx["lesson_form"] = LessonForm(instance=lesson)
        ctx["traces"] = models.SavedTrace.objects.filter(visible(request)).select_related("ruleset")[:200]
        ctx["comparisons"] = models.Comparison.objects.filter(visible(request))[:200]
    return ctx


@require_GET
def lesson_detail(request: HttpRequest, pk: int) -> HttpResponse:
    lesson = _lesson(request, pk)
    return render(request, "netviz/lesson.html", _lesson_context(request, lesson, shared=False))


def render_shared_lesson(request: HttpRequest, lesson: models.Lesson) -> HttpResponse:
    return render(request, "netviz/lesson.html", _lesson_context(request, lesson, shared=True))


@require_GET
def lesson_shared(request: HttpRequest, token: str) -> HttpResponse:
    # The first form of the link (kept working); /s/l/<token>/ is the same page.
    lesson = access.by_token_or_404("l", token)
    access.grant(request, "l", lesson)
    return render_shared_lesson(request, lesson)


@require_POST
def lesson_edit(request: HttpRequest, pk: int) -> HttpResponse:
    lesson = _editable(request, pk)
    form = LessonForm(request.POST, instance=lesson)
    if form.is_valid():
        form.save()
    return redirect("netviz:lesson", pk=lesson.pk)


# --- views: steps --------------------------------------------------------------------------------


@require_POST
def lesson_add_step(request: HttpRequest) -> HttpResponse:
    """From a saved trace or comparison page (or the lesson page): add it as
    the last step of a lesson, or of a new lesson."""
    trace_pk = request.POST.get("saved_trace", "")
    cmp_pk = request.POST.get("comparison", "")
    saved_trace = comparison = None
    if trace_pk.isdigit():
        saved_trace = get_object_or_404(models.SavedTrace.objects.filter(visible(request)), pk=int(trace_pk))
    elif cmp_pk.isdigit():
        comparison = get_object_or_404(models.Comparison.objects.filter(visible(request)), pk=int(cmp_pk))
    else:
        return HttpResponseBadRequest("choose a saved trace or a comparison\n", content_type="text/plain")
    source = saved_trace or comparison
    lesson_pk = request.POST.get("lesson", "")
    with transaction.atomic():
        if lesson_pk.isdigit():
            lesson = _editable(request, int(lesson_pk))
        else:
            user = request.user if request.user.is_authenticated else None
            lesson = models.Lesson.objects.create(
                title=(request.POST.get("title") or f"Lesson: {source}")[:200],
                owner=user, is_public=user is None,
            )
            access.mark_authored(request, "l", lesson)
        last = lesson.steps.aggregate(m=Max("position"))["m"]
        models.LessonStep.objects.create(
            lesson=lesson, position=0 if last is None else last + 1, title=str(source)[:200],
            saved_trace=saved_trace, comparison=comparison,
        )
    return redirect(reverse("netviz:lesson", args=[lesson.pk]) + "#steps")


def _steps_response(request: HttpRequest, lesson: models.Lesson, focus: str = "") -> HttpResponse:
    if request.htmx:
        ctx = _lesson_context(request, lesson, shared=False)
        ctx["focus"] = focus
        response = render(request, "netviz/partials/lesson_steps.html", ctx)
    else:
        response = redirect(reverse("netviz:lesson", args=[lesson.pk]) + "#steps")
    patch_vary_headers(response, ["HX-Request"])
    return response


@require_POST
def step_move(request: HttpRequest, pk: int, step_pk: int) -> HttpResponse:
    lesson = _editable(request, pk)
    direction = request.POST.get("direction")
    if direction not in ("up", "down"):
        return HttpResponseBadRequest("direction is up or down\n", content_type="text/plain")
    with transaction.atomic():
        steps = list(lesson.steps.select_for_update().order_by("position", "pk"))
        index = next((i for i, s in enumerate(steps) if s.pk == step_pk), None)
        if index is None:
            raise Http404("No such step")
        other = index - 1 if direction == "up" else index + 1
        if 0 <= other < len(steps):
            steps[index], steps[other] = steps[other], steps[index]
        # Renumber densely: positions may have gaps or ties after deletions.
        for position, s in enumerate(steps):
            if s.position != position:
                s.position = position
                s.save(update_fields=["position"])
    return _steps_response(request, lesson, focus=f"move-{direction}-{step_pk}")


@require_POST
def step_edit(request: HttpRequest, pk: int, step_pk: int) -> HttpResponse:
    lesson = _editable(request, pk)
    lstep = get_object_or_404(models.LessonStep, lesson=lesson, pk=step_pk)
    form = StepForm(request.POST, instance=lstep, prefix=f"s{lstep.pk}")
    if not form.is_valid():
        return HttpResponseBadRequest("invalid step\n", content_type="text/plain")
    form.save()
    return _steps_response(request, lesson, focus=f"saved-{step_pk}")


@require_POST
def step_delete(request: HttpRequest, pk: int, step_pk: int) -> HttpResponse:
    lesson = _editable(request, pk)
    get_object_or_404(models.LessonStep, lesson=lesson, pk=step_pk).delete()
    return _steps_response(request, lesson)


# --- presenter ---------------------------------------------------------------------------------------


def _present(request: HttpRequest, lesson: models.Lesson, number: int, shared: bool) -> HttpResponse:
    steps = list(lesson.steps.select_related("saved_trace__ruleset", "saved_trace__host",
                                             "comparison__left_ruleset", "comparison__right_ruleset"))
    if not steps:
        raise Http404("This lesson has no steps yet")
    if not 1 <= number <= len(steps):
        raise Http404("No such step")
    view = step_view(steps[number - 1])
    token = access.given_token(request, "l", lesson) if shared else ""

    def url(n: int) -> str:
        if token:
            return reverse("netviz:lesson_shared_present", args=[token, n])
        return reverse("netviz:lesson_present", args=[lesson.pk, n])

    return render(request, "netviz/presenter.html", {
        "lesson": lesson,
        "view": view,
        "number": number,
        "total": len(steps),
        "prev_url": url(number - 1) if number > 1 else "",
        "next_url": url(number + 1) if number < len(steps) else "",
        "back_url": reverse("netviz:lesson_shared", args=[token]) if token
        else reverse("netviz:lesson", args=[lesson.pk]),
        "shared": shared,
        "HopMark": HopMark,
    })


@require_GET
def lesson_present(request: HttpRequest, pk: int, number: int) -> HttpResponse:
    lesson = _lesson(request, pk)
    return _present(request, lesson, number, shared=access.read_only(request, lesson))


@require_GET
def lesson_shared_present(request: HttpRequest, token: str, number: int) -> HttpResponse:
    lesson = access.by_token_or_404("l", token)
    access.grant(request, "l", lesson)
    return _present(request, lesson, number, shared=True)


urlpatterns = [
    path("lessons/", lesson_list, name="lesson_list"),
    path("lessons/new/", lesson_create, name="lesson_create"),
    path("lessons/add-step/", lesson_add_step, name="lesson_add_step"),
    path("lessons/<int:pk>/", lesson_detail, name="lesson"),
    path("lessons/<int:pk>/edit/", lesson_edit, name="lesson_edit"),
    path("lessons/<int:pk>/steps/<int:step_pk>/move/", step_move, name="lesson_step_move"),
    path("lessons/<int:pk>/steps/<int:step_pk>/edit/", step_edit, name="lesson_step_edit"),
    path("lessons/<int:pk>/steps/<int:step_pk>/delete/", step_delete, name="lesson_step_delete"),
    path("lessons/<int:pk>/present/<int:number>/", lesson_present, name="lesson_present"),
    path("lessons/s/<str:token>/", lesson_shared, name="lesson_shared"),
    path("lessons/s/<str:token>/present/<int:number>/", lesson_shared_present, name="lesson_shared_present"),
]

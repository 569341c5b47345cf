"""Home, upload, and the ruleset pages (tables → chains → rules, call graph)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote as urlquote

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import RequestDataTooBig
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import Count, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import NoReverseMatch, path, reverse
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET, require_http_methods
from django_htmx.http import HttpResponseClientRedirect

from netviz import jobs, models, store
from netviz import render as svg_render
from netviz.engine import dot as engine_dot
from netviz.engine import graph as engine_graph

from . import access
from .forms import SnapshotForm, UploadForm, human_size, max_upload
from .names import chain_descriptions
from .nftables import highlight, nftables_context
from .pages_share import share_context
from .trace_forms import TraceForm, example_queries

# Above this many rules the page lists chains collapsed and loads a chain's
# rules when it is opened, so a 110k-rule dump renders in a blink.
INLINE_RULES = 1500
# Above this many chains the chain list is paginated, and the call graph is
# not drawn on the page (graphviz would take minutes); the DOT is still there.
CHAINS_PER_PAGE = 400
CALLGRAPH_MAX_CHAINS = 1500
RULES_PER_PAGE = 500
SEARCH_LIMIT = 1000


# --- access -----------------------------------------------------------------


def visible_rulesets(request: HttpRequest) -> QuerySet[models.Ruleset]:
    # What lists show: public rulesets and the user's own.
    return models.Ruleset.objects.filter(access.listed_q(request))


def get_ruleset_for(request: HttpRequest, pk: int) -> models.Ruleset:
    # Owner, staff, public, or a valid share token (?share= or the session
    # grant of /s/r/<token>/); otherwise 404.
    ruleset: models.Ruleset = access.get_or_404(request, "r", pk)
    return ruleset


def _url_or_none(name: str, *args: Any) -> str | None:
    try:
        return reverse(name, args=args)
    except NoReverseMatch:
        return None


def trace_url(ruleset: models.Ruleset) -> str:
    return _url_or_none("netviz:trace", ruleset.pk) or f"/rulesets/{ruleset.pk}/trace/"


# --- home -------------------------------------------------------------------


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    visible = visible_rulesets(request)
    traces = (
        models.SavedTrace.objects.filter(ruleset__in=visible)
        .filter(access.listed_q(request))
        .select_related("ruleset")[:10]
    )
    ctx = {
        "demos": visible.filter(is_demo=True).order_by("name"),
        "recent": visible.filter(is_demo=False)[:10],
        "traces": [{"trace": t, "url": _saved_trace_url(t)} for t in traces],
        "mine": visible.filter(owner_id=request.user.pk).count() if request.user.is_authenticated else 0,
        # The three ways in, each to a ready example when the demos are loaded.
        "first_comparison": models.Comparison.objects.filter(access.listed_q(request))
        .order_by("-is_demo", "pk").first(),
        "first_lesson": models.Lesson.objects.filter(access.listed_q(request))
        .annotate(n_steps=Count("steps")).filter(n_steps__gt=0).order_by("pk").first(),
    }
    return render(request, "netviz/home.html", ctx)


def _saved_trace_url(trace: models.SavedTrace) -> str | None:
    return _url_or_none("netviz:saved_trace", trace.pk)


# --- upload -----------------------------------------------------------------


def _refused(request: HttpRequest, status: int) -> int:
    # A plain POST gets the honest 4xx; htmx gets 200 so the form with its
    # error swaps in without the browser logging a failed request.
    return 200 if request.htmx else status


IMPORT_KEYS = ("name", "source", "ipsets_source", "nftables_source", "family", "description",
               "host_interfaces", "host_routes", "is_public")


def _limits_context() -> dict[str, Any]:
    limits = store.load_limits()
    return {
        "max_upload": max_upload(),
        "max_upload_human": human_size(max_upload()),
        "limits_text": f"{limits.max_rules:,} rules, {limits.max_chains:,} chains and "
                       f"{limits.max_set_members:,} set members",
    }


def upload_too_large(request: HttpRequest) -> HttpResponse:
    # Pasted text beyond DATA_UPLOAD_MAX_MEMORY_SIZE: Django refuses to read
    # the body, so there is no form to redisplay.
    ctx: dict[str, Any] = {
        **_limits_context(),
        "form": UploadForm(),
        "too_large": f"The upload is larger than the limit of {human_size(max_upload())}.",
    }
    template = "netviz/upload_form.html" if request.htmx else "netviz/upload.html"
    return render(request, template, ctx, status=_refused(request, 413))


@require_http_methods(["GET", "POST"])
def upload(request: HttpRequest) -> HttpResponse:
    ctx: dict[str, Any] = {**_limits_context(), "snapshot_form": SnapshotForm()}
    template = "netviz/upload_form.html" if request.htmx else "netviz/upload.html"
    if request.method != "POST":
        ctx["form"] = UploadForm()
        return render(request, "netviz/upload.html", ctx)

    try:
        form = UploadForm(request.POST, request.FILES)
        valid = form.is_valid()
    except RequestDataTooBig:
        return upload_too_large(request)
    ctx["form"] = form
    if not valid:
        too_large = any(e.code == "too_large" for errs in form.errors.as_data().values() for e in errs)
        return render(request, template, ctx, status=_refused(request, 413 if too_large else 400))

    data = form.cleaned_data
    owner = request.user if request.user.is_authenticated else None
    size = len(data["source"]) + len(data["ipsets_source"]) + len(data["nftables_source"])
    if size > settings.NETVIZ_IMPORT_JOB_BYTES:
        # A big dump takes seconds to parse and store: a worker does it as a
        # job and the job page shows how far it got.
        job = jobs.submit("import_dump", {key: data.get(key) for key in IMPORT_KEYS}, owner=owner,
                          title=f"Import · {data['name']}")
        access.remember_job(request, job)
        if request.htmx:
            return HttpResponseClientRedirect(job.get_absolute_url())
        return redirect(job.get_absolute_url())
    try:
        # The ruleset and its host profile are stored together or not at all.
        with transaction.atomic():
            ruleset = store.store_ruleset(
                name=data["name"],
                source=data["source"],
                ipsets_source=data["ipsets_source"],
                nftables_source=data["nftables_source"],
                family=data.get("family") or None,
                owner=owner,
                description=data.get("description", ""),
            )
            if data["host_interfaces"] or data["host_routes"]:
                store.store_host(
                    name=f"{ruleset.name} host",
                    interfaces=data["host_interfaces"],
                    routes=data["host_routes"],
                    ruleset=ruleset,
                    owner=owner,
                )
    except store.ParseError as exc:
        ctx["parse_error"] = parse_error_context(
            exc, data["source"], data["ipsets_source"], data["nftables_source"]
        )
        return render(request, template, ctx, status=_refused(request, 400))
    if owner is not None and data.get("is_public"):
        # A signed-in user's upload is private unless they tick "visible to
        # everyone" (store_ruleset makes an owner's upload private).
        models.Ruleset.objects.filter(pk=ruleset.pk).update(is_public=True)
        models.HostProfile.objects.filter(ruleset=ruleset, owner=owner).update(is_public=True)

    url = reverse("netviz:ruleset", args=[ruleset.pk])
    messages.success(
        request,
        f"Uploaded {ruleset.rule_count} rules in {ruleset.chain_count} chains. "
        "Next: pick a packet below to follow through the rules, or browse the chains.",
    )
    if request.htmx:
        return HttpResponseClientRedirect(url)
    return redirect(url)


ORIGINS = {"ipsets": "ipset text", "nftables": "nft listing"}


def parse_error_context(
    exc: store.ParseError, source: str, ipsets_source: str = "", nftables_source: str = ""
) -> dict[str, Any]:
    line_no = int(getattr(exc, "line", 0) or 0)
    column = int(getattr(exc, "column", 0) or 0)
    origin = getattr(exc, "origin", "dump")
    text = getattr(exc, "text", "") or ""
    if not text:
        texts = {"ipsets": ipsets_source, "nftables": nftables_source}
        lines = texts.get(origin, source).splitlines()
        text = lines[line_no - 1] if 0 < line_no <= len(lines) else ""
    # A caret under the offending column (1-based); tabs keep their width.
    pad = "".join("\t" if ch == "\t" else " " for ch in text[: max(column - 1, 0)])
    return {
        "origin": ORIGINS.get(origin, "dump"),
        # A JSON listing's error is at a JSON path (`nftables[3].rule.expr[0]`).
        "json_path": getattr(exc, "json_path", "") or "",
        "line": line_no,
        "column": column,
        "reason": getattr(exc, "reason", str(exc)),
        "text": text,
        "caret": pad + "^" if column else "",
        "gutter": f"{line_no} | ",
        "blank_gutter": " " * len(str(line_no)) + " | ",
    }


# --- ruleset pages ----------------------------------------------------------


@require_GET
def ruleset_list(request: HttpRequest) -> HttpResponse:
    paginator = Paginator(visible_rulesets(request), 50)
    page = paginator.get_page(request.GET.get("page"))
    return render(request, "netviz/ruleset_list.html", {"page": page})





ChainRow = tuple[int, int, str, str]  # chain pk, table pk, table name, chain name


def chain_index(ruleset: models.Ruleset) -> list[ChainRow]:
    def compute() -> list[ChainRow]:
        return list(
            models.Chain.objects.filter(table__ruleset=ruleset)
            .order_by("table__position", "position")
            .values_list("pk", "table_id", "table__name", "name")
        )

    return store.derived(ruleset, "chain_index", compute)


class ChainLinks:
    """Where a chain's section is: an anchor on this page, or — when the
    chain list is paginated — the page that holds it."""

    def __init__(self, ruleset: models.Ruleset, index: list[ChainRow]) -> None:
        self.page_url = reverse("netviz:ruleset", args=[ruleset.pk])
        self.names: dict[int, set[str]] = {}
        self.table_name: dict[int, str] = {}
        self.page_of: dict[tuple[str, str], int] = {}
        for n, (_pk, table_id, table_name, name) in enumerate(index):
            self.names.setdefault(table_id, set()).add(name)
            self.table_name[table_id] = table_name
            self.page_of[(table_name, name)] = n // CHAINS_PER_PAGE + 1
        self.paginated = len(index) > CHAINS_PER_PAGE

    def url(self, table: str, chain: str, current_page: int | None = None) -> str:
        anchor = engine_dot.chain_anchor(table, chain)
        page = self.page_of.get((table, chain), 1)
        if not self.paginated or page == current_page:
            return f"#{anchor}" if current_page is not None else f"{self.page_url}#{anchor}"
        return f"{self.page_url}?page={page}#{anchor}"

    def target(self, rule: models.Rule, current_page: int | None) -> str | None:
        table_id = rule.chain.table_id
        if rule.target and rule.target in self.names.get(table_id, set()):
            return self.url(self.table_name[table_id], rule.target, current_page)
        return None


def _rule_rows(
    rules: list[models.Rule], links: ChainLinks, query: str = "", current_page: int | None = None
) -> list[dict[str, Any]]:
    return [
        {
            "rule": rule,
            "text_html": highlight(rule.text, query),
            "comment_html": highlight(rule.comment, query) if rule.comment else "",
            "target_url": links.target(rule, current_page),
            "anchor": f"rule-{rule.pk}",
        }
        for rule in rules
    ]


def _filters(request: HttpRequest) -> dict[str, str]:
    return {
        "q": request.GET.get("q", "").strip()[:200],
        "table": request.GET.get("table", "").strip()[:16],
        "chain": request.GET.get("chain", "").strip()[:64],
        "target": request.GET.get("target", "").strip()[:64],
    }


def _search(ruleset: models.Ruleset, f: dict[str, str]) -> QuerySet[models.Rule]:
    qs = models.Rule.objects.filter(chain__table__ruleset=ruleset).select_related("chain__table")
    if f["q"]:
        qs = qs.filter(Q(text__icontains=f["q"]) | Q(comment__icontains=f["q"]))
    if f["table"]:
        qs = qs.filter(chain__table__name=f["table"])
    if f["chain"]:
        qs = qs.filter(chain__name=f["chain"])
    if f["target"]:
        qs = qs.filter(target=f["target"])
    return qs.order_by("chain__table__position", "chain__position", "index")


@require_GET
def ruleset_detail(request: HttpRequest, pk: int) -> HttpResponse:
    ruleset = get_ruleset_for(request, pk)
    f = _filters(request)
    filtering = any(f.values())
    index = chain_index(ruleset)
    links = ChainLinks(ruleset, index)
    to_results = bool(request.htmx and request.htmx.target == "results")

    ctx: dict[str, Any] = {"ruleset": ruleset, "filters": f, "filtering": filtering}
    nq = request.GET.get("nq", "").strip()[:200]
    ctx["nft"] = nftables_context(ruleset, nq)
    if request.htmx and request.htmx.target == "nftables-body":
        return render(request, "netviz/partials/ruleset_nftables.html", ctx)
    if filtering:
        qs = _search(ruleset, f)
        total = qs.count()
        rows = _rule_rows(list(qs[:SEARCH_LIMIT]), links, f["q"])
        groups: list[dict[str, Any]] = []
        for row in rows:
            chain = row["rule"].chain
            if not groups or groups[-1]["chain"].pk != chain.pk:
                groups.append(
                    {"chain": chain, "table": chain.table.name, "rows": [],
                     "url": links.url(chain.table.name, chain.name)}
                )
            groups[-1]["rows"].append(row)
        ctx.update({"groups": groups, "total": total, "shown": len(rows), "limit": SEARCH_LIMIT})
        if to_results:
            return render(request, "netviz/partials/ruleset_results.html", ctx)

    analysis = _analysis(ruleset)
    paginator = Paginator(index, CHAINS_PER_PAGE)
    chain_page = paginator.get_page(request.GET.get("page"))
    current = chain_page.number
    page_pks = [row[0] for row in chain_page.object_list]
    chains = models.Chain.objects.filter(pk__in=page_pks).select_related("table").annotate(n=Count("rules"))
    by_pk = {c.pk: c for c in chains}
    inline = ruleset.rule_count <= INLINE_RULES
    rules_by_chain: dict[int, list[dict[str, Any]]] = {}
    if inline and not filtering:
        page_rules = list(
            models.Rule.objects.filter(chain_id__in=page_pks).select_related("chain")
        )
        for row in _rule_rows(page_rules, links, current_page=current):
            rules_by_chain.setdefault(row["rule"].chain_id, []).append(row)

    table_blocks: list[dict[str, Any]] = []
    for chain_pk, table_id, table_name, name in chain_page.object_list:
        chain = by_pk[chain_pk]
        if not table_blocks or table_blocks[-1]["table"].pk != table_id:
            table_blocks.append({"table": chain.table, "chains": []})
        key = (table_name, name)
        table_blocks[-1]["chains"].append(
            {
                "chain": chain,
                "anchor": engine_dot.chain_anchor(table_name, name),
                "pretty": analysis["describe"].get(key, ""),
                "unreachable": key in analysis["unreachable"],
                "empty": key in analysis["empty"],
                "rule_count": chain.n,
                "rows": rules_by_chain.get(chain_pk, []),
                "callers": [
                    {"chain": src[1], "rule": idx, "goto": goto,
                     "url": links.url(src[0], src[1], current)}
                    for src, idx, goto in analysis["callers"].get(key, [])[:12]
                ],
            }
        )

    has_counters = models.Rule.objects.filter(
        chain__table__ruleset=ruleset, packets__isnull=False
    ).exists()
    targets = list(
        models.Rule.objects.filter(chain__table__ruleset=ruleset)
        .exclude(target="")
        .values_list("target", flat=True)
        .distinct()
        .order_by("target")[:300]
    )
    chain_names = sorted({row[3] for row in index})
    table_names = list(ruleset.tables.values_list("name", flat=True))
    # The call graph can be narrowed to an nft table too ("inet firewalld").
    graph_tables = table_names + (ctx["nft"]["table_keys"] if ctx["nft"] else [])
    ctx.update(
        {
            "tables": table_blocks,
            "chain_page": chain_page,
            "inline": inline,
            "has_counters": has_counters,
            "targets": targets,
            "table_names": table_names,
            "graph_tables": graph_tables,
            "chain_names": chain_names[:2000],
            "unreachable_count": len(analysis["unreachable"]),
            "empty_count": len(analysis["empty"]),
            "ipsets": ruleset.ipsets.all()[:200],
            "ipset_count": ruleset.ipsets.count(),
            "hosts": ruleset.hosts.all(),
            "can_edit": access.can_edit(request, "r", ruleset),
            "traces": [
                {"trace": t, "url": _saved_trace_url(t)}
                for t in ruleset.traces.filter(access.listed_q(request))[:20]
            ],
            "share": share_context(request, "r", ruleset),
            "trace_url": trace_url(ruleset),
            # Packets to start from, built from the host profile and the
            # dump (the trace page's empty state offers the same ones).
            "trace_examples": example_queries(TraceForm(ruleset=ruleset)),
        }
    )
    if to_results:
        return render(request, "netviz/partials/ruleset_results.html", ctx)
    return render(request, "netviz/ruleset.html", ctx)


def _analysis(ruleset: models.Ruleset) -> dict[str, Any]:
    def compute() -> dict[str, Any]:
        parsed = store.load_ruleset(ruleset)
        graph = engine_graph.call_graph(parsed)
        callers: dict[tuple[str, str], list[tuple[tuple[str, str], int, bool]]] = {}
        for src, dst, data in graph.edges(data=True):
            callers.setdefault(dst, []).append((src, int(data["rule"]), bool(data["goto"])))
        for entries in callers.values():
            entries.sort()
        return {
            "describe": chain_descriptions(parsed),
            "unreachable": engine_graph.unreachable_chains(graph),
            "empty": engine_graph.empty_chains(graph),
            "callers": callers,
        }

    return store.derived(ruleset, "analysis", compute)


@require_GET
def ruleset_chain(request: HttpRequest, pk: int, table: str, chain: str) -> HttpResponse:
    """A stable link to a chain's section, whichever page it is on."""
    ruleset = get_ruleset_for(request, pk)
    links = ChainLinks(ruleset, chain_index(ruleset))
    if " " in table:
        # An nft chain ("inet firewalld", "filter_INPUT"): its section on the page.
        family, name = table.split(" ", 1)
        nft = store.load_nftables(ruleset)
        nft_table = nft.table(family, name) if nft is not None else None
        if nft_table is None or nft_table.chain(chain) is None:
            raise Http404("No such chain")
        anchor = engine_dot.chain_anchor(table, chain)
        number = request.GET.get("rule", "")
        if number.isdigit():
            anchor += f"-rule-{int(number)}"
        return redirect(reverse("netviz:ruleset", args=[ruleset.pk]) + "#" + anchor)
    if (table, chain) not in links.page_of:
        raise Http404("No such chain")
    url = links.url(table, chain)
    number = request.GET.get("rule", "")
    # ?rule=N (1-based, as in a trace's hops) lands on the rule's row when
    # the page lists rules inline; a collapsed chain keeps the chain anchor.
    if number.isdigit() and ruleset.rule_count <= INLINE_RULES:
        rule = models.Rule.objects.filter(
            chain__table__ruleset=ruleset, chain__table__name=table, chain__name=chain,
            index=int(number),
        ).first()
        if rule is not None:
            url = url.split("#", 1)[0] + f"#rule-{rule.pk}"
    return redirect(url)


@require_GET
def ruleset_chain_rules(request: HttpRequest, pk: int, chain_pk: int) -> HttpResponse:
    ruleset = get_ruleset_for(request, pk)
    chain = get_object_or_404(
        models.Chain.objects.select_related("table"), pk=chain_pk, table__ruleset=ruleset
    )
    links = ChainLinks(ruleset, chain_index(ruleset))
    paginator = Paginator(chain.rules.select_related("chain"), RULES_PER_PAGE)
    page = paginator.get_page(request.GET.get("page"))
    current = links.page_of.get((chain.table.name, chain.name))
    rows = _rule_rows(list(page.object_list), links, current_page=current)
    has_counters = any(r["rule"].packets is not None for r in rows)
    return render(
        request,
        "netviz/partials/ruleset_chain_rules.html",
        {"ruleset": ruleset, "chain": chain, "rows": rows, "page": page, "has_counters": has_counters},
    )


def _callgraph_dot(ruleset: models.Ruleset, table: str | None) -> str:
    parsed = store.load_ruleset(ruleset)
    describe = chain_descriptions(parsed)
    page_url = reverse("netviz:ruleset", args=[ruleset.pk])
    paginated = ruleset.chain_count > CHAINS_PER_PAGE

    def href(t: str, c: str) -> str:
        if paginated:
            url = reverse("netviz:ruleset_chain", args=[ruleset.pk, t, c])
        else:
            url = f"{page_url}#{engine_dot.chain_anchor(t, c)}"
        # graphviz copies URL= into the SVG's xlink:href as it is, without
        # XML-escaping: a chain named `<script>…` or `&amp;` would make the
        # SVG malformed (or, with a `"`, break out of the attribute).  Percent-
        # encode all but the URL's own delimiters; browsers decode a fragment
        # before looking the id up (HTML "find a potential indicated element").
        return urlquote(url, safe="/#?=%-_.~")

    return engine_dot.callgraph_dot(
        parsed, table or None, nft=store.load_nftables(ruleset),
        describe=lambda t, c: describe.get((t, c)), href=href,
    )


def _nft_table_keys(ruleset: models.Ruleset) -> dict[str, int]:
    nft = store.load_nftables(ruleset)
    if nft is None:
        return {}
    return {f"{t.family} {t.name}": len(t.chains) for t in nft.tables if not t.managed}


def _too_many_chains(ruleset: models.Ruleset, table: str | None) -> str | None:
    nft_tables = _nft_table_keys(ruleset)
    if table in nft_tables:
        count = nft_tables[table]
    elif table:
        count = models.Chain.objects.filter(table__ruleset=ruleset, table__name=table).count()
    else:
        count = ruleset.chain_count
    if count > CALLGRAPH_MAX_CHAINS:
        return f"{count} chains are too many to lay out here (limit {CALLGRAPH_MAX_CHAINS})"
    return None


def _table_param(request: HttpRequest, ruleset: models.Ruleset) -> str | None:
    table = request.GET.get("table") or None
    if (
        table is not None
        and table not in _nft_table_keys(ruleset)
        and not ruleset.tables.filter(name=table).exists()
    ):
        raise Http404("No such table")
    return table


@require_GET
def ruleset_callgraph(request: HttpRequest, pk: int) -> HttpResponse:
    ruleset = get_ruleset_for(request, pk)
    table = _table_param(request, ruleset)
    ctx: dict[str, Any] = {"ruleset": ruleset, "table": table}
    too_many = _too_many_chains(ruleset, table)
    if too_many:
        ctx["error"] = too_many
        return render(request, "netviz/partials/ruleset_callgraph.html", ctx)
    try:
        svg = svg_render.render_svg(_callgraph_dot(ruleset, table))
        # graphviz wrote every label XML-escaped from DOT we escaped ourselves.
        ctx["svg"] = mark_safe(svg_render.inline_svg(svg))
    except svg_render.RenderError as exc:
        ctx["error"] = str(exc)
    return render(request, "netviz/partials/ruleset_callgraph.html", ctx)


@require_GET
def ruleset_callgraph_svg(request: HttpRequest, pk: int) -> HttpResponse:
    ruleset = get_ruleset_for(request, pk)
    table = _table_param(request, ruleset)
    too_many = _too_many_chains(ruleset, table)
    if too_many:
        return HttpResponse(f"Cannot draw the call graph: {too_many}\n", status=422, content_type="text/plain")
    try:
        svg = svg_render.render_svg(_callgraph_dot(ruleset, table))
    except svg_render.RenderError as exc:
        return HttpResponse(f"Cannot draw the call graph: {exc}\n", status=422, content_type="text/plain")
    response = HttpResponse(svg, content_type="image/svg+xml")
    response["Content-Disposition"] = f'inline; filename="ruleset-{ruleset.pk}-callgraph.svg"'
    return response


@require_GET
def ruleset_callgraph_dot(request: HttpRequest, pk: int) -> HttpResponse:
    ruleset = get_ruleset_for(request, pk)
    table = _table_param(request, ruleset)
    response = HttpResponse(_callgraph_dot(ruleset, table), content_type="text/vnd.graphviz; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="ruleset-{ruleset.pk}-callgraph.dot"'
    return response


@require_GET
def ruleset_source(request: HttpRequest, pk: int) -> HttpResponse:
    ruleset = get_ruleset_for(request, pk)
    response = HttpResponse(ruleset.source, content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="ruleset-{ruleset.pk}.rules"'
    return response


@require_GET
def ruleset_nftables_source(request: HttpRequest, pk: int) -> HttpResponse:
    ruleset = get_ruleset_for(request, pk)
    if not ruleset.nftables_source:
        raise Http404("This ruleset has no nft listing")
    json_listing = ruleset.nftables_source.lstrip().startswith("{")
    response = HttpResponse(
        ruleset.nftables_source,
        content_type="application/json" if json_listing else "text/plain; charset=utf-8",
    )
    name = f"ruleset-{ruleset.pk}.{'json' if json_listing else 'nft'}"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


@require_GET
def ruleset_ipsets_source(request: HttpRequest, pk: int) -> HttpResponse:
    ruleset = get_ruleset_for(request, pk)
    if not ruleset.ipsets_source:
        raise Http404("This ruleset has no ipsets")
    response = HttpResponse(ruleset.ipsets_source, content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="ruleset-{ruleset.pk}.ipset"'
    return response


urlpatterns = [
    path("", home, name="home"),
    path("upload/", upload, name="upload"),
    path("rulesets/", ruleset_list, name="ruleset_list"),
    path("rulesets/<int:pk>/", ruleset_detail, name="ruleset"),
    path("rulesets/<int:pk>/chain/<str:table>/<str:chain>/", ruleset_chain, name="ruleset_chain"),
    path("rulesets/<int:pk>/chains/<int:chain_pk>/rules/", ruleset_chain_rules, name="ruleset_chain_rules"),
    path("rulesets/<int:pk>/callgraph/", ruleset_callgraph, name="ruleset_callgraph"),
    path("rulesets/<int:pk>/callgraph.svg", ruleset_callgraph_svg, name="ruleset_callgraph_svg"),
    path("rulesets/<int:pk>/callgraph.dot", ruleset_callgraph_dot, name="ruleset_callgraph_dot"),
    path("rulesets/<int:pk>/dump.rules", ruleset_source, name="ruleset_source"),
    path("rulesets/<int:pk>/ipsets.txt", ruleset_ipsets_source, name="ruleset_ipsets_source"),
    path("rulesets/<int:pk>/nftables.txt", ruleset_nftables_source, name="ruleset_nftables_source"),
]

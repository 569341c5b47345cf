"""The JSON API for automation (README "API").

    POST /api/snapshots/                      a netviz-collect snapshot in;
                                              the new ruleset's URL out
    GET  /api/rulesets/<id>/trace?packet=…    the `trace --json` document

Authentication is a personal API token (netviz/apitokens.py) in the
Authorization header.  POST takes nothing else: it never looks at the
session cookie, which is why it alone may skip the CSRF check (a forged
cross-site request cannot carry the header).  GET also works with the
session or anonymously, and sees exactly what the pages show
(netviz/web/access.py): someone else's private ruleset is a 404.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.urls import path, reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from netviz import apitokens
from netviz.engine.packetspec import PacketSpecError, parse_packet_spec
from netviz.engine.pipeline import PacketError, state_from_options, trace_dicts
from netviz.engine.ruleset import Family
from netviz.snapshots import SnapshotError, import_snapshot
from netviz.store import load_nftables, load_ruleset

from . import access
from .forms import human_size, max_upload
from .trace_forms import host_dict


def _error(status: int, message: str, **extra: Any) -> JsonResponse:
    response = JsonResponse({"error": message, **extra}, status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="netviz"'
    return response


class _Refused(Exception):
    def __init__(self, response: JsonResponse) -> None:
        self.response = response


def _token_user(request: HttpRequest, required: bool) -> Any:
    """The user of the request's API token; AnonymousUser when there is
    none and none is required."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if not header:
        if required:
            raise _Refused(_error(401, "an API token is required: Authorization: Bearer <token>"))
        return None
    token = apitokens.bearer(header)
    if token is None:
        raise _Refused(_error(401, "the Authorization header must be `Bearer <token>`"))
    user = apitokens.user_for(token)
    if user is None:
        raise _Refused(_error(401, "this API token is not valid (wrong, or revoked)"))
    return user


def _absolute(request: HttpRequest, url: str) -> str:
    return request.build_absolute_uri(url)


def _snapshot_text(request: HttpRequest) -> str:
    upload = request.FILES.get("snapshot") or request.FILES.get("file")
    if upload is not None:
        if upload.size is not None and upload.size > max_upload():
            raise _Refused(_error(413, f"the snapshot is larger than the limit of {human_size(max_upload())}"))
        data = upload.read()
    else:
        data = request.body
        if len(data) > max_upload():
            raise _Refused(_error(413, f"the snapshot is larger than the limit of {human_size(max_upload())}"))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        # iptables-save writes comment bytes as they are.
        return data.decode("latin-1")


@csrf_exempt  # token-authenticated only: see the module docstring
@require_POST
def snapshots(request: HttpRequest) -> HttpResponse:
    try:
        user = _token_user(request, required=True)
        text = _snapshot_text(request)
    except _Refused as refused:
        return refused.response
    except RequestDataTooBig:
        return _error(413, f"the snapshot is larger than the limit of {human_size(max_upload())}")
    public = request.GET.get("public", "") in ("1", "true", "yes")
    try:
        result = import_snapshot(text, name=request.GET.get("name", ""), owner=user, is_public=public)
    except SnapshotError as exc:
        return _error(400, f"line {exc.line}: {exc.reason}", line=exc.line, section=exc.section,
                      text=exc.text, stored=False)
    rulesets = [
        {
            "id": r.pk,
            "family": r.family,
            "url": _absolute(request, r.get_absolute_url()),
            "trace_api": _absolute(request, reverse("netviz:api_trace", args=[r.pk])),
            "rules": r.rule_count,
        }
        for r in result.rulesets
    ]
    return JsonResponse(
        {
            "url": rulesets[0]["url"],
            "snapshot": result.snapshot.pk,
            "rulesets": rulesets,
            "public": result.ruleset.is_public,
            "notes": result.notes,
        },
        status=201,
    )


@require_GET
def ruleset_trace(request: HttpRequest, pk: int) -> HttpResponse:
    try:
        user = _token_user(request, required=False)
    except _Refused as refused:
        return refused.response
    if user is not None:
        # The token's user, not whoever the session cookie belongs to.
        request.user = user
    elif request.META.get("HTTP_AUTHORIZATION"):
        request.user = AnonymousUser()
    try:
        ruleset = access.get_or_404(request, "r", pk)
    except Http404:  # the same answer for missing and for private
        return _error(404, "no such ruleset")
    spec = request.GET.get("packet", "")
    if not spec:
        return _error(400, 'give the packet: ?packet=tcp 10.0.0.1:40000 > 10.0.0.2:80 in eth0')
    hosts = list(ruleset.hosts.all())
    host = hosts[0] if hosts else None
    if request.GET.get("host"):
        host = next((h for h in hosts if str(h.pk) == request.GET["host"]), None)
        if host is None:
            return _error(400, f"ruleset {ruleset.pk} has no host profile {request.GET['host']}")
    try:
        packet = parse_packet_spec(spec)
        options: dict[str, Any] = {}
        if request.GET.get("seed"):
            options["seed"] = int(request.GET["seed"])
        trace = trace_dicts(
            load_ruleset(ruleset), host_dict(host, ruleset.family), packet, Family(ruleset.family),
            state_from_options(options), nft=load_nftables(ruleset),
        )
    except (PacketSpecError, PacketError, ValueError) as exc:
        return _error(400, str(exc))
    return JsonResponse(trace.to_dict())


urlpatterns = [
    path("api/snapshots/", snapshots, name="api_snapshots"),
    path("api/rulesets/<int:pk>/trace", ruleset_trace, name="api_trace"),
    path("api/rulesets/<int:pk>/trace/", ruleset_trace),
]

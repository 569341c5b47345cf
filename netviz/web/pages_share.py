"""Read-only share links (/s/<kind>/<token>/) and revoking them.

A link records a grant in the session (access.py) and opens the object's
page; its holder sees it without edit, share or delete controls.  "Revoke
link" gives the object a new token, which ends every grant of the old one.
"""

from __future__ import annotations

from typing import Any

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import path, reverse
from django.views.decorators.http import require_GET, require_POST

from netviz import models

from . import access


def object_url(kind: access.Kind, obj: Any) -> str:
    names = {"r": "netviz:ruleset", "t": "netviz:saved_trace", "c": "netviz:comparison", "l": "netviz:lesson"}
    return reverse(names[kind], args=[obj.pk])


def share_url(kind: access.Kind, obj: Any) -> str:
    return reverse("netviz:share", args=[kind, obj.share_token])


def share_context(request: HttpRequest, kind: access.Kind, obj: Any) -> dict[str, Any] | None:
    """The share panel: shown to whoever may manage the object; and, without
    "Revoke", on an anonymous public comparison or lesson, whose read-only
    view (no authoring controls) is what a class is sent to."""
    can_revoke = access.owns(request, obj)
    if not can_revoke and not (obj.owner_id is None and obj.is_public and kind in ("c", "l")):
        return None
    url = share_url(kind, obj)
    return {
        "url": request.build_absolute_uri(url),
        "path": url,
        "can_revoke": can_revoke,
        "revoke_url": reverse("netviz:share_revoke", args=[kind, obj.pk]),
        "is_public": obj.is_public,
        "kind_name": {"r": "ruleset", "t": "trace", "c": "comparison", "l": "lesson"}[kind],
    }


@require_GET
def share_open(request: HttpRequest, kind: str, token: str) -> HttpResponse:
    if kind not in access.KINDS:
        raise Http404("No such kind of link")
    k: access.Kind = kind  # type: ignore[assignment]
    obj = access.by_token_or_404(k, token)
    access.grant(request, k, obj)
    if k == "c":
        from .pages_compare import render_shared_comparison

        return render_shared_comparison(request, obj)
    if k == "l":
        from .pages_lessons import render_shared_lesson

        return render_shared_lesson(request, obj)
    return redirect(object_url(k, obj))


@require_POST
def share_revoke(request: HttpRequest, kind: str, pk: int) -> HttpResponse:
    if kind not in access.KINDS:
        raise Http404("No such kind of link")
    k: access.Kind = kind  # type: ignore[assignment]
    obj = access.get_or_404(request, k, pk)
    if not access.owns(request, obj):
        raise Http404("No such object")
    obj.share_token = models.new_token()
    obj.save(update_fields=["share_token"])
    return redirect(object_url(k, obj) + "#share")


urlpatterns = [
    path("s/<str:kind>/<str:token>/", share_open, name="share"),
    path("s/<str:kind>/<int:pk>/revoke/", share_revoke, name="share_revoke"),
]

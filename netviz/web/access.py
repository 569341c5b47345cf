"""Who may see what: owners, staff, public objects, and read-only share links.

Every page that reads a ruleset, saved trace, comparison or lesson asks here.
The rule is one for all of them: the owner and staff see everything, anyone
sees a public object, and a holder of the object's share link sees it
read-only.  Anything else is a 404, never a 403, so a private object's
existence is not disclosed.

A share link (/s/<kind>/<token>/) records a grant in the session: the pages
an object is drawn from (chain partials, call graph, downloads, SVGs) then
work for the holder without carrying the token in every URL.  A grant is the
pair (pk, token) and is checked against the object's current token, so
"Revoke link" (a new token) ends every grant at once.  `?share=<token>` on a
ruleset URL works too, for clients without cookies.

A share link to a trace, comparison or lesson also lets its holder read the
rulesets that object is built from: its pages show their rules and draw from
them, so withholding them would only break the page, not keep a secret.
"""

from __future__ import annotations

from typing import Any, Literal

from django.db.models import Model, Q, QuerySet
from django.http import Http404, HttpRequest

from netviz import models

Kind = Literal["r", "t", "c", "l"]
KINDS: dict[str, type[models.Owned]] = {
    "r": models.Ruleset,
    "t": models.SavedTrace,
    "c": models.Comparison,
    "l": models.Lesson,
}
SESSION_KEY = "netviz_shares"
MAX_GRANTS = 200
# Objects this browser made without an account: it alone may edit them.
AUTHORED_KEY = "netviz_authored"


def _user_pk(request: HttpRequest) -> int | None:
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return int(user.pk)
    return None


def is_staff(request: HttpRequest) -> bool:
    user = getattr(request, "user", None)
    return bool(user is not None and user.is_authenticated and user.is_staff)


def listed_q(request: HttpRequest) -> Q:
    """What lists show: public objects and the user's own (staff browse the
    rest in the admin, so lists stay readable for them too)."""
    pk = _user_pk(request)
    if pk is not None:
        return Q(is_public=True) | Q(owner_id=pk)
    return Q(is_public=True)


def owns(request: HttpRequest, obj: Any) -> bool:
    """May manage the object: its share link, its visibility, its content."""
    if is_staff(request):
        return True
    pk = _user_pk(request)
    return pk is not None and obj.owner_id == pk


def mark_authored(request: HttpRequest, kind: Kind, obj: Any) -> None:
    """Remember an object made without an account, so the browser that made
    it can keep editing it (nobody else can: there is no owner to check)."""
    session = getattr(request, "session", None)
    if session is None or obj.owner_id is not None:
        return
    authored = [k for k in session.get(AUTHORED_KEY, []) if isinstance(k, str)]
    authored.append(f"{kind}:{obj.pk}")
    session[AUTHORED_KEY] = authored[-MAX_GRANTS:]


def authored_pks(request: HttpRequest, kind: Kind) -> list[int]:
    session = getattr(request, "session", None)
    if session is None:
        return []
    out = []
    for key in session.get(AUTHORED_KEY, []):
        k, _, pk = str(key).partition(":")
        if k == kind and pk.isdigit():
            out.append(int(pk))
    return out


def can_edit(request: HttpRequest, kind: Kind, obj: Any) -> bool:
    """May change the object's content: its owner and staff; an object made
    without an account only by the browser that made it."""
    if owns(request, obj):
        return True
    return obj.owner_id is None and obj.pk in authored_pks(request, kind)


# --- share grants in the session ---------------------------------------------


def grant(request: HttpRequest, kind: Kind, obj: Any) -> None:
    session = getattr(request, "session", None)
    if session is None:
        return
    grants: dict[str, str] = dict(session.get(SESSION_KEY, {}))
    key = f"{kind}:{obj.pk}"
    grants.pop(key, None)
    grants[key] = obj.share_token
    # Keep the newest grants only: a session is not a store.
    while len(grants) > MAX_GRANTS:
        grants.pop(next(iter(grants)))
    session[SESSION_KEY] = grants


def _grants(request: HttpRequest, kind: Kind) -> list[tuple[int, str]]:
    session = getattr(request, "session", None)
    if session is None:
        return []
    out = []
    for key, token in dict(session.get(SESSION_KEY, {})).items():
        k, _, pk = key.partition(":")
        if k == kind and pk.isdigit() and isinstance(token, str):
            out.append((int(pk), token))
    return out


def _grant_q(request: HttpRequest, kind: Kind) -> Q | None:
    q: Q | None = None
    for pk, token in _grants(request, kind):
        one = Q(pk=pk, share_token=token)
        q = one if q is None else q | one
    return q


def has_grant(request: HttpRequest, kind: Kind, obj: Any) -> bool:
    return any(pk == obj.pk and token == obj.share_token for pk, token in _grants(request, kind))


def _shared_ruleset_pks(request: HttpRequest) -> set[int]:
    """Rulesets reachable through a granted trace, comparison or lesson."""
    pks: set[int] = set()
    tq = _grant_q(request, "t")
    if tq is not None:
        pks.update(models.SavedTrace.objects.filter(tq).values_list("ruleset_id", flat=True))
    cq = _grant_q(request, "c")
    if cq is not None:
        for left, right in models.Comparison.objects.filter(cq).values_list(
            "left_ruleset_id", "right_ruleset_id"
        ):
            pks.update((left, right))
    lq = _grant_q(request, "l")
    if lq is not None:
        lessons = models.Lesson.objects.filter(lq)
        steps = models.LessonStep.objects.filter(lesson__in=lessons)
        pks.update(
            pk for pk in steps.values_list("saved_trace__ruleset_id", flat=True) if pk is not None
        )
        for left, right in steps.filter(comparison__isnull=False).values_list(
            "comparison__left_ruleset_id", "comparison__right_ruleset_id"
        ):
            pks.update((left, right))
    return pks


# --- the checks -------------------------------------------------------------------


def visible_q(request: HttpRequest, kind: Kind) -> Q:
    """Every object of a kind this request may read (for lookups and the
    choices of a form; lists use `listed_q`)."""
    if is_staff(request):
        return Q()
    q = listed_q(request)
    gq = _grant_q(request, kind)
    if gq is not None:
        q |= gq
    if kind == "r":
        shared = _shared_ruleset_pks(request)
        if shared:
            q |= Q(pk__in=shared)
    elif kind == "t":
        # A granted lesson shows the traces of its steps.
        lq = _grant_q(request, "l")
        if lq is not None:
            q |= Q(lesson_steps__lesson__in=models.Lesson.objects.filter(lq))
    elif kind == "c":
        lq = _grant_q(request, "l")
        if lq is not None:
            q |= Q(lesson_steps__lesson__in=models.Lesson.objects.filter(lq))
    return q


def visible(request: HttpRequest, kind: Kind) -> QuerySet[Any]:
    model: type[Model] = KINDS[kind]
    return model.objects.filter(visible_q(request, kind)).distinct()


def can_view(request: HttpRequest, kind: Kind, obj: Any) -> bool:
    if obj.is_public or owns(request, obj):
        return True
    token = request.GET.get("share")
    if token and token == obj.share_token:
        grant(request, kind, obj)
        return True
    if has_grant(request, kind, obj):
        return True
    return visible(request, kind).filter(pk=obj.pk).exists()


def get_or_404(request: HttpRequest, kind: Kind, pk: int) -> Any:
    model: type[Model] = KINDS[kind]
    obj = model.objects.filter(pk=pk).first()
    if obj is None or not can_view(request, kind, obj):
        # 404 rather than 403: a private object's existence is not disclosed.
        raise Http404("No such object")
    return obj


def given_token(request: HttpRequest, kind: Kind, obj: Any) -> str:
    """The object's share token if this viewer was given it (owner, staff, or
    the holder of its own link), else "".  A page never renders any other:
    a token reached through another object's link would outlive the revoking
    of that link."""
    if owns(request, obj) or has_grant(request, kind, obj):
        return str(obj.share_token)
    return ""


def read_only(request: HttpRequest, obj: Any) -> bool:
    """Seen only through a share link (or as someone else's public object)."""
    return not owns(request, obj) and not (obj.is_public and obj.owner_id is None)


def by_token_or_404(kind: Kind, token: str) -> Any:
    model: type[Model] = KINDS[kind]
    obj = model.objects.filter(share_token=token).first()
    if obj is None:
        raise Http404("This link is not valid (it may have been revoked)")
    return obj


# --- jobs ----------------------------------------------------------------------------

JOBS_SESSION_KEY = "netviz_jobs"
MAX_REMEMBERED_JOBS = 100


def remember_job(request: HttpRequest, job: Any) -> None:
    """Let this session see the job (an anonymous submitter has no owner)."""
    session = getattr(request, "session", None)
    if session is None:
        return
    pks = [pk for pk in session.get(JOBS_SESSION_KEY, []) if pk != job.pk] + [job.pk]
    session[JOBS_SESSION_KEY] = pks[-MAX_REMEMBERED_JOBS:]


def can_see_job(request: HttpRequest, job: Any) -> bool:
    # A job shows what it was given (a dump, a packet): its submitter and
    # staff only, never the public.
    if is_staff(request):
        return True
    if job.owner_id is not None:
        return _user_pk(request) == job.owner_id
    session = getattr(request, "session", None)
    return session is not None and job.pk in session.get(JOBS_SESSION_KEY, [])

"""Jobs pages: one job with its progress (htmx polls the status partial until
it finishes), and the list of the user's jobs."""

from __future__ import annotations

from typing import Any

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET

from netviz.models import Job
from netviz.web import access

# The template that shows a finished job's result, per kind.
RESULT_TEMPLATES = {
    "kernel_check": "netviz/partials/kernel_check.html",
    "live_read": "netviz/partials/job_live_result.html",
    "fleet_part": "netviz/partials/job_fleet_part.html",
    "import_dump": "netviz/partials/job_live_result.html",
    "import_snapshot": "netviz/partials/job_live_result.html",
}


def get_job_or_404(request: HttpRequest, pk: int) -> Job:
    job = Job.objects.filter(pk=pk).first()
    if job is None or not access.can_see_job(request, job):
        raise Http404("No such job")
    return job


def job_context(job: Job) -> dict[str, Any]:
    ctx: dict[str, Any] = {"job": job, "result_template": RESULT_TEMPLATES.get(job.kind, "")}
    if job.kind == "kernel_check" and job.finished_ok:
        # The kernel check partial reads these names (pages_kernel.py too).
        ctx.update({"check": job.result, "available": True,
                    "reason": job.result.get("unavailable", "")})
    return ctx


@require_GET
def job_page(request: HttpRequest, pk: int) -> HttpResponse:
    job = get_job_or_404(request, pk)
    template = "netviz/partials/job_status.html" if request.htmx else "netviz/job.html"
    response = render(request, template, job_context(job))
    patch_vary_headers(response, ["HX-Request"])
    return response


@require_GET
def job_list(request: HttpRequest) -> HttpResponse:
    jobs = Job.objects.none()
    if request.user.is_authenticated:
        jobs = Job.objects.filter(owner=request.user)
    remembered = request.session.get(access.JOBS_SESSION_KEY, [])
    if remembered:
        jobs = jobs | Job.objects.filter(pk__in=remembered, owner__isnull=True)
    return render(request, "netviz/job_list.html", {"jobs": jobs.order_by("-created")[:200]})


urlpatterns = [
    path("jobs/", job_list, name="job_list"),
    path("jobs/<int:pk>/", job_page, name="job"),
]

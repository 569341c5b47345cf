"""A request body too large to read gets a readable 413.

Django refuses to read a form body over DATA_UPLOAD_MAX_MEMORY_SIZE
(RequestDataTooBig), and the CSRF middleware is the first to read it, so the
view never ran and the visitor saw a bare "Bad Request (400)".  This runs
just before the CSRF check and answers first: the upload form with its
message on the upload page, a line of text elsewhere.  Nothing is changed
by such a request, so answering before the CSRF check gives nothing away.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse
from django.urls import reverse

from .forms import human_size, max_upload


class TooLargeMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view_func: Any, args: Any, kwargs: Any) -> HttpResponse | None:
        if request.method != "POST" or getattr(view_func, "csrf_exempt", False):
            return None  # the CSRF middleware would not read the body either
        try:
            request.POST  # noqa: B018 -- what CsrfViewMiddleware reads next
        except RequestDataTooBig:
            if request.path == reverse("netviz:upload"):
                from .pages_rulesets import upload_too_large

                return upload_too_large(request)
            return HttpResponse(
                f"The request is larger than the limit of {human_size(max_upload())}.\n",
                status=413,
                content_type="text/plain; charset=utf-8",
            )
        return None

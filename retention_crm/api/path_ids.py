"""Ids in API paths are text too (SPEC §8): one with a NUL or another control character, or a lone
surrogate, answers 400 in the API's error shape before its view runs (PostgreSQL could not even
compare it with a stored id: a 500 otherwise).

``path_ids_checked(urlpatterns)`` wraps the views of every pattern that captures a path id.
"""

import functools
import re
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import URLPattern

from retention_crm.api.errors import error_body

_UNSTORABLE = re.compile("[\\x00-\\x1f\\ud800-\\udfff]")


def path_id_problem(value: str) -> str | None:
    if _UNSTORABLE.search(value):
        return "must not contain control characters or lone surrogates"
    return None


def _checked(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    # functools.wraps keeps what Django and DRF read off a view: csrf_exempt, cls, view_class.
    @functools.wraps(view)
    def checked(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        for name, value in kwargs.items():
            if isinstance(value, str) and (problem := path_id_problem(value)):
                return JsonResponse(error_body("invalid", f"{name}: {problem}", {name: [problem]}), status=400)
        return view(request, *args, **kwargs)

    return checked


def path_ids_checked(patterns: list) -> list:
    for pattern in patterns:
        if isinstance(pattern, URLPattern) and pattern.pattern.regex.groupindex:
            pattern.callback = _checked(pattern.callback)
    return patterns

"""Every API error answers in one shape: {"error": {"code", "message", "fields"}} (SPEC §6)."""

import re
from typing import Any

from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.db import DataError, OperationalError
from django.http import Http404, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import set_rollback

from retention_crm.errors import ApplicationError

_CODES = {
    exceptions.ParseError: "malformed_request",
    exceptions.AuthenticationFailed: "not_authenticated",
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "throttled",
}


class Busy(exceptions.APIException):
    """PostgreSQL gave up on the request to resolve a deadlock or a serialization conflict with a
    concurrent one: it wrote nothing, and the same request again will most likely pass."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "The request collided with a concurrent one and changed nothing; send it again."
    default_code = "busy"
    wait = 1


# SQLSTATEs of a transaction PostgreSQL rolled back for contention: deadlock, serialization failure.
_CONTENTION_SQLSTATES = frozenset({"40P01", "40001"})


def _is_contention(exc: Exception) -> bool:
    return isinstance(exc, OperationalError) and getattr(exc.__cause__, "sqlstate", None) in _CONTENTION_SQLSTATES


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "too_large"


_SURROGATE = re.compile("[\ud800-\udfff]")


def _printable(value: Any) -> Any:
    """An error may quote the input: a lone surrogate in it becomes U+FFFD, which UTF-8 can carry
    (the JSON renderer would fail on the surrogate itself, turning a 400 into a 500)."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {_printable(key): _printable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_printable(item) for item in value]
    return value


def error_body(code: str, message: str, fields: dict[str, Any] | None = None) -> dict[str, Any]:
    return _printable({"error": {"code": code, "message": message, "fields": fields or {}}})


def _is_unstorable_text(exc: Exception) -> bool:
    """Text PostgreSQL refuses that validation missed: a lone surrogate (psycopg cannot encode it)
    or a NUL character. Every input path validates both; this keeps a missed one a 400 (SPEC §8)."""
    if isinstance(exc, UnicodeEncodeError):
        return "surrogate" in exc.reason
    return isinstance(exc, DataError | ValueError) and "NUL" in str(exc)


def _flatten(detail: Any) -> Any:
    """DRF's ErrorDetail lists and dicts as plain strings, lists and dicts."""
    if isinstance(detail, dict):
        return {str(key): _flatten(value) for key, value in detail.items()}
    if isinstance(detail, list):
        return [_flatten(value) for value in detail]
    return str(detail)


def _first_message(fields: dict[str, Any]) -> str:
    for name, problems in fields.items():
        while isinstance(problems, list | dict) and problems:
            problems = problems[0] if isinstance(problems, list) else next(iter(problems.values()))
        return f"{name}: {problems}"
    return "The request is invalid."


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ApplicationError):
        set_rollback()
        return Response(_printable(exc.as_dict()), status=exc.status)
    if _is_unstorable_text(exc):
        set_rollback()
        return Response(
            error_body("invalid", "The request holds text that cannot be stored (a NUL or a lone surrogate)."),
            status=status.HTTP_400_BAD_REQUEST,
        )
    if isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge()
    elif _is_contention(exc):
        exc = Busy()
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    if not isinstance(exc, exceptions.APIException):
        return None  # a bug: let Django log it and answer 500

    headers = {}
    if auth_header := getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = auth_header
    if wait := getattr(exc, "wait", None):
        headers["Retry-After"] = str(int(wait))
    set_rollback()
    if isinstance(exc, exceptions.ValidationError):
        fields = _flatten(exc.detail) if isinstance(exc.detail, dict) else {"non_field_errors": _flatten(exc.detail)}
        return Response(error_body("invalid", _first_message(fields), fields), status=exc.status_code)
    code = _CODES.get(type(exc)) or exc.default_code
    return Response(error_body(code, str(exc.detail)), status=exc.status_code, headers=headers)


def _is_api(request) -> bool:
    return request.path.startswith("/api/")


@csrf_exempt  # it changes nothing: a POST to an unknown path is a JSON 404, not a CSRF page
def json_not_found(request, exception=None):
    """Unknown URLs under /api/ answer in the API's error shape; others get Django's page."""
    if _is_api(request):
        return JsonResponse(error_body("not_found", "No such endpoint."), status=404)
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


def json_server_error(request):
    if _is_api(request):
        return JsonResponse(error_body("server_error", "Something went wrong on our side."), status=500)
    from django.views.defaults import server_error

    return server_error(request)


def json_bad_request(request, exception=None):
    if _is_api(request):
        return JsonResponse(error_body("bad_request", "The request is malformed."), status=400)
    from django.views.defaults import bad_request

    return bad_request(request, exception)

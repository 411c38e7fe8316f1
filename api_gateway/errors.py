"""One place that maps errors to Conductor's error envelope and status codes.

``{"status", "message", "instance", "retryable", "validationErrors"?}``: a
:class:`~podium.errors.PodiumError` answers with its ``http_status`` (InvalidArgument and
validation 400, NotFound 404, Conflict 409, LimitExceeded 413, IllegalState 500, Unavailable
503), a route that does not exist 404, a method the route does not take 405, anything
unexpected (here or an InternalError from a service) 500 with a generic message: the details
go to the log, not to the client.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from api_gateway.http import JsonResponse
from podium.errors import DeadlineExceeded, InternalError, PodiumError, Unavailable

log = logging.getLogger("podium.gateway")

INSTANCE = socket.gethostname()

INTERNAL_MESSAGE = "Internal error; the server's log has the details"
#: For a service that cannot be reached or did not answer: which one, at which address, and
#: the socket's error are for the log.
UNREACHABLE_MESSAGE = "A Podium service cannot be reached; try again"
NO_ANSWER_MESSAGE = "A Podium service did not answer in time; try again"

#: Error codes that are a lost race another attempt would win.
_RETRYABLE_CONFLICTS = frozenset({"VERSION_CONFLICT"})


def envelope(
    status: int,
    message: str,
    *,
    retryable: bool = False,
    validation_errors: list[dict[str, Any]] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "status": status,
        "message": message,
        "instance": INSTANCE,
        "retryable": retryable,
    }
    if validation_errors:
        body["validationErrors"] = validation_errors
    if extra:
        body.update(extra)
    return body


def error_response(
    status: int,
    message: str,
    *,
    retryable: bool = False,
    validation_errors: list[dict[str, Any]] | None = None,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body = envelope(
        status, message, retryable=retryable, validation_errors=validation_errors, extra=extra
    )
    return JsonResponse(body, status_code=status, headers=headers)


def _validation_errors(exc: PodiumError) -> list[dict[str, Any]] | None:
    errors = exc.data.get("validationErrors")
    if not isinstance(errors, list):
        return None
    out = []
    for e in errors:
        if isinstance(e, dict):
            out.append({"path": str(e.get("path", "")), "message": str(e.get("message", ""))})
    return out


def from_podium(exc: PodiumError) -> Response:
    status = exc.http_status if 400 <= exc.http_status <= 599 else 500
    retryable = exc.retryable or exc.code in _RETRYABLE_CONFLICTS
    return error_response(
        status,
        exc.message or exc.code,
        retryable=retryable,
        validation_errors=_validation_errors(exc),
    )


def from_exception(exc: BaseException, request: Request | None = None) -> Response:
    """The response for anything a handler raised (CancelledError is never passed here)."""
    if isinstance(exc, PodiumError):
        if exc.http_status >= 500:
            log.warning("%s %s: %r", _method(request), _path(request), exc)
        if isinstance(exc, InternalError):
            return error_response(500, INTERNAL_MESSAGE)
        if "address" in exc.data:  # raised by an RPC client about a connection, not the request
            if isinstance(exc, Unavailable):
                return error_response(503, UNREACHABLE_MESSAGE, retryable=True)
            if isinstance(exc, DeadlineExceeded):
                return error_response(504, NO_ANSWER_MESSAGE, retryable=True)
        return from_podium(exc)
    if isinstance(exc, HTTPException):
        return http_exception(exc)
    log.exception("unexpected error on %s %s", _method(request), _path(request), exc_info=exc)
    return error_response(500, INTERNAL_MESSAGE)


def http_exception(exc: HTTPException) -> Response:
    status = exc.status_code
    if status == 404:
        message = "No static resource or route found for this path"
    elif status == 405:
        message = "Request method is not supported for this path"
    else:
        message = str(exc.detail)
    return error_response(status, message, headers=dict(exc.headers or {}))


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, HTTPException):
        return from_exception(exc, request)
    return http_exception(exc)


def _method(request: Request | None) -> str:
    return request.method if request is not None else "-"


def _path(request: Request | None) -> str:
    return request.url.path if request is not None else "-"


__all__ = [
    "INSTANCE",
    "envelope",
    "error_response",
    "from_exception",
    "from_podium",
    "handle_http_exception",
]

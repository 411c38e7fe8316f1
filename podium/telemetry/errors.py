"""How a span records the exception that ends it, the same way everywhere."""

from __future__ import annotations

from opentelemetry.trace import Span, Status, StatusCode

from podium.errors import PodiumError
from podium.telemetry import names as n


def error_code(exc: BaseException) -> str:
    """What ``error.type`` says of ``exc``: the Podium error code, or the exception's class."""
    return exc.code if isinstance(exc, PodiumError) else type(exc).__name__


def mark_error(span: Span, exc: BaseException) -> None:
    """Record on ``span`` the exception that ends it: ``error.type`` (the Podium error code, or
    the exception's class), and status ERROR unless the error is the caller's (a Podium error
    below HTTP 500, such as NOT_FOUND or a version conflict)."""
    if not span.is_recording():
        return
    code = error_code(exc)
    span.set_attribute(n.ERROR_TYPE, code)
    if not isinstance(exc, PodiumError) or exc.http_status >= 500:
        span.set_status(Status(StatusCode.ERROR, code))

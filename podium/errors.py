"""One error tree for every service.

Each error has a stable ``code`` (sent over RPC in error frames and mapped by the gateway to
Conductor's error envelope), a human message, structured ``data`` and a ``retryable`` flag.
An error that crosses the RPC boundary is rebuilt on the client side as the same class, found
by its code.
"""

from __future__ import annotations

from typing import Any, ClassVar


class PodiumError(Exception):
    """Root of every error Podium raises on purpose."""

    code: ClassVar[str] = "INTERNAL"
    retryable: ClassVar[bool] = False
    #: HTTP status the gateway answers with (Conductor's conventions).
    http_status: ClassVar[int] = 500

    def __init__(self, message: str, **data: Any) -> None:
        super().__init__(message)
        self.message = message
        self.data: dict[str, Any] = data

    def to_wire(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "data": self.data}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, data={self.data!r})"


class InvalidArgument(PodiumError):
    """The request or a value in it is malformed or breaks a rule."""

    code = "INVALID_ARGUMENT"
    http_status = 400


class NotFound(PodiumError):
    code = "NOT_FOUND"
    http_status = 404


class Conflict(PodiumError):
    """The request conflicts with the current state (already exists, lost a race)."""

    code = "CONFLICT"
    http_status = 409


class LimitExceeded(InvalidArgument):
    """A configured limit (payload size, nesting depth, batch size) was exceeded."""

    code = "LIMIT_EXCEEDED"
    http_status = 413


class Unavailable(PodiumError):
    """A dependency (a Redis shard, Cassandra, another service) cannot be reached now."""

    code = "UNAVAILABLE"
    retryable = True
    http_status = 503


class DeadlineExceeded(PodiumError):
    code = "DEADLINE_EXCEEDED"
    retryable = True
    http_status = 504


class UnknownMethod(PodiumError):
    code = "UNKNOWN_METHOD"
    http_status = 501


class ProtocolError(PodiumError):
    """A frame that cannot be decoded or breaks the envelope's rules."""

    code = "PROTOCOL_ERROR"
    http_status = 400


class InternalError(PodiumError):
    code = "INTERNAL"


class ConfigError(PodiumError):
    """A setting is missing or invalid; the message names the variable and the value."""

    code = "CONFIG_ERROR"


VALIDATION_MESSAGE = "Validation failed, check below errors for detail."


class ValidationError(InvalidArgument):
    """A definition or request broke Conductor's validation rules.

    ``errors`` mirrors Conductor's ``validationErrors``: a list of ``{"path", "message"}``.
    """

    code = "VALIDATION_FAILED"

    def __init__(self, message: str = VALIDATION_MESSAGE, **data: Any) -> None:
        data.setdefault("validationErrors", [])
        super().__init__(message, **data)

    @property
    def errors(self) -> list[dict[str, str]]:
        errors: list[dict[str, str]] = self.data["validationErrors"]
        return errors

    @classmethod
    def of(cls, errors: list[dict[str, str]]) -> ValidationError:
        return cls(VALIDATION_MESSAGE, validationErrors=errors)


class IllegalState(PodiumError):
    """An operation is not allowed in the workflow's current state (Conductor answers 500)."""

    code = "ILLEGAL_STATE"
    http_status = 500


def error_class(code: str) -> type[PodiumError]:
    """The most specific class that declares ``code``, among every subclass of
    :class:`PodiumError` defined in this process (one defined elsewhere, as the store's, is
    found once its module is loaded); :class:`PodiumError` for a code none declares."""

    def find(cls: type[PodiumError]) -> type[PodiumError] | None:
        for sub in cls.__subclasses__():
            found = find(sub)
            if found is not None:
                return found
        return cls if cls.__dict__.get("code") == code else None

    return find(PodiumError) or PodiumError


def error_from_wire(frame: dict[str, Any]) -> PodiumError:
    """Rebuild an error sent by :meth:`PodiumError.to_wire`."""
    code = str(frame.get("code", "INTERNAL"))
    message = str(frame.get("message", ""))
    data = frame.get("data") or {}
    cls = error_class(code)
    err = cls(message, **(data if isinstance(data, dict) else {}))
    if cls is PodiumError and code != PodiumError.code:
        err.data.setdefault("code", code)
    return err

"""Errors the decider raises on purpose (all in the PodiumError tree)."""

from __future__ import annotations

from typing import Any

from podium.errors import InvalidArgument, PodiumError, register_error

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


register_error(ValidationError)
register_error(IllegalState)

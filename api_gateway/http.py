"""Request parsing and response building with Conductor's conventions.

* JSON responses leave out null fields (Jackson's ``NON_NULL``); the free-form maps inside a
  record (``input``, ``outputData``, ...) are passed through as they are.
* Ids come back as ``text/plain`` where Conductor returns a String.
* Booleans in query strings are read case-insensitively (the Python SDK sends ``True``), and
  ``None`` or an empty value counts as absent.
* Bodies are parsed strictly: integers must fit in 64 bits, NaN and Infinity are refused,
  strings must be valid Unicode; anything else is a 400, never a 500 further down.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from podium.errors import InvalidArgument
from podium.types import JSON

log = logging.getLogger("podium.gateway")


#: Keys whose values are user data: nulls inside them are kept.
OPAQUE_KEYS = frozenset(
    {
        "input",
        "output",
        "inputData",
        "outputData",
        "variables",
        "inputParameters",
        "outputParameters",
        "inputTemplate",
        "taskInput",
        "taskOutput",
        "workflowInput",
        "payload",
        "metadata",
        "caseValueParam",
    }
)
_INT64 = 2**63
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def compact(value: Any) -> Any:
    """A copy without null fields, except inside user-data maps."""
    if isinstance(value, dict):
        return {
            k: (v if k in OPAQUE_KEYS else compact(v)) for k, v in value.items() if v is not None
        }
    if isinstance(value, list):
        return [compact(v) for v in value]
    return value


def dumps(value: Any) -> bytes:
    return json.dumps(
        compact(value), ensure_ascii=False, allow_nan=False, separators=(",", ":")
    ).encode("utf-8")


class JsonResponse(JSONResponse):
    """application/json without null fields."""

    def render(self, content: Any) -> bytes:
        return dumps(content)


def ok_json(value: Any, status: int = 200) -> Response:
    return JsonResponse(value, status_code=status)


def ok_text(value: str) -> Response:
    """A String result: the raw text, never JSON-quoted."""
    return Response(value, media_type="text/plain")


def ok_empty(status: int = 200) -> Response:
    return Response(b"", status_code=status)


# -- request bodies ---------------------------------------------------------------------------


class _BodyProblem(ValueError):
    """What is wrong with a body, in words about the body (the message goes to the client)."""


def _parse_int(text: str) -> int:
    # checked before int(), whose own refusal of long digit strings speaks of Python
    if len(text.lstrip("-")) > 20 or not -_INT64 <= int(text) < 2 * _INT64:
        raise _BodyProblem(f"integer {text[:20]}... does not fit in 64 bits")
    return int(text)


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _BodyProblem(f"number {text[:20]} is out of range")
    return value


def _no_constant(text: str) -> Any:
    raise _BodyProblem(f"{text} is not valid JSON")


def parse_json(raw: bytes) -> Any:
    """Parse a request body; InvalidArgument (400) for anything that is not clean JSON.

    The message says what is wrong with the body; it never carries the parser's own words
    (Python's exception texts), which the log gets instead.
    """
    if not raw.strip():
        raise InvalidArgument("Request body is missing or empty")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidArgument(
            f"Malformed JSON request body: not valid UTF-8 (byte 0x{raw[exc.start]:02x} at "
            f"offset {exc.start})"
        ) from None
    try:
        value = json.loads(
            text, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_no_constant
        )
    except _BodyProblem as exc:
        raise InvalidArgument(f"Malformed JSON request body: {_short(exc)}") from None
    except json.JSONDecodeError as exc:
        raise InvalidArgument(
            f"Malformed JSON request body: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise InvalidArgument("Malformed JSON request body: nested too deeply") from None
    except ValueError as exc:
        log.info("request body refused by the JSON parser: %r", exc)
        raise InvalidArgument("Malformed JSON request body") from None
    if _SURROGATE_ESCAPE.search(raw):
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidArgument(
                "Malformed JSON request body: a string holds an unpaired surrogate"
            ) from None
    return value


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) <= 200 else text[:200] + "..."


async def body_json(request: Request, *, required: bool = True) -> Any:
    raw = await request.body()
    if not raw.strip():
        if required:
            raise InvalidArgument("Request body is missing or empty")
        return None
    value = parse_json(raw)
    # the audit record reads its targets from this (api_gateway/audit.py, PARSED_BODY)
    request.scope.setdefault("state", {})["parsed_body"] = value
    return value


async def body_object(request: Request, what: str, *, required: bool = True) -> JSON:
    value = await body_json(request, required=required)
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise InvalidArgument(f"{what} must be a JSON object")
    return value


async def body_list(request: Request, what: str) -> list[Any]:
    value = await body_json(request)
    if not isinstance(value, list):
        raise InvalidArgument(f"{what} must be a JSON array")
    return value


async def body_text(request: Request) -> str:
    raw = await request.body()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidArgument("Request body is not valid UTF-8") from None


# -- query parameters -------------------------------------------------------------------------


_ABSENT = frozenset({"", "None", "null"})


def _raw(request: Request, name: str) -> str | None:
    value = request.query_params.get(name)
    if value is None or value.strip() in _ABSENT:
        return None
    return value


def q_str(request: Request, name: str, default: str | None = None) -> str | None:
    value = _raw(request, name)
    return default if value is None else value


def q_bool(request: Request, name: str, default: bool) -> bool:
    value = _raw(request, name)
    if value is None:
        return default
    low = value.strip().lower()
    if low == "true":
        return True
    if low == "false":
        return False
    raise InvalidArgument(f"Query parameter {name}={value!r} is not a boolean", field=name)


def q_int(
    request: Request,
    name: str,
    default: int | None,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
) -> int | None:
    value = _raw(request, name)
    if value is None:
        return default
    try:
        number = _parse_int(value.strip())
    except ValueError:
        raise InvalidArgument(
            f"Query parameter {name}={value!r} is not an integer", field=name
        ) from None
    if minimum is not None and number < minimum:
        raise InvalidArgument(f"Query parameter {name} must be >= {minimum}", field=name)
    if maximum is not None and number > maximum:
        raise InvalidArgument(f"Query parameter {name} must be <= {maximum}", field=name)
    return number


def q_list(request: Request, name: str) -> list[str]:
    """A repeatable parameter (``?a=x&a=y``), comma-separated values split too."""
    out: list[str] = []
    for value in request.query_params.getlist(name):
        out.extend(v.strip() for v in value.split(",") if v.strip() not in _ABSENT)
    return out


def path(request: Request, name: str) -> str:
    return str(request.path_params[name])


def path_int(request: Request, name: str) -> int:
    raw = str(request.path_params[name])
    try:
        return _parse_int(raw)
    except ValueError:
        raise InvalidArgument(f"Path parameter {name}={raw!r} is not an integer") from None


# -- shape checks -----------------------------------------------------------------------------


def opt_map(body: Mapping[str, Any], key: str, what: str) -> JSON | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidArgument(f"{what}.{key} must be a JSON object", field=key)
    return value


def opt_str(body: Mapping[str, Any], key: str, what: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidArgument(f"{what}.{key} must be a string", field=key)
    return value


def opt_int(body: Mapping[str, Any], key: str, what: str, minimum: int | None = None) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidArgument(f"{what}.{key} must be an integer", field=key)
    if minimum is not None and value < minimum:
        raise InvalidArgument(f"{what}.{key} must be >= {minimum}", field=key)
    return value


def str_map(value: Any, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise InvalidArgument(f"{what} must map names to strings", field=what)
    return value

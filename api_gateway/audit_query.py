"""``GET /api/audit``: the audit trail of one workflow, definition, event handler or key.

Read-only. Records come newest first, at most ``limit`` (100 unless asked, 1,000 at most),
none older than the gateway's ``PODIUM_AUDIT_RETENTION_DAYS``. What a record holds is
described in :mod:`api_gateway.audit`. Records are filed in the background: one made a moment
ago may not be there yet.
"""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response

from api_gateway.context import Gateway
from api_gateway.http import ok_json, q_int, q_str
from api_gateway.routing import Endpoint, query
from podium.errors import InvalidArgument
from podium.store import AUDIT_KINDS

TAG = "audit"
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000

_FILTERS = {
    "workflowId": "Calls that named this workflow (started, changed, or one of its tasks)",
    "definition": "Calls that registered, updated, validated or removed this workflow definition",
    "taskDef": "Calls that registered, updated or removed this task definition",
    "eventHandler": "Calls that added, updated or removed this event handler",
    "keyId": "Calls made with this key (anonymous: without a token; /api/token: the key claimed)",
}


async def audit(request: Request, gateway: Gateway) -> Response:
    chosen = [(kind, value) for kind in AUDIT_KINDS if (value := q_str(request, kind))]
    if len(chosen) != 1:
        raise InvalidArgument(
            f"Give exactly one of the query parameters {', '.join(AUDIT_KINDS)}",
            field="workflowId",
        )
    kind, target = chosen[0]
    limit = q_int(request, "limit", DEFAULT_LIMIT, minimum=1, maximum=MAX_LIMIT) or DEFAULT_LIMIT
    records = await gateway.store.audit.query(
        kind,
        target,
        limit=limit,
        now_ms=int(time.time() * 1000),
        retention_ms=gateway.settings.audit.retention_ms,
    )
    return ok_json(records)


_S = {"type": "string"}
_I = {"type": "integer", "format": "int64"}
AUDIT_RECORD = {
    "type": "object",
    "required": ["id", "time", "keyId", "method", "path", "targets", "status"],
    "properties": {
        "id": _S,
        "time": _I,
        "keyId": _S,
        "roles": {"type": "array", "items": _S},
        "client": _S,
        "method": _S,
        "route": _S,
        "path": _S,
        "targets": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "workflowId": _S, "workflowName": _S, "definition": _S, "version": _I,
                    "taskDef": _S, "taskId": _S, "taskType": _S, "taskReferenceName": _S,
                    "taskStatus": _S, "eventHandler": _S, "accessKey": _S,
                },
            },
        },
        "targetCount": _I,
        "status": {"type": "integer"},
        "error": _S,
        "tookMs": _I,
    },
}  # fmt: skip

ENDPOINTS = [
    Endpoint(
        "GET",
        "/api/audit",
        audit,
        "Audit records of state-changing calls on one target, newest first",
        TAG,
        params=(
            *(query(kind, description=text) for kind, text in _FILTERS.items()),
            query("limit", "integer", f"At most this many ({DEFAULT_LIMIT} if not given)",
                  minimum=1, maximum=MAX_LIMIT),
        ),
        ok_schema={"type": "array", "items": AUDIT_RECORD},
    ),
]  # fmt: skip

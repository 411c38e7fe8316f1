"""``/api/auth/me`` (the caller's key and roles) and ``/api/admin/keys`` (admins manage keys).

Keys made here live in the store, so every gateway replica knows them; the store keeps the
SHA-256 of a key's secret, never the secret, which is answered once, when the key is made.
The secret is 32 random bytes, so a fast hash is enough (nothing to guess from it). Keys from
``PODIUM_AUTH_KEYS`` are listed too but cannot be removed here: configuration owns them.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from api_gateway.auth import Authenticator, secret_hash, stored_key_material
from api_gateway.context import Gateway
from api_gateway.grants import ADMIN_GRANT, KEY_ID_PATTERN, ROLES, GrantError, make_grant
from api_gateway.http import body_object, ok_empty, ok_json, path
from api_gateway.routing import Endpoint, path_param
from podium.errors import Conflict, InvalidArgument, NotFound
from podium.types import JSON

TAG = "auth"

_KEY_SCHEMA: JSON = {
    "type": "object",
    "required": ["keyId", "roles", "taskTypes"],
    "properties": {
        "keyId": {"type": "string"},
        "roles": {"type": "array", "items": {"type": "string", "enum": list(ROLES)}},
        "taskTypes": {"type": "array", "items": {"type": "string"}},
        "source": {"type": "string", "enum": ["config", "store"]},
        "createTime": {"type": "integer", "format": "int64"},
        "createdBy": {"type": "string"},
    },
}
_NEW_KEY: JSON = {
    "type": "object",
    "required": ["keyId", "roles"],
    "properties": {
        "keyId": {"type": "string", "pattern": KEY_ID_PATTERN.pattern},
        "roles": {
            "type": "array",
            "minItems": 1,
            "items": {"type": "string", "enum": list(ROLES)},
        },
        "taskTypes": {"type": "array", "items": {"type": "string"}},
    },
}
_MADE_KEY: JSON = {
    **_KEY_SCHEMA,
    "required": ["keyId", "keySecret", "roles", "taskTypes"],
    "properties": {**_KEY_SCHEMA["properties"], "keySecret": {"type": "string"}},
}
_ME: JSON = {
    "type": "object",
    "required": ["authEnabled", "keyId", "roles", "taskTypes"],
    "properties": {
        "authEnabled": {"type": "boolean"},
        "keyId": {"type": "string"},
        "roles": {"type": "array", "items": {"type": "string"}},
        "taskTypes": {"type": "array", "items": {"type": "string"}},
    },
}


def _caller(request: Request) -> str:
    return str((request.scope.get("state") or {}).get("key_id") or "")


def _string_list(body: JSON, name: str) -> list[str]:
    value = body.get(name, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidArgument(f"{name} must be an array of strings", field=name)
    return value


def endpoints(auth: Authenticator) -> list[Endpoint]:
    """The endpoints, bound to the app's authenticator (its configured keys and cache)."""

    async def me(request: Request, gateway: Gateway) -> Response:
        """Who the caller is; with authentication off, an admin (everything is open)."""
        grant = (request.scope.get("state") or {}).get("grant") or ADMIN_GRANT
        return ok_json({"authEnabled": auth.enabled, "keyId": _caller(request), **grant.to_json()})

    async def list_keys(request: Request, gateway: Gateway) -> Response:
        out: list[dict[str, Any]] = [
            {"keyId": key_id, "source": "config", **grant.to_json()}
            for key_id, grant in sorted(auth.configured_grants().items())
        ]
        for record in await gateway.store.metadata.list_access_keys():
            material = stored_key_material(record)
            if material is None:
                continue
            out.append(
                {
                    "keyId": record["keyId"],
                    "source": "store",
                    **material[1].to_json(),
                    "createTime": int(record.get("createTime") or 0),
                    "createdBy": str(record.get("createdBy") or ""),
                }
            )
        return ok_json(out)

    async def create_key(request: Request, gateway: Gateway) -> Response:
        """Make a key; its secret is in this answer and nowhere else.

        With authentication off this is a 404, as ``POST /api/token``: a key made on an open
        server would silently become valid the day authentication is turned on.
        """
        if not auth.enabled:
            raise NotFound("Authentication is not enabled on this server")
        body = await body_object(request, "Key")
        key_id = body.get("keyId")
        if not isinstance(key_id, str) or not KEY_ID_PATTERN.match(key_id):
            raise InvalidArgument(
                "keyId must be 1-128 letters, digits and _.@- (starting with a letter or digit)",
                field="keyId",
            )
        try:
            grant = make_grant(_string_list(body, "roles"), _string_list(body, "taskTypes"))
        except GrantError as exc:
            raise InvalidArgument(str(exc), field="roles") from None
        if auth.configured(key_id):
            raise Conflict(f"Key {key_id} already exists (in PODIUM_AUTH_KEYS)", keyId=key_id)
        key_secret = secrets.token_urlsafe(32)
        record = {
            "keyId": key_id,
            "secretHash": secret_hash(key_secret).hex(),
            **grant.to_json(),
            "createTime": int(time.time() * 1000),
            "createdBy": _caller(request),
        }
        await gateway.store.metadata.create_access_key(record)
        auth.forget(key_id)
        made = {k: v for k, v in record.items() if k != "secretHash"}
        return ok_json({**made, "keySecret": key_secret, "source": "store"})

    async def remove_key(request: Request, gateway: Gateway) -> Response:
        """Remove a stored key: its tokens stop working (on other replicas within seconds)."""
        key_id = path(request, "keyId")
        if auth.configured(key_id):
            raise Conflict(
                f"Key {key_id} is set in PODIUM_AUTH_KEYS; remove it from the configuration",
                keyId=key_id,
            )
        await gateway.store.metadata.remove_access_key(key_id)
        auth.forget(key_id)
        return ok_empty()

    return [
        Endpoint("GET", "/api/auth/me", me, "The caller's key id, roles and task types", TAG,
                 ok_schema=_ME, errors=()),
        Endpoint("GET", "/api/admin/keys", list_keys, "Every key and its roles (never a secret)",
                 TAG, ok_schema={"type": "array", "items": _KEY_SCHEMA}, errors=()),
        Endpoint("POST", "/api/admin/keys", create_key, "Make a key; the answer holds its secret",
                 TAG, body=_NEW_KEY, ok_schema=_MADE_KEY, errors=(400, 404, 409)),
        Endpoint("DELETE", "/api/admin/keys/{keyId}", remove_key, "Remove a key made here", TAG,
                 params=(path_param("keyId"),), ok_kind="empty", errors=(404, 409)),
    ]  # fmt: skip

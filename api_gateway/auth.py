"""Conductor-compatible authentication: key id + secret for a short-lived token.

``POST /api/token {"keyId", "keySecret"}`` answers ``{"token"}``; every other request (but the
health checks, the token endpoint itself and the OpenAPI document) must carry the token in
``X-Authorization`` (``Authorization: Bearer <token>`` is accepted too). A missing or bad token
is a 401 whose body has ``"error": "INVALID_TOKEN"`` (``"EXPIRED_TOKEN"`` once it has expired),
which makes the official SDKs fetch a new token and retry.

Tokens are stateless: ``v1.<keyId>.<expiry ms>.<HMAC-SHA256>``, signed with a key derived from
the key's secret, so every gateway replica configured with the same keys accepts them, and
removing a key from the configuration revokes its tokens. Secrets are kept only as hashes.
With authentication off, ``POST /api/token`` is a 404, which the SDKs read as "open mode".
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from api_gateway.errors import error_response
from api_gateway.http import body_object, ok_json
from api_gateway.settings import AuthSettings
from podium.errors import InvalidArgument

PUBLIC_PATHS = frozenset({"/health", "/api/health", "/api/token", "/api/openapi.json"})
_VERSION = "v1"


class TokenError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Authenticator:
    """Issues and checks tokens for the configured keys."""

    def __init__(self, settings: AuthSettings, clock: Callable[[], float] = time.time) -> None:
        self.enabled = settings.enabled
        self.ttl_s = settings.token_ttl_s
        self.clock = clock
        self._secret_hashes = {
            key_id: hashlib.sha256(secret.encode()).digest()
            for key_id, secret in settings.keys.items()
        }

    def _signing_key(self, key_id: str) -> bytes | None:
        digest = self._secret_hashes.get(key_id)
        if digest is None:
            return None
        return hashlib.sha256(b"podium-token-key:" + digest).digest()

    def issue(self, key_id: str, key_secret: str) -> str:
        """A token for a valid pair; TokenError otherwise (same answer for id and secret)."""
        expected = self._secret_hashes.get(key_id)
        given = hashlib.sha256(key_secret.encode()).digest()
        if expected is None or not hmac.compare_digest(expected, given):
            raise TokenError("INVALID_CREDENTIALS", "Invalid key id or key secret")
        expiry_ms = int((self.clock() + self.ttl_s) * 1000)
        return self._sign(key_id, expiry_ms)

    def _sign(self, key_id: str, expiry_ms: int) -> str:
        kid = _b64(key_id.encode())
        payload = f"{_VERSION}.{kid}.{expiry_ms}"
        key = self._signing_key(key_id) or b""
        mac = hmac.new(key, payload.encode(), hashlib.sha256).digest()
        return f"{payload}.{_b64(mac)}"

    def verify(self, token: str) -> str:
        """The key id of a valid token; TokenError(INVALID_TOKEN | EXPIRED_TOKEN) otherwise."""
        parts = token.split(".")
        if len(parts) != 4 or parts[0] != _VERSION or not parts[2].isdigit():
            raise TokenError("INVALID_TOKEN", "Invalid token")
        try:
            key_id = _unb64(parts[1]).decode()
        except (ValueError, UnicodeDecodeError):
            raise TokenError("INVALID_TOKEN", "Invalid token") from None
        key = self._signing_key(key_id)
        if key is None:
            raise TokenError("INVALID_TOKEN", "Invalid token")
        payload = ".".join(parts[:3])
        mac = hmac.new(key, payload.encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(_b64(mac), parts[3]):
            raise TokenError("INVALID_TOKEN", "Invalid token")
        if int(parts[2]) <= int(self.clock() * 1000):
            raise TokenError("EXPIRED_TOKEN", "Token has expired")
        return key_id


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _token_of(scope: Scope) -> str | None:
    bearer = None
    for name, value in scope.get("headers", []):
        if name == b"x-authorization":
            return str(value.decode("latin-1")).strip()
        if name == b"authorization":
            text = value.decode("latin-1").strip()
            if text.lower().startswith("bearer "):
                bearer = text[7:].strip()
    return bearer


class AuthGate:
    """Pure ASGI middleware: requests without a valid token stop here with a 401."""

    def __init__(self, app: ASGIApp, authenticator: Authenticator) -> None:
        self.app = app
        self.auth = authenticator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or not self.auth.enabled
            or scope.get("path", "").rstrip("/") in PUBLIC_PATHS
            or scope.get("method") == "OPTIONS"
        ):
            await self.app(scope, receive, send)
            return
        token = _token_of(scope)
        try:
            if not token:
                raise TokenError("INVALID_TOKEN", "Missing X-Authorization token")
            scope.setdefault("state", {})["key_id"] = self.auth.verify(token)
        except TokenError as exc:
            response = error_response(401, exc.message, extra={"error": exc.code})
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


async def token_endpoint(request: Request, auth: Authenticator) -> Response:
    """``POST /api/token``: 404 when authentication is off (the SDKs' "open mode")."""
    if not auth.enabled:
        return error_response(404, "Authentication is not enabled on this server")
    body = await body_object(request, "Token request")
    key_id, key_secret = body.get("keyId"), body.get("keySecret")
    if not isinstance(key_id, str) or not isinstance(key_secret, str) or not key_id:
        raise InvalidArgument("keyId and keySecret are required strings")
    try:
        token = auth.issue(key_id, key_secret)
    except TokenError as exc:
        return error_response(401, exc.message, extra={"error": exc.code})
    return ok_json({"token": token})

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

Keys come from ``PODIUM_AUTH_KEYS`` and from the store, where admins make them at run time
(:mod:`api_gateway.keys`); a stored key is read again at most :data:`STORED_KEY_CACHE_S`
seconds after another replica changed it (at once on the replica that did). A request with a
valid token carries its key in ``scope["state"]``: ``key_id``, ``roles`` (a tuple of role
names), ``task_types`` and ``grant`` (:class:`~api_gateway.grants.Grant`), which
:mod:`api_gateway.access` checks against the route's rule.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from api_gateway.errors import error_response, from_exception
from api_gateway.grants import Grant, GrantError, make_grant
from api_gateway.http import body_object, ok_json
from api_gateway.settings import AuthSettings
from podium.errors import InvalidArgument, NotFound, PodiumError
from podium.store import MetadataStore

PUBLIC_PATHS = frozenset({"/health", "/api/health", "/api/token", "/api/openapi.json"})
_VERSION = "v1"
#: How long a replica trusts what it read of a stored key (a removed key's tokens stop
#: working on other replicas within this time).
STORED_KEY_CACHE_S = 5.0
_CACHE_MAX = 10_000

#: A key as the authenticator needs it: the SHA-256 of its secret and its grant.
KeyMaterial = tuple[bytes, Grant]


def secret_hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def stored_key_material(record: dict[str, Any]) -> KeyMaterial | None:
    """A stored key record's hash and grant; None for a record that cannot be read."""
    try:
        digest = bytes.fromhex(str(record["secretHash"]))
        grant = make_grant(list(record.get("roles") or []), list(record.get("taskTypes") or []))
    except (KeyError, ValueError, TypeError, GrantError):
        return None
    return digest, grant


class TokenError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Authenticator:
    """Issues and checks tokens for the configured keys and the keys in the store."""

    def __init__(self, settings: AuthSettings, clock: Callable[[], float] = time.time) -> None:
        self.enabled = settings.enabled
        self.ttl_s = settings.token_ttl_s
        self.clock = clock
        self._configured: dict[str, KeyMaterial] = {
            key_id: (secret_hash(secret), settings.grant(key_id))
            for key_id, secret in settings.keys.items()
        }
        self._stored: dict[str, tuple[float, KeyMaterial | None]] = {}

    def configured(self, key_id: str) -> bool:
        """Whether the key comes from ``PODIUM_AUTH_KEYS`` (the keys API cannot change it)."""
        return key_id in self._configured

    def configured_grants(self) -> dict[str, Grant]:
        return {key_id: grant for key_id, (_, grant) in self._configured.items()}

    def forget(self, key_id: str) -> None:
        """Drop what this replica remembers of a stored key (it was just made or removed)."""
        self._stored.pop(key_id, None)

    async def _material(self, key_id: str, store: MetadataStore | None) -> KeyMaterial | None:
        found = self._configured.get(key_id)
        if found is not None or store is None:
            return found
        now = time.monotonic()
        cached = self._stored.get(key_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            material = stored_key_material(await store.get_access_key(key_id))
        except NotFound:
            material = None
        if len(self._stored) >= _CACHE_MAX:
            self._stored.clear()
        self._stored[key_id] = (now + STORED_KEY_CACHE_S, material)
        return material

    def issue(self, key_id: str, key_secret: str) -> str:
        """A token for a valid configured pair; TokenError otherwise."""
        return self._issue(key_id, key_secret, self._configured.get(key_id))

    async def issue_any(self, key_id: str, key_secret: str, store: MetadataStore | None) -> str:
        """A token for a valid pair, configured or stored; TokenError otherwise."""
        return self._issue(key_id, key_secret, await self._material(key_id, store))

    def _issue(self, key_id: str, key_secret: str, material: KeyMaterial | None) -> str:
        # The same answer for a wrong id and a wrong secret.
        given = secret_hash(key_secret)
        if material is None or not hmac.compare_digest(material[0], given):
            raise TokenError("INVALID_CREDENTIALS", "Invalid key id or key secret")
        expiry_ms = int((self.clock() + self.ttl_s) * 1000)
        return self._sign(key_id, expiry_ms, material[0])

    @staticmethod
    def _signing_key(digest: bytes) -> bytes:
        return hashlib.sha256(b"podium-token-key:" + digest).digest()

    def _sign(self, key_id: str, expiry_ms: int, digest: bytes) -> str:
        kid = _b64(key_id.encode())
        payload = f"{_VERSION}.{kid}.{expiry_ms}"
        mac = hmac.new(self._signing_key(digest), payload.encode(), hashlib.sha256).digest()
        return f"{payload}.{_b64(mac)}"

    def verify(self, token: str) -> str:
        """The key id of a valid token of a configured key; TokenError otherwise."""
        key_id = _token_key_id(token)
        self._check(token, key_id, self._configured.get(key_id))
        return key_id

    async def authenticate(self, token: str, store: MetadataStore | None) -> tuple[str, Grant]:
        """The key id and grant of a valid token; TokenError(INVALID_TOKEN | EXPIRED_TOKEN)."""
        key_id = _token_key_id(token)
        material = await self._material(key_id, store)
        self._check(token, key_id, material)
        assert material is not None
        return key_id, material[1]

    def _check(self, token: str, key_id: str, material: KeyMaterial | None) -> None:
        if material is None:
            raise TokenError("INVALID_TOKEN", "Invalid token")
        parts = token.split(".")
        payload = ".".join(parts[:3])
        key = self._signing_key(material[0])
        mac = hmac.new(key, payload.encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(_b64(mac), parts[3]):
            raise TokenError("INVALID_TOKEN", "Invalid token")
        if int(parts[2]) <= int(self.clock() * 1000):
            raise TokenError("EXPIRED_TOKEN", "Token has expired")


def _token_key_id(token: str) -> str:
    """The key id a well-formed token names (not yet checked); TokenError otherwise."""
    parts = token.split(".")
    if len(parts) != 4 or parts[0] != _VERSION or not parts[2].isdigit():
        raise TokenError("INVALID_TOKEN", "Invalid token")
    try:
        return _unb64(parts[1]).decode()
    except (ValueError, UnicodeDecodeError):
        raise TokenError("INVALID_TOKEN", "Invalid token") from None


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
        state = scope.setdefault("state", {})
        try:
            if not token:
                raise TokenError("INVALID_TOKEN", "Missing X-Authorization token")
            key_id, grant = await self.auth.authenticate(token, _metadata(state))
        except TokenError as exc:
            response = error_response(401, exc.message, extra={"error": exc.code})
            await response(scope, receive, send)
            return
        except PodiumError as exc:  # the store could not be asked about a stored key
            await from_exception(exc)(scope, receive, send)
            return
        state["key_id"] = key_id
        state["roles"] = grant.roles
        state["task_types"] = grant.task_types
        state["grant"] = grant
        await self.app(scope, receive, send)


def _metadata(state: dict[str, Any]) -> MetadataStore | None:
    """The store's metadata from the app's lifespan state (None before it has started)."""
    gateway = state.get("gateway")
    store = getattr(gateway, "store", None)
    return getattr(store, "metadata", None)


async def token_endpoint(
    request: Request, auth: Authenticator, store: MetadataStore | None
) -> Response:
    """``POST /api/token``: 404 when authentication is off (the SDKs' "open mode")."""
    if not auth.enabled:
        return error_response(404, "Authentication is not enabled on this server")
    body = await body_object(request, "Token request")
    key_id, key_secret = body.get("keyId"), body.get("keySecret")
    if not isinstance(key_id, str) or not isinstance(key_secret, str) or not key_id:
        raise InvalidArgument("keyId and keySecret are required strings")
    try:
        token = await auth.issue_any(key_id, key_secret, store)
    except TokenError as exc:
        return error_response(401, exc.message, extra={"error": exc.code})
    return ok_json({"token": token})

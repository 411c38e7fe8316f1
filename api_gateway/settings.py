"""The gateway's settings, read once from ``PODIUM_*`` variables into frozen dataclasses."""

from __future__ import annotations

from dataclasses import dataclass, field

from api_gateway.audit import AuditSettings
from api_gateway.grants import ADMIN_GRANT, KEY_ID_PATTERN, Grant, GrantError, parse_grant
from podium.codec import CodecLimits
from podium.config import (
    Environ,
    env_address_list,
    env_bool,
    env_int,
    env_list,
    env_port,
    env_str,
    rpc_limits,
    rpc_security,
)
from podium.errors import ConfigError
from podium.plugins import installed
from podium.rpc_security import RpcSecurity
from podium.store import StoreConfig

DEFAULT_PORT = 8080


@dataclass(frozen=True)
class Limits:
    """What one request may ask for; breaking a limit is a 4xx with a message."""

    #: Largest request body, checked on Content-Length before reading and while streaming.
    max_body_bytes: int = 1024 * 1024
    #: Deepest nesting of arrays and objects in a JSON body.
    max_json_depth: int = 64
    #: Most tasks one batch poll may ask for.
    max_poll_count: int = 1000
    #: Longest long poll (Conductor: more than 5000 ms is a 400).
    max_poll_timeout_ms: int = 5000
    #: Most workflow ids in one bulk request (Conductor: 1000).
    max_bulk_ids: int = 1000
    #: Longest wait of ``POST /api/workflow/execute`` (seconds).
    max_execute_wait_s: int = 60


@dataclass(frozen=True)
class AuthSettings:
    """Key-id/secret pairs exchanged at ``POST /api/token`` for short-lived tokens.

    ``grants`` holds each key's roles (:mod:`api_gateway.grants`); a key without an entry
    there is an admin.
    """

    enabled: bool = False
    keys: dict[str, str] = field(default_factory=dict, repr=False)
    token_ttl_s: int = 3600
    grants: dict[str, Grant] = field(default_factory=dict)

    def grant(self, key_id: str) -> Grant:
        return self.grants.get(key_id, ADMIN_GRANT)

    def __repr__(self) -> str:  # never print secrets
        keys = {key_id: self.grant(key_id).text() for key_id in sorted(self.keys)}
        return f"AuthSettings(enabled={self.enabled}, keys={keys}, token_ttl_s={self.token_ttl_s})"


@dataclass(frozen=True)
class UiSettings:
    """The web UI the gateway serves under ``/ui/`` (:mod:`api_gateway.webui`)."""

    enabled: bool = True
    #: A trace viewer's address with ``{traceId}`` in it; the execution view links a
    #: workflow's trace there (empty: the trace id is shown as text).
    trace_url: str = ""

    @classmethod
    def from_env(cls, env: Environ) -> UiSettings:
        trace_url = env_str(env, "PODIUM_UI_TRACE_URL", "").strip()
        if trace_url and (
            "{traceId}" not in trace_url or not trace_url.startswith(("http://", "https://"))
        ):
            raise ConfigError(
                f"PODIUM_UI_TRACE_URL={trace_url!r} must be an http(s) address containing "
                "{traceId}",
                variable="PODIUM_UI_TRACE_URL",
            )
        return cls(enabled=env_bool(env, "PODIUM_UI_ENABLED", True), trace_url=trace_url)


@dataclass(frozen=True)
class GatewaySettings:
    store: StoreConfig = field(default_factory=StoreConfig)
    decider_addresses: list[str] = field(default_factory=lambda: ["127.0.0.1:7302"])
    queue_addresses: list[str] = field(default_factory=lambda: ["127.0.0.1:7301"])
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    health_port: int | None = None
    limits: Limits = field(default_factory=Limits)
    auth: AuthSettings = field(default_factory=AuthSettings)
    codec: CodecLimits = field(default_factory=CodecLimits)
    #: Timeout of one call to the decider (seconds).
    rpc_timeout_s: float = 10.0
    #: how the gateway authenticates to the deciders and the queue service
    rpc: RpcSecurity = field(default_factory=RpcSecurity)
    ui: UiSettings = field(default_factory=UiSettings)
    audit: AuditSettings = field(default_factory=AuditSettings)

    @classmethod
    def from_env(cls, env: Environ) -> GatewaySettings:
        # The installed plugins check their task types' inputs in definitions (checks.py):
        # loaded now, so that a broken one stops the gateway before it serves.
        installed()
        limits = Limits(
            max_body_bytes=env_int(env, "PODIUM_GATEWAY_MAX_BODY_BYTES", 1024 * 1024, minimum=1024),
            max_json_depth=env_int(
                env, "PODIUM_GATEWAY_MAX_JSON_DEPTH", 64, minimum=4, maximum=1000
            ),
            max_poll_count=env_int(
                env, "PODIUM_GATEWAY_MAX_POLL_COUNT", 1000, minimum=1, maximum=10_000
            ),
            max_poll_timeout_ms=env_int(
                env, "PODIUM_GATEWAY_MAX_POLL_TIMEOUT_MS", 5000, minimum=0, maximum=60_000
            ),
            max_bulk_ids=env_int(env, "PODIUM_GATEWAY_MAX_BULK_IDS", 1000, minimum=1),
            max_execute_wait_s=env_int(
                env, "PODIUM_GATEWAY_MAX_EXECUTE_WAIT_S", 60, minimum=1, maximum=3600
            ),
        )
        enabled = env_bool(env, "PODIUM_AUTH_ENABLED", False)
        keys, grants = parse_key_entries(env_list(env, "PODIUM_AUTH_KEYS", []))
        if enabled and not keys:
            raise ConfigError(
                "PODIUM_AUTH_ENABLED=true needs PODIUM_AUTH_KEYS (id:secret[:role],...)",
                variable="PODIUM_AUTH_KEYS",
            )
        auth = AuthSettings(
            enabled=enabled,
            keys=keys,
            grants=grants,
            token_ttl_s=env_int(env, "PODIUM_AUTH_TOKEN_TTL_S", 3600, minimum=10, maximum=3600),
        )
        health = env_str(env, "PODIUM_GATEWAY_HEALTH_PORT", "")
        return cls(
            store=StoreConfig.from_env(env),
            decider_addresses=env_address_list(env, "PODIUM_DECIDER_ADDRESSES", ["127.0.0.1:7302"]),
            queue_addresses=env_address_list(env, "PODIUM_QUEUE_ADDRESSES", ["127.0.0.1:7301"]),
            host=env_str(env, "PODIUM_GATEWAY_HOST", "127.0.0.1"),
            port=env_port(env, "PODIUM_GATEWAY_PORT", DEFAULT_PORT),
            health_port=env_port(env, "PODIUM_GATEWAY_HEALTH_PORT", 0) if health else None,
            limits=limits,
            auth=auth,
            codec=rpc_limits(env),
            rpc=rpc_security(env),
            rpc_timeout_s=float(
                env_int(env, "PODIUM_GATEWAY_RPC_TIMEOUT_S", 10, minimum=1, maximum=600)
            ),
            ui=UiSettings.from_env(env),
            audit=AuditSettings.from_env(env),
        )


def parse_keys(items: list[str]) -> dict[str, str]:
    """``["id:secret[:grant]", ...]`` to a map of secrets (see :func:`parse_key_entries`)."""
    return parse_key_entries(items)[0]


def parse_key_entries(items: list[str]) -> tuple[dict[str, str], dict[str, Grant]]:
    """``PODIUM_AUTH_KEYS`` entries to secrets and grants; errors never show a secret.

    An entry is ``id:secret`` (an admin, as before roles existed) or ``id:secret:grant``
    where the grant is ``admin``, ``operator``, ``viewer`` or ``worker=type_a|billing_*``,
    several joined by ``+``. A secret therefore cannot contain ``:``.
    """
    keys: dict[str, str] = {}
    grants: dict[str, Grant] = {}
    for item in items:
        key_id, sep, rest = item.partition(":")
        key_id = key_id.strip()
        secret, has_grant, grant_text = rest.partition(":")
        if not sep or not key_id or len(secret) < 8:
            raise ConfigError(
                "PODIUM_AUTH_KEYS entries must be id:secret[:role] with a secret of 8+ "
                f"characters (a secret may not contain ':'; bad entry for id {key_id!r})",
                variable="PODIUM_AUTH_KEYS",
            )
        if not KEY_ID_PATTERN.match(key_id):
            raise ConfigError(
                f"PODIUM_AUTH_KEYS: key id {key_id!r} must be letters, digits and _.@- "
                "(at most 128 characters)",
                variable="PODIUM_AUTH_KEYS",
            )
        if key_id in keys:
            raise ConfigError(
                f"PODIUM_AUTH_KEYS: key id {key_id!r} is given twice", variable="PODIUM_AUTH_KEYS"
            )
        try:
            grant = parse_grant(grant_text) if has_grant else ADMIN_GRANT
        except GrantError as exc:
            raise ConfigError(
                f"PODIUM_AUTH_KEYS: bad role for id {key_id!r}: {exc} (an entry is "
                "id:secret:role, roles admin, operator, viewer, worker=type_a|billing_*; "
                "a secret may not contain ':')",
                variable="PODIUM_AUTH_KEYS",
            ) from None
        keys[key_id] = secret
        grants[key_id] = grant
    return keys, grants

"""Authentication: POST /api/token and X-Authorization; off for the quickstart."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from api_gateway.auth import Authenticator, TokenError
from api_gateway.settings import AuthSettings, GatewaySettings, parse_keys
from podium.errors import ConfigError

from .api_calls import assert_envelope

KEYS = {"app1": "s3cret-one", "app2": "s3cret-two"}


async def test_token_endpoint_is_404_when_auth_is_off(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/token", json={"keyId": "a", "keySecret": "b"})
    assert_envelope(r, 404)
    r = await client.get("/api/metadata/taskdefs")
    assert r.status_code == 200


async def test_tokens_guard_every_route(make_gateway: Callable[..., Any]) -> None:
    async with make_gateway(auth=AuthSettings(enabled=True, keys=KEYS)) as g:
        client: httpx.AsyncClient = g.client
        r = await client.get("/api/metadata/taskdefs")
        body = assert_envelope(r, 401)
        assert body["error"] == "INVALID_TOKEN"
        r = await client.post("/api/token", json={"keyId": "app1", "keySecret": "wrong-secret"})
        assert_envelope(r, 401)
        r = await client.post("/api/token", json={"keyId": "nobody", "keySecret": "s3cret-one"})
        assert_envelope(r, 401)
        r = await client.post("/api/token", json={"keyId": "app1"})
        assert_envelope(r, 400)
        r = await client.post("/api/token", json={"keyId": "app1", "keySecret": "s3cret-one"})
        assert r.status_code == 200
        token = r.json()["token"]
        r = await client.get("/api/metadata/taskdefs", headers={"X-Authorization": token})
        assert r.status_code == 200
        r = await client.get("/api/metadata/taskdefs", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200
        r = await client.get("/api/metadata/taskdefs", headers={"X-Authorization": token + "x"})
        assert assert_envelope(r, 401)["error"] == "INVALID_TOKEN"
        # A request refused for its token changes nothing.
        r = await client.post("/api/metadata/taskdefs", json=[{"name": "unauth_td"}],
                              headers={"X-Authorization": "v1.bogus.1.x"})  # fmt: skip
        assert_envelope(r, 401)
        r = await client.get("/api/metadata/taskdefs/unauth_td", headers={"X-Authorization": token})
        assert_envelope(r, 404)
        for public in ("/health", "/api/health", "/api/openapi.json"):
            assert (await client.get(public)).status_code == 200
        doc = (await client.get("/api/openapi.json")).json()
        assert doc["components"]["securitySchemes"]["token"]["name"] == "X-Authorization"


def test_tokens_expire_and_bind_to_their_key() -> None:
    now = [1000.0]
    auth = Authenticator(AuthSettings(enabled=True, keys=KEYS, token_ttl_s=60), lambda: now[0])
    token = auth.issue("app1", "s3cret-one")
    assert auth.verify(token) == "app1"
    now[0] += 61
    with pytest.raises(TokenError) as exc:
        auth.verify(token)
    assert exc.value.code == "EXPIRED_TOKEN"
    # Another replica with the same keys accepts the token; without the key it does not.
    now[0] = 1000.0
    same = Authenticator(AuthSettings(enabled=True, keys=KEYS), lambda: now[0])
    assert same.verify(token) == "app1"
    other = Authenticator(AuthSettings(enabled=True, keys={"app2": "s3cret-two"}), lambda: 0.0)
    with pytest.raises(TokenError):
        other.verify(token)
    forged = token.replace(".", ".", 1).rsplit(".", 2)[0] + ".9999999999999." + "x"
    with pytest.raises(TokenError):
        auth.verify(forged)


def test_auth_settings_from_env_never_show_secrets() -> None:
    settings = GatewaySettings.from_env(
        {"PODIUM_AUTH_ENABLED": "true", "PODIUM_AUTH_KEYS": "a:12345678,b:abcdefgh"}
    )
    assert settings.auth.enabled and settings.auth.keys == {"a": "12345678", "b": "abcdefgh"}
    assert "12345678" not in repr(settings) and "abcdefgh" not in repr(settings)
    with pytest.raises(ConfigError) as exc:
        GatewaySettings.from_env({"PODIUM_AUTH_ENABLED": "true"})
    assert "PODIUM_AUTH_KEYS" in exc.value.message
    with pytest.raises(ConfigError) as exc:
        parse_keys(["short:abc"])
    assert "abc" not in exc.value.message.replace("abcdefgh", "")
    with pytest.raises(ConfigError):
        GatewaySettings.from_env({"PODIUM_GATEWAY_MAX_POLL_COUNT": "zero"})

"""The web UI: static pages from ``api_gateway/ui/``, on the same origin as ``/api``.

The UI is plain ES modules and CSS with no build step; every page reads the public ``/api``
endpoints from the browser, with the user's token when authentication is on. This module is
a pure ASGI middleware placed in front of the API's authentication: the assets are public
(the login form is one of them), everything else passes through untouched.

* ``GET /`` and ``GET /ui`` redirect to ``/ui/``, the single page (``index.html``).
* ``GET /ui/<file>`` serves the files under ``api_gateway/ui/`` (read once, at start), with
  an ETag; anything else under ``/ui/`` is a 404.
* ``GET /ui/config.json`` tells the page whether to ask for credentials and the operator's
  trace-viewer address template (``PODIUM_UI_TRACE_URL``). It holds no secret.

Every answer carries a Content-Security-Policy that allows scripts, styles and connections
from this origin only: nothing a workflow carries can run in the page even if some code
forgot to treat it as text (the UI builds its DOM with ``textContent``, never ``innerHTML``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from starlette.types import ASGIApp, Receive, Scope, Send

from api_gateway.settings import GatewaySettings

UI_DIR = Path(__file__).with_name("ui")
PREFIX = "/ui"
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".json": "application/json",
}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
_SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str
    etag: str


def load_assets(root: Path, settings: GatewaySettings) -> dict[str, Asset]:
    """Every file under ``root`` by its URL path, plus the generated ``config.json``."""
    assets: dict[str, Asset] = {}
    for path in sorted(root.rglob("*")):
        content_type = _TYPES.get(path.suffix)
        if not path.is_file() or content_type is None:
            continue
        url = f"{PREFIX}/{path.relative_to(root).as_posix()}"
        assets[url] = _asset(path.read_bytes(), content_type)
    config = {
        "authEnabled": settings.auth.enabled,
        "traceUrl": settings.ui.trace_url,
    }
    assets[f"{PREFIX}/config.json"] = _asset(
        json.dumps(config).encode(), "application/json; charset=utf-8"
    )
    if f"{PREFIX}/index.html" in assets:
        assets[f"{PREFIX}/"] = assets[f"{PREFIX}/index.html"]
    return assets


def _asset(body: bytes, content_type: str) -> Asset:
    return Asset(body, content_type, '"' + hashlib.sha256(body).hexdigest()[:24] + '"')


class WebUi:
    """Pure ASGI middleware: serves ``/`` and ``/ui/...``, passes every other request on."""

    def __init__(self, app: ASGIApp, settings: GatewaySettings, root: Path = UI_DIR) -> None:
        self.app = app
        self.enabled = settings.ui.enabled
        self.assets = load_assets(root, settings) if self.enabled else {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not self.enabled or not (path == "/" or path == PREFIX or path.startswith(PREFIX + "/")):
            await self.app(scope, receive, send)
            return
        method = scope.get("method", "GET")
        if method not in ("GET", "HEAD"):
            await _send(
                send,
                405,
                b"Method Not Allowed",
                "text/plain; charset=utf-8",
                extra=[(b"allow", b"GET, HEAD")],
            )
            return
        if path in ("/", PREFIX):
            await _send(
                send,
                307,
                b"",
                "text/plain; charset=utf-8",
                extra=[(b"location", f"{PREFIX}/".encode())],
            )
            return
        asset = self.assets.get(path)
        if asset is None:
            await _send(send, 404, b"Not Found", "text/plain; charset=utf-8")
            return
        etag_headers = [(b"etag", asset.etag.encode()), (b"cache-control", b"no-cache")]
        if _header(scope, b"if-none-match") == asset.etag:
            await _send(send, 304, b"", asset.content_type, extra=etag_headers)
            return
        body = b"" if method == "HEAD" else asset.body
        await _send(send, 200, body, asset.content_type, extra=etag_headers, length=len(asset.body))


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def _send(
    send: Send,
    status: int,
    body: bytes,
    content_type: str,
    extra: list[tuple[bytes, bytes]] | None = None,
    length: int | None = None,
) -> None:
    headers = [(b"content-type", content_type.encode()), *_SECURITY_HEADERS, *(extra or [])]
    if status != 304:
        headers.append((b"content-length", str(len(body) if length is None else length).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})

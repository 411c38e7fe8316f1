"""Who may speak RPC: a shared-secret handshake and mutual TLS, each optional, both at once.

Any process that reaches a decider or queue-service port could otherwise rewrite any
workflow. Two guards close that, set by the same variables in every service and client
(``podium.config.rpc_security``):

* **The shared secret** (``PODIUM_RPC_SECRET`` or ``PODIUM_RPC_SECRET_FILE``). When a
  connection opens, the server sends a random nonce; the client answers with its own nonce
  and ``HMAC-SHA256(secret, server nonce || client nonce || client label)``; the server
  answers with the HMAC over the nonces and a server label, which the client checks. So each
  end proves it holds the secret, the secret never crosses the wire, and a recorded answer is
  useless on another connection. It costs one round trip when a connection opens and nothing
  per call (connections are long-lived and carry many calls). It authenticates; it does not
  encrypt.
* **Mutual TLS** (``PODIUM_RPC_TLS_CERT``, ``PODIUM_RPC_TLS_KEY``, ``PODIUM_RPC_TLS_CA``):
  the server requires a client certificate signed by the CA, and the client checks the
  server's certificate against the same CA. Replicas are dialled by IP (a headless
  Service's pod addresses), which certificates do not name, so the server's name is checked
  only when ``PODIUM_RPC_TLS_SERVER_NAME`` is set (then the server certificate must name it,
  whatever address was dialled); otherwise a certificate from the CA is the identity, so the
  CA must be one kept for Podium alone. Certificate files are re-read when they change:
  every new connection checks their modification times and builds a new context; open
  connections keep theirs.

With neither set, RPC is open, as inside a trusted network, and each service says so in
its log at start.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import ssl
from dataclasses import dataclass, field
from pathlib import Path

from podium.errors import ConfigError

log = logging.getLogger("podium.rpc")

#: The shortest secret accepted (characters): ``openssl rand -hex 32`` gives 64.
MIN_SECRET_CHARS = 32
NONCE_BYTES = 32
#: Handshake frames are tiny; a larger one before authentication is refused unread.
MAX_HANDSHAKE_FRAME = 512
#: How long a server waits for a new connection to authenticate before closing it.
HANDSHAKE_TIMEOUT_S = 10.0

KIND_HELLO = "h"  # server -> client: {"n": server nonce}
KIND_AUTH = "a"  # client -> server: {"n": client nonce, "p": client proof}
KIND_OK = "o"  # server -> client: {"p": server proof}

_CLIENT_LABEL = b"podium-rpc-v1 client"
_SERVER_LABEL = b"podium-rpc-v1 server"


def new_nonce() -> bytes:
    return secrets.token_bytes(NONCE_BYTES)


def client_proof(secret: bytes, server_nonce: bytes, client_nonce: bytes) -> bytes:
    """What the client sends to show it holds ``secret``."""
    return hmac.digest(secret, server_nonce + client_nonce + _CLIENT_LABEL, hashlib.sha256)


def server_proof(secret: bytes, server_nonce: bytes, client_nonce: bytes) -> bytes:
    """What the server sends back; a different label, so one proof never passes for the other."""
    return hmac.digest(secret, server_nonce + client_nonce + _SERVER_LABEL, hashlib.sha256)


def proof_matches(expected: bytes, given: object) -> bool:
    """Constant-time comparison of a proof received from the peer."""
    return isinstance(given, bytes) and hmac.compare_digest(expected, given)


@dataclass(frozen=True)
class TlsFiles:
    """The PEM files of one end of a mutual-TLS link (the same pair serves and calls)."""

    cert: Path
    key: Path
    ca: Path
    #: the name the server's certificate must carry; None checks the CA signature only
    server_name: str | None = None


@dataclass(frozen=True)
class RpcSecurity:
    """How RPC connections authenticate: a shared secret, mutual TLS, both, or neither."""

    secret: bytes | None = field(default=None, repr=False)
    tls: TlsFiles | None = None

    @property
    def is_open(self) -> bool:
        return self.secret is None and self.tls is None

    def describe(self) -> str:
        """A line for the start-up log (never the secret)."""
        parts = []
        if self.secret is not None:
            parts.append("a shared secret")
        if self.tls is not None:
            parts.append(f"mutual TLS (CA {self.tls.ca})")
        if not parts:
            return (
                "RPC is unauthenticated: any process that reaches the RPC ports can call them "
                "(set PODIUM_RPC_SECRET or PODIUM_RPC_TLS_*; docs/security.md)"
            )
        return "RPC connections authenticate with " + " and ".join(parts)

    def with_random_secret(self) -> tuple[RpcSecurity, str]:
        """A copy with a fresh random secret, and that secret as text (for a child's env)."""
        text = secrets.token_hex(32)
        return RpcSecurity(secret=text.encode(), tls=self.tls), text


def parse_secret(
    value: str | None, file: str | None, *, variable: str = "PODIUM_RPC_SECRET"
) -> bytes | None:
    """The secret from ``value`` or from the file named by ``file`` (one trailing newline
    dropped); errors name the variable, never the secret."""
    if value and file:
        raise ConfigError(
            f"set {variable} or {variable}_FILE, not both", variable=f"{variable}_FILE"
        )
    if file:
        try:
            value = Path(file).read_text().removesuffix("\n").removesuffix("\r")
        except OSError as exc:
            raise ConfigError(
                f"{variable}_FILE={file!r} cannot be read: {exc.strerror}",
                variable=f"{variable}_FILE",
            ) from None
        variable = f"{variable}_FILE"
    if not value:
        return None
    if len(value) < MIN_SECRET_CHARS:
        raise ConfigError(
            f"{variable} is too short: at least {MIN_SECRET_CHARS} characters "
            "(openssl rand -hex 32 makes one)",
            variable=variable,
        )
    return value.encode()


class TlsContexts:
    """SSL contexts for one end of RPC links, rebuilt when the certificate files change.

    :meth:`get` is called for each new connection; it compares the files' modification times
    (and inodes, so a Kubernetes Secret's symlink swap counts) with those of the context it
    holds and loads new ones if they differ. A set of files that does not load (a rotation
    caught half-written) is logged and the previous context kept.
    """

    def __init__(self, files: TlsFiles, *, server_side: bool) -> None:
        self.files = files
        self.server_side = server_side
        self.loads = 0
        self._context: ssl.SSLContext | None = None
        self._stamp: tuple[tuple[int, int, int], ...] | None = None

    def _stamps(self) -> tuple[tuple[int, int, int], ...]:
        out = []
        for path in (self.files.cert, self.files.key, self.files.ca):
            st = os.stat(path)
            out.append((st.st_mtime_ns, st.st_size, st.st_ino))
        return tuple(out)

    def _build(self) -> ssl.SSLContext:
        purpose = ssl.PROTOCOL_TLS_SERVER if self.server_side else ssl.PROTOCOL_TLS_CLIENT
        ctx = ssl.SSLContext(purpose)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.files.cert, self.files.key)
        ctx.load_verify_locations(cafile=str(self.files.ca))
        ctx.verify_mode = ssl.CERT_REQUIRED
        if not self.server_side:
            ctx.check_hostname = self.files.server_name is not None
        return ctx

    def get(self) -> ssl.SSLContext:
        """The context for a new connection; raises ConfigError if none ever loaded."""
        try:
            stamp = self._stamps()
            if self._context is not None and stamp == self._stamp:
                return self._context
            context = self._build()
        except (OSError, ssl.SSLError, ValueError) as exc:
            if self._context is None:
                raise ConfigError(
                    f"the RPC TLS files do not load ({self.files.cert}, {self.files.key}, "
                    f"{self.files.ca}): {exc}",
                    variable="PODIUM_RPC_TLS_CERT",
                ) from None
            log.warning("the RPC TLS files changed but do not load, keeping the old: %s", exc)
            return self._context
        if self._context is not None:
            log.info("RPC TLS certificates reloaded from %s", self.files.cert)
        self._context, self._stamp = context, stamp
        self.loads += 1
        return context


__all__ = [
    "HANDSHAKE_TIMEOUT_S",
    "MIN_SECRET_CHARS",
    "RpcSecurity",
    "TlsContexts",
    "TlsFiles",
    "parse_secret",
]

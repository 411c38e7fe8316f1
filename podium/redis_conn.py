"""Connections to a Redis server, direct or through Redis Sentinel, for the queue and the store.

A Redis address is a URL:

- ``redis://[user:password@]host:port/db`` (``rediss://`` for TLS, ``unix://`` for a socket):
  one server;
- ``sentinel://master-name/db``: the primary of ``master-name`` as the Sentinels say, with
  the Sentinels' addresses given once beside it (``PODIUM_QUEUE_SENTINELS`` for the queue
  shards, ``PODIUM_STORE_REDIS_SENTINELS`` for the store). After a failover the client finds the
  new primary by itself; a user and password in the URL are the data servers' credentials.

Over TLS the URL's query names the files (redis-py reads them from the query string)::

    rediss://podium:secret@redis.example:6380/0?ssl_ca_certs=/certs/ca.pem
        &ssl_certfile=/certs/client.pem&ssl_keyfile=/certs/client-key.pem

:data:`TLS_PARAMETERS` lists what is accepted; :func:`tls_options` checks them before any
connection is made, so a missing file or a misspelt name is a :class:`ConfigError` naming the
variable and the URL (password hidden: :func:`redact_url`), not a failure at first use. A
``sentinel://`` URL with ``ssl=true`` (or any TLS parameter) reaches both the Sentinels and the
data servers over TLS with the same files.

``WAIT`` turns a write acknowledged by the primary into one held by ``replicas`` replicas too
(docs/reliability.md says what that does and does not promise).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.asyncio.sentinel import Sentinel

from podium.errors import ConfigError, Unavailable

SCHEMES = ("redis", "rediss", "unix", "sentinel")
#: Connections a non-blocking pool may open. redis-py's default, 100, refuses the next call
#: outright ("Too many connections"); calls that hold a connection while they wait (``WAIT``
#: for a replica) pass it in the burst after a failover or a replica's death.
MAX_CONNECTIONS = 1000
#: TLS settings a URL's query may carry (redis-py's ``ssl_*`` connection arguments). A key's
#: passphrase (``ssl_password``) is left out on purpose: it would sit in a URL that logs and
#: process listings may show; mount the key unencrypted as a secret file instead.
TLS_PARAMETERS = (
    "ssl_ca_certs",
    "ssl_ca_path",
    "ssl_certfile",
    "ssl_keyfile",
    "ssl_cert_reqs",
    "ssl_check_hostname",
    "ssl_min_version",
    "ssl_ciphers",
)
_TLS_FILES = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile")
_CERT_REQS = ("none", "optional", "required")
_BOOLS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


def redact_url(url: str) -> str:
    """The URL with any password replaced by ``***`` (for reprs, logs and error messages)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def tls_options(url: str, variable: str) -> dict[str, Any] | None:
    """The TLS settings in ``url``'s query, checked; None when the URL does not ask for TLS.

    ``rediss://`` asks for TLS, and so does a ``sentinel://`` URL with ``ssl=true`` or any
    TLS parameter; TLS parameters on a ``redis://`` or ``unix://`` URL are an error (redis-py
    would refuse them only at the first connection). Named files must exist and be readable.
    """
    parts = urlsplit(url)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}

    def refuse(problem: str) -> ConfigError:
        return ConfigError(f"{variable}={redact_url(url)!r}: {problem}", variable=variable)

    tls = {k: v for k, v in query.items() if k.startswith("ssl")}
    wanted = _BOOLS.get(tls.pop("ssl", "false").lower())
    if wanted is None:
        raise refuse("ssl must be true or false")
    unknown = sorted(set(tls) - set(TLS_PARAMETERS))
    if unknown:
        raise refuse(
            f"unknown TLS parameter(s) {', '.join(unknown)}; accepted: {', '.join(TLS_PARAMETERS)}"
        )
    if parts.scheme == "rediss" or (parts.scheme == "sentinel" and (wanted or tls)):
        pass
    elif tls or wanted:
        raise refuse("TLS parameters need a rediss:// URL")
    else:
        return None
    out: dict[str, Any] = dict(tls)
    for name in _TLS_FILES:
        if name in tls and not _readable_file(tls[name]):
            raise refuse(f"{name} file {tls[name]!r} does not exist or cannot be read")
    if "ssl_ca_path" in tls and not Path(tls["ssl_ca_path"]).is_dir():
        raise refuse(f"ssl_ca_path {tls['ssl_ca_path']!r} is not a folder")
    if "ssl_keyfile" in tls and "ssl_certfile" not in tls:
        raise refuse("ssl_keyfile needs ssl_certfile (the client certificate)")
    if tls.get("ssl_cert_reqs", "required") not in _CERT_REQS:
        raise refuse(f"ssl_cert_reqs must be one of {', '.join(_CERT_REQS)}")
    if "ssl_check_hostname" in tls:
        check = _BOOLS.get(tls["ssl_check_hostname"].lower())
        if check is None:
            raise refuse("ssl_check_hostname must be true or false")
        out["ssl_check_hostname"] = check
    if "ssl_min_version" in tls:
        # redis-py takes the number of an ssl.TLSVersion member (771: TLS 1.2, 772: TLS 1.3)
        if not tls["ssl_min_version"].isdigit():
            raise refuse("ssl_min_version must be a number: 771 for TLS 1.2, 772 for TLS 1.3")
        out["ssl_min_version"] = int(tls["ssl_min_version"])
    return out


def _readable_file(path: str) -> bool:
    try:
        with open(path, "rb"):
            return True
    except OSError:
        return False


@dataclass(frozen=True)
class SentinelTarget:
    """``sentinel://master/db``, parsed."""

    master: str
    db: int
    username: str | None
    password: str | None


def parse_sentinel_url(url: str, variable: str) -> SentinelTarget:
    parts = urlsplit(url)
    if parts.scheme != "sentinel" or not parts.hostname:
        raise ConfigError(f"{url!r} is not a sentinel://master-name/db URL", variable=variable)
    path = parts.path.strip("/") or "0"
    if not path.isdigit():
        raise ConfigError(f"the database in {url!r} is not a number", variable=variable)
    return SentinelTarget(
        master=parts.hostname,
        db=int(path),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


def parse_sentinels(value: str, variable: str) -> tuple[tuple[str, int], ...]:
    """``"h1:26379,h2:26379"`` as ``((h1, 26379), (h2, 26379))``."""
    out = []
    for item in (x.strip() for x in value.split(",")):
        if not item:
            continue
        host, sep, port = item.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"sentinel {item!r} is not host:port", variable=variable)
        out.append((host, int(port)))
    return tuple(out)


def connect(
    url: str,
    *,
    sentinels: tuple[tuple[str, int], ...] = (),
    variable: str,
    blocking_pool: bool = False,
    **options: Any,
) -> aioredis.Redis:
    """A client of the server that ``url`` names (nothing is sent until first use).

    ``options`` are redis-py connection settings (timeouts, ``max_connections``,
    ``decode_responses``). ``blocking_pool`` makes a burst of calls wait for a free
    connection instead of failing (direct connections only); other pools open up to
    :data:`MAX_CONNECTIONS`. The URL's TLS settings are checked first (:func:`tls_options`).
    """
    tls = tls_options(url, variable)
    if urlsplit(url).scheme != "sentinel":
        if blocking_pool:
            pool = aioredis.BlockingConnectionPool.from_url(url, **options)
            return aioredis.Redis.from_pool(pool)
        return aioredis.Redis.from_url(url, **{"max_connections": MAX_CONNECTIONS, **options})
    target = parse_sentinel_url(url, variable)
    if not sentinels:
        raise ConfigError(f"{url!r} needs the Sentinels' addresses", variable=variable)
    options.pop("timeout", None)  # a BlockingConnectionPool setting
    options["max_connections"] = MAX_CONNECTIONS
    sentinel_options = {
        k: v for k, v in options.items() if k in ("socket_timeout", "socket_connect_timeout")
    }
    if tls is not None:
        # one CA and client certificate for the Sentinels and the servers they point to
        options.update(ssl=True, **tls)
        sentinel_options.update(ssl=True, **tls)
    sentinel = Sentinel(list(sentinels), sentinel_kwargs=sentinel_options, **options)
    client: aioredis.Redis = sentinel.master_for(
        target.master,
        db=target.db,
        username=target.username,
        password=target.password,
    )
    return client


async def run_replicated(
    client: aioredis.Redis,
    script: Any,  # an AsyncScript or a PipedScript: called with client=
    keys: list[Any],
    args: list[Any],
    *,
    replicas: int,
    timeout_ms: int,
    what: str,
) -> Any:
    """Run ``script``, then ``WAIT`` on the same connection (WAIT counts that connection's
    writes), in one round trip; raise ``Unavailable`` unless ``replicas`` replicas confirmed it.

    A refused write may still be on the primary: callers retry only writes that are safe to
    repeat (a queue push of the same id, a commit fenced by its version)."""
    pipe: Pipeline = client.pipeline(transaction=False)
    await script(keys=keys, args=args, client=pipe)
    pipe.execute_command("WAIT", replicas, timeout_ms)
    result, acked = await pipe.execute()
    if int(acked) < replicas:
        raise Unavailable(
            f"{what}: {acked} of {replicas} replicas confirmed the write within {timeout_ms} ms"
        )
    return result

"""Reading ``PODIUM_*`` settings once, at start, with errors that name the variable.

Each service declares a frozen settings dataclass and builds it with these helpers; a bad value
raises :class:`ConfigError` whose message names the variable and the value, and the service's
``main`` prints that one line and exits with status 2.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

from podium.codec import CodecLimits
from podium.errors import ConfigError
from podium.rpc_security import RpcSecurity, TlsFiles, parse_secret

Environ = Mapping[str, str]
T = TypeVar("T")


def env_str(env: Environ, name: str, default: str) -> str:
    value = env.get(name)
    return default if value is None or value == "" else value


def env_int(
    env: Environ, name: str, default: int, *, minimum: int | None = None, maximum: int | None = None
) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        value = default
    else:
        try:
            value = int(raw.strip())
        except ValueError:
            raise ConfigError(f"{name}={raw!r} is not an integer", variable=name) from None
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name}={value} is below the minimum {minimum}", variable=name)
    if maximum is not None and value > maximum:
        raise ConfigError(f"{name}={value} is above the maximum {maximum}", variable=name)
    return value


def env_float(env: Environ, name: str, default: float, *, minimum: float = 0.0) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw.strip())
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number", variable=name) from None
    if value < minimum:
        raise ConfigError(f"{name}={value} is below the minimum {minimum}", variable=name)
    return value


def env_bool(env: Environ, name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    low = raw.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}={raw!r} is not a boolean (use true or false)", variable=name)


def env_list(env: Environ, name: str, default: list[str]) -> list[str]:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return list(default)
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_port(env: Environ, name: str, default: int) -> int:
    return env_int(env, name, default, minimum=0, maximum=65535)


def env_address_list(env: Environ, name: str, default: list[str]) -> list[str]:
    """A comma-separated list of ``host:port``; each is checked."""
    items = env_list(env, name, default)
    for item in items:
        host, sep, port = item.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"{name} has {item!r}, which is not host:port", variable=name)
    if not items:
        raise ConfigError(f"{name} must list at least one host:port", variable=name)
    return items


def environ() -> Environ:
    return os.environ


class _Recorder(dict[str, str]):
    """An environment that remembers which variables were asked for."""

    def __init__(self, base: Environ) -> None:
        super().__init__(base)
        self.asked: list[str] = []

    def get(self, key: str, default: str | None = None) -> str | None:  # type: ignore[override]
        if key not in self.asked:
            self.asked.append(key)
        return super().get(key, default)


def flag_name(variable: str) -> str:
    """``PODIUM_QUEUE_PORT`` -> ``--queue-port``."""
    return "--" + variable.removeprefix("PODIUM_").lower().replace("_", "-")


def settings_from_argv(
    argv: Sequence[str], env: Environ, build: Callable[[Environ], T], prog: str
) -> T:
    """Build settings from ``PODIUM_*`` variables overridden by the same names as flags.

    ``--queue-port 7301`` (or ``--queue-port=7301``) sets ``PODIUM_QUEUE_PORT``. The flags a
    service accepts are exactly the variables its settings read, found by building them once;
    an unknown flag raises ConfigError. ``--help`` raises SystemExit after listing them.
    """
    recorder = _Recorder(env)
    with contextlib.suppress(ConfigError):
        build(recorder)
    known = {flag_name(v): v for v in recorder.asked if v.startswith("PODIUM_")}
    overrides: dict[str, str] = {}
    args = list(argv)
    while args:
        arg = args.pop(0)
        if arg in ("-h", "--help"):
            print(f"usage: {prog} [--option value ...]\n\nOptions (or PODIUM_* variables):")
            for flag, var in sorted(known.items()):
                print(f"  {flag:<40} {var}")
            raise SystemExit(0)
        name, sep, value = arg.partition("=")
        if name not in known:
            raise ConfigError(f"unknown option {name!r} (see {prog} --help)", option=name)
        if not sep:
            if not args:
                raise ConfigError(f"option {name} needs a value", option=name)
            value = args.pop(0)
        overrides[known[name]] = value
    return build({**env, **overrides})


def rpc_limits(env: Environ) -> CodecLimits:
    """The RPC codec's limits, the same for every service: ``PODIUM_RPC_MAX_FRAME_BYTES`` and
    ``PODIUM_RPC_MAX_DEPTH``."""
    return CodecLimits(
        max_frame_bytes=env_int(env, "PODIUM_RPC_MAX_FRAME_BYTES", 16 * 1024 * 1024, minimum=1024),
        max_depth=env_int(env, "PODIUM_RPC_MAX_DEPTH", 64, minimum=4, maximum=1000),
    )


def rpc_security(env: Environ) -> RpcSecurity:
    """How RPC connections authenticate, the same for every service and client
    (:mod:`podium.rpc_security`): ``PODIUM_RPC_SECRET`` or ``PODIUM_RPC_SECRET_FILE``, and
    ``PODIUM_RPC_TLS_CERT``, ``PODIUM_RPC_TLS_KEY``, ``PODIUM_RPC_TLS_CA`` (all three or
    none) with ``PODIUM_RPC_TLS_SERVER_NAME`` optional."""
    secret = parse_secret(env.get("PODIUM_RPC_SECRET"), env.get("PODIUM_RPC_SECRET_FILE"))
    names = ("PODIUM_RPC_TLS_CERT", "PODIUM_RPC_TLS_KEY", "PODIUM_RPC_TLS_CA")
    paths = [env_str(env, name, "") for name in names]
    server_name = env_str(env, "PODIUM_RPC_TLS_SERVER_NAME", "")
    if not any(paths):
        if server_name:
            raise ConfigError(
                "PODIUM_RPC_TLS_SERVER_NAME needs PODIUM_RPC_TLS_CERT, _KEY and _CA",
                variable="PODIUM_RPC_TLS_SERVER_NAME",
            )
        return RpcSecurity(secret=secret)
    for name, path in zip(names, paths, strict=True):
        if not path:
            raise ConfigError(f"{name} is missing: set all of {', '.join(names)}", variable=name)
        if not os.path.isfile(path):
            raise ConfigError(f"{name}={path!r} is not a readable file", variable=name)
    cert, key, ca = (Path(p) for p in paths)
    return RpcSecurity(secret=secret, tls=TlsFiles(cert, key, ca, server_name or None))

"""What every service's console script does around its own start and stop.

``run_main`` reads the settings (variables and flags), sets up logging and telemetry, tunes
the garbage collector, runs the service until SIGTERM or SIGINT, and turns every start-up
failure into one line on stderr and exit status 2. It logs how the service's RPC connections
authenticate (a warning when they do not: ``podium/rpc_security.py``).

The collector: a service allocates many short-lived objects per request (decoded records,
envelopes, spans), and CPython's default (a young collection every 700 net allocations,
each older one scanning every module, class and function loaded at start) costs a busy
service a fifth of its throughput here. So what exists once the service is set up is moved
out of the collector's sight (``gc.freeze()``), and the thresholds are raised to
``PODIUM_GC_THRESHOLD`` (default ``50000,20,10``: ``gc.set_threshold``'s three generations;
``default`` keeps CPython's). Reference counting still frees nearly everything at once; the
collector is only for cycles, which simply wait a little longer.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

from podium import aio, logs
from podium.config import Environ, environ, settings_from_argv
from podium.errors import ConfigError, PodiumError
from podium.rpc_security import RpcSecurity
from podium.telemetry import Telemetry, telemetry_from_env

S = TypeVar("S")

DEFAULT_GC_THRESHOLD = (50_000, 20, 10)


def gc_threshold(env: Environ) -> tuple[int, ...] | None:
    """``PODIUM_GC_THRESHOLD`` as ``gc.set_threshold``'s arguments; None for CPython's own."""
    raw = env.get("PODIUM_GC_THRESHOLD", "").strip()
    if raw == "":
        return DEFAULT_GC_THRESHOLD
    if raw == "default":
        return None
    try:
        values = tuple(int(v) for v in raw.split(","))
    except ValueError:
        values = ()
    if len(values) != 3 or not all(v >= 1 for v in values):
        raise ConfigError(
            f"PODIUM_GC_THRESHOLD={raw!r} is not three positive integers "
            "(e.g. 50000,20,10) or 'default'",
            variable="PODIUM_GC_THRESHOLD",
        )
    return values


async def _serve_tuned(serve: Coroutine[Any, Any, None], threshold: tuple[int, ...] | None) -> None:
    if threshold is not None:
        gc.collect()
        gc.freeze()  # what is loaded by now lives as long as the process
        gc.set_threshold(*threshold)
    await serve


async def until_stopped() -> None:
    """Wait for SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def run_main(
    prog: str,
    argv: Sequence[str] | None,
    build: Callable[[Environ], S],
    serve: Callable[[S, Telemetry], Coroutine[Any, Any, None]],
) -> int:
    """Run a service's ``serve(settings, telemetry)``; returns the process exit status."""
    logs.configure()
    try:
        args = list(sys.argv[1:] if argv is None else argv)
        settings = settings_from_argv(args, environ(), build, prog)
        telemetry = telemetry_from_env(environ(), prog)
        threshold = gc_threshold(environ())
    except ConfigError as exc:
        print(f"{prog}: {exc.message}", file=sys.stderr)
        return 2
    security = getattr(settings, "rpc", None)
    if isinstance(security, RpcSecurity):
        say = logging.getLogger("podium.rpc")
        (say.warning if security.is_open else say.info)("%s: %s", prog, security.describe())
    try:
        aio.run(_serve_tuned(serve(settings, telemetry), threshold))
    except PodiumError as exc:
        print(f"{prog}: {exc.message}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"{prog}: cannot start: {exc}", file=sys.stderr)
        return 2
    finally:
        telemetry.shutdown()  # exports the spans still buffered
    return 0

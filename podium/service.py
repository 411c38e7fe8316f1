"""What every service's console script does around its own start and stop.

``run_main`` reads the settings (variables and flags), sets up logging and telemetry, runs
the service until SIGTERM or SIGINT, and turns every start-up failure into one line on
stderr and exit status 2.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

from podium import aio, logs
from podium.config import Environ, environ, settings_from_argv
from podium.errors import ConfigError, PodiumError
from podium.telemetry import Telemetry, telemetry_from_env

S = TypeVar("S")


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
    except ConfigError as exc:
        print(f"{prog}: {exc.message}", file=sys.stderr)
        return 2
    try:
        aio.run(serve(settings, telemetry))
    except PodiumError as exc:
        print(f"{prog}: {exc.message}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"{prog}: cannot start: {exc}", file=sys.stderr)
        return 2
    finally:
        telemetry.shutdown()  # exports the spans still buffered
    return 0

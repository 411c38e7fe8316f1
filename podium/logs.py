"""Logging setup shared by the services."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"
#: Client libraries that log every failed connection attempt with a traceback.
NOISY = ("cassandra",)


def configure(level: int = logging.INFO) -> None:
    logging.basicConfig(level=level, format=FORMAT)


@contextlib.contextmanager
def quiet_start() -> Iterator[None]:
    """Silence the drivers' connection chatter while a service starts.

    A store that cannot be reached at start stops the service with one line naming it (the
    driver's error becomes a PodiumError); the driver's per-attempt tracebacks would only
    bury that line. Once started, the drivers log normally again.
    """
    loggers = [logging.getLogger(name) for name in NOISY]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)

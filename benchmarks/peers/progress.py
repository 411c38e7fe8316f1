"""Completion counting for the job-queue peers, shared by their worker processes.

A no-op job only bumps an in-memory counter and notes the wall-clock time of its completion;
a daemon thread publishes ``"<count> <last completion time>"`` per process into one Redis hash
every 50 ms. The job itself makes no extra Redis call, so the peer is measured as a user would
run it; the orchestrator sums the counts and takes the latest completion time as the end.

Imports only the standard library and redis-py (present in every peer venv).
"""

from __future__ import annotations

import os
import threading
import time
from urllib.parse import urlparse

PROGRESS_KEY = "bench:progress"
READY_KEY = "bench:ready"
PUBLISH_EVERY_S = 0.05


def redis_address(url: str) -> tuple[str, int]:
    parsed = urlparse(url)
    return parsed.hostname or "127.0.0.1", parsed.port or 6379


class Progress:
    """Per-process completion counter with a background publisher thread."""

    def __init__(self, redis_url: str) -> None:
        self.redis_url = redis_url
        self.count = 0
        self.last = 0.0
        self._pid = 0
        self._lock = threading.Lock()

    def done(self) -> None:
        if self._pid != os.getpid():  # first job in this process (also after a fork)
            self._start()
        self.count += 1
        self.last = time.time()

    def _start(self) -> None:
        with self._lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
            self.count, self.last = 0, 0.0
            threading.Thread(target=self._publish, name="bench-progress", daemon=True).start()

    def _publish(self) -> None:
        import redis  # the peer venv's redis-py

        client = redis.Redis.from_url(self.redis_url)
        field, sent = str(os.getpid()), -1
        while True:
            count, last = self.count, self.last
            if count != sent:
                client.hset(PROGRESS_KEY, field, f"{count} {last:.6f}")
                sent = count
            time.sleep(PUBLISH_EVERY_S)


def mark_ready(redis_url: str) -> None:
    import redis

    redis.Redis.from_url(redis_url).hset(READY_KEY, str(os.getpid()), "1")


def read_progress(values: list[bytes]) -> tuple[int, float]:
    """(jobs done, latest completion time) from the hash values."""
    total, last = 0, 0.0
    for raw in values:
        count, when = raw.decode().split()
        total += int(count)
        last = max(last, float(when))
    return total, last

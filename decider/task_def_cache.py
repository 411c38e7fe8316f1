"""The decider's cache of registered TaskDefs, and what a pure operation is handed of it."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from podium.aio import Refreshed
from podium.errors import NotFound
from podium.store.api import MetadataStore


class TaskDefCache:
    """Registered TaskDefs by name, read from the store for a couple of seconds at a time;
    those found by :meth:`look_up` are added to them."""

    def __init__(self, metadata: MetadataStore, ttl_s: float) -> None:
        self._metadata = metadata
        self._ttl_s = ttl_s
        self._task_defs: dict[str, Mapping[str, Any]] = {}
        self._listed = Refreshed(self._list, ttl_s, "the registered TaskDefs")
        self._absent: dict[str, float] = {}  # names without a TaskDef, and when last looked up

    async def _list(self) -> dict[str, Mapping[str, Any]]:
        self._task_defs = {d["name"]: d for d in await self._metadata.list_task_defs()}
        return self._task_defs

    async def all(self) -> dict[str, Mapping[str, Any]]:
        """Registered TaskDefs by name, read again in the background every couple of seconds
        (a decision never waits for that read, only the first one)."""
        await self._listed.get()
        return self._task_defs

    def invalidate(self) -> None:
        self._listed.invalidate()

    async def with_misses(
        self, definition: Mapping[str, Any] | None
    ) -> Mapping[str, Mapping[str, Any]]:
        """The cached TaskDefs, plus any the definition names that the cache does not hold.

        A TaskDef registered just before a start is found at once (as in Conductor, whose
        metadata cache falls back to the store on a miss); a changed one is seen within the
        cache's lifetime. Names with no TaskDef are remembered for that lifetime too.
        """
        defs = await self.all()
        if not definition:
            return defs
        found = await self.look_up(defs, task_names(definition.get("tasks") or []))
        return {**defs, **found} if found else defs

    async def look_up(
        self, defs: Mapping[str, Mapping[str, Any]], names: Iterable[str]
    ) -> dict[str, Mapping[str, Any]]:
        """TaskDefs of ``names`` read from the store: those the cache lacks and that were not
        found absent within the cache's lifetime (they are cached, absences remembered)."""
        now = time.monotonic()
        found: dict[str, Mapping[str, Any]] = {}
        for n in set(names):
            if n in defs or now - self._absent.get(n, -1e9) < self._ttl_s:
                continue
            try:
                found[n] = self._task_defs[n] = await self._metadata.get_task_def(n)
            except NotFound:
                self._absent[n] = now
        return found


class Lookups(Mapping[str, Mapping[str, Any]]):
    """TaskDefs handed to a pure operation, noting the names it asked for and did not find."""

    def __init__(self, defs: Mapping[str, Mapping[str, Any]]) -> None:
        self._defs = defs
        self.missed: set[str] = set()

    def detached(self) -> Lookups:
        """A copy of the TaskDefs for another thread, noting its misses here."""
        copy = Lookups(dict(self._defs))
        copy.missed = self.missed
        return copy

    def __getitem__(self, name: str) -> Mapping[str, Any]:
        try:
            return self._defs[name]
        except KeyError:
            self.missed.add(name)
            raise

    def __iter__(self) -> Iterator[str]:
        return iter(self._defs)

    def __len__(self) -> int:
        return len(self._defs)


def task_names(tasks: Iterable[Mapping[str, Any]]) -> Iterable[str]:
    for t in tasks:
        if t.get("name"):
            yield str(t["name"])
        for branch in t.get("forkTasks") or []:
            yield from task_names(branch)
        for case in (t.get("decisionCases") or {}).values():
            yield from task_names(case)
        yield from task_names(t.get("defaultCase") or [])
        yield from task_names(t.get("loopOver") or [])

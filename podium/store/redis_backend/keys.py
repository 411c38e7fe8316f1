"""The store's Redis key layout, all under one prefix (kept apart from the queues).

Parts that come from user data (ids, names) are percent-encoded for ``%`` and ``:`` so that
two different (name, id) pairs can never build the same key.
"""

from __future__ import annotations

from dataclasses import dataclass


def part(value: str) -> str:
    """``value`` made safe to use between ``:`` separators."""
    return value.replace("%", "%25").replace(":", "%3A")


@dataclass(frozen=True)
class Keys:
    """Key names for one prefix (``podium:store:`` by default)."""

    prefix: str

    # executions
    def workflow(self, wid: str) -> str:
        return f"{self.prefix}wf:{part(wid)}"

    def workflow_tasks(self, wid: str) -> str:
        return f"{self.prefix}wf:{part(wid)}:tasks"

    def workflow_unique(self, wid: str) -> str:
        return f"{self.prefix}wf:{part(wid)}:uniq"

    def task_lookup(self, tid: str) -> str:
        return f"{self.prefix}task:{part(tid)}"

    def task_log(self, tid: str) -> str:
        return f"{self.prefix}tasklog:{part(tid)}"

    def running(self, name: str) -> str:
        return f"{self.prefix}running:{part(name)}"

    def pending(self, task_type: str) -> str:
        return f"{self.prefix}pending:{part(task_type)}"

    def correlation(self, name: str, correlation_id: str) -> str:
        return f"{self.prefix}corr:{part(name)}:{part(correlation_id)}"

    def index(self, kind: str, name: str | None, day: int) -> str:
        """Day bucket of the search index over all names (name None) or of one name."""
        if name is None:
            return f"{self.prefix}idx:{kind}:all:{day}"
        return f"{self.prefix}idx:{kind}:name:{part(name)}:{day}"

    def expiry_ledger(self) -> str:
        """Workflows whose retention runs out, by when (for purging their index entries)."""
        return f"{self.prefix}expiring"

    def expiry_footprints(self) -> str:
        return f"{self.prefix}expiring:footprints"

    def idempotency(self, workflow_name: str, key: str) -> str:
        """The workflow id an idempotency key of a workflow name is bound to."""
        return f"{self.prefix}idem:{part(workflow_name)}:{part(key)}"

    def poll_data(self, queue_name: str) -> str:
        return f"{self.prefix}poll:{part(queue_name)}"

    def audit(self, kind: str, target: str) -> str:
        """The audit records filed under one target, newest first (a capped list)."""
        return f"{self.prefix}audit:{kind}:{part(target)}"

    # metadata
    def task_defs(self) -> str:
        return f"{self.prefix}taskdefs"

    def task_def_names(self) -> str:
        return f"{self.prefix}taskdefs:names"

    def workflow_def(self, name: str) -> str:
        return f"{self.prefix}wfdef:{part(name)}"

    def workflow_def_names(self) -> str:
        return f"{self.prefix}wfdefs:names"

    def handlers(self) -> str:
        return f"{self.prefix}handlers"

    def handler_events(self) -> str:
        return f"{self.prefix}handlers:events"

    def handlers_of_event(self, event: str) -> str:
        return f"{self.prefix}handlers:event:{part(event)}"

    def access_keys(self) -> str:
        return f"{self.prefix}access_keys"

"""The records of the workflows a decider replica owns, kept in memory between decisions.

Calls about one workflow go to one replica (its owner: :meth:`podium.rpc_client.RpcClient.call`
with the workflow id as key), so that replica has usually written the workflow's last version
itself and can decide on it without reading it back. :class:`Records` keeps those records, each
with the version it was written as.

A kept record is never trusted on its own word. The commit of a decision made on it is
conditional on its version, as every commit is, so a record gone stale (another replica wrote
the workflow while this one's owner was down, or while two replicas both took themselves for
the owner) loses that commit and the decision is made again on a fresh read. A decision that
would not commit at all (it changes nothing, or an operation refuses) proves nothing about the
record, so :class:`~decider.commit_loop.CommitLoop` makes it again on a fresh read too: the
answers are those the store's own state gives, with or without the cache.

Finished workflows are not kept (they rarely change again), and the least recently used
records go first when the replica holds ``capacity`` of them.
"""

from __future__ import annotations

from collections import OrderedDict

from podium.statuses import WORKFLOW_TERMINAL
from podium.store import WorkflowSnapshot
from podium.types import JSON


class Records:
    """Workflow records (with their tasks) by id, with the version each was written as."""

    def __init__(self, capacity: int) -> None:
        if capacity < 0:
            raise ValueError("capacity must be 0 or more")
        self.capacity = capacity
        self._kept: OrderedDict[str, WorkflowSnapshot] = OrderedDict()
        #: decisions that started from a kept record, and those that had to read
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._kept)

    def get(self, workflow_id: str) -> WorkflowSnapshot | None:
        snap = self._kept.get(workflow_id)
        if snap is None:
            self.misses += 1
            return None
        self._kept.move_to_end(workflow_id)
        self.hits += 1
        return snap

    def put(self, workflow: JSON, version: int) -> None:
        """Keep ``workflow`` as written at ``version`` (a finished one is dropped instead).

        The record must not be changed afterwards: decisions never change their inputs, and
        the record handed to a caller is only encoded."""
        workflow_id = str(workflow["workflowId"])
        if workflow.get("status") in WORKFLOW_TERMINAL or self.capacity == 0:
            self._kept.pop(workflow_id, None)
            return
        self._kept[workflow_id] = WorkflowSnapshot(workflow, version)
        self._kept.move_to_end(workflow_id)
        while len(self._kept) > self.capacity:
            self._kept.popitem(last=False)

    def drop(self, workflow_id: str) -> None:
        self._kept.pop(workflow_id, None)

    def clear(self) -> None:
        self._kept.clear()

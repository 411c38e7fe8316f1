"""Checks and encoding shared by both backends, done before anything is written."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from podium.errors import InvalidArgument
from podium.store.codec import encode
from podium.store.errors import DuplicateTask
from podium.store.model import (
    Record,
    check_task,
    check_workflow,
    is_terminal_task,
    is_terminal_workflow,
    task_index_time,
    task_unique_key,
    workflow_index_time,
)


@dataclass(frozen=True)
class PreparedTask:
    """A checked task record, serialised, with the fields the store keys on."""

    task_id: str
    task_type: str
    record: Record
    blob: bytes
    unique_key: str
    terminal: bool
    index_time: int


@dataclass(frozen=True)
class PreparedCommit:
    """A checked workflow record (without tasks) and the tasks to write with it."""

    workflow_id: str
    name: str
    def_version: int
    correlation_id: str | None
    record: Record
    blob: bytes
    terminal: bool
    index_time: int
    tasks: tuple[PreparedTask, ...]
    #: Ids of tasks of the workflow to delete in the same commit.
    removed: tuple[str, ...] = ()
    #: With ``split_input``: ``blob`` leaves out the workflow's input, which stays here to be
    #: encoded (``input_blob``) only when the store writes it.
    input: object = None
    max_bytes: int = 0

    def input_blob(self) -> bytes:
        """The workflow input, encoded; with ``blob``, within the record size limit."""
        return encode(
            self.input, self.max_bytes, f"workflow {self.workflow_id}", beside=len(self.blob)
        )


def prepare_commit(
    workflow: Record,
    tasks: Sequence[Record],
    max_bytes: int,
    removed: Sequence[str] = (),
    *,
    split_input: bool = False,
) -> PreparedCommit:
    """Check and encode a commit; raise before any write if something is wrong.

    With ``split_input`` the record is encoded without its ``input`` (a store that keeps the
    input apart writes it only when it changed: a fan-out's input of 10,000 children is
    written once, not with each of its 20,000 commits)."""
    wf = check_workflow(workflow)
    record = wf
    inp: object = None
    if split_input:
        inp = wf.get("input")
        record = {k: v for k, v in wf.items() if k != "input"}
    wid = str(wf["workflowId"])
    prepared: list[PreparedTask] = []
    seen_ids: set[str] = set()
    owners: dict[str, str] = {}
    for raw in tasks:
        task = check_task(raw, wid)
        tid = str(task["taskId"])
        if tid in seen_ids:
            raise InvalidArgument(f"task {tid!r} appears twice in one commit", taskId=tid)
        seen_ids.add(tid)
        key = task_unique_key(task)
        if key in owners:
            raise DuplicateTask(
                f"tasks {owners[key]!r} and {tid!r} of workflow {wid!r} share the key {key}",
                workflowId=wid,
                uniqueKey=key,
                taskId=tid,
                ownerTaskId=owners[key],
            )
        owners[key] = tid
        prepared.append(
            PreparedTask(
                task_id=tid,
                task_type=str(task["taskType"]),
                record=task,
                blob=encode(task, max_bytes, f"task {tid}"),
                unique_key=key,
                terminal=is_terminal_task(task),
                index_time=task_index_time(task),
            )
        )
    gone = tuple(dict.fromkeys(removed))
    for tid in gone:
        if not isinstance(tid, str) or not tid:
            raise InvalidArgument(f"removed task id {tid!r} is not a task id", field="taskId")
        if tid in seen_ids:
            raise InvalidArgument(f"task {tid!r} is both written and removed", taskId=tid)
    corr = wf.get("correlationId")
    return PreparedCommit(
        workflow_id=wid,
        name=str(wf["workflowName"]),
        def_version=int(wf["workflowVersion"]),
        correlation_id=corr if corr else None,
        record=wf,
        blob=encode(record, max_bytes, f"workflow {wid}"),
        terminal=is_terminal_workflow(wf),
        index_time=workflow_index_time(wf),
        tasks=tuple(prepared),
        removed=gone,
        input=inp,
        max_bytes=max_bytes,
    )


def missing_removed(wid: str, missing: Sequence[str]) -> InvalidArgument:
    return InvalidArgument(
        f"cannot remove tasks {sorted(missing)!r}: not tasks of workflow {wid!r}",
        workflowId=wid, taskIds=sorted(missing),
    )  # fmt: skip


def check_expected_version(expected_version: int) -> None:
    if (
        not isinstance(expected_version, int)
        or isinstance(expected_version, bool)
        or expected_version < 1
    ):
        raise InvalidArgument(
            f"expected_version must be an integer >= 1, got {expected_version!r}",
            field="expected_version",
        )


def sort_tasks(tasks: list[Record]) -> list[Record]:
    """Tasks in Conductor's order: by ``seq``, then by scheduled time and id."""
    return sorted(
        tasks,
        key=lambda t: (t.get("seq", 0) or 0, t.get("scheduledTime", 0) or 0, str(t["taskId"])),
    )

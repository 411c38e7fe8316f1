"""What a key may do: its roles and, for a worker key, the task types it may work on.

Four roles, from most to least power:

``admin``
    everything, including managing keys (``/api/admin/keys``);
``operator``
    run and manage workflows, definitions, event handlers and queues, and do a worker's work
    on any task type; not keys;
``viewer``
    read everything, change nothing;
``worker``
    poll, update and log tasks of its own task types, read their queue sizes and task
    definitions; nothing else.

A key's grant is written ``ROLE`` or ``ROLE+ROLE`` after its secret in ``PODIUM_AUTH_KEYS``
(:func:`parse_grant`); the worker role names its task types as fnmatch patterns joined by
``|``: ``worker=billing_*|send_email``. A key written without a grant is an admin, as every
key was before roles existed.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass

ADMIN, OPERATOR, VIEWER, WORKER = "admin", "operator", "viewer", "worker"
ROLES = (ADMIN, OPERATOR, VIEWER, WORKER)

#: What a key id may be made of (it travels inside tokens and paths).
KEY_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$")
#: A task type pattern: a task name, possibly with ``*``, ``?`` or ``[...]`` wildcards.
_TYPE_PATTERN = re.compile(r"^[^\s|,:]{1,255}$")


class GrantError(ValueError):
    """A grant that cannot be read; the message never contains a secret."""


@dataclass(frozen=True)
class Grant:
    """A key's roles and, when it has the worker role, the task type patterns it may serve."""

    roles: tuple[str, ...] = (ADMIN,)
    task_types: tuple[str, ...] = ()

    def has(self, role: str) -> bool:
        return role in self.roles

    def may_work_on(self, task_type: str) -> bool:
        """Whether a worker with this grant may poll, update or read ``task_type``."""
        return self.has(WORKER) and any(
            fnmatch.fnmatchcase(task_type, pattern) for pattern in self.task_types
        )

    def text(self) -> str:
        """The grant as written in ``PODIUM_AUTH_KEYS`` (``operator``, ``worker=a|b_*``)."""
        parts = [
            f"{WORKER}={'|'.join(self.task_types)}" if role == WORKER else role
            for role in self.roles
        ]
        return "+".join(parts)

    def to_json(self) -> dict[str, list[str]]:
        return {"roles": list(self.roles), "taskTypes": list(self.task_types)}


ADMIN_GRANT = Grant()


def make_grant(
    roles: list[str] | tuple[str, ...], task_types: list[str] | tuple[str, ...]
) -> Grant:
    """A checked grant: known roles, and task types exactly when the worker role is given."""
    if not roles:
        raise GrantError(f"a key needs at least one role ({', '.join(ROLES)})")
    unknown = [r for r in roles if r not in ROLES]
    if unknown:
        # The name is not repeated: in a malformed PODIUM_AUTH_KEYS entry it may be a secret.
        raise GrantError(f"unknown role; roles are {', '.join(ROLES)}")
    if len(set(roles)) != len(roles):
        raise GrantError("a role is given twice")
    if WORKER in roles and not task_types:
        raise GrantError("the worker role needs its task types (worker=type_a|billing_*)")
    if WORKER not in roles and task_types:
        raise GrantError("task types are given only with the worker role")
    for pattern in task_types:
        if not _TYPE_PATTERN.match(pattern):
            raise GrantError(
                f"task type pattern {pattern!r} must be 1-255 characters without spaces, "
                "'|', ',' or ':'"
            )
    ordered = tuple(r for r in ROLES if r in roles)
    return Grant(ordered, tuple(task_types))


def parse_grant(text: str) -> Grant:
    """``operator``, ``viewer+worker=billing_*|email`` ... to a :class:`Grant`."""
    roles: list[str] = []
    task_types: list[str] = []
    for part in text.strip().split("+"):
        role, sep, types = part.strip().partition("=")
        if sep and role != WORKER:
            raise GrantError("only the worker role takes task types (worker=type_a|billing_*)")
        roles.append(role)
        if sep:
            task_types.extend(t.strip() for t in types.split("|"))
    return make_grant(roles, task_types)

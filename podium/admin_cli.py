"""``podium admin ...``: the gateway's maintenance endpoints from the command line.

podium admin purge --before DATE [--after DATE] [--batch N] [--name WORKFLOW]
podium admin requeue [TASK_TYPE]
podium admin export [-o FILE]
podium admin import FILE

Each talks HTTP to a gateway (``--url``, as the other commands). With authentication on, the
key id and secret (``--key-id``/``--key-secret``, else ``$CONDUCTOR_AUTH_KEY`` and
``$CONDUCTOR_AUTH_SECRET``, the variables the Conductor SDKs read) are exchanged for a token
at ``POST /api/token``; purge and import need an admin key.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

#: Where the key id and secret come from when not given on the command line.
KEY_VARIABLES = ("CONDUCTOR_AUTH_KEY", "CONDUCTOR_AUTH_SECRET")
#: A purge stops after this many calls that removed nothing and still said "more" (it has
#: then walked every day of its range: each call walks up to a month of days).
MAX_IDLE_PURGE_CALLS = 1000


def add_parser(
    sub: Any, url: argparse.ArgumentParser, environ: Mapping[str, str], positive: Any
) -> None:
    """The ``admin`` command and its actions, on the ``podium`` parser's subparsers."""
    key = argparse.ArgumentParser(add_help=False)
    key.add_argument(
        "--key-id", default=environ.get(KEY_VARIABLES[0], ""), help=f"(${KEY_VARIABLES[0]})"
    )
    key.add_argument(
        "--key-secret", default=environ.get(KEY_VARIABLES[1], ""), help=f"(${KEY_VARIABLES[1]})"
    )
    parents = [url, key]
    admin = sub.add_parser("admin", help="purge old workflows, requeue tasks, move definitions")
    actions = admin.add_subparsers(dest="action", required=True)
    purge = actions.add_parser(
        "purge", parents=parents, help="remove finished workflows that ended before a time"
    )
    purge.add_argument("--before", required=True, help="epoch ms or ISO 8601 date (UTC)")
    purge.add_argument("--after", help="only workflows started after (default: a year before)")
    purge.add_argument("--batch", type=positive, default=100, help="workflows per call (100)")
    purge.add_argument("--name", help="only workflows of this name")
    requeue = actions.add_parser(
        "requeue", parents=parents, help="push again the lost messages of SCHEDULED tasks"
    )
    requeue.add_argument("task_type", nargs="?", help="one task type (default: every type)")
    export = actions.add_parser("export", parents=parents, help="every definition as JSON")
    export.add_argument("-o", "--output", type=Path, help="write here (default: stdout)")
    imp = actions.add_parser("import", parents=parents, help="write an exported document")
    imp.add_argument("file", type=Path)


class Api:
    """Calls to one gateway, with a token when a key is given."""

    def __init__(self, base: str, key_id: str, key_secret: str) -> None:
        self.base = base.rstrip("/")
        self.headers: dict[str, str] = {}
        if key_id:
            answer = self.call("POST", "/token", json={"keyId": key_id, "keySecret": key_secret})
            self.headers["X-Authorization"] = str(answer["token"])

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        url = f"{self.base}{path}"
        try:
            resp = httpx.request(method, url, timeout=120, headers=self.headers, **kwargs)
        except httpx.HTTPError as exc:
            raise SystemExit(f"podium: cannot reach {url}: {exc}") from None
        if resp.status_code >= 400:
            raise SystemExit(f"podium: {resp.status_code}: {_problem(resp)}")
        return resp.json() if resp.content else None


def _problem(resp: httpx.Response) -> str:
    """The envelope's message, and each validation problem on a line of its own."""
    try:
        body = resp.json()
    except ValueError:
        return resp.text
    if not isinstance(body, dict):
        return resp.text
    lines = [str(body.get("message", resp.text))]
    for error in body.get("validationErrors") or []:
        lines.append(f"  {error.get('path')}: {error.get('message')}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    api = Api(args.url, args.key_id, args.key_secret)
    if args.action == "purge":
        return _purge(api, args)
    if args.action == "requeue":
        path = f"/admin/requeue/{args.task_type}" if args.task_type else "/admin/requeue"
        answer = api.call("POST", path)
        print(
            f"requeued: {answer['scheduledTasks']} SCHEDULED tasks of {answer['taskTypes']} "
            f"task types, {answer['workflowsDecided']} workflows decided"
        )
        return 0
    if args.action == "export":
        text = json.dumps(api.call("GET", "/admin/export"), indent=2) + "\n"
        if args.output is None:
            sys.stdout.write(text)
        else:
            args.output.write_text(text)
            print(f"exported to {args.output}")
        return 0
    try:
        doc = json.loads(args.file.read_text())
    except (OSError, ValueError) as exc:
        raise SystemExit(f"podium: cannot read {args.file}: {exc}") from None
    answer = api.call("POST", "/admin/import", json=doc)
    for kind, counts in answer.items():
        print(f"{kind}: {counts['created']} created, {counts['updated']} updated")
    return 0


def _purge(api: Api, args: argparse.Namespace) -> int:
    """Call the purge until it says there is no more, printing each call's progress."""
    params: dict[str, Any] = {"endTimeBefore": args.before, "batchSize": args.batch}
    if args.after:
        params["startedAfter"] = args.after
    if args.name:
        params["workflowName"] = args.name
    removed = examined = idle = 0
    while True:
        answer = api.call("POST", "/admin/purge", params=params)
        removed += answer["removed"]
        examined += answer["examined"]
        print(f"purge: {removed} removed, {examined} examined", flush=True)
        if not answer["more"]:
            break
        idle = 0 if answer["removed"] else idle + 1
        if idle >= MAX_IDLE_PURGE_CALLS:
            raise SystemExit("podium: the purge makes no progress; stopped")
        params["continueToken"] = answer["continueToken"]
    print(f"purged {removed} workflows")
    return 0

"""Types shared by every part of Podium."""

from __future__ import annotations

from typing import Any

#: A JSON object as it crosses the API, the RPC and the store: Conductor's records and
#: definitions are plain dicts, checked where they enter.
JSON = dict[str, Any]

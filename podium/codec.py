"""The msgpack codec and the RPC envelope.

A frame on the wire is a 4-byte big-endian length followed by one msgpack map (the envelope):

* request:  ``{"v": 1, "k": "q", "i": id, "m": method, "p": params, "h": headers, "t": timeout_ms}``
* response: ``{"v": 1, "k": "r", "i": id, "r": result}``
* error:    ``{"v": 1, "k": "e", "i": id, "e": {"code": ..., "message": ..., "data": {...}}}``

``h`` carries string headers (the W3C ``traceparent``/``tracestate`` among them). Request id 0 is
reserved for errors that cannot be tied to a request (an oversized or undecodable frame).
Limits (frame size, nesting depth) are checked on both sides; pickle is never used.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import msgpack

from podium.errors import LimitExceeded, ProtocolError

ENVELOPE_VERSION = 1
HEADER = struct.Struct(">I")
HEADER_SIZE = HEADER.size

KIND_REQUEST = "q"
KIND_RESPONSE = "r"
KIND_ERROR = "e"


@dataclass(frozen=True)
class CodecLimits:
    """Limits on what one frame may hold; both peers enforce them."""

    max_frame_bytes: int = 16 * 1024 * 1024
    max_depth: int = 64

    def __post_init__(self) -> None:
        if self.max_frame_bytes < 64:
            raise ValueError("max_frame_bytes must be at least 64")
        if self.max_depth < 4:
            raise ValueError("max_depth must be at least 4")


def pack(obj: Any) -> bytes:
    """Pack a value with msgpack (bytes stay bytes, str stays str)."""
    return msgpack.packb(obj, use_bin_type=True)  # type: ignore[no-any-return]


def unpack(data: bytes, limits: CodecLimits | None = None) -> Any:
    """Unpack one msgpack value, checking its nesting depth."""
    try:
        obj = msgpack.unpackb(data, raw=False, strict_map_key=False)
    except Exception as exc:  # msgpack raises several unrelated types for bad input
        raise ProtocolError(f"undecodable msgpack: {exc}") from None
    if limits is not None:
        check_depth(obj, limits.max_depth)
    return obj


def check_depth(obj: Any, max_depth: int) -> None:
    """Raise LimitExceeded if containers nest deeper than ``max_depth``.

    Iterative, so a hostile payload cannot exhaust the interpreter's stack.
    """
    if type(obj) is not dict and type(obj) is not list:
        return
    stack: list[tuple[Any, int]] = [(obj, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > max_depth:
            raise LimitExceeded(
                f"payload nests deeper than {max_depth} levels", max_depth=max_depth
            )
        for child in node.values() if type(node) is dict else node:
            t = type(child)  # exact types: msgpack decodes to plain dict and list only
            if t is dict or t is list:
                stack.append((child, depth + 1))


def frame(envelope: dict[str, Any], limits: CodecLimits) -> bytes:
    """Encode an envelope as one length-prefixed frame."""
    body = pack(envelope)
    if len(body) > limits.max_frame_bytes:
        raise LimitExceeded(
            f"frame of {len(body)} bytes exceeds the limit of {limits.max_frame_bytes}",
            size=len(body),
            max_frame_bytes=limits.max_frame_bytes,
        )
    return HEADER.pack(len(body)) + body


def request(
    req_id: int, method: str, params: Any, headers: dict[str, str], timeout_ms: int
) -> dict[str, Any]:
    return {
        "v": ENVELOPE_VERSION,
        "k": KIND_REQUEST,
        "i": req_id,
        "m": method,
        "p": params,
        "h": headers,
        "t": timeout_ms,
    }


def response(req_id: int, result: Any) -> dict[str, Any]:
    return {"v": ENVELOPE_VERSION, "k": KIND_RESPONSE, "i": req_id, "r": result}


def error(req_id: int, err: dict[str, Any]) -> dict[str, Any]:
    return {"v": ENVELOPE_VERSION, "k": KIND_ERROR, "i": req_id, "e": err}


class FrameReader:
    """Splits a byte stream into frame bodies.

    An oversized frame is not buffered: its bytes are skipped as they arrive and it is
    reported once, so the connection stays usable.
    """

    def __init__(self, limits: CodecLimits) -> None:
        self._limits = limits
        self._buf = bytearray()
        self._skip = 0

    def feed(self, data: bytes) -> list[bytes | LimitExceeded]:
        """Add bytes; return the complete frame bodies (or a LimitExceeded per oversized one)."""
        out: list[bytes | LimitExceeded] = []
        if self._skip:
            n = min(self._skip, len(data))
            self._skip -= n
            data = data[n:]
        self._buf += data
        buf = self._buf
        pos = 0
        while len(buf) - pos >= HEADER_SIZE:
            (size,) = HEADER.unpack_from(buf, pos)
            if size > self._limits.max_frame_bytes:
                out.append(
                    LimitExceeded(
                        f"frame of {size} bytes exceeds the limit of "
                        f"{self._limits.max_frame_bytes}",
                        size=size,
                        max_frame_bytes=self._limits.max_frame_bytes,
                    )
                )
                available = len(buf) - pos - HEADER_SIZE
                if available >= size:
                    pos += HEADER_SIZE + size
                    continue
                self._skip = size - available
                pos = len(buf)
                break
            end = pos + HEADER_SIZE + size
            if end > len(buf):
                break
            out.append(bytes(buf[pos + HEADER_SIZE : end]))
            pos = end
        if pos:
            del buf[:pos]
        return out

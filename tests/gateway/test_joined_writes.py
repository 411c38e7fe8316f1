"""The gateway's HTTP transport sends a response's head and body in one write."""

from __future__ import annotations

import asyncio
import socket
import struct
from typing import Any

from api_gateway.joined_writes import JoinedWrites

from .conftest import RunningGateway


class Recorder:
    """A transport that keeps what reaches it, one entry per send."""

    def __init__(self) -> None:
        self.sends: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.sends.append(bytes(data))

    def writelines(self, data: Any) -> None:
        self.sends.append(b"".join(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str) -> str:
        return f"info:{name}"


async def joined() -> tuple[JoinedWrites, Recorder]:
    recorder = Recorder()
    return JoinedWrites(recorder, asyncio.get_running_loop()), recorder  # type: ignore[arg-type]


async def test_head_and_body_go_out_together() -> None:
    transport, recorder = await joined()
    transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    assert recorder.sends == []
    transport.write(b"{}")
    assert recorder.sends == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"]
    transport.write(b"HTTP/1.1 204 No Content\r\n\r\n")
    transport.write(b"")
    assert len(recorder.sends) == 2
    await asyncio.sleep(0)  # the flush scheduled by the first write finds nothing held
    assert len(recorder.sends) == 2


async def test_a_lone_write_goes_at_the_end_of_the_turn() -> None:
    transport, recorder = await joined()
    transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    await asyncio.sleep(0)
    assert recorder.sends == [b"HTTP/1.1 100 Continue\r\n\r\n"]


async def test_nothing_is_sent_on_a_connection_closed_meanwhile() -> None:
    transport, recorder = await joined()
    transport.write(b"late")
    recorder.close()  # the connection went away (the peer), not through the wrapper
    await asyncio.sleep(0)
    assert recorder.sends == []


async def test_close_sends_what_is_held_first() -> None:
    transport, recorder = await joined()
    transport.write(b"bye")
    transport.close()
    assert recorder.sends == [b"bye"] and recorder.closed
    assert transport.get_extra_info("peername") == "info:peername"


def data_segments_in(sock: socket.socket) -> int:
    """Linux's count of TCP segments with data that reached ``sock`` (``tcpi_data_segs_in``)."""
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    return int(struct.unpack_from("I", info, 152)[0])


async def test_a_served_answer_is_one_segment(running_gateway: RunningGateway) -> None:
    """Through uvicorn: the answer's head and body reach the client as one TCP segment."""
    host, port = running_gateway.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        sock = writer.get_extra_info("socket")
        for _ in range(2):  # a fresh connection, then one already used
            before = data_segments_in(sock)
            writer.write(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200"), head
            length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length"))  # fmt: skip
            body = await reader.readexactly(length)
            assert body
            assert data_segments_in(sock) - before == 1
    finally:
        writer.close()
        await writer.wait_closed()

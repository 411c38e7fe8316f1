"""Start and stop a local RabbitMQ broker (for tests and benchmarks of AMQP events).

The broker is Debian's ``rabbitmq-server``, run as the current user with everything of its own:
loopback ports picked free (AMQP, Erlang distribution, epmd), a node name, and a folder holding
its database, logs and Erlang cookie. No plugin is enabled, so it starts in a few seconds. The
``guest`` user (allowed from loopback only) is how clients log in: see :attr:`RabbitServer.url`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from podium.errors import ConfigError, Unavailable
from podium.launch.redis import free_port

#: Where Debian's package keeps the scripts that run the broker as the calling user (the ones in
#: /usr/sbin switch to the ``rabbitmq`` user first).
_LIB_BIN = Path("/usr/lib/rabbitmq/bin")


def rabbitmq_server_binary() -> str:
    for candidate in (_LIB_BIN / "rabbitmq-server", shutil.which("rabbitmq-server")):
        if candidate is not None and Path(candidate).is_file():
            return str(candidate)
    raise ConfigError(
        "rabbitmq-server is not installed; run scripts/bootstrap.sh or "
        "'apt-get install rabbitmq-server'"
    )


def _speaks_amqp(host: str, port: int, timeout_s: float = 0.5) -> bool:
    """Whether the broker answers an AMQP 0-9-1 protocol header with a method frame."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as s:
            s.sendall(b"AMQP\x00\x00\x09\x01")
            return s.recv(1) == b"\x01"
    except OSError:
        return False


@dataclass
class RabbitServer:
    """One RabbitMQ node on loopback, its files in ``data_dir`` (a temporary folder if None)."""

    host: str = "127.0.0.1"
    port: int = 0
    data_dir: Path | None = None
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _own_dir: bool = field(default=False, init=False, repr=False)
    _epmd_port: int = field(default=0, init=False, repr=False)

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@{self.host}:{self.port}/"

    @property
    def vm_pid(self) -> int | None:
        """The process id of the broker's Erlang VM (the start script's child), for CPU
        accounting; None when not running."""
        if self._proc is None:
            return None
        children = Path(f"/proc/{self._proc.pid}/task/{self._proc.pid}/children")
        with contextlib.suppress(OSError):
            found = children.read_text().split()
            if found:
                return int(found[0])
        return self._proc.pid

    def _environment(self, folder: Path) -> dict[str, str]:
        self._epmd_port = free_port(self.host)
        empty = folder / "empty.conf"
        empty.touch()
        plugins = folder / "enabled_plugins"
        plugins.write_text("[].\n")
        return {
            **os.environ,
            "HOME": str(folder),  # the Erlang cookie goes here
            "RABBITMQ_NODENAME": f"podium-{self.port}@localhost",
            "RABBITMQ_NODE_IP_ADDRESS": self.host,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(free_port(self.host)),
            "ERL_EPMD_PORT": str(self._epmd_port),
            "ERL_EPMD_ADDRESS": self.host,
            "RABBITMQ_BASE": str(folder),
            "RABBITMQ_MNESIA_BASE": str(folder / "mnesia"),
            "RABBITMQ_LOG_BASE": str(folder / "log"),
            "RABBITMQ_PID_FILE": str(folder / "rabbitmq.pid"),
            "RABBITMQ_CONF_ENV_FILE": str(empty),
            "RABBITMQ_CONFIG_FILE": str(folder / "rabbitmq"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(folder / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(plugins),
            "RABBITMQ_ENABLED_PLUGINS": "",
        }

    def start(self, timeout_s: float = 60.0) -> Self:
        binary = rabbitmq_server_binary()
        if self.port == 0:
            self.port = free_port(self.host)
        if self.data_dir is None:
            self.data_dir = Path(tempfile.mkdtemp(prefix="podium-rabbitmq-"))
            self._own_dir = True
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log_file = (self.data_dir / "stdout.log").open("wb")
        self._proc = subprocess.Popen(
            [binary],
            env=self._environment(self.data_dir),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # stopped as a group: the broker and its helpers
        )
        log_file.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                tail = (self.data_dir / "stdout.log").read_text(errors="replace")[-2000:]
                self.stop()
                raise Unavailable(f"rabbitmq-server exited at start: {tail}")
            if _speaks_amqp(self.host, self.port):
                return self
            time.sleep(0.05)
        self.stop()
        raise Unavailable(f"rabbitmq-server did not listen on {self.port} within {timeout_s}s")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        if self._epmd_port:
            # epmd detaches into a session of its own; it is told to stop on its port
            env = {**os.environ, "ERL_EPMD_PORT": str(self._epmd_port)}
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                subprocess.run(
                    ["epmd", "-kill"], env=env, capture_output=True, timeout=5, check=False
                )
            self._epmd_port = 0
        if self._own_dir and self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

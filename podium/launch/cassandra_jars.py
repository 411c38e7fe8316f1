"""Cassandra's jars: resolved once with Maven from ``deploy/cassandra/pom.xml`` into a cache,
and checked against the SHA-256 of every jar that ``cassandra-<version>.sha256`` (next to the
Maven file) pins.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from podium.errors import ConfigError, Unavailable

DEFAULT_VERSION = "5.0.9"
POM = Path(__file__).resolve().parents[2] / "deploy" / "cassandra" / "pom.xml"
_STAMP = ".podium-fetched"


def cassandra_home(version: str = DEFAULT_VERSION) -> Path:
    """Where the jars of ``version`` are cached (``$PODIUM_CASSANDRA_HOME`` wins)."""
    env = os.environ.get("PODIUM_CASSANDRA_HOME")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "podium" / f"cassandra-{version}"


def fetch_jars(
    version: str = DEFAULT_VERSION, home: Path | None = None, timeout_s: float = 900.0
) -> Path:
    """Resolve Cassandra's jars with Maven into ``<home>/lib`` once; return that folder."""
    home = home or cassandra_home(version)
    lib = home / "lib"
    stamp = home / _STAMP
    if _stamped(stamp, version):
        return lib
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ConfigError(
            "mvn is not installed; run scripts/bootstrap.sh or 'apt-get install maven'"
        )
    if not POM.is_file():
        raise ConfigError(f"the Maven file for Cassandra is missing: {POM}")
    home.mkdir(parents=True, exist_ok=True)
    # Two test processes may start together; one resolves, the other waits and reuses.
    with (home / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _stamped(stamp, version):
            return lib
        partial = home / "lib.partial"
        shutil.rmtree(partial, ignore_errors=True)
        args = [
            mvn, "-q", "-B", "--strict-checksums", "-f", str(POM),
            f"-Dcassandra.version={version}",
            f"-DoutputDirectory={partial}",
            "dependency:copy-dependencies",
        ]  # fmt: skip
        try:
            done = subprocess.run(
                args, capture_output=True, text=True, timeout=timeout_s, check=False
            )
        except subprocess.TimeoutExpired as e:
            raise Unavailable(f"Maven did not resolve Cassandra {version} in {timeout_s}s") from e
        if done.returncode != 0 or not any(partial.glob("cassandra-all-*.jar")):
            out = (done.stdout + done.stderr)[-3000:]
            raise Unavailable(f"Maven could not resolve Cassandra {version}: {out}")
        lock_file = jar_lock(version)
        if lock_file.is_file():
            verify_jars(partial, lock_file)
        shutil.rmtree(lib, ignore_errors=True)
        partial.rename(lib)
        stamp.write_text(version + "\n")
    return lib


def jar_lock(version: str) -> Path:
    """The file that pins the SHA-256 of every jar of Cassandra ``version``."""
    return POM.parent / f"cassandra-{version}.sha256"


def jar_digests(lib: Path) -> dict[str, str]:
    """``jar name -> sha256`` of every jar in ``lib``."""
    digests = {}
    for jar in sorted(lib.glob("*.jar")):
        h = hashlib.sha256()
        with jar.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        digests[jar.name] = h.hexdigest()
    return digests


def read_jar_lock(lock_file: Path) -> dict[str, str]:
    """A ``sha256sum``-style file: ``<hex digest>  <jar name>`` per line, ``#`` comments."""
    pins = {}
    for line in lock_file.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            digest, name = line.split(maxsplit=1)
            pins[name.strip()] = digest
    return pins


def write_jar_lock(lib: Path, lock_file: Path) -> None:
    lines = [f"{digest}  {name}" for name, digest in jar_digests(lib).items()]
    header = "# SHA-256 of every jar Maven resolves for deploy/cassandra/pom.xml at this version.\n"
    lock_file.write_text(header + "\n".join(lines) + "\n")


def verify_jars(lib: Path, lock_file: Path) -> None:
    """Raise ``Unavailable`` unless ``lib`` holds exactly the jars, and digests, of the lock."""
    pinned, found = read_jar_lock(lock_file), jar_digests(lib)
    problems = [f"missing {n}" for n in sorted(set(pinned) - set(found))]
    problems += [f"unexpected {n}" for n in sorted(set(found) - set(pinned))]
    problems += [
        f"{n} has sha256 {found[n]}, locked {pinned[n]}"
        for n in sorted(set(found) & set(pinned))
        if found[n] != pinned[n]
    ]
    if problems:
        raise Unavailable(
            f"the Cassandra jars do not match {lock_file.name}: " + "; ".join(problems[:5])
        )


def _stamped(stamp: Path, version: str) -> bool:
    try:
        return stamp.read_text().strip() == version
    except OSError:
        return False

"""A throwaway PostgreSQL cluster for tests: initdb into a temp dir, start on a free loopback port, stop.

Uses the Debian package's binaries (``/usr/lib/postgresql/<version>/bin``, installed by
``.ci/install-tools``). ``initdb`` refuses to run as root, so as root the cluster belongs to the
``postgres`` system user (``runuser``). Missing binaries skip the test locally and fail it under CI.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"


def pg_bin() -> Path:
    """The folder of the newest installed PostgreSQL's binaries (skip/fail when there is none)."""
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if not versions:
        message = "PostgreSQL not installed (apt-get install postgresql)"
        if IN_CI:
            pytest.fail(message + " (CI=true: .ci/install-tools must install it)")
        pytest.skip(message)
    return versions[-1].parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_owner(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@contextlib.contextmanager
def postgres_cluster() -> Iterator[str]:
    """Yields ``postgresql://postgres@127.0.0.1:<port>/fleet``; the cluster is gone afterwards.

    The cluster lives in a fresh folder under the system temp dir (pytest's are private to root,
    which the ``postgres`` user cannot enter), removed at the end.
    """
    import tempfile

    binaries = pg_bin()
    folder = Path(tempfile.mkdtemp(prefix="vapi-agent-pg-"))
    data = folder / "pgdata"
    data.mkdir()
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
        shutil.chown(data, "postgres")
    subprocess.run(_as_owner([str(binaries / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                              "-E", "UTF8"]), check=True, capture_output=True, timeout=120)
    port = _free_port()
    options = f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off"
    subprocess.run(_as_owner([str(binaries / "pg_ctl"), "-D", str(data), "-l", str(data / "server.log"),
                              "-o", options, "-w", "start"]), check=True, capture_output=True, timeout=120)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/fleet"
    finally:
        subprocess.run(_as_owner([str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
                       capture_output=True, timeout=60)
        shutil.rmtree(folder, ignore_errors=True)


def pg_dump(url: str) -> str:
    """The whole database as SQL text."""
    dumped = subprocess.run([str(pg_bin() / "pg_dump"), url], check=True, capture_output=True, text=True, timeout=120)
    return dumped.stdout


def with_pickles_decoded(text: str) -> str:
    """``text`` plus every base64 blob in it decoded (DBOS stores inputs and outputs as base64 pickles)."""
    import base64
    import binascii
    import re

    decoded = []
    for blob in re.findall(r"[A-Za-z0-9+/=]{16,}", text):
        try:
            decoded.append(base64.b64decode(blob + "=" * (-len(blob) % 4)).decode("latin-1"))
        except (binascii.Error, ValueError):
            continue
    return text + "\n" + "\n".join(decoded)

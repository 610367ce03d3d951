"""The real servers the tests start on loopback (KrakenD, Alertmanager, Prometheus, the registry): ports, whose
listener a server is, and shutdown."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
from pathlib import Path

# Addresses a listener reaching 127.0.0.1 has, as /proc/net/tcp{,6} write them: loopback, or any address
# (a Go server given ":port" listens on [::], which also takes IPv4).
_V4 = int.from_bytes(socket.inet_aton("127.0.0.1"), sys.byteorder).to_bytes(4, "big").hex().upper()
REACHES_LOOPBACK = {_V4, "00000000", "0" * 32, "0000000000000000FFFF0000" + _V4}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def listens(process: subprocess.Popen, port: int) -> bool:
    """Whether ``process`` itself holds a listening socket that 127.0.0.1:``port`` reaches.

    A port from free_port() can be taken by another server before ``process`` binds it; that server may then
    answer the readiness probe while ``process`` fails to start. Only the process's own socket counts (Linux)."""
    sockets, table = set(), []
    try:
        fds = list(Path(f"/proc/{process.pid}/fd").iterdir())
    except OSError:  # the process is gone
        return False
    for name in ("tcp", "tcp6"):  # no tcp6 on a kernel without IPv6
        with contextlib.suppress(OSError):
            table += Path(f"/proc/{process.pid}/net/{name}").read_text().splitlines()[1:]
    for fd in fds:
        try:
            target = os.readlink(fd)
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            sockets.add(target[len("socket:["):-1])
    for line in table:
        fields = line.split()
        (address, _, hex_port), state, inode = fields[1].partition(":"), fields[3], fields[9]
        if state == "0A" and int(hex_port, 16) == port and address in REACHES_LOOPBACK and inode in sockets:
            return True
    return False


def stop(process: subprocess.Popen) -> None:
    """Ask politely, then insist: a test must never leave a server running."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()

"""The real servers the tests start on loopback (KrakenD, Alertmanager, Prometheus, the registry): ports, whose
listener a server is, and shutdown."""

from __future__ import annotations

import socket
import subprocess

import psutil


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def listens(process: subprocess.Popen, port: int) -> bool:
    """Whether ``process`` itself listens where 127.0.0.1:``port`` reaches (loopback, or any address).

    A port from free_port() can be taken by another server before ``process`` binds it; that server may then
    answer the readiness probe while ``process`` fails to start. Only the process's own socket counts."""
    try:
        connections = psutil.Process(process.pid).net_connections(kind="tcp")
    except (psutil.NoSuchProcess, psutil.ZombieProcess):  # the process is gone
        return False
    return any(c.status == psutil.CONN_LISTEN and c.laddr.port == port
               and c.laddr.ip in ("127.0.0.1", "0.0.0.0", "::", "::ffff:127.0.0.1") for c in connections)


def stop(process: subprocess.Popen) -> None:
    """Ask politely, then insist: a test must never leave a server running."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()

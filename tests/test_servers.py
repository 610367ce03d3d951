"""tests/support/servers.py: a server counts as started only on its own listening socket."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from typing import Iterator

import pytest

from tests.support.servers import free_port, listens, stop


@pytest.fixture
def http_server() -> Iterator[tuple[subprocess.Popen, int]]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not listens(process, port):
            assert process.poll() is None and time.monotonic() < deadline, "http.server did not listen"
            time.sleep(0.05)
        yield process, port
    finally:
        stop(process)


def test_a_server_listens_on_its_own_port_only(http_server: tuple[subprocess.Popen, int]) -> None:
    process, port = http_server
    assert listens(process, port)
    with socket.socket() as other:  # another listener on loopback is not the server's
        other.bind(("127.0.0.1", 0))
        other.listen()
        assert not listens(process, other.getsockname()[1])


def test_a_process_whose_port_another_holds_does_not_listen() -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        try:
            assert not listens(process, port)
        finally:
            stop(process)
    assert not listens(process, port)  # and a process that is gone listens nowhere

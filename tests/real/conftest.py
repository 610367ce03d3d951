"""Real parts for the alerting tests: promtool, amtool and an Alertmanager on a loopback port.

Missing binaries fail the tests (never skip them): `scripts/debian-packages.sh prometheus prometheus-alertmanager`
installs them, and scripts/test.sh runs it before pytest.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml
from tests.support.servers import free_port, listens, stop

INSTALL = "run scripts/debian-packages.sh prometheus prometheus-alertmanager"


def _binary(*names: str) -> str:
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    pytest.fail(f"{' or '.join(names)} not found on PATH: {INSTALL}")


@pytest.fixture(scope="session")
def promtool() -> str:
    return _binary("promtool")


@pytest.fixture(scope="session")
def alertmanager_amtool() -> str:
    return _binary("amtool")


@pytest.fixture(scope="session")
def alertmanager_binary() -> str:
    return _binary("alertmanager", "prometheus-alertmanager")


@dataclass
class Sink:
    """A loopback HTTP server standing in for Slack, PagerDuty and the dead-man's switch: records every POST."""

    url: str
    requests: list[tuple[str, Any]] = field(default_factory=list)

    def wait_for(self, path: str, count: int = 1, timeout: float = 30.0) -> list[Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            bodies = [body for got, body in list(self.requests) if got == path]
            if len(bodies) >= count:
                return bodies
            time.sleep(0.2)
        raise AssertionError(f"no {count} POST(s) to {path} within {timeout}s; got {[p for p, _ in self.requests]}")

    def paths(self) -> list[str]:
        return [path for path, _ in list(self.requests)]


@pytest.fixture
def alertmanager_sink() -> Iterator[Sink]:
    sink = Sink(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            try:
                parsed: Any = json.loads(body)
            except ValueError:
                parsed = body.decode(errors="replace")
            sink.requests.append((self.path, parsed))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"status": "success", "ok": true}')

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    sink.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield sink
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class AlertmanagerServer:
    url: str
    process: subprocess.Popen
    log: Path

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=5) as response:
            return json.loads(response.read())


@pytest.fixture
def alertmanager_server(alertmanager_binary: str, tmp_path: Path, request: pytest.FixtureRequest
                        ) -> Iterator[AlertmanagerServer]:
    """An Alertmanager on 127.0.0.1 with the test's config (``alertmanager_config`` fixture), its own storage and no
    cluster gossip; stopped after the test."""
    config = request.getfixturevalue("alertmanager_config")
    config_file = tmp_path / "alertmanager.yml"
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    port = free_port()
    log = tmp_path / "alertmanager.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [alertmanager_binary, f"--config.file={config_file}", f"--storage.path={tmp_path / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=", "--log.level=debug"],
            stdout=output, stderr=subprocess.STDOUT)
    server = AlertmanagerServer(f"http://127.0.0.1:{port}", process, log)
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                pytest.fail(f"alertmanager exited with {process.returncode}: {log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(server.url + "/-/ready", timeout=1) as response:
                    if response.status == 200 and listens(process, port):
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"alertmanager not ready within 30s: {log.read_text()[-2000:]}")
            time.sleep(0.1)
        yield server
    finally:
        stop(process)

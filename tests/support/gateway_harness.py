"""A real KrakenD on loopback in front of stub backends that stand in for each service's two Services.

Each stub answers as the colour its Service selected when the connection opened; switching a stub's colour is
what a Kubernetes selector update does, so a colour flip can be exercised without touching the gateway. As with
kube-proxy, a connection that is already open stays with the colour it reached.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

from core.gateway import krakend_config
from tests.support.stacks import ROOT, catalogue, settings
from tests.support.servers import free_port, listens, stop


def krakend_binary() -> Path:
    """Built (or found in the cache) by the project's own script."""
    output = subprocess.run([str(ROOT / "scripts" / "bootstrap-gateway.sh")], check=True, capture_output=True,
                            text=True, timeout=3600).stdout
    return Path(output.strip().splitlines()[-1])


@dataclass
class Stub:
    """One Kubernetes Service of a service: answers as the colour it selects, with a settable status."""

    service: str
    colour: str
    status: int = 200
    seen_headers: list[dict[str, str]] = field(default_factory=list)
    connections: int = 0
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> "Stub":
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out separately; without this each costs ~40 ms

            def setup(self) -> None:
                super().setup()
                self.pod = stub.colour  # chosen when the connection opens, as kube-proxy's conntrack does
                stub.connections += 1

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                stub.seen_headers.append(dict(self.headers))
                body = json.dumps({"service": stub.service, "colour": self.pod, "path": self.path}).encode()
                self.send_response(stub.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer  # noqa: N815

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()


@contextmanager
def running_gateway(binary: Path, config: dict[str, Any], workdir: Path) -> Iterator[int]:
    """Start ``krakend run`` on a free loopback port with ``config``; yield the port; stop it."""
    port = free_port()
    path = workdir / f"krakend-{port}.json"
    path.write_text(json.dumps({**config, "port": port}))
    log = (workdir / f"krakend-{port}.log").open("w")
    process = subprocess.Popen([str(binary), "run", "-c", str(path)], stdout=log, stderr=subprocess.STDOUT,
                               env={**os.environ, "GOMAXPROCS": "1"})
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if request(port, "GET", "/__health")[0] == 200 and listens(process, port):
                    break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"krakend did not become healthy: {(workdir / f'krakend-{port}.log').read_text()}")
            time.sleep(0.05)
        yield port
    finally:
        stop(process)
        log.close()


def exporting_to(config: dict[str, Any], otlp_port: int) -> dict[str, Any]:
    """The rendered config with its OTLP exporters (gRPC, as the product renders them) at a loopback receiver."""
    exporters = config["extra_config"]["telemetry/opentelemetry"]["exporters"]["otlp"]
    assert [exporter["use_http"] for exporter in exporters] == [False]
    for exporter in exporters:
        exporter.update(host="127.0.0.1", port=otlp_port)
    return config


@contextmanager
def public_gateway(binary: Path, workdir: Path, stack: str, backend_url: str, otlp_port: int) -> Iterator[str]:
    """The stack's public gateway as rendered, every route to ``backend_url``, exporting its spans to a loopback
    OTLP receiver on ``otlp_port``; yields its base URL."""
    config = exporting_to(krakend_config(settings(stack), catalogue(), "public", url=lambda service, role: backend_url),
                          otlp_port)
    with running_gateway(binary, config, workdir) as port:
        yield f"http://127.0.0.1:{port}"


def request(port: int, method: str, path: str, headers: dict[str, str] | None = None,
            body: bytes | None = None, connection: http.client.HTTPConnection | None = None) -> tuple[int, bytes]:
    own = connection is None
    connection = connection or http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        if own:
            connection.close()


def colours_seen(port: int, path: str, count: int) -> dict[str, int]:
    """Send ``count`` GETs over one keep-alive connection; count the colours that answered."""
    seen: dict[str, int] = {}
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        for _ in range(count):
            status, body = request(port, "GET", path, {"Authorization": "Bearer load"}, connection=connection)
            assert status == 200, (status, body)
            colour = json.loads(body)["colour"]
            seen[colour] = seen.get(colour, 0) + 1
    finally:
        connection.close()
    return seen

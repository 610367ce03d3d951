"""A stand-in for one service's two colours on loopback, whose health and error rate the test sets.

``/<colour>/health/...`` answer 200 (or 503 when the colour is made unhealthy), ``POST /<colour>/payins`` and
``/payouts`` are the synthetic-transaction targets, and ``/<colour>/metrics`` is what Prometheus scrapes: each
scrape first records a fixed batch of requests with the colour's current share of 5xx, so the error rate
Prometheus computes follows what the test sets, with no load generated at all.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, Counter, generate_latest

from tests.support.servers import free_port

REQUESTS_PER_SCRAPE = 200


@dataclass
class Colour:
    error_ratio: float = 0.0
    healthy: bool = True
    transactions_ok: bool = True
    serving: bool = True
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.requests = Counter("http_requests", "Requests served, by status code.", ["code"], registry=self.registry)
        self.requests.labels(code="200")

    def scrape(self) -> bytes:
        if not self.serving:  # no requests: the counters stay flat and the error ratio is 0 / 0
            return generate_latest(self.registry)
        errors = round(REQUESTS_PER_SCRAPE * self.error_ratio)
        if errors:
            self.requests.labels(code="500").inc(errors)
        self.requests.labels(code="200").inc(REQUESTS_PER_SCRAPE - errors)
        return generate_latest(self.registry)


class ColourBackend:
    """Both colours on one loopback port: base URL ``http://127.0.0.1:<port>/<colour>``."""

    def __init__(self) -> None:
        self.colours = {"blue": Colour(), "green": Colour()}
        self.port = free_port()
        backend = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                colour, _, rest = self.path.lstrip("/").partition("/")
                state = backend.colours.get(colour)
                if state is None:
                    return self._answer(404, b"no such colour")
                if rest == "metrics":
                    return self._answer(200, state.scrape(), "text/plain; version=0.0.4")
                if rest.startswith("health/"):
                    return self._answer(200 if state.healthy else 503, b"ok" if state.healthy else b"down")
                return self._answer(404, b"not found")

            def do_POST(self) -> None:  # noqa: N802
                colour, _, rest = self.path.lstrip("/").partition("/")
                state = backend.colours.get(colour)
                if state is None or rest not in ("payins", "payouts"):
                    return self._answer(404, b"not found")
                self._answer(201 if state.transactions_ok else 500, b"{}", "application/json")

            def _answer(self, status: int, body: bytes, kind: str = "text/plain") -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url_template(self) -> str:
        return f"http://127.0.0.1:{self.port}/{{colour}}"

    def set(self, colour: str, *, error_ratio: float | None = None, healthy: bool | None = None,
            transactions_ok: bool | None = None, serving: bool | None = None) -> None:
        state = self.colours[colour]
        if error_ratio is not None:
            state.error_ratio = error_ratio
        if healthy is not None:
            state.healthy = healthy
        if transactions_ok is not None:
            state.transactions_ok = transactions_ok
        if serving is not None:
            state.serving = serving

    def reset(self) -> None:
        for colour in self.colours:
            self.set(colour, error_ratio=0.0, healthy=True, transactions_ok=True, serving=True)

    def __enter__(self) -> "ColourBackend":
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()

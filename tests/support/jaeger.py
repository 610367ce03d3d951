"""A real Jaeger v2 (built by scripts/bootstrap-jaeger.sh) on loopback: an OTLP receiver (gRPC and HTTP), in-memory
trace storage and the query service's HTTP API, each on a free port.

    with JaegerServer(tmp_path) as jaeger:
        ... export spans to 127.0.0.1:{jaeger.otlp_grpc_port} (or {jaeger.otlp_http_url}/v1/traces) ...
        jaeger.trace(trace_id)  # the JSON of GET /api/traces/{trace_id}, or None while Jaeger has none of it
        jaeger.wait_for_trace(trace_id, {"gateway", "payin-api"})  # polls until both services' spans are in
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.support.servers import free_port, listens, stop
from tests.support.stacks import ROOT

STORAGE = "memstore"


def jaeger_binary() -> Path:
    """Built (or found in the cache) by the project's own script: a cold build takes many minutes."""
    output = subprocess.run([str(ROOT / "scripts" / "bootstrap-jaeger.sh")], check=True, capture_output=True,
                            text=True, timeout=3600).stdout
    return Path(output.strip().splitlines()[-1])


def jaeger_config(otlp_grpc_port: int, otlp_http_port: int, query_http_port: int,
                  query_grpc_port: int) -> dict[str, Any]:
    """Jaeger v2's config: an OpenTelemetry Collector pipeline from the OTLP receiver to the storage exporter, and
    the jaeger_storage and jaeger_query extensions. Every listener is on loopback and on the port given; the
    collector's own metrics, which would listen on :8888, are off."""
    loopback = "127.0.0.1:{}".format
    return {
        "service": {
            "extensions": ["jaeger_storage", "jaeger_query"],
            "pipelines": {"traces": {"receivers": ["otlp"], "processors": [],
                                     "exporters": ["jaeger_storage_exporter"]}},
            "telemetry": {"metrics": {"level": "none"}, "logs": {"level": "info"}},
        },
        "extensions": {
            "jaeger_storage": {"backends": {STORAGE: {"memory": {"max_traces": 10_000}}}},
            "jaeger_query": {"storage": {"traces": STORAGE}, "enable_tracing": False,
                             "http": {"endpoint": loopback(query_http_port)},
                             "grpc": {"endpoint": loopback(query_grpc_port)}},
        },
        "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": loopback(otlp_grpc_port)},
                                             "http": {"endpoint": loopback(otlp_http_port)}}}},
        "exporters": {"jaeger_storage_exporter": {"trace_storage": STORAGE}},
    }


def span_services(trace: dict[str, Any]) -> dict[str, str]:
    """Span ID -> the service name of the process that sent the span, in one trace of the query API."""
    processes = trace["processes"]
    return {span["spanID"]: processes[span["processID"]]["serviceName"] for span in trace["spans"]}


def tags(item: dict[str, Any]) -> dict[str, Any]:
    """A span's or a process's tags as a dict."""
    return {tag["key"]: tag["value"] for tag in item.get("tags") or []}


class JaegerServer:
    def __init__(self, directory: Path, binary: Path | None = None, timeout: float = 60) -> None:
        binary = binary or jaeger_binary()
        self.otlp_grpc_port, self.otlp_http_port = free_port(), free_port()
        self.query_port, query_grpc_port = free_port(), free_port()
        self.query_url = f"http://127.0.0.1:{self.query_port}"
        self.otlp_http_url = f"http://127.0.0.1:{self.otlp_http_port}"
        directory.mkdir(parents=True, exist_ok=True)
        config = directory / "jaeger.yaml"
        config.write_text(yaml.safe_dump(jaeger_config(self.otlp_grpc_port, self.otlp_http_port, self.query_port,
                                                       query_grpc_port)))
        self.log_path = directory / "jaeger.log"
        self.log = self.log_path.open("w")
        self.process = subprocess.Popen([str(binary), "--config", str(config)], stdout=self.log,
                                        stderr=subprocess.STDOUT)
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.close()
            raise

    def _wait_ready(self, timeout: float) -> None:
        """The query API answers, and the process itself listens on the query and both OTLP ports."""
        deadline = time.monotonic() + timeout
        ports = (self.query_port, self.otlp_grpc_port, self.otlp_http_port)
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"jaeger exited with {self.process.returncode}:\n{self.log_text()}")
            try:
                if httpx.get(f"{self.query_url}/api/services", timeout=2).status_code == 200 \
                        and all(listens(self.process, port) for port in ports):
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"jaeger did not become ready in {timeout}s:\n{self.log_text()}")

    def log_text(self) -> str:
        self.log.flush()
        return self.log_path.read_text()

    def trace(self, trace_id: str) -> dict[str, Any] | None:
        """The trace as the query API returns it (``{"data": [{"traceID", "spans", "processes"}], ...}``), or None
        while Jaeger holds no span of it."""
        response = httpx.get(f"{self.query_url}/api/traces/{trace_id}", timeout=5)
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return response.json()

    def wait_for_trace(self, trace_id: str, services: set[str], timeout: float = 30) -> dict[str, Any]:
        """Poll until the trace holds spans of every one of ``services``; return its ``data[0]``. Exporters batch
        (the gateway's sends every 5 s), so a trace arrives in parts."""
        deadline, seen = time.monotonic() + timeout, None
        while time.monotonic() < deadline:
            answer = self.trace(trace_id)
            seen = answer["data"][0] if answer and answer.get("data") else None
            if seen is not None and services <= set(span_services(seen).values()):
                return seen
            time.sleep(0.25)
        raise AssertionError(f"trace {trace_id} lacks spans of {services} after {timeout}s; it holds "
                             f"{sorted(set(span_services(seen).values())) if seen else 'nothing'}")

    def close(self) -> None:
        stop(self.process)
        self.log.close()

    def __enter__(self) -> "JaegerServer":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

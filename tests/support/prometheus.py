"""A real Prometheus server (Debian package `prometheus`) on a loopback port, scraping a ColourBackend.

Each colour is its own scrape job whose target labels are the ones the PodMonitor attaches in a cluster
(namespace, app, color), so the release gate's queries run unchanged.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import httpx
import yaml

from tests.support.colour_backend import ColourBackend
from tests.support.servers import free_port, listens, stop

SCRAPE_INTERVAL = "1s"
INSTALL = "run scripts/debian-packages.sh prometheus"


class PrometheusServer:
    def __init__(self, directory: Path, backend: ColourBackend, namespace: str, service: str) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            raise AssertionError(f"prometheus not found on PATH: {INSTALL}")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
            "scrape_configs": [{
                "job_name": f"{service}-{colour}",
                "metrics_path": f"/{colour}/metrics",
                "static_configs": [{"targets": [f"127.0.0.1:{backend.port}"],
                                    "labels": {"namespace": namespace, "app": service, "color": colour}}],
            } for colour in ("blue", "green")],
        }
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log = (directory / "prometheus.log").open("w")
        self.process = subprocess.Popen(
            [binary, f"--config.file={directory / 'prometheus.yml'}", f"--storage.tsdb.path={directory / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--storage.tsdb.retention.time=1h"],
            stdout=self.log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 60) -> None:
        """Ready, and both colours scraped at least twice (a rate needs two samples)."""
        deadline = time.monotonic() + timeout
        query = 'count(count_over_time(http_requests_total{code="200"}[1m]) >= 2)'
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"prometheus exited with {self.process.returncode}; see {self.log.name}")
            try:
                result = httpx.get(f"{self.url}/api/v1/query", params={"query": query}, timeout=2).json()
                if result["data"]["result"] and float(result["data"]["result"][0]["value"][1]) >= 2 \
                        and listens(self.process, self.port):
                    return
            except (httpx.HTTPError, ValueError, KeyError):
                pass
            time.sleep(0.5)
        raise AssertionError(f"prometheus at {self.url} did not scrape both colours in {timeout}s")

    def __enter__(self) -> "PrometheusServer":
        return self

    def __exit__(self, *_: object) -> None:
        stop(self.process)
        self.log.close()

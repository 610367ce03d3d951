"""Fixtures of the release tier: the four stacks deployed by the real engine, the `release` command run as a
person runs it, and a real Prometheus scraping a loopback stand-in for the dev stack's payin-api colours."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import pytest
from prometheus_client import Histogram

from tests.engine.conftest import engine_env  # noqa: F401  (the session's bootstrapped engine)
from tests.support.colour_backend import REQUESTS_PER_SCRAPE, Colour, ColourBackend
from tests.support.engine import Project, make_project
from tests.support.prometheus import PrometheusServer
from tests.support.stacks import ROOT, STACKS

RELEASE = ROOT / ".venv" / "bin" / "release"
ENVIRONMENT, SERVICE, NAMESPACE = "dev", "payin-api", "payments-dev"
SYNTHETIC_HOOK = f"{sys.executable} {ROOT / 'tests' / 'support' / 'synthetic_hook.py'}"  # Pay-In promotions need one


def deploy(directory: Path, engine_env: dict[str, str], stacks: tuple[str, ...]) -> Project:  # noqa: F811
    project = make_project(directory, engine_env)
    project.env["RELEASE_INFRA_CATALOGUE"] = str(ROOT / "catalogue.yaml")
    for stack in stacks:
        project.init(stack)
        project.run("up", "--yes", "--skip-preview", "--stack", stack)
    return project


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory, engine_env: dict[str, str]) -> Project:  # noqa: F811
    """All four environments, as `release status` sees them."""
    return deploy(tmp_path_factory.mktemp("release"), engine_env, STACKS)


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str


def release(project: Project, *args: str, on_line: Callable[[str, subprocess.Popen], None] | None = None,
            timeout: float = 600) -> Run:
    """The `release` console script in the project, its output read line by line as a person would see it.

    It runs in a process group of its own, as a terminal's foreground job does, so a test can send Ctrl-C to it
    and to the engine under it at once, as a terminal would."""
    process = subprocess.Popen([str(RELEASE), "--project-dir", str(project.directory), *args], env=project.env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    assert process.stdout is not None and process.stderr is not None
    lines = []
    for line in process.stdout:
        lines.append(line)
        if on_line is not None:
            on_line(line, process)
    code = process.wait(timeout=timeout)
    return Run(code, "".join(lines), process.stderr.read())


def services(project: Project, stack: str = ENVIRONMENT) -> dict[str, Any]:
    """What the stack last applied (its outputs), not what its config says."""
    return project.json("stack", "output", "services", "--json", "--stack", stack)


# Every request a colour serves takes its latency. Each latency a test sets tops a bucket 1% wide, so the P95 that
# Prometheus interpolates in that bucket is 0.9995 x the latency for every colour: P95s compare as latencies do.
LATENCIES = (0.1, 0.105, 0.12)  # seconds: the baseline, 5% and 20% over it
BUCKETS = sorted(bound for latency in LATENCIES for bound in (latency * 0.99, latency))


@dataclass
class TimedColour(Colour):
    latency: float = LATENCIES[0]

    def __post_init__(self) -> None:
        super().__post_init__()
        self.durations = Histogram("http_request_duration_seconds", "Request latency.", registry=self.registry,
                                   buckets=BUCKETS)

    def scrape(self) -> bytes:
        for _ in range(REQUESTS_PER_SCRAPE if self.serving else 0):
            self.durations.observe(self.latency)
        return super().scrape()


class TimedBackend(ColourBackend):
    """The colours' stand-in with the latency histogram the latency gates read (docs/alerting.md's contract)."""

    def __init__(self) -> None:
        super().__init__()
        self.colours = {colour: TimedColour() for colour in self.colours}

    def set(self, colour: str, *, latency: float | None = None, **others: Any) -> None:
        super().set(colour, **others)
        if latency is not None:
            assert latency in LATENCIES, f"{latency}s tops no bucket: its P95 would not compare as set"
            self.colours[colour].latency = latency  # type: ignore[attr-defined]

    def reset(self) -> None:
        super().reset()
        for colour in self.colours:
            self.set(colour, latency=LATENCIES[0])


@dataclass
class Monitored:
    backend: TimedBackend
    prometheus: PrometheusServer

    def options(self, **overrides: str) -> list[str]:
        values = {"preview-url": self.backend.url_template, "active-url": self.backend.url_template,
                  "prometheus-url": self.prometheus.url,
                  "synthetic-hook": SYNTHETIC_HOOK,
                  "bake": "2s", "watch": "4s", "interval": "1s", "window": "5s", **overrides}
        return [f"--{name}={value}" for name, value in values.items()]


@pytest.fixture(scope="module")
def monitored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Monitored]:
    with TimedBackend() as backend, \
            PrometheusServer(tmp_path_factory.mktemp("prometheus"), backend, NAMESPACE, SERVICE) as prometheus:
        prometheus.wait_ready()
        yield Monitored(backend, prometheus)


@pytest.fixture
def healthy(monitored: Monitored) -> Iterator[Monitored]:
    """Both colours healthy with no errors at the start of each test, and again after it."""
    monitored.backend.reset()
    yield monitored
    monitored.backend.reset()


def image(sha: str, version: str) -> str:
    return f"registry.pay.internal/{SERVICE}:{sha}-v{version}"



@contextmanager
def another_update_holds(project: Project, stack: str = ENVIRONMENT) -> Iterator[Callable[[], None]]:
    """A colleague's update holding the stack, as the file backend records one: every `pulumi up` of the stack
    fails while the lock lasts. Yields what takes the lock; it is released when the block ends."""
    lock = (project.directory / "state" / ".pulumi" / "locks" / "organization" / "release-infra" / stack
            / f"{uuid.uuid4()}.json")

    def take() -> None:
        lock.parent.mkdir(parents=True, exist_ok=True)
        lock.write_text(json.dumps({"pid": 4242, "username": "colleague", "hostname": "laptop",
                                    "timestamp": "2026-11-23T01:00:00Z"}))
    try:
        yield take
    finally:
        lock.unlink(missing_ok=True)

"""release-infra-retention against the loopback registry: 5,000 tags over 25 repositories.

Targets (issue 5): under 60 s, at most 2 HTTP requests per examined tag. Each repository has 180 builds, 20 of
them also release-tagged (a tag sharing its build's digest, so one config fetch serves both).

    .venv/bin/python -m benchmarks.registry_retention [--repositories 25] [--builds 180] [--workers 8]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from core.registry.retention import RetentionPolicy
from release_infra_tools.registry import RegistryClient
from release_infra_tools.retention import run
from tests.registry.harness import Image, install, push_all, running_registry

T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)


def images(repositories: int, builds: int) -> list[Image]:
    result = []
    for r in range(repositories):
        for i in range(builds):
            release = (f"v1.{i}.0",) if i % (builds // 20 or 1) == 0 and i // (builds // 20 or 1) < 20 else ()
            build = f"{r:02x}{i:05x}-v1.{i}.0" + ("" if release else "-rc.1")  # a candidate, or the release
            result.append(Image(f"service-{r:02d}", (build, *release), T0 + timedelta(hours=i)))
    return result


def main() -> None:
    parse = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parse.add_argument("--repositories", type=int, default=25)
    parse.add_argument("--builds", type=int, default=180)
    parse.add_argument("--workers", type=int, default=8)
    arguments = parse.parse_args()
    binary = install()
    with tempfile.TemporaryDirectory() as directory, running_registry(binary, Path(directory)) as registry:
        pushed = images(arguments.repositories, arguments.builds)
        started = time.monotonic()
        push_all(registry, pushed)
        tags = sum(len(image.tags) for image in pushed)
        print(f"setup: pushed {len(pushed)} images / {tags} tags in {time.monotonic() - started:.1f} s")
        for mode, apply in (("dry run", False), ("apply", True)):
            client = RegistryClient(registry.url, workers=arguments.workers)
            try:
                result = run(client, RetentionPolicy(), [], apply=apply, workers=arguments.workers)
            finally:
                client.close()
            scan_requests = result.requests - (len(result.deleted) + len(result.already_gone) if apply else 0) \
                - (len(result.plans) if apply else 0)
            print(f"{mode}: {result.examined_tags} tags examined in {result.seconds:.1f} s; "
                  f"{result.requests} HTTP requests = {result.requests / result.examined_tags:.2f} per tag "
                  f"(reading: {scan_requests / result.examined_tags:.2f} per tag); "
                  f"{len(result.deleted)} images deleted")
        survivors = registry.tags()
        print(f"after: {sum(map(len, survivors.values()))} tags in {len(survivors)} repositories")


if __name__ == "__main__":
    main()

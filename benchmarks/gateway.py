"""The real KrakenD on loopback: measured canary share at each step, and the latency the gateway adds.

    .venv/bin/python -m benchmarks.gateway [--requests 10000]
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import tempfile
import time
from pathlib import Path

from core.gateway import krakend_config
from tests.support.gateway_harness import Stub, colours_seen, krakend_binary, running_gateway
from tests.support.stacks import catalogue, set_path, settings, stack_config


def unlimited() -> dict:
    """The dev stack with rate limits lifted: one client sends every request here, and 429s are not the point."""
    return set_path(stack_config("dev"), "gateway", {"rate_limit": {"max_rate": 1_000_000,
                                                                   "client_max_rate": 1_000_000}})


def latencies(port: int, path: str, count: int, connection_per_request: bool = False) -> list[float]:
    """Sequential GETs over one keep-alive connection, or each on a connection of its own (timed from connect)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    samples = []
    try:
        for _ in range(count):
            start = time.perf_counter()
            if connection_per_request:
                connection.close()
                connection.connect()
            connection.request("GET", path, headers={"Authorization": "Bearer bench"})
            response = connection.getresponse()
            response.read()
            samples.append((time.perf_counter() - start) * 1000)
            assert response.status == 200
    finally:
        connection.close()
    return samples


def percentile(samples: list[float], fraction: float) -> float:
    return statistics.quantiles(samples, n=1000)[int(fraction * 1000) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10_000)
    args = parser.parse_args()
    binary = krakend_binary()
    stubs = {(name, role): Stub(name, colour).start()
             for name, release in settings("dev").services.items()
             for role, colour in (("active", release.active), ("preview", release.standby_colour))}
    url = lambda service, role: stubs[(service, role)].url  # noqa: E731
    with tempfile.TemporaryDirectory() as workdir:
        print(f"canary share through KrakenD, {args.requests} requests per step (GOMAXPROCS=1)")
        print("| weight | host list length | canary requests | measured share |")
        print("|---:|---:|---:|---:|")
        for weight in (5, 25, 50, 100):
            config = unlimited()
            set_path(config, "services.payin-api.canary", {"weight": weight})
            config = krakend_config(settings("dev", config), catalogue(), url=url)
            hosts = len(next(endpoint for endpoint in config["endpoints"]
                             if endpoint["endpoint"] == "/v1/payins/{id}")["backend"][0]["host"])
            with running_gateway(binary, config, Path(workdir)) as port:
                seen = colours_seen(port, "/v1/payins/p-1", args.requests)
            print(f"| {weight}% | {hosts} | {seen.get('green', 0)} | {100 * seen.get('green', 0) / args.requests:.2f}% |")
        config = krakend_config(settings("dev", unlimited()), catalogue(), url=url)
        direct_port = stubs[("payin-api", "active")].server.server_address[1]
        with running_gateway(binary, config, Path(workdir)) as port, \
                running_gateway(binary, {**config, "disable_keep_alives": False}, Path(workdir)) as reusing_port:
            for warm_up in (port, reusing_port):
                latencies(warm_up, "/v1/payins/p-1", 500)
            latencies(direct_port, "/payins/p-1", 500)
            through = latencies(port, "/v1/payins/p-1", args.requests)
            reusing = latencies(reusing_port, "/v1/payins/p-1", args.requests)
            direct = latencies(direct_port, "/payins/p-1", args.requests)
            fresh = latencies(direct_port, "/payins/p-1", args.requests, connection_per_request=True)
    for stub in stubs.values():
        stub.stop()
    # The gateway opens a connection to the backend per request (core.gateway: disable_keep_alives), so its leg
    # costs what a fresh connection to the backend costs; the client keeps its connection to the gateway.
    print(f"\nlatency, {args.requests} sequential requests, the client on one keep-alive connection (ms)")
    print("| path | p50 | p99 |")
    print("|---|---:|---:|")
    rows = {"direct to the backend, one keep-alive connection": direct,
            "direct to the backend, a new connection per request": fresh,
            "through KrakenD (a new backend connection per request)": through,
            "through KrakenD reusing backend connections (not used: see core.gateway)": reusing}
    for name, samples in rows.items():
        print(f"| {name} | {percentile(samples, 0.5):.3f} | {percentile(samples, 0.99):.3f} |")
    for name, baseline in (("added by the gateway", direct), ("of which opening the backend connection", reusing)):
        print(f"| {name} | {percentile(through, 0.5) - percentile(baseline, 0.5):.3f} | "
              f"{percentile(through, 0.99) - percentile(baseline, 0.99):.3f} |")


if __name__ == "__main__":
    main()

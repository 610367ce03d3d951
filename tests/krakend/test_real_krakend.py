"""The rendered configs on a real KrakenD: they parse, route to the active colour, survive a flip unchanged,
split canary traffic exactly, forward the payment headers and pass backend failures through."""

from __future__ import annotations

import http.client
import json
import subprocess
from pathlib import Path
from typing import Iterator

import pytest
import yaml

from core.catalogue import Catalogue
from core.errors import ConfigError
from core.gateway import HEALTH_MAX_RATE, gateway_roles, krakend_config, render
from tests.support.gateway_harness import Stub, colours_seen, krakend_binary, request, running_gateway
from tests.support.stacks import ROOT, STACKS, catalogue, set_path, settings, stack_config


@pytest.fixture(scope="session")
def krakend() -> Path:
    return krakend_binary()


@pytest.mark.parametrize("stack", STACKS)
def test_krakend_check_accepts_every_rendered_config(krakend: Path, tmp_path: Path, stack: str) -> None:
    for role in gateway_roles(settings(stack)):
        path = tmp_path / f"{stack}-{role}.json"
        path.write_text(render(krakend_config(settings(stack), catalogue(), role)))
        result = subprocess.run([str(krakend), "check", "-c", str(path)], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.endswith("Syntax OK!\n"), result.stdout
        # Every extra_config namespace the config sets is one the gateway reads: one it would carry and ignore
        # (a misspelt or misplaced one) passes the check, with a NOTE, and then does nothing at run time.
        assert "NOTE extra_config namespace not handled" not in result.stdout, result.stdout


def test_krakend_check_rejects_a_broken_config(krakend: Path, tmp_path: Path) -> None:
    config = krakend_config(settings("dev"), catalogue())
    config["endpoints"].append(dict(config["endpoints"][0]))  # the same method and path twice
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(config))
    result = subprocess.run([str(krakend), "check", "-c", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert f"endpoints[{len(config['endpoints']) - 1}] GET {config['endpoints'][0]['endpoint']} duplicates " \
           "endpoints[0]" in result.stdout + result.stderr


@pytest.mark.parametrize(("method", "parameter", "catalogue_accepts"), [
    ("GET", "payin", False),  # GET /v1/payins/{id} is routed: one place, two names
    ("GET", "id", True),
    ("POST", "payin", True),  # another method is another tree of the router
])
def test_the_catalogue_refuses_exactly_the_parameter_names_the_router_refuses(
        krakend: Path, tmp_path: Path, method: str, parameter: str, catalogue_accepts: bool) -> None:
    raw = yaml.safe_load((ROOT / "catalogue.yaml").read_text())
    raw["routes"].append({"method": method, "path": f"/v1/payins/{{{parameter}}}/refunds", "service": "payin-api",
                          "backend": f"/payins/{{{parameter}}}/refunds"})
    (tmp_path / "catalogue.yaml").write_text(yaml.safe_dump(raw))
    try:
        loaded, refused = Catalogue.load(tmp_path / "catalogue.yaml"), None
    except ConfigError as error:
        loaded, refused = Catalogue.model_validate(raw), str(error)
    assert (refused is None) is catalogue_accepts, refused
    path = tmp_path / "krakend.json"
    path.write_text(render(krakend_config(settings("dev"), loaded)))
    result = subprocess.run([str(krakend), "check", "-c", str(path)], capture_output=True, text=True, timeout=60)
    assert (result.returncode == 0) is catalogue_accepts, result.stdout + result.stderr


class Services:
    """Stub Services for every service of a stack: `<service>` and `<service>-preview`."""

    def __init__(self, stack: str):
        self.settings = settings(stack)
        self.stubs = {}
        for name, release in self.settings.services.items():
            self.stubs[(name, "active")] = Stub(name, release.active).start()
            self.stubs[(name, "preview")] = Stub(name, release.standby_colour).start()

    def url(self, service: str, role: str) -> str:
        return self.stubs[(service, role)].url

    def flip(self, service: str) -> None:
        """What a selector switch does: each Service now answers as the other colour."""
        active, preview = self.stubs[(service, "active")], self.stubs[(service, "preview")]
        active.colour, preview.colour = preview.colour, active.colour

    def stop(self) -> None:
        for stub in self.stubs.values():
            stub.stop()


@pytest.fixture()
def dev_services() -> Iterator[Services]:
    services = Services("dev")
    yield services
    services.stop()


def test_requests_reach_the_active_colour_and_a_flip_needs_no_gateway_change(
        krakend: Path, tmp_path: Path, dev_services: Services) -> None:
    before = krakend_config(settings("dev"), catalogue(), url=dev_services.url)
    flipped_settings = settings("dev", set_path(stack_config("dev"), "services.payin-api.active", "green"))
    assert krakend_config(flipped_settings, catalogue(), url=dev_services.url) == before
    with running_gateway(krakend, before, tmp_path) as port:
        assert colours_seen(port, "/v1/payins/p-1", 50) == {"blue": 50}
        dev_services.flip("payin-api")
        assert colours_seen(port, "/v1/payins/p-1", 50) == {"green": 50}
        assert colours_seen(port, "/v1/payouts/o-1", 10) == {"green": 10}  # dev runs payout-api on green


def test_the_preview_gateway_reaches_the_standby_colour(krakend: Path, tmp_path: Path,
                                                        dev_services: Services) -> None:
    config = krakend_config(settings("dev"), catalogue(), "preview", url=dev_services.url)
    with running_gateway(krakend, config, tmp_path) as port:
        assert colours_seen(port, "/v1/payins/p-1", 20) == {"green": 20}
        assert colours_seen(port, "/health/payin-api", 5) == {"green": 5}


UNLIMITED = {"rate_limit": {"max_rate": 1_000_000, "client_max_rate": 1_000_000}}


@pytest.mark.parametrize("weight", [5, 25, 50, 100])
def test_each_canary_step_sends_its_exact_share(krakend: Path, tmp_path: Path, dev_services: Services,
                                                weight: int) -> None:
    config = stack_config("dev")
    set_path(config, "services.payin-api.canary", {"weight": weight})
    set_path(config, "gateway", UNLIMITED)  # 2,000 requests from one client would otherwise be rate limited
    config = krakend_config(settings("dev", config), catalogue(), url=dev_services.url)
    with running_gateway(krakend, config, tmp_path) as port:
        seen = colours_seen(port, "/v1/payins/p-1", 2000)
    canary_share = 100 * seen.get("green", 0) / 2000
    assert abs(canary_share - weight) <= 1, seen


def test_payment_headers_reach_the_service(krakend: Path, tmp_path: Path, dev_services: Services) -> None:
    config = krakend_config(settings("dev"), catalogue(), url=dev_services.url)
    headers = {"Authorization": "Bearer m-42", "Idempotency-Key": "0d1f3a", "X-Request-Id": "req-7",
               "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "Content-Type":
               "application/json", "Cookie": "session=not-for-services"}
    with running_gateway(krakend, config, tmp_path) as port:
        status, _ = request(port, "POST", "/v1/payins", headers, body=b'{"amount": 1000}')
    assert status == 200
    seen = {key.lower(): value for key, value in dev_services.stubs[("payin-api", "active")].seen_headers[-1].items()}
    assert seen["authorization"] == "Bearer m-42"
    assert seen["idempotency-key"] == "0d1f3a"
    assert seen["x-request-id"] == "req-7"
    assert "cookie" not in seen


@pytest.mark.parametrize(("trusted", "claim", "client_address"), [
    ([], "X-Forwarded-For", "127.0.0.1"),
    ([], "X-Real-IP", "127.0.0.1"),
    (["10.0.0.0/8"], "X-Forwarded-For", "127.0.0.1"),  # a peer outside the trusted proxies
    (["127.0.0.0/8"], "X-Real-IP", "127.0.0.1"),  # only X-Forwarded-For counts, even from a trusted proxy
    (["127.0.0.0/8"], "X-Forwarded-For", "203.0.113.9"),
])
def test_only_a_trusted_proxy_names_the_client_address_services_see(krakend: Path, tmp_path: Path,
                                                                    dev_services: Services, trusted: list[str],
                                                                    claim: str, client_address: str) -> None:
    """A client on loopback that claims 203.0.113.9: KrakenD's own default passes either header's claim on to the
    service; here the service sees the connection's peer, unless a trusted proxy reports the address."""
    config = set_path(stack_config("dev"), "gateway.trusted_proxies", trusted)
    with running_gateway(krakend, krakend_config(settings("dev", config), catalogue(), url=dev_services.url),
                         tmp_path) as port:
        status, _ = request(port, "GET", "/v1/payins/p-1", {"Authorization": "Bearer m-42", claim: "203.0.113.9"})
    assert status == 200
    seen = {key.lower(): value for key, value in dev_services.stubs[("payin-api", "active")].seen_headers[-1].items()}
    assert seen["x-forwarded-for"] == client_address


@pytest.mark.parametrize("status", [409, 422, 500, 503])
def test_a_backend_error_reaches_the_client_unchanged(krakend: Path, tmp_path: Path, dev_services: Services,
                                                      status: int) -> None:
    dev_services.stubs[("payout-api", "active")].status = status
    config = krakend_config(settings("dev"), catalogue(), url=dev_services.url)
    with running_gateway(krakend, config, tmp_path) as port:
        answer, body = request(port, "GET", "/v1/payouts/o-1", {"Authorization": "Bearer m"})
    assert answer == status
    assert json.loads(body)["service"] == "payout-api"


def test_an_unreachable_service_is_a_server_error_for_the_client(krakend: Path, tmp_path: Path,
                                                                 dev_services: Services) -> None:
    dev_services.stubs[("merchant-api", "active")].stop()
    config = krakend_config(settings("dev"), catalogue(), url=dev_services.url)
    with running_gateway(krakend, config, tmp_path) as port:
        answer, _ = request(port, "GET", "/v1/merchants/m-1", {"Authorization": "Bearer m"})
        healthy, _ = request(port, "GET", "/v1/payins/p-1", {"Authorization": "Bearer m"})
    assert answer in (500, 502, 503)
    assert healthy == 200


def test_the_per_client_rate_limit_answers_429(krakend: Path, tmp_path: Path, dev_services: Services) -> None:
    config = set_path(stack_config("dev"), "gateway", {"rate_limit": {"max_rate": 1000, "client_max_rate": 5}})
    rendered = krakend_config(settings("dev", config), catalogue(), url=dev_services.url)
    with running_gateway(krakend, rendered, tmp_path) as port:
        greedy = [request(port, "GET", "/v1/payins/p-1", {"Authorization": "Bearer greedy"})[0] for _ in range(40)]
        other = request(port, "GET", "/v1/payins/p-1", {"Authorization": "Bearer patient"})[0]
    assert greedy.count(200) < 20 and 429 in greedy
    assert other == 200


def test_a_monitor_without_credentials_reaches_the_health_route_and_an_api_route_refuses_it(
        krakend: Path, tmp_path: Path, dev_services: Services) -> None:
    """The per-client limit keys on Authorization: KrakenD answers 429 to a request without it. Health routes are
    for monitors, so they have only the endpoint's limit."""
    rendered = krakend_config(settings("dev"), catalogue(), url=dev_services.url)
    stub = dev_services.stubs[("payin-api", "active")]
    with running_gateway(krakend, rendered, tmp_path) as port:
        health = [request(port, "GET", "/health/payin-api")[0] for _ in range(3)]
        reached = len(stub.seen_headers)
        api = request(port, "GET", "/v1/payins/p-1")[0]
    assert health == [200, 200, 200] and reached == 3
    assert api == 429 and len(stub.seen_headers) == reached  # refused at the gateway


def test_each_request_opens_its_own_backend_connection(krakend: Path, tmp_path: Path,
                                                       dev_services: Services) -> None:
    """What makes a Service switch take effect at the next request: no connection outlives its request."""
    rendered = krakend_config(settings("dev"), catalogue(), url=dev_services.url)
    stub = dev_services.stubs[("payin-api", "active")]
    with running_gateway(krakend, rendered, tmp_path) as port:
        colours_seen(port, "/v1/payins/p-1", 20)
    assert stub.connections == 20


CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.mark.parametrize(("stack", "joined"), [("sandbox", False), ("dev", True)])
def test_only_a_gateway_for_internal_callers_joins_the_callers_trace(krakend: Path, tmp_path: Path, stack: str,
                                                                     joined: bool) -> None:
    """Sandbox faces outside merchants: a sampled trace context they send would have every request traced. Its
    gateway starts a trace of its own, and still hands the service one; Dev's callers are the company's own."""
    services = Services(stack)
    try:
        config = krakend_config(services.settings, catalogue(), url=services.url)
        with running_gateway(krakend, config, tmp_path) as port:
            status, _ = request(port, "GET", "/v1/payins/p-1", {
                "Authorization": "Bearer m-42", "traceparent": f"00-{CLIENT_TRACE}-00f067aa0ba902b7-01"})
        seen = {key.lower(): value for key, value in services.stubs[("payin-api", "active")].seen_headers[-1].items()}
    finally:
        services.stop()
    assert status == 200
    version, trace, _, _ = seen["traceparent"].split("-")
    assert (version, len(trace)) == ("00", 32)
    assert (trace == CLIENT_TRACE) is joined


def test_the_gateway_does_not_tell_its_version(krakend: Path, tmp_path: Path, dev_services: Services) -> None:
    built = subprocess.run([str(krakend), "version"], capture_output=True, text=True, timeout=60).stdout
    assert "2.13" in built  # the binary knows its version: the config is what hides it
    config = krakend_config(settings("dev"), catalogue(), url=dev_services.url)
    with running_gateway(krakend, config, tmp_path) as port:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            connection.request("GET", "/v1/payins/p-1", headers={"Authorization": "Bearer m-42"})
            response = connection.getresponse()
            response.read()
        finally:
            connection.close()
    assert response.status == 200
    assert response.getheader("X-Krakend") == "Version undefined"


def test_a_health_route_admits_a_monitor_not_a_flood(krakend: Path, tmp_path: Path, dev_services: Services) -> None:
    """Past its endpoint's limit KrakenD answers 503 (429 is the per-client limit's), before the service sees it."""
    rendered = krakend_config(settings("dev"), catalogue(), url=dev_services.url)
    stub = dev_services.stubs[("payin-api", "active")]
    with running_gateway(krakend, rendered, tmp_path) as port:
        answers = [request(port, "GET", "/health/payin-api")[0] for _ in range(60)]
    assert set(answers) == {200, 503}
    assert len(stub.seen_headers) == answers.count(200)
    assert answers.count(200) <= 2 * HEALTH_MAX_RATE, answers

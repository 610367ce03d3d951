"""The KrakenD configuration of an environment's gateways, rendered from the catalogue and one stack's settings.

Backends are the stable Services of each service (``<service>`` for the active colour, ``<service>-preview``
for the standby), never a colour, so a colour switch changes no gateway config (and, since the gateway opens a
connection per request, takes effect at the next request). A canary is the one thing
that does: KrakenD round-robins over a backend's ``host`` list, so repeating hosts weights them, and the
smallest list with the right ratio gives an exact split per request.
"""

from __future__ import annotations

from math import gcd
from typing import Any, Callable, Literal, Sequence

from core.blue_green import SERVICE_PORT, Role, service_name
from core.catalogue import Catalogue, Route, health_path
from core.content_address import canonical
from core.settings import STANDARD_ACCESS, Access, EnvironmentKind, RateLimit, StackSettings

GatewayRole = Literal["public", "preview"]
LISTEN_PORT = 8080
FORWARDED_HEADERS = ["Accept", "Authorization", "Content-Type", "Idempotency-Key", "X-Correlation-Id",
                     "X-Request-Id"]
TRACE_HEADERS = ["traceparent", "tracestate"]
HEALTH_MAX_RATE = 10  # requests per second and gateway pod on a health route: enough for any monitor
BackendUrl = Callable[[str, Role], str]


def health_max_rate(limit: RateLimit) -> int:
    """Requests per second and gateway pod on a health route: the stack's route limit, at most HEALTH_MAX_RATE."""
    return min(limit.max_rate, HEALTH_MAX_RATE)


def trace_sample_rate(environment: EnvironmentKind) -> float:
    """Prod traces a quarter of its requests; the other environments, with far less traffic, every one."""
    return 0.25 if environment == EnvironmentKind.PROD else 1.0


def faces_outside(role: GatewayRole, access: Access) -> bool:
    """A gateway that callers from outside reach: it starts a trace of its own for each request (krakend_config)."""
    return role == "public" and access != Access.INTERNAL


def joins_callers_traces(environment: EnvironmentKind) -> bool:
    """Whether the environment's public gateway keeps a caller's trace context, under the access the standard
    gives the environment."""
    return not faces_outside("public", STANDARD_ACCESS[environment])


def gateway_roles(settings: StackSettings) -> tuple[GatewayRole, ...]:
    """Sandbox, Dev and Test also get an internal-only gateway whose routes reach the standby colour."""
    return ("public",) if settings.environment == EnvironmentKind.PROD else ("public", "preview")


def gateway_name(role: GatewayRole) -> str:
    return "gateway" if role == "public" else "gateway-preview"


def cluster_url(settings: StackSettings) -> BackendUrl:
    """In-cluster address of a service's active or preview Service."""
    return lambda service, role: (f"http://{service_name(service, role)}.{settings.namespace}.svc.cluster.local:"
                                  f"{SERVICE_PORT}")


def weighted_hosts(stable: str, canary: str, weight: int) -> list[str]:
    """The shortest host list in which ``canary`` appears ``weight`` percent of the time, spread evenly."""
    if not 0 <= weight <= 100:
        raise ValueError(f"a canary weight is a percentage from 0 to 100, not {weight}")
    divisor = gcd(weight, 100)
    canaries, length = weight // divisor, 100 // divisor
    return [canary if (index + 1) * canaries // length > index * canaries // length else stable
            for index in range(length)]


def krakend_config(settings: StackSettings, catalogue: Catalogue, role: GatewayRole = "public",
                   url: BackendUrl | None = None) -> dict[str, Any]:
    """A KrakenD file (format version 3) for one gateway of the environment."""
    url = url or cluster_url(settings)
    gateway = settings.gateway
    outside = faces_outside(role, settings.access)
    # A trace context from outside is a stranger's: kept, it would join the client's trace, and a sampled flag
    # would force tracing of every request it sends. The gateway starts its own trace for those.
    headers = FORWARDED_HEADERS if outside else FORWARDED_HEADERS + TRACE_HEADERS
    endpoints = []
    for service, release in settings.services.items():
        if role == "public":
            hosts = weighted_hosts(url(service, "active"), url(service, "preview"), release.canary.weight)
        else:
            hosts = [url(service, "preview")]
        health = Route(method="GET", path=health_path(service), service=service,
                       backend=catalogue.services[service].health.readiness)
        endpoints += [_endpoint(settings, route, hosts, headers) for route in catalogue.routes_of(service)]
        endpoints.append(_endpoint(settings, health, hosts, headers, per_client=False))
    return {
        "$schema": "https://www.krakend.io/schema/v2.13/krakend.json",
        "version": 3,
        "name": f"payments-{gateway_name(role)}-{settings.environment.value}",
        "port": LISTEN_PORT,
        "timeout": f"{gateway.timeout_ms}ms",
        # A Service switch moves new connections only: kube-proxy keeps an open one on the pod it reached, and a
        # gateway that reused its connections would keep most traffic on the old colour after a switch or a
        # rollback. One connection per request makes every switch take effect at the next request.
        "disable_keep_alives": True,
        "output_encoding": "no-op",
        "extra_config": {
            # The version header tells a caller which KrakenD's known flaws to try: nothing a client needs.
            "router": client_address(gateway.trusted_proxies) | {"hide_version_header": True},
            "telemetry/opentelemetry": {
                "service_name": gateway_name(role),
                "deploy_env": settings.environment.value,
                "trace_sample_rate": trace_sample_rate(settings.environment),
                "layers": {"global": {"disable_propagation": outside}},
                "exporters": {"otlp": [{"name": "collector", "host": gateway.otlp.host, "port": gateway.otlp.port,
                                        "use_http": False}]},
            },
        },
        "endpoints": sorted(endpoints, key=lambda endpoint: (endpoint["endpoint"], endpoint["method"])),
    }


def client_address(trusted_proxies: Sequence[str]) -> dict[str, Any]:
    """Which address the gateway takes for the client's, and sends on as X-Forwarded-For. KrakenD's router
    believes X-Forwarded-For and X-Real-IP from any peer unless told otherwise, so a client could name any IP as
    its own; here only the trusted peers' X-Forwarded-For counts, and without any the connection's peer (the
    ingress controller) is the client."""
    if not trusted_proxies:
        return {"forwarded_by_client_ip": False}
    return {"forwarded_by_client_ip": True, "remote_ip_headers": ["X-Forwarded-For"],
            "trusted_proxies": list(trusted_proxies)}


def _endpoint(settings: StackSettings, route: Route, hosts: list[str], headers: list[str],
              per_client: bool = True) -> dict[str, Any]:
    """One route. Its per-client limit keys on Authorization, and KrakenD refuses a request without that header
    with 429 before any service sees it; the health routes are for monitors, which send none, so they have a small
    limit of their own instead: each request reaches a readiness handler, which may ask the database."""
    breaker, limit = settings.gateway.circuit_breaker, settings.gateway.rate_limit
    rate_limit: dict[str, Any] = {"max_rate": limit.max_rate}
    if per_client:
        rate_limit |= {"client_max_rate": limit.client_max_rate, "strategy": "header", "key": "Authorization"}
    else:
        rate_limit["max_rate"] = health_max_rate(limit)
    return {
        "endpoint": route.path,
        "method": route.method,
        "output_encoding": "no-op",
        "input_headers": headers,
        "input_query_strings": ["*"],
        "extra_config": {
            "qos/ratelimit/router": rate_limit,
        },
        "backend": [{
            "url_pattern": route.backend,
            "encoding": "no-op",
            "host": hosts,
            "extra_config": {
                "qos/circuit-breaker": {"interval": breaker.interval_seconds, "timeout": breaker.timeout_seconds,
                                        "max_errors": breaker.max_errors, "name": route.service,
                                        "log_status_change": True},
            },
        }],
    }


def render(config: dict[str, Any]) -> str:
    """The file as mounted in the gateway: canonical JSON, so equal configs are equal bytes."""
    return canonical(config)

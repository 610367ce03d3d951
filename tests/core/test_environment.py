"""Namespace-level manifests: labels, quota and the network paths each access class needs."""

from __future__ import annotations

import pytest

import math

from core import blue_green, environment, gateway_workload, quota
from core.gateway import gateway_roles, krakend_config
from core.migrations import plan as migration_plan
from tests.support.stacks import catalogue, set_path, settings, stack_config


def test_namespace_carries_environment_regions_and_restricted_pod_security() -> None:
    labels = environment.namespace(settings("prod"))["metadata"]["labels"]
    assert labels["release-infra/environment"] == "prod"
    assert {key for key in labels if key.startswith("region.")} == {
        f"region.release-infra/{code}" for code in ("pk", "bd", "np", "iq", "eg")}
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


@pytest.mark.parametrize(("stack", "gateway_sources"), [
    ("sandbox", {"allow-merchants-to-gateway": "edge-merchants", "allow-release-checks-to-gateway": None}),
    ("dev", {"allow-internal-to-gateway": None}),
    ("test", {"allow-internal-to-gateway": None}),
    ("prod", {"allow-merchants-to-gateway": "edge-merchants", "allow-consumers-to-gateway": "edge-consumers",
              "allow-release-checks-to-gateway": "prod-release-checks"}),
])
def test_access_class_decides_who_reaches_the_gateway(stack: str, gateway_sources: dict) -> None:
    policies = environment.network_policies(settings(stack), catalogue())
    assert policies["default-deny"]["spec"] == {"podSelector": {}, "policyTypes": ["Ingress"]}
    to_gateway = {name: policy for name, policy in policies.items()
                  if policy["spec"]["podSelector"].get("matchLabels") == {"release-infra/tier": "gateway"}}
    assert set(to_gateway) == set(gateway_sources)
    for name, edge in gateway_sources.items():
        selector = to_gateway[name]["spec"]["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"]
        expected = ({"release-infra/zone": "internal"} if edge is None else
                    {"release-infra/prod-release-checks": "true"} if edge == "prod-release-checks" else
                    {"kubernetes.io/metadata.name": edge})
        assert selector == expected


def test_services_accept_only_the_gateway_release_checks_and_monitoring() -> None:
    policies = environment.network_policies(settings("prod"), catalogue())
    to_services = sorted(name for name, policy in policies.items()
                         if policy["spec"]["podSelector"].get("matchLabels") == {"release-infra/tier": "service"})
    assert to_services == ["allow-gateway-to-services", "allow-monitoring", "allow-release-checks"]
    assert policies["allow-gateway-to-services"]["spec"]["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 8080}]
    assert policies["allow-monitoring"]["spec"]["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 9090}]


def _sources(policy: dict) -> list[dict]:
    return [source for rule in policy["spec"].get("ingress", []) for source in rule["from"]]


def test_no_label_that_opens_dev_or_test_opens_prods_services() -> None:
    """The internal zone reaches Dev's and Test's gateways; prod's services answer only the namespaces labelled
    for prod's release checks, so a namespace let into Dev is not also let past prod's gateway."""
    prod = environment.network_policies(settings("prod"), catalogue())
    to_prod_services = _sources(prod["allow-release-checks"])  # the others: its gateway's pods, and monitoring
    assert to_prod_services == [{"namespaceSelector": {"matchLabels": {"release-infra/prod-release-checks": "true"}}}]
    elsewhere = [source for stack in ("sandbox", "dev", "test")
                 for name, policy in environment.network_policies(settings(stack), catalogue()).items()
                 if name != "default-deny" for source in _sources(policy)]
    assert {"namespaceSelector": {"matchLabels": {"release-infra/zone": "internal"}}} in elsewhere
    assert not [source for source in to_prod_services if source in elsewhere]


@pytest.mark.parametrize("stack", ["sandbox", "dev", "test", "prod"])
def test_monitoring_reaches_only_the_pods_it_scrapes(stack: str) -> None:
    """The PodMonitor scrapes service pods; the gateways, migration Jobs and the retention job stay closed to it."""
    policy = environment.network_policies(settings(stack), catalogue())["allow-monitoring"]["spec"]
    assert policy["podSelector"] == {"matchLabels": {"release-infra/tier": "service"}}


GATEWAYS = {"matchExpressions": [{"key": "release-infra/tier", "operator": "In",
                                  "values": ["gateway", "gateway-preview"]}]}
DNS = {"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}  # to any resolver


@pytest.mark.parametrize("stack", ["sandbox", "dev", "test", "prod"])
def test_the_gateways_reach_only_the_services_dns_and_the_trace_collector(stack: str) -> None:
    policies = environment.network_policies(settings(stack), catalogue())
    egress = {name: policy["spec"] for name, policy in policies.items() if "Egress" in policy["spec"]["policyTypes"]}
    assert egress == {"gateway-egress": {"podSelector": GATEWAYS, "policyTypes": ["Egress"], "egress": [
        {"to": [{"podSelector": {"matchLabels": {"release-infra/tier": "service"}}}],
         "ports": [{"protocol": "TCP", "port": 8080}]},
        DNS,
        {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
         "ports": [{"protocol": "TCP", "port": 4317}]},
    ]}}
    tiers = {gateway_workload.plan(settings(stack), catalogue(), role).deployment["spec"]["template"]["metadata"]
             ["labels"]["release-infra/tier"] for role in gateway_roles(settings(stack))}
    assert tiers and tiers <= set(GATEWAYS["matchExpressions"][0]["values"]), tiers  # every gateway pod is selected


@pytest.mark.parametrize("stack", ["sandbox", "dev", "test", "prod"])
def test_the_gateway_egress_allows_every_connection_the_rendered_gateways_open(stack: str) -> None:
    """Each backend host of every gateway's KrakenD config is a Service of the namespace whose port leads to a
    container port the rule opens (the policy sees the pod's port, after the Service's translation); its exporter
    goes to the collector's namespace and port."""
    stack_settings = settings(stack)
    rules = environment.network_policies(stack_settings, catalogue())["gateway-egress"]["spec"]["egress"]
    to_services, collector = rules[0], rules[2]
    services = {manifest["metadata"]["name"]: manifest for name, spec in catalogue().services.items()
                if name in stack_settings.services
                for manifest in blue_green.plan(stack_settings, name, spec).services.values()}
    container_ports = {port["name"]: port["containerPort"] for name, spec in catalogue().services.items()
                       if name in stack_settings.services
                       for port in blue_green.deployment(stack_settings, name, spec, "blue")["spec"]["template"]
                       ["spec"]["containers"][0]["ports"]}
    dialled = set()
    for role in gateway_roles(stack_settings):
        config = krakend_config(stack_settings, catalogue(), role)
        for endpoint in config["endpoints"]:
            for host in (host for backend in endpoint["backend"] for host in backend["host"]):
                name, namespace, *_ = host.removeprefix("http://").split(".")
                port = int(host.rsplit(":", 1)[1])
                [service_port] = [p for p in services[name]["spec"]["ports"] if p["port"] == port]
                assert namespace == stack_settings.namespace
                dialled.add(container_ports[service_port["targetPort"]])
        [exporter] = config["extra_config"]["telemetry/opentelemetry"]["exporters"]["otlp"]
        assert collector["ports"] == [{"protocol": "TCP", "port": exporter["port"]}]
        assert collector["to"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] == \
            exporter["host"].split(".")[1]
    assert dialled and dialled == {port["port"] for port in to_services["ports"]}


@pytest.mark.parametrize(("host", "to"), [
    ("otel.tracing.svc", [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "tracing"}}}]),
    ("otel.tracing.svc.cluster.local.", [{"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": "tracing"}}}]),
    # Any destination, on the collector's port only: an address (a ClusterIP would be translated before the policy
    # applies), a shorter name (resolved through the search list) and a name outside the cluster.
    ("10.20.0.7", None),
    ("fd00::7", None),
    ("otel-collector", None),
    ("otel-collector.monitoring", None),
    ("collector.observability.example", None),
])
def test_the_gateways_reach_the_collector_wherever_the_stack_puts_it(host: str, to: list | None) -> None:
    config = set_path(stack_config("dev"), "gateway.otlp", {"host": host, "port": 4318})
    rule = environment.network_policies(settings("dev", config), catalogue())["gateway-egress"]["spec"]["egress"][2]
    assert rule == ({"to": to} if to else {}) | {"ports": [{"protocol": "TCP", "port": 4318}]}


def _amount(quantity: str) -> int:
    """A Kubernetes CPU or memory quantity as the quota counts it here: millicores or MiB."""
    for suffix, scale in (("m", 1), ("Mi", 1), ("Gi", 1024)):
        if quantity.endswith(suffix):
            return int(quantity[:-len(suffix)]) * scale
    return int(quantity) * 1000  # whole cores


def _at_once(pod_spec: dict, count: int) -> dict[str, int]:
    """What ``count`` copies of a pod take from the quota."""
    used = {"pods": count}
    for container in pod_spec["containers"]:
        for kind in ("requests", "limits"):
            for resource, quantity in container["resources"][kind].items():
                used[f"{kind}.{resource}"] = used.get(f"{kind}.{resource}", 0) + count * _amount(quantity)
    return used


@pytest.mark.parametrize("stack", ["sandbox", "dev", "test", "prod"])
@pytest.mark.parametrize("gateway_replicas", [None, 5, 8, 50])
def test_quota_admits_every_pod_the_stack_runs_at_once(stack: str, gateway_replicas: int | None) -> None:
    """Both colours with a surge pod each, a migration Job per migrating service, every gateway with its surge
    pod: counted from the manifests themselves, so a gateway or a Job the quota forgot fails here, not on a
    cluster after the update has begun (dev at 5 gateway pods and test at 8 did)."""
    config = stack_config(stack)
    if gateway_replicas is not None:
        config = set_path(config, "gateway.replicas", gateway_replicas)
    stack_settings, services = settings(stack, config), catalogue().services
    migrations = migration_plan(stack_settings, catalogue(), {})
    pods: list[tuple[dict, int]] = []
    for name in stack_settings.services:
        migration = migrations.get(name)
        plan = blue_green.plan(stack_settings, name, services[name], migration)
        pods += [(d["spec"]["template"]["spec"], d["spec"]["replicas"] + 1) for d in plan.deployments.values()]
        if migration is not None:
            pods.append((migration.job["spec"]["template"]["spec"], 1))
    for role in gateway_roles(stack_settings):
        deployment = gateway_workload.plan(stack_settings, catalogue(), role).deployment
        pods.append((deployment["spec"]["template"]["spec"], deployment["spec"]["replicas"] + 1))
    needed: dict[str, int] = {}
    for pod_spec, count in pods:
        for key, amount in _at_once(pod_spec, count).items():
            needed[key] = needed.get(key, 0) + amount
    hard = quota.resource_quota(stack_settings, catalogue())["spec"]["hard"]
    assert set(needed) == set(hard)
    for key, amount in needed.items():
        assert amount <= _amount(hard[key]) if key != "pods" else amount <= int(hard[key]), (key, amount, hard[key])


def _full_size_pods(stack_settings) -> list[tuple[dict, int]]:
    """Every pod template the stack's manifests run and how many copies can run at once: each colour of a service at
    its full size (the larger of its two Deployments: a scaled-down standby is scaled back up to it) plus a surge
    pod, a migration Job's pod per migrating service, and every gateway with its surge pod."""
    services = catalogue().services
    migrations = migration_plan(stack_settings, catalogue(), {})
    pods: list[tuple[dict, int]] = []
    for name in stack_settings.services:
        migration = migrations.get(name)
        deployments = blue_green.plan(stack_settings, name, services[name], migration).deployments.values()
        full = max(d["spec"]["replicas"] for d in deployments)
        pods += [(d["spec"]["template"]["spec"], full + 1) for d in deployments]
        if migration is not None:
            pods.append((migration.job["spec"]["template"]["spec"], 1))
    for role in gateway_roles(stack_settings):
        deployment = gateway_workload.plan(stack_settings, catalogue(), role).deployment
        pods.append((deployment["spec"]["template"]["spec"], deployment["spec"]["replicas"] + 1))
    return pods


@pytest.mark.parametrize("stack", ["sandbox", "dev", "test", "prod"])
@pytest.mark.parametrize("gateway_replicas", [None, 5])
def test_quota_is_one_and_a_half_times_every_pod_at_full_size(stack: str, gateway_replicas: int | None) -> None:
    """README: both colours at full size with a surge pod each, a migration Job per migrating service, every gateway
    with its surge pod, times 1.5 (rounded up once, on the total). Exactly: a forgotten Job or surge pod would
    leave an update unadmitted, and a headroom of 10 would let one environment starve the cluster."""
    config = stack_config(stack)
    if gateway_replicas is not None:
        config = set_path(config, "gateway.replicas", gateway_replicas)
    stack_settings = settings(stack, config)
    needed: dict[str, int] = {}
    for pod_spec, count in _full_size_pods(stack_settings):
        for key, amount in _at_once(pod_spec, count).items():
            needed[key] = needed.get(key, 0) + amount
    hard = quota.resource_quota(stack_settings, catalogue())["spec"]["hard"]
    assert hard == {"requests.cpu": f"{math.ceil(needed['requests.cpu'] * 3 / 2)}m",
                    "limits.cpu": f"{math.ceil(needed['limits.cpu'] * 3 / 2)}m",
                    "requests.memory": f"{math.ceil(needed['requests.memory'] * 3 / 2)}Mi",
                    "limits.memory": f"{math.ceil(needed['limits.memory'] * 3 / 2)}Mi",
                    "pods": str(math.ceil(needed["pods"] * 3 / 2))}


def test_prods_quota_counts_migration_jobs_and_a_scaled_down_standby() -> None:
    """The exact count above covers both: prod migrates services, and a standby scaled down to 0 in its manifest
    is counted at full size, as scaling it back up must be admitted."""
    stack_settings = settings("prod")
    migrations = migration_plan(stack_settings, catalogue(), {})
    assert set(migrations) == {"payin-api", "payout-api"}
    payout = blue_green.plan(stack_settings, "payout-api", catalogue().services["payout-api"], migrations["payout-api"])
    assert sorted(d["spec"]["replicas"] for d in payout.deployments.values())[0] == 0

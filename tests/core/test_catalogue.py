"""The catalogue: routes go to known services, once each, with leading slashes and defined parameters."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Callable

import pytest
import yaml

from core.catalogue import Catalogue
from core.errors import ConfigError
from tests.support.stacks import ROOT

BASE = yaml.safe_load((ROOT / "catalogue.yaml").read_text())
PAYIN_GET = {"method": "GET", "path": "/v1/payins/{id}", "service": "payin-api", "backend": "/payins/{id}"}


def load_with(tmp_path: Path, change: Callable[[dict], None]) -> Catalogue:
    raw = copy.deepcopy(BASE)
    change(raw)
    path = tmp_path / "catalogue.yaml"
    path.write_text(yaml.safe_dump(raw))
    return Catalogue.load(path)


def test_the_real_catalogue_routes_every_service(tmp_path: Path) -> None:
    catalogue = load_with(tmp_path, lambda raw: None)
    assert {route.service for route in catalogue.routes} == set(catalogue.services)


@pytest.mark.parametrize(("change", "expected"), [
    (lambda raw: raw["routes"].append(dict(PAYIN_GET)),
     'catalogue.yaml:routes[6].path = "/v1/payins/{id}": GET /v1/payins/{id} is already routed by routes[1]'),
    (lambda raw: raw["routes"].append(dict(PAYIN_GET, path="/v1/payins/{ref}", backend="/payins/{ref}")),
     'catalogue.yaml:routes[6].path = "/v1/payins/{ref}": GET /v1/payins/{ref} is already routed by routes[1]'),
    (lambda raw: raw["routes"].append(dict(PAYIN_GET, service="refunds-api", path="/v1/refunds", backend="/refunds")),
     'catalogue.yaml:routes[6].service = "refunds-api": unknown service; known: merchant-api, payin-api, payout-api'),
    (lambda raw: raw["routes"].append(dict(PAYIN_GET, path="/health/payin-api", backend="/health/ready")),
     'catalogue.yaml:routes[6].path = "/health/payin-api": GET /health/payin-api is the gateway\'s health route of '
     "payin-api, added for every service; use another path"),
    (lambda raw: raw["routes"].append(dict(PAYIN_GET, path="/v1/payins/{payin}/refunds",
                                           backend="/payins/{payin}/refunds")),
     'catalogue.yaml:routes[6].path = "/v1/payins/{payin}/refunds": names the parameter after /v1/payins/ {payin}, '
     "where routes[1] (GET /v1/payins/{id}) names it {id}: the gateway's router takes one name in one place; use "
     "{id}"),
    (lambda raw: raw["routes"].append(dict(PAYIN_GET, path="v1/refunds")),
     'catalogue.yaml:routes[6].path = "v1/refunds": must start with /'),
    (lambda raw: raw["routes"].append(dict(PAYIN_GET, path="/v1/refunds", backend="/refunds/{id}")),
     'catalogue.yaml:routes[6] = {"backend": "/refunds/{id}", "method": "GET", "path": "/v1/refunds", '
     '"service": "payin-api"}: backend /refunds/{id} uses {id} which the path /v1/refunds does not define'),
    (lambda raw: raw["services"]["payin-api"]["shutdown"].update(grace_seconds=10),
     'catalogue.yaml:services.payin-api.shutdown = {"drain_seconds": 10, "grace_seconds": 10}: grace_seconds (10) '
     "must be longer than drain_seconds (10) so in-flight requests finish after the drain"),
    (lambda raw: raw["services"]["payin-api"].update(port=True),
     "catalogue.yaml:services.payin-api.port = true: must be a number, not true or false"),
    (lambda raw: raw["services"]["payin-api"].update(helth=raw["services"]["payin-api"].pop("health")),
     "catalogue.yaml:services.payin-api.health is missing: required; catalogue.yaml:services.payin-api.helth: unknown "
     "key (did you mean health?); known keys are product, description, port, metrics_port, health, risk, resources, "
     "shutdown, migrations"),
    (lambda raw: raw["services"]["payin-api"]["shutdown"].update(drain_seconds=True),
     "catalogue.yaml:services.payin-api.shutdown.drain_seconds = true: must be a number, not true or false"),
    (lambda raw: raw["services"]["payin-api"].update(metrics_port=8080),
     "catalogue.yaml:services.payin-api.metrics_port = 8080: must differ from port (8080): the monitoring namespace "
     "may reach the metrics port"),
    (lambda raw: raw["services"]["merchant-api"].update(port=8081, metrics_port=8080),
     "catalogue.yaml:services.merchant-api.metrics_port = 8080: must differ from every service's port (payin-api "
     "serves HTTP on 8080): the monitoring namespace may reach the metrics ports of every service"),
    (lambda raw: raw["services"].update({"2fa-api": raw["services"]["merchant-api"]}),
     'catalogue.yaml:services.2fa-api = "2fa-api": must start with a letter: it names the service\'s Kubernetes '
     "Services"),
    (lambda raw: raw["services"].update({"m" * 56: raw["services"]["merchant-api"]}),
     f'catalogue.yaml:services.{"m" * 56} = "{"m" * 56}": must be at most 55 characters, so that its Service '
     f"{'m' * 56}-preview stays within the 63 a Kubernetes name may have"),
    (lambda raw: raw["services"].update({"payin-api-preview": raw["services"]["merchant-api"]}),
     'catalogue.yaml:services.payin-api-preview = "payin-api-preview": is the name of the preview Service of '
     "payin-api; choose another name"),
    (lambda raw: raw["services"].update({"gateway": raw["services"]["merchant-api"]}),
     'catalogue.yaml:services.gateway = "gateway": is the name of a gateway Service; gateway and gateway-preview are '
     "reserved"),
    (lambda raw: raw["services"]["payout-api"]["migrations"].update(database_secret="payin-api-database"),
     'catalogue.yaml:services.payout-api.migrations.database_secret = "payin-api-database": is already the '
     "database Secret of payin-api; each service that migrates needs its own"),
    (lambda raw: raw["services"]["payin-api"]["health"].update(readiness="ready"),
     'catalogue.yaml:services.payin-api.health.readiness = "ready": must be an absolute path starting with /'),
    (lambda raw: raw["services"].update({"environment": raw["services"]["merchant-api"]}),
     'catalogue.yaml:services.environment = "environment": names the environment\'s own alert rules (the Watchdog), '
     "which would replace the service's"),
    # The namespace's LimitRange refuses a container past 4 CPUs or 8 GiB: its pods would never start.
    (lambda raw: raw["services"]["payin-api"]["resources"]["limits"].update(cpu_millicores=6000),
     "catalogue.yaml:services.payin-api.resources.limits.cpu_millicores = 6000: input should be less than or equal "
     "to 4000"),
    (lambda raw: raw["services"]["payin-api"]["resources"]["limits"].update(memory_mib=12288),
     "catalogue.yaml:services.payin-api.resources.limits.memory_mib = 12288: input should be less than or equal to "
     "8192"),
])
def test_bad_catalogue_fails_with_the_file_and_key(tmp_path: Path, change: Callable[[dict], None],
                                                   expected: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_with(tmp_path, change)
    assert str(raised.value) == f"invalid config for {tmp_path / 'catalogue.yaml'}: {expected}"


def test_an_unreadable_catalogue_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "catalogue.yaml"
    path.write_text("services: [unclosed")
    with pytest.raises(ConfigError, match="catalogue.yaml: cannot be read: while parsing a flow sequence"):
        Catalogue.load(path)


def test_a_key_given_twice_is_refused_rather_than_the_last_one_kept(tmp_path: Path) -> None:
    """A service block copied to add a new service and left under the old name would replace that service."""
    text = (ROOT / "catalogue.yaml").read_text()
    payin = text[text.index("  payin-api:\n"):text.index("  payout-api:\n")]
    path = tmp_path / "catalogue.yaml"
    path.write_text(text.replace("\n# Gateway routes", "\n" + payin + "# Gateway routes", 1))
    first, second = (index + 1 for index, line in enumerate(path.read_text().splitlines()) if line == "  payin-api:")
    with pytest.raises(ConfigError) as raised:
        Catalogue.load(path)
    assert str(raised.value) == (f"invalid config for {path}: catalogue.yaml: cannot be read: duplicate key "
                                 f"'payin-api' on line {second} (first on line {first}): each key may appear once "
                                 "in a mapping")



def test_anchors_and_merge_keys_read_as_yaml_defines_them(tmp_path: Path) -> None:
    """A merge key is no duplicate, and a key beside it overrides the merged one rather than repeating it."""
    text = yaml.safe_dump(BASE, sort_keys=False).replace("  merchant-api:\n", "  merchant-api: &merchant\n", 1)
    copied = "  merchant-copy:\n    <<: *merchant\n    description: Merchant under another name\n"
    path = tmp_path / "catalogue.yaml"
    path.write_text(text.replace("\nroutes:\n", "\n" + copied + "routes:\n", 1))
    services = Catalogue.load(path).services
    renamed = services["merchant-api"].model_copy(update={"description": "Merchant under another name"})
    assert services["merchant-copy"] == renamed


def test_a_list_as_a_key_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "catalogue.yaml"
    path.write_text("services:\n  ? [payin-api, payout-api]\n  : {}\n")
    with pytest.raises(ConfigError, match="catalogue.yaml: cannot be read: while constructing a mapping.*found "
                                          "unhashable key"):
        Catalogue.load(path)

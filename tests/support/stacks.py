"""The real stack files and catalogue, loaded the way the program sees them."""

from __future__ import annotations

import copy
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from core.catalogue import Catalogue
from core.outputs import stack_outputs
from core.settings import StackSettings, load_settings

ROOT = Path(__file__).resolve().parents[2]
STACKS = ("sandbox", "dev", "test", "prod")
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)
TRAIN = datetime(2026, 11, 24, 10, 30, tzinfo=timezone.utc)  # a Tuesday inside Prod's release train


def catalogue() -> Catalogue:
    return Catalogue.load(ROOT / "catalogue.yaml")


def stack_config(stack: str) -> dict[str, Any]:
    """Pulumi.<stack>.yaml's config with the project prefix removed; a fresh copy each call."""
    config = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]
    return copy.deepcopy({key.split(":", 1)[1]: value for key, value in config.items()})


CREDENTIALS = {"alerting_slack_deployments_url": "https://hooks.slack.com/services/T/B/one",
               "alerting_slack_incidents_url": "https://hooks.slack.com/services/T/B/two",
               "alerting_slack_alerts_url": "https://hooks.slack.com/services/T/B/three",
               "alerting_pagerduty_routing_key": "0123456789abcdef0123456789abcdef",
               "alerting_watchdog_url": "https://deadman.example/ping/four",
               "retention_registry_password": "registry-password-7c1e"}


def live_config(stack: str) -> dict[str, Any]:
    """The stack's config as a real environment sets it: a cluster, every credential (``CREDENTIALS`` and a
    database URL per service that migrates) and the Alertmanager URL; image digests off (no registry to ask)."""
    config = stack_config(stack)
    credentials = {key: value for key, value in CREDENTIALS.items() if "retention" in config or "retention" not in key}
    return {**config, **credentials, "cluster": {"context": stack}, "image_digests": "off",
            "alerting": {**config.get("alerting", {}), "alertmanager_url": "http://alertmanager.monitoring:9093"},
            "databases": {name: f"postgres://migrate:db-password-{name}@db/{name}" for name in settings(stack).services
                          if catalogue().services[name].migrations is not None}}


def settings(stack: str, config: dict[str, Any] | None = None) -> StackSettings:
    return load_settings(stack, stack_config(stack) if config is None else config, catalogue(), NOW)


def upstream_outputs(stack: str, promoted: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """For mocks' ``stack_outputs``: the outputs of the stack's upstream (release-infra:upstream_stack) after its
    first update and, with ``promoted`` (service -> image), a second that put those images on its standby colours;
    {} for a stack without an upstream."""
    upstream = stack_config(stack).get("upstream_stack")
    if not upstream:
        return {}
    outputs = stack_outputs(settings(upstream)).model_dump(mode="json")
    if promoted:
        config = stack_config(upstream)
        for service, image in promoted.items():
            set_path(config, f"services.{service}.{outputs['services'][service]['standby_colour']}.image", image)
        outputs = stack_outputs(settings(upstream, config), outputs).model_dump(mode="json")
    return {upstream: outputs}


def set_path(config: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """Like `pulumi config set --path`: 'services.payin-api.active' walks nested maps."""
    *parents, last = path.split(".")
    node = config
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    return config


def delete_path(config: dict[str, Any], path: str) -> dict[str, Any]:
    *parents, last = path.split(".")
    node = config
    for part in parents:
        node = node[part]
    del node[last]
    return config

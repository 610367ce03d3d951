"""The release dashboard: a Grafana dashboard JSON, provisioned per environment as a ConfigMap for the sidecar.

It shows what `release status --format prometheus` exports (active colour, images, canary weight, last update)
next to the per-colour error ratio the canary gate compares, from the alerting tier's recording rule.
"""

from __future__ import annotations

import json
from typing import Any

from core import labels
from core.environment import Manifest
from core.settings import StackSettings

SIDECAR_LABEL = {"grafana_dashboard": "1"}  # the label the Grafana chart's dashboard sidecar watches
UID_PREFIX = "release-infra-"
ERROR_RATIO = "namespace_app_color:http_errors:ratio_rate5m"  # recorded by core.alerting.rules


def _panel(number: int, title: str, kind: str, expr: str, grid: tuple[int, int, int, int], *,
           legend: str = "", instant: bool = False, unit: str | None = None, description: str = "") -> dict[str, Any]:
    x, y, w, h = grid
    panel: dict[str, Any] = {
        "id": number, "type": kind, "title": title, "description": description,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "targets": [{"refId": "A", "expr": expr, "legendFormat": legend, "instant": instant,
                     "format": "table" if kind == "table" else "time_series"}],
    }
    if unit:
        panel["fieldConfig"] = {"defaults": {"unit": unit}, "overrides": []}
    if kind == "table":
        panel["transformations"] = [{"id": "organize", "options": {
            "excludeByName": {"Time": True, "Value": True, "__name__": True, "job": True, "instance": True}}}]
    return panel


def dashboard(settings: StackSettings) -> dict[str, Any]:
    """The dashboard of one environment; the environment variable lets a person look at the others too, and the
    error ratios follow it through the namespace its status metrics carry."""
    env = '{environment="$environment"}'
    service_env = '{environment="$environment", service=~"$service"}'
    errors = f'{ERROR_RATIO}{{namespace="$namespace", app=~"$service"}}'
    panels = [
        _panel(1, "Active colour", "table", f"release_infra_active_colour{service_env} == 1", (0, 0, 12, 8),
               instant=True, description="The colour that takes each service's traffic."),
        _panel(2, "Images per colour", "table", f"release_infra_image_info{service_env}", (12, 0, 12, 8),
               instant=True, description="What each colour runs; role says which one is active."),
        _panel(3, "Canary weight", "timeseries", f"release_infra_canary_weight_percent{service_env}",
               (0, 8, 12, 8), legend="{{service}}", unit="percent",
               description="Share of requests on the standby colour; 0 when no canary runs."),
        _panel(4, "Since last update", "stat", f"time() - release_infra_last_update_timestamp_seconds{env}",
               (12, 8, 12, 8), unit="s", description="Time since the environment's stack was last updated."),
        _panel(5, "Error ratio per colour (the canary gate compares these)", "timeseries", errors, (0, 16, 24, 9),
               legend="{{app}} {{color}}", unit="percentunit",
               description="5xx share per colour over 5 minutes; a canary rolls back at +1 point over stable."),
    ]
    defaults = {"environment": settings.environment.value, "namespace": settings.namespace}

    def variable(name: str, query: str) -> dict[str, Any]:
        current = defaults.get(name)
        return {"name": name, "type": "query", "datasource": {"type": "prometheus", "uid": "${datasource}"},
                "query": {"query": query, "refId": name}, "definition": query, "refresh": 2,
                "includeAll": name == "service", "multi": name == "service",
                **({"current": {"text": current, "value": current}} if current else {})}
    return {
        "uid": f"{UID_PREFIX}{settings.environment.value}",
        "title": f"Releases - {settings.environment.value}",
        "tags": ["release-infra", "releases", settings.environment.value],
        "timezone": "utc", "schemaVersion": 39, "version": 1, "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": [
            {"name": "datasource", "type": "datasource", "query": "prometheus"},
            variable("environment", "label_values(release_infra_active_colour, environment)"),
            variable("service", 'label_values(release_infra_active_colour{environment="$environment"}, service)'),
            {**variable("namespace", 'label_values(release_infra_active_colour{environment="$environment"}, '
                                     'namespace)'), "hide": 2},
        ]},
        "panels": panels,
    }


def config_map(settings: StackSettings) -> Manifest:
    name = f"{UID_PREFIX}{settings.environment.value}-dashboard"
    return {
        "metadata": {"name": name, "namespace": settings.namespace,
                     "labels": {**labels.common(settings), **SIDECAR_LABEL}},
        "data": {f"{name}.json": json.dumps(dashboard(settings), indent=2, sort_keys=True)},
    }

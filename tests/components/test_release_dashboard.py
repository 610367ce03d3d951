"""ReleaseDashboard under mocks, and the dashboard it provisions: a ConfigMap the Grafana sidecar picks up."""

from __future__ import annotations

import json
from collections import Counter

from components.release_dashboard import ReleaseDashboard
from core.release.dashboard import SIDECAR_LABEL
from core.release.status import metrics
from tests.support.mock_engine import run_program
from tests.support.stacks import STACKS, settings


def test_registers_one_config_map_labelled_for_the_sidecar_in_the_namespace() -> None:
    run = run_program(lambda: ReleaseDashboard("prod-release-dashboard", settings("prod")), stack="prod", config={})
    assert Counter(r.kind for r in run.registrations) == {"ReleaseDashboard": 1, "ConfigMap": 1}
    [config_map] = run.of_kind("ConfigMap")
    assert config_map.parent == run.named("prod-release-dashboard").urn
    metadata = config_map.inputs["metadata"]
    assert metadata["labels"].items() >= SIDECAR_LABEL.items()
    assert metadata["namespace"] == "payments-prod"
    [(file, text)] = config_map.inputs["data"].items()
    document = json.loads(text)
    assert file == "release-infra-prod-dashboard.json" and document["uid"] == "release-infra-prod"


def test_every_release_metric_is_on_the_dashboard_of_every_environment() -> None:
    exported = {metric.name for metric in metrics([])}
    for stack in STACKS:
        document = json.loads(
            next(iter(run_program(lambda: ReleaseDashboard("d", settings(stack)), stack=stack, config={})
                      .of_kind("ConfigMap")[0].inputs["data"].values())))
        expressions = " ".join(target["expr"] for panel in document["panels"] for target in panel["targets"])
        assert all(name in expressions for name in exported), (stack, exported)
        assert len({panel["id"] for panel in document["panels"]}) == len(document["panels"])
        variables = {variable["name"]: variable for variable in document["templating"]["list"]}
        assert variables["environment"]["current"]["value"] == stack
        # The error ratios are recorded per namespace: they follow the environment through its status metrics.
        assert variables["namespace"]["current"]["value"] == settings(stack).namespace
        assert 'environment="$environment"' in variables["namespace"]["definition"]
        [ratios] = [panel["targets"][0]["expr"] for panel in document["panels"] if panel["id"] == 5]
        assert 'namespace="$namespace"' in ratios and settings(stack).namespace not in ratios

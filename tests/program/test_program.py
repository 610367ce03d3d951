"""The whole program under mocks, on each real Pulumi.<stack>.yaml."""

from __future__ import annotations

import copy
from collections import Counter

import pulumi
import pytest
from pulumi import RunError
from pulumi.runtime.proto import engine_pb2

from core.program_digest import UnreadableCheckout
from core.settings import KNOWN_KEYS
from infra.program import SECRET_CONFIG_KEYS, main, quiet_sdk_debug
from tests.support.mock_engine import Run, run_program
from tests.support.stacks import (CREDENTIALS, NOW, STACKS, catalogue, live_config, set_path, stack_config,
                                  upstream_outputs)

ROUTING_KINDS = {"Service", "PrometheusRule", "DeploymentEvents"}  # rules watch the active colour; events report it


def run_stack(stack: str, config: dict | None = None, upstream_ran: dict[str, str] | None = None) -> Run:
    """The stack's first update under mocks; its upstream (if any) has run its committed images and ``upstream_ran``."""
    return run_program(lambda: main(now=lambda: NOW), stack=stack, stack_outputs=upstream_outputs(stack, upstream_ran),
                       config=stack_config(stack) if config is None else config)


@pytest.mark.parametrize("stack", STACKS)
def test_each_stack_builds_one_environment_with_every_service(stack: str) -> None:
    run = run_stack(stack)
    services = len(stack_config(stack)["services"])
    counts = Counter(r.kind for r in run.registrations)
    assert counts["Environment"] == 1 and counts["Namespace"] == 1
    assert counts["BlueGreenService"] == services
    in_pairs = Counter(r.kind for r in run.registrations
                       if any(a.kind == "BlueGreenService" for a in run.ancestors(r)))
    migrating = sum(1 for name in stack_config(stack)["services"] if catalogue().services[name].migrations)
    assert migrating
    assert in_pairs == {"Deployment": 2 * services, "Service": 2 * services, "PodDisruptionBudget": 2 * services,
                        "Job": migrating, "Secret": migrating}
    assert counts["KrakenDGateway"] == (1 if stack == "prod" else 2)
    assert run.result.environment == stack


@pytest.mark.parametrize("stack", STACKS)
def test_every_resource_hangs_under_the_environment(stack: str) -> None:
    run = run_stack(stack)
    environment = run.named(stack)
    for registration in run.registrations:
        if registration.kind in {"Environment", "kubernetes"}:
            continue
        assert environment in run.ancestors(registration), registration.name
        assert registration.name.startswith(f"{stack}-")


@pytest.mark.parametrize("stack", STACKS)
def test_namespaced_resources_land_in_the_stacks_namespace(stack: str) -> None:
    run = run_stack(stack)
    namespace = stack_config(stack)["namespace"]
    for registration in run.registrations:
        if registration.custom and registration.kind not in {"Namespace", "kubernetes", "DeploymentEvents"}:
            assert registration.inputs["metadata"]["namespace"] == namespace, registration.name


def changed(before: Run, after: Run) -> dict[str, set[str]]:
    """Kinds -> names of resources whose inputs differ between two runs (both must register the same set)."""
    old, new = before.by_name(), after.by_name()
    assert old.keys() == new.keys(), "a flip or promotion must neither create nor delete resources"
    result: dict[str, set[str]] = {}
    for key in old:
        if old[key].inputs != new[key].inputs:
            result.setdefault(old[key].kind, set()).add(old[key].name)
    return result


@pytest.mark.parametrize("stack", STACKS)
def test_a_colour_flip_changes_routing_only(stack: str) -> None:
    before = run_stack(stack)
    config = stack_config(stack)
    flipped = []
    for name, service in config["services"].items():
        if service.get("standby", {}).get("policy", "warm") == "warm":
            service["active"] = "green" if service["active"] == "blue" else "blue"
            flipped.append(name)
    after = run_stack(stack, config)
    assert flipped
    diff = changed(before, after)
    assert set(diff) == ROUTING_KINDS
    assert diff["Service"] == {f"{stack}-{name}-{role}" for name in flipped for role in ("active", "preview")}
    assert diff["PrometheusRule"] == {f"{stack}-alerting-{name}-rules" for name in flipped}
    assert diff["DeploymentEvents"] == {f"{stack}-alerting-{name}-deployment" for name in flipped}
    for name in flipped:
        assert after.result.services[name].active_colour == before.result.services[name].standby_colour


@pytest.mark.parametrize("stack", STACKS)
def test_a_promotion_changes_only_the_standby_deployment(stack: str) -> None:
    config = stack_config(stack)
    before = run_stack(stack, config)
    standby = before.result.services["payin-api"].standby_colour
    image = "registry.pay.internal/payin-api:5e6f7a8-v2.5.0"
    set_path(config, f"services.payin-api.{standby}.image", image)
    after = run_stack(stack, config, upstream_ran={"payin-api": image})
    expected = {"Deployment": {f"{stack}-payin-api-{standby}"},
                "DeploymentEvents": {f"{stack}-alerting-payin-api-deployment"},
                "Job": {f"{stack}-payin-api-migration"}}
    if "retention" in config:  # the retention job learns of the new image from a new ConfigMap, and mounts that
        expected["ConfigMap"] = {f"{stack}-registry-retention-protect"}
        expected["CronJob"] = {f"{stack}-registry-retention-job"}
    assert changed(before, after) == expected
    if "retention" in config:
        old, new = (run.named(f"{stack}-registry-retention-protect").inputs["metadata"]["name"]
                    for run in (before, after))
        assert old != new and old.startswith(f"{stack}-registry-retention-protect-")
        pod = after.named(f"{stack}-registry-retention-job").inputs["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        assert pod["volumes"] == [{"name": "protect", "configMap": {"name": new}}]


def test_switching_to_a_scaled_down_colour_is_refused_before_anything_is_registered() -> None:
    config = set_path(stack_config("prod"), "services.payout-api.active", "green")
    run = run_program(lambda: main(now=lambda: NOW), stack="prod", config=config, keep_error=True)
    assert isinstance(run.error, RunError)
    assert 'release-infra:services.payout-api.standby.colour = "green": the active colour cannot be scaled down' \
        in str(run.error)
    assert run.registrations == []


def test_bad_config_registers_nothing() -> None:
    config = set_path(stack_config("dev"), "services.payin-api.blue.image", "registry.pay.internal/payin-api:latest")
    run = run_program(lambda: main(now=lambda: NOW), stack="dev", config=config, keep_error=True)
    assert isinstance(run.error, RunError)
    assert str(run.error) == ('invalid config for stack "dev": release-infra:services.payin-api.blue.image = '
                              '"registry.pay.internal/payin-api:latest": \'latest\' is a mutable tag; expected '
                              '<registry>/<service>:<git-sha>-v<semver>, e.g. registry.example.com/payin-api:a1b2c3d-v2.3.0')
    assert run.registrations == []


def test_a_canary_step_changes_only_the_public_gateways_config_and_pods_and_the_events_weight() -> None:
    config = stack_config("test")
    before = run_stack("test", config)
    after = run_stack("test", set_path(copy.deepcopy(config), "services.payout-api.canary", {"weight": 25}))
    gateway = {"ConfigMap": {"test-gateway-config"}, "Deployment": {"test-gateway-deployment"},
               # The events resource learns the weight, so that a step back is announced as a rollback.
               "DeploymentEvents": {"test-alerting-payout-api-deployment"}}
    # The rules follow the weight: the first step puts the canary colour among the colours whose pods must
    # answer, and every step holds each colour to its share of the minimum request rate (alerting.md).
    rules = {"PrometheusRule": {"test-alerting-payout-api-rules"}}
    assert changed(before, after) == {**gateway, **rules}
    assert after.named("test-alerting-payout-api-deployment").inputs["canary_weight"] == 25
    further = run_stack("test", set_path(copy.deepcopy(config), "services.payout-api.canary", {"weight": 50}))
    assert changed(after, further) == {**gateway, **rules}


def test_deployment_events_learn_the_served_order_from_the_outputs_history() -> None:
    """dev serves payin-api rc.3 on blue and keeps the older rc.2 on green, taken to have served first; rc.4 on green
    and a flip to it, then back to rc.3: the order the builds first served is kept."""
    rc2, rc3, rc4 = (f"registry.pay.internal/payin-api:{tag}" for tag in
                     ("3c4d5e6-v2.4.0-rc.2", "4d5e6f7-v2.4.0-rc.3", "5e6f7a8-v2.4.0-rc.4"))
    first = run_program(lambda: main(now=lambda: NOW), stack="dev", config=stack_config("dev"))
    assert first.named("dev-alerting-payin-api-deployment").inputs["served"] == [rc2, rc3]
    flipped = set_path(set_path(stack_config("dev"), "services.payin-api.green.image", rc4),
                       "services.payin-api.active", "green")
    previous = first.result.model_dump(mode="json")
    second = run_program(lambda: main(now=lambda: NOW), stack="dev", config=flipped, stack_outputs={"dev": previous})
    assert second.named("dev-alerting-payin-api-deployment").inputs["served"] == [rc3, rc4]
    flipped = set_path(flipped, "services.payin-api.active", "blue")
    back = run_program(lambda: main(now=lambda: NOW), stack="dev", config=flipped,
                       stack_outputs={"dev": second.result.model_dump(mode="json")})
    assert back.named("dev-alerting-payin-api-deployment").inputs["served"] == \
        second.named("dev-alerting-payin-api-deployment").inputs["served"]


def test_deployment_events_carry_the_release_the_last_outputs_record() -> None:
    """Read by a new events resource only: for a service the stack ran, it reports what changed since."""
    first = run_program(lambda: main(now=lambda: NOW), stack="dev", config=stack_config("dev"))
    assert first.named("dev-alerting-payin-api-deployment").inputs.get("applied") is None  # a stack never updated
    second = run_program(lambda: main(now=lambda: NOW), stack="dev", config=stack_config("dev"),
                         stack_outputs={"dev": first.result.model_dump(mode="json")})
    inputs = second.named("dev-alerting-payin-api-deployment").inputs
    assert inputs["applied"] == {key: inputs[key] for key in ("active", "images", "canary_weight", "served")}


@pytest.mark.parametrize("stack", STACKS)
def test_each_stack_gets_its_alerting(stack: str) -> None:
    run = run_stack(stack)
    counts = Counter(r.kind for r in run.registrations)
    services = len(stack_config(stack)["services"])
    assert counts["Alerting"] == counts["AlertmanagerConfig"] == counts["PodMonitor"] == 1
    assert counts["PrometheusRule"] == services + 1 and counts["DeploymentEvents"] == services



def test_a_checkout_git_cannot_read_fails_in_one_line_and_registers_nothing(monkeypatch) -> None:
    def unreadable() -> str:
        raise UnreadableCheckout("/src is a git checkout, but `git ls-files` failed: fatal: not a git repository")

    monkeypatch.setattr("infra.program.program_digest", unreadable)
    run = run_program(lambda: main(now=lambda: NOW), stack="dev", config=stack_config("dev"), keep_error=True)
    assert isinstance(run.error, RunError) and run.registrations == []
    assert str(run.error) == ("cannot tell which program this is: /src is a git checkout, but `git ls-files` failed: "
                              "fatal: not a git repository")

def test_bad_alerting_config_registers_nothing() -> None:
    config = set_path(stack_config("prod"), "alerting.slo_percent", 100)
    run = run_program(lambda: main(now=lambda: NOW), stack="prod", config=config, keep_error=True)
    assert isinstance(run.error, RunError) and run.registrations == []
    assert str(run.error) == ('invalid config for stack "prod": release-infra:alerting.slo_percent = 100: '
                              'input should be less than 100')


def test_a_stack_with_a_cluster_refuses_to_run_without_its_secrets() -> None:
    config = {**stack_config("prod"), "cluster": {"context": "prod"},
              "alerting": {"alertmanager_url": "http://alertmanager.monitoring:9093"}}
    run = run_program(lambda: main(now=lambda: NOW), stack="prod", config=config, keep_error=True)
    assert isinstance(run.error, RunError) and run.registrations == []
    assert "release-infra:alerting_slack_deployments_url is missing" in str(run.error)


@pytest.mark.parametrize("stack", STACKS)
def test_with_a_cluster_each_credential_reaches_only_its_secret(stack: str) -> None:
    config = live_config(stack)
    run = run_stack(stack, config)
    assert run.error is None
    databases = {f"{stack}-{name}-database": {"DATABASE_URL": url} for name, url in config["databases"].items()}
    written = {r.name: r.inputs["stringData"]["value"] for r in run.of_kind("Secret")}
    assert {name: written[name] for name in databases} == databases
    receivers = set(written[f"{stack}-alerting-receivers"].values())
    assert receivers == {value for key, value in CREDENTIALS.items() if key.startswith("alerting_")} - (
        set() if stack == "prod" else {CREDENTIALS["alerting_pagerduty_routing_key"]})  # only prod pages
    if "retention" in config:
        password = CREDENTIALS["retention_registry_password"]
        assert written[f"{stack}-registry-retention-credentials"] == {"password": password}
    values = [*CREDENTIALS.values(), *config["databases"].values()]
    others = [r for r in run.registrations if r.kind != "Secret"]
    assert not any(value in str(r.inputs) for r in others for value in values)
    assert not any(value in run.result.model_dump_json() for value in values)


@pytest.mark.parametrize("stack", STACKS)
def test_rendered_manifests_hold_no_credential(stack: str, warnings: list[str]) -> None:
    """A rendered file holds a Secret in plain text, so a stack without a cluster writes placeholders."""
    config = {key: value for key, value in live_config(stack).items() if key != "cluster"}
    run = run_stack(stack, config)
    assert run.error is None and run.of_kind("Secret")
    values = [*CREDENTIALS.values(), *config["databases"].values()]
    assert not any(value in str(r.inputs) for r in run.registrations for value in values)
    [warning] = [w for w in warnings if w.startswith("no cluster: manifests are rendered to")]
    assert ("the retention job" in warning) == ("retention" in config)  # dev and sandbox run none
    assert warning.endswith("; configured, not written: " + ", ".join(
        [*sorted(key for key in CREDENTIALS if key in config), *(f"databases.{name}" for name in config["databases"])])
        + "; deployment events are recorded, not posted to alerting.alertmanager_url")


@pytest.mark.parametrize("stack", STACKS)
def test_a_stack_without_a_cluster_announces_no_deployment_event(stack: str) -> None:
    """Nothing rendered is applied, so the Alertmanager the stack names must not hear of a switch or rollback."""
    config = {key: value for key, value in live_config(stack).items() if key != "cluster"}
    events = run_stack(stack, config).of_kind("DeploymentEvents")
    assert events and all(r.inputs.get("alertmanager_url") is None for r in events)
    live = run_stack(stack, live_config(stack)).of_kind("DeploymentEvents")
    assert {r.inputs["alertmanager_url"] for r in live} == {"http://alertmanager.monitoring:9093"}


@pytest.mark.parametrize("stack", STACKS)
def test_a_switch_orders_active_services_then_the_gateways_then_preview_services(stack: str) -> None:
    """So at the end of a canary no gateway pod, old or new, sends a request to the colour switched away from."""
    run = run_stack(stack)
    services = [r for r in run.of_kind("Service") if any(a.kind == "BlueGreenService" for a in run.ancestors(r))]
    active = {r.urn for r in services if r.name.endswith("-active")}
    preview = [r for r in services if r.name.endswith("-preview")]
    gateways = [r for r in run.of_kind("Deployment") if any(a.kind == "KrakenDGateway" for a in run.ancestors(r))]
    assert active and preview and gateways
    for gateway in gateways:
        assert active <= set(gateway.dependencies), gateway.name
    for service in preview:
        assert {gateway.urn for gateway in gateways} <= set(service.dependencies), service.name


@pytest.mark.parametrize(("key", "value"), [
    ("alerting_slack_incidents_url", "https://hooks.slack.com/services/T/B/plain-token"),
    ("alerting_pagerduty_routing_key", "0123456789abcdef0123456789abcdef"),
    ("retention_registry_password", "plain-password"),
    ("image_digests_registry_password", "plain-password"),
    ("databases", {"payin-api": "postgres://migrate:plain-password@db/payin"}),
])
def test_a_credential_in_plain_text_is_refused_before_anything_is_registered(key: str, value: object) -> None:
    run = run_program(lambda: main(now=lambda: NOW), stack="prod", config={**stack_config("prod"), key: value},
                      keep_error=True, secret_keys=())
    assert isinstance(run.error, RunError) and run.registrations == []
    path, how = (f"{key}.payin-api", "--secret --path") if isinstance(value, dict) else (key, "--secret")
    assert str(run.error) == (f'invalid config for stack "prod": release-infra:{path} = "[secret]": is in plain text '
                              f"in the stack file: set it with pulumi config set {how} '{path}' ... and rotate it")
    secret = run_program(lambda: main(now=lambda: NOW), stack="prod", config={**stack_config("prod"), key: value},
                         keep_error=True, secret_keys=(key,))
    assert "plain text" not in str(secret.error)


def test_a_key_set_with_secret_that_holds_no_credential_is_refused() -> None:
    """`alerting` encrypted in the stack file, its Alertmanager URL (a token in its query) in every events resource's
    inputs in plain text: the encryption would only have seemed to protect it."""
    config = {**stack_config("prod"), "alerting": {"alertmanager_url": "http://alertmanager.monitoring:9093"}}
    credentials = tuple(key for key in SECRET_CONFIG_KEYS if key in config)
    run = run_program(lambda: main(now=lambda: NOW), stack="prod", config=config, keep_error=True,
                      secret_keys=("alerting", *credentials))
    assert isinstance(run.error, RunError) and run.registrations == []
    assert str(run.error).startswith('invalid config for stack "prod": release-infra:alerting = "[secret]": is set '
                                     "with --secret, but it holds no credential"), str(run.error)
    assert "alertmanager.monitoring" not in str(run.error)


def test_every_credential_key_is_a_known_key() -> None:
    """Else a correctly named credential would be reported as an unknown key."""
    assert set(SECRET_CONFIG_KEYS) <= set(KNOWN_KEYS)


def test_a_secret_under_a_mistyped_key_is_refused_without_showing_it() -> None:
    key, value = "alerting_slack_deployment_url", "https://hooks.slack.com/services/T/B/mistyped-token"
    run = run_program(lambda: main(now=lambda: NOW), stack="prod", config={**stack_config("prod"), key: value},
                      keep_error=True, secret_keys=(key,))
    assert isinstance(run.error, RunError) and run.registrations == []
    assert f'release-infra:{key}: unknown key' in str(run.error)
    assert "mistyped-token" not in str(run.error)


def test_the_sdks_debug_lines_stay_in_the_program_and_warnings_still_reach_the_engine(monkeypatch) -> None:
    sent = []

    class Engine:
        def Log(self, request) -> None:  # noqa: N802 - the engine's RPC name
            sent.append((request.severity, request.message))

    monkeypatch.setattr(pulumi.log, "debug", pulumi.log.debug)  # put back whatever the test found
    monkeypatch.setattr(pulumi.log, "get_engine", Engine)
    quiet_sdk_debug()
    pulumi.log.debug("resource registration successful: ty=kubernetes:apps/v1:Deployment")
    pulumi.log.warn("alerting: no value for slack_webhook")
    assert sent == [(engine_pb2.WARNING, "alerting: no value for slack_webhook")]


def test_the_sections_a_cluster_needs_are_reported_in_one_round() -> None:
    """Alerting, retention, digest lookup and database URLs are read independently: one update names them all."""
    config = {**stack_config("prod"), "cluster": {"context": "prod-eu"}, "image_digests": {"mode": "always"}}
    run = run_program(lambda: main(now=lambda: NOW), stack="prod", config=config, keep_error=True)
    assert isinstance(run.error, RunError) and run.registrations == []
    message = str(run.error)
    assert message.startswith('invalid config for stack "prod": ') and message.count("invalid config") == 1
    for key in ("alerting_slack_deployments_url", "alerting.alertmanager_url", "retention_registry_password",
                "image_digests.mode", "databases.payin-api", "databases.payout-api"):
        assert f"release-infra:{key}" in message, key


def test_a_stack_without_config_says_so_rather_than_list_every_required_key() -> None:
    run = run_program(lambda: main(now=lambda: NOW), stack="staging", config={}, keep_error=True)
    assert isinstance(run.error, RunError) and run.registrations == []
    assert str(run.error) == ('invalid config for stack "staging": Pulumi.staging.yaml: missing, or it sets no '
                              "release-infra: key: a stack needs a config of its own (the committed stacks are "
                              "sandbox, dev, test, prod)")


def test_a_stack_file_that_cannot_be_read_is_said_to_leave_plain_entries_unchecked(
        monkeypatch: pytest.MonkeyPatch, tmp_path, warnings: list[str]) -> None:
    monkeypatch.setattr(pulumi, "get_root_directory", lambda: str(tmp_path))  # a project root with no Pulumi.dev.yaml
    run = run_program(lambda: main(now=lambda: NOW), stack="dev", config=stack_config("dev"), keep_error=True)
    assert run.error is None
    assert ("Pulumi.dev.yaml cannot be read (FileNotFoundError): a plain-text entry of an object secret (databases) "
            "beside a secret one cannot be refused") in warnings

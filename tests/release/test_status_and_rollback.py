"""`release status` and `release rollback` on the four stacks deployed by the real engine."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import Future
from datetime import datetime
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from release_infra_tools.release import UsageError
from release_infra_tools.stacks import Environments, StackError
from tests.release.conftest import ENVIRONMENT, RELEASE, SERVICE, SYNTHETIC_HOOK, release, services
from tests.support.engine import Project
from tests.support.stacks import STACKS

pytestmark = pytest.mark.engine


def outputs(project: Project) -> dict[str, dict]:
    return {stack: project.json("stack", "output", "--json", "--stack", stack) for stack in STACKS}


def test_status_json_is_every_stacks_outputs(deployed: Project) -> None:
    run = release(deployed, "status", "--format", "json")
    assert run.code == 0, run.stderr
    document = json.loads(run.stdout)
    expected = outputs(deployed)
    history = {stack: deployed.json("stack", "history", "--json", "--stack", stack)[0] for stack in STACKS}
    assert [e["environment"] for e in document["environments"]] == list(STACKS)
    for environment in document["environments"]:
        stack = environment["environment"]
        assert {s["service"] for s in environment["services"]} == set(expected[stack]["services"])
        for row in environment["services"]:
            want = expected[stack]["services"][row["service"]]
            assert row["active_colour"] == want["active_colour"]
            assert row["canary_weight"] == want["canary_weight"]
            assert {c: v["image"] for c, v in row["colours"].items()} == \
                {c: v["image"] for c, v in want["colours"].items()}
        # the stack's last update: `stack ls` stamps the checkpoint write, the history the update's end (whole
        # seconds); they differ by the time the engine takes to close the update
        ended = datetime.fromisoformat(history[stack]["endTime"].replace("Z", "+00:00"))
        assert abs(datetime.fromisoformat(environment["last_update"]).timestamp() - ended.timestamp()) < 5


def test_status_table_shows_every_environment_and_service(deployed: Project) -> None:
    run = release(deployed, "status")
    assert run.code == 0, run.stderr
    expected = outputs(deployed)
    header = run.stdout.splitlines()[:6]
    for stack in STACKS:
        assert any(stack in line for line in header), run.stdout
    for stack, document in expected.items():
        for service, state in document["services"].items():
            assert service in run.stdout
            active = state["active_colour"]
            assert f"{active} {state['colours'][active]['version']} (active)" in run.stdout


def test_status_prometheus_parses_with_the_real_parser(deployed: Project, tmp_path) -> None:
    target = tmp_path / "release.prom"
    run = release(deployed, "status", "--format", "prometheus", "--output", str(target))
    assert run.code == 0, run.stderr
    families = {family.name: family for family in text_string_to_metric_families(target.read_text())}
    expected = outputs(deployed)
    active = {(s.labels["environment"], s.labels["service"]): s.labels["colour"]
              for s in families["release_infra_active_colour"].samples if s.value == 1}
    assert active == {(stack, service): state["active_colour"]
                      for stack, document in expected.items() for service, state in document["services"].items()}
    images = {(s.labels["environment"], s.labels["service"], s.labels["colour"]): s.labels["image"]
              for s in families["release_infra_image_info"].samples}
    assert images == {(stack, service, colour): spec["image"]
                      for stack, document in expected.items() for service, state in document["services"].items()
                      for colour, spec in state["colours"].items()}
    assert {s.labels["environment"] for s in families["release_infra_last_update_timestamp_seconds"].samples} \
        == set(STACKS)
    assert release(deployed, "status", "--format", "prometheus").stdout == target.read_text()


def test_rollback_flips_the_active_colour_back_once(deployed: Project) -> None:
    """The second rollback would flip to the newer release just rolled back, with no checks: it is refused."""
    before = services(deployed)[SERVICE]
    run = release(deployed, "rollback", ENVIRONMENT, SERVICE)
    assert run.code == 0, run.stderr
    after = services(deployed)[SERVICE]
    assert after["active_colour"] == before["standby_colour"]
    assert f"serves from {after['active_colour']}" in run.stdout
    config = (deployed.directory / f"Pulumi.{ENVIRONMENT}.yaml").read_text()
    again = release(deployed, "rollback", ENVIRONMENT, SERVICE)
    assert again.code == 2, again.stdout + again.stderr
    newer = before["colours"][before["active_colour"]]["image"]
    assert again.stderr.strip().endswith(f"to release it again with its checks: `release promote {ENVIRONMENT} "
                                         f"{SERVICE} {newer}`")
    assert (deployed.directory / f"Pulumi.{ENVIRONMENT}.yaml").read_text() == config
    assert services(deployed)[SERVICE]["active_colour"] == after["active_colour"]
    deployed.run("preview", "--expect-no-changes", "--stack", ENVIRONMENT)
    deployed.run("config", "set", "--path", f"services.{SERVICE}.active", before["active_colour"],
                 "--stack", ENVIRONMENT)  # as it was, for the tests after this one
    deployed.run("up", "--yes", "--skip-preview", "--stack", ENVIRONMENT)


@pytest.mark.parametrize(("args", "message"), [
    (("rollback", "staging", SERVICE), "unknown environment 'staging'; known: sandbox, dev, test, prod"),
    (("rollback", ENVIRONMENT, "ledger-api"), "unknown service 'ledger-api' in dev; known: merchant-api, "
                                              "payin-api, payout-api"),
    (("promote", ENVIRONMENT, SERVICE, "registry.pay.internal/payin-api:latest"),
     "image registry.pay.internal/payin-api:latest: 'latest' is a mutable tag"),
    (("canary", ENVIRONMENT, SERVICE, "registry.pay.internal/payout-api:a1b2c3d-v1.0.0"),
     "is an image of 'payout-api', not of 'payin-api'"),
    (("canary", ENVIRONMENT, SERVICE, "registry.pay.internal/payin-api:a1b2c3d-v1.0.0", "--bake", "soon"),
     "--bake: 'soon' is not a duration"),
])
def test_bad_input_is_one_line_and_changes_nothing(deployed: Project, args: tuple[str, ...], message: str) -> None:
    config = (deployed.directory / f"Pulumi.{ENVIRONMENT}.yaml").read_text()
    run = release(deployed, *args)
    assert run.code == 2
    assert message in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert "Traceback" not in run.stderr
    assert (deployed.directory / f"Pulumi.{ENVIRONMENT}.yaml").read_text() == config


def test_without_the_pulumi_cli_the_command_says_so_in_one_line(deployed: Project) -> None:
    env = dict(deployed.env, PATH=str(Path(sys.executable).parent))  # the virtualenv's tools, no `pulumi`
    run = subprocess.run([str(RELEASE), "--project-dir", str(deployed.directory), "rollback", ENVIRONMENT, SERVICE],
                         env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert run.stderr == "release rollback: cannot run the pulumi CLI: no `pulumi` on PATH " \
                         "(scripts/bootstrap-engine.sh provides it)\n"


def config_get(project: Project, path: str) -> str:
    return project.run("config", "get", "--path", path, "--stack", ENVIRONMENT).stdout.strip()


def test_a_locked_stack_is_refused_in_one_line_and_its_config_put_back(deployed: Project) -> None:
    """The lock a dead `pulumi up` leaves on a file backend (its pid, user and host in a JSON file)."""
    before = services(deployed)[SERVICE]["active_colour"]
    locks = deployed.directory / "state" / ".pulumi" / "locks" / "organization" / "release-infra" / ENVIRONMENT
    locks.mkdir(parents=True, exist_ok=True)
    lock = locks / "0d1e2f30-dead-update.json"
    lock.write_text(json.dumps({"pid": 4242, "username": "ci", "hostname": "runner-7",
                                "timestamp": "2026-11-22T10:00:00Z"}))
    try:
        run = release(deployed, "rollback", ENVIRONMENT, SERVICE)
    finally:
        lock.unlink()
    assert run.code == 2
    assert run.stderr.strip() == (f"release rollback: stack {ENVIRONMENT} is locked by another update; wait for it "
                                  f"to finish, or if it died, clear the lock with `pulumi cancel --stack "
                                  f"{ENVIRONMENT}`")
    assert config_get(deployed, f"services.{SERVICE}.active") == before
    deployed.run("preview", "--expect-no-changes", "--stack", ENVIRONMENT)


def test_a_stack_with_pending_operations_is_refused_before_anything_changes(deployed: Project) -> None:
    """What a `pulumi up` killed hard leaves in the checkpoint; the engine itself would only warn."""
    checkpoint = deployed.directory / "state" / ".pulumi" / "stacks" / "release-infra" / f"{ENVIRONMENT}.json"
    original = checkpoint.read_text()
    state = json.loads(original)
    latest = state["checkpoint"]["latest"]
    [service] = [r for r in latest["resources"] if r["urn"].endswith(f"::{ENVIRONMENT}-{SERVICE}-active")]
    latest["pending_operations"] = [{"resource": service, "type": "updating"}]
    checkpoint.write_text(json.dumps(state))
    try:
        run = release(deployed, "promote", ENVIRONMENT, SERVICE, "registry.pay.internal/payin-api:9a8b7c6-v9.0.0",
                      f"--synthetic-hook={SYNTHETIC_HOOK}")
    finally:
        checkpoint.write_text(original)
    assert run.code == 2, run.stdout + run.stderr
    assert (f"stack {ENVIRONMENT} has pending operations from an interrupted update (updating "
            f"{ENVIRONMENT}-{SERVICE}-active); run `pulumi refresh --stack {ENVIRONMENT}`") in run.stderr
    assert run.stdout == ""  # refused before the first update
    deployed.run("preview", "--expect-no-changes", "--stack", ENVIRONMENT)


@pytest.mark.parametrize("command", ["rollback", "promote"])
def test_a_stack_file_that_is_not_what_the_stack_applied_is_refused_before_anything_changes(
        deployed: Project, command: str) -> None:
    """Another operator's rollback, applied from their checkout, is not in this stack file: a rollback or a
    promotion from it would put the bad release back on traffic with its own change."""
    stack_file = deployed.directory / f"Pulumi.{ENVIRONMENT}.yaml"
    before, updates = stack_file.read_text(), len(deployed.json("stack", "history", "--json", "--stack", ENVIRONMENT))
    other = next(name for name in services(deployed) if name != SERVICE)
    applied = services(deployed)[other]["active_colour"]
    stale = "green" if applied == "blue" else "blue"
    deployed.run("config", "set", "--path", f"services.{other}.active", stale, "--stack", ENVIRONMENT)
    edited = stack_file.read_text()
    args = ("registry.pay.internal/payin-api:9a8b7c6-v9.0.0", f"--synthetic-hook={SYNTHETIC_HOOK}") \
        if command == "promote" else ()
    try:
        run = release(deployed, command, ENVIRONMENT, SERVICE, *args)
        after = stack_file.read_text()
    finally:
        stack_file.write_text(before)
    assert run.code == 2, run.stdout + run.stderr
    assert run.stderr.strip() == (
        f"release {command}: Pulumi.{ENVIRONMENT}.yaml is not what {ENVIRONMENT}'s last update applied "
        f"(services.{other}.active: applied {applied}, the file says {stale}): pull it if another release changed "
        f"{ENVIRONMENT}, or apply or revert the edit (`pulumi preview --stack {ENVIRONMENT}` shows it) first")
    assert after == edited, "the release changed nothing in the file"
    assert len(deployed.json("stack", "history", "--json", "--stack", ENVIRONMENT)) == updates
    deployed.run("preview", "--expect-no-changes", "--stack", ENVIRONMENT)


def in_this_process(deployed: Project, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str, int, str, str]:
    """The engine's environment for Environments called from the test itself; then the stack file, its text, the
    number of updates so far, and the service's active and standby colours."""
    for name, value in deployed.env.items():
        monkeypatch.setenv(name, value)
    stack_file = deployed.directory / f"Pulumi.{ENVIRONMENT}.yaml"
    updates = len(deployed.json("stack", "history", "--json", "--stack", ENVIRONMENT))
    active = services(deployed)[SERVICE]["active_colour"]
    return stack_file, stack_file.read_text(), updates, active, "green" if active == "blue" else "blue"


def test_a_change_the_cli_half_sets_is_put_back_whole_and_nothing_is_updated(deployed: Project,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Two paths, the second refused by `pulumi config set` itself: the first must not stay set, or a canary's
    rollback (colour and weight) with only the colour set would promote the canary on the next update."""
    stack_file, before, updates, active, standby = in_this_process(deployed, monkeypatch)
    changes = {f"services.{SERVICE}.active": standby, f"services.{SERVICE}.active.weight": "0"}  # a string, no map
    with pytest.raises(StackError) as raised:
        Environments(deployed.directory).update(ENVIRONMENT, changes, "half-set change")
    assert str(raised.value) == (f"cannot set services.{SERVICE}.active.weight on {ENVIRONMENT}: could not set "
                                 f"config: services[\"{SERVICE}\"].active: expected a map; the config is as it was, "
                                 "nothing was updated")
    assert config_get(deployed, f"services.{SERVICE}.active") == active
    assert stack_file.read_text() == before
    assert len(deployed.json("stack", "history", "--json", "--stack", ENVIRONMENT)) == updates


def test_a_refusal_whose_config_cannot_be_put_back_says_both_and_how(deployed: Project,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The check refuses while the stack file has become unreadable: the refusal stays the message, beside the
    command that puts the config back, and nothing is updated."""
    stack_file, before, updates, active, standby = in_this_process(deployed, monkeypatch)

    class Refusal(Future):  # type: ignore[type-arg]
        def result(self, timeout: float | None = None) -> None:
            stack_file.write_text("config: [an unclosed list\n")
            raise UsageError("flipping to it is no rollback")

    try:
        with pytest.raises(StackError) as raised:
            Environments(deployed.directory).update(ENVIRONMENT, {f"services.{SERVICE}.active": standby},
                                                    "refused flip", check=Refusal())
    finally:
        stack_file.write_text(before)
    message = str(raised.value)
    assert message.startswith("flipping to it is no rollback; and the config could not be put back ("), message
    assert message.endswith(f"put it back with `pulumi config set --path services.{SERVICE}.active {active} "
                            f"--stack {ENVIRONMENT}`"), message
    assert len(deployed.json("stack", "history", "--json", "--stack", ENVIRONMENT)) == updates


def test_an_update_the_program_refuses_puts_the_config_back(deployed: Project) -> None:
    """The tag rule passes, the program's registry rule does not: the engine's one line, and no config change."""
    standby = services(deployed)[SERVICE]["standby_colour"]
    before = config_get(deployed, f"services.{SERVICE}.{standby}.image")
    run = release(deployed, "promote", ENVIRONMENT, SERVICE, "registry.other.example/payin-api:1a2b3c4-v2.5.0",
                  f"--synthetic-hook={SYNTHETIC_HOOK}")
    assert run.code == 2
    assert f"release promote: update of {ENVIRONMENT} failed, config put back: " in run.stderr
    assert "must come from the private registry registry.pay.internal" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and "Traceback" not in run.stderr
    assert config_get(deployed, f"services.{SERVICE}.{standby}.image") == before


def test_an_update_that_fails_midway_is_undone_so_the_stack_is_as_its_config_says(deployed: Project) -> None:
    """The active Service is switched, then the preview Service cannot be written: putting the config back alone
    would leave traffic on the other colour while the stack file and the message said nothing had changed."""
    before = services(deployed)[SERVICE]
    manifests = deployed.manifests / ENVIRONMENT / "1-manifest"
    preview = manifests / f"v1-service-payments-{ENVIRONMENT}-{SERVICE}-preview.yaml"
    rendered = preview.read_text()
    preview.unlink()
    preview.mkdir()  # the provider cannot write it, root or not
    try:
        run = release(deployed, "rollback", ENVIRONMENT, SERVICE)
    finally:
        preview.rmdir()
        preview.write_text(rendered)
    assert run.code == 2, run.stdout + run.stderr
    assert f"release rollback: update of {ENVIRONMENT} failed after applying part of it (failed to write YAML " \
           f"file" in run.stderr
    assert run.stderr.strip().endswith("its config was put back and applied again, so the stack is as it was "
                                       "before that update"), run.stderr
    assert config_get(deployed, f"services.{SERVICE}.active") == before["active_colour"]
    assert services(deployed)[SERVICE]["active_colour"] == before["active_colour"]
    active = (manifests / f"v1-service-payments-{ENVIRONMENT}-{SERVICE}.yaml").read_text()
    assert f"color: {before['active_colour']}" in active
    deployed.run("preview", "--expect-no-changes", "--stack", ENVIRONMENT)

"""`release promote` and `release canary` end to end: the real engine on a local backend, a real Prometheus
scraping the loopback stand-in of dev's payin-api, whose health and error rate each test sets."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable

import httpx
import pytest

from tests.release.conftest import (ENVIRONMENT, NAMESPACE, SERVICE, SYNTHETIC_HOOK, Monitored, Run,
                                    another_update_holds, deploy, image, release, services)
from core.catalogue import health_path
from core.release.dashboard import dashboard
from tests.support.engine import Project
from tests.support.gateway_harness import krakend_binary, public_gateway
from tests.support.jaeger import JaegerServer
from tests.support.traced_backend import TracedBackend
from release_infra_tools.probes import TraceStore, TraceStoreError
from tests.support.stacks import settings

pytestmark = pytest.mark.engine


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory, engine_env: dict[str, str]) -> Project:
    """Only the environment these tests release to: three fewer stacks to deploy."""
    return deploy(tmp_path_factory.mktemp("release"), engine_env, (ENVIRONMENT,))


def colours(project: Project) -> tuple[dict, str, str]:
    """The service as last applied, its active colour and its standby colour."""
    state = services(project)[SERVICE]
    return state, state["active_colour"], state["standby_colour"]


def config_weight(project: Project) -> str:
    return project.run("config", "get", "--path", f"services.{SERVICE}.canary.weight", "--stack", ENVIRONMENT,
                       check=False).stdout.strip()


def promote_that_breaks_during_the_watch(project: Project, healthy: Monitored, release_image: str,
                                         also: Callable[[], None] = lambda: None, **breakage: float) -> Run:
    """A promotion whose new colour starts failing (30% of its requests, unless ``breakage`` says otherwise) once
    it takes traffic; ``also`` happens at the same moment."""
    new = colours(project)[2]

    def break_after_the_switch(line: str, _: subprocess.Popen) -> None:
        if line.startswith("watching"):
            also()
            healthy.backend.set(new, **(breakage or {"error_ratio": 0.3}))

    return release(project, "promote", ENVIRONMENT, SERVICE, release_image, *healthy.options(watch="20s"),
                   on_line=break_after_the_switch)


def test_a_failed_verification_leaves_traffic_on_the_old_colour(deployed: Project, healthy: Monitored) -> None:
    before, old, new = colours(deployed)
    healthy.backend.set(new, transactions_ok=False)
    run = release(deployed, "promote", ENVIRONMENT, SERVICE, image("1a2b3c4", "2.5.0"), *healthy.options())
    assert run.code == 1, run.stdout + run.stderr
    assert f"{new} failed verification: synthetic-transaction hook failed (exit 1): synthetic payin answered " \
           f"HTTP 500; traffic stays on {old}" in run.stderr
    # Pay-In migrates: the new image's migrations ran before verification, so its standby keeps it.
    assert f"{new} keeps {image('1a2b3c4', '2.5.0')}: its database migrations ran and cannot be undone" in run.stderr
    after = services(deployed)[SERVICE]
    assert after["active_colour"] == old
    assert after["colours"][old] == before["colours"][old]
    assert after["colours"][new]["image"] == image("1a2b3c4", "2.5.0")
    deployed.run("preview", "--expect-no-changes", "--stack", ENVIRONMENT)


def test_a_payin_promotion_without_a_hook_is_refused_before_anything_changes(deployed: Project,
                                                                             healthy: Monitored) -> None:
    """Pay-In migrates: had the standby been updated first, its new image could not be taken back."""
    before = services(deployed)[SERVICE]
    updates = len(deployed.json("stack", "history", "--json", "--stack", ENVIRONMENT))
    run = release(deployed, "promote", ENVIRONMENT, SERVICE, image("9a8b7c6", "2.5.0"),
                  *healthy.options(**{"synthetic-hook": ""}))
    assert run.code == 2, run.stdout + run.stderr
    assert run.stderr == (f"release promote: {SERVICE} is a payin service: the standard requires synthetic "
                          "transactions before a switch; give --synthetic-hook (or RELEASE_SYNTHETIC_HOOK)\n")
    assert run.stdout == ""
    assert services(deployed)[SERVICE] == before
    assert len(deployed.json("stack", "history", "--json", "--stack", ENVIRONMENT)) == updates


def test_a_prometheus_that_cannot_be_asked_stops_the_promotion_before_the_switch(deployed: Project,
                                                                                  healthy: Monitored) -> None:
    """The watch could not judge the switch: no switch, no flip back, no rollback page."""
    before, old, new = colours(deployed)
    release_image = image("8b7c6d5", "2.5.0")
    run = release(deployed, "promote", ENVIRONMENT, SERVICE, release_image,
                  *healthy.options(**{"prometheus-url": "http://127.0.0.1:9"}))
    assert run.code == 1, run.stdout + run.stderr
    assert run.stderr == (f"release promote: the watch cannot start: Prometheus at http://127.0.0.1:9 cannot be "
                          f"queried: ConnectError; traffic stays on {old} ({before['colours'][old]['image']}), {new} "
                          f"keeps {release_image}: its database migrations ran and cannot be undone\n")
    assert f"active {old} -> {new}" not in run.stdout
    after = services(deployed)[SERVICE]
    assert after["active_colour"] == old and after["colours"][old] == before["colours"][old]


def test_an_unhealthy_standby_fails_verification_on_its_health_endpoints(deployed: Project,
                                                                          healthy: Monitored) -> None:
    before = services(deployed)[SERVICE]
    healthy.backend.set(before["standby_colour"], healthy=False)
    run = release(deployed, "promote", ENVIRONMENT, SERVICE, image("2b3c4d5", "2.5.0"), *healthy.options())
    assert run.code == 1
    assert f"/{before['standby_colour']}/health/ready: HTTP 503" in run.stderr
    after = services(deployed)[SERVICE]
    assert after["active_colour"] == before["active_colour"]
    assert after["colours"][before["active_colour"]] == before["colours"][before["active_colour"]]


def test_a_promotion_that_turns_unhealthy_during_the_watch_is_flipped_back(deployed: Project,
                                                                           healthy: Monitored) -> None:
    before, old, new = colours(deployed)
    release_image = image("3c4d5e6", "2.6.0")
    run = promote_that_breaks_during_the_watch(deployed, healthy, release_image)
    assert run.code == 1, run.stdout + run.stderr
    assert f"{new} broke the error-rate gate during the watch" in run.stderr
    assert f"flipped back: traffic on {old}" in run.stderr
    after = services(deployed)[SERVICE]
    assert after["active_colour"] == old
    assert after["colours"][new]["image"] == release_image  # kept for a look, no traffic
    assert f"active {old} -> {new}" in run.stdout and f"flip back to {old}" in run.stdout


def test_a_promotion_whose_p95_regresses_after_the_switch_is_flipped_back(deployed: Project,
                                                                         healthy: Monitored) -> None:
    """Seed 000 §9: P95 at most 10% over the baseline; 20% over fails the watch, not only an alert."""
    before, old, new = colours(deployed)
    run = promote_that_breaks_during_the_watch(deployed, healthy, image("2d3e4f5", "2.6.0"), latency=0.12)
    assert run.code == 1, run.stdout + run.stderr
    assert f"{new} broke the latency gate during the watch: P95 " in run.stderr
    assert "(limit +10%): fail; flipped back: traffic on " + old in run.stderr
    assert services(deployed)[SERVICE]["active_colour"] == old
    assert f"flip back to {old}" in run.stdout


def test_a_synthetic_failure_after_the_switch_is_flipped_back(deployed: Project, healthy: Monitored,
                                                              tmp_path: Path) -> None:
    """The hook passes on the standby before the switch and fails on its first run through the active Service."""
    ran = tmp_path / "ran-once"
    hook = (f"if [ -e {ran} ]; then echo 'synthetic payin declined after the switch' >&2; exit 1; fi; "
            f"{SYNTHETIC_HOOK} && touch {ran}")
    before, old, new = colours(deployed)
    run = release(deployed, "promote", ENVIRONMENT, SERVICE, image("4e5f6a7", "2.6.0"),
                  *healthy.options(**{"synthetic-hook": f"sh -c {shlex.quote(hook)}"}))
    assert run.code == 1, run.stdout + run.stderr
    assert f"active {old} -> {new}" in run.stdout
    assert (f"{new} failed its checks during the watch: synthetic-transaction hook failed (exit 1): synthetic payin "
            f"declined after the switch; flipped back: traffic on {old}") in run.stderr
    assert services(deployed)[SERVICE]["active_colour"] == old


def exporting_before_the_release(jaeger: JaegerServer, gateway: str, old: str) -> None:
    """As in a cluster, the store holds spans of the gateway and of the service (its old colour) before the release:
    the command asks for both before the switch."""
    with TracedBackend(SERVICE, old, jaeger.otlp_http_url) as serving:
        httpx.get(f"{serving.url}/health/ready", timeout=5)
    httpx.get(f"{gateway}{health_path(SERVICE)}", timeout=5)
    store, deadline = TraceStore(jaeger.query_url, 5), time.monotonic() + 30
    try:
        while True:
            try:
                return store.check("gateway", SERVICE)
            except TraceStoreError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
    finally:
        store.close()


@pytest.mark.parametrize("continues_traces", [True, False])
def test_after_the_switch_a_trace_must_go_through_the_gateway_into_the_new_colour(
        deployed: Project, healthy: Monitored, tmp_path: Path, continues_traces: bool) -> None:
    """Seed 000 §9 with real parts: dev's public gateway as rendered in front of a stand-in of the new colour, both
    exporting to a real Jaeger whose query API the command asks."""
    before, old, new = colours(deployed)
    with JaegerServer(tmp_path / "jaeger") as jaeger, \
            TracedBackend(SERVICE, new, jaeger.otlp_http_url if continues_traces else None) as backend, \
            public_gateway(krakend_binary(), tmp_path, ENVIRONMENT, backend.url, jaeger.otlp_grpc_port) as gateway:
        exporting_before_the_release(jaeger, gateway, old)
        run = release(deployed, "promote", ENVIRONMENT, SERVICE,
                      image("5f6a7b8", "2.6.0") if continues_traces else image("6b7c8d9", "2.6.1"),
                      *healthy.options(**{"gateway-url": gateway, "traces-url": jaeger.query_url,
                                          "trace-wait": "10s"}))
    assert "traces through the gateway)" in run.stdout  # the watch's first line says what it checks
    if continues_traces:
        assert run.code == 0, run.stdout + run.stderr
        assert re.search(r"^  traces: \d+ of \d+ traces through the gateway into the colour, after 1 requests through "
                         rf"{gateway} \(1 x HTTP 200\)$", run.stdout, re.MULTILINE), run.stdout
        assert services(deployed)[SERVICE]["active_colour"] == new
        return
    assert run.code == 1, run.stdout + run.stderr
    assert (f"{new} failed its checks during the watch: no trace reached {SERVICE} on {new}: {SERVICE} on {new} sends "
            "no spans to the trace store or does not continue the gateway's trace") in run.stderr
    assert f"flipped back: traffic on {old}" in run.stderr
    assert services(deployed)[SERVICE]["active_colour"] == old


def test_a_flip_back_that_another_update_blocks_says_traffic_is_on_the_new_colour(deployed: Project,
                                                                                    healthy: Monitored) -> None:
    before, old, new = colours(deployed)
    release_image = image("1e2f3a4", "2.6.1")
    with another_update_holds(deployed) as take_the_lock:
        run = promote_that_breaks_during_the_watch(deployed, healthy, release_image, also=take_the_lock)
    assert run.code == 1, run.stdout + run.stderr
    assert f"release promote: {new} broke the error-rate gate during the watch" in run.stderr
    assert f": fail; the flip back to {old} failed too (stack {ENVIRONMENT} is locked by another update;" in run.stderr
    assert f"traffic is on {new} ({release_image}); run `release rollback {ENVIRONMENT} {SERVICE}`" in run.stderr
    assert "Traceback" not in run.stderr
    assert services(deployed)[SERVICE]["active_colour"] == new
    finish = release(deployed, "rollback", ENVIRONMENT, SERVICE)
    assert finish.code == 0, finish.stdout + finish.stderr
    after = services(deployed)[SERVICE]
    assert after["active_colour"] == old
    assert after["colours"][old] == before["colours"][old]


def test_a_healthy_promotion_switches_after_the_watch(deployed: Project, healthy: Monitored) -> None:
    before, old, new = colours(deployed)
    release_image = image("4d5e6f7", "2.7.0")
    run = release(deployed, "promote", ENVIRONMENT, SERVICE, release_image, *healthy.options())
    assert run.code == 0, run.stdout + run.stderr
    after = services(deployed)[SERVICE]
    assert after["active_colour"] == new
    assert after["colours"][new]["image"] == release_image
    assert after["colours"][old]["image"] == before["colours"][old]["image"]
    watch = [line for line in run.stdout.splitlines() if line.startswith("  watch:")]
    assert len(watch) >= 2 and all(": pass" in line for line in watch), run.stdout


def test_a_healthy_canary_walks_every_step_and_promotes(deployed: Project, healthy: Monitored) -> None:
    before, stable, candidate = colours(deployed)
    canary_image = image("5e6f7a8", "2.8.0")
    run = release(deployed, "canary", ENVIRONMENT, SERVICE, canary_image, *healthy.options())
    assert run.code == 0, run.stdout + run.stderr
    for number, weight in enumerate((5, 25, 50, 100), start=1):
        assert f"step {number}/4: weight {weight}%" in run.stdout
        assert f"weight {(0, 5, 25, 50)[number - 1]}% -> {weight}%" in run.stdout
    progress = [line for line in run.stdout.splitlines() if line.strip().startswith("step ")]
    assert all(line.endswith(": pass") for line in progress), run.stdout
    # Seed 000 §9 after the final switch, through the active Service, against the stable colour's last bake.
    switch = run.stdout.index(f"promoted, active {stable} -> {candidate}, weight 0")
    assert run.stdout.index(f"watching {candidate} for 4s") > switch, run.stdout
    watch = [line for line in run.stdout.splitlines() if line.startswith("  watch:")]
    assert len(watch) >= 2 and all(": pass" in line for line in watch), run.stdout
    assert run.stdout.splitlines()[-1].startswith(f"promoted: {SERVICE} in {ENVIRONMENT} serves {canary_image}")
    after = services(deployed)[SERVICE]
    assert (after["active_colour"], after["canary_weight"]) == (candidate, 0)
    assert after["colours"][candidate]["image"] == canary_image
    assert after["colours"][stable]["image"] == before["colours"][stable]["image"]
    deployed.run("preview", "--expect-no-changes", "--stack", ENVIRONMENT)


def test_a_canary_whose_synthetic_transaction_fails_after_the_final_switch_is_flipped_back(
        deployed: Project, healthy: Monitored, tmp_path: Path) -> None:
    """Every bake passed, but the release is broken behind the active Service (its selector, the gateway's route):
    the hook passes on the standby before the first step and fails on its first run through the active Service."""
    ran = tmp_path / "ran-once"
    hook = (f"if [ -e {ran} ]; then echo 'synthetic payin declined after the switch' >&2; exit 1; fi; "
            f"{SYNTHETIC_HOOK} && touch {ran}")
    before, stable, candidate = colours(deployed)
    canary_image = image("3b4c5d6", "2.8.1")
    run = release(deployed, "canary", ENVIRONMENT, SERVICE, canary_image,
                  *healthy.options(**{"synthetic-hook": f"sh -c {shlex.quote(hook)}"}))
    assert run.code == 1, run.stdout + run.stderr
    assert f"promoted, active {stable} -> {candidate}, weight 0" in run.stdout
    assert f"canary {SERVICE}: flip back to {stable}" in run.stdout
    assert "promoted: " not in run.stdout
    assert run.stderr == (f"release canary: {candidate} failed its checks during the watch: synthetic-transaction hook "
                          "failed (exit 1): synthetic payin declined after the switch; flipped back: traffic on "
                          f"{stable} ({before['colours'][stable]['image']})\n")
    after = services(deployed)[SERVICE]
    assert (after["active_colour"], after["canary_weight"]) == (stable, 0)
    assert after["colours"][stable] == before["colours"][stable]
    assert after["colours"][candidate]["image"] == canary_image  # kept for a look, no traffic
    deployed.run("preview", "--expect-no-changes", "--stack", ENVIRONMENT)


def test_an_unhealthy_canary_is_rolled_back_within_one_interval(deployed: Project, healthy: Monitored) -> None:
    before, stable, candidate = colours(deployed)
    healthy.backend.set(stable, error_ratio=0.01)
    healthy.backend.set(candidate, error_ratio=0.05)
    run = release(deployed, "canary", ENVIRONMENT, SERVICE, image("6f7a8b9", "2.9.0"),
                  *healthy.options(bake="30s", interval="2s"))
    assert run.code == 1, run.stdout + run.stderr
    progress = [line for line in run.stdout.splitlines() if line.strip().startswith("step ")]
    assert len(progress) == 1 and progress[0].strip().startswith("step 1/4: weight 5%, bake 0m2"), run.stdout
    assert "(limit +1 pp): fail, P95 " in progress[0]
    assert "canary at 5% broke the error-rate gate" in run.stderr
    assert f"rolled back to weight 0, all traffic on {stable}" in run.stderr
    after = services(deployed)[SERVICE]
    assert (after["active_colour"], after["canary_weight"]) == (stable, 0)


def test_a_canary_step_20_percent_slower_than_stable_is_rolled_back(deployed: Project, healthy: Monitored) -> None:
    """Seed 000 §2 monitors a canary's latency: no errors at all, but its P95 20% over the stable colour's."""
    before, stable, candidate = colours(deployed)
    healthy.backend.set(candidate, latency=0.12)
    run = release(deployed, "canary", ENVIRONMENT, SERVICE, image("1f2a3b4", "2.9.0"),
                  *healthy.options(bake="30s", interval="2s"))
    assert run.code == 1, run.stdout + run.stderr
    progress = [line for line in run.stdout.splitlines() if line.strip().startswith("step ")]
    assert len(progress) == 1 and progress[0].endswith("(limit +10%): fail"), run.stdout
    assert "canary at 5% broke the latency gate: P95 " in run.stderr
    assert f"rolled back to weight 0, all traffic on {stable}" in run.stderr
    after = services(deployed)[SERVICE]
    assert (after["active_colour"], after["canary_weight"]) == (stable, 0)


def test_a_canary_5_percent_slower_than_stable_passes_every_step(deployed: Project, healthy: Monitored) -> None:
    before, stable, candidate = colours(deployed)
    healthy.backend.set(candidate, latency=0.105)
    run = release(deployed, "canary", ENVIRONMENT, SERVICE, image("2a3b4c5", "2.9.0"), *healthy.options())
    assert run.code == 0, run.stdout + run.stderr
    progress = [line for line in run.stdout.splitlines() if line.strip().startswith("step ")]
    assert len(progress) >= 4 and all("(limit +10%): pass" in line for line in progress), run.stdout
    after = services(deployed)[SERVICE]
    assert (after["active_colour"], after["canary_weight"]) == (candidate, 0)


def test_a_canary_without_data_is_not_promoted(deployed: Project, healthy: Monitored) -> None:
    before, stable, candidate = colours(deployed)
    healthy.backend.set(candidate, serving=False)
    run = release(deployed, "canary", ENVIRONMENT, SERVICE, image("7a8b9c0", "2.9.1"), *healthy.options())
    assert run.code == 1, run.stdout + run.stderr
    assert "errors no data vs baseline" in run.stdout
    assert "no error-rate data for the canary at 5% at the end of its bake" in run.stderr
    assert "a canary is not promoted without evidence" in run.stderr
    after = services(deployed)[SERVICE]
    assert (after["active_colour"], after["canary_weight"]) == (stable, 0)


def test_ctrl_c_during_a_bake_rolls_the_canary_back(deployed: Project, healthy: Monitored) -> None:
    before = services(deployed)[SERVICE]
    stable = before["active_colour"]

    def interrupt_during_the_first_bake(line: str, process: subprocess.Popen) -> None:
        if line.strip().startswith("step 1/4"):
            process.send_signal(signal.SIGINT)

    run = release(deployed, "canary", ENVIRONMENT, SERVICE, image("8b9c0d1", "3.0.0"),
                  *healthy.options(bake="5m"), on_line=interrupt_during_the_first_bake)
    assert run.code == 130, run.stdout + run.stderr
    assert f"interrupted at weight 5%: rolled back to weight 0, all traffic on {stable}" in run.stderr
    assert "Traceback" not in run.stderr
    after = services(deployed)[SERVICE]
    assert (after["active_colour"], after["canary_weight"]) == (stable, 0)
    assert config_weight(deployed) == "0"


def test_a_canary_interrupted_while_another_update_holds_the_stack_says_how_to_finish(
        deployed: Project, healthy: Monitored) -> None:
    before, stable, candidate = colours(deployed)
    with another_update_holds(deployed) as take_the_lock:
        def interrupt_the_first_bake_while_locked(line: str, process: subprocess.Popen) -> None:
            if line.strip().startswith("step 1/4"):
                take_the_lock()
                process.send_signal(signal.SIGINT)

        run = release(deployed, "canary", ENVIRONMENT, SERVICE, image("0d1e2f3", "3.0.0"),
                      *healthy.options(bake="5m"), on_line=interrupt_the_first_bake_while_locked)
    assert run.code == 130, run.stdout + run.stderr
    assert f"release canary: interrupted at weight 5%; the rollback to weight 0 failed too (stack {ENVIRONMENT} " \
           "is locked by another update;" in run.stderr
    assert f"the stack config has canary.weight 5; run `release rollback {ENVIRONMENT} {SERVICE}`" in run.stderr
    assert "Traceback" not in run.stderr
    assert config_weight(deployed) == "5"
    assert (services(deployed)[SERVICE]["active_colour"], services(deployed)[SERVICE]["canary_weight"]) == (stable, 5)
    finish = release(deployed, "rollback", ENVIRONMENT, SERVICE)
    assert finish.code == 0, finish.stdout + finish.stderr
    after = services(deployed)[SERVICE]
    assert (after["active_colour"], after["canary_weight"]) == (stable, 0)
    assert after["colours"][stable] == before["colours"][stable]
    assert config_weight(deployed) == "0"
    deployed.run("preview", "--expect-no-changes", "--stack", ENVIRONMENT)


def test_ctrl_c_during_an_update_leaves_the_stack_as_its_config_says(deployed: Project, healthy: Monitored) -> None:
    """A terminal's Ctrl-C reaches the engine too, which cancels the step's update part-way: the config goes
    back and is applied again, so what ran before the cancel is undone and the stack matches its config."""
    before = services(deployed)[SERVICE]
    stable, candidate = before["active_colour"], before["standby_colour"]
    canary_image = image("9c0d1e2", "3.0.1")
    locks = deployed.directory / "state" / ".pulumi" / "locks"

    def interrupt_the_first_step_update(line: str, process: subprocess.Popen) -> None:
        if f"{candidate} runs {canary_image}, weight 0" not in line:
            return
        deadline = time.monotonic() + 60
        while not any(locks.rglob("*.json")):  # the engine holds the stack: the 0% -> 5% update has begun
            assert time.monotonic() < deadline, "the first step's update never started"
            time.sleep(0.05)
        time.sleep(1.5)  # into the program's registrations, well before the update's end
        os.killpg(process.pid, signal.SIGINT)

    run = release(deployed, "canary", ENVIRONMENT, SERVICE, canary_image, *healthy.options(bake="5m"),
                  on_line=interrupt_the_first_step_update)
    assert run.code == 130, run.stdout + run.stderr
    assert "update of dev was interrupted: its config was put back and applied again" in run.stderr
    assert f"interrupted at weight 0%: weight 0, all traffic on {stable} ({before['colours'][stable]['image']}); " \
           f"{candidate} keeps {canary_image}" in run.stderr
    assert "Traceback" not in run.stderr
    history = deployed.json("stack", "history", "--json", "--stack", ENVIRONMENT)
    cancelled, reapplied = history[1], history[0]  # newest first
    assert (cancelled["result"], cancelled["message"]) == ("failed", f"canary {SERVICE}: weight 0% -> 5%")
    assert reapplied["result"] == "succeeded"
    assert reapplied["message"].endswith("interrupted; the previous config applied again")
    after = services(deployed)[SERVICE]
    assert (after["active_colour"], after["canary_weight"]) == (stable, 0)
    assert after["colours"][candidate]["image"] == canary_image
    assert config_weight(deployed) == "0"
    assert not any(locks.rglob("*.json"))
    deployed.run("preview", "--expect-no-changes", "--stack", ENVIRONMENT)


def test_every_dashboard_query_is_promql_the_real_prometheus_accepts(monitored: Monitored) -> None:
    document = dashboard(settings(ENVIRONMENT))
    queries = [target["expr"] for panel in document["panels"] for target in panel["targets"]]
    queries += [variable["query"]["query"] for variable in document["templating"]["list"] if "query" in variable
                and isinstance(variable["query"], dict)]
    assert len(queries) == 8
    for query in queries:
        query = query.replace("$environment", ENVIRONMENT).replace("$service", SERVICE).replace(
            "$namespace", NAMESPACE)
        endpoint = "series" if query.startswith("label_values") else "query"
        if endpoint == "series":  # Grafana turns label_values(metric, label) into a series lookup
            query = query[len("label_values("):].rsplit(",", 1)[0]
            answer = httpx.get(f"{monitored.prometheus.url}/api/v1/series", params={"match[]": query}).json()
        else:
            answer = httpx.get(f"{monitored.prometheus.url}/api/v1/query", params={"query": query}).json()
        assert answer["status"] == "success", (query, answer)

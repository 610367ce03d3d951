"""release-infra-retention when things go wrong: killed mid-run, unreachable, refused, bad tags, bad policy."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from release_infra_tools.registry import RegistryClient, RegistryError
from release_infra_tools.retention import main
from tests.registry.harness import ROOT, Image, Registry, free_port, push_all
from tests.registry.test_retention_tool import T0, build, tag
from tests.registry.token_service import FlakyProxy, flaky_proxy


def command(registry_url: str, outputs: list[Path], *extra: str) -> list[str]:
    return [sys.executable, "-m", "release_infra_tools.retention", "--registry", registry_url,
            *(arg for f in outputs for arg in ("--protect-outputs", str(f))), *extra]


def count_tags(registry: Registry) -> int:
    return sum(map(len, registry.tags().values()))


@pytest.mark.parametrize("kill_when", ["during the scan", "after the first deletion"])
def test_sigkill_then_rerun_ends_like_an_uninterrupted_run(registry, stack_output_files, kill_when):
    images = [build(f"service-{r}", i) for r in range(3) for i in range(150)]
    push_all(registry, images)
    expected = {f"service-{r}": {tag(i) for i in range(130, 150)} for r in range(3)}
    before = count_tags(registry)
    with flaky_proxy(registry.url, []) as proxy:  # passes every request through, and lists them
        process = subprocess.Popen(command(proxy.url, stack_output_files, "--apply", "--workers", "2"), cwd=ROOT,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 60
            while process.poll() is None and time.monotonic() < deadline and not killing_point(proxy, kill_when):
                time.sleep(0.005)
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
            assert process.returncode == -signal.SIGKILL, "the tool finished before it could be killed"
            asked = list(proxy.requests)
        finally:
            if process.poll() is None:
                process.kill()
    interrupted = count_tags(registry)
    if kill_when == "during the scan":
        assert any("/manifests/" in path for _, path in asked), asked  # the scan had begun
        assert not any(method == "DELETE" for method, _ in asked)
        assert interrupted == before
    else:
        assert 60 < interrupted < before  # killed part-way through deleting
    rerun = subprocess.run(command(registry.url, stack_output_files, "--apply", "--json"), cwd=ROOT,
                           capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert registry.tags() == expected


def test_sigterm_after_the_first_deletion_reports_exactly_what_was_deleted(registry):
    """The CronJob's activeDeadlineSeconds and a node drain send SIGTERM: the run stops as on a registry failure,
    and the report and the stderr lines (one per DELETE, as it happens) name exactly the images that are gone."""
    images = [build("ledger-sync", i) for i in range(25)]
    digests = dict(zip((image.tags[0] for image in images), push_all(registry, images)))
    with flaky_proxy(registry.url, []) as proxy:
        process = subprocess.Popen([*command(proxy.url, [], "--apply", "--json", "--keep-last", "5"),
                                    "--require-environments", ""], cwd=ROOT, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 60
            while process.poll() is None and time.monotonic() < deadline and not killing_point(proxy, "deletion"):
                time.sleep(0.002)
            process.send_signal(signal.SIGTERM)
            out, err = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
    assert process.returncode == 1, err
    left = registry.tags()["ledger-sync"]
    gone = {(tag, digest) for tag, digest in digests.items() if tag not in left}
    assert 0 < len(gone) < 20  # stopped part-way through its 20 deletions
    report = json.loads(out)
    assert report["failed"] == "received SIGTERM (the job's activeDeadlineSeconds, or a node drain)"
    assert report["deleted"] == len(gone)
    assert {(image["tags"][0], image["digest"]) for image in report["repositories"]["ledger-sync"]["delete"]
            if image["status"] == "deleted"} == gone
    logged = [line for line in err.splitlines() if line.startswith("release-infra-retention: deleted ")]
    assert sorted(logged) == sorted(f"release-infra-retention: deleted ledger-sync@{digest} ({tag})"
                                    for tag, digest in gone)
    assert err.splitlines()[-1] == (f"release-infra-retention: error: received SIGTERM (the job's "
                                    f"activeDeadlineSeconds, or a node drain); stopped after {len(gone)} "
                                    "deletion(s), reported above (a rerun finishes the job)")


def killing_point(proxy: FlakyProxy, kill_when: str) -> bool:
    """Mid-scan: the tool has read some manifests (of 450); after the first deletion: it has deleted one."""
    requests = list(proxy.requests)
    if kill_when == "during the scan":
        return sum("/manifests/" in path for _, path in requests) >= 20
    return any(method == "DELETE" for method, _ in requests)


def test_an_unreachable_registry_is_a_clear_error(stack_output_files, capsys):
    url = f"http://127.0.0.1:{free_port()}"
    assert main(["--registry", url, "--apply", "--attempts", "2", "--backoff-seconds", "0.01",
                 *(a for f in stack_output_files for a in ("--protect-outputs", str(f)))]) == 1
    error = capsys.readouterr().err
    assert f"cannot reach the registry at {url} (ConnectError" in error and "after 2 attempts" in error


@pytest.mark.parametrize("scheme", ["http", "https", "ftp"])
def test_credentials_in_the_registry_url_are_refused_and_never_printed(stack_output_files, capsys, scheme):
    url = f"{scheme}://retention:pass-in-url-7c1e@127.0.0.1:{free_port()}"
    assert main(["--registry", url, "--attempts", "1",
                 *(a for f in stack_output_files for a in ("--protect-outputs", str(f)))]) == 2
    output = capsys.readouterr()
    assert "pass-in-url-7c1e" not in output.err + output.out
    assert "[secret]@127.0.0.1" in output.err and "RETENTION_REGISTRY_PASSWORD" in output.err


@pytest.mark.parametrize("url", ["http://registry.pay.internal", "http://10.0.0.7:5000", "http://127.0.0.1.example"])
def test_plain_http_to_a_registry_elsewhere_is_refused_before_any_request(stack_output_files, capsys, monkeypatch,
                                                                          url):
    """The credentials go in every request's Authorization header: never unencrypted over the network."""
    monkeypatch.setenv("RETENTION_REGISTRY_PASSWORD", "s3cret-pa55")
    monkeypatch.setattr(RegistryClient, "__init__", lambda *args, **kwargs: pytest.fail("a client was made"))
    assert main(["--registry", url, *(a for f in stack_output_files for a in ("--protect-outputs", str(f)))]) == 2
    assert capsys.readouterr().err == (f"release-infra-retention: error: --registry {url}: must be https://: plain "
                                       "http would send the registry credentials unencrypted; http:// only for a "
                                       "loopback registry (127.0.0.0/8, ::1, localhost); nothing was deleted\n")


def test_without_credentials_a_401_is_a_clear_error_and_nothing_is_deleted(authenticated_registry, stack_output_files,
                                                                            capsys, monkeypatch):
    push_all(authenticated_registry, [build("ledger-sync", i) for i in range(25)])
    monkeypatch.delenv("RETENTION_REGISTRY_USERNAME", raising=False)
    assert main(command(authenticated_registry.url, stack_output_files, "--apply")[3:]) == 1
    assert "asks for credentials (HTTP 401, Basic auth) and none were given" in capsys.readouterr().err
    assert len(authenticated_registry.tags()["ledger-sync"]) == 25


def test_a_wrong_password_is_refused_and_never_printed(authenticated_registry, stack_output_files, capsys,
                                                       monkeypatch):
    push_all(authenticated_registry, [build("ledger-sync", i) for i in range(25)])
    monkeypatch.setenv("RETENTION_REGISTRY_USERNAME", "retention")
    monkeypatch.setenv("RETENTION_REGISTRY_PASSWORD", "not-the-password")
    assert main(command(authenticated_registry.url, stack_output_files, "--apply")[3:]) == 1
    output = capsys.readouterr()
    assert "refused the credentials (HTTP 401)" in output.err
    assert "not-the-password" not in output.err + output.out
    assert len(authenticated_registry.tags()["ledger-sync"]) == 25


def test_the_right_credentials_from_a_file_work(authenticated_registry, stack_output_files, tmp_path, capsys):
    push_all(authenticated_registry, [build("ledger-sync", i) for i in range(25)])
    credentials = tmp_path / "credentials"
    credentials.write_text("retention:s3cret-pa55\n")
    assert main(command(authenticated_registry.url, stack_output_files, "--apply", "--json",
                        "--credentials-file", str(credentials))[3:]) == 0
    output = capsys.readouterr()
    assert "s3cret-pa55" not in output.out + output.err
    assert authenticated_registry.tags() == {"ledger-sync": {tag(i) for i in range(5, 25)}}


def test_a_malformed_tag_anywhere_stops_the_run_before_any_deletion(registry, stack_output_files, capsys):
    push_all(registry, [build("ledger-sync", i) for i in range(25)] + [Image("zz-tools", ("latest",), T0)])
    assert main(command(registry.url, stack_output_files, "--apply")[3:]) == 2
    assert "repository 'zz-tools': tag 'latest' is neither a build tag" in capsys.readouterr().err
    assert len(registry.tags()["ledger-sync"]) == 25


def test_a_malformed_tag_pushed_mid_apply_skips_that_repository_and_reports_what_was_deleted(
        registry, stack_output_files, capsys, monkeypatch):
    """`latest` reaches zz-tools while ledger-sync is being cleaned: ledger-sync's deletions happened and are
    reported; zz-tools is left alone, and the run says so and fails."""
    push_all(registry, [build(repository, i) for repository in ("ledger-sync", "zz-tools") for i in range(21)])
    listed, calls = RegistryClient.tags, {"zz-tools": 0}

    def tags(client: RegistryClient, repository: str) -> list[str] | None:
        if repository == "zz-tools":
            calls[repository] += 1
            if calls[repository] == 2:  # its second listing, just before its deletions
                push_all(registry, [Image("zz-tools", ("latest",), T0)])
        return listed(client, repository)

    monkeypatch.setattr(RegistryClient, "tags", tags)
    assert main(command(registry.url, stack_output_files, "--apply", "--json")[3:]) == 1
    output = capsys.readouterr()
    report = json.loads(output.out)
    assert report["deleted"] == 1 and report["skipped"] == ["zz-tools"]
    assert any("repository 'zz-tools': tag 'latest' is neither" in warning for warning in report["warnings"])
    assert output.err.splitlines()[-1] == ("release-infra-retention: error: zz-tools left as they were (see the "
                                           "warnings); the other repositories were cleaned as reported")
    assert len(registry.tags()["ledger-sync"]) == 20 and len(registry.tags()["zz-tools"]) == 22


def test_the_text_report_says_a_skipped_repositorys_images_were_not_deleted(registry, capsys, monkeypatch):
    push_all(registry, [build("zz-tools", i) for i in range(22)])
    listed, calls = RegistryClient.tags, {"n": 0}

    def tags(client: RegistryClient, repository: str) -> list[str] | None:
        calls["n"] += 1
        if calls["n"] == 2:  # the listing just before its deletions
            push_all(registry, [Image("zz-tools", ("latest",), T0)])
        return listed(client, repository)

    monkeypatch.setattr(RegistryClient, "tags", tags)
    assert main(["--registry", registry.url, "--apply", "--require-environments", ""]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert "zz-tools: keep 20, delete 2 (left as it was, see the warnings)" in lines
    assert [line.split()[:2] for line in lines if tag(0) in line or tag(1) in line] == [["not", "deleted"]] * 2
    assert len(registry.tags()["zz-tools"]) == 23


def test_an_unknown_repository_is_refused_not_reported_empty(registry, stack_output_files, capsys):
    push_all(registry, [build("ledger-sync", i) for i in range(25)])
    arguments = command(registry.url, stack_output_files, "--apply", "--repository", "ledger-sync")[3:]
    assert main([*arguments, "--repository", "ledger_sync"]) == 2
    assert capsys.readouterr().err == ("release-infra-retention: error: --repository ledger_sync: the registry has no "
                                       "such repository (repositories are named after services, e.g. payin-api); "
                                       "nothing was deleted\n")
    assert len(registry.tags()["ledger-sync"]) == 25
    assert main(arguments) == 0 and len(registry.tags()["ledger-sync"]) == 20



def test_a_service_selects_its_repositories_nested_or_not_and_one_not_pushed_yet_is_only_a_warning(
        registry, stack_output_files, capsys):
    """What the CronJob runs: --service for each catalogue service. A mirror beside them (KrakenD's, whose version
    tags follow no rule of the standard) is not read, and a service whose first image is not pushed yet, with
    nothing to clean, does not stop the others' cleaning."""
    push_all(registry, [*(build("payments/ledger-sync", i) for i in range(25)),
                        *(build("ledger-sync-tools", i) for i in range(25)),
                        Image("devopsfaith/krakend", ("2.13.1",), T0)])
    arguments = command(registry.url, stack_output_files, "--apply", "--require-environments", "",
                        "--service", "ledger-sync", "--service", "fx-rates")[3:]
    assert main(arguments) == 0
    out = capsys.readouterr().out
    assert "payments/ledger-sync: keep 20, delete 5" in out
    assert "warning: --service fx-rates: the registry has no repository of it yet, so nothing of it to clean" in out
    assert "krakend" not in out and "ledger-sync-tools" not in out
    assert {name: len(tags) for name, tags in registry.tags().items()} == {
        "payments/ledger-sync": 20, "ledger-sync-tools": 25, "devopsfaith/krakend": 1}

@pytest.mark.parametrize("keep_last", ["0", "-3", "twenty"])
def test_a_policy_keeping_fewer_than_one_is_refused(registry, stack_output_files, capsys, keep_last):
    push_all(registry, [build("ledger-sync", i) for i in range(25)])
    assert main(command(registry.url, stack_output_files, "--apply", "--keep-last", keep_last)[3:]) == 2
    assert f"--keep-last {keep_last}: must be a whole number from 1 to 10000" in capsys.readouterr().err
    assert len(registry.tags()["ledger-sync"]) == 25


def test_a_protect_image_that_is_no_image_reference_is_refused(registry, stack_output_files, capsys):
    push_all(registry, [build("ledger-sync", i) for i in range(25)])
    assert main(command(registry.url, stack_output_files, "--apply", "--protect-image", "ledger-sync")[3:]) == 2
    error = capsys.readouterr().err
    assert error.startswith("release-infra-retention: error: --protect-image = 'ledger-sync': ")
    assert error.rstrip().endswith("; nothing was deleted")
    assert len(registry.tags()["ledger-sync"]) == 25


def test_apply_without_every_environment_protected_is_refused(registry, stack_output_files, capsys):
    push_all(registry, [build("ledger-sync", i) for i in range(25)])
    assert main(command(registry.url, stack_output_files[:3], "--apply")[3:]) == 2
    assert "no --protect-outputs for prod" in capsys.readouterr().err
    assert len(registry.tags()["ledger-sync"]) == 25


def test_a_malformed_image_in_the_outputs_is_refused(registry, stack_output_files, capsys):
    outputs = json.loads(stack_output_files[3].read_text())
    outputs["services"]["payin-api"]["colours"]["green"]["image"] = "payin-api:a1b2c3d-v2.3.0"
    stack_output_files[3].write_text(json.dumps(outputs))
    assert main(command(registry.url, stack_output_files, "--apply")[3:]) == 2
    assert "services.payin-api.colours.green.image = 'payin-api:a1b2c3d-v2.3.0': names no registry" \
        in capsys.readouterr().err


# --- exact request sequences of token auth and retries on a fake transport (real servers: test_token_and_retries) ---

def test_bearer_challenge_fetches_a_token_per_repository_and_reuses_it():
    seen = []

    def registry(request: httpx.Request) -> httpx.Response:
        seen.append((request.url.host, request.url.path, request.headers.get("authorization")))
        if request.url.host == "auth.example":
            assert request.headers["authorization"].startswith("Basic ")
            return httpx.Response(200, json={"token": f"T-{request.url.params['scope']}"})
        scope = "repository:payin-api:pull"
        if request.headers.get("authorization") != f"Bearer T-{scope}":
            return httpx.Response(401, headers={"www-authenticate": f'Bearer realm="https://auth.example/token",'
                                                                    f'service="registry",scope="{scope}"'})
        return httpx.Response(200, json={"name": "payin-api", "tags": ["a1b2c3d-v1.0.0"]})

    client = RegistryClient("https://registry.example", "u", "p", transport=httpx.MockTransport(registry))
    assert client.tags("payin-api") == ["a1b2c3d-v1.0.0"]
    assert client.tags("payin-api") == ["a1b2c3d-v1.0.0"]
    assert [host for host, _, _ in seen] == ["registry.example", "auth.example", "registry.example",
                                             "registry.example"]
    assert client.requests == 4


@pytest.mark.parametrize("link", ["http://elsewhere.example/v2/_catalog?last=payin-api&n=1000",
                                  "http://registry.example/v2/_catalog?last=payin-api&n=1000"])
def test_a_next_page_on_another_host_or_scheme_is_refused_before_the_credentials_go_there(link):
    """Once Basic is known, every request of the client carries it: a Link header must not choose where."""
    hosts = []

    def registry(request: httpx.Request) -> httpx.Response:
        hosts.append(f"{request.url.scheme}://{request.url.host}")
        if request.headers.get("authorization") is None:
            return httpx.Response(401, headers={"www-authenticate": 'Basic realm="registry"'})
        return httpx.Response(200, json={"repositories": ["payin-api"]}, headers={"Link": f'<{link}>; rel="next"'})

    client = RegistryClient("https://registry.example", "u", "S3cretPW", transport=httpx.MockTransport(registry))
    with pytest.raises(RegistryError, match="the registry's next page is at http://.*, not on the registry "
                                            "https://registry.example; stopped rather than send it the credentials"):
        client.repositories()
    assert hosts == ["https://registry.example", "https://registry.example"]


def test_429_and_5xx_are_retried_then_reported():
    answers = iter([429, 503, 200])

    def flaky(request: httpx.Request) -> httpx.Response:
        status = next(answers)
        return httpx.Response(status, json={"repositories": ["payin-api"]} if status == 200 else {})

    client = RegistryClient("https://registry.example", transport=httpx.MockTransport(flaky), backoff_seconds=0.001)
    assert client.repositories() == ["payin-api"] and client.requests == 3
    down = RegistryClient("https://registry.example", attempts=3, backoff_seconds=0.001,
                          transport=httpx.MockTransport(lambda request: httpx.Response(502)))
    with pytest.raises(RegistryError, match="kept answering HTTP 502 after 3 attempts"):
        down.repositories()


def test_an_http_token_realm_of_an_https_registry_gets_no_credentials():
    """The token service receives the password (Basic): from an https registry, never over plain http."""
    hosts = []

    def registry(request: httpx.Request) -> httpx.Response:
        hosts.append(f"{request.url.scheme}://{request.url.host}")
        return httpx.Response(401, headers={"www-authenticate": 'Bearer realm="http://auth.example/token",'
                                                                'service="registry"'})

    client = RegistryClient("https://registry.example", "retention", "S3cretPW",
                            transport=httpx.MockTransport(registry))
    with pytest.raises(RegistryError) as raised:
        client.repositories()
    assert str(raised.value) == ("GET /v2/_catalog: the registry names the token service http://auth.example/token: "
                                 "plain http from an https registry; refused rather than send it the credentials "
                                 "unencrypted")
    assert hosts == ["https://registry.example"]


def test_a_loopback_http_registry_naming_a_plain_http_realm_elsewhere_gets_no_credentials():
    hosts = []

    def registry(request: httpx.Request) -> httpx.Response:
        hosts.append(request.url.host)
        return httpx.Response(401, headers={"www-authenticate": 'Bearer realm="http://auth.example/token"'})

    client = RegistryClient("http://127.0.0.1:5000", "retention", "S3cretPW", transport=httpx.MockTransport(registry))
    with pytest.raises(RegistryError, match="names the token service http://auth.example/token: plain http would "
                                            "send the registry credentials unencrypted"):
        client.repositories()
    assert hosts == ["127.0.0.1"]


@pytest.mark.parametrize("answer, message", [
    (httpx.Response(200, text="<html>proxy login</html>", headers={"Content-Type": "text/html"}),
     "GET /v2/_catalog: the answer (HTTP 200, Content-Type text/html) is not a JSON object; is the URL the "
     "registry's (not a proxy's login page, say)?"),
    (httpx.Response(302, headers={"Location": "https://registry.example/v2/_catalog?n=1000"}),
     "GET /v2/_catalog?n=1000: TooManyRedirects: Exceeded maximum allowed redirects."),
])
def test_an_answer_that_is_no_registrys_is_a_registry_error_naming_the_request(answer, message):
    client = RegistryClient("https://registry.example", "retention", "S3cretPW",
                            transport=httpx.MockTransport(lambda request: answer))
    with pytest.raises(RegistryError) as raised:
        client.repositories()
    assert str(raised.value) == message


def test_a_token_service_answering_no_json_is_a_registry_error_naming_it():
    def registry(request: httpx.Request) -> httpx.Response:
        if request.url.host == "auth.example":
            return httpx.Response(200, text="<html>sign in</html>", headers={"Content-Type": "text/html"})
        return httpx.Response(401, headers={"www-authenticate": 'Bearer realm="https://auth.example/token"'})

    client = RegistryClient("https://registry.example", "retention", "S3cretPW",
                            transport=httpx.MockTransport(registry))
    with pytest.raises(RegistryError) as raised:
        client.repositories()
    assert str(raised.value).startswith("the token service https://auth.example/token: the answer (HTTP 200, "
                                        "Content-Type text/html) is not a JSON object")
    assert "S3cretPW" not in str(raised.value)

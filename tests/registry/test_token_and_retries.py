"""Bearer tokens and retries against real servers: the distribution registry with ``auth: token`` and a token
service on loopback, and a proxy in front of a registry that answers 429 and 503 before it lets a request through."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Iterator

import pytest
from pulumi import RunError

from core.settings import KRAKEND_IMAGE
from release_infra_tools.registry import RegistryClient, RegistryError
from release_infra_tools.retention import main as retention_main
from tests.registry.harness import Image, Registry, push
from tests.registry.test_image_digests import host_of, images_of, loopback_config, push_stack, run
from tests.registry.test_retention_tool import build, tag
from tests.registry.token_service import TokenService, flaky_proxy, pusher, token_registry

USERS = {"ci": ("push-pa55", ["pull", "push", "delete"]), "deploy": ("pull-pa55", ["pull"])}


@pytest.fixture
def token_auth(registry_binary: str, tmp_path: Path) -> Iterator[tuple[Registry, TokenService]]:
    with token_registry(registry_binary, tmp_path, USERS) as running:
        yield running


def test_the_registry_really_wants_a_token(token_auth) -> None:
    registry, service = token_auth
    with registry.client() as anonymous:
        challenge = anonymous.get("/v2/payin-api/tags/list")
    assert challenge.status_code == 401
    assert challenge.headers["www-authenticate"].startswith('Bearer realm="http://127.0.0.1:')
    with pusher(registry, "ci", "push-pa55") as http:
        digest = push(http, build("payin-api", 1))
    client = RegistryClient(registry.url, "deploy", "pull-pa55")
    tokens_before = len(service.issued)
    assert client.digest("payin-api", tag(1)) == digest
    assert client.digest("payin-api", tag(2)) is None
    assert client.tags("payin-api") == [tag(1)]
    # One token for the repository, fetched on the first challenge and sent up front afterwards.
    assert client.requests == 5 and service.issued[tokens_before:] == ["repository:payin-api:pull"]
    with pytest.raises(RegistryError, match="the token service http://127.0.0.1:[0-9]+/token refused a token for "
                                            r"scope repository:payin-api:pull \(HTTP 401\); check the registry "
                                            "credentials"):
        RegistryClient(registry.url, "deploy", "wrong").digest("payin-api", tag(1))



def test_a_token_that_cannot_be_sent_is_refused_without_showing_it(token_auth) -> None:
    """A token service answering a token with a line break in it: the HTTP library's own error would quote the
    whole Authorization header, and with it the token, into the retention report and the preview's error."""
    registry, service = token_auth
    issue = service.token
    service.token = lambda authorization, scopes: (  # type: ignore[method-assign]
        None if (token := issue(authorization, scopes)) is None else f"{token}\r\nX-Injected: 1")
    with pytest.raises(RegistryError) as raised:
        RegistryClient(registry.url, "deploy", "pull-pa55").tags("payin-api")
    assert re.fullmatch(r"the token service http://127\.0\.0\.1:\d+/token answered a token that cannot go in a "
                        r"header \(a space, a line break or a character outside ASCII\); nothing was sent with it",
                        str(raised.value))
    assert "eyJ" not in str(raised.value)


@pytest.mark.parametrize("failures", [[503], [429, 502]])
def test_a_token_service_that_fails_for_a_moment_is_retried(registry_binary, tmp_path, failures) -> None:
    with token_registry(registry_binary, tmp_path, USERS, failures=failures) as (registry, service):
        client = RegistryClient(registry.url, "deploy", "pull-pa55", backoff_seconds=0.01)
        assert client.tags("payin-api") is None  # an empty registry, reached through a token
        assert service.issued == ["repository:payin-api:pull"]


def test_a_token_service_that_stays_down_is_reported_as_down_not_as_bad_credentials(registry_binary,
                                                                                      tmp_path) -> None:
    with token_registry(registry_binary, tmp_path, USERS, failures=[503] * 3) as (registry, service):
        client = RegistryClient(registry.url, "deploy", "pull-pa55", attempts=3, backoff_seconds=0.01)
        with pytest.raises(RegistryError) as raised:
            client.tags("payin-api")
    assert re.fullmatch(r"GET /v2/payin-api/tags/list\?n=1000: the token service http://127.0.0.1:[0-9]+/token "
                        r"kept answering HTTP 503 after 3 attempts", str(raised.value)), str(raised.value)
    assert service.issued == []


def test_the_program_pins_through_a_token_registry_with_the_pull_users_secret(token_auth) -> None:
    registry, service = token_auth
    config = loopback_config(host_of(registry), {"mode": "lookup", "username": "deploy"})
    with pusher(registry, "ci", "push-pa55") as http:
        digests = {}
        for key, image in images_of(config).items():
            digests[key] = push(http, Image(image.repository, (image.tag,), None, image.tag))
        mirror, version = KRAKEND_IMAGE.split(":")  # the gateway's image, which the lookups check too
        push(http, Image(mirror, (version,), None))
    pinned = run({**config, "image_digests_registry_password": "pull-pa55"})
    assert pinned.error is None, pinned.error
    assert {(s, c): o.digest for s, out in pinned.result.services.items() for c, o in out.colours.items()} == digests
    refused = run({**config, "image_digests_registry_password": "not-pull-pa55"})
    assert isinstance(refused.error, RunError) and refused.registrations == []
    assert "cannot look up its digest: the token service http://127.0.0.1:" in str(refused.error)
    assert "not-pull-pa55" not in str(refused.error)


def test_retention_deletes_through_tokens_and_a_reader_deletes_nothing(token_auth, stack_output_files,
                                                                      monkeypatch, capsys) -> None:
    registry, _ = token_auth
    with pusher(registry, "ci", "push-pa55") as http:
        for i in range(23):
            push(http, build("ledger-sync", i))
    arguments = ["--registry", registry.url, "--apply", "--json",
                 *(a for f in stack_output_files for a in ("--protect-outputs", str(f)))]
    monkeypatch.setenv("RETENTION_REGISTRY_USERNAME", "deploy")
    monkeypatch.setenv("RETENTION_REGISTRY_PASSWORD", "pull-pa55")
    assert retention_main(arguments) == 1  # a pull-only token cannot delete
    assert "the registry refused the token issued for scope repository:ledger-sync:delete (HTTP 401) for DELETE " \
           "/v2/ledger-sync/manifests/sha256:" in capsys.readouterr().err
    reader = RegistryClient(registry.url, "ci", "push-pa55")
    assert len(reader.tags("ledger-sync")) == 23
    monkeypatch.setenv("RETENTION_REGISTRY_USERNAME", "ci")
    monkeypatch.setenv("RETENTION_REGISTRY_PASSWORD", "push-pa55")
    assert retention_main(arguments) == 0
    assert json.loads(capsys.readouterr().out)["deleted"] == 3
    alive = {t for t in reader.tags("ledger-sync") if reader.digest("ledger-sync", t)}
    assert alive == {tag(i) for i in range(3, 23)}


def test_retention_rides_out_429_and_503_and_ends_as_without_them(registry, stack_output_files, capsys) -> None:
    with registry.client() as http:
        for i in range(24):
            push(http, build("ledger-sync", i))
    with flaky_proxy(registry.url, [429, 503]) as proxy:
        assert retention_main(["--registry", proxy.url, "--apply", "--json", "--backoff-seconds", "0.01",
                               *(a for f in stack_output_files for a in ("--protect-outputs", str(f)))]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["deleted"] == 4
    assert proxy.answered[429] == proxy.answered[503] > 24  # every distinct request was refused twice first
    assert registry.tags() == {"ledger-sync": {tag(i) for i in range(4, 24)}}


def test_the_program_retries_a_flaky_registry_and_reports_one_that_stays_down(registry) -> None:
    config = loopback_config(host_of(registry))
    pushed = push_stack(registry, config)
    with flaky_proxy(registry.url, [503, 429]) as proxy:
        through = {**config, "image_digests": {"mode": "lookup", "registry_url": proxy.url}}
        result = run(through)
    assert result.error is None, result.error
    assert {(s, c): o.digest for s, out in result.result.services.items() for c, o in out.colours.items()} == pushed
    with flaky_proxy(registry.url, [503] * 5) as proxy:
        result = run({**config, "image_digests": {"mode": "lookup", "registry_url": proxy.url}})
    assert isinstance(result.error, RunError) and result.registrations == []
    assert "cannot look up its digest: HEAD /v2/payin-api/manifests/4d5e6f7-v2.4.0-rc.3: the registry kept " \
           "answering HTTP 503 after 3 attempts" in str(result.error)

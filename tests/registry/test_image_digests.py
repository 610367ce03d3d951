"""Digest pinning by the whole program (under mocks) against a real registry on loopback."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from pulumi import RunError

from core.images import ImageReference
from core.settings import KRAKEND_IMAGE
from infra.program import main
from tests.registry.harness import MANIFEST_V2, Image, Registry, push_all
from tests.support.mock_engine import Run, run_program
from tests.support.servers import free_port
from tests.support.stacks import NOW, stack_config

CREATED = datetime(2026, 11, 20, 9, 0, tzinfo=timezone.utc)
PASSWORD_KEY = "image_digests_registry_password"


def loopback_config(host: str, mode: str | dict = "lookup") -> dict[str, Any]:
    """The dev stack moved to a registry at ``host``, digest lookups as given."""
    config = stack_config("dev")
    config["registry"] = host
    for release in config["services"].values():
        for colour in ("blue", "green"):
            release[colour]["image"] = release[colour]["image"].replace("registry.pay.internal", host)
    config["image_digests"] = mode
    return config


def host_of(registry: Registry) -> str:
    return registry.url.removeprefix("http://")


def images_of(config: dict[str, Any]) -> dict[tuple[str, str], ImageReference]:
    return {(service, colour): ImageReference.parse(release[colour]["image"])
            for service, release in config["services"].items() for colour in ("blue", "green")}


def push_stack(registry: Registry, config: dict[str, Any], label: str = "", skip: str | None = None) -> dict:
    """Push every image the stack runs (but ``skip``), KrakenD's mirror included; (service, colour) -> the pushed
    manifest's digest."""
    wanted = {key: image for key, image in images_of(config).items() if str(image) != skip}
    distinct = sorted({(image.repository, image.tag) for image in wanted.values()})
    digests = dict(zip(distinct, push_all(registry, [Image(repository, (tag,), CREATED, label + tag)
                                                     for repository, tag in distinct])))
    if skip != KRAKEND_IMAGE:
        mirror, version = KRAKEND_IMAGE.split(":")
        push_all(registry, [Image(mirror, (version,), CREATED)])
    return {key: digests[(image.repository, image.tag)] for key, image in wanted.items()}


def run(config: dict[str, Any], previous: dict | None = None, secret: bool = True) -> Run:
    """The program for the dev stack; the password key, when there, was set with --secret unless ``secret`` is off."""
    return run_program(lambda: main(now=lambda: NOW), stack="dev", config=config, keep_error=True,
                       stack_outputs={"dev": previous} if previous else None,
                       secret_keys=None if secret else ())


def deployed_images(run: Run) -> dict[str, str]:
    """The image of each service Deployment (the gateway's comes from its own config, not the registry)."""
    return {r.name: r.inputs["spec"]["template"]["spec"]["containers"][0]["image"] for r in run.of_kind("Deployment")
            if any(a.kind == "BlueGreenService" for a in run.ancestors(r))}


def test_every_deployment_runs_its_tag_pinned_to_the_registrys_digest(registry: Registry) -> None:
    config = loopback_config(host_of(registry))
    pushed = push_stack(registry, config)
    result = run(config)
    assert result.error is None, result.error
    images = images_of(config)
    assert deployed_images(result) == {f"dev-{service}-{colour}": f"{images[(service, colour)]}@{digest}"
                                       for (service, colour), digest in pushed.items()}
    for (service, colour), digest in pushed.items():
        output = result.result.services[service].colours[colour]
        assert (output.image, output.digest) == (str(images[(service, colour)]), digest)
    # The digest is the registry's own answer for the tag (what a kubelet pulling the tag would have got).
    with registry.client() as http:
        image = images[("payin-api", "blue")]
        answer = http.get(f"/v2/{image.repository}/manifests/{image.tag}", headers={"Accept": MANIFEST_V2})
        assert answer.headers["docker-content-digest"] == pushed[("payin-api", "blue")]


def test_an_unknown_tag_fails_with_one_line_before_anything_is_registered(registry: Registry) -> None:
    config = loopback_config(host_of(registry))
    missing = config["services"]["payout-api"]["green"]["image"]
    push_stack(registry, config, skip=missing)
    result = run(config)
    assert isinstance(result.error, RunError)
    assert str(result.error) == (
        f'invalid config for stack "dev": release-infra:services.payout-api.green.image = "{missing}": tag not '
        f"found in the registry {registry.url}: push the image first or correct the tag")
    assert result.registrations == []


def test_a_gateway_image_not_mirrored_fails_with_one_line_before_anything_is_registered(registry: Registry) -> None:
    """KrakenD's image is pushed to the registry by hand; without it every gateway pod would fail to pull."""
    config = loopback_config(host_of(registry))
    push_stack(registry, config, skip=KRAKEND_IMAGE)
    result = run(config)
    assert isinstance(result.error, RunError) and result.registrations == []
    image = f"{host_of(registry)}/{KRAKEND_IMAGE}"
    assert str(result.error) == (
        f'invalid config for stack "dev": release-infra:gateway.image = "{image}": not in the registry '
        f"{registry.url}: mirror KrakenD's image there (pull {KRAKEND_IMAGE}, tag it as this and push it)")
    push_stack(registry, config)
    assert run(config).error is None

def test_an_unreachable_registry_fails_clearly_and_registers_nothing() -> None:
    host = f"127.0.0.1:{free_port()}"  # nothing listens there
    result = run(loopback_config(host))
    assert isinstance(result.error, RunError)
    message = str(result.error)
    first = loopback_config(host)["services"]["payin-api"]["blue"]["image"]
    assert message.startswith(f'invalid config for stack "dev": release-infra:services.payin-api.blue.image = '
                              f'"{first}": cannot look up its digest: cannot reach the registry at http://{host} '
                              "(ConnectError")
    assert message.endswith("after 3 attempts; release-infra:image_digests = off skips the lookups (offline preview)")
    assert "\n" not in message and result.registrations == []


def test_off_registers_the_tags_unpinned_without_asking_any_registry() -> None:
    host = f"127.0.0.1:{free_port()}"  # unreachable: an offline preview
    config = loopback_config(host, "off")
    result = run(config)
    assert result.error is None, result.error
    assert deployed_images(result) == {f"dev-{service}-{colour}": str(image)
                                       for (service, colour), image in images_of(config).items()}
    assert all(colour.digest is None for service in result.result.services.values()
               for colour in service.colours.values())


def test_off_keeps_the_digests_the_last_update_pinned(registry: Registry) -> None:
    config = loopback_config(host_of(registry))
    push_stack(registry, config)
    pinned = run(config)
    offline = run(loopback_config(host_of(registry), "off"), previous=pinned.result.model_dump(mode="json"))
    assert offline.error is None, offline.error
    assert deployed_images(offline) == deployed_images(pinned)  # an offline preview of a pinned stack: no change


def test_a_tag_overwritten_since_the_last_update_stops_the_next_one(registry: Registry) -> None:
    config = loopback_config(host_of(registry))
    first = push_stack(registry, config)
    last = run(config).result.model_dump(mode="json")
    image = config["services"]["merchant-api"]["green"]["image"]
    [(repository, tag)] = [(i.repository, i.tag) for i in [ImageReference.parse(image)]]
    [moved] = push_all(registry, [Image(repository, (tag,), CREATED, "rebuilt")])  # the forbidden overwrite
    assert moved != first[("merchant-api", "green")]
    result = run(config, previous=last)
    assert isinstance(result.error, RunError) and result.registrations == []
    assert str(result.error) == (
        f'invalid config for stack "dev": release-infra:services.merchant-api.green.image = "{image}": the tag was '
        f"overwritten: the last update ran {first[('merchant-api', 'green')]} and the registry now resolves it to "
        f"{moved}; tags are immutable, so push a new tag (or pin {first[('merchant-api', 'green')]} in config and "
        "turn lookups off)")


def test_a_digest_pinned_in_config_must_still_be_the_tags(registry: Registry) -> None:
    config = loopback_config(host_of(registry))
    pushed = push_stack(registry, config)
    image = config["services"]["payin-api"]["green"]["image"]
    config["services"]["payin-api"]["green"]["image"] = f"{image}@{pushed[('payin-api', 'green')]}"
    assert run(config).error is None
    config["services"]["payin-api"]["green"]["image"] = f"{image}@{pushed[('payin-api', 'blue')]}"
    result = run(config)
    assert isinstance(result.error, RunError) and result.registrations == []
    assert (f"the tag was overwritten: the registry now resolves it to {pushed[('payin-api', 'green')]}, not the "
            f"pinned {pushed[('payin-api', 'blue')]}") in str(result.error)


def test_a_registry_that_wants_credentials_gets_them_from_the_secret(authenticated_registry: Registry) -> None:
    registry = authenticated_registry
    user, password = registry.auth
    config = loopback_config(host_of(registry))
    pushed = push_stack(registry, config)
    first = config["services"]["payin-api"]["blue"]["image"]

    anonymous = run(config)
    assert isinstance(anonymous.error, RunError) and anonymous.registrations == []
    assert str(anonymous.error) == (
        f'invalid config for stack "dev": release-infra:services.payin-api.blue.image = "{first}": cannot look up '
        "its digest: the registry asks for credentials (HTTP 401, Basic auth) and none were given: set "
        "release-infra:image_digests.username and the secret release-infra:image_digests_registry_password "
        "(pulumi config set --secret image_digests_registry_password ...); release-infra:image_digests = off "
        "skips the lookups (offline preview)")

    wrong = run({**config, "image_digests": {"mode": "lookup", "username": user}, PASSWORD_KEY: "not-" + password})
    assert isinstance(wrong.error, RunError) and wrong.registrations == []
    assert "cannot look up its digest: the registry refused the credentials (HTTP 401) for HEAD " \
           "/v2/payin-api/manifests/" in str(wrong.error)
    assert password not in str(wrong.error)

    right = run({**config, "image_digests": {"mode": "lookup", "username": user}, PASSWORD_KEY: password})
    assert right.error is None, right.error
    assert deployed_images(right)["dev-payin-api-blue"] == f"{first}@{pushed[('payin-api', 'blue')]}"
    everything = repr([r.inputs for r in right.registrations]) + right.result.model_dump_json()
    assert password not in everything


def test_the_lookup_asks_with_every_manifest_type_so_an_index_keeps_its_own_digest(registry: Registry) -> None:
    """A multi-platform image is pinned by its index digest, the one a kubelet resolves the tag to."""
    config = loopback_config(host_of(registry))
    pushed = push_stack(registry, config)
    image = ImageReference.parse(config["services"]["payin-api"]["blue"]["image"])
    index = (b'{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [{"mediaType":'
             b' "application/vnd.docker.distribution.manifest.v2+json", "digest": "' +
             pushed[("payin-api", "blue")].encode() + b'", "size": 0, "platform": {"architecture": "amd64", '
             b'"os": "linux"}}]}')
    with registry.client() as http:
        stored = http.put(f"/v2/{image.repository}/manifests/{image.tag}", content=index,
                          headers={"Content-Type": "application/vnd.oci.image.index.v1+json"})
    assert stored.status_code == 201, stored.text
    result = run(config)
    assert result.error is None, result.error
    assert result.result.services["payin-api"].colours["blue"].digest == stored.headers["docker-content-digest"]
    assert stored.headers["docker-content-digest"] != pushed[("payin-api", "blue")]


def test_the_retention_jobs_image_is_pinned_too(registry: Registry) -> None:
    config = loopback_config(host_of(registry))
    push_stack(registry, config)
    job = f"{host_of(registry)}/release-infra-retention:0000000-v0.1.0"
    config["retention"] = {"image": job}
    missing = run(config)
    assert isinstance(missing.error, RunError) and missing.registrations == []
    assert str(missing.error) == (f'invalid config for stack "dev": release-infra:retention.image = "{job}": tag not '
                                  f"found in the registry {registry.url}: push the image first or correct the tag")
    [digest] = push_all(registry, [Image("release-infra-retention", ("0000000-v0.1.0",), CREATED)])
    result = run(config)
    assert result.error is None, result.error
    [cron_job] = result.of_kind("CronJob")
    assert cron_job.inputs["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["image"] == \
        f"{job}@{digest}"


def test_a_password_in_plain_text_is_refused_before_any_lookup(authenticated_registry: Registry) -> None:
    user, password = authenticated_registry.auth
    config = {**loopback_config(host_of(authenticated_registry)), "image_digests": {"mode": "lookup", "username": user},
              PASSWORD_KEY: password}
    result = run(config, secret=False)
    assert isinstance(result.error, RunError) and result.registrations == []
    assert str(result.error) == (
        'invalid config for stack "dev": release-infra:image_digests_registry_password = "[secret]": is in plain text '
        "in the stack file: set it with pulumi config set --secret 'image_digests_registry_password' ... and rotate it")

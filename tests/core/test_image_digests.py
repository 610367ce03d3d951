"""Digest pinning in the pure core: the switch, what gets pinned, and every way a tag can fail to resolve."""

from __future__ import annotations

import json

import jsonschema
import pytest

from core import blue_green
from core.alerting.events import ReleaseState, classify
from core.errors import ConfigError
from core.images import ImageReference
from core.outputs import SCHEMA_FILE, stack_outputs
from core.registry.digests import default_url, load_image_digests
from core.registry.pinning import LookupFailed, pin, previous_digest, resolve
from core.registry.retention import protected_from_outputs
from tests.support.stacks import catalogue, set_path, settings, stack_config

A, B, C = ("sha256:" + ch * 64 for ch in "abc")
PAYIN_BLUE = "registry.pay.internal/payin-api:4d5e6f7-v2.4.0-rc.3"  # dev's payin-api blue
LOOKUP = load_image_digests("dev", "lookup", {}, "registry.pay.internal", live=False)
OFF = load_image_digests("dev", "off", {}, "registry.pay.internal", live=False)


def registry_of(tags: dict[str, str | None], default: str | None = A):
    """A stand-in registry: tag -> digest (None: no such tag); records what was asked."""
    asked: list[str] = []

    def look_up(image: ImageReference) -> str | None:
        asked.append(str(image))
        return tags.get(str(image), default)

    return look_up, asked


def previous(stack: str, digests: dict) -> dict:
    return stack_outputs(settings(stack), digests=digests).model_dump(mode="json")


# The switch

@pytest.mark.parametrize(("live", "mode"), [(True, "lookup"), (False, "off")])
def test_absent_key_pins_by_default_only_where_there_is_a_cluster(live: bool, mode: str) -> None:
    assert load_image_digests("prod", None, {}, "registry.pay.internal", live=live).mode == mode


def test_short_form_object_and_json_text_agree() -> None:
    short = load_image_digests("dev", "lookup", {}, "registry.pay.internal", live=False)
    full = load_image_digests("dev", {"mode": "lookup"}, {}, "registry.pay.internal", live=False)
    text = load_image_digests("dev", '{"mode": "lookup"}', {}, "registry.pay.internal", live=False)
    assert short == full == text
    assert short.registry_url == "https://registry.pay.internal" and short.lookup


@pytest.mark.parametrize(("registry", "url"), [
    ("registry.pay.internal", "https://registry.pay.internal"),
    ("registry.pay.internal:5000", "https://registry.pay.internal:5000"),
    ("127.0.0.1:5000", "http://127.0.0.1:5000"),
    ("localhost:5000", "http://localhost:5000"),
    ("127.1.2.3", "http://127.1.2.3"),
])
def test_loopback_registries_are_plain_http_like_dockers_default(registry: str, url: str) -> None:
    assert default_url(registry) == url
    assert ImageReference.parse(f"{registry}/payin-api:a1b2c3d-v2.3.0").registry == registry


@pytest.mark.parametrize("url", ["http://127.0.0.1:5000", "http://127.1.2.3", "http://localhost:5000/",
                                 "http://[::1]:5000", "https://registry.pay.internal"])
def test_plain_http_is_allowed_to_a_loopback_registry_only(url: str) -> None:
    digests = load_image_digests("dev", {"mode": "lookup", "registry_url": url}, {}, "registry.pay.internal",
                                 live=False)
    assert digests.registry_url == url.rstrip("/")


def test_an_explicit_url_and_credentials_are_kept_and_the_password_never_shown() -> None:
    digests = load_image_digests("prod", {"mode": "lookup", "registry_url": "https://mirror.pay.internal/",
                                          "username": "deploy"},
                                 {"image_digests_registry_password": "hunter2-pull"}, "registry.pay.internal",
                                 live=True)
    assert (digests.registry_url, digests.username) == ("https://mirror.pay.internal", "deploy")
    assert digests.password.get_secret_value() == "hunter2-pull"
    assert "hunter2" not in repr(digests) and "hunter2" not in str(digests.model_dump())


@pytest.mark.parametrize(("raw", "secrets", "message"), [
    ("on", {}, 'release-infra:image_digests = "on": must be lookup or off'),
    (False, {}, "release-infra:image_digests = false: must be lookup or off (quote 'off' in YAML)"),
    ({"mode": "always"}, {}, "release-infra:image_digests.mode = \"always\": input should be 'lookup' or 'off'"),
    ({"mode": "lookup", "registry_url": "registry.pay.internal"}, {},
     'release-infra:image_digests.registry_url = "registry.pay.internal": must be the registry\'s base URL'),
    ({"mode": "lookup", "registry_url": "http://registry.pay.internal"}, {},
     'release-infra:image_digests.registry_url = "http://registry.pay.internal": must be https://: plain http would '
     'send the registry credentials unencrypted; http:// only for a loopback registry (127.0.0.0/8, ::1, localhost)'),
    ({"mode": "lookup", "usr": "x"}, {},
     'release-infra:image_digests.usr: unknown key; known keys are mode, registry_url, username'),
    ({"mode": "lookup", "passwd": "hunter2"}, {},  # no hint to write the password into the stack file
     'release-infra:image_digests.passwd: unknown key; known keys are mode, registry_url, username'),
    ({"mode": "lookup", "password": "hunter2"}, {},
     'release-infra:image_digests.password = "[secret]": the password is the secret '
     'release-infra:image_digests_registry_password'),
    ({"mode": "lookup", "username": "deploy"}, {},
     'release-infra:image_digests.username = "deploy": needs the secret release-infra:image_digests_registry_password'),
    ("lookup", {"image_digests_registry_password": "hunter2"},
     'release-infra:image_digests_registry_password = "[secret]": is set but release-infra:image_digests.username '
     'is not'),
    ({"mode": "lookup", "username": "deploy"}, {"image_digests_registry_password": " "},
     'release-infra:image_digests_registry_password = "[secret]": must be the registry password'),
])
def test_bad_switch_values_name_the_key_and_what_is_allowed(raw, secrets, message) -> None:
    with pytest.raises(ConfigError) as error:
        load_image_digests("dev", raw, secrets, "registry.pay.internal", live=False)
    text = str(error.value)
    assert text.startswith('invalid config for stack "dev": ') and message in text
    assert "hunter2" not in text and "\n" not in text


def test_the_switch_is_a_known_stack_key() -> None:
    config = set_path(stack_config("dev"), "image_digests", "off")
    config["image_digests_registry_password"] = "x"
    assert settings("dev", config).stack == "dev"  # validated by load_image_digests, not refused as unknown


# Resolving and pinning

def test_lookups_pin_every_colour_and_ask_each_tag_once() -> None:
    config = stack_config("dev")
    config["services"]["payin-api"]["green"]["image"] = PAYIN_BLUE  # the same build on both colours
    dev = settings("dev", config)
    look_up, asked = registry_of({PAYIN_BLUE: B})
    pins = resolve(dev, LOOKUP, {}, look_up)
    assert pins[("payin-api", "blue")] == pins[("payin-api", "green")] == B
    assert pins[("payout-api", "green")] == A
    assert len(pins) == 6
    assert sorted(asked) == sorted({str(dev.services[s].image(c)) for s in dev.services for c in ("blue", "green")})
    assert len(asked) == 5


def test_pinned_settings_put_the_digest_into_the_deployment_and_keep_everything_else() -> None:
    dev = settings("dev")
    pinned = pin(dev, {("payin-api", "blue"): B})
    plan = blue_green.plan(pinned, "payin-api", catalogue().services["payin-api"])
    [container] = plan.deployments["blue"]["spec"]["template"]["spec"]["containers"]
    assert container["image"] == f"{PAYIN_BLUE}@{B}"
    [green] = plan.deployments["green"]["spec"]["template"]["spec"]["containers"]
    assert "@" not in green["image"]
    assert plan.deployments["blue"]["spec"]["selector"] == blue_green.plan(
        dev, "payin-api", catalogue().services["payin-api"]).deployments["blue"]["spec"]["selector"]
    assert pinned.services["payout-api"] == dev.services["payout-api"]


def test_an_unknown_tag_is_reported_with_its_key_path_together_with_the_others() -> None:
    missing = "registry.pay.internal/payout-api:0a1b2c3-v1.8.2"
    look_up, _ = registry_of({PAYIN_BLUE: None, missing: None})
    with pytest.raises(ConfigError) as error:
        resolve(settings("dev"), LOOKUP, {}, look_up)
    assert str(error.value) == (
        f'invalid config for stack "dev": release-infra:services.payin-api.blue.image = "{PAYIN_BLUE}": tag not '
        "found in the registry https://registry.pay.internal: push the image first or correct the tag; "
        f'release-infra:services.payout-api.blue.image = "{missing}": tag not found in the registry '
        "https://registry.pay.internal: push the image first or correct the tag")


def test_a_registry_failure_stops_at_the_first_image() -> None:
    calls = []

    def down(image: ImageReference) -> str | None:
        calls.append(image)
        raise LookupFailed("cannot reach the registry at https://registry.pay.internal\n(ConnectError)")

    with pytest.raises(ConfigError) as error:
        resolve(settings("dev"), LOOKUP, {}, down)
    assert len(calls) == 1
    assert str(error.value) == (
        f'invalid config for stack "dev": release-infra:services.payin-api.blue.image = "{PAYIN_BLUE}": cannot look '
        "up its digest: cannot reach the registry at https://registry.pay.internal (ConnectError); "
        "release-infra:image_digests = off skips the lookups (offline preview)")


def test_a_digest_in_config_is_checked_against_the_registry() -> None:
    config = set_path(stack_config("dev"), "services.payin-api.blue.image", f"{PAYIN_BLUE}@{A}")
    assert resolve(settings("dev", config), LOOKUP, {}, registry_of({})[0])[("payin-api", "blue")] == A
    with pytest.raises(ConfigError, match=f"payin-api.blue.image = .*: the tag was overwritten: the registry now "
                                          f"resolves it to {B}, not the pinned {A}; tags are immutable"):
        resolve(settings("dev", config), LOOKUP, {}, registry_of({PAYIN_BLUE: B})[0])


def test_a_tag_that_moved_since_the_last_update_stops_the_update() -> None:
    last = previous("dev", {("payin-api", "blue"): A})
    look_up, _ = registry_of({PAYIN_BLUE: B})
    with pytest.raises(ConfigError) as error:
        resolve(settings("dev"), LOOKUP, last, look_up)
    assert f"the tag was overwritten: the last update ran {A} and the registry now resolves it to {B}" \
        in str(error.value)
    assert str(error.value).count("overwritten") == 1  # the other images match their last digests


def test_a_tag_that_moved_is_refused_on_the_other_colour_too() -> None:
    """dev's payin-api blue tag, pinned to A, goes to green beside a new blue build: the same build, so the
    registry moving the tag to B is refused there as well, and with lookups off green carries A."""
    last = previous("dev", {("payin-api", "blue"): A})
    config = set_path(set_path(stack_config("dev"), "services.payin-api.green.image", PAYIN_BLUE),
                      "services.payin-api.blue.image", "registry.pay.internal/payin-api:5e6f7a8-v2.5.0")
    with pytest.raises(ConfigError, match=f"payin-api.green.image = .*: the tag was overwritten: the last update ran "
                                          f"{A} and the registry now resolves it to {B}"):
        resolve(settings("dev", config), LOOKUP, last, registry_of({PAYIN_BLUE: B}, default=C)[0])
    assert resolve(settings("dev", config), OFF, last, lambda image: pytest.fail("looked up"))[
        ("payin-api", "green")] == A


def test_a_digest_that_is_not_sha256_is_refused_with_its_key_path() -> None:
    with pytest.raises(ConfigError, match="payin-api.blue.image = .*: the registry .* answered the digest "
                                          "'sha512:.*'; Deployments are pinned by sha256 digests only"):
        resolve(settings("dev"), LOOKUP, {}, registry_of({PAYIN_BLUE: "sha512:" + "0" * 128})[0])


def test_a_new_tag_on_a_colour_is_not_held_to_the_old_tags_digest() -> None:
    last = previous("dev", {("payin-api", "blue"): A})
    newer = "registry.pay.internal/payin-api:5e6f7a8-v2.5.0"
    config = set_path(stack_config("dev"), "services.payin-api.blue.image", newer)
    assert resolve(settings("dev", config), LOOKUP, last, registry_of({newer: C})[0])[("payin-api", "blue")] == C


def test_off_asks_nothing_keeps_config_digests_and_carries_the_last_updates_digests() -> None:
    last = previous("dev", {("payin-api", "blue"): A, ("payout-api", "blue"): B})
    config = stack_config("dev")
    merchant_green = config["services"]["merchant-api"]["green"]["image"]
    set_path(config, "services.merchant-api.green.image", f"{merchant_green}@{C}")
    set_path(config, "services.payout-api.blue.image", "registry.pay.internal/payout-api:5e6f7a8-v1.9.0")
    pins = resolve(settings("dev", config), OFF, last, lambda image: pytest.fail(f"looked up {image}"))
    # payin-api blue: same tag as last time, same digest; payout-api blue: a new tag, so unpinned.
    assert pins == {("payin-api", "blue"): A, ("merchant-api", "green"): C}
    assert resolve(settings("dev"), OFF, {}, lambda image: pytest.fail("looked up")) == {}


@pytest.mark.parametrize("outputs", [{}, {"services": {}}, {"services": {"payin-api": {"colours": {"blue": {
    "image": PAYIN_BLUE}}}}}, {"services": {"payin-api": {"colours": {"blue": {"image": "garbage", "digest": A}}}}}])
def test_outputs_without_a_usable_digest_carry_nothing(outputs: dict) -> None:
    assert previous_digest(outputs, "payin-api", ImageReference.parse(PAYIN_BLUE)) is None


# What the pins change downstream

def test_outputs_show_the_digest_beside_the_configured_image_and_match_the_schema() -> None:
    outputs = stack_outputs(settings("dev"), digests={("payin-api", "blue"): A})
    blue = outputs.services["payin-api"].colours["blue"]
    assert (blue.image, blue.digest) == (PAYIN_BLUE, A)
    assert outputs.services["payin-api"].colours["green"].digest is None
    document = outputs.model_dump(mode="json")
    jsonschema.validate(document, json.loads(SCHEMA_FILE.read_text()))
    document["services"]["payin-api"]["colours"]["blue"]["digest"] = "sha256:short"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, json.loads(SCHEMA_FILE.read_text()))


def test_retention_protects_the_pinned_digest_as_well_as_the_tag() -> None:
    protected = protected_from_outputs(previous("prod", {("payin-api", "blue"): A}), "prod.json")
    [blue] = [p for p in protected if p.where == "prod payin-api blue"]
    assert (blue.reference.tag, blue.reference.digest) == ("9f8e7d6-v2.2.4", A)


def test_pinning_a_running_tag_is_no_deployment_event() -> None:
    dev = settings("dev")
    before = ReleaseState.of(dev.services["payin-api"])
    after = ReleaseState.of(pin(dev, {("payin-api", "blue"): A, ("payin-api", "green"): B}).services["payin-api"])
    assert after.blue.endswith(A) and classify("payin-api", before, after) == []
    moved = ReleaseState(after.active, blue=after.blue, green="registry.pay.internal/payin-api:5e6f7a8-v2.5.0")
    assert [e.kind.value for e in classify("payin-api", after, moved)] == ["deployment-started"]


def test_other_images_are_pinned_and_reported_under_their_own_key_path() -> None:
    job = ImageReference.parse("registry.pay.internal/release-infra-retention:0000000-v0.1.0")
    pins = resolve(settings("dev"), LOOKUP, {}, registry_of({str(job): C})[0], {("retention", "image"): job})
    assert pins[("retention", "image")] == C and len(pins) == 7
    with pytest.raises(ConfigError) as error:
        resolve(settings("dev"), LOOKUP, {}, registry_of({str(job): None})[0], {("retention", "image"): job})
    assert str(error.value) == (f'invalid config for stack "dev": release-infra:retention.image = "{job}": tag not '
                                "found in the registry https://registry.pay.internal: push the image first or "
                                "correct the tag")
    assert resolve(settings("dev"), OFF, {}, registry_of({})[0], {("retention", "image"): job}) == {}

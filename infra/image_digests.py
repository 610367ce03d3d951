"""Digest pinning's shell: the registry lookups and the last update's outputs, before anything is registered.

The lookups are plain synchronous HTTP (the project's v2 client), so a tag that does not exist fails the preview
with a config error like any other bad value, and no resource is ever registered with an unresolved image.
"""

from __future__ import annotations

from typing import Any, Mapping

from core.errors import ConfigError, Problem
from core.images import ImageReference
from core.registry.digests import KEY, PASSWORD, PREFIX, ImageDigests
from core.registry.pinning import LookupFailed, Pins, resolve
from core.settings import PulledImage, StackSettings
from core.validation import key_path
from release_infra_tools.registry import RegistryClient, RegistryError

# A preview should fail fast on a registry that is down, yet ride out a short blip: ~1 s of retries at most.
ATTEMPTS = 3
BACKOFF_SECONDS = 0.2
TIMEOUT_SECONDS = 10.0
CREDENTIALS_HINT = (f"set {PREFIX}{KEY}.username and the secret {PREFIX}{PASSWORD} "
                    f"(pulumi config set --secret {PASSWORD} ...)")


def pin_images(settings: StackSettings, digests: ImageDigests, previous: Mapping[str, Any],
               others: Mapping[tuple[str, ...], ImageReference] | None = None) -> Pins:
    """Each service and colour's digest, and each of ``others`` (see core.registry.pinning.resolve); with lookups,
    also that the gateway's image is in the registry. Raises ConfigError."""
    if not digests.lookup:
        return resolve(settings, digests, previous, _no_lookups, others)
    password = digests.password.get_secret_value() if digests.password else None
    client = RegistryClient(str(digests.registry_url), digests.username, password, attempts=ATTEMPTS,
                            backoff_seconds=BACKOFF_SECONDS, timeout_seconds=TIMEOUT_SECONDS, workers=2,
                            credentials_hint=CREDENTIALS_HINT)
    try:
        def look_up(image: ImageReference) -> str | None:
            try:
                return client.digest(image.repository, image.tag)
            except RegistryError as error:
                raise LookupFailed(str(error)) from None

        pins = resolve(settings, digests, previous, look_up, others)
        _gateway_image_is_there(settings, client, str(digests.registry_url))
        return pins
    finally:
        client.close()


def _gateway_image_is_there(settings: StackSettings, client: RegistryClient, registry_url: str) -> None:
    """KrakenD's image is a mirror someone pushes by hand, under KrakenD's version tag (so it is not pinned like
    the services' builds): without it every gateway pod of the update would fail to pull, the update half done."""
    image, source, path = settings.gateway.image, f'stack "{settings.stack}"', key_path(PREFIX, ("gateway", "image"))
    pulled = PulledImage.of(image)
    try:
        found = client.digest(pulled.repository, pulled.digest or pulled.tag)  # type: ignore[arg-type]  (one is set)
    except RegistryError as error:
        raise ConfigError(source, [Problem(path, image, f"cannot look it up: {' '.join(str(error).split())}; "
                                                        f"{PREFIX}{KEY} = off skips the lookups (offline preview)")]) \
            from None
    if found is None:
        version = pulled.tag or "<version>"
        raise ConfigError(source, [Problem(path, image, f"not in the registry {registry_url}: mirror KrakenD's image "
                                                        f"there (pull devopsfaith/krakend:{version}, tag it as this "
                                                        "and push it)")])


def _no_lookups(image: ImageReference) -> str | None:
    raise AssertionError(f"lookups are off, yet {image} was looked up")

"""Which digest each Deployment runs: decided before registration from config, the registry and the last update.

For every service and colour, with lookups on, the registry's digest for the configured tag is the pin, unless
it disagrees with a digest the config pins or with the digest the last update ran for the same tag: either means
the tag was overwritten, which the standard forbids, so the update stops rather than silently run other bytes.
With lookups off nothing is asked: a digest in config is used as it is, and an unchanged tag keeps the digest the
last update ran, so an offline preview of a pinned stack shows no change. The registry is behind ``LookUp``, so
this module stays pure.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from core.errors import ConfigError, Problem
from core.images import DIGEST, ImageReference
from core.registry.digests import KEY, PREFIX, ImageDigests
from core.settings import COLOURS, StackSettings
from core.validation import key_path

Pins = dict[tuple[str, ...], str]
"""(service, colour) -> digest for the Deployments; a config key path's parts -> digest for other images."""


class LookupFailed(Exception):
    """The registry could not answer at all (unreachable, credentials refused): every other lookup would fail too."""


LookUp = Callable[[ImageReference], "str | None"]
"""A tag's manifest digest (sha256:...), or None when the registry has no such tag; raises LookupFailed."""


def unpinned(image: ImageReference) -> ImageReference:
    return image.model_copy(update={"digest": None})


def previous_digest(previous: Mapping[str, Any], service: str, image: ImageReference) -> str | None:
    """The digest the last update pinned for this tag of the service, on either colour: a tag that moves to the other
    colour is the same build, and must not come back as other bytes."""
    try:
        colours = previous["services"][service]["colours"]
        outputs = list(colours.values())
    except (KeyError, TypeError, AttributeError):
        return None  # no earlier update
    for output in outputs:
        try:
            ran, digest = ImageReference.parse(output["image"]), output.get("digest")
        except (KeyError, TypeError, ValueError):
            continue  # outputs from before digests were recorded
        if isinstance(digest, str) and unpinned(ran) == unpinned(image):
            return digest
    return None


def resolve(settings: StackSettings, digests: ImageDigests, previous: Mapping[str, Any], look_up: LookUp,
            others: Mapping[tuple[str, ...], ImageReference] | None = None) -> Pins:
    """The digest of every service and colour that has one; raises ConfigError naming each image that fails.

    ``others`` are further images from the private registry, keyed by their config key path (e.g.
    ``("retention", "image")``); their pins come back under the same key. Each distinct tag is looked up once. A
    failure of the registry itself stops at the first image, named with its key path; tags that do not exist and
    overwritten tags are all reported together.
    """
    source = f'stack "{settings.stack}"'
    targets = [((service, colour), ("services", service, colour, "image"), release.image(colour),
                previous_digest(previous, service, release.image(colour)))
               for service, release in settings.services.items() for colour in COLOURS]
    targets += [(parts, parts, image, None) for parts, image in (others or {}).items()]
    if not digests.lookup:  # offline: what the config pins, else what the last update ran for the same tag
        return {key: image.digest or earlier for key, _, image, earlier in targets  # type: ignore[misc]
                if image.digest or earlier}
    pins: Pins = {}
    problems: list[Problem] = []
    found: dict[ImageReference, str | None] = {}
    for key, parts, image, earlier in targets:
        path = key_path(PREFIX, parts)
        tag = unpinned(image)
        if tag not in found:
            try:
                found[tag] = look_up(tag)
            except LookupFailed as error:
                reason = " ".join(str(error).split())
                raise ConfigError(source, [*problems, Problem(path, str(image), (
                    f"cannot look up its digest: {reason}; {PREFIX}{KEY} = off skips the lookups "
                    "(offline preview)"))]) from None
        digest = found[tag]
        refusal = _refusal(image, digest, earlier, digests.registry_url)
        if refusal:
            problems.append(Problem(path, str(image), refusal))
        else:
            pins[key] = digest  # type: ignore[index]
    if problems:
        raise ConfigError(source, problems)
    return pins


def _refusal(image: ImageReference, digest: str | None, earlier: str | None,
             registry_url: str | None) -> str | None:
    """Why the registry's ``digest`` for the image's tag cannot be pinned, or None when it can: a tag the registry
    does not have, or one overwritten since the config pinned it or the last update ran it (tags are immutable)."""
    if digest is None:
        return f"tag not found in the registry {registry_url}: push the image first or correct the tag"
    if not DIGEST.match(digest):
        return (f"the registry {registry_url} answered the digest {digest!r}; Deployments are pinned by sha256 "
                "digests only (push the image with a sha256 digest, or turn lookups off)")
    if image.digest and image.digest != digest:
        return (f"the tag was overwritten: the registry now resolves it to {digest}, not the pinned {image.digest}; "
                "tags are immutable, so push a new tag (or keep running the pinned digest with lookups off)")
    if not image.digest and earlier and earlier != digest:
        return (f"the tag was overwritten: the last update ran {earlier} and the registry now resolves it to "
                f"{digest}; tags are immutable, so push a new tag (or pin {earlier} in config and turn lookups off)")
    return None


def pinned(image: ImageReference, digest: str | None) -> ImageReference:
    return image.model_copy(update={"digest": digest}) if digest else image


def pin(settings: StackSettings, pins: Pins) -> StackSettings:
    """The settings with each pinned image as ``<registry>/<service>:<tag>@<digest>``: what the Deployments run."""
    services = {}
    for service, release in settings.services.items():
        update = {colour: getattr(release, colour).model_copy(update={
            "image": pinned(release.image(colour), pins[(service, colour)])})
            for colour in COLOURS if (service, colour) in pins}
        services[service] = release.model_copy(update=update)
    return settings.model_copy(update={"services": services})

"""Database migrations as the first stage of a deploy (seed 000 §3 and §10, seeds 003-004).

A schema only moves forward. When a colour gets a new image, a Job runs that image's migrations before the
colour's Deployment is updated, and the environment records in its stack outputs the image it last migrated to.
A flip or a rollback changes no image, so it migrates nothing. An image older than the last migration is
refused: its migrations would be a downgrade, and the standard has no down-migrations. A contract release (one
that drops old schema) waits until no colour runs a version from before the matching expand release, so a
rollback to the standby colour never meets a schema it cannot read.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import semver
from pydantic import ValidationError

from core import labels
from core.catalogue import Catalogue, Migrations, ServiceSpec
from core.environment import Manifest
from core.errors import MISSING, ConfigError, Problem
from core.images import ImageReference
from core.registry.pinning import unpinned
from core.pod_security import container_security_context, pod_security_context
from core.settings import COLOURS, DATABASES_KEY, PROJECT, Colour, ServiceRelease, StackSettings
from core.validation import key_path

DATABASE_URL = "DATABASE_URL"  # the key in the Kubernetes Secret and the Job's environment variable
MIGRATION_TIER = "migration"
KEEP_FINISHED_SECONDS = 7 * 24 * 3600  # a finished Job, and its pod's logs, stay this long
BACKOFF_LIMIT = 1  # one retry for a lost node; a failing migration must stop the deploy, not loop
PLACEHOLDER_URL = "postgres://migrations.invalid/{service}"  # rendered manifests never reach a database


@dataclass(frozen=True)
class PreviousRelease:
    """What an environment ran of one service at its last update, as its stack outputs recorded it."""

    images: dict[Colour, ImageReference]
    migrated: ImageReference | None
    job: str | None = None  # the name of the Job that migrated it


@dataclass(frozen=True)
class Migration:
    """The migration an environment has applied for one service, and the Job that applies it."""

    service: str
    image: ImageReference
    job: Manifest
    database_secret: Manifest
    applied: bool = False  # the Job already ran for this image: it stays as it ran (a Job's template cannot change)


def previous_releases(outputs: Mapping[str, Any]) -> dict[str, PreviousRelease]:
    """Read the last update's outputs; fields an older output schema lacks are simply absent.

    A service the stack no longer runs keeps its migration record (stack_outputs carries it): its database outlives
    its Deployments, so running it again must not migrate that database backwards.
    """
    migrated = outputs.get("migrations") or {}
    services = outputs.get("services") or {}
    releases = {}
    for name in [*services, *(name for name in migrated if name not in services)]:
        service = services.get(name) or {}
        images = {colour: image for colour in COLOURS
                  if (image := _image((service.get("colours") or {}).get(colour, {}).get("image")))}
        record = migrated.get(name) or {}
        recorded_job = record.get("job") if isinstance(record.get("job"), str) else None
        releases[name] = PreviousRelease(images, _image(record.get("image")), recorded_job)
    return releases


def plan(settings: StackSettings, catalogue: Catalogue, previous: Mapping[str, PreviousRelease],
         pins: Mapping[tuple[str, ...], str] | None = None) -> dict[str, Migration]:
    """The migration of every service that has migrations; raises ConfigError for a downgrade or early contract.

    ``pins`` ((service, colour) -> digest, core.registry.pinning) are what the Deployments run: the Job runs the
    same bytes as the colour that carries its image.
    """
    migrations, problems = {}, []
    for name, release in settings.services.items():
        spec = catalogue.services[name]
        if spec.migrations is None:
            continue
        image, found = _target(settings, name, release, spec.migrations, previous.get(name))
        problems += found
        digest = next((pins[(name, colour)] for colour in COLOURS
                       if (name, colour) in (pins or {}) and unpinned(release.image(colour)) == unpinned(image)),
                      image.digest)
        runs = image.model_copy(update={"digest": digest})
        before = previous.get(name)
        # The Job that migrated this image keeps its name: a new name is a new Job, which would run the migrations
        # again (names have changed over time: a candidate's carries its pre-release).
        kept = before.job if before and before.migrated and unpinned(before.migrated) == unpinned(image) else None
        migrations[name] = Migration(name, image, job(settings, name, spec, runs, kept),
                                     database_secret(settings, spec), applied=kept is not None)
    if problems:
        raise ConfigError(f'stack "{settings.stack}"', problems)
    return migrations


def _target(settings: StackSettings, name: str, release: ServiceRelease, migrations: Migrations,
            before: PreviousRelease | None) -> tuple[ImageReference, list[Problem]]:
    """The image whose migrations the environment must have applied after this update."""
    ran = before.images if before else {}
    last = (before.migrated if before else None) or _newest(ran.values())
    changed = [colour for colour in COLOURS if ran.get(colour) != release.image(colour)]
    if not changed:
        return last, []  # type: ignore[return-value]  (no previous release means every colour changed)
    target = _newest(release.image(colour) for colour in changed)
    at = _path("services", name, next(c for c in changed if release.image(c) == target), "image")
    problems = [
        Problem(_path("services", name, colour, "image"), str(release.image(colour)),
                f"migrations only move forward: {settings.stack} last migrated {name} to {last.version} "
                f"({last}); an older image cannot run its migrations; deploy {last.version} or later")
        for colour in changed if last is not None and release.image(colour).version < last.version
    ]
    # A release candidate carries its release's migrations: 3.0.0-rc.1 drops what 3.0.0 drops.
    for contract, expand in migrations.contracts.items():
        if _release(target) < semver.Version.parse(contract) or (
                last is not None and _release(last) >= semver.Version.parse(contract)):
            continue
        for colour in COLOURS:
            running = ran.get(colour, release.image(colour))
            if _release(running) < semver.Version.parse(expand):
                problems.append(Problem(at, str(target), (
                    f"{target.version} includes the contract release {contract}, which drops schema that the expand "
                    f"release {expand} replaced; both colours must run {expand} or later first, and {colour} runs "
                    f"{running.version} (a rollback to it would meet a schema it cannot read): put {expand} or "
                    f"later on {colour} and update before this release")))
    return target, problems


def job(settings: StackSettings, name: str, spec: ServiceSpec, image: ImageReference,
        kept_name: str | None = None) -> Manifest:
    """A Job per image: its name carries the build, so a new image is a new Job and a flip keeps the old one.
    ``kept_name``: the name of the Job that already migrated this image."""
    migrations = spec.migrations
    assert migrations is not None
    pod_labels = {**labels.common(settings), labels.APP: name, labels.TIER: MIGRATION_TIER,
                  "app.kubernetes.io/version": str(image.version)}
    container = {
        "name": "migrate",
        "image": str(image),
        "imagePullPolicy": "IfNotPresent",
        "command": list(migrations.command),
        "env": [
            {"name": DATABASE_URL,
             "valueFrom": {"secretKeyRef": {"name": migrations.database_secret, "key": DATABASE_URL}}},
            {"name": "DEPLOY_ENV", "value": settings.environment.value},
            {"name": "SERVICE_VERSION", "value": str(image.version)},
        ],
        "resources": spec.resources.kubernetes(),
        "securityContext": container_security_context(),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    return {
        "metadata": {"name": kept_name or job_name(name, image), "namespace": settings.namespace,
                     "labels": pod_labels},
        "spec": {
            "backoffLimit": BACKOFF_LIMIT,
            "activeDeadlineSeconds": migrations.deadline_seconds,
            "ttlSecondsAfterFinished": KEEP_FINISHED_SECONDS,
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": pod_security_context(),
                    "containers": [container],
                    "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
                },
            },
        },
    }


def job_name(service: str, image: ImageReference) -> str:
    """<service>-migrate-<git-sha>[-<pre-release>], within the 63 characters a Job's name may have. A candidate and
    its release are often built from one commit (b7c8d9e-v1.9.0-rc.1, then b7c8d9e-v1.9.0): each is its own Job, as
    a Job's template cannot change and a finished one may be kept. A service name cut short carries a hash of the
    whole, so that two long names with one beginning never share a Job."""
    prerelease = re.sub(r"[^a-z0-9.-]+", "-", (image.version.prerelease or "").lower())[:12].strip(".-")
    suffix = f"-migrate-{image.git_sha[:7]}" + (f"-{prerelease}" if prerelease else "")
    if len(service) + len(suffix) <= 63:
        return service + suffix
    whole = hashlib.sha256(service.encode()).hexdigest()[:6]
    return service[:63 - len(suffix) - 7].rstrip("-") + f"-{whole}" + suffix


def database_secret(settings: StackSettings, spec: ServiceSpec) -> Manifest:
    """The Secret's metadata; its DATABASE_URL arrives as a Pulumi secret in the component."""
    assert spec.migrations is not None
    return {"metadata": {"name": spec.migrations.database_secret, "namespace": settings.namespace,
                         "labels": labels.common(settings)}, "type": "Opaque"}


def check_databases(settings: StackSettings, catalogue: Catalogue, value: Any, live: bool) -> list[Problem]:
    """The `databases` secret names only services that migrate, and with a cluster it names all of them."""
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        return [Problem(_path(DATABASES_KEY), "[secret]", "must be a map of service -> database URL "
                        f"(pulumi config set --secret --path '{DATABASES_KEY}.<service>' <url>)")]
    migrating = [name for name in settings.services if catalogue.services[name].migrations is not None]
    problems = [Problem(_path(DATABASES_KEY, name), "[secret]",
                        f"only services with migrations need a database URL; these have: {', '.join(migrating)}")
                for name in value if name not in migrating]
    problems += [Problem(_path(DATABASES_KEY, name), "[secret]", "must be a non-empty database URL")
                 for name, url in value.items() if name in migrating and not (isinstance(url, str) and url)]
    if live:
        problems += [Problem(_path(DATABASES_KEY, name), MISSING,
                             f"a secret database URL for {name}'s migrations (pulumi config set --secret --path "
                             f"'{DATABASES_KEY}.{name}' <url>); a stack with a cluster runs them")
                     for name in migrating if name not in value]
    return problems


def _release(image: ImageReference) -> semver.Version:
    """The release an image's migrations belong to: its version without a pre-release (3.0.0-rc.1 -> 3.0.0)."""
    return image.version.finalize_version()


def _newest(images: Iterable[ImageReference]) -> ImageReference | None:
    newest = None
    for image in images:
        if newest is None or image.version > newest.version:
            newest = image
    return newest


def _image(text: Any) -> ImageReference | None:
    try:
        return ImageReference.parse(text) if isinstance(text, str) else None
    except ValidationError:
        return None


def _path(*parts: str) -> str:
    return key_path(f"{PROJECT}:", parts)

"""Retention policy of one repository (one service) in the private registry, seed 000 §11.

The unit is the image, i.e. the manifest digest: deleting is by digest, and a digest takes every tag on it
with it. A digest is kept when any of these holds, whatever its age:

* it is one of the newest ``keep_last`` build images (a digest with at least one ``<git-sha>-v<semver>`` tag);
* it is release-tagged: a build tag of a release version (``a1b2c3d-v2.3.0``; a pre-release such as
  ``-rc.1`` is not one) or a bare ``v<semver>`` tag;
* an environment runs it (a protected reference names its repository and tag, or its digest);
* a kept image index (a multi-platform image) lists it, directly or through a nested index: deleting a
  platform's image under a running index would fail every pull of that index.

Everything else is deleted. "Newest" orders build images by the image config's ``created`` time, newest first;
ties (two builds in the same second) go to the higher semantic version among the image's build tags, then to the
greater digest, so the order is total and the same on every run. An image whose config has no creation time
cannot be ordered: it is kept and does not count towards ``keep_last``; so is one whose time is a reproducible
build's placeholder (before 2000, usually 1970-01-01), which says nothing about when it was pushed. An index has no
config: it takes the newest time of the platform images it lists (attestation manifests, platform unknown/unknown,
say nothing of the build and are left out), and those follow their index rather than count on their own. Platform
images that no tag names (``docker buildx build --platform a,b --push`` pushes them so) are read by digest
(``untagged``) and share their index's verdict. A tag that is neither a build nor a release
tag (``latest``, a branch name) is not something the standard produces: the plan refuses to run rather than guess.

Deleting only images outside the newest ``keep_last`` leaves the newest ``keep_last`` unchanged, so running the
plan again after a partial run deletes exactly what remains of the first plan: the job is idempotent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Iterable, Mapping

import semver
from pydantic import Field

from core.catalogue import Strict
from core.images import RELEASE_TAG, TAG_RULE, ImageReference, build_version

if TYPE_CHECKING:
    from core.settings import StackSettings

DEFAULT_KEEP_LAST = 20
PLACEHOLDER_BEFORE = datetime(2000, 1, 1, tzinfo=timezone.utc)  # reproducible builds write 1970-01-01


class RetentionError(Exception):
    """The registry holds something the policy cannot decide on safely; nothing is deleted."""


class RetentionPolicy(Strict):
    keep_last: int = Field(DEFAULT_KEEP_LAST, ge=1, le=10_000,
                           description="Build images kept per service, newest first; at least 1.")


@dataclass(frozen=True)
class TaggedImage:
    """What the registry says about one tag: the manifest digest it points to and the config's creation time."""

    tag: str
    digest: str
    created: datetime | None
    children: tuple[str, ...] = ()  # an image index: the digests of the platform images it lists
    attestations: tuple[str, ...] = ()  # an index's attestation manifests: they follow it and never date it


@dataclass(frozen=True)
class ListedImage:
    """A manifest an index lists and no tag names, read by digest: it dates its index and shares its verdict."""

    digest: str
    created: datetime | None
    children: tuple[str, ...] = ()  # a nested index
    attestations: tuple[str, ...] = ()


@dataclass(frozen=True)
class ProtectedImage:
    """An image an environment runs; ``where`` says which (e.g. 'prod payin-api blue') for the report."""

    reference: ImageReference
    where: str


@dataclass
class Verdict:
    digest: str
    tags: list[str]
    created: datetime | None
    reasons: list[str] = field(default_factory=list)
    children: tuple[str, ...] = ()
    attestations: tuple[str, ...] = ()
    listed_by: list[str] = field(default_factory=list)  # the indexes that list it, by name
    missing: tuple[str, ...] = ()  # listed manifests the registry does not have: a broken index

    @property
    def keep(self) -> bool:
        return bool(self.reasons)

    @property
    def name(self) -> str:
        return self.tags[0] if self.tags else self.digest[:19]

    @property
    def why_deleted(self) -> str:
        if self.listed_by:
            return f"listed only by the deleted index {', '.join(self.listed_by)}; no environment runs it"
        return "not among the newest builds, no release tag, no environment runs it"


@dataclass
class RepositoryPlan:
    repository: str
    verdicts: list[Verdict]  # newest first, then images without a creation time
    warnings: list[str] = field(default_factory=list)

    @property
    def kept(self) -> list[Verdict]:
        return [verdict for verdict in self.verdicts if verdict.keep]

    @property
    def deleted(self) -> list[Verdict]:
        return [verdict for verdict in self.verdicts if not verdict.keep]

    def surviving_tags(self) -> set[str]:
        return {tag for verdict in self.kept for tag in verdict.tags}

    def deletion_order(self) -> list[Verdict]:
        """Every index before the manifests it lists, then by digest: a run stopped part-way may leave untagged
        platform images behind, never a tagged index that lists deleted ones."""
        by_digest = {verdict.digest: verdict for verdict in self.verdicts}
        heights: dict[str, int] = {}

        def height(verdict: Verdict) -> int:
            if verdict.digest not in heights:
                heights[verdict.digest] = 0  # in progress: content hashes cannot list each other in a cycle
                heights[verdict.digest] = 1 + max((height(by_digest[digest]) for digest in _listed(verdict)
                                                   if digest in by_digest), default=-1)
            return heights[verdict.digest]

        return sorted(self.deleted, key=lambda verdict: (-height(verdict), verdict.digest))


def is_release(tag: str) -> bool:
    """A release's tag: a build of a version without a pre-release, or a bare v<MAJOR.MINOR.PATCH>."""
    version = build_version(tag)
    return bool(RELEASE_TAG.match(tag)) if version is None else not version.prerelease


def tag_kind(tag: str) -> str:
    """'build', 'release' or raises: the two kinds of tag the deployment standard produces."""
    if build_version(tag) is not None:
        return "build"
    if RELEASE_TAG.match(tag):
        return "release"
    raise RetentionError(f"tag '{tag}' is neither a build tag ({TAG_RULE}) nor a release tag (v<MAJOR.MINOR.PATCH>)")


def plan_repository(repository: str, images: Iterable[TaggedImage], protected: Iterable[ProtectedImage],
                    policy: RetentionPolicy = RetentionPolicy(), *,
                    untagged: Iterable[ListedImage] = ()) -> RepositoryPlan:
    """Decide every digest of one repository. Raises RetentionError (deciding nothing) on a tag of unknown kind.

    ``untagged`` are the manifests indexes list that no tag names. Protected references match on repository and
    tag or digest, whatever registry host they name: a reference that protects too much only keeps an image longer.
    """
    by_digest: dict[str, Verdict] = {}
    problems = []
    for image in images:
        try:
            tag_kind(image.tag)
        except RetentionError as error:
            problems.append(str(error))
        verdict = by_digest.setdefault(image.digest, Verdict(image.digest, [], _dated(image.created), [],
                                                             image.children, image.attestations))
        verdict.tags.append(image.tag)
    if problems:
        raise RetentionError(f"repository '{repository}': " + "; ".join(problems) + "; nothing was deleted")
    for listed_image in untagged:
        by_digest.setdefault(listed_image.digest, Verdict(listed_image.digest, [], _dated(listed_image.created), [],
                                                          listed_image.children, listed_image.attestations))
    for verdict in list(by_digest.values()):  # attestation manifests are not read: they only follow their index
        for digest in verdict.attestations:
            by_digest.setdefault(digest, Verdict(digest, [], None))
    for verdict in by_digest.values():
        verdict.tags.sort()
        verdict.missing = tuple(child for child in verdict.children if child not in by_digest)
    for verdict in sorted(by_digest.values(), key=lambda v: v.digest):
        for digest in _listed(verdict):
            if digest in by_digest:
                by_digest[digest].listed_by.append(verdict.name)
    _date_indexes(by_digest)

    ordered = sorted((v for v in by_digest.values() if v.created is not None), key=_newest_first)
    builds = [v for v in ordered if not v.listed_by and any(tag_kind(tag) == "build" for tag in v.tags)]
    for rank, verdict in enumerate(builds[:policy.keep_last], start=1):
        verdict.reasons.append(f"newest build {rank} of {len(builds)} (keep_last {policy.keep_last})")
    for verdict in (v for v in by_digest.values() if v.tags):  # a manifest only indexes name follows them
        if verdict.created is None and not verdict.children:
            verdict.reasons.append("image config has no creation time (or a reproducible build's placeholder), "
                                   "so it cannot be ordered")
        elif verdict.created is None and _missing_under(verdict, by_digest):
            verdict.reasons.append("image index that lists manifests the registry does not have, so it cannot be "
                                   "dated (see the warnings); delete it by digest once no environment runs it")
        elif verdict.created is None:
            verdict.reasons.append("image index whose platform images have no creation time, so it cannot be "
                                   "ordered")
        verdict.reasons += [f"release tag {tag}" for tag in verdict.tags if is_release(tag)]

    by_tag = {tag: verdict for verdict in by_digest.values() for tag in verdict.tags}
    for image in protected:
        reference = image.reference
        if reference.repository != repository:
            continue
        hits = {id(v): v for v in (by_tag.get(reference.tag), by_digest.get(reference.digest or ""))
                if v is not None}
        for verdict in hits.values():
            verdict.reasons.append(f"runs in {image.where}")
    _follow_kept_indexes(by_digest)
    warnings = [f"{repository}: image index {verdict.name} ({verdict.digest}) lists {len(verdict.missing)} "
                f"manifest(s) the registry does not have ({', '.join(d[:19] for d in verdict.missing)}): pulls of "
                "those platforms fail" for verdict in sorted(by_digest.values(), key=lambda v: v.digest)
                if verdict.missing]
    undated = sorted((v for v in by_digest.values() if v.created is None), key=lambda v: v.digest)
    return RepositoryPlan(repository, ordered + undated, warnings)


def _listed(verdict: Verdict) -> tuple[str, ...]:
    return (*verdict.children, *verdict.attestations)


def _date_indexes(by_digest: dict[str, Verdict]) -> None:
    """An index has no config: it is as new as its newest platform image, through nested indexes."""
    dated: dict[str, datetime | None] = {}

    def date(verdict: Verdict) -> datetime | None:
        if not verdict.children or verdict.created is not None:
            return verdict.created
        if verdict.digest not in dated:
            dated[verdict.digest] = None  # in progress: content hashes cannot list each other in a cycle
            times = [date(by_digest[child]) for child in verdict.children if child in by_digest]
            dated[verdict.digest] = max((time for time in times if time is not None), default=None)
        return dated[verdict.digest]

    for verdict in list(by_digest.values()):
        verdict.created = date(verdict)


def _missing_under(verdict: Verdict, by_digest: Mapping[str, Verdict], seen: frozenset[str] = frozenset()) -> bool:
    if verdict.missing:
        return True
    return any(_missing_under(by_digest[child], by_digest, seen | {verdict.digest}) for child in verdict.children
               if child in by_digest and child not in seen)


def _follow_kept_indexes(by_digest: dict[str, Verdict]) -> None:
    """What a kept index lists is kept, down to the last nested index (a fixed point, not one pass)."""
    queue = [verdict for verdict in by_digest.values() if verdict.keep and _listed(verdict)]
    while queue:
        index = queue.pop()
        for digest, what in [(child, "a platform image") for child in index.children] + \
                [(attestation, "an attestation manifest") for attestation in index.attestations]:
            listed = by_digest.get(digest)
            if listed is None:
                continue
            newly_kept = not listed.keep
            listed.reasons.append(f"{what} of the kept index {index.name}")
            if newly_kept and _listed(listed):
                queue.append(listed)


def _dated(created: datetime | None) -> datetime | None:
    """A creation time that orders pushes; a reproducible build's placeholder does not."""
    if created is None:
        return None
    aware = created if created.tzinfo else created.replace(tzinfo=timezone.utc)
    return None if aware < PLACEHOLDER_BEFORE else aware


def _newest_first(verdict: Verdict) -> tuple:
    """Sort key: created descending, then highest build version, then greatest digest (see the module docstring)."""
    versions = [version for version in map(build_version, verdict.tags) if version is not None]
    best = max(versions) if versions else semver.Version(0)
    return (_Descending(verdict.created), _Descending(best), _Descending(verdict.digest))


@dataclass(frozen=True)
class _Descending:
    value: object

    def __lt__(self, other: "_Descending") -> bool:
        return other.value < self.value  # type: ignore[operator]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Descending) and self.value == other.value


def protected_from_outputs(outputs: Mapping[str, object], source: str) -> list[ProtectedImage]:
    """Every image a stack's outputs (``pulumi stack output --json``, schema stack-outputs v1) say it runs.

    Reads only what retention needs, so outputs of a later 1.x schema with more fields still load. Raises
    RetentionError naming the file and key path of anything that is not a valid image reference.
    """
    if not isinstance(outputs, Mapping):
        raise RetentionError(f"{source}: must be a JSON object of stack outputs (pulumi stack output --json)")
    version = outputs.get("schema_version")
    if not isinstance(version, str) or version.split(".")[0] != "1":
        raise RetentionError(f"{source}: schema_version = {version!r}: expected 1.x stack outputs "
                             "(schemas/stack-outputs.v1.schema.json)")
    environment = outputs.get("environment", "?")
    services = outputs.get("services")
    if not isinstance(services, Mapping) or not services:
        raise RetentionError(f"{source}: services must be a non-empty object; a stack runs at least one service")
    protected = []
    for service, output in services.items():
        colours = output.get("colours") if isinstance(output, Mapping) else None
        if not isinstance(colours, Mapping) or not colours:
            raise RetentionError(f"{source}: services.{service}.colours must be an object of colours")
        for colour, spec in colours.items():
            text = spec.get("image") if isinstance(spec, Mapping) else None
            image = protected_image(text, f"{environment} {service} {colour}",
                                    f"{source}: services.{service}.colours.{colour}.image")
            digest = spec.get("digest")  # since 1.1: what the Deployment is pinned to, protected with the tag
            if isinstance(digest, str) and image.reference.digest is None:
                image = ProtectedImage(image.reference.model_copy(update={"digest": digest}), image.where)
            protected.append(image)
    return protected


def protected_image(text: object, where: str, key: str) -> ProtectedImage:
    """One image reference that must survive; raises RetentionError naming ``key`` and the value."""
    try:
        return ProtectedImage(ImageReference.parse(text), where)  # type: ignore[arg-type]
    except ValueError as error:
        message = error.errors()[0]["msg"].removeprefix("Value error, ") if hasattr(error, "errors") else str(error)
        raise RetentionError(f"{key} = {text!r}: {message}") from None


def protected_from_settings(settings: "StackSettings") -> list[ProtectedImage]:
    """Both colours of every service of one stack: the standby may be rolled back to at any moment."""
    return [ProtectedImage(release.image(colour), f"{settings.environment.value} {service} {colour}")
            for service, release in settings.services.items() for colour in ("blue", "green")]

"""Image references of the deployment standard: ``<registry>/<service>:<git-sha>-v<semver>[@sha256:<digest>]``.

A tag of that form names one build of one commit, so it can be treated as immutable; ``latest``, a bare
``v2.3.0`` or a branch name can be moved and are refused for anything an environment runs.
"""

from __future__ import annotations

import re
from typing import Any

import semver
from pydantic import BaseModel, ConfigDict, model_validator

_HOST = r"(?:localhost|[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)+)(?::[0-9]{1,5})?"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
REPOSITORY = rf"{_COMPONENT}(?:/{_COMPONENT})*"  # the registry's grammar of a repository path: lowercase components
# Anchored with \Z, not $: $ also matches before a trailing newline, which would end up in a digest or tag.
_REFERENCE = re.compile(
    rf"^(?P<registry>{_HOST})/(?P<repository>{REPOSITORY})"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?(?:@(?P<digest>[^@]+))?\Z"
)
_BUILD_TAG = re.compile(r"^(?P<git_sha>[0-9a-f]{7,40})-v(?P<version>.+)\Z")
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}\Z")
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?\Z")
RELEASE_TAG = re.compile(r"^v(?P<version>\d+\.\d+\.\d+)\Z")

TAG_RULE = "<registry>/<service>:<git-sha>-v<semver>, e.g. registry.example.com/payin-api:a1b2c3d-v2.3.0"


def is_registry_host(host: str) -> str:
    """Validator for a registry host name with an optional port."""
    if not re.fullmatch(_HOST, host):
        raise ValueError("must be a registry host name, e.g. registry.example.com or registry.example.com:5000")
    return host


def build_version(tag: str) -> semver.Version | None:
    """The semantic version of a build tag (<git-sha>-v<semver>), or None when the tag is not one."""
    match = _BUILD_TAG.match(tag)
    if match is None or not semver.Version.is_valid(match["version"]):
        return None
    return semver.Version.parse(match["version"])


def _tag_problem(tag: str | None) -> str | None:
    """Why a tag is not a build tag of the standard, or None when it is one."""
    if tag is None:
        return f"has no tag; expected {TAG_RULE}"
    match = _BUILD_TAG.match(tag)
    if match is None:
        if tag == "latest":
            return f"'latest' is a mutable tag; expected {TAG_RULE}"
        if RELEASE_TAG.match(tag) or semver.Version.is_valid(tag):
            return f"a bare version tag '{tag}' can be moved to another build; expected {TAG_RULE}"
        return f"tag '{tag}' is not <git-sha>-v<semver> (git-sha: 7 to 40 lowercase hex digits); expected {TAG_RULE}"
    if not semver.Version.is_valid(match["version"]):
        return f"'{match['version']}' in tag '{tag}' is not a semantic version (MAJOR.MINOR.PATCH); expected {TAG_RULE}"
    if not _LABEL_VALUE.match(match["version"]):
        return (f"version '{match['version']}' in tag '{tag}' cannot be a Kubernetes label value (at most 63 "
                "characters, starting and ending with a letter or digit), and the Deployments and migration Jobs "
                "carry it as app.kubernetes.io/version")
    return None


class ImageReference(BaseModel):
    """A parsed, validated image reference; build it from its string form."""

    model_config = ConfigDict(frozen=True)

    registry: str
    repository: str
    tag: str
    digest: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, value: Any) -> Any:
        if not isinstance(value, str):
            raise ValueError(f"must be a string: {TAG_RULE}")
        match = _REFERENCE.match(value)
        if match is None:
            if "/" not in value.split("@")[0]:
                raise ValueError(f"names no registry; images come from the private registry: expected {TAG_RULE}")
            raise ValueError(f"not an image reference; expected {TAG_RULE}")
        problem = _tag_problem(match["tag"])
        if problem:
            raise ValueError(problem)
        digest = match["digest"]
        if digest is not None and not DIGEST.match(digest):
            raise ValueError("digest must be sha256: followed by 64 lowercase hex digits")
        return {"registry": match["registry"], "repository": match["repository"], "tag": match["tag"], "digest": digest}

    @classmethod
    def parse(cls, text: str) -> "ImageReference":
        return cls.model_validate(text)

    @property
    def service(self) -> str:
        """The last path component of the repository: the service the image was built for."""
        return self.repository.rsplit("/", 1)[-1]

    @property
    def git_sha(self) -> str:
        return _BUILD_TAG.match(self.tag)["git_sha"]  # type: ignore[index]

    @property
    def version(self) -> semver.Version:
        return build_version(self.tag)  # type: ignore[return-value]  (parsing checked the tag)

    def __str__(self) -> str:
        text = f"{self.registry}/{self.repository}:{self.tag}"
        return f"{text}@{self.digest}" if self.digest else text

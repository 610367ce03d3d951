"""Image references: the standard's build tags are accepted, mutable tags never."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st
from pydantic import ValidationError

from core.images import DIGEST as DIGEST_RULE, RELEASE_TAG, ImageReference, build_version

DIGEST = "sha256:" + "ab" * 32


def test_parses_the_standards_example() -> None:
    image = ImageReference.parse("registry.pay.internal/payin-api:a1b2c3d-v2.3.0")
    assert (image.registry, image.repository, image.service) == ("registry.pay.internal", "payin-api", "payin-api")
    assert (image.git_sha, str(image.version), image.digest) == ("a1b2c3d", "2.3.0", None)


def test_keeps_a_digest_a_port_and_a_nested_repository() -> None:
    text = f"registry.pay.internal:5000/payments/payout-api:0123456789abcdef0123456789abcdef01234567-v1.9.0-rc.1@{DIGEST}"
    image = ImageReference.parse(text)
    assert image.registry == "registry.pay.internal:5000"
    assert image.service == "payout-api"
    assert image.digest == DIGEST
    assert str(image.version) == "1.9.0-rc.1"
    assert str(image) == text


@pytest.mark.parametrize(("text", "reason"), [
    ("registry.pay.internal/payin-api:latest", "'latest' is a mutable tag"),
    ("registry.pay.internal/payin-api:v2.3.0", "a bare version tag 'v2.3.0'"),
    ("registry.pay.internal/payin-api:2.3.0", "a bare version tag '2.3.0'"),
    ("registry.pay.internal/payin-api:stable", "tag 'stable' is not <git-sha>-v<semver>"),
    ("registry.pay.internal/payin-api:a1b2c3d-2.3.0", "tag 'a1b2c3d-2.3.0' is not <git-sha>-v<semver>"),
    ("registry.pay.internal/payin-api:a1b2c3d-v2.3.0.1", "'2.3.0.1' in tag"),
    ("registry.pay.internal/payin-api", "has no tag"),
    ("payin-api:a1b2c3d-v2.3.0", "names no registry"),
    (f"registry.pay.internal/payin-api:a1b2c3d-v2.3.0@md5:{'a' * 32}", "digest must be sha256:"),
    ("registry.pay.internal/payin-api:a1b2c3d-v2.3.0@@x", "not an image reference"),
    # Kubernetes refuses these as the app.kubernetes.io/version label: ending in '-', longer than 63 characters.
    ("registry.pay.internal/payin-api:a1b2c3d-v3.2.0-rc-", "version '3.2.0-rc-' in tag .* cannot be a Kubernetes label"),
    (f"registry.pay.internal/payin-api:a1b2c3d-v3.2.0-{'feature' * 9}", "cannot be a Kubernetes label value"),
    # `$` matches before a trailing newline: it must not slip into the digest, nor be dropped from the tag.
    (f"registry.pay.internal/payin-api:a1b2c3d-v2.3.0@{DIGEST}\n", "digest must be sha256:"),
    ("registry.pay.internal/payin-api:a1b2c3d-v2.3.0\n", "not an image reference"),
])
def test_refuses_what_is_not_a_build_tag(text: str, reason: str) -> None:
    with pytest.raises(ValidationError, match=reason.replace("[", r"\[")):
        ImageReference.parse(text)


@given(sha=st.text("0123456789abcdef", min_size=7, max_size=40),
       version=st.tuples(st.integers(0, 999), st.integers(0, 999), st.integers(0, 999)))
def test_every_build_tag_round_trips(sha: str, version: tuple[int, int, int]) -> None:
    text = f"registry.pay.internal/payin-api:{sha}-v{'.'.join(map(str, version))}"
    image = ImageReference.parse(text)
    assert str(image) == text
    assert image.git_sha == sha
    assert tuple(image.version.to_tuple()[:3]) == version


def test_a_trailing_newline_makes_no_build_tag_release_tag_or_digest() -> None:
    """Tag lists and files hand over lines; each rule must hold for the whole string, as the registry's does."""
    assert build_version("a1b2c3d-v2.3.0\n") is None
    assert RELEASE_TAG.match("v2.3.0\n") is None
    assert DIGEST_RULE.match(f"{DIGEST}\n") is None
    assert str(build_version("a1b2c3d-v2.3.0")) == "2.3.0" and RELEASE_TAG.match("v2.3.0")

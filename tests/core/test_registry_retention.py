"""Retention policy: exact survivors for the seed's cases, and 600 random scenarios against an independent oracle."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest

from core.images import ImageReference
from core.registry.retention import (ListedImage, ProtectedImage, RetentionError, RetentionPolicy, TaggedImage,
                                     plan_repository, protected_from_outputs, protected_from_settings)
from core.outputs import stack_outputs
from tests.support.stacks import STACKS, settings

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def digest(n: int) -> str:
    return f"sha256:{n:064x}"


def builds(count: int, start: int = 0) -> list[TaggedImage]:
    """``count`` candidate builds (not releases), the i-th created i minutes after T0 (so higher i is newer)."""
    return [TaggedImage(f"{i:07x}-v1.0.{i}-rc.1", digest(i), T0 + timedelta(minutes=i))
            for i in range(start, start + count)]


def protect(text: str, where: str = "prod payin-api blue") -> ProtectedImage:
    return ProtectedImage(ImageReference.parse(text), where)


def survivors(images: list[TaggedImage], protected: list[ProtectedImage] = (), keep_last: int = 20) -> set[str]:
    return plan_repository("payin-api", images, protected, RetentionPolicy(keep_last=keep_last)).surviving_tags()


def tags(indices) -> set[str]:
    return {f"{i:07x}-v1.0.{i}-rc.1" for i in indices}


@pytest.mark.parametrize("count", [0, 1, 19, 20])
def test_twenty_or_fewer_build_images_all_stay(count):
    assert survivors(builds(count)) == tags(range(count))


def test_the_21st_newest_goes():
    assert survivors(builds(21)) == tags(range(1, 21))


def test_release_tags_keep_old_images():
    images = builds(30) + [TaggedImage("v1.0.2", digest(2), T0 + timedelta(minutes=2)),
                           TaggedImage("v0.9.0", digest(999), T0 - timedelta(days=400))]
    assert survivors(images) == tags(range(10, 30)) | tags([2]) | {"v1.0.2", "v0.9.0"}


def test_an_old_image_that_prod_standby_runs_stays():
    images = builds(25)
    plan = plan_repository("payin-api", images, [protect("registry.pay.internal/payin-api:0000003-v1.0.3-rc.1")])
    assert plan.surviving_tags() == tags(range(5, 25)) | tags([3])
    [kept] = [v for v in plan.kept if v.digest == digest(3)]
    assert kept.reasons == ["runs in prod payin-api blue"]


def test_a_protected_reference_of_another_repository_protects_nothing_here():
    elsewhere = protect("registry.pay.internal/payout-api:0000000-v1.0.0-rc.1")
    assert survivors(builds(21), [elsewhere]) == tags(range(1, 21))


def test_a_protected_digest_keeps_its_image_whatever_the_tag():
    reference = f"registry.pay.internal/payin-api:fffffff-v9.9.9@{digest(0)}"
    assert survivors(builds(21), [protect(reference)]) == tags(range(21))


def test_two_tags_on_one_digest_where_one_is_kept_keep_the_digest():
    # 0000000-v1.0.0-rc.1 is the oldest build and would go; the release tag on the same digest keeps both tags.
    images = builds(21) + [TaggedImage("v1.0.0", digest(0), T0)]
    assert survivors(images) == tags(range(21)) | {"v1.0.0"}


def test_ties_in_creation_time_go_to_the_higher_version_then_the_greater_digest():
    images = [TaggedImage("aaaaaaa-v1.0.0-rc.1", digest(1), T0), TaggedImage("bbbbbbb-v1.1.0-rc.1", digest(2), T0),
              TaggedImage("ccccccc-v1.1.0-rc.1", digest(3), T0)]
    plan = plan_repository("payin-api", images, [], RetentionPolicy(keep_last=1))
    assert [v.tags for v in plan.verdicts] == [["ccccccc-v1.1.0-rc.1"], ["bbbbbbb-v1.1.0-rc.1"],
                                               ["aaaaaaa-v1.0.0-rc.1"]]
    assert plan.surviving_tags() == {"ccccccc-v1.1.0-rc.1"}


def test_an_image_without_a_creation_time_is_kept_and_not_counted():
    images = builds(21) + [TaggedImage("ddddddd-v0.0.1-rc.1", digest(500), None)]
    plan = plan_repository("payin-api", images, [])
    assert plan.surviving_tags() == tags(range(1, 21)) | {"ddddddd-v0.0.1-rc.1"}


def test_a_build_of_a_release_version_is_release_tagged_and_kept_past_twenty_newer_builds():
    """Seed 000 §11: a1b2c3d-v2.3.0 is the release image; its candidates (-rc.N) count only among the newest."""
    images = [TaggedImage("a1b2c3d-v0.9.0", digest(900), T0 - timedelta(days=400))] + builds(21)
    plan = plan_repository("payin-api", images, [])
    assert plan.surviving_tags() == {"a1b2c3d-v0.9.0"} | tags(range(1, 21))
    [release] = [v for v in plan.kept if v.digest == digest(900)]
    assert release.reasons == ["release tag a1b2c3d-v0.9.0"]


def test_a_reproducible_builds_placeholder_time_orders_nothing():
    """Every image dated 1970-01-01: the newest push would rank by version and digest, and a hotfix on an older line
    pushed last would go at once. Such images are kept, as undated ones are."""
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    images = [TaggedImage(f"{i:07x}-v2.5.0-rc.{i}", digest(i), epoch) for i in range(21)]
    images.append(TaggedImage("fffffff-v2.4.1-rc.1", digest(99), epoch))
    plan = plan_repository("payin-api", images, [])
    assert plan.deleted == []
    assert all("cannot be ordered" in verdict.reasons[0] for verdict in plan.kept)


def test_a_creation_time_of_exactly_2000_is_a_real_time_and_orders_its_image():
    """docs/registry.md: a placeholder is a time before 2000. 2000-01-01T00:00Z itself orders its image like any
    other time: it is the older of two builds and goes at keep_last 1, rather than being kept as undated."""
    images = [TaggedImage("0000000-v1.0.0-rc.1", digest(0), datetime(2000, 1, 1, tzinfo=timezone.utc)),
              TaggedImage("0000001-v1.0.1-rc.1", digest(1), T0)]
    plan = plan_repository("payin-api", images, [], RetentionPolicy(keep_last=1))
    assert [v.tags for v in plan.deleted] == [["0000000-v1.0.0-rc.1"]]
    assert plan.surviving_tags() == {"0000001-v1.0.1-rc.1"}


def test_naive_and_aware_creation_times_order_together_with_naive_taken_as_utc():
    """A config time without a zone is UTC (as the registry client reads it); mixing both kinds must not crash."""
    images = [TaggedImage("0000000-v1.0.0-rc.1", digest(0), datetime(2026, 1, 1, 9)),
              TaggedImage("0000001-v1.0.1-rc.1", digest(1), datetime(2026, 1, 1, 10, tzinfo=timezone.utc)),
              TaggedImage("0000002-v1.0.2-rc.1", digest(2), datetime(2026, 1, 1, 11))]
    plan = plan_repository("payin-api", images, [], RetentionPolicy(keep_last=2))
    assert [v.tags for v in plan.deleted] == [["0000000-v1.0.0-rc.1"]]
    assert all(v.created.tzinfo is not None for v in plan.verdicts)

def test_the_platform_images_of_a_kept_index_stay_and_follow_it():
    """`docker manifest create`: each platform pushed under its own tag, then the index under the release's. The
    index has no config and runs in prod by digest; its platform images must outlive twenty newer builds."""
    amd, arm, index = digest(801), digest(802), digest(800)
    old = T0 - timedelta(days=30)
    images = [TaggedImage("a1b2c3d-v2.3.0-rc.1-amd64", amd, old), TaggedImage("a1b2c3d-v2.3.0-rc.1-arm64", arm, old),
              TaggedImage("a1b2c3d-v2.3.0-rc.1", index, None, (amd, arm))] + builds(20)
    running = protect(f"registry.pay.internal/payin-api:a1b2c3d-v2.3.0-rc.1@{index}")
    plan = plan_repository("payin-api", images, [running])
    assert plan.deleted == []
    [child] = [v for v in plan.kept if v.digest == amd]
    assert child.reasons == ["a platform image of the kept index a1b2c3d-v2.3.0-rc.1"]
    [dated] = [v for v in plan.kept if v.digest == index]
    assert dated.created == old and dated.reasons == ["runs in prod payin-api blue"]  # not among the newest 20
    # Not running: the index is the 21st build and goes, with its platform images.
    assert {v.digest for v in plan_repository("payin-api", images, []).deleted} == {index, amd, arm}


def test_a_platform_image_with_its_own_build_tag_takes_no_place_among_the_newest_builds():
    """`docker manifest create` pushes each platform under a build tag of its own, but it is part of its index's
    build, not a build of its own. At keep_last 2 the index and the older build are the two newest: counted, the
    platform image would take the second place and the older build would go."""
    amd, index, older = digest(801), digest(800), digest(1)
    images = [TaggedImage("a1b2c3d-v2.3.0-rc.1-amd64", amd, T0),
              TaggedImage("a1b2c3d-v2.3.0-rc.1", index, None, (amd,)),
              TaggedImage("0000001-v1.0.1-rc.1", older, T0 - timedelta(days=1))]
    plan = plan_repository("payin-api", images, [], RetentionPolicy(keep_last=2))
    assert plan.deleted == []
    why = {v.digest: v.reasons for v in plan.verdicts}
    assert why == {index: ["newest build 1 of 2 (keep_last 2)"],
                   amd: ["a platform image of the kept index a1b2c3d-v2.3.0-rc.1"],
                   older: ["newest build 2 of 2 (keep_last 2)"]}


def buildx_index(tag: str = "a1b2c3d-v2.3.0-rc.1", old: datetime = T0 - timedelta(days=30)):
    """`docker buildx build --platform linux/amd64,linux/arm64 --push`: the index is tagged, its platform images
    and their attestation manifest (platform unknown/unknown) are not; the attestation is not read."""
    index, amd, arm, attestation = digest(800), digest(801), digest(802), digest(803)
    return (TaggedImage(tag, index, None, (amd, arm), (attestation,)),
            [ListedImage(amd, old), ListedImage(arm, old - timedelta(minutes=1))], (index, amd, arm, attestation))


def test_an_index_of_untagged_platform_images_is_dated_by_them_and_they_share_its_verdict():
    image, untagged, (index, amd, arm, attestation) = buildx_index()
    plan = plan_repository("payin-api", [image] + builds(20), [], untagged=untagged)
    [verdict] = [v for v in plan.verdicts if v.digest == index]
    assert verdict.created == T0 - timedelta(days=30)  # the newest platform image's time
    assert {v.digest for v in plan.deleted} == {index, amd, arm, attestation}  # the 21st build goes, whole
    assert [v.why_deleted for v in plan.deleted if v.digest == amd] == [
        "listed only by the deleted index a1b2c3d-v2.3.0-rc.1; no environment runs it"]
    running = protect(f"registry.pay.internal/payin-api:a1b2c3d-v2.3.0-rc.1@{index}")
    kept = plan_repository("payin-api", [image] + builds(20), [running], untagged=untagged)
    assert kept.deleted == []
    why = {v.digest: v.reasons for v in kept.verdicts}
    assert why[arm] == ["a platform image of the kept index a1b2c3d-v2.3.0-rc.1"]
    assert why[attestation] == ["an attestation manifest of the kept index a1b2c3d-v2.3.0-rc.1"]


def test_an_attestation_manifest_never_dates_its_index():
    image, untagged, (index, *_, attestation) = buildx_index()
    newest = ListedImage(attestation, T0 + timedelta(days=1))  # were it read, it would make the index the newest
    plan = plan_repository("payin-api", [image] + builds(20), [], untagged=untagged + [newest])
    assert index in {v.digest for v in plan.deleted}


def test_an_index_is_deleted_before_what_it_lists_whatever_the_digests():
    """A run stopped between two deletions must leave no tagged index listing a deleted manifest: outer index,
    then the inner index it lists, then platform images, although their digests sort the other way."""
    leaf, inner, outer = digest(1), digest(2), digest(3)
    images = [TaggedImage("a1b2c3d-v2.3.0-rc.1", outer, None, (inner,)), *builds(20, start=10)]
    plan = plan_repository("payin-api", images, [], untagged=[ListedImage(inner, None, (leaf,)),
                                                             ListedImage(leaf, T0)])
    order = [v.digest for v in plan.deletion_order()]
    assert order == [outer, inner, leaf]


def test_an_index_listing_manifests_the_registry_lacks_is_reported_not_silently_kept():
    """Its platform images deleted by hand (or by a run before indexes went first): it cannot be dated."""
    image = TaggedImage("a1b2c3d-v2.3.0-rc.1", digest(800), None, (digest(801), digest(802)))
    plan = plan_repository("payin-api", [image] + builds(20), [])
    [verdict] = plan.kept[-1:]
    assert verdict.digest == digest(800) and verdict.reasons == [
        "image index that lists manifests the registry does not have, so it cannot be dated (see the warnings); "
        "delete it by digest once no environment runs it"]
    assert plan.warnings == [
        f"payin-api: image index a1b2c3d-v2.3.0-rc.1 ({digest(800)}) lists 2 manifest(s) the registry does not "
        f"have ({digest(801)[:19]}, {digest(802)[:19]}): pulls of those platforms fail"]


def test_protection_reaches_every_level_of_nested_indexes():
    leaf, inner, outer = digest(801), digest(802), digest(800)
    images = [TaggedImage("a1b2c3d-v2.3.0-rc.1-amd64", leaf, T0 - timedelta(days=30)),
              TaggedImage("a1b2c3d-v2.3.0-rc.1-inner", inner, None, (leaf,)),
              TaggedImage("a1b2c3d-v2.3.0-rc.1", outer, None, (inner,))] + builds(20)
    running = protect(f"registry.pay.internal/payin-api:a1b2c3d-v2.3.0-rc.1@{outer}")
    plan = plan_repository("payin-api", images, [running], RetentionPolicy(keep_last=3))
    why = {v.digest: v.reasons for v in plan.verdicts}
    assert why[leaf] == ["a platform image of the kept index a1b2c3d-v2.3.0-rc.1-inner"]
    assert why[inner] == ["a platform image of the kept index a1b2c3d-v2.3.0-rc.1"]
    assert {v.digest for v in plan_repository("payin-api", images, [], RetentionPolicy(keep_last=3)).deleted} \
        >= {leaf, inner, outer}


@pytest.mark.parametrize("tag", ["latest", "main", "a1b2c3d-v2", "v2.3", "A1B2C3D-v1.0.0"])
def test_a_tag_of_unknown_kind_stops_the_plan(tag):
    with pytest.raises(RetentionError, match=f"tag '{tag}' is neither a build tag .* nothing was deleted"):
        plan_repository("payin-api", builds(25) + [TaggedImage(tag, digest(777), T0)], [])


@pytest.mark.parametrize("keep_last", [0, -1])
def test_a_policy_keeping_fewer_than_one_is_refused(keep_last):
    with pytest.raises(ValueError, match="greater than or equal to 1"):
        RetentionPolicy(keep_last=keep_last)


def test_the_four_stacks_protect_both_colours_of_every_service():
    protected = [p for stack in STACKS for p in protected_from_settings(settings(stack))]
    from_outputs = [p for stack in STACKS
                    for p in protected_from_outputs(stack_outputs(settings(stack)).model_dump(mode="json"), stack)]
    assert sorted(map(str, (p.reference for p in protected))) == sorted(map(str, (p.reference for p in from_outputs)))
    assert "prod payout-api green" in {p.where for p in protected}
    assert len(protected) == sum(2 * len(settings(stack).services) for stack in STACKS)


def test_outputs_with_a_malformed_image_name_the_key():
    outputs = stack_outputs(settings("prod")).model_dump(mode="json")
    outputs["services"]["payin-api"]["colours"]["blue"]["image"] = "registry.pay.internal/payin-api:latest"
    with pytest.raises(RetentionError, match=r"prod.json: services.payin-api.colours.blue.image = "
                                             r"'registry.pay.internal/payin-api:latest': 'latest' is a mutable tag"):
        protected_from_outputs(outputs, "prod.json")


@pytest.mark.parametrize("outputs, message", [
    ([], "must be a JSON object of stack outputs (pulumi stack output --json)"),
    ({"schema_version": "2.0", "services": {}},
     "schema_version = '2.0': expected 1.x stack outputs (schemas/stack-outputs.v1.schema.json)"),
    ({"schema_version": "1.0", "services": {}},
     "services must be a non-empty object; a stack runs at least one service"),
    ({"schema_version": "1.0", "services": {"payin-api": {}}},
     "services.payin-api.colours must be an object of colours"),
])
def test_outputs_of_the_wrong_shape_are_refused(outputs, message):
    with pytest.raises(RetentionError) as raised:
        protected_from_outputs(outputs, "x.json")
    assert str(raised.value) == f"x.json: {message}"


# --- the oracle: the seed's rule written per tag and pairwise, with no sorting and no verdict objects ---

def oracle_survivors(images: list[TaggedImage], protected: list[ProtectedImage], keep_last: int) -> set[str]:
    def is_build(tag):
        sha, _, version = tag.partition("-v")
        return bool(version) and all(c in "0123456789abcdef" for c in sha) and 7 <= len(sha) <= 40

    def version_key(version):  # only -rc.N pre-releases occur here; a release ranks above its candidates
        release, _, candidate = version.partition("-rc.")
        return (*(int(part) for part in release.split(".")), 0 if candidate else 1, int(candidate or 0))

    def is_release(tag):
        return not is_build(tag) or "-rc." not in tag

    digests = {image.digest for image in images}
    tags_of = {d: [i.tag for i in images if i.digest == d] for d in digests}
    created = {image.digest: image.created for image in images}
    rank_key = {d: (created[d], max(version_key(t.partition("-v")[2]) for t in tags_of[d] if is_build(t)), d)
                for d in digests if created[d] is not None and any(is_build(t) for t in tags_of[d])}
    keep = set()
    for d in digests:
        if created[d] is None or any(is_release(t) for t in tags_of[d]):
            keep.add(d)
        elif sum(1 for other in rank_key if rank_key[other] > rank_key[d]) < keep_last:
            keep.add(d)
        for p in protected:
            if p.reference.repository == "payin-api" and (p.reference.tag in tags_of[d] or p.reference.digest == d):
                keep.add(d)
    return {image.tag for image in images if image.digest in keep}


def random_scenario(rng: random.Random) -> tuple[list[TaggedImage], list[ProtectedImage], int]:
    images, used = [], set()
    for n in range(rng.randint(0, 45)):
        when = None if rng.random() < 0.03 else T0 + timedelta(minutes=rng.randint(0, 30))  # many ties
        for _ in range(rng.choice([1, 1, 1, 2, 3])):
            if rng.random() < 0.15:
                tag = f"v{rng.randint(0, 3)}.{rng.randint(0, 3)}.{rng.randint(0, 3)}"
            else:
                candidate = f"-rc.{rng.randint(1, 12)}" if rng.random() < 0.85 else ""  # mostly candidates
                version = f"{rng.randint(0, 2)}.{rng.randint(0, 9)}.{rng.randint(0, 9)}{candidate}"
                tag = f"{rng.getrandbits(28):07x}-v{version}"
            if tag not in used:  # a tag names one digest
                used.add(tag)
                images.append(TaggedImage(tag, digest(n), when))
    protected = []
    for image in rng.sample(images, k=min(len(images), rng.randint(0, 4))):
        if image.tag.startswith("v"):
            continue
        repository = rng.choice(["payin-api", "payin-api", "payout-api"])
        pin = f"@{image.digest}" if rng.random() < 0.3 else ""
        protected.append(protect(f"registry.pay.internal/{repository}:{image.tag}{pin}"))
    if rng.random() < 0.2:  # a protected digest whose tag is unknown here
        protected.append(protect(f"registry.pay.internal/payin-api:eeeeeee-v7.7.7@{digest(rng.randint(0, 45))}"))
    return images, protected, rng.randint(1, 25)


def test_the_random_scenarios_exercise_deletion_and_protection():
    """The sweep below proves something only if its scenarios delete, and protect what would otherwise go."""
    deleting = saved_by_protection = 0
    for seed in range(600):
        images, protected, keep_last = random_scenario(random.Random(seed))
        survivors = oracle_survivors(images, protected, keep_last)
        deleting += bool({image.tag for image in images} - survivors)
        saved_by_protection += bool(survivors - oracle_survivors(images, [], keep_last))
    assert deleting >= 300 and saved_by_protection >= 50, (deleting, saved_by_protection)


@pytest.mark.parametrize("seed", range(600))
def test_random_scenarios_agree_with_the_oracle(seed):
    images, protected, keep_last = random_scenario(random.Random(seed))
    plan = plan_repository("payin-api", images, protected, RetentionPolicy(keep_last=keep_last))
    expected = oracle_survivors(images, protected, keep_last)
    assert plan.surviving_tags() == expected
    deleted = {tag for verdict in plan.deleted for tag in verdict.tags}
    assert deleted == {image.tag for image in images} - expected
    assert not {v.digest for v in plan.deleted} & {v.digest for v in plan.kept}

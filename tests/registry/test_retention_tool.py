"""release-infra-retention against a real registry: exact survivors, dry run, idempotence and a random sweep."""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from core.outputs import stack_outputs
from release_infra_tools.retention import main
from tests.core.test_registry_retention import oracle_survivors, random_scenario
from tests.registry.harness import MANIFEST_V2, Image, Registry, push, push_all, push_index
from tests.support.stacks import set_path, settings, stack_config

T0 = datetime(2025, 6, 1, tzinfo=timezone.utc)


def build(repository: str, i: int, *extra: str) -> Image:
    """The i-th candidate build (not a release) of a repository, created i hours after T0 (higher i is newer)."""
    return Image(repository, (tag(i), *extra), T0 + timedelta(hours=i))


def tag(i: int) -> str:
    return f"{i:07x}-v1.{i // 100}.{i % 100}-rc.1"


def retain(registry: Registry, outputs: list[Path], *extra: str, capsys=None) -> dict:
    code = main(["--registry", registry.url, *(arg for f in outputs for arg in ("--protect-outputs", str(f))),
                 "--json", *extra])
    assert code == 0
    return json.loads(capsys.readouterr().out) if capsys else {}


@pytest.mark.parametrize("count, survivors", [(5, range(5)), (20, range(20)), (21, range(1, 21))])
def test_the_newest_twenty_builds_survive(registry, stack_output_files, capsys, count, survivors):
    push_all(registry, [build("ledger-sync", i) for i in range(count)])
    report = retain(registry, stack_output_files, "--apply", capsys=capsys)
    assert registry.tags() == {"ledger-sync": {tag(i) for i in survivors}}
    assert report["deleted"] == count - len(survivors)


def test_release_tags_keep_old_images(registry, stack_output_files, capsys):
    images = [build("ledger-sync", i) for i in range(30)]
    images[3] = build("ledger-sync", 3, "v1.0.3")  # a release tag on an old build
    images.append(Image("ledger-sync", ("v0.9.0",), T0 - timedelta(days=900)))  # a release-only image
    push_all(registry, images)
    retain(registry, stack_output_files, "--apply", capsys=capsys)
    assert registry.tags() == {"ledger-sync": {tag(i) for i in range(10, 30)} | {tag(3), "v1.0.3", "v0.9.0"}}


def test_an_old_image_that_prod_standby_runs_survives(registry, stack_output_files, tmp_path, capsys):
    prod = set_path(stack_config("prod"), "services.merchant-api.blue.image",
                    "registry.pay.internal/merchant-api:0badc0d-v2.9.0-rc.2")  # blue is prod's standby of merchant-api
    assert settings("prod", prod).services["merchant-api"].standby_colour == "blue"
    stack_output_files[3].write_text(json.dumps(stack_outputs(settings("prod", prod)).model_dump(mode="json")))
    push_all(registry, [Image("merchant-api", ("0badc0d-v2.9.0-rc.2",), T0 - timedelta(days=365))]
             + [build("merchant-api", i) for i in range(25)])
    report = retain(registry, stack_output_files, "--apply", capsys=capsys)
    assert registry.tags() == {"merchant-api": {tag(i) for i in range(5, 25)} | {"0badc0d-v2.9.0-rc.2"}}
    [kept] = [k for k in report["repositories"]["merchant-api"]["keep"] if k["tags"] == ["0badc0d-v2.9.0-rc.2"]]
    assert kept["why"] == ["runs in prod merchant-api blue"]


def test_the_platform_images_of_a_running_multi_platform_image_survive(registry, stack_output_files, capsys):
    """Each platform pushed under its own tag, then the index under the build's: prod's standby runs the index, and
    twenty newer builds must not take the platform images out from under it."""
    prod = set_path(stack_config("prod"), "services.merchant-api.blue.image",
                    "registry.pay.internal/merchant-api:a1b2c3d-v2.3.0-rc.1")
    stack_output_files[3].write_text(json.dumps(stack_outputs(settings("prod", prod)).model_dump(mode="json")))
    old = T0 - timedelta(days=30)
    with registry.client() as http:
        platforms = {arch: push(http, Image("merchant-api", (f"a1b2c3d-v2.3.0-rc.1-{arch}",), old, label=arch))
                     for arch in ("amd64", "arm64")}
        push_index(http, "merchant-api", "a1b2c3d-v2.3.0-rc.1", platforms)
    push_all(registry, [build("merchant-api", i) for i in range(20)])
    report = retain(registry, stack_output_files, "--apply", capsys=capsys)
    assert registry.tags() == {"merchant-api": {tag(i) for i in range(20)} | {
        "a1b2c3d-v2.3.0-rc.1", "a1b2c3d-v2.3.0-rc.1-amd64", "a1b2c3d-v2.3.0-rc.1-arm64"}}
    with registry.client() as http:
        for digest in platforms.values():
            assert http.get(f"/v2/merchant-api/manifests/{digest}", headers={"Accept": MANIFEST_V2}).status_code == 200
    why = {tuple(k["tags"]): k["why"] for k in report["repositories"]["merchant-api"]["keep"]}
    assert why[("a1b2c3d-v2.3.0-rc.1-amd64",)] == ["a platform image of the kept index a1b2c3d-v2.3.0-rc.1"]


def test_two_tags_on_one_digest_where_one_is_kept_both_stay(registry, stack_output_files, capsys):
    # The oldest build also carries the tag prod's payin-api blue (standby) runs: the digest, and so both tags, stay.
    push_all(registry, [build("payin-api", 0, "9f8e7d6-v2.2.4")] + [build("payin-api", i) for i in range(1, 22)])
    retain(registry, stack_output_files, "--apply", capsys=capsys)
    assert registry.tags() == {"payin-api": {tag(i) for i in range(2, 22)} | {tag(0), "9f8e7d6-v2.2.4"}}


def test_a_thousand_tags_over_ten_repositories(registry, stack_output_files, capsys):
    images, expected = [], {}
    for r in range(10):
        repository = f"service-{r}"
        count = 95 + r  # 95..104 builds: 1,045 tags with the release tags
        for i in range(count):
            release = (f"v1.{i // 100}.{i % 100}",) if i % 17 == 0 else ()
            images.append(build(repository, i, *release))
        expected[repository] = {tag(i) for i in range(count - 20, count)} \
            | {t for i in range(0, count, 17) for t in (tag(i), f"v1.{i // 100}.{i % 100}")}
    push_all(registry, images)
    assert sum(len(image.tags) for image in images) >= 1000
    report = retain(registry, stack_output_files, "--apply", capsys=capsys)
    assert registry.tags() == expected
    assert report["examined_tags"] == sum(len(image.tags) for image in images)


def test_a_dry_run_deletes_nothing_and_says_why(registry, stack_output_files, capsys):
    push_all(registry, [build("ledger-sync", i) for i in range(22)])
    report = retain(registry, stack_output_files, capsys=capsys)
    assert registry.tags() == {"ledger-sync": {tag(i) for i in range(22)}}
    plan = report["repositories"]["ledger-sync"]
    assert report["mode"] == "dry-run" and report["deleted"] == 0
    assert [image["tags"] for image in plan["delete"]] == [[tag(1)], [tag(0)]]
    assert plan["keep"][0]["why"] == ["newest build 1 of 22 (keep_last 20)"]


def test_a_second_run_changes_nothing(registry, stack_output_files, capsys):
    push_all(registry, [build("ledger-sync", i) for i in range(25)])
    retain(registry, stack_output_files, "--apply", capsys=capsys)
    report = retain(registry, stack_output_files, "--apply", capsys=capsys)
    assert report["deleted"] == 0 and registry.tags() == {"ledger-sync": {tag(i) for i in range(5, 25)}}


def test_most_end_to_end_scenarios_delete_something():
    """Against the real registry a scenario that deletes nothing proves little: most of the twelve must delete."""
    deleting = 0
    for seed in range(12):
        images, protected, keep_last = random_scenario(random.Random(10_000 + seed))
        survivors = oracle_survivors(images, [p for p in protected if p.reference.digest is None], keep_last)
        deleting += bool({image.tag for image in images} - survivors)
    assert deleting >= 8, deleting


@pytest.mark.parametrize("seed", range(12))
def test_random_scenarios_end_to_end_agree_with_the_oracle(registry, tmp_path, capsys, seed):
    rng = random.Random(10_000 + seed)
    images, protected, keep_last = random_scenario(rng)
    by_digest: dict[str, list] = {}
    for image in images:
        by_digest.setdefault(image.digest, []).append(image)
    push_all(registry, [Image("payin-api", tuple(i.tag for i in group), group[0].created, label=d)
                        for d, group in by_digest.items()])
    outputs = tmp_path / "protect.json"
    # The scenario's digests are labels, not the registry's: protect by tag only (digest pins are policy-tested).
    tags_protected = [p for p in protected if p.reference.digest is None]
    outputs.write_text(json.dumps({"schema_version": "1.0", "environment": "prod", "services": {
        f"s{n}": {"colours": {"blue": {"image": str(p.reference)}}} for n, p in enumerate(tags_protected)}
        or {"none": {"colours": {"blue": {"image": "registry.pay.internal/nothing:0000000-v0.0.0"}}}}}))
    retain(registry, [outputs], "--apply", "--require-environments", "prod", "--keep-last", str(keep_last),
           capsys=capsys)
    expected = oracle_survivors(images, tags_protected, keep_last)
    assert registry.tags().get("payin-api", set()) == expected

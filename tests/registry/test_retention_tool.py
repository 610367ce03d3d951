"""release-infra-retention against a real registry: exact survivors, dry run, idempotence and a random sweep."""

from __future__ import annotations

import hashlib
import json
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest

from core.outputs import stack_outputs
from core.registry.retention import RetentionPolicy, protected_image
from release_infra_tools.registry import RegistryClient
from release_infra_tools.retention import _text, main, run
from tests.core.test_registry_retention import oracle_survivors, random_scenario
from tests.registry.harness import (MANIFEST_V2, OCI_INDEX, Image, Registry, manifest_exists, push, push_all,
                                    push_index)
from tests.registry.token_service import flaky_proxy
from tests.support.stacks import set_path, settings, stack_config

T0 = datetime(2025, 6, 1, tzinfo=timezone.utc)


def build(repository: str, i: int, *extra: str) -> Image:
    """The i-th candidate build (not a release) of a repository, created i hours after T0 (higher i is newer)."""
    return Image(repository, (tag(i), *extra), T0 + timedelta(hours=i))


def tag(i: int) -> str:
    return f"{i:07x}-v1.{i // 100}.{i % 100}-rc.1"


def retain(registry: Registry, outputs: list[Path], *extra: str, capsys=None, url: str | None = None) -> dict:
    code = main(["--registry", url or registry.url, *(arg for f in outputs for arg in ("--protect-outputs", str(f))),
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


def push_buildx(registry: Registry, repository: str, tag: str, created: datetime) -> tuple[str, list[str]]:
    """What `docker buildx build --platform linux/amd64,linux/arm64 --push` leaves: an index under the tag, listing
    two platform images and an attestation manifest, none of them tagged. Returns the index and the three."""
    with registry.client() as http:
        listed = [push(http, Image(repository, (), created - timedelta(minutes=n), label=f"{tag}-{arch}"))
                  for n, arch in enumerate(("amd64", "arm64"))]
        attestation = push(http, Image(repository, (), None, label=f"{tag}-provenance"))
        index = push_index(http, repository, tag, dict(zip(("amd64", "arm64"), listed)), [attestation])
    return index, [*listed, attestation]


def test_a_buildx_image_is_dated_by_its_untagged_platform_images_and_goes_with_them(registry, tmp_path, capsys):
    index, listed = push_buildx(registry, "payin-api", "a1b2c3d-v2.3.0-rc.1", T0 - timedelta(days=300))
    push_all(registry, [build("payin-api", i) for i in range(20)])
    prod = tmp_path / "prod.json"
    prod.write_text(json.dumps({"schema_version": "1.0", "environment": "prod", "services": {"payin-api": {
        "colours": {"blue": {"image": f"registry.pay.internal/payin-api:a1b2c3d-v2.3.0-rc.1@{index}"}}}}}))
    with flaky_proxy(registry.url, []) as proxy:  # passes everything through; lists what the tool asked
        report = retain(registry, [prod], "--apply", "--require-environments", "prod", capsys=capsys,
                        url=proxy.url)
    assert report["deleted"] == 0 and all(manifest_exists(registry, "payin-api", d) for d in [index, *listed])
    why = {k["digest"]: k["why"] for k in report["repositories"]["payin-api"]["keep"]}
    assert why[index] == ["runs in prod payin-api blue"]
    assert why[listed[0]] == ["a platform image of the kept index a1b2c3d-v2.3.0-rc.1"]
    assert why[listed[2]] == ["an attestation manifest of the kept index a1b2c3d-v2.3.0-rc.1"]
    assert ("GET", f"/v2/payin-api/manifests/{listed[0]}") in proxy.requests  # read by digest, for its date
    assert not any(listed[2] in path for _, path in proxy.requests)  # an attestation is never read
    # No longer running: the oldest of 21 builds goes, and its untagged manifests with it (none left behind).
    report = retain(registry, [], "--apply", "--require-environments", "", capsys=capsys)
    assert registry.tags() == {"payin-api": {tag(i) for i in range(20)}}
    assert not any(manifest_exists(registry, "payin-api", d) for d in [index, *listed])
    assert report["deleted"] == 4
    assert report["examined_tags"] == 21


def test_an_oci_index_is_read_and_kept_like_a_docker_manifest_list(registry, capsys):
    """buildx with the containerd image store pushes OCI indexes; the registry hides one from a client that does not
    accept it (HTTP 404), so the tool and these tests' view of the registry ask with the same Accept list."""
    with registry.client() as http:
        platforms = {arch: push(http, Image("payin-api", (), T0 - timedelta(days=300), label=arch))
                     for arch in ("amd64", "arm64")}
        index = push_index(http, "payin-api", "a1b2c3d-v2.3.0", platforms, media_type=OCI_INDEX)  # a release
    push_all(registry, [build("payin-api", i) for i in range(21)])
    report = retain(registry, [], "--apply", "--require-environments", "", capsys=capsys)
    assert report["deleted"] == 1
    assert registry.tags() == {"payin-api": {tag(i) for i in range(1, 21)} | {"a1b2c3d-v2.3.0"}}
    assert all(manifest_exists(registry, "payin-api", digest) for digest in [index, *platforms.values()])


def test_a_nested_buildx_image_is_read_to_the_last_level_and_kept_or_deleted_whole(registry, tmp_path, capsys):
    """An outer index lists an untagged inner index, which lists the untagged platform images: each level is read by
    digest, the running outer index keeps all of it, and once it no longer runs it goes whole, outer first."""
    with registry.client() as http:
        platforms = {arch: push(http, Image("payin-api", (), T0 - timedelta(days=300), label=arch))
                     for arch in ("amd64", "arm64")}
        inner = push_index(http, "payin-api", None, platforms)
        outer = push_index(http, "payin-api", "a1b2c3d-v2.3.0-rc.1", {"amd64": inner})
    push_all(registry, [build("payin-api", i) for i in range(20)])
    prod = tmp_path / "prod.json"
    prod.write_text(json.dumps({"schema_version": "1.0", "environment": "prod", "services": {"payin-api": {
        "colours": {"blue": {"image": "registry.pay.internal/payin-api:a1b2c3d-v2.3.0-rc.1"}}}}}))
    report = retain(registry, [prod], "--apply", "--require-environments", "prod", capsys=capsys)
    why = {k["digest"]: k["why"] for k in report["repositories"]["payin-api"]["keep"]}
    assert why[platforms["arm64"]] == [f"a platform image of the kept index {inner[:19]}"]
    assert report["deleted"] == 0
    with flaky_proxy(registry.url, []) as proxy:
        report = retain(registry, [], "--apply", "--require-environments", "", capsys=capsys, url=proxy.url)
    assert [path.rpartition("/")[2] for method, path in proxy.requests if method == "DELETE"][:2] == [outer, inner]
    assert report["deleted"] == 4
    assert not any(manifest_exists(registry, "payin-api", d) for d in [outer, inner, *platforms.values()])


def test_a_failure_part_way_never_leaves_an_index_listing_deleted_manifests(registry, tmp_path, capsys):
    """The index goes first: the DELETE that fails is the index's, and its platform images are all still there.
    (In digest order a platform image sorting before its index went first.) A rerun finishes the job."""
    old = T0 - timedelta(days=300)
    with registry.client() as http:
        platforms = {arch: push(http, Image("payin-api", (f"a1b2c3d-v2.3.0-rc.1-{arch}",), old, label=arch))
                     for arch in ("amd64", "arm64", "s390x", "ppc64le")}  # some sort before the index, surely
        index = push_index(http, "payin-api", "a1b2c3d-v2.3.0-rc.1", platforms)
    assert min(platforms.values()) < index
    push_all(registry, [build("payin-api", i) for i in range(20)])
    with flaky_proxy(registry.url, [503] * 2, only=lambda method, path: method == "DELETE") as proxy:
        code = main(["--registry", proxy.url, "--apply", "--json", "--require-environments", "", "--attempts", "2",
                     "--backoff-seconds", "0.01"])
    assert code == 1
    assert [path for method, path in proxy.requests if method == "DELETE"] == [
        f"/v2/payin-api/manifests/{index}"] * 2
    assert all(manifest_exists(registry, "payin-api", digest) for digest in [index, *platforms.values()])
    capsys.readouterr()
    retain(registry, [], "--apply", "--require-environments", "", capsys=capsys)
    assert registry.tags() == {"payin-api": {tag(i) for i in range(20)}}


def test_a_run_stopped_after_deleting_an_index_lists_its_untagged_manifests_for_deleting_by_digest(registry, capsys):
    """No tag leads a rerun to the untagged platform images of a deleted index: the report names each by digest."""
    index, listed = push_buildx(registry, "payin-api", "a1b2c3d-v2.3.0-rc.1", T0 - timedelta(days=300))
    push_all(registry, [build("payin-api", i) for i in range(20)])
    first_after_index = min(listed)  # the index goes first, then what it lists in digest order
    with flaky_proxy(registry.url, [503] * 2, only=lambda method, path: path.endswith(first_after_index)) as proxy:
        code = main(["--registry", proxy.url, "--apply", "--json", "--require-environments", "", "--attempts", "2",
                     "--backoff-seconds", "0.01"])
    assert code == 1
    report = json.loads(capsys.readouterr().out)
    assert report["deleted"] == 1 and not manifest_exists(registry, "payin-api", index)
    assert all(manifest_exists(registry, "payin-api", digest) for digest in listed)
    assert report["orphaned"] == [{"repository": "payin-api", "digest": digest} for digest in sorted(listed)]
    assert f"left untagged: payin-api@{listed[0]}: only deleted indexes listed it, so no rerun reaches it; delete it " \
           f"by digest (DELETE /v2/payin-api/manifests/{listed[0]})" in _text(report).splitlines()
    retain(registry, [], "--apply", "--require-environments", "", capsys=capsys)  # a rerun does not see them
    assert all(manifest_exists(registry, "payin-api", digest) for digest in listed)


def test_an_index_listing_manifests_the_registry_lacks_is_reported(registry, capsys):
    old = T0 - timedelta(days=300)
    with registry.client() as http:
        platforms = {arch: push(http, Image("payin-api", (f"a1b2c3d-v2.3.0-rc.1-{arch}",), old, label=arch))
                     for arch in ("amd64", "arm64")}
        index = push_index(http, "payin-api", "a1b2c3d-v2.3.0-rc.1", platforms)
        assert http.delete(f"/v2/payin-api/manifests/{platforms['amd64']}").status_code == 202  # by hand
        assert http.delete(f"/v2/payin-api/manifests/{platforms['arm64']}").status_code == 202
    assert main(["--registry", registry.url, "--require-environments", ""]) == 0
    output = capsys.readouterr().out
    assert (f"warning: payin-api: image index a1b2c3d-v2.3.0-rc.1 ({index}) lists 2 manifest(s) the registry does "
            "not have (") in output
    assert "image index that lists manifests the registry does not have, so it cannot be dated" in output


def test_a_release_tag_moved_onto_a_planned_image_during_the_run_saves_it(registry, capsys, monkeypatch):
    """Between the scan and the deletions someone points the movable v1.0.0 at the oldest build: the tag names are
    the same, their digests are not; the repository is planned again and that build, now a release, stays."""
    push_all(registry, [build("payin-api", i) for i in range(24)] + [build("payin-api", 24, "v1.0.0")])
    listed, calls = RegistryClient.tags, {"payin-api": 0}

    def tags(client: RegistryClient, repository: str) -> list[str] | None:
        calls[repository] += 1
        if calls[repository] == 2:  # the listing just before the deletions
            with registry.client() as http:
                oldest = http.get(f"/v2/payin-api/manifests/{tag(0)}", headers={"Accept": MANIFEST_V2}).content
                assert http.put("/v2/payin-api/manifests/v1.0.0", content=oldest,
                                headers={"Content-Type": MANIFEST_V2}).status_code == 201
        return listed(client, repository)

    monkeypatch.setattr(RegistryClient, "tags", tags)
    report = retain(registry, [], "--apply", "--require-environments", "", capsys=capsys)
    assert registry.tags() == {"payin-api": {tag(i) for i in range(5, 25)} | {tag(0), "v1.0.0"}}
    assert report["deleted"] == 4
    assert "payin-api: tags changed or moved during the run; planned again" in report["warnings"]


def test_a_registry_failure_mid_apply_still_reports_what_was_deleted(registry, capsys):
    push_all(registry, [build(repository, i) for repository in ("ledger-sync", "payin-api") for i in range(23)])
    with flaky_proxy(registry.url, [503] * 2,
                     only=lambda method, path: method == "DELETE" and "/payin-api/" in path) as proxy:
        code = main(["--registry", proxy.url, "--apply", "--json", "--require-environments", "", "--attempts", "2",
                     "--backoff-seconds", "0.01"])
    output = capsys.readouterr()
    assert code == 1
    report = json.loads(output.out)
    assert report["deleted"] == 3 and report["failed"].startswith("DELETE /v2/payin-api/manifests/sha256:")
    assert [image["status"] for image in report["repositories"]["ledger-sync"]["delete"]] == ["deleted"] * 3
    assert [image["status"] for image in report["repositories"]["payin-api"]["delete"]] == ["not deleted"] * 3
    *deletions, error = output.err.splitlines()
    assert sorted(deletions) == sorted(f"release-infra-retention: deleted ledger-sync@{image['digest']} "
                                       f"({image['tags'][0]})"
                                       for image in report["repositories"]["ledger-sync"]["delete"])
    assert error.startswith("release-infra-retention: error: DELETE /v2/payin-api/manifests/sha256:")
    assert error.endswith("kept answering HTTP 503 after 2 attempts; stopped after 3 deletion(s), reported above (a "
                          "rerun finishes the job)")
    assert len(registry.tags()["ledger-sync"]) == 20 and len(registry.tags()["payin-api"]) == 23


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


def test_a_protected_tag_listed_only_on_the_second_tag_page_is_kept():
    """The registry pages tag lists (Link: rel="next"). Prod runs the oldest build under a second tag that only page 2
    lists: reading page 1 alone, the plan would see an old build no one runs and delete the digest prod runs."""
    running = "0badc0d-v2.9.0-rc.2"
    pages = {"": [tag(i) for i in range(4)], tag(3): [running]}
    created = {tag(i): T0 + timedelta(hours=i) for i in range(4)}
    image_of = {fake_digest(name): name for name in created} | {fake_digest(name, "config"): name for name in created}
    deleted = []

    def registry(request: httpx.Request) -> httpx.Response:
        path, method = request.url.path, request.method
        if path == "/v2/_catalog":
            return httpx.Response(200, json={"repositories": ["payin-api"]})
        if path == "/v2/payin-api/tags/list":
            last = request.url.params.get("last", "")
            more = {"Link": f'</v2/payin-api/tags/list?last={tag(3)}&n=1000>; rel="next"'} if not last else {}
            return httpx.Response(200, json={"name": "payin-api", "tags": pages[last]}, headers=more)
        reference = path.rpartition("/")[2]
        image = tag(0) if reference == running else image_of.get(reference, reference)  # one digest, two tags
        if method == "DELETE":
            deleted.append(image)
            return httpx.Response(202)
        if "/manifests/" in path:
            return httpx.Response(200, headers={"Docker-Content-Digest": fake_digest(image)}, json={
                "schemaVersion": 2, "mediaType": MANIFEST_V2, "config": {"digest": fake_digest(image, "config")}})
        return httpx.Response(200, json={"created": created[image].isoformat()})

    client = RegistryClient("https://registry.example", transport=httpx.MockTransport(registry))
    prod = protected_image(f"registry.pay.internal/payin-api:{running}", "prod payin-api blue", "test")
    result = run(client, RetentionPolicy(keep_last=2), [prod], apply=True)
    assert deleted == [tag(1)]
    [kept] = [v for v in result.plans[0].kept if running in v.tags]
    assert kept.tags == [tag(0), running] and kept.reasons == ["runs in prod payin-api blue"]


def fake_digest(name: str, kind: str = "manifest") -> str:
    return "sha256:" + hashlib.sha256(f"{kind}:{name}".encode()).hexdigest()

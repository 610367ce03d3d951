"""The open-source distribution registry (Debian `docker-registry`) on a loopback port, and a pusher of small images.

Images are pushed the way a build would, over the v2 API: the config blob (POST then PUT an upload), then the
manifest under its tag (or, for an image with no tag, under its digest, as buildx pushes a multi-platform image's
platform images). No layers: retention reads only manifests and configs. Used by tests and the benchmark.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Iterable, Iterator

import httpx
import yaml
from release_infra_tools.registry import MANIFEST_TYPES
from tests.support.servers import free_port, listens, stop

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("docker-registry", "apache2-utils")  # the registry; htpasswd for the auth tests
MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
CONFIG_V1 = "application/vnd.docker.container.image.v1+json"
# What the product accepts: the registry answers 404 for an OCI index to a client that does not accept one, which a
# narrower list would count as a deleted image.
ACCEPT = {"Accept": ", ".join(MANIFEST_TYPES)}


def install() -> str:
    """The registry binary, installed by the project's own idempotent script when missing (CI included)."""
    subprocess.run([str(ROOT / "scripts" / "debian-packages.sh"), *PACKAGES], check=True, timeout=1800)
    binary = shutil.which("docker-registry") or shutil.which("registry")
    if binary is None:
        raise RuntimeError("docker-registry not on PATH after scripts/debian-packages.sh docker-registry")
    return binary


@dataclass
class Registry:
    url: str
    storage: Path
    process: subprocess.Popen
    log: Path
    auth: tuple[str, str] | None = None

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, auth=self.auth, timeout=30,
                            limits=httpx.Limits(max_connections=16, max_keepalive_connections=16))

    def tags(self) -> dict[str, set[str]]:
        """repository -> tags whose manifest still resolves, read straight from the registry."""
        with self.client() as http:
            result = {}
            for repository in _all(http, "/v2/_catalog", "repositories"):
                tags = _all(http, f"/v2/{repository}/tags/list", "tags")
                alive = {tag for tag in tags
                         if http.head(f"/v2/{repository}/manifests/{tag}", headers=ACCEPT).status_code == 200}
                if alive:
                    result[repository] = alive
            return result


def _all(http: httpx.Client, path: str, key: str) -> list[str]:
    items, url = [], f"{path}?n=1000"  # the registry's catalogue page limit
    while url:
        response = http.get(url)
        if response.status_code == 404:
            return items
        assert response.status_code == 200, response.text
        items += response.json().get(key) or []
        url = response.links.get("next", {}).get("url")
    return items


@contextmanager
def running_registry(binary: str, workdir: Path, htpasswd: Path | None = None,
                     auth: dict | None = None) -> Iterator[Registry]:
    """A registry on 127.0.0.1 with deletion enabled and filesystem storage under ``workdir``; ``auth`` is the
    registry's own ``auth`` section (e.g. token), ``htpasswd`` a shorthand for Basic auth from that file."""
    port = free_port()
    storage = workdir / "storage"
    config = {
        "version": 0.1,
        "log": {"level": "warn"},
        "storage": {"filesystem": {"rootdirectory": str(storage)}, "delete": {"enabled": True},
                    "cache": {"blobdescriptor": "inmemory"}},
        "http": {"addr": f"127.0.0.1:{port}", "secret": "test-only-secret"},
    }
    if htpasswd is not None:
        config["auth"] = {"htpasswd": {"realm": "release-infra-test", "path": str(htpasswd)}}
    if auth is not None:
        config["auth"] = auth
    config_file = workdir / "registry.yml"
    config_file.write_text(yaml.safe_dump(config))
    log = workdir / "registry.log"
    with log.open("wb") as output:
        process = subprocess.Popen([binary, "serve", str(config_file)], stdout=output, stderr=subprocess.STDOUT,
                                   env={**os.environ, "OTEL_TRACES_EXPORTER": "none"})
    registry = Registry(f"http://127.0.0.1:{port}", storage, process, log)
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"registry exited with {process.returncode}: {log.read_text()[-2000:]}")
            try:
                if httpx.get(registry.url + "/v2/", timeout=1).status_code in (200, 401) and listens(process, port):
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"registry not up within 30 s: {log.read_text()[-2000:]}")
            time.sleep(0.05)
        yield registry
    finally:
        stop(process)


@dataclass(frozen=True)
class Image:
    repository: str
    tags: tuple[str, ...]
    created: datetime | None
    label: str = ""  # makes configs of otherwise equal images differ

    def config(self) -> bytes:
        body = {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []},
                "config": {"Labels": {"build": self.label or ",".join(self.tags)}}}
        if self.created is not None:
            body["created"] = self.created.isoformat().replace("+00:00", "Z")
        return json.dumps(body, sort_keys=True).encode()


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def push(http: httpx.Client, image: Image) -> str:
    """Push one image under all its tags, or by digest when it has none; returns the manifest digest."""
    config = image.config()
    config_digest = digest_of(config)
    if http.head(f"/v2/{image.repository}/blobs/{config_digest}").status_code != 200:
        started = http.post(f"/v2/{image.repository}/blobs/uploads/")
        assert started.status_code == 202, started.text
        location = started.headers["location"]
        separator = "&" if "?" in location else "?"  # the upload URL carries the registry's own state in its query
        done = http.put(f"{location}{separator}digest={config_digest}", content=config,
                        headers={"Content-Type": "application/octet-stream"})
        assert done.status_code == 201, done.text
    manifest = json.dumps({"schemaVersion": 2, "mediaType": MANIFEST_V2,
                           "config": {"mediaType": CONFIG_V1, "size": len(config), "digest": config_digest},
                           "layers": []}).encode()
    for reference in image.tags or (digest_of(manifest),):
        stored = http.put(f"/v2/{image.repository}/manifests/{reference}", content=manifest,
                          headers={"Content-Type": MANIFEST_V2})
        assert stored.status_code == 201, stored.text
    return digest_of(manifest)


def push_index(http: httpx.Client, repository: str, tag: str | None, platforms: dict[str, str],
               attestations: Iterable[str] = (), media_type: str = MANIFEST_LIST) -> str:
    """A multi-platform image: an index listing each platform's pushed image (architecture -> manifest digest, an
    index for a nested one) under ``tag`` (`docker manifest create`/`push`), or by digest when ``tag`` is None; and,
    as buildx adds them, ``attestations`` (pushed manifests listed as platform unknown/unknown). A Docker manifest
    list unless ``media_type`` is OCI_INDEX. Returns its digest."""
    listed = []
    for platform, digest in [*platforms.items(), *(("unknown", digest) for digest in attestations)]:
        stored = http.get(f"/v2/{repository}/manifests/{digest}", headers=ACCEPT)
        assert stored.status_code == 200, stored.text
        listed.append({"mediaType": stored.headers["content-type"], "digest": digest, "size": len(stored.content),
                       "platform": {"architecture": platform, "os": "unknown" if platform == "unknown" else "linux"}})
        if platform == "unknown":
            listed[-1]["annotations"] = {"vnd.docker.reference.type": "attestation-manifest"}
    index = json.dumps({"schemaVersion": 2, "mediaType": media_type, "manifests": listed}).encode()
    stored = http.put(f"/v2/{repository}/manifests/{tag or digest_of(index)}", content=index,
                      headers={"Content-Type": media_type})
    assert stored.status_code == 201, stored.text
    return digest_of(index)


def manifest_exists(registry: Registry, repository: str, digest: str) -> bool:
    """Whether the registry still has the manifest, tagged or not."""
    with registry.client() as http:
        return http.head(f"/v2/{repository}/manifests/{digest}", headers=ACCEPT).status_code == 200


def push_all(registry: Registry, images: Iterable[Image], workers: int = 16) -> list[str]:
    with registry.client() as http, ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda image: push(http, image), images))

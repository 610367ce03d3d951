"""A small client of the registry HTTP API v2 (distribution spec): just what retention needs.

httpx does the HTTP, tenacity the retries; this module adds the registry's auth challenge flow (Basic, or
Bearer tokens from the realm the registry names), Link-header pagination and the manifest media types.
Credentials go only into Authorization headers; no message or exception here ever contains them. The token
service a Bearer challenge names receives them (Basic) to issue a token: it must be https, or loopback http.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterator
from urllib.parse import quote, urljoin

import httpx
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from core.errors import without_credentials
from core.registry.digests import PLAIN_HTTP_RULE, is_loopback

MANIFEST_TYPES = (
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.index.v1+json",
)
PAGE_SIZE = 1000
RETENTION_CREDENTIALS = "set RETENTION_REGISTRY_USERNAME and RETENTION_REGISTRY_PASSWORD or --credentials-file"
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')
BEARER_TOKEN = re.compile(r"[\x21-\x7e]+")  # what an Authorization header can carry: visible ASCII, no space


class RegistryError(Exception):
    """The registry could not be used as asked; the message says what to fix and never holds a credential."""


class _Retryable(Exception):
    def __init__(self, response: httpx.Response, server: str = "the registry"):
        self.response = response
        self.server = server


@dataclass(frozen=True)
class Manifest:
    digest: str
    config_digest: str | None  # None for an image index (multi-platform), which has no config of its own
    children: tuple[str, ...] = ()  # an image index: the digests of the platform images it lists
    attestations: tuple[str, ...] = ()  # an image index: its attestation manifests (platform unknown/unknown)


class ChallengeAuth(httpx.Auth):
    """Answers the registry's 401 challenge: Basic with the credentials, or Bearer with a token fetched from the
    challenge's realm for its service and scope. Tokens are kept per repository and sent up front afterwards."""

    requires_response_body = True

    def __init__(self, username: str | None, password: str | None, credentials_hint: str = RETENTION_CREDENTIALS):
        self._basic = httpx.BasicAuth(username, password or "") if username else None
        self._hint = credentials_hint
        self._scheme: str | None = None
        self._tokens: dict[str, str] = {}
        self._lock = threading.Lock()

    def auth_flow(self, request: httpx.Request) -> Iterator[httpx.Request]:
        scope = _scope_key(request.url.path)
        self._authorize(request, scope)
        response = yield request
        if response.status_code != 401:
            return
        scheme, params = _parse_challenge(response.headers.get("www-authenticate", ""))
        if scheme == "basic":
            if self._basic is None:
                raise RegistryError(f"the registry asks for credentials (HTTP 401, Basic auth) and none were given: "
                                    f"{self._hint}")
            self._scheme = "basic"
        elif scheme == "bearer" and "realm" in params:
            realm = _realm(request, params["realm"])
            service = f"the token service {without_credentials(str(realm))}"
            token_request = httpx.Request("GET", realm, params={
                key: params[key] for key in ("service", "scope") if key in params})
            if self._basic is not None:
                token_request = next(self._basic.auth_flow(token_request))
            token_response = yield token_request
            token_response.read()
            status = token_response.status_code
            if status == 429 or status >= 500:
                raise _Retryable(token_response, service)
            if status != 200:
                raise RegistryError(f"{service} refused a token for scope {params.get('scope', '(none)')} (HTTP "
                                    f"{status})" + ("; check the registry credentials" if status in (401, 403) else ""))
            body = _json_object(token_response, service)
            token = body.get("token") or body.get("access_token")
            if not token or not isinstance(token, str):
                raise RegistryError(f"{service} answered without a token")
            if not BEARER_TOKEN.fullmatch(token):  # httpx's error for an unsendable header would quote it in full
                raise RegistryError(f"{service} answered a token that cannot go in a header (a space, a line break "
                                    "or a character outside ASCII); nothing was sent with it")
            with self._lock:
                self._scheme = "bearer"
                self._tokens[scope] = token
        else:
            raise RegistryError(f"the registry answered 401 with an authentication scheme this tool does not speak: "
                                f"{scheme or '(none)'}; expected Basic or Bearer")
        self._authorize(request, scope)
        response = yield request
        if response.status_code == 401 and scheme == "bearer":
            raise RegistryError(f"the registry refused the token issued for scope {params.get('scope', '(none)')} "
                                f"(HTTP 401) for {request.method} {request.url.path}; the user lacks that access")
        if response.status_code == 401:
            raise RegistryError(f"the registry refused the credentials (HTTP 401) for {request.method} "
                                f"{request.url.path}; check the user name and password")

    def _authorize(self, request: httpx.Request, scope: str) -> None:
        if self._scheme == "basic" and self._basic is not None:
            request.headers["Authorization"] = next(self._basic.auth_flow(request)).headers["Authorization"]
        elif self._scheme == "bearer" and scope in self._tokens:
            request.headers["Authorization"] = f"Bearer {self._tokens[scope]}"


def _origin(url: str) -> tuple[str, str, int | None]:
    parsed = httpx.URL(url)
    return parsed.scheme, parsed.host, parsed.port


def _scope_key(path: str) -> str:
    """Which token a request needs: one per repository, one for the catalogue."""
    if path.startswith("/v2/_catalog"):
        return "catalog"
    match = re.match(r"^/v2/(.+)/(?:tags|manifests|blobs)/", path)
    return match[1] if match else ""


def _parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    scheme, _, rest = header.strip().partition(" ")
    return scheme.lower(), dict(_CHALLENGE_PARAM.findall(rest))


def _realm(request: httpx.Request, realm: str) -> httpx.URL:
    """The token service's URL. It receives the credentials (Basic), so an https registry's must be https."""
    registry = f"{request.method} {request.url.path}: the registry names the token service"
    try:
        url = request.url.join(realm)
    except httpx.InvalidURL:
        url = None
    if url is None or url.scheme not in ("http", "https") or not url.host:
        raise RegistryError(f"{registry} {without_credentials(realm)!r}, which is not an http(s) URL")
    if request.url.scheme == "https" and url.scheme != "https":
        raise RegistryError(f"{registry} {without_credentials(str(url))}: plain http from an https registry; refused "
                            "rather than send it the credentials unencrypted")
    if url.scheme != "https" and not is_loopback(url.host):  # a loopback registry may name only a loopback one
        raise RegistryError(f"{registry} {without_credentials(str(url))}: {PLAIN_HTTP_RULE}; refused rather than send "
                            "it the credentials")
    return url


def _json_object(response: httpx.Response, what: str) -> dict[str, Any]:
    """The answer's JSON object; a proxy's login page or any other body is a RegistryError naming ``what``."""
    try:
        body = response.json()
    except ValueError:  # JSONDecodeError and UnicodeDecodeError
        body = None
    if not isinstance(body, dict):
        raise RegistryError(f"{what}: the answer (HTTP {response.status_code}, Content-Type "
                            f"{response.headers.get('content-type', 'none')}) is not a JSON object; is the URL the "
                            "registry's (not a proxy's login page, say)?")
    return body


def _is_attestation(entry: dict[str, Any]) -> bool:
    """buildx lists its provenance and SBOM manifests in the index as platform unknown/unknown."""
    platform = entry.get("platform") or {}
    return (isinstance(platform, dict) and platform.get("architecture") == "unknown"
            and platform.get("os") == "unknown")


class RegistryClient:
    """One registry; counts every HTTP request it sends (auth and retries included) in ``requests``."""

    def __init__(self, url: str, username: str | None = None, password: str | None = None, *,
                 attempts: int = 5, backoff_seconds: float = 0.5, timeout_seconds: float = 30.0,
                 workers: int = 8, transport: httpx.BaseTransport | None = None,
                 credentials_hint: str = RETENTION_CREDENTIALS) -> None:
        self.url = url.rstrip("/")
        self.requests = 0
        self._count_lock = threading.Lock()
        self._attempts = attempts
        self._backoff = backoff_seconds
        self._http = httpx.Client(
            base_url=self.url, auth=ChallengeAuth(username, password, credentials_hint), timeout=timeout_seconds,
            follow_redirects=True, limits=httpx.Limits(max_connections=workers, max_keepalive_connections=workers),
            event_hooks={"request": [self._count]}, transport=transport)

    def close(self) -> None:
        self._http.close()

    def _count(self, request: httpx.Request) -> None:
        with self._count_lock:
            self.requests += 1

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request, retried with exponential backoff and jitter on 429, 5xx and transport errors."""
        retrying = Retrying(retry=retry_if_exception_type((_Retryable, httpx.TransportError)),
                            stop=stop_after_attempt(self._attempts),
                            wait=wait_exponential_jitter(multiplier=self._backoff, max=10 * self._backoff,
                                                         jitter=self._backoff),
                            reraise=True)
        try:
            for attempt in retrying:
                with attempt:
                    response = self._http.request(method, path, **kwargs)
                    if response.status_code == 429 or response.status_code >= 500:
                        raise _Retryable(response)
        except _Retryable as error:
            raise RegistryError(f"{method} {path}: {error.server} kept answering HTTP {error.response.status_code} "
                                f"after {self._attempts} attempts") from None
        except httpx.TransportError as error:
            raise RegistryError(f"cannot reach the registry at {self.url} ({type(error).__name__}: {error}) "
                                f"after {self._attempts} attempts") from None
        except httpx.HTTPError as error:  # too many redirects, an undecodable body: a retry would change nothing
            raise RegistryError(f"{method} {path}: {type(error).__name__}: "
                                f"{without_credentials(str(error))}") from None
        return response

    def _paged(self, path: str, key: str) -> Iterator[str]:
        """Follows ``Link: <...>; rel="next"`` (``n`` and ``last``) until the registry gives no next page."""
        url: str | None = f"{path}?n={PAGE_SIZE}"
        while url:
            response = self._send("GET", url)
            self._expect(response, 200, f"GET {path}")
            items = _json_object(response, f"GET {path}").get(key) or []
            if not isinstance(items, list):
                raise RegistryError(f"GET {path}: '{key}' is not a list")
            yield from items
            next_link = response.links.get("next", {}).get("url")
            url = urljoin(f"{self.url}{path}", next_link) if next_link else None
            if url and _origin(url) != _origin(self.url):
                # The credentials go with every request of this client: never to a host the registry names.
                raise RegistryError(f"GET {path}: the registry's next page is at {without_credentials(url)}, not on "
                                    f"the registry {self.url}; stopped rather than send it the credentials")

    def repositories(self) -> list[str]:
        return list(self._paged("/v2/_catalog", "repositories"))

    def tags(self, repository: str) -> list[str] | None:
        """Tags of a repository; None when the registry knows no such repository (or every image is deleted)."""
        try:
            return list(self._paged(f"/v2/{repository}/tags/list", "tags"))
        except _NotFound:
            return None

    def manifest(self, repository: str, reference: str) -> Manifest | None:
        """The manifest a tag (or digest) names, with its config digest, in one GET; None when it does not resolve."""
        what = f"GET manifest {repository}{'@' if reference.startswith('sha256:') else ':'}{reference}"
        response = self._send("GET", f"/v2/{repository}/manifests/{quote(reference, safe=':')}",
                              headers={"Accept": ", ".join(MANIFEST_TYPES)})
        if response.status_code == 404:
            return None
        self._expect(response, 200, what)
        digest = response.headers.get("docker-content-digest") or \
            "sha256:" + hashlib.sha256(response.content).hexdigest()
        document = _json_object(response, what)
        config = document.get("config")
        entries = [entry for entry in document.get("manifests") or []
                   if isinstance(entry, dict) and isinstance(entry.get("digest"), str)]
        return Manifest(digest, config.get("digest") if isinstance(config, dict) else None,
                        tuple(entry["digest"] for entry in entries if not _is_attestation(entry)),
                        tuple(entry["digest"] for entry in entries if _is_attestation(entry)))

    def digest(self, repository: str, tag: str) -> str | None:
        """The tag's manifest digest from one HEAD (Docker-Content-Digest); None when the registry has no such tag.

        The Accept header names every manifest type, so the registry answers with the stored manifest's own digest
        (an image index stays an index) rather than converting it.
        """
        response = self._send("HEAD", f"/v2/{repository}/manifests/{quote(tag, safe='')}",
                              headers={"Accept": ", ".join(MANIFEST_TYPES)})
        if response.status_code == 404:
            return None
        self._expect(response, 200, f"HEAD manifest {repository}:{tag}")
        digest = response.headers.get("docker-content-digest")
        if digest:
            return digest
        manifest = self.manifest(repository, tag)  # a registry that sends no digest header: hash the manifest
        return manifest.digest if manifest else None

    def created(self, repository: str, config_digest: str) -> datetime | None:
        """The image config's ``created`` time; None when the config is missing or has none."""
        response = self._send("GET", f"/v2/{repository}/blobs/{config_digest}")
        if response.status_code == 404:
            return None
        self._expect(response, 200, f"GET config blob {repository}@{config_digest}")
        try:
            return parse_time(json.loads(response.content).get("created"))
        except (ValueError, AttributeError):
            return None

    def delete(self, repository: str, digest: str) -> bool:
        """Delete a manifest by digest; False (not an error) when it is already gone, so a rerun is harmless."""
        response = self._send("DELETE", f"/v2/{repository}/manifests/{digest}")
        if response.status_code == 404:
            return False
        if response.status_code == 405:
            raise RegistryError("the registry does not allow deleting (HTTP 405 UNSUPPORTED); enable "
                                "storage.delete.enabled in its configuration")
        self._expect(response, 202, f"DELETE {repository}@{digest}")
        return True

    def _expect(self, response: httpx.Response, status: int, what: str) -> None:
        if response.status_code == status or (status == 202 and response.status_code == 200):
            return
        if response.status_code == 404:
            raise _NotFound(what)
        raise RegistryError(f"{what}: unexpected HTTP {response.status_code}: {response.text[:200]}")


class _NotFound(RegistryError):
    pass


def parse_time(value: Any) -> datetime | None:
    """RFC 3339 as image configs write it (nanoseconds, 'Z'); a time without zone is taken as UTC."""
    if not isinstance(value, str):
        return None
    match = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)?", value.strip())
    if match is None:
        return None
    fraction = (match[2] or "0")[:6].ljust(6, "0")
    zone = match[3] or "Z"
    parsed = datetime.fromisoformat(f"{match[1]}.{fraction}{'+00:00' if zone == 'Z' else zone}")
    return parsed.astimezone(timezone.utc)

"""A registry with bearer-token auth on loopback, and a proxy that answers 429 and 503 before passing through.

The token service is the small part a real deployment gets from its identity provider: it checks Basic
credentials and issues RS256 JWTs that the distribution registry (``auth: token``) verifies against the
certificate in its ``rootcertbundle``. The key and certificate are made by the ``openssl`` command; signing is
RSA PKCS#1 v1.5 over SHA-256 done here with Python integers, so the tests need no crypto package.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import subprocess
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Iterator, Sequence
from urllib.parse import parse_qs, urlparse

import httpx

from release_infra_tools.registry import ChallengeAuth
from tests.registry.harness import Registry, running_registry

SERVICE = "release-infra-test-registry"
ISSUER = "release-infra-test-token-service"
_SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class SigningKey:
    """An RSA key and its self-signed certificate, from openssl; signs JWTs with the certificate in ``x5c``."""

    modulus: int
    exponent: int
    certificate_der: bytes
    certificate_pem: Path

    @classmethod
    def create(cls, directory: Path) -> "SigningKey":
        key, cert = directory / "token.key", directory / "token.crt"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                        "-out", str(cert), "-subj", "/CN=release-infra-test-token-service", "-days", "2"],
                       check=True, capture_output=True)
        text = subprocess.run(["openssl", "rsa", "-in", str(key), "-noout", "-text"], check=True,
                              capture_output=True, text=True).stdout
        number = lambda name: int(re.search(rf"^{name}:\s*\n((?:\s+[0-9a-f:]+\n)+)", text, re.M)[1]  # noqa: E731
                                  .replace(":", "").replace(" ", "").replace("\n", ""), 16)
        der = subprocess.run(["openssl", "x509", "-in", str(cert), "-outform", "DER"], check=True,
                             capture_output=True).stdout
        return cls(number("modulus"), number("privateExponent"), der, cert)

    def sign(self, claims: dict) -> str:
        header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(self.certificate_der).decode()]}
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}".encode()
        size = (self.modulus.bit_length() + 7) // 8
        digest_info = _SHA256_DIGEST_INFO + hashlib.sha256(signing_input).digest()
        padded = b"\x00\x01" + b"\xff" * (size - len(digest_info) - 3) + b"\x00" + digest_info
        signature = pow(int.from_bytes(padded, "big"), self.exponent, self.modulus).to_bytes(size, "big")
        return f"{signing_input.decode()}.{_b64(signature)}"


@dataclass
class TokenService:
    """users: name -> (password, actions the user may take on any repository); records each token's scope."""

    key: SigningKey
    users: dict[str, tuple[str, list[str]]]
    issued: list[str] = field(default_factory=list)
    refused: int = 0

    def token(self, authorization: str | None, scopes: list[str]) -> str | None:
        if not authorization or not authorization.startswith("Basic "):
            return None
        user, _, password = base64.b64decode(authorization[6:]).decode().partition(":")
        if user not in self.users or self.users[user][0] != password:
            return None
        access = []
        for scope in scopes:  # grants what was asked for and the user may do, as token services do
            kind, _, rest = scope.partition(":")
            name, _, asked = rest.rpartition(":")
            if kind == "repository":
                access.append({"type": "repository", "name": name,
                               "actions": [a for a in asked.split(",") if a in self.users[user][1]]})
            elif scope == "registry:catalog:*":
                access.append({"type": "registry", "name": "catalog", "actions": ["*"]})
        now = int(time.time())
        self.issued.extend(scopes)
        return self.key.sign({"iss": ISSUER, "sub": user, "aud": SERVICE, "exp": now + 300, "nbf": now - 10,
                              "iat": now, "jti": f"{now}-{len(self.issued)}", "access": access})


def _serve(handler: type[BaseHTTPRequestHandler]) -> tuple[ThreadingHTTPServer, threading.Thread]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread


@contextmanager
def token_registry(binary: str, workdir: Path, users: dict[str, tuple[str, list[str]]], failures: Sequence[int] = ()
                   ) -> Iterator[tuple[Registry, TokenService]]:
    """The distribution registry with ``auth: token`` and its token service, both on loopback. The token service
    answers ``failures`` (e.g. [503]) to its first requests, as one that is overloaded or restarting."""
    service = TokenService(SigningKey.create(workdir), users)
    failing = list(failures)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            if failing:
                self.send_response(failing.pop(0))
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            query = parse_qs(urlparse(self.path).query)
            token = service.token(self.headers.get("Authorization"), query.get("scope", []))
            if token is None:
                service.refused += 1
                self.send_response(401)
                self.end_headers()
                return
            body = json.dumps({"token": token, "access_token": token, "expires_in": 300}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server, thread = _serve(Handler)
    realm = f"http://127.0.0.1:{server.server_address[1]}/token"
    auth = {"token": {"realm": realm, "service": SERVICE, "issuer": ISSUER,
                      "rootcertbundle": str(service.key.certificate_pem)}}
    try:
        with running_registry(binary, workdir, auth=auth) as registry:
            yield registry, service
    finally:
        server.shutdown()
        thread.join()


def pusher(registry: Registry, user: str, password: str) -> httpx.Client:
    """A client that pushes to a token registry (the harness's push() takes any client)."""
    return httpx.Client(base_url=registry.url, auth=ChallengeAuth(user, password), timeout=30)


@dataclass
class FlakyProxy:
    """Answers ``failures`` (e.g. [429, 503]) to the first requests of every distinct method and path (of those
    ``only`` picks, when given), then passes each request through to the registry; counts what it answered itself
    and lists every (method, path) asked."""

    url: str
    answered: dict[int, int]
    requests: list[tuple[str, str]] = field(default_factory=list)


@contextmanager
def flaky_proxy(upstream: str, failures: list[int],
                only: Callable[[str, str], bool] = lambda method, path: True) -> Iterator[FlakyProxy]:
    seen: dict[tuple[str, str], int] = {}
    lock = threading.Lock()
    proxy = FlakyProxy("", {})
    client = httpx.Client(base_url=upstream, timeout=30)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _handle(self) -> None:
            with lock:
                count = seen.get((self.command, self.path), 0)
                seen[(self.command, self.path)] = count + 1
                proxy.requests.append((self.command, self.path))
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if count < len(failures) and only(self.command, self.path):
                status = failures[count]
                with lock:
                    proxy.answered[status] = proxy.answered.get(status, 0) + 1
                self.send_response(status)
                self.send_header("Content-Length", "0")
                if status == 429:
                    self.send_header("Retry-After", "0")
                self.end_headers()
                return
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
            answer = client.request(self.command, self.path, headers=headers, content=body)
            self.send_response(answer.status_code)
            for name, value in answer.headers.multi_items():
                if name.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding"):
                    self.send_header(name, value)
            payload = b"" if self.command == "HEAD" else answer.content
            self.send_header("Content-Length", str(len(payload) if self.command != "HEAD" else
                                                   answer.headers.get("content-length", "0")))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_HEAD = do_DELETE = do_PUT = do_POST = _handle  # noqa: N815

        def log_message(self, *args: object) -> None:
            pass

    server, thread = _serve(Handler)
    proxy.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield proxy
    finally:
        server.shutdown()
        thread.join()
        client.close()

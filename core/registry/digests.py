"""Settings of digest pinning: the optional key ``release-infra:image_digests`` and its password secret.

With lookups on, the program asks the registry for each configured tag's manifest digest before it registers
anything, and the Deployments run ``<registry>/<service>:<tag>@sha256:<digest>``: a tag overwritten later can
never change what a Deployment runs. Lookups need the registry, so they are on by default only for a stack with
a cluster; a stack that renders manifests (and any offline preview) works without one. Must not import
core.settings, which imports this module.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Literal, Mapping
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, SecretStr, ValidationError, model_validator

from core.catalogue import Strict
from core.errors import ConfigError, Problem
from core.validation import key_path, problems_from, structured

PREFIX = "release-infra:"
KEY = "image_digests"
PASSWORD = "image_digests_registry_password"
CONFIG_KEYS = (KEY, PASSWORD)
Mode = Literal["lookup", "off"]
MODES: tuple[Mode, ...] = ("lookup", "off")
SHAPE = ("lookup or off (quote 'off' in YAML), or an object {mode: lookup | off, registry_url, username}")


PLAIN_HTTP_RULE = ("plain http would send the registry credentials unencrypted; http:// only for a loopback "
                   "registry (127.0.0.0/8, ::1, localhost)")


def base_url(url: str) -> str:
    """A registry's base URL. No user:password@: a credential there would be shown in outputs, the job's spec and
    errors; it goes in the secret password key instead. https, or http to a loopback registry only."""
    if not re.fullmatch(r"https?://[^\s/?#@]+/?", url):
        raise ValueError("must be the registry's base URL without credentials, e.g. https://registry.pay.internal")
    if url.startswith("http://") and not is_loopback(urlsplit(url).hostname or ""):
        raise ValueError(f"must be https://: {PLAIN_HTTP_RULE}")
    return url.rstrip("/")


def is_loopback(host: str) -> bool:
    """Whether a registry host (no port) is this machine, as Docker treats 127.0.0.0/8, ::1 and localhost."""
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def default_url(registry: str) -> str:
    """https, except plain http for a loopback registry (as Docker's default)."""
    host = registry.rsplit(":", 1)[0] if registry.count(":") == 1 else registry
    return f"{'http' if is_loopback(host) else 'https'}://{registry}"


class ImageDigests(Strict):
    """Whether and how the program resolves tags to digests; the password is kept out of every repr."""

    mode: Mode = Field(description="lookup: pin every image by the registry's digest; off: no registry lookups.")
    registry_url: Annotated[str, AfterValidator(base_url)] | None = Field(
        None, description="Base URL of the registry's v2 API; from release-infra:registry when unset.")
    username: str | None = Field(None, min_length=1, max_length=128, description="A user that may pull.")
    password: SecretStr | None = Field(None, exclude=True, repr=False)

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, value: Any) -> Any:
        return {"mode": value} if isinstance(value, str) else value

    @property
    def lookup(self) -> bool:
        return self.mode == "lookup"


def load_image_digests(stack: str, raw: Any, secrets: Mapping[str, Any], registry: str, *,
                       live: bool) -> ImageDigests:
    """Validate ``release-infra:image_digests`` (absent, lookup/off, or an object or its JSON text).

    Absent means lookup for a stack with a cluster (``live``) and off otherwise (a password in plain text is refused
    before this, core.validation.refuse_plain_text_secrets). Raises ConfigError naming every problem; the password
    is shown as "[secret]", never itself.
    """
    source = f'stack "{stack}"'
    path = lambda *parts: key_path(PREFIX, parts)  # noqa: E731
    raw = structured(raw)
    if raw is None:
        raw = "lookup" if live else "off"
    if not isinstance(raw, (str, dict)) or (isinstance(raw, str) and raw not in MODES):
        raise ConfigError(source, [Problem(path(KEY), raw, f"must be {SHAPE}")])
    if isinstance(raw, dict) and "password" in raw:
        raise ConfigError(source, [Problem(path(KEY, "password"), "[secret]", f"the password is the secret "
                                           f"{PREFIX}{PASSWORD} (pulumi config set --secret), never in the stack "
                                           "file")])
    try:
        settings = ImageDigests.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(source, problems_from(error, PREFIX + KEY, ImageDigests)) from None
    password = secrets.get(PASSWORD)
    problems = []
    if password is not None and (not isinstance(password, str) or not password.strip()):
        problems.append(Problem(path(PASSWORD), "[secret]", "must be the registry password of "
                                f"{PREFIX}{KEY}.username"))
    elif password is not None and settings.username is None:
        problems.append(Problem(path(PASSWORD), "[secret]", f"is set but {PREFIX}{KEY}.username is not; set both "
                                "for a registry that needs credentials, or neither"))
    elif password is None and settings.username is not None:
        problems.append(Problem(path(KEY, "username"), settings.username, f"needs the secret {PREFIX}{PASSWORD} "
                                f"(pulumi config set --secret {PASSWORD} ...); set both, or neither"))
    if problems:
        raise ConfigError(source, problems)
    return settings.model_copy(update={
        "registry_url": settings.registry_url or default_url(registry),
        "password": SecretStr(password) if password is not None else None,
    })

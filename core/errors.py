"""One error type for every user mistake in config, rendered as one line with no traceback."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from typing import Any, Callable, Collection

MISSING = object()  # the key is absent
NO_VALUE = object()  # the problem is with the whole source (e.g. a file that cannot be read)
SECRET = "[secret]"  # shown instead of a value that may be a credential
# The user:password@ of a URL, with or without a scheme (up to the host's @; not an image's @sha256: digest).
URL_CREDENTIALS = re.compile(r'(?:(?<=//)[^\s"]*|(?<![\w/:.@-])[^\s/@":]+:(?!//)[^\s/@"]+)@(?!sha256:)')
# The query or fragment of a URL with a scheme, where a token goes (?access_token=..., #token=...).
URL_QUERY = re.compile(r'(\b[a-z][a-z0-9+.-]*://[^\s"?#]*)([?#])[^\s"]+')


@dataclass(frozen=True)
class Problem:
    """One bad value: where it is, what it was, and what would have been accepted."""

    path: str
    value: Any
    allowed: str

    def __str__(self) -> str:
        if self.value is MISSING:
            return f"{self.path} is missing: {self.allowed}"
        if self.value is NO_VALUE:
            return f"{self.path}: {self.allowed}"
        return f"{self.path} = {_show(self.value)}: {self.allowed}"


class ConfigError(Exception):
    """Invalid stack config or catalogue; the program turns it into a clean failure before registering anything."""

    heading = "invalid config for {source}"

    def __init__(self, source: str, problems: list[Problem]):
        self.source = source
        self.problems = problems
        super().__init__(self.heading.format(source=source) + ": " + "; ".join(map(str, problems)))

    def redacted(self, prefix: str, secret_keys: Collection[str]) -> "ConfigError":
        """The same error, with the value of every problem under a key set with ``--secret`` shown as [secret]:
        a secret under a mistyped key name is still a secret."""
        def secret(path: str) -> bool:
            return path.startswith(prefix) and re.split(r"[.\[]", path[len(prefix):], maxsplit=1)[0] in secret_keys
        error = type(self).__new__(type(self))  # a copy of whichever kind, without its __init__'s arguments
        ConfigError.__init__(error, self.source, [
            replace(problem, value=SECRET) if secret(problem.path) and problem.value not in (MISSING, NO_VALUE)
            else problem for problem in self.problems])
        return error


def without_credentials(text: str) -> str:
    """``text`` with every ``user:password@`` of a URL in it shown as ``[secret]@``, and every query or fragment
    as ``?[secret]`` or ``#[secret]``."""
    return URL_QUERY.sub(r"\1\2" + SECRET, URL_CREDENTIALS.sub(SECRET + "@", text))


def _show(value: Any) -> str:
    try:
        text = json.dumps(value, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    text = without_credentials(text)
    return text if len(text) <= 120 else text[:117] + "..."


def together(source: str, *loaders: Callable[[], Any]) -> list[Any]:
    """Every loader's result; their config problems raised as one error, so a stack is fixed in one round
    rather than one section at a time."""
    results, problems = [], []
    for loader in loaders:
        try:
            results.append(loader())
        except ConfigError as error:
            problems += error.problems
    if problems:
        raise ConfigError(source, problems)
    return results

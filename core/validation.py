"""Turns pydantic's validation errors into Problems that name config key paths the way users write them."""

from __future__ import annotations

import difflib
import json
from collections.abc import Collection, Iterable, Mapping
from datetime import date, datetime, time
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import AwareDatetime, BaseModel, ValidationError

from core.errors import MISSING, NO_VALUE, SECRET, ConfigError, Problem


def key_path(prefix: str, location: tuple[Any, ...]) -> str:
    """('services', 'payin-api', 'blue', 'image') -> 'release-infra:services.payin-api.blue.image'."""
    path = prefix
    for part in location:
        if part == "[key]":  # pydantic's marker of a mapping's key: the path so far names it already
            continue
        if isinstance(part, int):
            path += f"[{part}]"
        elif path.endswith(":") or not path:
            path += str(part)
        else:
            path += f".{part}"
    return path


def problems_from(error: ValidationError, prefix: str, model: type[BaseModel]) -> list[Problem]:
    """One Problem per error. An unknown key's value is not shown: it may be a credential under a mistyped name.
    ``model`` is the model that was validated: an unknown key's Problem lists the keys known where it is."""
    problems = []
    for item in error.errors(include_url=False):
        location = tuple(item["loc"])
        value = {"missing": MISSING, "extra_forbidden": NO_VALUE}.get(item["type"], item.get("input"))
        if value not in (MISSING, NO_VALUE) and concealed(model, location):
            value = SECRET
        allowed = _allowed(item)
        known = known_keys(model, location[:-1]) if item["type"] == "extra_forbidden" else None
        if known:
            allowed = unknown_key(str(location[-1]), known)
        problems.append(Problem(key_path(prefix, location), value, allowed))
    return problems


def unknown_key(key: str, known: Iterable[str]) -> str:
    """What is allowed instead of an unknown key: the nearest known key first, when one is near."""
    known = list(known)
    near = difflib.get_close_matches(key, known, n=1)
    return f"unknown key{f' (did you mean {near[0]}?)' if near else ''}; known keys are {', '.join(known)}"


class Concealed:
    """Marks a field (``Annotated[str, CONCEALED]``) whose refused value is shown as [secret]: what is put there by
    mistake may be a credential, as a kubeconfig's contents pasted where its path goes."""


CONCEALED = Concealed()


def concealed(model: type[BaseModel], location: tuple[Any, ...]) -> bool:
    """Whether ``location`` inside ``model`` is, or is inside, a field marked CONCEALED."""
    annotation: Any = model
    for part in location:
        annotation = _unwrapped(annotation)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel) and part in annotation.model_fields):
            return False
        field = annotation.model_fields[part]
        if CONCEALED in field.metadata:
            return True
        annotation = field.annotation
    return False


def known_keys(model: type[BaseModel], location: tuple[Any, ...]) -> list[str] | None:
    """The keys of the model found at ``location`` inside ``model`` (through fields, mappings and lists), or None
    where the path is not a plain walk (a union pydantic tried several ways). A field excluded from dumps is the
    program's own (image_digests.password comes from a secret key), so it is no key to suggest."""
    annotation: Any = model
    for part in location:
        annotation = _unwrapped(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if part not in annotation.model_fields:
                return None
            annotation = annotation.model_fields[part].annotation
        elif get_origin(annotation) in (dict, Mapping) and isinstance(part, str):
            annotation = get_args(annotation)[1]
        elif get_origin(annotation) is list and isinstance(part, int):
            annotation = get_args(annotation)[0]
        else:
            return None
    annotation = _unwrapped(annotation)
    if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
        return None
    return [name for name, field in annotation.model_fields.items() if not field.exclude]


def lax_reading(annotation: Any, value: Any) -> str | None:
    """Why pydantic's lax reading of ``value`` for ``annotation`` would hide a mistake, or None: true or false for a
    number (read as 1 or 0), itself or as the items of a list, tuple or set or the values of a mapping; a number
    for a time (read as seconds since 1970, or since midnight: `since: 20261122` would be in 1970); anything but
    true or false for a boolean (1, "y" and "on" read as true)."""
    annotation = _unwrapped(annotation)
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in (Union, UnionType):
        return next((why for arg in args if (why := lax_reading(arg, value))), None)
    if annotation in _TIME_FORMS and _number(value):
        return f"must be written as {_TIME_FORMS[annotation]}, not a number"
    if annotation is bool and not (value is True or value is False or value in ("true", "false")):  # 1 == True
        return "must be true or false"
    if isinstance(value, bool):
        return "must be a number, not true or false" if annotation in (int, float) else None
    if origin in (list, tuple, set, frozenset) and isinstance(value, (list, tuple, set, frozenset)):
        items = [(arg, item) for arg in args if arg is not Ellipsis for item in value]
    elif origin in (dict, Mapping) and isinstance(value, Mapping):
        items = [(args[1], item) for item in value.values()]
    else:
        return None
    return "must hold numbers, not true or false" if any(
        isinstance(item, bool) and _unwrapped(arg) in (int, float) for arg, item in items) else None


_TIME_FORMS = {datetime: "an ISO 8601 time with its zone, e.g. 2026-11-22T10:00:00Z", date: "a date, e.g. 2026-11-22",
               time: "HH:MM, e.g. 10:00"}
_TIME_FORMS[AwareDatetime] = _TIME_FORMS[datetime]


def _number(value: Any) -> bool:
    """A number, or a string pydantic would read as one (it reads "10" for a time as ten seconds)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return True
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _unwrapped(annotation: Any) -> Any:
    """The type inside Annotated[...] and Optional[...]."""
    while True:
        if get_origin(annotation) is Annotated:
            annotation = get_args(annotation)[0]
        elif get_origin(annotation) in (Union, UnionType) and len(args := [
                arg for arg in get_args(annotation) if arg is not type(None)]) == 1:
            annotation = args[0]
        else:
            return annotation


def structured(value: Any) -> Any:
    """Pulumi hands structured config to programs as JSON text; anything else is returned as it is."""
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def refuse_plain_text_secrets(stack: str, prefix: str, values: Mapping[str, Any], encrypted: Collection[str],
                              plain_entries: Collection[str] = ()) -> None:
    """Every secret key a stack sets must have been set with ``--secret``: a value in plain text sits readable in
    the stack file and its history, so it is refused, and rotated, before anything uses it. The value is never
    shown. Pulumi counts an object as secret when any part of it is, so an object's entries come one by one from
    the stack file (``plain_entries``, see plain_text_entries), and are named as they are set (``--secret --path``).
    """
    problems = []
    for key, value in values.items():
        entries = [f"{key}.{entry}" for entry in value] if isinstance(value, Mapping) and value else []
        plain = [path for path in entries if path in plain_entries] if key in encrypted else entries or [key]
        problems += [Problem(f"{prefix}{path}", SECRET, f"is in plain text in the stack file: set it with pulumi "
                             f"config set --secret{' --path' if entries else ''} '{path}' ... and rotate it")
                     for path in plain]
    if problems:
        raise ConfigError(f'stack "{stack}"', problems)


def refuse_needless_secrets(stack: str, prefix: str, encrypted: Collection[str], credentials: Collection[str],
                            known: Collection[str]) -> None:
    """A key set with ``--secret`` that holds no credential goes into resources, outputs and the state in plain
    text: the stack file would look encrypted while a token in it (a query string, say) was not. Refused, so the
    credential moves to a key of its own."""
    problems = [Problem(f"{prefix}{key}", SECRET, "is set with --secret, but it holds no credential, and its values "
                        "go into resources and outputs in plain text; set it without --secret, and a credential in "
                        f"it under its own key ({', '.join(credentials)})")
                for key in sorted(encrypted) if key in known and key not in credentials]
    if problems:
        raise ConfigError(f'stack "{stack}"', problems)


def plain_text_entries(stack_file: Any, prefix: str, keys: Iterable[str]) -> set[str]:
    """``key.entry`` for every entry of an object ``key`` that a stack file (parsed) holds without ``secure:``."""
    config = stack_file.get("config") if isinstance(stack_file, Mapping) else None
    found = set()
    for key in keys:
        value = config.get(prefix + key) if isinstance(config, Mapping) else None
        if isinstance(value, Mapping) and "secure" not in value:
            found |= {f"{key}.{entry}" for entry, item in value.items()
                      if not (isinstance(item, Mapping) and "secure" in item)}
    return found


def unreadable(name: str, error: Exception) -> Problem:
    return Problem(name, NO_VALUE, " ".join(f"cannot be read: {error}".split()))


def _allowed(item: dict[str, Any]) -> str:
    kind, message = item["type"], item["msg"]
    if kind == "missing":
        return "required"
    if kind == "extra_forbidden":
        return "unknown key (a typo?)"
    if message.startswith("Value error, "):
        message = message[len("Value error, "):]
    elif message.startswith("Assertion failed, "):
        message = message[len("Assertion failed, "):]
    return message[0].lower() + message[1:]


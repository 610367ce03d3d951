"""Names made from content: a ConfigMap named after what it holds is never changed in place.

A change is a new immutable ConfigMap, created before the old one is deleted, so what mounts it is never left without
one; rolling back is the same move to the previous name. The gateway's config and the retention job's list of
protected images are named this way, and the rollback plan recognises such names by their shape.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

CHECKSUM_DIGITS = 10  # of a content-addressed name: 40 bits, so two contents of one prefix all but never meet
_HEX = frozenset("0123456789abcdef")


def canonical(content: Any) -> str:
    """Canonical JSON: equal contents are equal bytes."""
    return json.dumps(content, indent=2, sort_keys=True) + "\n"


def checksum(content: Any) -> str:
    return hashlib.sha256(canonical(content).encode()).hexdigest()


def content_addressed_name(prefix: str, content: Any) -> str:
    """``<prefix>-<checksum>``."""
    return f"{prefix}-{checksum(content)[:CHECKSUM_DIGITS]}"


def content_address_prefix(name: str) -> str | None:
    """The prefix ``content_addressed_name`` was given, or None for a name that ends in no checksum."""
    prefix, _, suffix = name.rpartition("-")
    return prefix if prefix and len(suffix) == CHECKSUM_DIGITS and set(suffix) <= _HEX else None

"""Identifiers people type for the hub (queue, rule, skill and bot names) are slugs: short, lower-case, safe in a URL,
a log line or a page. Words for people go in a title beside them. Names stored before this rule keep working."""

from __future__ import annotations

import re
from collections.abc import Iterable

SLUG = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
RULE = "1 to 64 characters of a-z, 0-9, _ and -, starting with a letter or digit"


class SlugError(ValueError):
    """A new identifier is not a slug; the message names it and says what a slug is."""


def is_slug(name: str) -> bool:
    return SLUG.fullmatch(name) is not None


def check_new(kind: str, names: Iterable[str], known: Iterable[str] = ()) -> None:
    """Raise SlugError for the first of NAMES that is not a slug and not already KNOWN (kept as it was stored)."""
    existing = set(known)
    for name in names:
        if name not in existing and not is_slug(name):
            shown = name if len(name) <= 80 else name[:80] + "…"
            raise SlugError(f"{kind} name {shown!r} is not a slug: use {RULE} (e.g. \"billing-de\"), "
                            f"and put the words people read in its title")

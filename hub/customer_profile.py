"""A customer as agents see them: the name shown when they gave none (an anonymous web-chat visitor is "Visitor 4821",
not a random visitor id), and the admin-defined custom attributes (text, number, date, list), each value checked
against its type before it is stored."""

from __future__ import annotations

import json
import math
import re
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from hub.history.db import Tx

AttributeType = Literal["text", "number", "date", "list"]
ATTRIBUTE_TYPES: tuple[AttributeType, ...] = ("text", "number", "date", "list")
KEY = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
MAX_TEXT = 1000


def visitor_name(visitor_id: str) -> str:
    """A friendly, stable name for an anonymous web-chat visitor: the same visitor is always the same number."""
    return f"Visitor {zlib.crc32(visitor_id.encode()) % 9000 + 1000}"


def display_name(customer_id: int, name: str, identities: Sequence[tuple[str, str]]) -> str:
    """What the console shows: the name; else a phone, email or chat handle; else a visitor's generated name."""
    if name.strip():
        return name.strip()
    for kind, value in identities:
        if kind != "webchat":
            return value
    for _, value in identities:
        return visitor_name(value)
    return f"Customer #{customer_id}"


@dataclass(frozen=True)
class AttributeDefinition:
    key: str
    label: str
    type: AttributeType
    options: tuple[str, ...] = ()  # a list attribute's choices
    position: int = 0


DEFINITION_COLUMNS = "key, label, type, options, position"


def definition_from_row(row: Any) -> AttributeDefinition:
    return AttributeDefinition(str(row["key"]), str(row["label"]), row["type"], tuple(json.loads(row["options"])),
                               int(row["position"]))


def definitions(tx: Tx) -> list[AttributeDefinition]:
    return [definition_from_row(r) for r in tx.all(f"SELECT {DEFINITION_COLUMNS} FROM customer_attribute_definitions "
                                                   "ORDER BY position, label")]


def definition(tx: Tx, key: str) -> AttributeDefinition | None:
    row = tx.one(f"SELECT {DEFINITION_COLUMNS} FROM customer_attribute_definitions WHERE key = ?", (key,))
    return None if row is None else definition_from_row(row)


class AttributeValueError(ValueError):
    """A value that does not fit its attribute's type; the message says why, in words for the agent."""


def check_value(definition: AttributeDefinition, value: object) -> str:
    """VALUE as stored (text), or AttributeValueError saying why it does not fit DEFINITION's type."""
    label = definition.label
    if definition.type == "number":
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise AttributeValueError(f"{label} is a number")
        try:
            number = float(value) if isinstance(value, str) else value
        except ValueError:
            raise AttributeValueError(f"{label} is a number: {str(value)[:40]!r} is not one") from None
        if isinstance(number, float) and not math.isfinite(number):
            raise AttributeValueError(f"{label} is a number: {str(value)[:40]!r} is not one")
        return _number_text(number)
    if not isinstance(value, str):
        raise AttributeValueError(f"{label} is {'a date (YYYY-MM-DD)' if definition.type == 'date' else 'text'}")
    text = value.strip()
    if definition.type == "date":
        try:
            if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
                raise ValueError(text)
            return date.fromisoformat(text).isoformat()
        except ValueError:
            raise AttributeValueError(f"{label} is a date, written YYYY-MM-DD: {text[:40]!r} is not one") from None
    if definition.type == "list":
        if text not in definition.options:
            raise AttributeValueError(f"{label} is one of {', '.join(definition.options)}: {text[:40]!r} is not")
        return text
    if len(text) > MAX_TEXT:
        raise AttributeValueError(f"{label} is at most {MAX_TEXT} characters ({len(text)} given)")
    return text


def _number_text(number: int | float) -> str:
    if isinstance(number, float) and number.is_integer() and abs(number) < 2**53:
        return str(int(number))
    return repr(number) if isinstance(number, float) else str(number)


def check_options(kind: AttributeType, options: Iterable[str]) -> tuple[str, ...]:
    """A list attribute's choices (at least one, no repeats); any other type has none."""
    cleaned = tuple(dict.fromkeys(o.strip() for o in options if o.strip()))
    if kind == "list" and not cleaned:
        raise AttributeValueError("a list attribute needs at least one option")
    if kind != "list" and cleaned:
        raise AttributeValueError(f"only a list attribute has options (this one is {kind})")
    return cleaned

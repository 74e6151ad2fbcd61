"""Which queue: ordered rules from config, first match wins, else the default queue.

A rule lists conditions; all given conditions must hold, and a list condition holds when any of its values matches:

    {"queue": "billing", "priority": 2, "channel": ["voice", "sms"], "line": ["+14155550100"], "ivr": ["2"],
     "keywords": ["invoice", "refund"], "tags": ["vip"], "attributes": {"plan": "gold"}, "language": ["es"]}
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hub.routing.types import CHANNELS, QueueId

_LIST_KEYS = ("channel", "line", "ivr", "keywords", "tags", "language")
_KEYS = {"queue", "priority", "attributes", "name", *_LIST_KEYS}
_WORD = re.compile(r"\w+", re.UNICODE)


class RuleError(ValueError):
    """A rule in config is malformed; the message names the rule and the field."""


@dataclass(frozen=True)
class Contact:
    """What routing may know about an inbound contact when it picks a queue."""

    channel: str
    line: str | None = None  # the business number or address the customer contacted
    ivr: str | None = None  # digits or option chosen in the IVR
    text: str = ""
    tags: frozenset[str] = frozenset()
    attributes: Mapping[str, str] = field(default_factory=dict)
    language: str | None = None


@dataclass(frozen=True)
class Route:
    queue: QueueId
    priority: int
    rule: str | None  # the rule's name (or index) that matched; None for the default queue


@dataclass(frozen=True)
class Rule:
    name: str
    queue: QueueId
    priority: int = 0
    channel: frozenset[str] = frozenset()
    line: frozenset[str] = frozenset()
    ivr: frozenset[str] = frozenset()
    keywords: tuple[tuple[str, ...], ...] = ()  # each keyword as its words, so "credit card" matches as a phrase
    tags: frozenset[str] = frozenset()
    attributes: Mapping[str, str] = field(default_factory=dict)
    language: frozenset[str] = frozenset()

    def matches(self, contact: Contact) -> bool:
        if self.channel and contact.channel not in self.channel:
            return False
        if self.line and contact.line not in self.line:
            return False
        if self.ivr and contact.ivr not in self.ivr:
            return False
        if self.language and (contact.language or "").lower().split("-")[0] not in self.language:
            return False
        if self.tags and not self.tags & contact.tags:
            return False
        if any(contact.attributes.get(k) != v for k, v in self.attributes.items()):
            return False
        return not self.keywords or _has_phrase(contact.text, self.keywords)


def _has_phrase(text: str, phrases: Iterable[tuple[str, ...]]) -> bool:
    words = [w.lower() for w in _WORD.findall(text)]
    for phrase in phrases:
        n = len(phrase)
        if any(tuple(words[i : i + n]) == phrase for i in range(len(words) - n + 1)):
            return True
    return False


class Rules:
    def __init__(self, rules: Sequence[Rule], default: QueueId) -> None:
        self.rules = tuple(rules)
        self.default = default

    def route(self, contact: Contact) -> Route:
        for rule in self.rules:
            if rule.matches(contact):
                return Route(rule.queue, rule.priority, rule.name)
        return Route(self.default, 0, None)

    @classmethod
    def from_config(cls, rules: Any, default: Any, queues: Iterable[QueueId] | None = None) -> Rules:
        """Build from config-shaped data (a list of dicts); `queues`, when given, are the queue ids that exist."""
        known = set(queues) if queues is not None else None
        if not isinstance(default, str) or not default:
            raise RuleError("default_queue: must be a non-empty string")
        if known is not None and default not in known:
            raise RuleError(f"default_queue: unknown queue {default!r}")
        if not isinstance(rules, list):
            raise RuleError("rules: must be a list of tables")
        return cls([parse_rule(raw, i, known) for i, raw in enumerate(rules)], default)


def parse_rule(raw: Any, index: int, known: set[QueueId] | None = None) -> Rule:
    where = f"rules[{index}]"
    if not isinstance(raw, dict):
        raise RuleError(f"{where}: must be a table, got {type(raw).__name__}")
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise RuleError(f"{where}: unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(_KEYS))}")
    name = raw.get("name", str(index))
    if not isinstance(name, str):
        raise RuleError(f"{where}.name: must be a string")
    where = f"rules[{index}] ({name})" if "name" in raw else where
    queue = raw.get("queue")
    if not isinstance(queue, str) or not queue:
        raise RuleError(f"{where}.queue: required, a non-empty string")
    if known is not None and queue not in known:
        raise RuleError(f"{where}.queue: unknown queue {queue!r}")
    priority = raw.get("priority", 0)
    if not isinstance(priority, int) or isinstance(priority, bool) or not -100 <= priority <= 100:
        raise RuleError(f"{where}.priority: must be an integer in -100..100")
    lists: dict[str, list[str]] = {}
    for key in _LIST_KEYS:
        value = raw.get(key, [])
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise RuleError(f"{where}.{key}: must be a string or a list of non-empty strings")
        lists[key] = value
    bad = [c for c in lists["channel"] if c not in CHANNELS]
    if bad:
        raise RuleError(f"{where}.channel: unknown channel {bad[0]!r}; known: {', '.join(CHANNELS)}")
    attributes = raw.get("attributes", {})
    if not isinstance(attributes, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in attributes.items()
    ):
        raise RuleError(f"{where}.attributes: must be a table of string values")
    keywords = tuple(tuple(w.lower() for w in _WORD.findall(k)) for k in lists["keywords"])
    if any(not k for k in keywords):
        raise RuleError(f"{where}.keywords: every keyword needs at least one letter or digit")
    if not any(lists.values()) and not attributes:
        raise RuleError(f"{where}: has no condition; use default_queue for a catch-all")
    return Rule(
        name=name,
        queue=queue,
        priority=priority,
        channel=frozenset(lists["channel"]),
        line=frozenset(lists["line"]),
        ivr=frozenset(lists["ivr"]),
        keywords=keywords,
        tags=frozenset(lists["tags"]),
        attributes=dict(attributes),
        language=frozenset(lang.lower().split("-")[0] for lang in lists["language"]),
    )

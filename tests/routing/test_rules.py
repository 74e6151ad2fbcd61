"""Which queue: first matching rule wins; config errors name the rule and field."""

from __future__ import annotations

from typing import Any

import pytest

from hub.routing.rules import Contact, RuleError, Rules

RULES: list[dict[str, Any]] = [
    {"name": "vip", "queue": "vip", "tags": ["vip"], "priority": 5},
    {"queue": "billing", "keywords": ["invoice", "credit card"], "channel": ["email", "webchat"]},
    {"queue": "spanish", "language": "es"},
    {"queue": "sales", "channel": "voice", "ivr": ["2"]},
    {"queue": "uk", "line": ["+442071838750"]},
    {"queue": "gold", "attributes": {"plan": "gold"}},
]
rules = Rules.from_config(RULES, "support")


@pytest.mark.parametrize(
    ("contact", "queue", "priority"),
    [
        (Contact("sms", tags=frozenset({"vip"}), text="invoice"), "vip", 5),
        (Contact("email", text="My Invoice is wrong"), "billing", 0),
        (Contact("webchat", text="my credit card was charged"), "billing", 0),
        (Contact("webchat", text="credit on my card"), "support", 0),  # a phrase, not two loose words
        (Contact("sms", text="invoice please"), "support", 0),  # channel condition fails
        (Contact("telegram", language="es-MX"), "spanish", 0),
        (Contact("voice", ivr="2"), "sales", 0),
        (Contact("voice", ivr="3"), "support", 0),
        (Contact("voice", line="+442071838750"), "uk", 0),
        (Contact("api", attributes={"plan": "gold"}), "gold", 0),
        (Contact("api", attributes={"plan": "free"}), "support", 0),
        (Contact("whatsapp"), "support", 0),
    ],
)
def test_first_match_wins(contact: Contact, queue: str, priority: int) -> None:
    route = rules.route(contact)
    assert (route.queue, route.priority) == (queue, priority)


def test_route_names_the_rule() -> None:
    assert rules.route(Contact("sms", tags=frozenset({"vip"}))).rule == "vip"
    assert rules.route(Contact("sms")).rule is None


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([{"channel": "sms"}], r"rules\[0\]\.queue: required"),
        ([{"queue": "x", "channel": "fax"}], r"rules\[0\]\.channel: unknown channel 'fax'"),
        ([{"queue": "x", "chanel": "sms"}], r"rules\[0\]: unknown field\(s\) chanel"),
        ([{"queue": "x"}], r"rules\[0\]: has no condition"),
        ([{"queue": "x", "keywords": ["!!"]}], r"keywords: every keyword"),
        ([{"queue": "x", "priority": "high", "tags": "a"}], r"priority: must be an integer"),
        ([{"name": "n", "queue": "x", "attributes": {"a": 1}}], r"rules\[0\] \(n\)\.attributes"),
        ([{"queue": "nope", "tags": "a"}], r"unknown queue 'nope'"),
        ("not a list", r"rules: must be a list"),
    ],
)
def test_invalid_rules_are_explained(raw: Any, message: str) -> None:
    with pytest.raises(RuleError, match=message):
        Rules.from_config(raw, "support", queues={"support", "x"})


def test_default_queue_must_exist() -> None:
    with pytest.raises(RuleError, match="default_queue: unknown queue 'gone'"):
        Rules.from_config([], "gone", queues={"support"})

"""Automation rules: when an event of one type happens, if every condition holds, then the actions run, in order.
This module is the rules' vocabulary and their pure evaluation; hub.automation.runner applies them."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hub.automation.hours import BusinessHours
from hub.event_log import TYPES
from hub.history.db import Row

ConditionField = Literal["channel", "queue", "label", "text", "customer_attribute", "business_hours", "agent",
                         "priority", "status", "event_type", "event_amount", "event_field", "csat_score"]
Operator = Literal["is", "is_not", "in", "not_in", "contains", "not_contains", "matches", "present", "absent",
                   "gt", "lt"]
ActionType = Literal["add_label", "remove_label", "set_priority", "move_to_queue", "assign_agent", "send_reply",
                     "add_note", "resolve", "send_webhook", "set_attribute"]

#: which operators each field takes
OPERATORS: dict[str, tuple[str, ...]] = {
    "channel": ("is", "is_not", "in", "not_in"),
    "queue": ("is", "is_not", "in", "not_in"),
    "status": ("is", "is_not", "in", "not_in"),
    "label": ("contains", "not_contains"),
    "text": ("contains", "not_contains", "matches"),
    "customer_attribute": ("is", "is_not", "contains", "present", "absent", "gt", "lt"),
    "business_hours": ("is",),
    "agent": ("is", "is_not", "present", "absent"),
    "priority": ("is", "is_not", "gt", "lt"),
    # the business event a business_event.received carries (hub.business_events); absent on other events
    "event_type": ("is", "is_not", "in", "not_in"),
    "event_amount": ("gt", "lt", "present", "absent"),
    "event_field": ("is", "is_not", "contains", "present", "absent", "gt", "lt"),
    #: the score of a survey answer (csat.received, csat.low); absent on other events' messages
    "csat_score": ("is", "is_not", "gt", "lt"),
}
#: fields that name what they look at in `name`: a customer attribute, a key of the business event's payload
_NAMED = ("customer_attribute", "event_field")
_NO_VALUE = ("present", "absent")
#: actions that need a value, and its type
_ACTION_VALUES: dict[str, type | None] = {
    "add_label": str, "remove_label": str, "set_priority": int, "move_to_queue": str, "assign_agent": int,
    "send_reply": str, "add_note": str, "resolve": None, "send_webhook": int, "set_attribute": str,
}
_LABEL = re.compile(r"^[\w][\w .:/-]{0,63}$")
# A repeated group that repeats inside, like (a+)+ or (\w*x)*: Python's re can take forever on such a pattern, and
# rules run inside the database's write transaction, so these are refused.
_NESTED_REPEAT = re.compile(r"\((?:[^()\\]|\\.)*[+*}](?:[^()\\]|\\.)*\)\s*[+*{]")


class Condition(BaseModel):
    """One test on the event: `{"field": "text", "op": "contains", "value": "refund"}`. customer_attribute names
    the attribute in `name`; business_hours is `is` "open" or "closed" (the conversation's queue, else default)."""

    model_config = ConfigDict(extra="forbid")

    field: ConditionField
    op: Operator
    value: str | int | list[str] | None = None
    name: str | None = Field(None, max_length=64, description="the customer attribute (customer_attribute), or the "
                                                               "business event's payload key (event_field)")

    @model_validator(mode="after")
    def _fits(self) -> Condition:
        ops = OPERATORS[self.field]
        if self.op not in ops:
            raise ValueError(f"{self.field} takes the operators {', '.join(ops)}, not {self.op}")
        if self.op in _NO_VALUE:
            if self.value is not None:
                raise ValueError(f"{self.op} takes no value")
        elif self.value is None or self.value == "" or self.value == []:
            raise ValueError(f"{self.field} {self.op} needs a value")
        if self.op in ("in", "not_in") and not isinstance(self.value, list):
            raise ValueError(f"{self.op} takes a list of values")
        if self.op not in ("in", "not_in") and isinstance(self.value, list):
            raise ValueError(f"{self.op} takes one value, not a list")
        if self.field in ("agent", "priority", "csat_score") and self.op not in _NO_VALUE \
                and (not isinstance(self.value, int) or isinstance(self.value, bool)):
            raise ValueError(f"{self.field} compares with a whole number")
        if self.op in ("gt", "lt") and _number(self.value) is None:
            raise ValueError(f"{self.op} compares with a number")
        if self.field == "business_hours" and self.value not in ("open", "closed"):
            raise ValueError('business_hours is "open" or "closed"')
        if self.field in _NAMED and not self.name:
            what = "the attribute's name" if self.field == "customer_attribute" else "the payload key in name"
            raise ValueError(f"{self.field} needs {what}")
        if self.field not in _NAMED and self.name is not None:
            raise ValueError("name is for customer_attribute and event_field only")
        if self.op == "matches":
            if not isinstance(self.value, str) or len(self.value) > 200:
                raise ValueError("matches takes a regular expression of at most 200 characters")
            try:
                re.compile(self.value)
            except re.error as e:
                raise ValueError(f"not a regular expression: {e}") from None
            if _NESTED_REPEAT.search(self.value):
                raise ValueError("a repeated group that repeats inside, like (a+)+, can take forever; write it "
                                 "without the nesting")
        return self


class Action(BaseModel):
    """One thing to do: `{"type": "add_label", "value": "refund"}`. set_attribute names the attribute in `name`;
    send_webhook's value is a webhook subscription id (it gets this event whatever event types it wants)."""

    model_config = ConfigDict(extra="forbid")

    type: ActionType
    value: str | int | None = None
    name: str | None = Field(None, max_length=64, description="the customer attribute (set_attribute only)")

    @model_validator(mode="after")
    def _fits(self) -> Action:
        want = _ACTION_VALUES[self.type]
        if want is None and self.value is not None:
            raise ValueError(f"{self.type} takes no value")
        if want is int and (not isinstance(self.value, int) or isinstance(self.value, bool)):
            raise ValueError(f"{self.type} takes a whole number")
        if self.type == "set_priority" and not -1000 <= int(self.value) <= 1000:  # type: ignore[arg-type]
            raise ValueError("a priority is from -1000 to 1000")
        if self.type in ("assign_agent", "send_webhook") and not 1 <= int(self.value) <= 2**63 - 1:  # type: ignore[arg-type]
            raise ValueError(f"{self.type} takes an id (a whole number from 1)")
        if want is str and (not isinstance(self.value, str) or not self.value.strip()):
            raise ValueError(f"{self.type} takes a non-empty text")
        if self.type in ("add_label", "remove_label") and not _LABEL.match(str(self.value)):
            raise ValueError("a label is 1-64 letters, digits, spaces or . : / - _")
        if self.type == "set_attribute" and not self.name:
            raise ValueError("set_attribute needs the attribute's name")
        if self.type != "set_attribute" and self.name is not None:
            raise ValueError("name is for set_attribute only")
        if isinstance(self.value, str) and len(self.value) > 4000:
            raise ValueError("value is longer than 4000 characters")
        return self


class RuleBody(BaseModel):
    """A rule as the API takes it (POST creates, PUT replaces)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=120)
    event: Literal[TYPES]  # type: ignore[valid-type]
    enabled: bool = True
    position: int | None = Field(None, ge=0, description="rules run in ascending position; default: last")
    conditions: list[Condition] = Field(default_factory=list, max_length=20)
    actions: list[Action] = Field(min_length=1, max_length=20)


@dataclass
class Rule:
    id: int
    name: str
    event: str
    position: int
    enabled: bool
    conditions: list[Condition]
    actions: list[Action]
    runs: int
    last_run_at: str | None
    created_at: str
    updated_at: str
    problem: str | None = None  # what it could not do the last time it ran, until it is saved again
    problem_at: str | None = None

    @classmethod
    def from_row(cls, row: Row) -> Rule:
        return cls(
            id=int(row["id"]), name=str(row["name"]), event=str(row["event"]), position=int(row["position"]),
            enabled=bool(row["enabled"]),
            conditions=[Condition.model_validate(c) for c in json.loads(row["conditions"])],
            actions=[Action.model_validate(a) for a in json.loads(row["actions"])],
            runs=int(row["runs"]), last_run_at=row["last_run_at"], created_at=str(row["created_at"]),
            updated_at=str(row["updated_at"]), problem=row["problem"], problem_at=row["problem_at"],
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "name": self.name, "event": self.event, "position": self.position,
            "enabled": self.enabled,
            "conditions": [c.model_dump(exclude_none=True) for c in self.conditions],
            "actions": [a.model_dump(exclude_none=True) for a in self.actions],
            "runs": self.runs, "last_run_at": self.last_run_at,
            "created_at": self.created_at, "updated_at": self.updated_at,
            "problem": self.problem, "problem_at": self.problem_at,
        }


@dataclass
class Facts:
    """What a rule's conditions look at: the conversation as it is now, the event's message, and when it happened."""

    conversation: dict[str, Any]
    labels: set[str]
    attributes: dict[str, str]
    message: dict[str, Any] | None
    at: datetime
    hours: BusinessHours | None
    priority: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def _number(v: Any) -> float | None:
    """V as a number, if it is one (attributes and payload values may be text: "620" compares as 620)."""
    if isinstance(v, bool) or v is None or isinstance(v, list):
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _compare(op: str, actual: Any, value: Any) -> bool:
    if op == "is":
        return bool(actual == value)
    if op == "is_not":
        return bool(actual != value)
    if op == "in":
        return actual in value
    if op == "not_in":
        return actual not in value
    if op == "present":
        return actual is not None and actual != ""
    if op == "absent":
        return actual is None or actual == ""
    if op in ("gt", "lt"):
        a, v = _number(actual), _number(value)
        if a is None or v is None:
            return False
        return a > v if op == "gt" else a < v
    raise AssertionError(op)


def holds(c: Condition, f: Facts) -> bool:
    conv, msg = f.conversation, f.message
    if c.field == "channel":
        return _compare(c.op, (msg or conv)["channel"], c.value)
    if c.field == "queue":
        return _compare(c.op, conv.get("queue"), c.value)
    if c.field == "status":
        return _compare(c.op, conv.get("status"), c.value)
    if c.field == "agent":
        return _compare(c.op, conv.get("agent_id"), c.value)
    if c.field == "priority":
        return _compare(c.op, f.priority, c.value)
    if c.field == "csat_score":
        answer = ((msg or {}).get("meta") or {}).get("csat")
        return _compare(c.op, answer.get("score") if isinstance(answer, dict) else None, c.value)
    if c.field == "label":
        has = str(c.value).casefold() in {label.casefold() for label in f.labels}
        return has if c.op == "contains" else not has
    if c.field == "text":
        text = str((msg or {}).get("text") or "")
        if c.op == "matches":
            return re.search(str(c.value), text, re.IGNORECASE) is not None
        found = str(c.value).casefold() in text.casefold()
        return found if c.op == "contains" else not found
    if c.field == "customer_attribute":
        actual = f.attributes.get(str(c.name))
        if c.op == "contains":
            return actual is not None and str(c.value).casefold() in actual.casefold()
        if c.op in ("gt", "lt"):
            return _compare(c.op, actual, c.value)
        return _compare(c.op, actual, None if c.value is None else str(c.value))
    if c.field.startswith("event_"):
        event = business_event(msg)
        if c.field == "event_type":
            return _compare(c.op, event.get("type"), c.value)
        if c.field == "event_amount":
            return _compare(c.op, event.get("amount"), c.value)
        found = event.get("payload", {}).get(str(c.name))
        if c.op == "contains":
            return found is not None and str(c.value).casefold() in str(found).casefold()
        if c.op in ("is", "is_not"):
            return _compare(c.op, None if found is None else str(found), str(c.value))
        return _compare(c.op, found, c.value)
    if c.field == "business_hours":
        is_open = f.hours is None or f.hours.is_open(f.at)  # no hours set: always open
        return is_open == (c.value == "open")
    raise AssertionError(c.field)


def business_event(message: dict[str, Any] | None) -> dict[str, Any]:
    """The business event a timeline card carries (empty for any other message)."""
    event = ((message or {}).get("meta") or {}).get("business_event")
    return event if isinstance(event, dict) else {}


def matches(conditions: list[Condition], f: Facts) -> bool:
    """Every condition holds (no conditions: always)."""
    return all(holds(c, f) for c in conditions)

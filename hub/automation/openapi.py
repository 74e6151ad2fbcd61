"""The OpenAPI part for automation rules, business hours, outbound webhooks and bots (merged into hub.api.openapi):
their paths, and the models of their answers."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from hub.api.doc_parts import body as _body
from hub.api.doc_parts import json_response as _json
from hub.api.responses import Answer, DeletedId, DeletedName, Error, Omittable
from hub.automation.hours import BusinessHours
from hub.automation.rules import Action, Condition, RuleBody
from hub.bots.registry import BotBody
from hub.webhooks.api import STATUSES, DeliveryStatus, WebhookCreateBody, WebhookPatchBody


def _id(name: str, what: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "integer"}, "description": what}


_READ = {"400": _json(Error, "Bad request"), "401": _json(Error, "No valid bearer token"),
         "403": _json(Error, "Not an admin"), "404": _json(Error, "Not found")}
_WRITE = {**_READ, "413": _json(Error, "Body over server.max_body_bytes"), "415": _json(Error, "Not JSON"),
          "422": _json(Error, "Invalid body; details lists each field")}


class Rule(Answer):
    id: int
    name: str
    event: str
    position: int
    enabled: bool
    conditions: list[Condition]
    actions: list[Action]
    runs: int = Field(description="how many events it acted on")
    last_run_at: str | None
    created_at: Omittable[str] = None
    updated_at: Omittable[str] = None
    problem: str | None = Field(None, description="what the rule could not do the last time it ran (e.g. a "
                                "set_attribute value its attribute's type refuses); cleared when it is saved")
    problem_at: str | None = None


class HoursStatus(BusinessHours):
    # an answer, not a body: unlike BusinessHours, more keys may come
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    open: bool = Field(description="open now")
    # BusinessHours.next_open() computes it: the field keeps the key and takes another Python name
    opens_next: str | None = Field(alias="next_open", description="when it next opens (now if open)")


class WebhookSubscription(Answer):
    id: int
    url: str
    events: list[str]
    enabled: bool
    disabled_reason: str | None = Field(description="why the hub disabled it (persistent delivery failure)")
    secret: str = Field(description="whole only when created or rotated; otherwise its start")
    description: str
    created_at: Omittable[str] = None
    updated_at: Omittable[str] = None


class WebhookDelivery(Answer):
    id: int
    subscription_id: int
    event_id: int
    event_type: Omittable[str] = None
    conversation_id: int | None = None
    status: DeliveryStatus
    attempts: int
    next_attempt_at: Omittable[str] = None
    response_status: int | None = Field(description="the receiver's last HTTP status")
    last_error: str | None
    created_at: Omittable[str] = None
    updated_at: Omittable[str] = None
    delivered_at: str | None = None


class RuleMatch(Answer):
    event_id: int
    conversation_id: int
    at: str
    text: str | None = None


class DryRun(Answer):
    examined: int
    matches: list[RuleMatch]


class RuleList(Answer):
    items: list[Rule]


class HoursList(Answer):
    items: dict[str, HoursStatus]


class WebhookSubscriptionList(Answer):
    items: list[WebhookSubscription]


class WebhookDeliveryList(Answer):
    items: list[WebhookDelivery]


class Bot(Answer):
    queue: str
    url: str
    handoff_queue: str
    enabled: bool
    secret: str = Field(description="whole only when new or given; otherwise its start")
    updated_at: Omittable[str] = None


class BotList(Answer):
    items: list[Bot]



def _deleted(model: type[BaseModel]) -> dict[str, Any]:
    return _json(model, "Deleted")


_RULE_ID = _id("id", "rule id")
_SUB_ID = _id("id", "webhook subscription id")
_HOURS_NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"},
               "description": "a queue's name, or default"}

PATHS: dict[str, dict[str, Any]] = {
    "/api/v1/automation/rules": {
        "get": {"summary": "Automation rules in the order they run (admin)",
                "responses": {"200": _json(RuleList), **_READ}},
        "post": {"summary": "Create a rule: when EVENT, if every condition holds, then the actions (admin)",
                 "requestBody": _body(RuleBody),
                 "responses": {"201": _json(Rule, "Created"), **_WRITE}},
    },
    "/api/v1/automation/rules/dry-run": {
        "post": {
            "summary": "Which recent events of the rule's type it would have matched; nothing is changed (admin)",
            "parameters": [{"name": "limit", "in": "query", "required": False,
                            "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
                            "description": "how many recent events to examine (default 200)"}],
            "requestBody": _body(RuleBody),
            "responses": {"200": _json(DryRun),
                **_WRITE},
        },
    },
    "/api/v1/automation/rules/{id}": {
        "get": {"summary": "One rule, with how often and when it last ran (admin)", "parameters": [_RULE_ID],
                "responses": {"200": _json(Rule), **_READ}},
        "put": {"summary": "Replace a rule (admin)", "parameters": [_RULE_ID], "requestBody": _body(RuleBody),
                "responses": {"200": _json(Rule), **_WRITE}},
        "delete": {"summary": "Delete a rule (admin)", "parameters": [_RULE_ID],
                   "responses": {"200": _deleted(DeletedId), **_READ}},
    },
    "/api/v1/business-hours": {
        "get": {"summary": "Business hours by queue name (and default), each with whether it is open now",
                "responses": {"200": _json(HoursList), **_READ}},
    },
    "/api/v1/business-hours/{name}": {
        "get": {"summary": "A queue's (or the default) business hours, and whether it is open now",
                "parameters": [_HOURS_NAME], "responses": {"200": _json(HoursStatus), **_READ}},
        "put": {"summary": "Set a queue's (or the default) business hours (admin)", "parameters": [_HOURS_NAME],
                "requestBody": _body(BusinessHours), "responses": {"200": _json(HoursStatus), **_WRITE}},
        "delete": {"summary": "Remove a queue's hours (it falls back to default; no hours: always open) (admin)",
                   "parameters": [_HOURS_NAME], "responses": {"200": _deleted(DeletedName), **_READ}},
    },
    "/api/v1/webhooks": {
        "get": {"summary": "Webhook subscriptions (admin)",
                "responses": {"200": _json(WebhookSubscriptionList), **_READ}},
        "post": {"summary": "Subscribe a URL to event types; the answer shows the signing secret once (admin)",
                 "requestBody": _body(WebhookCreateBody),
                 "responses": {"201": _json(WebhookSubscription, "Created"), **_WRITE}},
    },
    "/api/v1/webhooks/{id}": {
        "get": {"summary": "One subscription (admin)", "parameters": [_SUB_ID],
                "responses": {"200": _json(WebhookSubscription), **_READ}},
        "patch": {"summary": "Change a subscription: url, events, enabled (resumes waiting deliveries), "
                             "description, rotate_secret (admin)",
                  "parameters": [_SUB_ID], "requestBody": _body(WebhookPatchBody),
                  "responses": {"200": _json(WebhookSubscription), **_WRITE}},
        "delete": {"summary": "Delete a subscription and its delivery log (admin)", "parameters": [_SUB_ID],
                   "responses": {"200": _deleted(DeletedId), **_READ}},
    },
    "/api/v1/webhooks/{id}/deliveries": {
        "get": {"summary": "The delivery log, newest first, with response codes and errors (admin)",
                "parameters": [_SUB_ID,
                               {"name": "status", "in": "query", "required": False,
                                "schema": {"enum": list(STATUSES)}, "description": "only deliveries in this state"},
                               {"name": "limit", "in": "query", "required": False,
                                "schema": {"type": "integer", "minimum": 1, "maximum": 200},
                                "description": "at most this many (default 50)"}],
                "responses": {"200": _json(WebhookDeliveryList), **_READ}},
    },
    "/api/v1/webhooks/{id}/deliveries/{delivery}/resend": {
        "post": {"summary": "Send a delivery again, whatever became of it (admin)",
                 "parameters": [_SUB_ID, _id("delivery", "delivery id")],
                 "responses": {"202": _json(WebhookDelivery, "Queued again"), **_READ}},
    },
}

_QUEUE = {"name": "queue", "in": "path", "required": True, "schema": {"type": "string"}, "description": "queue"}
PATHS["/api/v1/bots"] = {
    "get": {"summary": "Queues that have a bot answering first (admin)",
            "responses": {"200": _json(BotList), **_READ}},
}
PATHS["/api/v1/bots/{queue}"] = {
    "get": {"summary": "A queue's bot (admin)", "parameters": [_QUEUE],
            "responses": {"200": _json(Bot), **_READ}},
    "put": {"summary": "Give a queue a bot that answers first and hands off to handoff_queue (admin)",
            "parameters": [_QUEUE], "requestBody": _body(BotBody),
            "responses": {"200": _json(Bot), **_WRITE}},
    "delete": {"summary": "Remove a queue's bot (admin)", "parameters": [_QUEUE],
               "responses": {"200": _deleted(DeletedName), **_READ}},
}


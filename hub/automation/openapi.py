"""The OpenAPI part for automation rules, business hours and outbound webhooks (merged into hub.api.openapi)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from hub.api.doc_parts import INT_OR_NULL as _INT_OR_NULL
from hub.api.doc_parts import STR_OR_NULL as _STR_OR_NULL
from hub.api.doc_parts import body as _body
from hub.api.doc_parts import json_response as _json
from hub.api.doc_parts import ref as _ref
from hub.automation.hours import BusinessHours
from hub.automation.rules import RuleBody
from hub.bots.registry import BotBody
from hub.webhooks.api import STATUSES, WebhookCreateBody, WebhookPatchBody


def _id(name: str, what: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "integer"}, "description": what}


_ERR = _ref("Error")
_READ = {"400": _json(_ERR, "Bad request"), "401": _json(_ERR, "No valid bearer token"),
         "403": _json(_ERR, "Not an admin"), "404": _json(_ERR, "Not found")}
_WRITE = {**_READ, "413": _json(_ERR, "Body over server.max_body_bytes"), "415": _json(_ERR, "Not JSON"),
          "422": _json(_ERR, "Invalid body; details lists each field")}

RULE = {
    "type": "object",
    "required": ["id", "name", "event", "position", "enabled", "conditions", "actions", "runs", "last_run_at"],
    "properties": {
        "id": {"type": "integer"}, "name": {"type": "string"}, "event": {"type": "string"},
        "position": {"type": "integer"}, "enabled": {"type": "boolean"},
        "conditions": {"type": "array", "items": _ref("Condition")},
        "actions": {"type": "array", "items": _ref("Action")},
        "runs": {"type": "integer", "description": "how many events it acted on"},
        "last_run_at": _STR_OR_NULL, "created_at": {"type": "string"}, "updated_at": {"type": "string"},
        "problem": _STR_OR_NULL | {"description": "what the rule could not do the last time it ran (e.g. a "
                                   "set_attribute value its attribute's type refuses); cleared when it is saved"},
        "problem_at": _STR_OR_NULL,
    },
}
_HOURS = BusinessHours.model_json_schema()
HOURS_STATUS = {
    "type": "object",
    "required": [*_HOURS["required"], "open", "next_open"],
    "properties": {
        **_HOURS["properties"],
        "open": {"type": "boolean", "description": "open now"},
        "next_open": {**_STR_OR_NULL, "description": "when it next opens (now if open)"},
    },
}
SUBSCRIPTION = {
    "type": "object",
    "required": ["id", "url", "events", "enabled", "disabled_reason", "secret", "description"],
    "properties": {
        "id": {"type": "integer"}, "url": {"type": "string"},
        "events": {"type": "array", "items": {"type": "string"}}, "enabled": {"type": "boolean"},
        "disabled_reason": {**_STR_OR_NULL, "description": "why the hub disabled it (persistent delivery failure)"},
        "secret": {"type": "string", "description": "whole only when created or rotated; otherwise its start"},
        "description": {"type": "string"}, "created_at": {"type": "string"}, "updated_at": {"type": "string"},
    },
}
DELIVERY = {
    "type": "object",
    "required": ["id", "subscription_id", "event_id", "status", "attempts", "response_status", "last_error"],
    "properties": {
        "id": {"type": "integer"}, "subscription_id": {"type": "integer"}, "event_id": {"type": "integer"},
        "event_type": {"type": "string"}, "conversation_id": _INT_OR_NULL, "status": {"enum": list(STATUSES)},
        "attempts": {"type": "integer"}, "next_attempt_at": {"type": "string"},
        "response_status": {**_INT_OR_NULL, "description": "the receiver's last HTTP status"},
        "last_error": _STR_OR_NULL, "created_at": {"type": "string"}, "updated_at": {"type": "string"},
        "delivered_at": _STR_OR_NULL,
    },
}


def _items(schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": ["items"], "properties": {"items": {"type": "array", "items": schema}}}


def _deleted(kind: str) -> dict[str, Any]:
    return _json({"type": "object", "required": ["deleted"], "properties": {"deleted": {"type": kind}}}, "Deleted")


_RULE_ID = _id("id", "rule id")
_SUB_ID = _id("id", "webhook subscription id")
_HOURS_NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"},
               "description": "a queue's name, or default"}

PATHS: dict[str, dict[str, Any]] = {
    "/api/v1/automation/rules": {
        "get": {"summary": "Automation rules in the order they run (admin)",
                "responses": {"200": _json(_items(_ref("Rule"))), **_READ}},
        "post": {"summary": "Create a rule: when EVENT, if every condition holds, then the actions (admin)",
                 "requestBody": _body(RuleBody),
                 "responses": {"201": _json(_ref("Rule"), "Created"), **_WRITE}},
    },
    "/api/v1/automation/rules/dry-run": {
        "post": {
            "summary": "Which recent events of the rule's type it would have matched; nothing is changed (admin)",
            "parameters": [{"name": "limit", "in": "query", "required": False,
                            "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
                            "description": "how many recent events to examine (default 200)"}],
            "requestBody": _body(RuleBody),
            "responses": {"200": _json({
                "type": "object", "required": ["examined", "matches"],
                "properties": {"examined": {"type": "integer"}, "matches": {"type": "array", "items": {
                    "type": "object", "required": ["event_id", "conversation_id", "at"],
                    "properties": {"event_id": {"type": "integer"}, "conversation_id": {"type": "integer"},
                                   "at": {"type": "string"}, "text": _STR_OR_NULL}}}}}),
                **_WRITE},
        },
    },
    "/api/v1/automation/rules/{id}": {
        "get": {"summary": "One rule, with how often and when it last ran (admin)", "parameters": [_RULE_ID],
                "responses": {"200": _json(_ref("Rule")), **_READ}},
        "put": {"summary": "Replace a rule (admin)", "parameters": [_RULE_ID], "requestBody": _body(RuleBody),
                "responses": {"200": _json(_ref("Rule")), **_WRITE}},
        "delete": {"summary": "Delete a rule (admin)", "parameters": [_RULE_ID],
                   "responses": {"200": _deleted("integer"), **_READ}},
    },
    "/api/v1/business-hours": {
        "get": {"summary": "Business hours by queue name (and default), each with whether it is open now",
                "responses": {"200": _json({"type": "object", "required": ["items"], "properties": {
                    "items": {"type": "object", "additionalProperties": HOURS_STATUS}}}), **_READ}},
    },
    "/api/v1/business-hours/{name}": {
        "get": {"summary": "A queue's (or the default) business hours, and whether it is open now",
                "parameters": [_HOURS_NAME], "responses": {"200": _json(HOURS_STATUS), **_READ}},
        "put": {"summary": "Set a queue's (or the default) business hours (admin)", "parameters": [_HOURS_NAME],
                "requestBody": _body(BusinessHours), "responses": {"200": _json(HOURS_STATUS), **_WRITE}},
        "delete": {"summary": "Remove a queue's hours (it falls back to default; no hours: always open) (admin)",
                   "parameters": [_HOURS_NAME], "responses": {"200": _deleted("string"), **_READ}},
    },
    "/api/v1/webhooks": {
        "get": {"summary": "Webhook subscriptions (admin)",
                "responses": {"200": _json(_items(_ref("WebhookSubscription"))), **_READ}},
        "post": {"summary": "Subscribe a URL to event types; the answer shows the signing secret once (admin)",
                 "requestBody": _body(WebhookCreateBody),
                 "responses": {"201": _json(_ref("WebhookSubscription"), "Created"), **_WRITE}},
    },
    "/api/v1/webhooks/{id}": {
        "get": {"summary": "One subscription (admin)", "parameters": [_SUB_ID],
                "responses": {"200": _json(_ref("WebhookSubscription")), **_READ}},
        "patch": {"summary": "Change a subscription: url, events, enabled (resumes waiting deliveries), "
                             "description, rotate_secret (admin)",
                  "parameters": [_SUB_ID], "requestBody": _body(WebhookPatchBody),
                  "responses": {"200": _json(_ref("WebhookSubscription")), **_WRITE}},
        "delete": {"summary": "Delete a subscription and its delivery log (admin)", "parameters": [_SUB_ID],
                   "responses": {"200": _deleted("integer"), **_READ}},
    },
    "/api/v1/webhooks/{id}/deliveries": {
        "get": {"summary": "The delivery log, newest first, with response codes and errors (admin)",
                "parameters": [_SUB_ID,
                               {"name": "status", "in": "query", "required": False,
                                "schema": {"enum": list(STATUSES)}, "description": "only deliveries in this state"},
                               {"name": "limit", "in": "query", "required": False,
                                "schema": {"type": "integer", "minimum": 1, "maximum": 200},
                                "description": "at most this many (default 50)"}],
                "responses": {"200": _json(_items(_ref("WebhookDelivery"))), **_READ}},
    },
    "/api/v1/webhooks/{id}/deliveries/{delivery}/resend": {
        "post": {"summary": "Send a delivery again, whatever became of it (admin)",
                 "parameters": [_SUB_ID, _id("delivery", "delivery id")],
                 "responses": {"202": _json(_ref("WebhookDelivery"), "Queued again"), **_READ}},
    },
}

BOT = {
    "type": "object",
    "required": ["queue", "url", "handoff_queue", "enabled", "secret"],
    "properties": {
        "queue": {"type": "string"}, "url": {"type": "string"}, "handoff_queue": {"type": "string"},
        "enabled": {"type": "boolean"},
        "secret": {"type": "string", "description": "whole only when new or given; otherwise its start"},
        "updated_at": {"type": "string"},
    },
}
_QUEUE = {"name": "queue", "in": "path", "required": True, "schema": {"type": "string"}, "description": "queue"}
PATHS["/api/v1/bots"] = {
    "get": {"summary": "Queues that have a bot answering first (admin)",
            "responses": {"200": _json(_items(_ref("Bot"))), **_READ}},
}
PATHS["/api/v1/bots/{queue}"] = {
    "get": {"summary": "A queue's bot (admin)", "parameters": [_QUEUE],
            "responses": {"200": _json(_ref("Bot")), **_READ}},
    "put": {"summary": "Give a queue a bot that answers first and hands off to handoff_queue (admin)",
            "parameters": [_QUEUE], "requestBody": _body(BotBody),
            "responses": {"200": _json(_ref("Bot")), **_WRITE}},
    "delete": {"summary": "Remove a queue's bot (admin)", "parameters": [_QUEUE],
               "responses": {"200": _deleted("string"), **_READ}},
}

SCHEMAS: dict[str, Any] = {"Rule": RULE, "WebhookSubscription": SUBSCRIPTION, "WebhookDelivery": DELIVERY, "Bot": BOT}
MODELS: tuple[type[BaseModel], ...] = (RuleBody, BusinessHours, WebhookCreateBody, WebhookPatchBody, BotBody)

"""The OpenAPI part for business events (POST /api/v1/events) and segments (merged into hub.api.openapi)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from hub.business_events import BusinessEventBody
from hub.segments.criteria import GROUPS, Criteria
from hub.segments.segment_store import SegmentBody

_STR_OR_NULL = {"type": ["string", "null"]}
_NUM_OR_NULL = {"type": ["number", "null"]}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _body(model: type[BaseModel]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": _ref(model.__name__)}}}


_ERR = _ref("Error")
_READ = {"400": _json(_ERR, "Bad request"), "401": _json(_ERR, "No valid bearer token"),
         "403": _json(_ERR, "Not an admin or a supervisor"), "404": _json(_ERR, "Not found")}
_WRITE = {**_READ, "413": _json(_ERR, "Body over server.max_body_bytes"), "415": _json(_ERR, "Not JSON"),
          "422": _json(_ERR, "Invalid body; details lists each field")}
_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}, "description": "segment id"}

BUSINESS_EVENT = {
    "type": "object",
    "required": ["id", "external_id", "type", "customer_id", "amount", "currency", "items", "payload",
                 "message_id", "conversation_id", "occurred_at", "created_at"],
    "properties": {
        "id": {"type": "integer"}, "external_id": {"type": "string"}, "type": {"type": "string"},
        "customer_id": {"type": "integer"}, "amount": _NUM_OR_NULL, "currency": _STR_OR_NULL,
        "items": {"type": "array", "items": {"type": "object"}}, "payload": {"type": "object"},
        "attributes": {"type": "object"},
        "message_id": {"type": "integer", "description": "the card on the customer's timeline"},
        "conversation_id": {"type": "integer"}, "occurred_at": {"type": "string"}, "created_at": {"type": "string"},
    },
}
SEGMENT = {
    "type": "object",
    "required": ["id", "name", "description", "criteria", "created_at", "updated_at"],
    "properties": {
        "id": {"type": "integer"}, "name": {"type": "string"}, "description": {"type": "string"},
        "criteria": {"type": "object"}, "created_at": {"type": "string"}, "updated_at": {"type": "string"},
        "size": {"type": ["integer", "null"], "description": "customers in it (the list: the last recorded size)"},
        "trend": {"type": "array", "items": {"type": "object", "required": ["day", "size"], "properties": {
            "day": {"type": "string"}, "size": {"type": "integer"}}}},
    },
}
_GROUP = {"enum": [*GROUPS, "other"]}
SEGMENT_CUSTOMER = {
    "type": "object",
    "required": ["customer_id", "name", "contacts", "last_contact_at", "orders", "order_value", "recency_score",
                 "frequency_score", "monetary_score", "rfm_group", "identities"],
    "properties": {
        "customer_id": {"type": "integer"}, "name": {"type": "string"}, "contacts": {"type": "integer"},
        "last_contact_at": _STR_OR_NULL, "orders": {"type": "integer"}, "order_value": {"type": "number"},
        "last_order_at": _STR_OR_NULL, "csat_average": _NUM_OR_NULL,
        "recency_score": {"type": "integer", "minimum": 1, "maximum": 5},
        "frequency_score": {"type": "integer", "minimum": 1, "maximum": 5},
        "monetary_score": {"type": "integer", "minimum": 1, "maximum": 5}, "rfm_group": _GROUP,
        "identities": {"type": "array", "items": {"type": "string"}},
    },
}
SCHEMAS = {"BusinessEvent": BUSINESS_EVENT, "Segment": SEGMENT, "SegmentCustomer": SEGMENT_CUSTOMER}
MODELS: tuple[type[BaseModel], ...] = (BusinessEventBody, SegmentBody, Criteria)

_CSV = {"text/csv": {"schema": {"type": "string"}}}
PATHS: dict[str, Any] = {
    "/api/v1/events": {"post": {
        "tags": ["Business events"],
        "summary": "Record a business event (order.placed, payment.failed, or any type with a JSON payload) on a "
                   "customer's timeline, and set their attributes; the same external_id again answers the same "
                   "result (200), with another body a 409 (admin token)",
        "requestBody": _body(BusinessEventBody),
        "responses": {
            "201": _json({"type": "object", "required": ["event", "duplicate"], "properties": {
                "event": _ref("BusinessEvent"), "duplicate": {"type": "boolean"}}}, "Recorded"),
            "200": _json({"type": "object", "required": ["event", "duplicate"], "properties": {
                "event": _ref("BusinessEvent"), "duplicate": {"type": "boolean"}}}, "A replay: recorded before"),
            "409": _json(_ERR, "This external_id was used for another event"),
            **{**_WRITE, "403": _json(_ERR, "Not an admin token")},
        },
    }},
    "/api/v1/segments": {
        "get": {"summary": "Every saved segment, with its last recorded size",
                "responses": {"200": _json({"type": "object", "required": ["items"], "properties": {
                    "items": {"type": "array", "items": _ref("Segment")}}}), **_READ}},
        "post": {"summary": "Save a segment", "requestBody": _body(SegmentBody),
                 "responses": {"201": _json(_ref("Segment"), "Saved"), **_WRITE}},
    },
    "/api/v1/segments/rfm": {"get": {
        "summary": "The RFM groups (champions, loyal, at risk, lost, other) with their rules and sizes, and the "
                   "quintile boundaries the scores 1-5 come from",
        "responses": {"200": _json({"type": "object", "required": ["groups", "customers", "boundaries"],
                                    "properties": {
                                        "groups": {"type": "array", "items": {
                                            "type": "object", "required": ["group", "rule", "size"],
                                            "properties": {"group": _GROUP, "rule": {"type": "string"},
                                                           "description": {"type": "string"},
                                                           "size": {"type": "integer"}}}},
                                        "customers": {"type": "integer"}, "boundaries": {"type": "object"}}}),
                      **_READ},
    }},
    "/api/v1/segments/preview": {"post": {
        "summary": "How many customers these criteria hold (nothing is saved)", "requestBody": _body(Criteria),
        "responses": {"200": _json({"type": "object", "required": ["size"],
                                    "properties": {"size": {"type": "integer"}}}), **_WRITE},
    }},
    "/api/v1/segments/{id}": {
        "get": {"summary": "A segment, its size now and its daily sizes over the last 90 days", "parameters": [_ID],
                "responses": {"200": _json(_ref("Segment")), **_READ}},
        "put": {"summary": "Replace a segment", "parameters": [_ID], "requestBody": _body(SegmentBody),
                "responses": {"200": _json(_ref("Segment")), **_WRITE}},
        "delete": {"summary": "Delete a segment", "parameters": [_ID],
                   "responses": {"200": _json({"type": "object", "properties": {"deleted": {"type": "integer"}}}),
                                 **_READ}},
    },
    "/api/v1/segments/{id}/customers": {"get": {
        "summary": "The segment's customers in id order, a page at a time (or all of them with ?format=csv)",
        "parameters": [
            _ID,
            {"name": "after", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 0},
             "description": "the `next` of the previous page"},
            {"name": "limit", "in": "query", "required": False,
             "schema": {"type": "integer", "minimum": 1, "maximum": 200}, "description": "page size (default 50)"},
            {"name": "format", "in": "query", "required": False, "schema": {"enum": ["json", "csv"]},
             "description": "json (default) or csv (every customer)"},
        ],
        "responses": {"200": {"description": "A page (or the CSV file)", "content": {
            "application/json": {"schema": {"type": "object", "required": ["items", "next"], "properties": {
                "items": {"type": "array", "items": _ref("SegmentCustomer")},
                "next": {"type": ["integer", "null"]}}}}, **_CSV}},
            **_READ, "422": _json(_ERR, "format is json or csv")},
    }},
}

"""The OpenAPI part for business events (POST /api/v1/events) and segments (merged into hub.api.openapi): their paths,
and the models of their answers."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from hub.api.doc_parts import body as _body
from hub.api.doc_parts import json_response as _json
from hub.api.responses import Answer, DeletedId, Error, Omittable
from hub.business_events import BusinessEventBody
from hub.segments.criteria import Criteria
from hub.segments.segment_store import SegmentBody

_READ = {"400": _json(Error, "Bad request"), "401": _json(Error, "No valid bearer token"),
         "403": _json(Error, "Not an admin or a supervisor"), "404": _json(Error, "Not found")}
_WRITE = {**_READ, "413": _json(Error, "Body over server.max_body_bytes"), "415": _json(Error, "Not JSON"),
          "422": _json(Error, "Invalid body; details lists each field")}
_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}, "description": "segment id"}



class BusinessEvent(Answer):
    id: int
    external_id: str
    type: str
    customer_id: int
    amount: float | None
    currency: str | None
    items: list[dict[str, Any]]
    payload: dict[str, Any]
    attributes: Omittable[dict[str, Any]] = None
    message_id: int = Field(description="the card on the customer's timeline")
    conversation_id: int
    occurred_at: str
    created_at: str


class Recorded(Answer):
    event: BusinessEvent
    duplicate: bool


class SegmentSize(Answer):
    day: str
    size: int


class Segment(Answer):
    id: int
    name: str
    description: str
    criteria: dict[str, Any]
    created_at: str
    updated_at: str
    size: int | None = Field(None, description="customers in it (the list: the last recorded size)")
    trend: Omittable[list[SegmentSize]] = None


# hub.segments.criteria.GROUPS, and everyone else (tests/segments check the two agree)
RfmGroup = Literal["champions", "loyal", "at_risk", "lost", "other"]
Score = Annotated[int, Field(ge=1, le=5)]


class SegmentCustomer(Answer):
    customer_id: int
    name: str
    contacts: int
    last_contact_at: str | None
    orders: int
    order_value: float
    last_order_at: str | None = None
    csat_average: float | None = None
    recency_score: Score
    frequency_score: Score
    monetary_score: Score
    rfm_group: RfmGroup
    identities: list[str]


class SegmentList(Answer):
    items: list[Segment]


class RfmGroupSize(Answer):
    group: RfmGroup
    rule: str
    description: Omittable[str] = None
    size: int


class Rfm(Answer):
    groups: list[RfmGroupSize]
    customers: int
    boundaries: dict[str, Any]


class SizePreview(Answer):
    size: int


class SegmentCustomerPage(Answer):
    items: list[SegmentCustomer]
    next: int | None


_CSV = {"text/csv": {"schema": {"type": "string"}}}
PATHS: dict[str, Any] = {
    "/api/v1/events": {"post": {
        "tags": ["Business events"],
        "summary": "Record a business event (order.placed, payment.failed, or any type with a JSON payload) on a "
                   "customer's timeline, and set their attributes; the same external_id again answers the same "
                   "result (200), with another body a 409 (admin token)",
        "requestBody": _body(BusinessEventBody),
        "responses": {
            "201": _json(Recorded, "Recorded"),
            "200": _json(Recorded, "A replay: recorded before"),
            "409": _json(Error, "This external_id was used for another event"),
            **{**_WRITE, "403": _json(Error, "Not an admin token")},
        },
    }},
    "/api/v1/segments": {
        "get": {"summary": "Every saved segment, with its last recorded size",
                "responses": {"200": _json(SegmentList), **_READ}},
        "post": {"summary": "Save a segment", "requestBody": _body(SegmentBody),
                 "responses": {"201": _json(Segment, "Saved"), **_WRITE}},
    },
    "/api/v1/segments/rfm": {"get": {
        "summary": "The RFM groups (champions, loyal, at risk, lost, other) with their rules and sizes, and the "
                   "quintile boundaries the scores 1-5 come from",
        "responses": {"200": _json(Rfm),
                      **_READ},
    }},
    "/api/v1/segments/preview": {"post": {
        "summary": "How many customers these criteria hold (nothing is saved)", "requestBody": _body(Criteria),
        "responses": {"200": _json(SizePreview), **_WRITE},
    }},
    "/api/v1/segments/{id}": {
        "get": {"summary": "A segment, its size now and its daily sizes over the last 90 days", "parameters": [_ID],
                "responses": {"200": _json(Segment), **_READ}},
        "put": {"summary": "Replace a segment", "parameters": [_ID], "requestBody": _body(SegmentBody),
                "responses": {"200": _json(Segment), **_WRITE}},
        "delete": {"summary": "Delete a segment", "parameters": [_ID],
                   "responses": {"200": _json(DeletedId, "Deleted"), **_READ}},
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
            "application/json": {"schema": SegmentCustomerPage}, **_CSV}},
            **_READ, "422": _json(Error, "format is json or csv")},
    }},
}

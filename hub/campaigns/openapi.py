"""The OpenAPI part for campaigns (merged into hub.api.openapi)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from hub.api.doc_parts import INT_OR_NULL as _INT_OR_NULL
from hub.api.doc_parts import STR_OR_NULL as _STR_OR_NULL
from hub.api.doc_parts import body as _body
from hub.api.doc_parts import json_response as _json
from hub.api.doc_parts import ref as _ref
from hub.campaigns.api import TestSendBody
from hub.campaigns.campaign_store import RESULTS, STATUSES, CampaignBody

_ERR = _ref("Error")
_READ = {"400": _json(_ERR, "Bad request"), "401": _json(_ERR, "Not signed in, or no valid bearer token"),
         "403": _json(_ERR, "Not an admin or supervisor"), "404": _json(_ERR, "Not found")}
_WRITE = {**_READ, "413": _json(_ERR, "Body over server.max_body_bytes"), "415": _json(_ERR, "Not JSON"),
          "422": _json(_ERR, "Invalid body (details lists each field), or a channel not configured")}
_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}, "description": "campaign id"}
_PREVIEWED = {"type": "object", "properties": {
    "customer_id": _INT_OR_NULL, "identity": {"type": "string"}, "name": {"type": "string"},
    "text": {"type": "string"}, "reason": {"type": "string"}}}

CAMPAIGN = {
    "type": "object",
    "required": ["id", "name", "channel", "text", "status", "scheduled_at", "rate_per_minute", "results"],
    "properties": {
        "id": {"type": "integer"}, "name": {"type": "string"}, "channel": {"type": "string"},
        "text": {"type": "string"}, "subject": _STR_OR_NULL, "segment_id": _INT_OR_NULL,
        "list_size": {**_INT_OR_NULL, "description": "how many identities the list holds (a list campaign)"},
        "rate_per_minute": {"type": "integer"}, "status": {"enum": list(STATUSES)},
        "scheduled_at": {"type": "string"}, "started_at": _STR_OR_NULL, "finished_at": _STR_OR_NULL,
        "created_by": _INT_OR_NULL, "created_at": {"type": "string"}, "updated_at": {"type": "string"},
        "results": {"type": "object", "description": "recipients by outcome; sent includes delivered",
                    "required": list(RESULTS), "properties": {k: {"type": "integer"} for k in RESULTS}},
    },
}
RECIPIENT = {
    "type": "object",
    "required": ["position", "identity", "status"],
    "properties": {
        "position": {"type": "integer"}, "customer_id": _INT_OR_NULL, "name": {"type": "string"},
        "identity": {"type": "string"}, "status": {"enum": ["pending", "queued", "skipped"]},
        "reason": {**_STR_OR_NULL, "description": "why they were skipped, or why their message failed"},
        "message_id": _INT_OR_NULL, "message_status": _STR_OR_NULL, "queued_at": _STR_OR_NULL,
    },
}
SCHEMAS = {"Campaign": CAMPAIGN, "CampaignRecipient": RECIPIENT}
MODELS: tuple[type[BaseModel], ...] = (CampaignBody, TestSendBody)

PATHS: dict[str, Any] = {
    "/api/v1/campaigns": {
        "get": {"summary": "Campaigns, newest first, with their progress and results",
                "responses": {"200": _json({"type": "object", "required": ["items"], "properties": {
                    "items": {"type": "array", "items": _ref("Campaign")}}}), **_READ}},
        "post": {"summary": "Create a campaign: one message to a segment or a list of identities on one channel, "
                            "now or at scheduled_at, at rate_per_minute",
                 "requestBody": _body(CampaignBody), "responses": {"201": _json(_ref("Campaign"), "Created"),
                                                                   **_WRITE}},
    },
    "/api/v1/campaigns/preview": {"post": {
        "summary": "What a campaign would send (nothing is saved): the first recipients' texts, who is skipped "
                   "and why, the counts",
        "requestBody": _body(CampaignBody),
        "responses": {"200": _json({"type": "object", "required": ["total", "sending", "skipped", "recipients",
                                                                   "skipped_sample"], "properties": {
            "total": {"type": "integer"}, "sending": {"type": "integer"}, "skipped": {"type": "integer"},
            "recipients": {"type": "array", "items": _PREVIEWED},
            "skipped_sample": {"type": "array", "items": _PREVIEWED}}}), **_WRITE},
    }},
    "/api/v1/campaigns/test": {"post": {
        "summary": "Send a campaign's text to yourself (your agent email or phone, or `to`) through the outbox",
        "requestBody": _body(TestSendBody),
        "responses": {"201": _json({"type": "object", "properties": {"message": _ref("Message")}}, "Queued"),
                      **_WRITE},
    }},
    "/api/v1/campaigns/{id}": {"get": {
        "summary": "A campaign with its progress and results", "parameters": [_ID],
        "responses": {"200": _json(_ref("Campaign")), **_READ}}},
    "/api/v1/campaigns/{id}/recipients": {"get": {
        "summary": "The campaign's recipients in order, each with its outcome, a page at a time",
        "parameters": [
            _ID,
            {"name": "after", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 0},
             "description": "the `next` of the previous page"},
            {"name": "limit", "in": "query", "required": False,
             "schema": {"type": "integer", "minimum": 1, "maximum": 200}, "description": "page size (default 50)"},
        ],
        "responses": {"200": _json({"type": "object", "required": ["items", "next"], "properties": {
            "items": {"type": "array", "items": _ref("CampaignRecipient")}, "next": _INT_OR_NULL}}), **_READ}}},
    "/api/v1/campaigns/{id}/cancel": {"post": {
        "summary": "Cancel a scheduled or running campaign: nobody not yet written to gets it",
        "parameters": [_ID],
        "responses": {"200": _json(_ref("Campaign")), **_READ,
                      "409": _json(_ERR, "The campaign is done or cancelled already")}}},
}

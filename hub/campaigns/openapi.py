"""The OpenAPI part for campaigns (merged into hub.api.openapi): their paths, and the models of their answers."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, RootModel

from hub.api.doc_parts import body as _body
from hub.api.doc_parts import json_response as _json
from hub.api.responses import Answer, Error, Message, Omittable, WhatsAppTemplateList
from hub.campaigns.api import TestSendBody
from hub.campaigns.campaign_store import RESULTS, CampaignBody

_READ = {"400": _json(Error, "Bad request"), "401": _json(Error, "Not signed in, or no valid bearer token"),
         "403": _json(Error, "Not an admin or supervisor"), "404": _json(Error, "Not found")}
_WRITE = {**_READ, "413": _json(Error, "Body over server.max_body_bytes"), "415": _json(Error, "Not JSON"),
          "422": _json(Error, "Invalid body (details lists each field), a channel not configured, or a template "
                              "that is not approved or lacks a variable's value"),
          "502": _json(Error, "A template was given and Twilio could not be reached")}
_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}, "description": "campaign id"}

# hub.campaigns.campaign_store.STATUSES (tests/api/test_responses.py checks that they agree)
CampaignStatus = Literal["scheduled", "running", "done", "cancelled"]
# hub.campaigns.campaign_store.OUTCOMES (checked the same way)
RecipientOutcome = Literal["pending", "cancelled", "skipped", "queued", "sent", "delivered", "failed", "replied",
                           "opted_out"]


def _every_result(schema: dict[str, Any]) -> None:
    schema["required"] = list(RESULTS)
    schema["properties"] = {k: {"type": "integer"} for k in RESULTS}


class CampaignResults(RootModel[dict[str, int]]):  # recipients by outcome (campaign_store.RESULTS)
    model_config = ConfigDict(json_schema_extra=_every_result)


class CampaignTemplate(Answer):
    sid: str = Field(description="the template's ContentSid")
    name: str
    variables: dict[str, str] = Field(description='"1", "2"... -> what fills it (campaign variables allowed)')


class Campaign(Answer):
    id: int
    name: str
    channel: str
    text: str
    subject: str | None = None
    segment_id: int | None = None
    list_size: int | None = Field(None, description="how many identities the list holds (a list campaign)")
    rate_per_minute: int
    status: CampaignStatus
    scheduled_at: str
    started_at: str | None = None
    finished_at: str | None = None
    created_by: int | None = None
    created_at: Omittable[str] = None
    updated_at: Omittable[str] = None
    template: CampaignTemplate | None = Field(None, description="WhatsApp: the approved template it sends")
    results: CampaignResults = Field(description="recipients by outcome: queued (in our outbox), sent (accepted "
                                     "by the provider; includes delivered), delivered, failed; replied and opted "
                                     "out after it")


class CampaignRecipient(Answer):
    position: int
    customer_id: int | None = None
    name: Omittable[str] = None
    identity: str
    status: Literal["pending", "queued", "skipped"] = Field(description="written (queued), not yet, or skipped")
    outcome: RecipientOutcome = Field(description="the furthest they got: queued (in our outbox), sent (accepted "
                                      "by the provider), delivered, failed, replied, opted out")
    reason: str | None = Field(None, description="why they were skipped, or why their message failed")
    message_id: int | None = None
    message_status: str | None = None
    queued_at: str | None = None


class PreviewedRecipient(Answer):
    customer_id: int | None = None
    identity: Omittable[str] = None
    name: Omittable[str] = None
    text: Omittable[str] = None
    reason: Omittable[str] = None


class CampaignList(Answer):
    items: list[Campaign]


class CampaignPreview(Answer):
    total: int
    sending: int
    skipped: int
    recipients: list[PreviewedRecipient]
    skipped_sample: list[PreviewedRecipient]


class CampaignTestSent(Answer):
    message: Omittable[Message] = None


class CampaignRecipientPage(Answer):
    items: list[CampaignRecipient]
    next: int | None


PATHS: dict[str, Any] = {
    "/api/v1/campaigns": {
        "get": {"summary": "Campaigns, newest first, with their progress and results",
                "responses": {"200": _json(CampaignList), **_READ}},
        "post": {"summary": "Create a campaign: one message to a segment or a list of identities on one channel, "
                            "now or at scheduled_at, at rate_per_minute",
                 "requestBody": _body(CampaignBody), "responses": {"201": _json(Campaign, "Created"),
                                                                   **_WRITE}},
    },
    "/api/v1/campaigns/preview": {"post": {
        "summary": "What a campaign would send (nothing is saved): the first recipients' texts, who is skipped "
                   "and why, the counts",
        "requestBody": _body(CampaignBody),
        "responses": {"200": _json(CampaignPreview), **_WRITE},
    }},
    "/api/v1/campaigns/test": {"post": {
        "summary": "Send a campaign's text to yourself (your agent email or phone, or `to`) through the outbox",
        "requestBody": _body(TestSendBody),
        "responses": {"201": _json(CampaignTestSent, "Queued"),
                      **_WRITE},
    }},
    "/api/v1/campaigns/templates": {"get": {
        "summary": "The account's WhatsApp templates (Twilio's Content API) with their variables and approval status",
        "responses": {"200": _json(WhatsAppTemplateList), **_READ,
                      "422": _json(Error, "WhatsApp is not configured, or Twilio refused the request"),
                      "502": _json(Error, "Twilio could not be reached")}}},
    "/api/v1/campaigns/{id}": {"get": {
        "summary": "A campaign with its progress and results", "parameters": [_ID],
        "responses": {"200": _json(Campaign), **_READ}}},
    "/api/v1/campaigns/{id}/recipients": {"get": {
        "summary": "The campaign's recipients in order, each with its outcome, a page at a time",
        "parameters": [
            _ID,
            {"name": "after", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 0},
             "description": "the `next` of the previous page"},
            {"name": "limit", "in": "query", "required": False,
             "schema": {"type": "integer", "minimum": 1, "maximum": 200}, "description": "page size (default 50)"},
        ],
        "responses": {"200": _json(CampaignRecipientPage), **_READ}}},
    "/api/v1/campaigns/{id}/cancel": {"post": {
        "summary": "Cancel a scheduled or running campaign: nobody not yet written to gets it",
        "parameters": [_ID],
        "responses": {"200": _json(Campaign), **_READ,
                      "409": _json(Error, "The campaign is done or cancelled already")}}},
}

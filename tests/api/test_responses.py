"""The OpenAPI document's answers come from models (hub.api.responses and the areas' parts): every JSON answer is a
component generated from one, every $ref resolves, and the enums the models spell out agree with the code."""

from __future__ import annotations

import json
import re
from typing import Any, get_args

import jsonschema
import pydantic
import pytest

from hub.api.openapi import document
from hub.api.responses import AttentionEvent, Conversation, ConversationStatus, Csat, Message
from hub.api.routes import STATUSES as CONVERSATION_STATUSES
from hub.campaigns import openapi as campaigns
from hub.campaigns.campaign_store import OUTCOMES as CAMPAIGN_OUTCOMES
from hub.campaigns.campaign_store import STATUSES as CAMPAIGN_STATUSES
from hub.csat import surveys
from hub.journal import STATUSES as JOURNAL_STATUSES
from hub.reports import openapi as reports
from hub.reports.query import BREAKDOWNS, GROUPS
from hub.segments import openapi as segments
from hub.segments.criteria import GROUPS as RFM_GROUPS


def _answers(spec: dict[str, Any]) -> list[tuple[str, str, str, Any]]:
    return [(method, path, status, resp["content"]["application/json"].get("schema"))
            for path, item in spec["paths"].items() for method, op in item.items()
            for status, resp in op.get("responses", {}).items() if "application/json" in resp.get("content", {})]


def test_every_json_answer_is_a_model() -> None:
    spec = document()
    schemas = spec["components"]["schemas"]
    answers = _answers(spec)
    assert len(answers) > 300
    for method, path, status, schema in answers:
        if path == "/api/v1/attention/{id}/raw" and schema == {}:
            continue  # the provider's own JSON, whatever it was
        assert set(schema) == {"$ref"}, f"{method} {path} {status}: a hand-written schema, not a model"
        name = schema["$ref"].removeprefix("#/components/schemas/")
        assert schemas[name].get("title") == name, f"{name} is not generated from a model"


def test_every_ref_resolves_and_every_schema_is_json_schema() -> None:
    spec = document()
    refs = set(re.findall(r'"#/components/schemas/([^"]+)"', json.dumps(spec)))
    assert refs and refs <= set(spec["components"]["schemas"]), refs - set(spec["components"]["schemas"])
    for schema in spec["components"]["schemas"].values():  # OpenAPI 3.1's dialect is JSON Schema 2020-12
        jsonschema.Draft202012Validator.check_schema(schema)


def _literals(annotation: Any) -> set[str]:
    """The strings of every Literal in ANNOTATION (through unions and Annotated)."""
    args = get_args(annotation)
    return {a for a in args if isinstance(a, str)} | {s for a in args for s in _literals(a)}


def test_the_enums_agree_with_the_code() -> None:
    assert get_args(ConversationStatus) == CONVERSATION_STATUSES
    assert _literals(Conversation.model_fields["status"].annotation) == set(get_args(ConversationStatus))
    assert _literals(Csat.model_fields["status"].annotation) == set(surveys.STATUSES)
    assert _literals(AttentionEvent.model_fields["status"].annotation) == set(JOURNAL_STATUSES)
    assert get_args(reports.Group) == GROUPS and get_args(reports.BreakdownBy) == BREAKDOWNS
    assert set(get_args(segments.RfmGroup)) == {*RFM_GROUPS, "other"}
    assert get_args(campaigns.CampaignStatus) == CAMPAIGN_STATUSES
    assert get_args(campaigns.RecipientOutcome) == CAMPAIGN_OUTCOMES


def test_an_answer_that_drifts_from_its_model_is_caught() -> None:
    spec = document()
    schema = {**spec["components"]["schemas"]["Message"], "components": spec["components"]}
    message = {"id": 1, "conversation_id": 2, "customer_id": 3, "channel": "sms", "direction": "in", "kind": "text",
               "text": "hi", "status": "received", "external_id": None, "created_at": "2026-01-01T00:00:00Z",
               "attachments": [], "extra": "kept"}
    assert Message.model_validate(message).model_dump(exclude_unset=True) == message
    jsonschema.validate(message, schema)
    for drifted in ({**message, "direction": "sideways"}, {**message, "external_id": 5},
                    {k: v for k, v in message.items() if k != "attachments"}):
        with pytest.raises(pydantic.ValidationError):
            Message.model_validate(drifted)
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(drifted, schema)
    with pytest.raises(jsonschema.ValidationError):  # left out is fine, null is not
        jsonschema.validate({**message, "updated_at": None}, schema)

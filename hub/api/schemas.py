"""Request bodies of the REST API, validated strictly (unknown fields are errors); the OpenAPI schemas."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InboundAttachment(Body):
    filename: str = Field(max_length=255)
    content_type: str = Field(max_length=255)
    data_base64: str | None = Field(None, description="the file's bytes, base64-encoded")
    url: str | None = Field(None, description="where the hub may fetch the file later")


class InboundBody(Body):
    identity: str = Field(description="kind:value, e.g. phone:+14155550100, email:ann@example.com")
    text: str = Field("", max_length=100_000)
    external_id: str | None = Field(
        None, max_length=255, description="your id for this message; a repeat returns the stored message"
    )
    name: str | None = Field(None, max_length=255)
    html: str | None = None
    business_line: str | None = Field(None, max_length=255, description="which of your lines was contacted")
    attachments: list[InboundAttachment] = Field(default_factory=list, max_length=20)
    meta: dict[str, Any] = Field(default_factory=dict)


class ReplyAttachment(Body):
    filename: str = Field(min_length=1, max_length=255)
    content_type: str = Field("application/octet-stream", max_length=255)
    data_base64: str = Field(min_length=1, description="the file's bytes, base64-encoded")


class ReplyBody(Body):
    text: str = Field("", max_length=100_000, description="may be empty when files are attached")
    channel: str | None = Field(None, description="default: the channel the customer last wrote on")
    note: bool = Field(False, description="an internal note, never sent to the customer")
    attachments: list[ReplyAttachment] = Field(
        default_factory=list, description="files sent with the reply (the channel must carry media)"
    )


class MergeBody(Body):
    customer_id: int = Field(description="the customer merged INTO the one in the path, which survives")


class PresenceBody(Body):
    presence: Literal["available", "away", "offline"]


class TransferBody(Body):
    queue: str | None = Field(None, description="a queue name; the conversation keeps its age")
    agent_id: int | None = Field(None, description="an agent, who gets it first for routing.transfer_wait seconds")
    note: str | None = Field(None, max_length=10_000, description="kept as an internal note on the conversation")


class ResolveBody(Body):
    note: str | None = Field(None, max_length=10_000)


ConversationStatusFilter = Literal["open", "assigned", "resolved"]

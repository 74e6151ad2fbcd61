"""Request bodies of the REST API, validated strictly (unknown fields are errors); the OpenAPI schemas."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, model_validator

from hub.campaigns.templates import TemplateChoice


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
    reply_all: bool = Field(False, description="email: also to everyone else the customer's email went to (its To "
                            "and Cc, less our own addresses), as Cc")
    template: TemplateChoice | None = Field(
        None, description="WhatsApp: an approved template to send instead of `text` (outside the customer's 24-hour "
        "window the only message WhatsApp takes); its variables may use the customer's profile, "
        '{"1": "{{first_name | fallback: \\"there\\"}}"}')

    @model_validator(mode="after")
    def _template_alone(self) -> ReplyBody:
        if self.template is not None and (self.text.strip() or self.note or self.attachments or self.reply_all):
            raise ValueError("a template is sent alone: leave text, note, attachments and reply_all out (the "
                             "template's body is the text)")
        return self


class TemplatePreviewBody(Body):
    template: TemplateChoice
    channel: str | None = Field(None, description="default: whatsapp")


# Ids are BIGINTs in both stores: a larger number names nothing and is refused with the reason.
Id = Annotated[int, Field(ge=1, le=2**63 - 1)]


class MergeBody(Body):
    customer_id: Id = Field(description="the customer merged INTO the one in the path, which survives")


class TypingBody(Body):
    conversation_id: Id
    typing: bool = True


class PresenceBody(Body):
    presence: Literal["available", "away", "offline"]


class TransferBody(Body):
    queue: str | None = Field(None, description="a queue name; the conversation keeps its age")
    agent_id: Id | None = Field(None, description="an agent, who gets it first for routing.transfer_wait seconds")
    note: str | None = Field(None, max_length=10_000, description="kept as an internal note on the conversation")


class ResolveBody(Body):
    note: str | None = Field(None, max_length=10_000)


ConversationStatusFilter = Literal["open", "assigned", "snoozed", "resolved"]


# -- agent accounts and API tokens (admin) -----------------------------------------------------------------------

AgentRole = Literal["admin", "supervisor", "agent"]


class AgentCreateBody(Body):
    name: str = Field(min_length=1, max_length=255)
    email: str = Field(min_length=3, max_length=320)
    password: str = Field(min_length=8, max_length=1024, description="at least 8 characters; stored as an argon2 hash")
    role: AgentRole = "agent"
    queues: list[str] = Field(default_factory=list, description="queue names the agent works")
    phone: str | None = Field(None, max_length=32, description="E.164 phone the hub rings to bridge calls")
    voice_client: str | None = Field(None, max_length=255, description="Twilio Client identity")


class AgentPatchBody(Body):
    name: str | None = Field(None, min_length=1, max_length=255)
    email: str | None = Field(None, min_length=3, max_length=320)
    password: str | None = Field(None, min_length=8, max_length=1024, description="a new password (reset)")
    role: AgentRole | None = None
    queues: list[str] | None = None
    phone: str | None = Field(None, max_length=32, description="null or empty clears it")
    voice_client: str | None = Field(None, max_length=255, description="null or empty clears it")
    disabled: bool | None = Field(None, description="true ends the agent's console sessions and stops their tokens")


class TokenCreateBody(Body):
    role: Literal["admin", "agent"] = Field(description="admin: everything; agent: acts as that agent")
    agent_id: Id | None = Field(None, description="required for an agent token")
    label: str = Field("", max_length=255, description="what the token is for")


class CallBody(Body):
    to: str | None = Field(None, max_length=32, description="E.164 number to call; default: the customer's phone")


class RoutingRulesBody(Body):
    rules: list[dict[str, Any]] = Field(
        description="the whole ordered list; first match wins (fields: name, queue, priority, channel, line, ivr, "
                    "keywords, tags, attributes, language)"
    )
    default_queue: str | None = Field(None, description="where a contact no rule matches goes (default: unchanged)")


class RoutingAgentBody(Body):
    capacity: dict[str, int] | None = Field(
        None, description="how many at once per class: voice, chat, email (default: routing.default_capacity)"
    )
    skills: dict[str, int] = Field(default_factory=dict, description="skill = proficiency 0..100")
    wrapup: float = Field(0.0, ge=0, description="seconds after resolving before new work")
    exclusive: list[str] = Field(default_factory=lambda: ["voice"],
                                 description="classes that, while held, block every other (default: voice)")


class CannedBody(Body):
    shortcut: str = Field(min_length=1, max_length=40, pattern=r"^[a-z0-9][a-z0-9_-]*$",
                          description="typed after / in the composer: lowercase letters, digits, - and _")
    title: str = Field(min_length=1, max_length=120)
    body: str = Field(min_length=1, max_length=10_000,
                      description="text with variables: {{customer.name}}, {{customer.first_name}}, {{agent.name}}, "
                                  "{{agent.first_name}}, {{attributes.<key>}} (from the customer's messages)")
    scope: Literal["personal", "team"] = Field("personal", description="team: every agent sees it (admins and "
                                               "supervisors manage those)")


class CannedPatchBody(Body):
    shortcut: str | None = Field(None, min_length=1, max_length=40, pattern=r"^[a-z0-9][a-z0-9_-]*$")
    title: str | None = Field(None, min_length=1, max_length=120)
    body: str | None = Field(None, min_length=1, max_length=10_000)


class CannedRenderBody(Body):
    conversation_id: int = Field(description="whose customer and attributes fill the variables")


# -- the inbox's daily tools: labels, views, snooze, bulk actions (hub/inbox) ---------------------------------------

_COLOR = r"^#[0-9a-fA-F]{6}$"


class LabelBody(Body):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_-]*$",
                      description="the label's slug: lowercase letters, digits, - and _ (rules and the API name it)")
    title: str = Field(min_length=1, max_length=80, description="what agents read")
    color: str = Field("#64748b", pattern=_COLOR, description="#rrggbb")


class LabelPatchBody(Body):
    title: str | None = Field(None, min_length=1, max_length=80)
    color: str | None = Field(None, pattern=_COLOR)


class ViewFilters(Body):
    """A saved view's filters; each one given narrows the list (all of them must hold)."""

    status: Literal["open", "assigned", "snoozed", "resolved"] | None = Field(
        None, description="default: open and assigned (the active inbox)")
    channel: str | None = Field(None, max_length=40)
    queue: str | None = Field(None, max_length=64)
    label: str | None = Field(None, max_length=64)
    agent_id: int | None = Field(None, ge=1, description="whose conversations (assigned or snoozed to them)")
    unassigned: bool | None = Field(None, description="true: nobody holds it")
    waiting_seconds: int | None = Field(None, ge=1, le=90 * 86_400,
                                        description="the customer's oldest unanswered message is at least this old")


class ViewBody(Body):
    name: str = Field(min_length=1, max_length=80)
    filters: ViewFilters
    shared: bool = Field(False, description="shared with the team (admins and supervisors); else yours")


class ViewPatchBody(Body):
    name: str | None = Field(None, min_length=1, max_length=80)
    filters: ViewFilters | None = None


class SnoozeBody(Body):
    until: str | None = Field(None, description="ISO 8601 time with a zone; omitted: until the customer's next "
                                                "message (which also ends a timed snooze)")


class BulkBody(Body):
    conversation_ids: list[int] = Field(min_length=1, max_length=200)
    action: Literal["assign", "label", "unlabel", "resolve", "snooze"]
    agent_id: int | None = Field(None, ge=1, description="assign: to this agent (yourself: a claim)")
    queue: str | None = Field(None, max_length=64, description="assign: back to this queue instead")
    label: str | None = Field(None, max_length=64, description="label / unlabel: which")
    until: str | None = Field(None, description="snooze: until this time; omitted: until the customer writes")

# -- customer profiles, mentions, macros ---------------------------------------------------------------------------

AttributeKey = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$",
                                    description="lowercase letters, digits and _, starting with a letter")]


class CustomerPatchBody(Body):
    name: str | None = Field(None, max_length=255, description="empty clears it (the console then shows the "
                             "customer's phone, email, or a visitor's generated name)")
    attributes: dict[AttributeKey, StrictStr | StrictInt | StrictFloat | StrictBool | None] | None = Field(
        None, description="custom attribute values by key, checked against each attribute's type (text, number, "
                          "date as YYYY-MM-DD, list: one of its options); null removes a value")


class AttributeDefinitionBody(Body):
    key: AttributeKey
    label: str = Field(min_length=1, max_length=80)
    type: Literal["text", "number", "date", "list"]
    options: list[Annotated[str, Field(max_length=80)]] = Field(default_factory=list, max_length=50,
                                                                description="a list attribute's choices")
    position: int = Field(0, ge=0, le=1000, description="order in the customer panel")


class AttributeDefinitionPatchBody(Body):
    label: str | None = Field(None, min_length=1, max_length=80)
    options: list[Annotated[str, Field(max_length=80)]] | None = Field(None, max_length=50)
    position: int | None = Field(None, ge=0, le=1000)


class MentionsReadBody(Body):
    conversation_id: Id | None = Field(None, description="only the mentions in this conversation (opened)")


class MacroAction(Body):
    type: Literal["reply", "label", "assign", "resolve"]
    canned_response_id: Id | None = Field(None, description="reply: the team canned response sent (variables "
                                          "filled for the conversation)")
    label: str | None = Field(None, min_length=1, max_length=60, description="label: the label added")
    agent_id: Id | None = Field(None, description="assign: the agent it goes to; omitted: whoever applies it")


class MacroBody(Body):
    name: str = Field(min_length=1, max_length=80)
    actions: list[MacroAction] = Field(min_length=1, max_length=10, description="run in this order")


class MacroPatchBody(Body):
    name: str | None = Field(None, min_length=1, max_length=80)
    actions: list[MacroAction] | None = Field(None, min_length=1, max_length=10)


class MacroApplyBody(Body):
    conversation_id: Id

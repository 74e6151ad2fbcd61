"""What the REST API answers, as pydantic models: the OpenAPI document's response schemas are generated from them
(hub.api.openapi), the way request bodies come from hub.api.schemas, and tests check real answers against them.

An answer may carry more keys than its model names (additional properties are allowed, as the console reads a
few extra ones); a field typed Omittable[...] may be left out but is never null."""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from hub.api.schemas import ConversationStatusFilter as ConversationStatus
from hub.api.schemas import MacroAction, ViewFilters
from hub.config import QueueSettings
from hub.json_codec import CONTENT_TYPE

T = TypeVar("T")


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


# Left out of some answers, never null: None stands for "absent" in Python and shows in the schema as nothing.
Omittable = Annotated[T | SkipJsonSchema[None], Field(json_schema_extra=_no_default)]


class Answer(BaseModel):
    model_config = ConfigDict(extra="allow")


def answer(model: Answer, status: int = 200) -> web.Response:
    """MODEL as the JSON answer, so what is sent is what the document promises (fields left unset are left out)."""
    return web.Response(body=model.model_dump_json(by_alias=True, exclude_unset=True), status=status,
                        content_type=CONTENT_TYPE)


# -- errors ---------------------------------------------------------------------------------------------------------

class ErrorInfo(Answer):
    status: int
    message: str
    details: Any = None


class Error(Answer):  # every 4xx (and 5xx) answer
    error: ErrorInfo


class DeletedId(Answer):
    deleted: int


class DeletedName(Answer):
    deleted: str


# -- messages, conversations, customers ------------------------------------------------------------------------------

class Attachment(Answer):
    id: int
    filename: str
    content_type: str
    size: int
    status: Literal["stored", "pending", "failed"]
    error: str | None = None
    url: str


class Message(Answer):
    id: int
    conversation_id: int
    customer_id: int
    channel: str
    direction: Literal["in", "out"]
    kind: Literal["text", "call", "voicemail", "note", "event"]
    text: str
    html: str | None = None
    status: str
    status_reason: str | None = None
    external_id: str | None
    identity: str | None = None
    agent_id: int | None = None
    meta: Omittable[dict[str, Any]] = None
    created_at: str
    updated_at: Omittable[str] = None
    attachments: list[Attachment]


class Conversation(Answer):
    id: int
    customer_id: int
    status: ConversationStatus
    channel: str
    queue: str | None
    agent_id: int | None
    business_line: str | None = None
    last_inbound_channel: str | None = None
    created_at: str
    updated_at: str
    resolved_at: str | None = None


class CustomerIdentity(Answer):
    kind: str
    value: str
    id: str


class Customer(Answer):
    id: int
    name: str
    display_name: Omittable[str] = Field(None, description="the name, else a phone or email, else a web-chat "
                                         "visitor's generated name (\"Visitor 4821\")")
    attributes: Omittable[dict[str, str]] = Field(None, description="custom attribute values by key "
                                                  "(GET /customers/{id})")
    created_at: str
    merged_into: int | None = None
    identities: list[CustomerIdentity]
    conversations: Omittable[list[Conversation]] = None
    labels: Omittable[list[str]] = Field(None, description="on GET /customers/{id}")


class Csat(Answer):
    status: Omittable[Literal["scheduled", "sent", "answered", "skipped"]] = None
    channel: str | None = None
    score: int | None = None
    comment: str | None = None
    sent_at: str | None = None
    answered_at: str | None = None
    reason: str | None = None


class WhatsAppTemplate(Answer):
    sid: str = Field(description="ContentSid")
    name: str
    language: str
    body: str = Field(description="the text, with {{1}}, {{2}}... for its variables")
    variables: dict[str, str] = Field(description='"1", "2"... -> the sample value it was made with')
    slots: list[str] = Field(description="the variables a campaign gives a value for, in order")
    approval: str = Field(description="WhatsApp's approval status: approved, pending, rejected, paused...")
    rejection_reason: str
    sendable: bool = Field(description="approved: a campaign may send it")


class WhatsAppTemplateList(Answer):
    items: list[WhatsAppTemplate]


class TemplatePreview(Answer):
    channel: str
    text: str = Field(description="what the customer reads: the template's body with their values")
    template: dict[str, Any] = Field(description="sid, name and variables (the ContentVariables sent)")


class SessionWindow(Answer):
    channel: str
    hours: float = Field(description="how long after the customer's last message on it the channel takes free-form "
                         "messages (WhatsApp: 24); after it, only an approved template")
    last_inbound_at: str | None = Field(description="the customer's last message on the channel (None: never)")
    closes_at: str | None = Field(description="when the window closes (None: it never opened)")
    open: bool = Field(description="a free-form message can be sent now")


class ConversationDetail(Conversation):
    customer: Customer
    messages: list[Message]
    labels: Omittable[list[str]] = None
    priority: Omittable[int] = None
    csat: Csat | None = Field(None, description="its satisfaction survey, if any (docs/reports.md, Customer "
                              "satisfaction)")
    session_windows: Omittable[list[SessionWindow]] = Field(None, description="the customer's session window on "
                                                           "each channel that has one (WhatsApp)")


class IngestResult(Answer):
    message: Message
    conversation: Conversation
    customer: Customer
    duplicate: bool


class Flagged(Answer):  # kept in the journal but not processed
    status: Literal["flagged"]
    journal_id: int
    reason: str


class CustomerList(Answer):
    items: list[Customer]


class MessagePage(Answer):
    items: list[Message]
    next: str | None


class ConversationPage(Answer):
    items: list[Conversation]
    next: str | None


class MergeResult(Answer):
    customer: Customer
    event: Message


class ReplyResult(Message):
    mentioned: Omittable[list[int]] = Field(None, description="a note: the agents its @mentions notified")
    not_mentioned: Omittable[list[str]] = Field(None, description="a note: agents named who cannot see this customer")


class ReopenResult(Conversation):
    claim_refused: str | None = None


class SnoozeResult(Conversation):
    snooze: Omittable[dict[str, Any]] = None


# -- routing: presence, offers, queues, agents -----------------------------------------------------------------------

class PresenceResult(Answer):
    agent_id: int
    presence: str


class Offer(Answer):
    conversation_id: int
    queue: str
    channel: str
    deadline: float
    customer: Customer
    preview: str
    earlier_conversations: Omittable[int] = None


class OfferList(Answer):
    items: list[Offer]


class QueueStats(Answer):
    name: str
    title: str
    waiting: int
    longest_wait: float
    available_agents: int
    busy_agents: int
    sla_attainment: float | None
    # first response: target (0: none), replies, outcomes
    first_response: Omittable[float] = None
    first_response_hours: Omittable[str] = None  # calendar | business: how the target is counted
    responded: Omittable[int] = None
    responded_in_sla: Omittable[int] = None
    first_response_breached: Omittable[int] = None
    first_response_attainment: float | None = None


class QueueList(Answer):
    items: list[QueueStats]


class AgentState(Answer):  # an agent as routing sees them (GET /agents)
    id: int
    name: str
    email: Omittable[str] = None
    role: str
    queues: list[Any]
    presence: Literal["available", "away", "offline"]
    load: dict[str, Any]


class AgentStateList(Answer):
    items: list[AgentState]


Source = Literal["config", "api"]


class RoutingProfile(Answer):
    agent_id: int
    capacity: dict[str, Any]
    skills: dict[str, Any]
    wrapup: float
    exclusive: list[str]
    source: Literal["config", "api", "default"]
    effective_capacity: Omittable[dict[str, Any]] = Field(None, description="what routing uses: capacity after the "
                                                          "hub's checks (no voice for an agent the hub cannot ring)")


class RoutingConfig(Answer):
    default_queue: str
    missed_offers: int
    transfer_wait: float
    queues: dict[str, QueueSettings]
    queue_sources: dict[str, Source] = Field(description="per queue: from the config file, or as changed through "
                                             "the API")
    rules: list[dict[str, Any]]
    rules_source: Source
    agents: list[RoutingProfile]


# -- the inbox --------------------------------------------------------------------------------------------------------

class InboxCustomer(Answer):
    id: int
    name: str
    identity: str | None


class InboxItem(Answer):
    conversation: dict[str, Any]
    customer: InboxCustomer
    last_message: dict[str, Any] | None
    labels: Omittable[list[str]] = None
    snooze: dict[str, Any] | None = Field(None, description="until (null: the customer's next message) and owner, "
                                          "while snoozed")
    first_reply_due: float | None = Field(None, description="epoch seconds by which the queue's first-response "
                                          "target wants an agent reply; null once replied or without a target")


class Inbox(Answer):
    server_time: float
    view: dict[str, Any] | None = None
    items: list[InboxItem]


# -- agent accounts, API tokens, search, channels --------------------------------------------------------------------

class Agent(Answer):
    id: int
    name: str
    email: str
    role: Literal["admin", "supervisor", "agent"]
    queues: list[str]
    disabled: bool
    created_at: str
    phone: str | None = None
    voice_client: str | None = None


class ApiToken(Answer):
    id: int
    role: Literal["admin", "agent"]
    agent_id: int | None
    agent_name: str | None
    label: str
    created_at: str
    revoked_at: str | None
    token: Omittable[str] = Field(None, description="the secret: in the answer to POST only, never again")


class ApiTokenList(Answer):
    items: list[ApiToken]


class HitCustomer(Answer):
    id: int
    name: str


class HitConversation(Answer):
    id: int
    status: str
    queue: str | None


class MessageHit(Answer):
    message: Message
    snippet: str
    customer: HitCustomer
    conversation: HitConversation


class SearchResult(Answer):
    customers: list[Customer]
    messages: list[MessageHit]
    terms: list[str]


class ChannelInfo(Answer):
    name: str
    identity_kinds: list[str]
    voice: bool
    media: bool
    capabilities: dict[str, Any]


class ChannelList(Answer):
    max_attachment_bytes: int
    items: list[ChannelInfo]


class TypingResult(Answer):
    delivered: int = Field(description="tabs reached here")


# -- the supervisors' wall ---------------------------------------------------------------------------------------------

class WallNow(Answer):
    waiting: Omittable[int] = None
    longest_wait: Omittable[float] = None
    available_agents: Omittable[int] = None
    busy_agents: Omittable[int] = None


class WindowFigures(Answer):
    offered: Omittable[int] = None
    answered: Omittable[int] = None
    answered_in_sla: Omittable[int] = None
    rejected: Omittable[int] = None
    timed_out: Omittable[int] = None
    abandoned: Omittable[int] = None
    responded: Omittable[int] = None
    responded_in_target: Omittable[int] = None
    first_response_breached: Omittable[int] = None
    sla_attainment: float | None = None
    first_response_attainment: float | None = None


class WallQueue(Answer):
    name: Omittable[str] = None
    title: Omittable[str] = None
    sla_wait: Omittable[float] = None
    first_response: Omittable[float] = None
    first_response_hours: Omittable[str] = None
    now: Omittable[WallNow] = None
    window: Omittable[WindowFigures] = None


class WallAgent(Answer):
    id: Omittable[int] = None
    holding: Omittable[dict[str, int]] = None


class LowCsat(Answer):
    conversation_id: Omittable[int] = None
    score: Omittable[int] = None
    comment: Omittable[str] = None
    answered_at: Omittable[str] = None
    queue: Omittable[str] = None
    channel: str | None = None
    agent_id: int | None = None
    agent: Omittable[str] = None
    customer: Omittable[str] = None


class WallCsat(Answer):
    responses: Omittable[int] = None
    average: float | None = None
    score: float | None = Field(None, description="share of answers of 4 or 5")
    low_score: Omittable[int] = None
    low: Omittable[list[LowCsat]] = None


class Wall(Answer):
    since: Omittable[str] = None
    queues: Omittable[list[WallQueue]] = None
    agents: Omittable[list[WallAgent]] = None
    csat: Omittable[WallCsat] = Field(None, description="satisfaction answers since `since`; `low` lists the newest "
                                      "at or below csat.low_score (up to 10)")


# -- canned responses, labels, views, bulk actions ---------------------------------------------------------------------

class CannedResponse(Answer):
    id: Omittable[int] = None
    scope: Omittable[Literal["personal", "team"]] = None
    shortcut: Omittable[str] = None
    title: Omittable[str] = None
    body: Omittable[str] = None
    created_at: Omittable[str] = None
    updated_at: Omittable[str] = None


class CannedList(Answer):
    items: Omittable[list[CannedResponse]] = None


class RenderedCanned(Answer):
    text: Omittable[str] = None
    missing: Omittable[list[str]] = None


class Label(Answer):
    name: str
    title: str
    color: str


class LabelList(Answer):
    items: Omittable[list[Label]] = None


class LabelsNow(Answer):
    labels: list[str]


class View(Answer):
    id: str = Field(description="mine, unassigned, queue:<name>, snoozed, resolved, mentions, saved:<id>")
    name: str
    kind: Literal["builtin", "personal", "shared", "filter"]
    filters: ViewFilters
    count: Omittable[int] = None


class ViewList(Answer):
    items: Omittable[list[View]] = None


class BulkItem(Answer):
    id: int
    ok: bool
    status: int
    error: Omittable[str] = None


class BulkResult(Answer):
    done: int
    failed: int
    results: list[BulkItem]


# -- customer profiles, custom attributes, mentions, macros -----------------------------------------------------------

class CustomerProfile(Customer):
    attributes: dict[str, str]  # always there on a profile


class AttributeDefinition(Answer):
    key: str
    label: str
    type: Literal["text", "number", "date", "list"]
    options: list[str]
    position: int


class AttributeDefinitionList(Answer):
    items: list[AttributeDefinition]


class Mention(Answer):
    id: int
    message_id: int
    conversation_id: int
    customer_id: int
    customer_name: Omittable[str] = None
    agent_id: int
    by_agent_id: int | None = None
    by_agent_name: Omittable[str] = None
    text: str
    created_at: str
    read_at: str | None


class MentionList(Answer):
    items: list[Mention]
    unread: int


class UnreadMentions(Answer):
    unread: int


class MentionRead(Answer):
    unread: int
    mention: Mention


class Macro(Answer):
    id: int
    name: str
    actions: list[MacroAction]
    created_at: Omittable[str] = None
    updated_at: Omittable[str] = None


class MacroList(Answer):
    items: list[Macro]


class MacroApplied(Answer):
    macro_id: int
    applied: list[str]
    conversation: Conversation


# -- what the hub could not place (hub.attention) ---------------------------------------------------------------------

class AttentionEvent(Answer):
    id: int
    channel: str
    status: Literal["failed", "rejected", "done", "dismissed", "pending"]
    reason: str = Field(description="short reason code (docs/attention.md)")
    error: str = Field(description="the full reason")
    received_at: str
    dedupe_key: Omittable[str] = None
    attempts: Omittable[int] = None
    sender: str
    summary: str = Field(description="subject or first line")
    message_id: int | None = None
    actions: list[dict[str, Any]]
    raw: Omittable[dict[str, Any]] = Field(None, description="the event as sent (text), on GET /attention/{id}")


class AttentionList(Answer):
    items: list[AttentionEvent]
    count: int = Field(description="events listed with these filters, over all pages")
    next: str | None


class AttentionResult(Answer):
    outcome: str
    status: str
    message_id: int | None

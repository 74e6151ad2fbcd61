"""The OpenAPI 3.1 document for /api/v1. Request schemas come from the pydantic bodies the handlers validate with
(hub.api.schemas), response schemas from the answers' models (hub.api.responses); a test checks that every route is
documented and that real responses match these schemas."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel

from hub.api.doc_parts import body as _body
from hub.api.doc_parts import components
from hub.api.doc_parts import json_response as _json
from hub.api.doc_parts import query as _query
from hub.api.responses import (
    Agent,
    AgentStateList,
    ApiToken,
    ApiTokenList,
    AttentionEvent,
    AttentionList,
    AttentionResult,
    AttributeDefinition,
    AttributeDefinitionList,
    BulkResult,
    CannedList,
    CannedResponse,
    ChannelList,
    Conversation,
    ConversationDetail,
    ConversationPage,
    Customer,
    CustomerList,
    CustomerProfile,
    Error,
    Flagged,
    Inbox,
    IngestResult,
    Label,
    LabelList,
    LabelsNow,
    Macro,
    MacroApplied,
    MacroList,
    MentionList,
    MentionRead,
    MergeResult,
    Message,
    MessagePage,
    OfferList,
    PresenceResult,
    QueueList,
    RenderedCanned,
    ReopenResult,
    ReplyResult,
    RoutingConfig,
    SearchResult,
    SnoozeResult,
    TemplatePreview,
    TypingResult,
    UnreadMentions,
    View,
    ViewList,
    Wall,
    WhatsAppTemplateList,
)
from hub.api.schemas import (
    AgentCreateBody,
    AgentPatchBody,
    AttributeDefinitionBody,
    AttributeDefinitionPatchBody,
    BulkBody,
    CallBody,
    CannedBody,
    CannedPatchBody,
    CannedRenderBody,
    CustomerPatchBody,
    InboundBody,
    LabelBody,
    LabelPatchBody,
    MacroApplyBody,
    MacroBody,
    MacroPatchBody,
    MentionsReadBody,
    MergeBody,
    PresenceBody,
    ReplyBody,
    ResolveBody,
    RoutingAgentBody,
    RoutingRulesBody,
    SnoozeBody,
    TemplatePreviewBody,
    TokenCreateBody,
    TransferBody,
    TypingBody,
    ViewBody,
    ViewPatchBody,
)
from hub.config import QueueSettings
from hub.keys import SETTINGS

_ERRORS = {
    "400": _json(Error, "Bad request: the message says what to fix"),
    "401": _json(Error, "No valid bearer token"),
    "404": _json(Error, "Not found; also what is outside your reach, in the same words"),
}
# You see the conversation (its customer is one you serve) but it is another queue's work (hub.visibility).
_NOT_YOURS = {"403": _json(Error, "Another queue's conversation: you may read it, not act on it")}
_WRITE_ERRORS = {
    **_ERRORS,
    "413": _json(Error, "Body over server.max_body_bytes"),
    "415": _json(Error, "Not JSON"),
    "422": _json(Error, "Invalid body; details lists each field"),
}


def _id_param(what: str) -> dict[str, Any]:
    return {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}, "description": what}


_PAGING = [
    _query("limit", "page size, 1-200 (default 50)", {"type": "integer", "minimum": 1, "maximum": 200}),
    _query("cursor", "the `next` value of the previous page"),
]

PATHS: dict[str, dict[str, Any]] = {
    "/api/v1/inbound": {
        "post": {
            "summary": "Feed an inbound message from another system (the API channel). Admin token.",
            "requestBody": _body(InboundBody),
            "responses": {
                "201": _json(IngestResult, "Stored"),
                "200": _json(IngestResult, "A repeat of an external_id already stored: nothing new stored"),
                "202": _json(Flagged, "Kept in the journal but not processed; `hub events replay` retries it"),
                **_WRITE_ERRORS,
            },
        }
    },
    "/api/v1/customers": {
        "get": {
            "summary": "Find customers by identity or by text (name, phone, email)",
            "parameters": [
                _query("identity", "kind:value, normalized like inbound identities"),
                _query("q", "text anywhere in a name or identity, any case (% and _ mean themselves); a phone number "
                            "as people type it, \"+1 (415) 555-01\", also by its digits"),
                _PAGING[0],
            ],
            "responses": {
                "200": _json(CustomerList),
                **_ERRORS,
            },
        }
    },
    "/api/v1/customers/{id}": {
        "get": {
            "summary": "A customer, their identities and recent conversations",
            "parameters": [_id_param("customer id")],
            "responses": {"200": _json(Customer), **_ERRORS},
        }
    },
    "/api/v1/customers/{id}/timeline": {
        "get": {
            "summary": "Every message of the customer, all channels, in time order, a page at a time",
            "parameters": [
                _id_param("customer id"), *_PAGING,
                _query("order", "asc: oldest first (default); desc: newest first", {"enum": ["asc", "desc"]}),
            ],
            "responses": {"200": _json(MessagePage), **_ERRORS},
        }
    },
    "/api/v1/customers/{id}/merge": {
        "post": {
            "summary": "Merge another customer into this one (identities, conversations, messages). Admin token.",
            "parameters": [_id_param("the surviving customer")],
            "requestBody": _body(MergeBody),
            "responses": {
                "200": _json(MergeResult),
                "409": _json(Error, "Cannot merge (same customer, or already merged)"),
                **_WRITE_ERRORS,
            },
        }
    },
    "/api/v1/conversations": {
        "get": {
            "summary": "Conversations, most recent activity first; an agent sees their queues and own work",
            "parameters": [
                _query("status", "open, assigned, snoozed or resolved",
                       {"enum": ["open", "assigned", "snoozed", "resolved"]}),
                _query("queue", "queue name"),
                _query("agent", "agent id", {"type": "integer"}),
                _query("customer", "customer id", {"type": "integer"}),
                *_PAGING,
            ],
            "responses": {"200": _json(ConversationPage), **_ERRORS},
        }
    },
    "/api/v1/conversations/{id}": {
        "get": {
            "summary": "A conversation with its customer and messages",
            "parameters": [_id_param("conversation id")],
            "responses": {"200": _json(ConversationDetail), **_ERRORS},
        }
    },
    "/api/v1/conversations/{id}/messages": {
        "post": {
            "summary": "Reply (through the outbox, with files when the channel carries media) on any channel the "
                       "customer has an identity for, send an approved WhatsApp template (`template` instead of "
                       "`text`; allowed outside the 24-hour window), or add a note (\"@Full Name\" or \"@\" and "
                       "the part of their email before the @ mentions an agent)",
            "parameters": [_id_param("conversation id")],
            "requestBody": _body(ReplyBody),
            "responses": {"201": _json(ReplyResult, "Queued for sending (or stored, for a note)"),
                          **_WRITE_ERRORS, **_NOT_YOURS,
                          "422": _json(Error, "Invalid body (details lists each field), or a reply that cannot go "
                                              "(outside WhatsApp's 24-hour window, opted out...), or a template "
                                              "that is not approved or lacks a variable's value: the message says "
                                              "why"),
                          "502": _json(Error, "A template was given and Twilio could not be reached")},
        }
    },
    "/api/v1/conversations/{id}/resolve": {
        "post": {
            "summary": "Resolve the conversation; the customer's next message opens a new one",
            "parameters": [_id_param("conversation id")],
            "requestBody": _body(ResolveBody, required=False),
            "responses": {"200": _json(Conversation),
                          "409": _json(Error, "Already resolved"), **_WRITE_ERRORS, **_NOT_YOURS},
        }
    },
    "/api/v1/messages/{id}": {
        "get": {
            "summary": "One message with its delivery status",
            "parameters": [_id_param("message id")],
            "responses": {"200": _json(Message), **_ERRORS},
        }
    },
    "/api/v1/attachments/{id}": {
        "get": {
            "summary": "An attachment's bytes (served as a download, sandboxed)",
            "parameters": [_id_param("attachment id")],
            "responses": {
                "200": {"description": "The file", "content": {"application/octet-stream": {}}},
                "409": _json(Error, "Not stored (still being fetched, or the fetch failed)"),
                **_ERRORS,
            },
        }
    },
}

_ROUTING_ERRORS = {**_WRITE_ERRORS, "409": _json(Error, "Not possible now; the message says why")}

# Routing: presence, offers, transfer, live stats.
PATHS.update({
    "/api/v1/agents/me/presence": {
        "post": {
            "summary": "Set the signed-in agent's presence; available agents are offered work",
            "requestBody": _body(PresenceBody),
            "responses": {"200": _json(PresenceResult),
                          **_ROUTING_ERRORS},
        }
    },
    "/api/v1/offers": {
        "get": {
            "summary": "The signed-in agent's pending offers, soonest deadline first",
            "responses": {"200": _json(OfferList),
                          **_ERRORS},
        }
    },
    "/api/v1/conversations/{id}/accept": {
        "post": {
            "summary": "Accept the conversation offered to you: it is assigned to you",
            "parameters": [_id_param("conversation id")],
            "responses": {"200": _json(Conversation), **_ROUTING_ERRORS},
        }
    },
    "/api/v1/conversations/{id}/reject": {
        "post": {
            "summary": "Reject the conversation offered to you: it is offered to the next agent",
            "parameters": [_id_param("conversation id")],
            "responses": {"200": _json(Conversation), **_ROUTING_ERRORS},
        }
    },
    "/api/v1/conversations/{id}/transfer": {
        "post": {
            "summary": "Transfer to a queue (keeping its age) or to an agent, with an optional note",
            "parameters": [_id_param("conversation id")],
            "requestBody": _body(TransferBody),
            "responses": {"200": _json(Conversation), **_ROUTING_ERRORS, **_NOT_YOURS},
        }
    },
    "/api/v1/queues": {
        "get": {
            "summary": "Queues with live stats: waiting, longest wait, agents, offers, SLA attainment",
            "responses": {"200": _json(QueueList),
                          **_ERRORS},
        }
    },
    "/api/v1/agents": {
        "get": {
            "summary": "Agents with presence and current load; email, phone and voice client only for admins and "
                       "supervisors",
            "responses": {"200": _json(AgentStateList),
                          **_ERRORS},
        }
    },
})


# The routing config, changed live (admin or supervisor): validated by the engine (400 with its reason, nothing
# changed), stored so it outlives a restart (the config file is the seed), applied in every hub process.
_ROUTING_CONFIG_ERRORS = {**_WRITE_ERRORS, "403": _json(Error, "Not an admin or supervisor")}
_QUEUE_NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"},
               "description": "queue: a new queue's name is a slug, [a-z0-9][a-z0-9_-]{0,63} (422 otherwise); "
                              "its title is the text people read"}
PATHS.update({
    "/api/v1/routing": {
        "get": {
            "summary": "The effective routing config (admin or supervisor): queues, rules, agents' routing profiles, "
                       "each saying whether it comes from the config file or a change made through the API",
            "responses": {"200": _json(RoutingConfig), **_ERRORS,
                          "403": _json(Error, "Not an admin or supervisor")},
        }
    },
    "/api/v1/routing/queues/{name}": {
        "put": {
            "summary": "Create or replace a queue (all its settings); applied live in every hub process",
            "parameters": [_QUEUE_NAME],
            "requestBody": _body(QueueSettings),
            "responses": {"200": _json(RoutingConfig), **_ROUTING_CONFIG_ERRORS},
        },
        "delete": {
            "summary": "Delete a queue: 400 while a rule, the default queue or an overflow names it; 409 while "
                       "conversations wait in it",
            "parameters": [_QUEUE_NAME],
            "responses": {"200": _json(RoutingConfig), **_ROUTING_CONFIG_ERRORS,
                          "409": _json(Error, "Conversations wait in the queue")},
        },
    },
    "/api/v1/routing/rules": {
        "put": {
            "summary": "Replace the whole ordered list of routing rules (and optionally the default queue)",
            "requestBody": _body(RoutingRulesBody),
            "responses": {"200": _json(RoutingConfig), **_ROUTING_CONFIG_ERRORS},
        }
    },
    "/api/v1/routing/agents/{id}": {
        "put": {
            "summary": "Set an agent's routing profile: skills with proficiency, capacity per class, wrap-up, "
                       "exclusive classes",
            "parameters": [_id_param("agent id")],
            "requestBody": _body(RoutingAgentBody),
            "responses": {"200": _json(RoutingConfig), **_ROUTING_CONFIG_ERRORS},
        }
    },
})


# The console's additions: its inbox list and the events WebSocket.
PATHS.update({
    "/api/v1/inbox": {
        "get": {
            "summary": "Open work the caller may see (their queues and own conversations), most recent first, with "
                       "each customer's name and the last message: what the console's list shows. ?view= lists one "
                       "view (GET /api/v1/views); or filter with the parameters below",
            "parameters": [
                _query("view", "a view's id, e.g. mine, unassigned, queue:support, snoozed, resolved, saved:3"),
                _query("status", "default: open and assigned", {"enum": ["open", "assigned", "snoozed", "resolved"]}),
                _query("channel", "the conversation's channel or its customer's latest one"),
                _query("queue", "queue name"),
                _query("label", "a label on the conversation or its customer"),
                _query("agent_id", "whose", {"type": "integer", "minimum": 1}),
                _query("unassigned", "true: nobody holds it", {"type": "boolean"}),
                _query("waiting_seconds", "the customer waited at least this long for a reply",
                       {"type": "integer", "minimum": 1}),
            ],
            "responses": {
                "200": _json(Inbox),
                **_ERRORS,
            },
        }
    },
    "/api/v1/events": {
        "get": {
            "summary": "WebSocket (Upgrade: websocket) of live events the caller may see. First frame: "
                       '{"type": "hello", "data": {"server_time"}}; then bus events {"type", "at", "data"}; '
                       '{"type": "lagged"} when events were dropped (re-sync through REST). Authenticated by bearer '
                       "token, or by the console's session cookie from the hub's own Origin.",
            "responses": {
                "101": {"description": "Switching protocols: the event stream"},
                "400": _json(Error, "Not a WebSocket upgrade"),
                "401": _json(Error, "No valid bearer token or session"),
                "403": _json(Error, "Session cookie from another origin"),
            },
        }
    },
})


# The console's admin and look-up additions: agent accounts, API tokens, search, configured channels.
_FORBIDDEN = {"403": _json(Error, "Your role may not do this (admin only)")}
_CONFLICT = {"409": _json(Error, "Conflicts with another agent, or would lock you or every admin out")}
PATHS["/api/v1/agents"]["post"] = {
    "summary": "Create an agent account (admin)",
    "requestBody": _body(AgentCreateBody),
    "responses": {"201": _json(Agent, "Created"), **_FORBIDDEN, **_CONFLICT, **_WRITE_ERRORS},
}
PATHS["/api/v1/agents"]["get"]["summary"] += "; admins and supervisors also get phone, voice_client, created_at"
PATHS.update({
    "/api/v1/agents/{id}": {
        "get": {
            "summary": "One agent's account (admin or supervisor)",
            "parameters": [_id_param("agent id")],
            "responses": {"200": _json(Agent), **_FORBIDDEN, **_ERRORS},
        },
        "patch": {
            "summary": "Change an agent (admin): name, email, role, queues, phone, voice_client, disabled, or a new "
                       "password. Disabling or a password reset signs the agent out everywhere; queue and disabled "
                       "changes reach routing at once.",
            "parameters": [_id_param("agent id")],
            "requestBody": _body(AgentPatchBody),
            "responses": {"200": _json(Agent), **_FORBIDDEN, **_CONFLICT, **_WRITE_ERRORS},
        },
    },
    "/api/v1/tokens": {
        "get": {
            "summary": "API tokens, live ones first (admin); secrets are never listed",
            "responses": {"200": _json(ApiTokenList),
                          **_FORBIDDEN, **_ERRORS},
        },
        "post": {
            "summary": "Create an API token (admin). The answer holds the secret (`token`): the only time it is shown",
            "requestBody": _body(TokenCreateBody),
            "responses": {"201": _json(ApiToken, "Created; keep `token` now"), **_FORBIDDEN,
                          **_WRITE_ERRORS},
        },
    },
    "/api/v1/tokens/{id}": {
        "delete": {
            "summary": "Revoke an API token (admin): it stops working at once, on every hub process",
            "parameters": [_id_param("token id")],
            "responses": {"200": _json(ApiToken, "Revoked (or already was)"), **_FORBIDDEN, **_ERRORS},
        },
    },
    "/api/v1/search": {
        "get": {
            "summary": "Search customers (name, phone, email) and messages (every word of q, as word prefixes), "
                       "newest messages first, each with a snippet; an agent finds only their queues' and own work",
            "parameters": [_query("q", "the words to find"), _query(
                "limit", "most results of each kind, 1-50 (default 20)",
                {"type": "integer", "minimum": 1, "maximum": 50})],
            "responses": {"200": _json(SearchResult), **_ERRORS},
        }
    },
    "/api/v1/channels": {
        "get": {
            "summary": "The configured channels: which identities each reaches and its capabilities (media, voice, "
                       "html, text length, rate); the console shows a Call button when one has voice",
            "responses": {"200": _json(ChannelList), **_ERRORS},
        }
    },
})


# Phone calls an agent places (click-to-call, when the voice channel is configured).
PATHS["/api/v1/conversations/{id}/call"] = {
    "post": {
        "summary": "Call the customer: the hub rings your phone (or Twilio Client) first, then dials the customer from "
                   "the business number. The answer is the call's message on the timeline; status callbacks update it "
                   "(message.updated events)",
        "parameters": [_id_param("conversation id")],
        "requestBody": _body(CallBody, required=False),
        "responses": {
            "202": _json(Message, "The call is being placed (status failed with a reason if Twilio refused)"),
            "400": _json(Error, "Not an agent's token (an admin token rings no one), or a bad body"),
            "409": _json(Error, "You have no phone or voice_client, voice is not configured, or the customer "
                                        "has no phone number"),
            **{k: v for k, v in _WRITE_ERRORS.items() if k != "400"},
        },
    }
}

# WhatsApp's approved templates in a conversation (hub/api/template_routes.py; sent by POST .../messages).
_TEMPLATE_ERRORS = {
    "422": _json(Error, "Invalid body; WhatsApp not configured; the template is not approved, a variable has no "
                        "value (for this customer) or the customer has no phone identity: the message says which"),
    "502": _json(Error, "Twilio could not be reached"),
}
PATHS["/api/v1/templates"] = {
    "get": {
        "summary": "The account's WhatsApp templates (Twilio's Content API) with their body, variables' samples and "
                   "approval status: what an agent may send in a conversation (only `sendable` ones)",
        "responses": {"200": _json(WhatsAppTemplateList), **_ERRORS, **_TEMPLATE_ERRORS},
    }
}
PATHS["/api/v1/conversations/{id}/template-preview"] = {
    "post": {
        "summary": "An approved template filled in for the conversation's customer, checked as sending it is; "
                   "nothing is sent (POST .../messages with `template` sends it)",
        "parameters": [_id_param("conversation id")],
        "requestBody": _body(TemplatePreviewBody),
        "responses": {"200": _json(TemplatePreview), **_WRITE_ERRORS, **_NOT_YOURS, **_TEMPLATE_ERRORS},
    }
}


def _all_paths() -> dict[str, dict[str, Any]]:
    """PATHS with the parts that areas keep beside their code: automation rules, business hours, outbound webhooks
    and bots; business events and segments; campaigns; reports."""
    from hub.automation import openapi as automation
    from hub.campaigns import openapi as campaigns
    from hub.reports import openapi as reports
    from hub.segments import openapi as segments

    paths = {path: dict(item) for path, item in PATHS.items()}
    for part in (automation.PATHS, segments.PATHS, campaigns.PATHS, reports.PATHS):
        for path, item in part.items():  # POST /api/v1/events shares its path with the WebSocket's GET
            paths.setdefault(path, {}).update(item)
    return paths


# The supervisors' wall (hub/api/wall_routes.py).
PATHS["/api/v1/wall"] = {
    "get": {
        "summary": "The wall (admins and supervisors): each queue's live figures (now) and its figures since `since` "
                   "counted from the store (they survive restarts), and what each agent holds as the store says",
        "parameters": [_query("since", "start of the window: ISO 8601 with an offset, or epoch seconds (default: "
                                       "today since 00:00 UTC)")],
        "responses": {"200": _json(Wall), "403": _json(Error, "Not an admin or supervisor"), **_ERRORS},
    }
}

# Canned responses (hub/api/canned_routes.py).
PATHS.update({
    "/api/v1/canned-responses": {
        "get": {
            "summary": "Your personal canned responses and the team's (personal first); q matches shortcut, title or "
                       "text",
            "parameters": [_query("q", "search text")],
            "responses": {"200": _json(CannedList), **_ERRORS},
        },
        "post": {
            "summary": "Add a canned response: personal (yours) or team (admins and supervisors)",
            "requestBody": _body(CannedBody),
            "responses": {"201": _json(CannedResponse), "403": _json(Error, "A team response by an agent"),
                          "409": _json(Error, "The shortcut is taken"), **_WRITE_ERRORS},
        },
    },
    "/api/v1/canned-responses/{id}": {
        "patch": {
            "summary": "Change a canned response (yours, or a team one as admin or supervisor)",
            "parameters": [_id_param("canned response id")],
            "requestBody": _body(CannedPatchBody),
            "responses": {"200": _json(CannedResponse), "403": _json(Error, "A team response by an agent"),
                          "409": _json(Error, "The shortcut is taken"), **_WRITE_ERRORS},
        },
        "delete": {
            "summary": "Delete a canned response (yours, or a team one as admin or supervisor)",
            "parameters": [_id_param("canned response id")],
            "responses": {"204": {"description": "Deleted"}, "403": _json(Error, "A team response by an agent"),
                          **_WRITE_ERRORS},
        },
    },
    "/api/v1/canned-responses/{id}/render": {
        "post": {
            "summary": "The response's text for one conversation, its variables filled in; missing names the "
                       "variables that had no value (left empty)",
            "parameters": [_id_param("canned response id")],
            "requestBody": _body(CannedRenderBody),
            "responses": {"200": _json(RenderedCanned), **_WRITE_ERRORS},
        }
    },
})

# Who owns a conversation: "Assign to me" and Reopen (hub/api/ownership.py).
PATHS.update({
    "/api/v1/conversations/{id}/claim": {
        "post": {
            "summary": "Assign to me: a waiting conversation (or one offered to anyone) becomes yours, through "
                       "routing, so your capacity is respected. 409 says why not (assigned to someone else, "
                       "not Available, at "
                       "capacity). With console.claim_on_first_reply, your first reply does the same",
            "parameters": [_id_param("conversation id")],
            "responses": {"200": _json(Conversation), **_ROUTING_ERRORS},
        }
    },
    "/api/v1/conversations/{id}/reopen": {
        "post": {
            "summary": "Reopen a resolved conversation (also how the console undoes Resolve): it waits in its queue "
                       "again and, for an agent, is claimed for them; claim_refused says why it could not be",
            "parameters": [_id_param("conversation id")],
            "responses": {"200": _json(ReopenResult), **_ROUTING_ERRORS},
        }
    },
})


# The inbox's daily tools: labels, views, snooze, bulk actions (hub/inbox; docs/console.md).
_LABEL_NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"},
               "description": "the label's slug"}
_LABELS_NOW = _json(LabelsNow, "The labels it has now")
_ADMIN_ONLY = {"403": _json(Error, "Not an admin")}
_SHARED_ONLY = {"403": _json(Error, "A shared view by an agent (admins and supervisors manage those)")}
PATHS.update({
    "/api/v1/labels": {
        "get": {"summary": "The labels admins defined (for conversations and customers)",
                "responses": {"200": _json(LabelList), **_ERRORS}},
        "post": {"summary": "Define a label (admin)", "requestBody": _body(LabelBody),
                 "responses": {"201": _json(Label), **_ADMIN_ONLY,
                               "409": _json(Error, "The name is taken"), **_WRITE_ERRORS}},
    },
    "/api/v1/labels/{name}": {
        "patch": {"summary": "Change a label's title or color (admin)", "parameters": [_LABEL_NAME],
                  "requestBody": _body(LabelPatchBody),
                  "responses": {"200": _json(Label), **_ADMIN_ONLY, **_WRITE_ERRORS}},
        "delete": {"summary": "Delete a label, and take it off every conversation and customer (admin); 409 while "
                              "an automation rule names it",
                   "parameters": [_LABEL_NAME],
                   "responses": {"204": {"description": "Deleted"}, **_ADMIN_ONLY,
                                 "409": _json(Error, "A rule uses it"), **_WRITE_ERRORS}},
    },
    "/api/v1/conversations/{id}/labels/{name}": {
        "put": {"summary": "Label a conversation you may act on", "parameters": [_id_param("conversation id"),
                                                                                 _LABEL_NAME],
                "responses": {"200": _LABELS_NOW, **_NOT_YOURS, **_WRITE_ERRORS}},
        "delete": {"summary": "Take a label off a conversation you may act on",
                   "parameters": [_id_param("conversation id"), _LABEL_NAME],
                   "responses": {"200": _LABELS_NOW, **_NOT_YOURS, **_WRITE_ERRORS}},
    },
    "/api/v1/customers/{id}/labels/{name}": {
        "put": {"summary": "Label a customer you see", "parameters": [_id_param("customer id"), _LABEL_NAME],
                "responses": {"200": _LABELS_NOW, **_WRITE_ERRORS}},
        "delete": {"summary": "Take a label off a customer you see",
                   "parameters": [_id_param("customer id"), _LABEL_NAME],
                   "responses": {"200": _LABELS_NOW, **_WRITE_ERRORS}},
    },
    "/api/v1/views": {
        "get": {"summary": "Your views with their counts: All open, Mine, Unassigned, each of your queues, Snoozed, "
                           "Resolved, Mentions, then saved views (yours and shared). GET /api/v1/inbox?view=<id> "
                           "lists one",
                "responses": {"200": _json(ViewList), **_ERRORS}},
        "post": {"summary": "Save a view: filters by channel, queue, label, status, agent, waiting longer than; "
                            "yours, or shared (admins and supervisors)",
                 "requestBody": _body(ViewBody),
                 "responses": {"201": _json(View), **_SHARED_ONLY, **_WRITE_ERRORS}},
    },
    "/api/v1/views/{id}": {
        "patch": {"summary": "Rename a saved view or change its filters", "parameters": [_id_param("saved view id")],
                  "requestBody": _body(ViewPatchBody),
                  "responses": {"200": _json(View), **_SHARED_ONLY, **_WRITE_ERRORS}},
        "delete": {"summary": "Delete a saved view", "parameters": [_id_param("saved view id")],
                   "responses": {"204": {"description": "Deleted"}, **_SHARED_ONLY, **_WRITE_ERRORS}},
    },
    "/api/v1/conversations/{id}/snooze": {
        "post": {"summary": "Snooze: out of the active inbox, the owner's capacity free, until `until` or the "
                            "customer's next message (which also ends a timed snooze); it then waits in its queue "
                            "again, offered to its owner first",
                 "parameters": [_id_param("conversation id")], "requestBody": _body(SnoozeBody, required=False),
                 "responses": {"200": _json(SnoozeResult), **_NOT_YOURS, "409": _json(Error, "Resolved"),
                               **_WRITE_ERRORS}},
        "delete": {"summary": "Wake a snoozed conversation now (offered to its owner first)",
                   "parameters": [_id_param("conversation id")],
                   "responses": {"200": _json(Conversation), **_NOT_YOURS,
                                 "409": _json(Error, "Not snoozed"), **_WRITE_ERRORS}},
    },
    "/api/v1/conversations/bulk": {
        "post": {"summary": "One action on several conversations (assign, label, unlabel, resolve, snooze), each "
                            "through the single action's path (assign and resolve through routing, so capacity "
                            "holds); results answers per conversation, with the single action's status and reason",
                 "requestBody": _body(BulkBody),
                 "responses": {"200": _json(BulkResult), **_WRITE_ERRORS}},
    },
})


# Customer profiles and custom attributes, @mentions, macros (hub/api/profile_routes.py, mention_routes.py,
# macro_routes.py).

_ADMIN = {"403": _json(Error, "Not an admin")}
_CONFLICT = {"409": _json(Error, "Conflicts with what exists; the message says what")}
_KEY = {"name": "key", "in": "path", "required": True, "description": "attribute key",
        "schema": {"type": "string", "pattern": "^[a-z][a-z0-9_]{0,39}$"}}


def _profile_paths() -> dict[str, Any]:
    return {
        "/api/v1/customers/{id}": {
            "patch": {
                "summary": "Edit a customer you serve: the name, and custom attribute values (each checked against "
                           "its type: 422 with the reason, nothing changed, when one does not fit)",
                "parameters": [_id_param("customer id")],
                "requestBody": _body(CustomerPatchBody),
                "responses": {"200": _json(CustomerProfile), **_CONFLICT, **_WRITE_ERRORS},
            },
        },
        "/api/v1/customer-attributes": {
            "get": {
                "summary": "The custom attributes admins defined for customers, in panel order",
                "responses": {"200": _json(AttributeDefinitionList), **_ERRORS},
            },
            "post": {
                "summary": "Define a custom attribute (admin): text, number, date or list (with its options)",
                "requestBody": _body(AttributeDefinitionBody),
                "responses": {"201": _json(AttributeDefinition), **_ADMIN, **_CONFLICT, **_WRITE_ERRORS},
            },
        },
        "/api/v1/customer-attributes/{key}": {
            "patch": {
                "summary": "Change an attribute's label, order or a list's options (admin); its type stays",
                "parameters": [_KEY],
                "requestBody": _body(AttributeDefinitionPatchBody),
                "responses": {"200": _json(AttributeDefinition), **_ADMIN, **_WRITE_ERRORS},
            },
            "delete": {
                "summary": "Remove an attribute and every customer's value of it (admin)",
                "parameters": [_KEY],
                "responses": {"204": {"description": "Removed"}, **_ADMIN, **_WRITE_ERRORS},
            },
        },
        "/api/v1/mentions": {
            "get": {
                "summary": "Your @mentions in internal notes, newest first, and how many are unread",
                "parameters": [_query("unread", "true: only unread ones", {"enum": ["true", "false"]}),
                               _query("limit", "1-200 (default 50)", {"type": "integer", "minimum": 1,
                                                                      "maximum": 200})],
                "responses": {"200": _json(MentionList), **_ERRORS},
            },
        },
        "/api/v1/mentions/read": {
            "post": {
                "summary": "Mark your mentions read: all of them, or those in one conversation",
                "requestBody": _body(MentionsReadBody, required=False),
                "responses": {"200": _json(UnreadMentions), **_WRITE_ERRORS},
            },
        },
        "/api/v1/mentions/{id}/read": {
            "post": {
                "summary": "Mark one of your mentions read",
                "parameters": [_id_param("mention id")],
                "responses": {"200": _json(MentionRead), **_WRITE_ERRORS},
            },
        },
        "/api/v1/macros": {
            "get": {
                "summary": "The macros, by name (everyone may apply them)",
                "responses": {"200": _json(MacroList), **_ERRORS},
            },
            "post": {
                "summary": "Add a macro (admin): actions reply (a team canned response), label, assign (an agent, "
                           "or whoever applies it), resolve, run in order",
                "requestBody": _body(MacroBody),
                "responses": {"201": _json(Macro), **_ADMIN, **_CONFLICT, **_WRITE_ERRORS},
            },
        },
        "/api/v1/macros/{id}": {
            "patch": {
                "summary": "Rename a macro or replace its actions (admin)",
                "parameters": [_id_param("macro id")],
                "requestBody": _body(MacroPatchBody),
                "responses": {"200": _json(Macro), **_ADMIN, **_CONFLICT, **_WRITE_ERRORS},
            },
            "delete": {
                "summary": "Delete a macro (admin)",
                "parameters": [_id_param("macro id")],
                "responses": {"204": {"description": "Deleted"}, **_ADMIN, **_WRITE_ERRORS},
            },
        },
        "/api/v1/macros/{id}/apply": {
            "post": {
                "summary": "Apply a macro to a conversation: each action through its own endpoint's path (reply, "
                           "label, claim or transfer, resolve); 409 names the action that could not run and which "
                           "ran before it",
                "parameters": [_id_param("macro id")],
                "requestBody": _body(MacroApplyBody),
                "responses": {"200": _json(MacroApplied),
                              "403": _json(Error, "Another queue's conversation"), **_CONFLICT,
                              **_WRITE_ERRORS},
            },
        },
    }


for _path, _item in _profile_paths().items():  # PATCH /customers/{id} joins its GET
    PATHS.setdefault(_path, {}).update(_item)

# What the hub could not place (hub.attention): supervisors and admins.
def _attention_paths() -> dict[str, Any]:
    from hub.api.attention_routes import ActionBody, AttachBody, DismissBody

    not_allowed = {"403": _json(Error, "Not an admin or supervisor")}
    result = _json(AttentionResult)
    conflict = {"409": _json(Error, "Not failed or rejected any more, or the action cannot be done (why)")}

    def action(summary: str, model: type[BaseModel], required: bool) -> dict[str, Any]:
        return {"post": {"summary": summary, "parameters": [_id_param("event id")],
                         "requestBody": _body(model, required),
                         "responses": {"200": result, **conflict, **not_allowed, **_WRITE_ERRORS}}}

    return {
        "/api/v1/attention": {"get": {
            "summary": "Events the hub could not place (flagged or rejected, every channel), newest first",
            "parameters": [_query("channel", "only this channel"), _query("reason", "only this reason code"),
                           _query("before", "the `next` of the previous page"),
                           _query("limit", "page size, 1-200 (default 50)",
                                  {"type": "integer", "minimum": 1, "maximum": 200})],
            "responses": {"200": _json(AttentionList), **not_allowed, **_ERRORS},
        }},
        "/api/v1/attention/{id}": {"get": {
            "summary": "One event with its raw payload (as text) and every action taken on it",
            "parameters": [_id_param("event id")],
            "responses": {"200": _json(AttentionEvent), **not_allowed, **_ERRORS},
        }},
        "/api/v1/attention/{id}/raw": {"get": {
            "summary": "Download the event as the provider sent it (an .eml, or JSON)",
            "parameters": [_id_param("event id")],
            "responses": {"200": {"description": "The raw event", "content": {
                "message/rfc822": {"schema": {"type": "string"}}, "application/json": {"schema": {}}}},
                **not_allowed, **_ERRORS},
        }},
        "/api/v1/attention/{id}/replay": action(
            "Process it again as its channel reads it now (after a fix or a config change)", ActionBody, False),
        "/api/v1/attention/{id}/attach": action(
            "Store it on a customer's timeline (customer_id, or identity for the customer who owns it or a new one), "
            "through the one inbound path", AttachBody, True),
        "/api/v1/attention/{id}/dismiss": action("Nothing to do about it: kept, dismissed, with a note",
                                                 DismissBody, True),
    }


PATHS.update(_attention_paths())


# One tag per area, so the docs page groups the API the way a developer looks for it. A path names its area by
# its first segment after /api/v1/; a new area gets a tag of its own name without a line here.
TAGS: list[tuple[str, str, tuple[str, ...]]] = [
    ("Conversations", "The inbox, conversations, their messages and attachments",
     ("inbox", "conversations", "messages", "attachments")),
    ("Customers", "Customers, their identities, profile and one timeline; custom attributes",
     ("customers", "customer-attributes")),
    ("Inbound", "Feed messages from another system (the API channel)", ("inbound",)),
    ("Business events", "Orders, payments and any typed event from the business, onto the customer's timeline",
     ()),
    ("Segments", "Saved customer segments, RFM scoring, their customers and sizes", ("segments",)),
    ("Campaigns", "Proactive messages to a segment or a list of identities, with their results", ("campaigns",)),
    ("Routing", "Queues, offers, routing rules and agents' routing settings", ("routing", "offers", "queues")),
    ("Calls", "Phone calls agents place", ()),
    ("Agents", "Agents, their presence, and API tokens", ("agents", "tokens")),
    ("Channels", "The enabled channels and what each can do; web chat typing", ("channels", "webchat")),
    ("Events", "The live event stream (WebSocket)", ("events",)),
    ("Search", "Search across conversations and customers", ("search",)),
    ("Mentions", "Your @mentions in internal notes", ("mentions",)),
    ("Macros", "Named sequences of actions applied to a conversation in one click", ("macros",)),
]


def _tag(path: str) -> str:
    if path.endswith("/call"):
        return "Calls"
    area = path.removeprefix("/api/v1/").split("/", 1)[0]
    for name, _, areas in TAGS:
        if area in areas:
            return name
    return area.replace("-", " ").replace("_", " ").capitalize()


def _tagged(paths: dict[str, dict[str, Any]]) -> tuple[dict[str, dict[str, Any]], list[dict[str, str]]]:
    """The paths with each operation tagged by its area (unless it names its own tags), and the tags in use."""
    out: dict[str, dict[str, Any]] = {}
    used: dict[str, None] = {}
    for path, item in paths.items():
        out[path] = {}
        for method, op in item.items():
            if isinstance(op, dict) and method in {"get", "put", "post", "delete", "patch", "head", "options"}:
                op = {"tags": [_tag(path)], **op}
                used.update(dict.fromkeys(op["tags"]))
            out[path][method] = op
    described = {name: text for name, text, _ in TAGS}
    order = [name for name, _, _ in TAGS if name in used] + sorted(t for t in used if t not in described)
    return out, [{"name": t, **({"description": described[t]} if t in described else {})} for t in order]


def document(server_url: str = "/") -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    paths, tags = _tagged(components(_all_paths(), schemas))
    return {
        "openapi": "3.1.0",
        "info": {"title": "hub REST API", "version": "1",
                 "description": "Authorize with an API token (`hub tokens create`, or the demo's admin token)."},
        "servers": [{"url": server_url, "description": "this hub"}],
        "tags": tags,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
        "paths": paths,
    }


async def serve(request: web.Request) -> web.Response:
    # "Try it out" calls the servers entry: server.public_url behind a proxy, else the address this was asked on.
    public = request.app[SETTINGS].server.public_url.rstrip("/")
    return web.json_response(document(public or f"{request.scheme}://{request.host}"))


# Served when the web chat channel is enabled.
PATHS["/api/v1/webchat/typing"] = {
    "post": {
        "summary": "Show the web chat visitor that you are typing (or stopped); consoles see a typing event",
        "requestBody": _body(TypingBody),
        "responses": {
            "200": _json(TypingResult, "Passed on to the visitor's open tabs"),
            "404": _json(Error, "No such conversation in your queues, or it has no web chat visitor"),
            **{k: v for k, v in _WRITE_ERRORS.items() if k != "404"},
        },
    }
}

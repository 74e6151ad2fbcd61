"""The OpenAPI 3.1 document for /api/v1. Request schemas come from the pydantic bodies the handlers validate with;
a test checks that every route is documented and that real responses match these schemas."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel

from hub.api.doc_parts import INT_OR_NULL as _INT_OR_NULL
from hub.api.doc_parts import STR_OR_NULL as _STR_OR_NULL
from hub.api.doc_parts import body as _body
from hub.api.doc_parts import json_response as _json
from hub.api.doc_parts import ref as _ref
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
    TokenCreateBody,
    TransferBody,
    ViewBody,
    ViewPatchBody,
)
from hub.config import QueueSettings
from hub.keys import SETTINGS

ATTACHMENT = {
    "type": "object",
    "required": ["id", "filename", "content_type", "size", "status", "url"],
    "properties": {
        "id": {"type": "integer"},
        "filename": {"type": "string"},
        "content_type": {"type": "string"},
        "size": {"type": "integer"},
        "status": {"enum": ["stored", "pending", "failed"]},
        "error": _STR_OR_NULL,
        "url": {"type": "string"},
    },
}
MESSAGE = {
    "type": "object",
    "required": [
        "id", "conversation_id", "customer_id", "channel", "direction", "kind", "text", "attachments", "status",
        "external_id", "created_at",
    ],
    "properties": {
        "id": {"type": "integer"},
        "conversation_id": {"type": "integer"},
        "customer_id": {"type": "integer"},
        "channel": {"type": "string"},
        "direction": {"enum": ["in", "out"]},
        "kind": {"enum": ["text", "call", "voicemail", "note", "event"]},
        "text": {"type": "string"},
        "html": _STR_OR_NULL,
        "status": {"type": "string"},
        "status_reason": _STR_OR_NULL,
        "external_id": _STR_OR_NULL,
        "identity": _STR_OR_NULL,
        "agent_id": _INT_OR_NULL,
        "meta": {"type": "object"},
        "created_at": {"type": "string"},
        "updated_at": {"type": "string"},
        "attachments": {"type": "array", "items": {"$ref": "#/components/schemas/Attachment"}},
    },
}
CONVERSATION = {
    "type": "object",
    "required": ["id", "customer_id", "status", "channel", "queue", "agent_id", "created_at", "updated_at"],
    "properties": {
        "id": {"type": "integer"},
        "customer_id": {"type": "integer"},
        "status": {"enum": ["open", "assigned", "snoozed", "resolved"]},
        "channel": {"type": "string"},
        "queue": _STR_OR_NULL,
        "agent_id": _INT_OR_NULL,
        "business_line": _STR_OR_NULL,
        "last_inbound_channel": _STR_OR_NULL,
        "created_at": {"type": "string"},
        "updated_at": {"type": "string"},
        "resolved_at": _STR_OR_NULL,
    },
}
CUSTOMER = {
    "type": "object",
    "required": ["id", "name", "identities", "created_at"],
    "properties": {
        "id": {"type": "integer"},
        "name": {"type": "string"},
        "display_name": {"type": "string", "description": "the name, else a phone or email, else a web-chat "
                         "visitor's generated name (\"Visitor 4821\")"},
        "attributes": {"type": "object", "additionalProperties": {"type": "string"},
                       "description": "custom attribute values by key (GET /customers/{id})"},
        "created_at": {"type": "string"},
        "merged_into": _INT_OR_NULL,
        "identities": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["kind", "value", "id"],
                "properties": {"kind": {"type": "string"}, "value": {"type": "string"}, "id": {"type": "string"}},
            },
        },
        "conversations": {"type": "array", "items": {"$ref": "#/components/schemas/Conversation"}},
        "labels": {"type": "array", "items": {"type": "string"}, "description": "on GET /customers/{id}"},
    },
}
ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["status", "message"],
            "properties": {"status": {"type": "integer"}, "message": {"type": "string"}, "details": {}},
        }
    },
}


def _page(item: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["items", "next"],
        "properties": {"items": {"type": "array", "items": _ref(item)}, "next": _STR_OR_NULL},
    }


_ERRORS = {
    "400": _json(_ref("Error"), "Bad request: the message says what to fix"),
    "401": _json(_ref("Error"), "No valid bearer token"),
    "404": _json(_ref("Error"), "Not found; also what is outside your reach, in the same words"),
}
# You see the conversation (its customer is one you serve) but it is another queue's work (hub.visibility).
_NOT_YOURS = {"403": _json(_ref("Error"), "Another queue's conversation: you may read it, not act on it")}
_WRITE_ERRORS = {
    **_ERRORS,
    "413": _json(_ref("Error"), "Body over server.max_body_bytes"),
    "415": _json(_ref("Error"), "Not JSON"),
    "422": _json(_ref("Error"), "Invalid body; details lists each field"),
}


def _id_param(what: str) -> dict[str, Any]:
    return {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}, "description": what}


def _query(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema or {"type": "string"},
            "description": description}


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
                "201": _json(_ref("IngestResult"), "Stored"),
                "200": _json(_ref("IngestResult"), "A repeat of an external_id already stored: nothing new stored"),
                "202": _json(
                    {"type": "object", "required": ["status", "journal_id", "reason"],
                     "properties": {"status": {"const": "flagged"}, "journal_id": {"type": "integer"},
                                    "reason": {"type": "string"}}},
                    "Kept in the journal but not processed; `hub events replay` retries it",
                ),
                **_WRITE_ERRORS,
            },
        }
    },
    "/api/v1/customers": {
        "get": {
            "summary": "Find customers by identity or by text (name, phone, email)",
            "parameters": [
                _query("identity", "kind:value, normalized like inbound identities"),
                _query("q", "text in a name or identity"),
                _PAGING[0],
            ],
            "responses": {
                "200": _json({"type": "object", "required": ["items"],
                              "properties": {"items": {"type": "array", "items": _ref("Customer")}}}),
                **_ERRORS,
            },
        }
    },
    "/api/v1/customers/{id}": {
        "get": {
            "summary": "A customer, their identities and recent conversations",
            "parameters": [_id_param("customer id")],
            "responses": {"200": _json(_ref("Customer")), **_ERRORS},
        }
    },
    "/api/v1/customers/{id}/timeline": {
        "get": {
            "summary": "Every message of the customer, all channels, in time order, a page at a time",
            "parameters": [
                _id_param("customer id"), *_PAGING,
                _query("order", "asc: oldest first (default); desc: newest first", {"enum": ["asc", "desc"]}),
            ],
            "responses": {"200": _json(_page("Message")), **_ERRORS},
        }
    },
    "/api/v1/customers/{id}/merge": {
        "post": {
            "summary": "Merge another customer into this one (identities, conversations, messages). Admin token.",
            "parameters": [_id_param("the surviving customer")],
            "requestBody": _body(MergeBody),
            "responses": {
                "200": _json({"type": "object", "required": ["customer", "event"],
                              "properties": {"customer": _ref("Customer"), "event": _ref("Message")}}),
                "409": _json(_ref("Error"), "Cannot merge (same customer, or already merged)"),
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
            "responses": {"200": _json(_page("Conversation")), **_ERRORS},
        }
    },
    "/api/v1/conversations/{id}": {
        "get": {
            "summary": "A conversation with its customer and messages",
            "parameters": [_id_param("conversation id")],
            "responses": {"200": _json(_ref("ConversationDetail")), **_ERRORS},
        }
    },
    "/api/v1/conversations/{id}/messages": {
        "post": {
            "summary": "Reply (through the outbox, with files when the channel carries media) on any channel the "
                       "customer has an identity for, or add a note (\"@Full Name\" or \"@\" and the part of "
                       "their email before the @ mentions an agent)",
            "parameters": [_id_param("conversation id")],
            "requestBody": _body(ReplyBody),
            "responses": {"201": _json({"allOf": [_ref("Message"), {"type": "object", "properties": {
                "mentioned": {"type": "array", "items": {"type": "integer"},
                              "description": "a note: the agents its @mentions notified"},
                "not_mentioned": {"type": "array", "items": {"type": "string"},
                                  "description": "a note: agents named who cannot see this customer"}}}]},
                "Queued for sending (or stored, for a note)"),
                          **_WRITE_ERRORS, **_NOT_YOURS},
        }
    },
    "/api/v1/conversations/{id}/resolve": {
        "post": {
            "summary": "Resolve the conversation; the customer's next message opens a new one",
            "parameters": [_id_param("conversation id")],
            "requestBody": _body(ResolveBody, required=False),
            "responses": {"200": _json(_ref("Conversation")),
                          "409": _json(_ref("Error"), "Already resolved"), **_WRITE_ERRORS, **_NOT_YOURS},
        }
    },
    "/api/v1/messages/{id}": {
        "get": {
            "summary": "One message with its delivery status",
            "parameters": [_id_param("message id")],
            "responses": {"200": _json(_ref("Message")), **_ERRORS},
        }
    },
    "/api/v1/attachments/{id}": {
        "get": {
            "summary": "An attachment's bytes (served as a download, sandboxed)",
            "parameters": [_id_param("attachment id")],
            "responses": {
                "200": {"description": "The file", "content": {"application/octet-stream": {}}},
                "409": _json(_ref("Error"), "Not stored (still being fetched, or the fetch failed)"),
                **_ERRORS,
            },
        }
    },
}

_OBJ = {"type": "object"}
_ROUTING_ERRORS = {**_WRITE_ERRORS, "409": _json(_ref("Error"), "Not possible now; the message says why")}

# Routing: presence, offers, transfer, live stats.
PATHS.update({
    "/api/v1/agents/me/presence": {
        "post": {
            "summary": "Set the signed-in agent's presence; available agents are offered work",
            "requestBody": _body(PresenceBody),
            "responses": {"200": _json({"type": "object", "required": ["agent_id", "presence"],
                                        "properties": {"agent_id": {"type": "integer"},
                                                       "presence": {"type": "string"}}}),
                          **_ROUTING_ERRORS},
        }
    },
    "/api/v1/offers": {
        "get": {
            "summary": "The signed-in agent's pending offers, soonest deadline first",
            "responses": {"200": _json({"type": "object", "required": ["items"], "properties": {"items": {
                "type": "array", "items": {"type": "object",
                                           "required": ["conversation_id", "queue", "channel", "deadline",
                                                        "customer", "preview"],
                                           "properties": {"conversation_id": {"type": "integer"},
                                                          "queue": {"type": "string"},
                                                          "channel": {"type": "string"},
                                                          "deadline": {"type": "number"},
                                                          "customer": _ref("Customer"),
                                                          "preview": {"type": "string"},
                                                          "earlier_conversations": {"type": "integer"}}}}}}),
                          **_ERRORS},
        }
    },
    "/api/v1/conversations/{id}/accept": {
        "post": {
            "summary": "Accept the conversation offered to you: it is assigned to you",
            "parameters": [_id_param("conversation id")],
            "responses": {"200": _json(_ref("Conversation")), **_ROUTING_ERRORS},
        }
    },
    "/api/v1/conversations/{id}/reject": {
        "post": {
            "summary": "Reject the conversation offered to you: it is offered to the next agent",
            "parameters": [_id_param("conversation id")],
            "responses": {"200": _json(_ref("Conversation")), **_ROUTING_ERRORS},
        }
    },
    "/api/v1/conversations/{id}/transfer": {
        "post": {
            "summary": "Transfer to a queue (keeping its age) or to an agent, with an optional note",
            "parameters": [_id_param("conversation id")],
            "requestBody": _body(TransferBody),
            "responses": {"200": _json(_ref("Conversation")), **_ROUTING_ERRORS, **_NOT_YOURS},
        }
    },
    "/api/v1/queues": {
        "get": {
            "summary": "Queues with live stats: waiting, longest wait, agents, offers, SLA attainment",
            "responses": {"200": _json({"type": "object", "required": ["items"], "properties": {"items": {
                "type": "array", "items": {"type": "object",
                                           "required": ["name", "title", "waiting", "longest_wait",
                                                        "available_agents", "busy_agents", "sla_attainment"],
                                           "properties": {"name": {"type": "string"},
                                                          "title": {"type": "string"},
                                                          "waiting": {"type": "integer"},
                                                          "longest_wait": {"type": "number"},
                                                          "available_agents": {"type": "integer"},
                                                          "busy_agents": {"type": "integer"},
                                                          "sla_attainment": {"type": ["number", "null"]},
                                                          # first response: target (0: none), replies, outcomes
                                                          "first_response": {"type": "number"},
                                                          "responded": {"type": "integer"},
                                                          "responded_in_sla": {"type": "integer"},
                                                          "first_response_breached": {"type": "integer"},
                                                          "first_response_attainment": {
                                                              "type": ["number", "null"]}}}}}}),
                          **_ERRORS},
        }
    },
    "/api/v1/agents": {
        "get": {
            "summary": "Agents with presence and current load; email, phone and voice client only for admins and "
                       "supervisors",
            "responses": {"200": _json({"type": "object", "required": ["items"], "properties": {"items": {
                "type": "array", "items": {"type": "object",
                                           "required": ["id", "name", "role", "queues", "presence", "load"],
                                           "properties": {"id": {"type": "integer"}, "name": {"type": "string"},
                                                          "email": {"type": "string"}, "role": {"type": "string"},
                                                          "queues": {"type": "array"},
                                                          "presence": {"enum": ["available", "away", "offline"]},
                                                          "load": _OBJ}}}}}),
                          **_ERRORS},
        }
    },
})


# The routing config, changed live (admin or supervisor): validated by the engine (400 with its reason, nothing
# changed), stored so it outlives a restart (the config file is the seed), applied in every hub process.
_ROUTING_CONFIG = {
    "type": "object",
    "required": ["default_queue", "missed_offers", "transfer_wait", "queues", "queue_sources", "rules", "rules_source",
                 "agents"],
    "properties": {
        "default_queue": {"type": "string"},
        "missed_offers": {"type": "integer"},
        "transfer_wait": {"type": "number"},
        "queues": {"type": "object", "additionalProperties": _ref("QueueSettings")},
        "queue_sources": {"type": "object", "additionalProperties": {"enum": ["config", "api"]},
                          "description": "per queue: from the config file, or as changed through the API"},
        "rules": {"type": "array", "items": {"type": "object"}},
        "rules_source": {"enum": ["config", "api"]},
        "agents": {"type": "array", "items": {
            "type": "object", "required": ["agent_id", "capacity", "skills", "wrapup", "exclusive", "source"],
            "properties": {"agent_id": {"type": "integer"}, "capacity": _OBJ, "skills": _OBJ,
                           "wrapup": {"type": "number"}, "exclusive": {"type": "array", "items": {"type": "string"}},
                           "source": {"enum": ["config", "api", "default"]},
                           "effective_capacity": {**_OBJ, "description": "what routing uses: capacity after the "
                                                  "hub's checks (no voice for an agent the hub cannot ring)"}}}},
    },
}
_ROUTING_CONFIG_ERRORS = {**_WRITE_ERRORS, "403": _json(_ref("Error"), "Not an admin or supervisor")}
_QUEUE_NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"},
               "description": "queue: a new queue's name is a slug, [a-z0-9][a-z0-9_-]{0,63} (422 otherwise); "
                              "its title is the text people read"}
PATHS.update({
    "/api/v1/routing": {
        "get": {
            "summary": "The effective routing config (admin or supervisor): queues, rules, agents' routing profiles, "
                       "each saying whether it comes from the config file or a change made through the API",
            "responses": {"200": _json(_ROUTING_CONFIG), **_ERRORS,
                          "403": _json(_ref("Error"), "Not an admin or supervisor")},
        }
    },
    "/api/v1/routing/queues/{name}": {
        "put": {
            "summary": "Create or replace a queue (all its settings); applied live in every hub process",
            "parameters": [_QUEUE_NAME],
            "requestBody": _body(QueueSettings),
            "responses": {"200": _json(_ROUTING_CONFIG), **_ROUTING_CONFIG_ERRORS},
        },
        "delete": {
            "summary": "Delete a queue: 400 while a rule, the default queue or an overflow names it; 409 while "
                       "conversations wait in it",
            "parameters": [_QUEUE_NAME],
            "responses": {"200": _json(_ROUTING_CONFIG), **_ROUTING_CONFIG_ERRORS,
                          "409": _json(_ref("Error"), "Conversations wait in the queue")},
        },
    },
    "/api/v1/routing/rules": {
        "put": {
            "summary": "Replace the whole ordered list of routing rules (and optionally the default queue)",
            "requestBody": _body(RoutingRulesBody),
            "responses": {"200": _json(_ROUTING_CONFIG), **_ROUTING_CONFIG_ERRORS},
        }
    },
    "/api/v1/routing/agents/{id}": {
        "put": {
            "summary": "Set an agent's routing profile: skills with proficiency, capacity per class, wrap-up, "
                       "exclusive classes",
            "parameters": [_id_param("agent id")],
            "requestBody": _body(RoutingAgentBody),
            "responses": {"200": _json(_ROUTING_CONFIG), **_ROUTING_CONFIG_ERRORS},
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
                "200": _json({
                    "type": "object", "required": ["items", "server_time"],
                    "properties": {
                        "server_time": {"type": "number"},
                        "view": {"type": ["object", "null"]},
                        "items": {"type": "array", "items": {
                            "type": "object", "required": ["conversation", "customer", "last_message"],
                            "properties": {
                                "conversation": {"type": "object"},
                                "customer": {"type": "object", "required": ["id", "name", "identity"],
                                             "properties": {"id": {"type": "integer"}, "name": {"type": "string"},
                                                            "identity": _STR_OR_NULL}},
                                "last_message": {"type": ["object", "null"]},
                                "labels": {"type": "array", "items": {"type": "string"}},
                                "snooze": {"type": ["object", "null"], "description": "until (null: the customer's "
                                           "next message) and owner, while snoozed"},
                                "first_reply_due": {"type": ["number", "null"], "description": "epoch seconds by "
                                                    "which the queue's first-response target wants an agent reply; "
                                                    "null once replied or without a target"},
                            },
                        }},
                    },
                }),
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
                "400": _json(_ref("Error"), "Not a WebSocket upgrade"),
                "401": _json(_ref("Error"), "No valid bearer token or session"),
                "403": _json(_ref("Error"), "Session cookie from another origin"),
            },
        }
    },
})


# The console's admin and look-up additions: agent accounts, API tokens, search, configured channels.
_FORBIDDEN = {"403": _json(_ref("Error"), "Your role may not do this (admin only)")}
AGENT = {
    "type": "object",
    "required": ["id", "name", "email", "role", "queues", "disabled", "created_at"],
    "properties": {
        "id": {"type": "integer"}, "name": {"type": "string"}, "email": {"type": "string"},
        "role": {"enum": ["admin", "supervisor", "agent"]},
        "queues": {"type": "array", "items": {"type": "string"}},
        "disabled": {"type": "boolean"}, "created_at": {"type": "string"},
        "phone": _STR_OR_NULL, "voice_client": _STR_OR_NULL,
    },
}
API_TOKEN = {
    "type": "object",
    "required": ["id", "role", "agent_id", "agent_name", "label", "created_at", "revoked_at"],
    "properties": {
        "id": {"type": "integer"}, "role": {"enum": ["admin", "agent"]}, "agent_id": _INT_OR_NULL,
        "agent_name": _STR_OR_NULL, "label": {"type": "string"}, "created_at": {"type": "string"},
        "revoked_at": _STR_OR_NULL,
        "token": {"type": "string", "description": "the secret: in the answer to POST only, never again"},
    },
}
_CONFLICT = {"409": _json(_ref("Error"), "Conflicts with another agent, or would lock you or every admin out")}
PATHS["/api/v1/agents"]["post"] = {
    "summary": "Create an agent account (admin)",
    "requestBody": _body(AgentCreateBody),
    "responses": {"201": _json(_ref("Agent"), "Created"), **_FORBIDDEN, **_CONFLICT, **_WRITE_ERRORS},
}
PATHS["/api/v1/agents"]["get"]["summary"] += "; admins and supervisors also get phone, voice_client, created_at"
PATHS.update({
    "/api/v1/agents/{id}": {
        "get": {
            "summary": "One agent's account (admin or supervisor)",
            "parameters": [_id_param("agent id")],
            "responses": {"200": _json(_ref("Agent")), **_FORBIDDEN, **_ERRORS},
        },
        "patch": {
            "summary": "Change an agent (admin): name, email, role, queues, phone, voice_client, disabled, or a new "
                       "password. Disabling or a password reset signs the agent out everywhere; queue and disabled "
                       "changes reach routing at once.",
            "parameters": [_id_param("agent id")],
            "requestBody": _body(AgentPatchBody),
            "responses": {"200": _json(_ref("Agent")), **_FORBIDDEN, **_CONFLICT, **_WRITE_ERRORS},
        },
    },
    "/api/v1/tokens": {
        "get": {
            "summary": "API tokens, live ones first (admin); secrets are never listed",
            "responses": {"200": _json({"type": "object", "required": ["items"],
                                        "properties": {"items": {"type": "array", "items": _ref("ApiToken")}}}),
                          **_FORBIDDEN, **_ERRORS},
        },
        "post": {
            "summary": "Create an API token (admin). The answer holds the secret (`token`): the only time it is shown",
            "requestBody": _body(TokenCreateBody),
            "responses": {"201": _json(_ref("ApiToken"), "Created; keep `token` now"), **_FORBIDDEN,
                          **_WRITE_ERRORS},
        },
    },
    "/api/v1/tokens/{id}": {
        "delete": {
            "summary": "Revoke an API token (admin): it stops working at once, on every hub process",
            "parameters": [_id_param("token id")],
            "responses": {"200": _json(_ref("ApiToken"), "Revoked (or already was)"), **_FORBIDDEN, **_ERRORS},
        },
    },
    "/api/v1/search": {
        "get": {
            "summary": "Search customers (name, phone, email) and messages (every word of q, as word prefixes), "
                       "newest messages first, each with a snippet; an agent finds only their queues' and own work",
            "parameters": [_query("q", "the words to find"), _query(
                "limit", "most results of each kind, 1-50 (default 20)",
                {"type": "integer", "minimum": 1, "maximum": 50})],
            "responses": {"200": _json({
                "type": "object", "required": ["customers", "messages", "terms"],
                "properties": {
                    "customers": {"type": "array", "items": _ref("Customer")},
                    "terms": {"type": "array", "items": {"type": "string"}},
                    "messages": {"type": "array", "items": {
                        "type": "object", "required": ["message", "snippet", "customer", "conversation"],
                        "properties": {
                            "message": _ref("Message"), "snippet": {"type": "string"},
                            "customer": {"type": "object", "required": ["id", "name"],
                                         "properties": {"id": {"type": "integer"}, "name": {"type": "string"}}},
                            "conversation": {"type": "object", "required": ["id", "status", "queue"],
                                             "properties": {"id": {"type": "integer"}, "status": {"type": "string"},
                                                            "queue": _STR_OR_NULL}},
                        },
                    }},
                },
            }), **_ERRORS},
        }
    },
    "/api/v1/channels": {
        "get": {
            "summary": "The configured channels: which identities each reaches and its capabilities (media, voice, "
                       "html, text length, rate); the console shows a Call button when one has voice",
            "responses": {"200": _json({
                "type": "object", "required": ["items", "max_attachment_bytes"],
                "properties": {
                    "max_attachment_bytes": {"type": "integer"},
                    "items": {"type": "array", "items": {
                        "type": "object", "required": ["name", "identity_kinds", "voice", "media", "capabilities"],
                        "properties": {"name": {"type": "string"},
                                       "identity_kinds": {"type": "array", "items": {"type": "string"}},
                                       "voice": {"type": "boolean"}, "media": {"type": "boolean"},
                                       "capabilities": {"type": "object"}},
                    }},
                },
            }), **_ERRORS},
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
            "202": _json(_ref("Message"), "The call is being placed (status failed with a reason if Twilio refused)"),
            "400": _json(_ref("Error"), "Not an agent's token (an admin token rings no one), or a bad body"),
            "409": _json(_ref("Error"), "You have no phone or voice_client, voice is not configured, or the customer "
                                        "has no phone number"),
            **{k: v for k, v in _WRITE_ERRORS.items() if k != "400"},
        },
    }
}

def _add_automation(schemas: dict[str, Any]) -> None:
    """Automation rules, business hours and outbound webhooks keep their part beside their code."""
    from hub.automation import openapi as automation

    schemas.update(automation.SCHEMAS)
    for model in automation.MODELS:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, sub in schema.pop("$defs", {}).items():
            schemas[name] = sub
        schemas[model.__name__] = schema
    PATHS.update(automation.PATHS)


def _add_segments(schemas: dict[str, Any]) -> None:
    """Business events and segments keep their part beside their code."""
    from hub.segments import openapi as segments

    schemas.update(segments.SCHEMAS)
    for model in segments.MODELS:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, sub in schema.pop("$defs", {}).items():
            schemas[name] = sub
        schemas[model.__name__] = schema
    for path, item in segments.PATHS.items():  # POST /api/v1/events shares its path with the WebSocket's GET
        PATHS.setdefault(path, {}).update(item)


def _add_campaigns(schemas: dict[str, Any]) -> None:
    """Campaigns keep their part beside their code."""
    from hub.campaigns import openapi as campaigns

    schemas.update(campaigns.SCHEMAS)
    for model in campaigns.MODELS:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, sub in schema.pop("$defs", {}).items():
            schemas[name] = sub
        schemas[model.__name__] = schema
    PATHS.update(campaigns.PATHS)

# The supervisors' wall (hub/api/wall_routes.py).
_WINDOW_FIGURES = {"type": "object", "properties": {
    k: {"type": "integer"} for k in ("offered", "answered", "answered_in_sla", "rejected", "timed_out", "abandoned",
                                     "responded", "responded_in_target", "first_response_breached")} | {
    "sla_attainment": {"type": ["number", "null"]}, "first_response_attainment": {"type": ["number", "null"]}}}
PATHS["/api/v1/wall"] = {
    "get": {
        "summary": "The wall (admins and supervisors): each queue's live figures (now) and its figures since `since` "
                   "counted from the store (they survive restarts), and what each agent holds as the store says",
        "parameters": [_query("since", "start of the window: ISO 8601 with an offset, or epoch seconds (default: "
                                       "today since 00:00 UTC)")],
        "responses": {"200": _json({"type": "object", "properties": {
            "since": {"type": "string"},
            "queues": {"type": "array", "items": {"type": "object", "properties": {
                "name": {"type": "string"}, "title": {"type": "string"}, "sla_wait": {"type": "number"},
                "first_response": {"type": "number"},
                "now": {"type": "object", "properties": {
                    "waiting": {"type": "integer"}, "longest_wait": {"type": "number"},
                    "available_agents": {"type": "integer"}, "busy_agents": {"type": "integer"}}},
                "window": _WINDOW_FIGURES}}},
            "agents": {"type": "array", "items": {"type": "object", "properties": {
                "id": {"type": "integer"},
                "holding": {"type": "object", "additionalProperties": {"type": "integer"}}}}},
            "csat": {"type": "object", "description": "satisfaction answers since `since`; `low` lists the newest "
                                                      "at or below csat.low_score (up to 10)", "properties": {
                "responses": {"type": "integer"}, "average": {"type": ["number", "null"]},
                "score": {"type": ["number", "null"], "description": "share of answers of 4 or 5"},
                "low_score": {"type": "integer"},
                "low": {"type": "array", "items": {"type": "object", "properties": {
                    "conversation_id": {"type": "integer"}, "score": {"type": "integer"},
                    "comment": {"type": "string"}, "answered_at": {"type": "string"}, "queue": {"type": "string"},
                    "channel": {"type": ["string", "null"]}, "agent_id": {"type": ["integer", "null"]},
                    "agent": {"type": "string"}, "customer": {"type": "string"}}}}}}}}),
            "403": _json(_ref("Error"), "Not an admin or supervisor"), **_ERRORS},
    }
}

# Canned responses (hub/api/canned_routes.py).
_CANNED = {"type": "object", "properties": {
    "id": {"type": "integer"}, "scope": {"enum": ["personal", "team"]}, "shortcut": {"type": "string"},
    "title": {"type": "string"}, "body": {"type": "string"}, "created_at": {"type": "string"},
    "updated_at": {"type": "string"}}}
PATHS.update({
    "/api/v1/canned-responses": {
        "get": {
            "summary": "Your personal canned responses and the team's (personal first); q matches shortcut, title or "
                       "text",
            "parameters": [_query("q", "search text")],
            "responses": {"200": _json({"type": "object", "properties": {
                "items": {"type": "array", "items": _CANNED}}}), **_ERRORS},
        },
        "post": {
            "summary": "Add a canned response: personal (yours) or team (admins and supervisors)",
            "requestBody": _body(CannedBody),
            "responses": {"201": _json(_CANNED), "403": _json(_ref("Error"), "A team response by an agent"),
                          "409": _json(_ref("Error"), "The shortcut is taken"), **_WRITE_ERRORS},
        },
    },
    "/api/v1/canned-responses/{id}": {
        "patch": {
            "summary": "Change a canned response (yours, or a team one as admin or supervisor)",
            "parameters": [_id_param("canned response id")],
            "requestBody": _body(CannedPatchBody),
            "responses": {"200": _json(_CANNED), "403": _json(_ref("Error"), "A team response by an agent"),
                          "409": _json(_ref("Error"), "The shortcut is taken"), **_WRITE_ERRORS},
        },
        "delete": {
            "summary": "Delete a canned response (yours, or a team one as admin or supervisor)",
            "parameters": [_id_param("canned response id")],
            "responses": {"204": {"description": "Deleted"}, "403": _json(_ref("Error"), "A team response by an agent"),
                          **_WRITE_ERRORS},
        },
    },
    "/api/v1/canned-responses/{id}/render": {
        "post": {
            "summary": "The response's text for one conversation, its variables filled in; missing names the "
                       "variables that had no value (left empty)",
            "parameters": [_id_param("canned response id")],
            "requestBody": _body(CannedRenderBody),
            "responses": {"200": _json({"type": "object", "properties": {
                "text": {"type": "string"}, "missing": {"type": "array", "items": {"type": "string"}}}}),
                **_WRITE_ERRORS},
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
            "responses": {"200": _json(_ref("Conversation")), **_ROUTING_ERRORS},
        }
    },
    "/api/v1/conversations/{id}/reopen": {
        "post": {
            "summary": "Reopen a resolved conversation (also how the console undoes Resolve): it waits in its queue "
                       "again and, for an agent, is claimed for them; claim_refused says why it could not be",
            "parameters": [_id_param("conversation id")],
            "responses": {"200": _json({"allOf": [_ref("Conversation"), {"type": "object", "properties": {
                "claim_refused": _STR_OR_NULL}}]}),
                **_ROUTING_ERRORS},
        }
    },
})


# The inbox's daily tools: labels, views, snooze, bulk actions (hub/inbox; docs/console.md).
_LABEL = {"type": "object", "required": ["name", "title", "color"], "properties": {
    "name": {"type": "string"}, "title": {"type": "string"}, "color": {"type": "string"}}}
_LABEL_NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"},
               "description": "the label's slug"}
_LABELS_NOW = _json({"type": "object", "required": ["labels"], "properties": {
    "labels": {"type": "array", "items": {"type": "string"}}}}, "The labels it has now")
_ADMIN_ONLY = {"403": _json(_ref("Error"), "Not an admin")}
_VIEW = {"type": "object", "required": ["id", "name", "kind", "filters"], "properties": {
    "id": {"type": "string", "description": "mine, unassigned, queue:<name>, snoozed, resolved, mentions, saved:<id>"},
    "name": {"type": "string"}, "kind": {"enum": ["builtin", "personal", "shared", "filter"]},
    "filters": _ref("ViewFilters"), "count": {"type": "integer"}}}
_SHARED_ONLY = {"403": _json(_ref("Error"), "A shared view by an agent (admins and supervisors manage those)")}
PATHS.update({
    "/api/v1/labels": {
        "get": {"summary": "The labels admins defined (for conversations and customers)",
                "responses": {"200": _json({"type": "object", "properties": {
                    "items": {"type": "array", "items": _LABEL}}}), **_ERRORS}},
        "post": {"summary": "Define a label (admin)", "requestBody": _body(LabelBody),
                 "responses": {"201": _json(_LABEL), **_ADMIN_ONLY,
                               "409": _json(_ref("Error"), "The name is taken"), **_WRITE_ERRORS}},
    },
    "/api/v1/labels/{name}": {
        "patch": {"summary": "Change a label's title or color (admin)", "parameters": [_LABEL_NAME],
                  "requestBody": _body(LabelPatchBody),
                  "responses": {"200": _json(_LABEL), **_ADMIN_ONLY, **_WRITE_ERRORS}},
        "delete": {"summary": "Delete a label, and take it off every conversation and customer (admin); 409 while "
                              "an automation rule names it",
                   "parameters": [_LABEL_NAME],
                   "responses": {"204": {"description": "Deleted"}, **_ADMIN_ONLY,
                                 "409": _json(_ref("Error"), "A rule uses it"), **_WRITE_ERRORS}},
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
                "responses": {"200": _json({"type": "object", "properties": {
                    "items": {"type": "array", "items": _VIEW}}}), **_ERRORS}},
        "post": {"summary": "Save a view: filters by channel, queue, label, status, agent, waiting longer than; "
                            "yours, or shared (admins and supervisors)",
                 "requestBody": _body(ViewBody),
                 "responses": {"201": _json(_VIEW), **_SHARED_ONLY, **_WRITE_ERRORS}},
    },
    "/api/v1/views/{id}": {
        "patch": {"summary": "Rename a saved view or change its filters", "parameters": [_id_param("saved view id")],
                  "requestBody": _body(ViewPatchBody),
                  "responses": {"200": _json(_VIEW), **_SHARED_ONLY, **_WRITE_ERRORS}},
        "delete": {"summary": "Delete a saved view", "parameters": [_id_param("saved view id")],
                   "responses": {"204": {"description": "Deleted"}, **_SHARED_ONLY, **_WRITE_ERRORS}},
    },
    "/api/v1/conversations/{id}/snooze": {
        "post": {"summary": "Snooze: out of the active inbox, the owner's capacity free, until `until` or the "
                            "customer's next message (which also ends a timed snooze); it then waits in its queue "
                            "again, offered to its owner first",
                 "parameters": [_id_param("conversation id")], "requestBody": _body(SnoozeBody, required=False),
                 "responses": {"200": _json({"allOf": [_ref("Conversation"), {"type": "object", "properties": {
                     "snooze": {"type": "object"}}}]}),
                     **_NOT_YOURS, "409": _json(_ref("Error"), "Resolved"), **_WRITE_ERRORS}},
        "delete": {"summary": "Wake a snoozed conversation now (offered to its owner first)",
                   "parameters": [_id_param("conversation id")],
                   "responses": {"200": _json(_ref("Conversation")), **_NOT_YOURS,
                                 "409": _json(_ref("Error"), "Not snoozed"), **_WRITE_ERRORS}},
    },
    "/api/v1/conversations/bulk": {
        "post": {"summary": "One action on several conversations (assign, label, unlabel, resolve, snooze), each "
                            "through the single action's path (assign and resolve through routing, so capacity "
                            "holds); results answers per conversation, with the single action's status and reason",
                 "requestBody": _body(BulkBody),
                 "responses": {"200": _json({"type": "object", "required": ["done", "failed", "results"],
                                             "properties": {
                     "done": {"type": "integer"}, "failed": {"type": "integer"},
                     "results": {"type": "array", "items": {"type": "object", "required": ["id", "ok", "status"],
                                                            "properties": {
                         "id": {"type": "integer"}, "ok": {"type": "boolean"}, "status": {"type": "integer"},
                         "error": {"type": "string"}}}}}}), **_WRITE_ERRORS}},
    },
})


# Customer profiles and custom attributes, @mentions, macros (hub/api/profile_routes.py, mention_routes.py,
# macro_routes.py).
PROFILE_MODELS = (CustomerPatchBody, AttributeDefinitionBody, AttributeDefinitionPatchBody, MentionsReadBody, MacroBody,
                  MacroPatchBody, MacroApplyBody)

_ADMIN = {"403": _json(_ref("Error"), "Not an admin")}
_CONFLICT = {"409": _json(_ref("Error"), "Conflicts with what exists; the message says what")}
_ATTRIBUTE = {"type": "object", "required": ["key", "label", "type", "options", "position"], "properties": {
    "key": {"type": "string"}, "label": {"type": "string"}, "type": {"enum": ["text", "number", "date", "list"]},
    "options": {"type": "array", "items": {"type": "string"}}, "position": {"type": "integer"}}}
_KEY = {"name": "key", "in": "path", "required": True, "description": "attribute key",
        "schema": {"type": "string", "pattern": "^[a-z][a-z0-9_]{0,39}$"}}
_MENTION = {"type": "object", "required": ["id", "message_id", "conversation_id", "customer_id", "agent_id", "text",
                                          "created_at", "read_at"], "properties": {
    "id": {"type": "integer"}, "message_id": {"type": "integer"}, "conversation_id": {"type": "integer"},
    "customer_id": {"type": "integer"}, "customer_name": {"type": "string"}, "agent_id": {"type": "integer"},
    "by_agent_id": {"type": ["integer", "null"]}, "by_agent_name": {"type": "string"}, "text": {"type": "string"},
    "created_at": {"type": "string"}, "read_at": _STR_OR_NULL}}
_MACRO = {"type": "object", "required": ["id", "name", "actions"], "properties": {
    "id": {"type": "integer"}, "name": {"type": "string"},
    "actions": {"type": "array", "items": _ref("MacroAction")},
    "created_at": {"type": "string"}, "updated_at": {"type": "string"}}}
_CUSTOMER_PROFILE = {"allOf": [_ref("Customer"), {"type": "object", "required": ["attributes"], "properties": {
    "attributes": {"type": "object", "additionalProperties": {"type": "string"}}}}]}


def _profile_paths() -> dict[str, Any]:
    return {
        "/api/v1/customers/{id}": {
            "patch": {
                "summary": "Edit a customer you serve: the name, and custom attribute values (each checked against "
                           "its type: 422 with the reason, nothing changed, when one does not fit)",
                "parameters": [_id_param("customer id")],
                "requestBody": _body(CustomerPatchBody),
                "responses": {"200": _json(_CUSTOMER_PROFILE), **_CONFLICT, **_WRITE_ERRORS},
            },
        },
        "/api/v1/customer-attributes": {
            "get": {
                "summary": "The custom attributes admins defined for customers, in panel order",
                "responses": {"200": _json({"type": "object", "required": ["items"], "properties": {
                    "items": {"type": "array", "items": _ATTRIBUTE}}}), **_ERRORS},
            },
            "post": {
                "summary": "Define a custom attribute (admin): text, number, date or list (with its options)",
                "requestBody": _body(AttributeDefinitionBody),
                "responses": {"201": _json(_ATTRIBUTE), **_ADMIN, **_CONFLICT, **_WRITE_ERRORS},
            },
        },
        "/api/v1/customer-attributes/{key}": {
            "patch": {
                "summary": "Change an attribute's label, order or a list's options (admin); its type stays",
                "parameters": [_KEY],
                "requestBody": _body(AttributeDefinitionPatchBody),
                "responses": {"200": _json(_ATTRIBUTE), **_ADMIN, **_WRITE_ERRORS},
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
                "responses": {"200": _json({"type": "object", "required": ["items", "unread"], "properties": {
                    "items": {"type": "array", "items": _MENTION}, "unread": {"type": "integer"}}}), **_ERRORS},
            },
        },
        "/api/v1/mentions/read": {
            "post": {
                "summary": "Mark your mentions read: all of them, or those in one conversation",
                "requestBody": _body(MentionsReadBody, required=False),
                "responses": {"200": _json({"type": "object", "required": ["unread"], "properties": {
                    "unread": {"type": "integer"}}}), **_WRITE_ERRORS},
            },
        },
        "/api/v1/mentions/{id}/read": {
            "post": {
                "summary": "Mark one of your mentions read",
                "parameters": [_id_param("mention id")],
                "responses": {"200": _json({"type": "object", "required": ["unread", "mention"], "properties": {
                    "unread": {"type": "integer"}, "mention": _MENTION}}), **_WRITE_ERRORS},
            },
        },
        "/api/v1/macros": {
            "get": {
                "summary": "The macros, by name (everyone may apply them)",
                "responses": {"200": _json({"type": "object", "required": ["items"], "properties": {
                    "items": {"type": "array", "items": _MACRO}}}), **_ERRORS},
            },
            "post": {
                "summary": "Add a macro (admin): actions reply (a team canned response), label, assign (an agent, "
                           "or whoever applies it), resolve, run in order",
                "requestBody": _body(MacroBody),
                "responses": {"201": _json(_MACRO), **_ADMIN, **_CONFLICT, **_WRITE_ERRORS},
            },
        },
        "/api/v1/macros/{id}": {
            "patch": {
                "summary": "Rename a macro or replace its actions (admin)",
                "parameters": [_id_param("macro id")],
                "requestBody": _body(MacroPatchBody),
                "responses": {"200": _json(_MACRO), **_ADMIN, **_CONFLICT, **_WRITE_ERRORS},
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
                "responses": {"200": _json({"type": "object", "required": ["macro_id", "applied", "conversation"],
                                            "properties": {"macro_id": {"type": "integer"},
                                                           "applied": {"type": "array", "items": {"type": "string"}},
                                                           "conversation": _ref("Conversation")}}),
                              "403": _json(_ref("Error"), "Another queue's conversation"), **_CONFLICT,
                              **_WRITE_ERRORS},
            },
        },
    }


for _path, _item in _profile_paths().items():  # PATCH /customers/{id} joins its GET
    PATHS.setdefault(_path, {}).update(_item)

# What the hub could not place (hub.attention): supervisors and admins.
def _attention_paths() -> dict[str, Any]:
    from hub.api.attention_routes import ActionBody, AttachBody, DismissBody

    not_allowed = {"403": _json(_ref("Error"), "Not an admin or supervisor")}
    event = {
        "type": "object",
        "required": ["id", "channel", "status", "reason", "error", "received_at", "sender", "summary", "actions"],
        "properties": {
            "id": {"type": "integer"}, "channel": {"type": "string"},
            "status": {"enum": ["failed", "rejected", "done", "dismissed", "pending"]},
            "reason": {"type": "string", "description": "short reason code (docs/attention.md)"},
            "error": {"type": "string", "description": "the full reason"},
            "received_at": {"type": "string"}, "dedupe_key": {"type": "string"}, "attempts": {"type": "integer"},
            "sender": {"type": "string"}, "summary": {"type": "string", "description": "subject or first line"},
            "message_id": {"type": ["integer", "null"]},
            "actions": {"type": "array", "items": {"type": "object"}},
            "raw": {"type": "object", "description": "the event as sent (text), on GET /attention/{id}"},
        },
    }
    result = _json({"type": "object", "required": ["outcome", "status", "message_id"], "properties": {
        "outcome": {"type": "string"}, "status": {"type": "string"}, "message_id": {"type": ["integer", "null"]},
    }})
    conflict = {"409": _json(_ref("Error"), "Not failed or rejected any more, or the action cannot be done (why)")}

    def body(model: type[BaseModel], required: bool) -> dict[str, Any]:
        return {"required": required, "content": {"application/json": {"schema": model.model_json_schema()}}}

    def action(summary: str, model: type[BaseModel], required: bool) -> dict[str, Any]:
        return {"post": {"summary": summary, "parameters": [_id_param("event id")],
                         "requestBody": body(model, required),
                         "responses": {"200": result, **conflict, **not_allowed, **_WRITE_ERRORS}}}

    return {
        "/api/v1/attention": {"get": {
            "summary": "Events the hub could not place (flagged or rejected, every channel), newest first",
            "parameters": [_query("channel", "only this channel"), _query("reason", "only this reason code"),
                           _query("before", "the `next` of the previous page"),
                           _query("limit", "page size, 1-200 (default 50)",
                                  {"type": "integer", "minimum": 1, "maximum": 200})],
            "responses": {"200": _json({"type": "object", "required": ["items", "count", "next"], "properties": {
                "items": {"type": "array", "items": event},
                "count": {"type": "integer", "description": "events listed with these filters, over all pages"},
                "next": _STR_OR_NULL,
            }}), **not_allowed, **_ERRORS},
        }},
        "/api/v1/attention/{id}": {"get": {
            "summary": "One event with its raw payload (as text) and every action taken on it",
            "parameters": [_id_param("event id")],
            "responses": {"200": _json(event), **not_allowed, **_ERRORS},
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


def _add_profile(schemas: dict[str, Any]) -> None:
    """The bodies of customer profiles, mentions and macros."""
    for model in PROFILE_MODELS:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema


def document(server_url: str = "/") -> dict[str, Any]:
    schemas: dict[str, Any] = {
        "Attachment": ATTACHMENT,
        "Message": MESSAGE,
        "Conversation": CONVERSATION,
        "Customer": CUSTOMER,
        "Error": ERROR,
        "ConversationDetail": {
            "allOf": [
                _ref("Conversation"),
                {"type": "object", "required": ["customer", "messages"],
                 "properties": {"customer": _ref("Customer"), "messages": {"type": "array", "items": _ref("Message")},
                                "labels": {"type": "array", "items": {"type": "string"}},
                                "priority": {"type": "integer"},
                                "csat": {"type": ["object", "null"], "description": "its satisfaction survey, if any "
                                         "(docs/reports.md, Customer satisfaction)",
                                         "properties": {"status": {"enum": ["scheduled", "sent", "answered",
                                                                            "skipped"]},
                                                        "channel": _STR_OR_NULL, "score": _INT_OR_NULL,
                                                        "comment": _STR_OR_NULL, "sent_at": _STR_OR_NULL,
                                                        "answered_at": _STR_OR_NULL, "reason": _STR_OR_NULL}}}},
            ]
        },
        "IngestResult": {
            "type": "object",
            "required": ["message", "conversation", "customer", "duplicate"],
            "properties": {"message": _ref("Message"), "conversation": _ref("Conversation"),
                           "customer": _ref("Customer"), "duplicate": {"type": "boolean"}},
        },
    }
    schemas["Agent"], schemas["ApiToken"] = AGENT, API_TOKEN
    for model in (InboundBody, ReplyBody, MergeBody, ResolveBody, PresenceBody, TransferBody,
                  AgentCreateBody, AgentPatchBody, TokenCreateBody, QueueSettings, RoutingRulesBody, RoutingAgentBody,
                  LabelBody, LabelPatchBody, ViewBody, ViewPatchBody, SnoozeBody, BulkBody):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, sub in schema.pop("$defs", {}).items():
            schemas[name] = sub
        schemas[model.__name__] = schema
    _add_automation(schemas)
    _add_segments(schemas)
    _add_campaigns(schemas)
    _add_profile(schemas)
    paths, tags = _tagged(PATHS)
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
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["conversation_id"],
            "properties": {"conversation_id": {"type": "integer"}, "typing": {"type": "boolean", "default": True}},
        }}}},
        "responses": {
            "200": _json({"type": "object", "required": ["delivered"],
                          "properties": {"delivered": {"type": "integer", "description": "tabs reached here"}}},
                         "Passed on to the visitor's open tabs"),
            "404": _json(_ref("Error"), "No such conversation in your queues, or it has no web chat visitor"),
            **{k: v for k, v in _WRITE_ERRORS.items() if k != "404"},
        },
    }
}


# Reports (hub.api.report_routes; docs/reports.md defines every figure).
_STAFFING_HOUR = {
    "type": "object", "required": ["start", "contacts", "agents", "agents_erlang_a", "available"],
    "properties": {"start": {"type": "string"}, "contacts": {"type": "number"},
                   "agents": {"type": "integer", "description": "needed by Erlang C"},
                   "agents_erlang_a": {"type": ["integer", "null"],
                                       "description": "needed by Erlang A (null: no abandonment measured)"},
                   "available": {"type": ["number", "null"],
                                 "description": "agents available on average in the hour (null: not over yet)"}}}


def _report_paths() -> dict[str, Any]:
    from hub.reports.query import BREAKDOWNS, FIGURES, GROUPS, SLICES

    value = {"type": ["number", "null"]}
    figures = {"type": "object", "required": list(FIGURES), "properties": {k: value for k in FIGURES}}
    common = [
        _query("from", "start: a date (midnight in tz) or a time with its offset; default 7 days before to"),
        _query("to", "end (excluded): a date or a time; default tomorrow's midnight in tz"),
        _query("tz", "the viewer's IANA time zone (default reports.time_zone)"),
        *(_query(s, f"only this {s} (one filter at a time; agents always see their own)") for s in SLICES[:4]),
        _query("segment", "only the customers in this saved segment now (its id; supervisors and admins)",
               {"type": "integer"}),
        _query("format", "json (default) or csv", {"enum": ["json", "csv"]}),
    ]
    csv = {"text/csv": {"schema": {"type": "string"}}}
    errors = {**_ERRORS, "403": _json(_ref("Error"), "An agent asked for figures other than their own"),
              "404": _json(_ref("Error"), "No saved segment has that id"),
              "422": _json(_ref("Error"), "A parameter is not valid: the message says which and why")}
    slice_ = {"type": ["object", "null"], "properties": {"by": {"type": "string"}, "value": {"type": "string"}}}

    def ok(schema: dict[str, Any], what: str) -> dict[str, Any]:
        return {"description": what, "content": {"application/json": {"schema": schema}, **csv}}

    def op(summary: str, extra: list[dict[str, Any]], schema: dict[str, Any]) -> dict[str, Any]:
        return {"get": {"summary": summary, "parameters": [*common, *extra],
                        "responses": {"200": ok(schema, "The figures (or a CSV file with ?format=csv)"), **errors}}}

    return {
        "/api/v1/reports/summary": op(
            "Every figure over the range, and over the period of the same length just before it", [],
            {"type": "object", "required": ["from", "to", "previous_from", "figures", "previous", "units",
                                            "catching_up"],
             "properties": {"from": {"type": "string"}, "to": {"type": "string"},
                            "previous_from": {"type": "string"}, "slice": slice_, "figures": figures,
                            "previous": figures, "units": {"type": "object"},
                            "catching_up": {"type": "boolean", "description":
                                            "events not folded into the figures yet (the roller trails by about a "
                                            "second): ask again shortly for figures that include them"}}}),
        "/api/v1/reports/timeseries": op(
            "Every figure per hour, day, week (from Monday) or month of the viewer's time zone",
            [_query("group", "hour (ranges up to 35 days), day (default), week or month", {"enum": list(GROUPS)})],
            {"type": "object", "required": ["group", "time_zone", "buckets"],
             "properties": {"from": {"type": "string"}, "to": {"type": "string"}, "group": {"enum": list(GROUPS)},
                            "time_zone": {"type": "string"}, "slice": slice_, "units": {"type": "object"},
                            "buckets": {"type": "array", "items": {
                                "type": "object", "required": ["start", "figures"],
                                "properties": {"start": {"type": "string"}, "figures": figures}}}}}),
        "/api/v1/reports/breakdown": op(
            "Every figure per channel, queue, agent or label",
            [_query("by", "channel, queue (default), agent or label", {"enum": list(BREAKDOWNS)})],
            {"type": "object", "required": ["by", "rows"],
             "properties": {"from": {"type": "string"}, "to": {"type": "string"}, "by": {"enum": list(BREAKDOWNS)},
                            "units": {"type": "object"},
                            "rows": {"type": "array", "items": {
                                "type": "object", "required": ["value", "label", "figures"],
                                "properties": {"value": {"type": "string"}, "label": {"type": "string"},
                                               "figures": figures}}}}}),
        "/api/v1/reports/heatmap": op(
            "A count per hour of the week (Monday first, hours of the viewer's time zone)",
            [_query("figure", "conversations_opened (default), messages_in, messages_out, conversations_resolved, "
                              "abandoned or after_hours")],
            {"type": "object", "required": ["figure", "time_zone", "cells"],
             "properties": {"from": {"type": "string"}, "to": {"type": "string"}, "figure": {"type": "string"},
                            "time_zone": {"type": "string"},
                            "cells": {"type": "array", "minItems": 7, "maxItems": 7, "items": {
                                "type": "array", "minItems": 24, "maxItems": 24, "items": {"type": "integer"}}}}}),
        "/api/v1/reports/trends": {"get": {
            "summary": "Channel trends: per channel, this period against the one before (volume, first response), "
                       "and the labels (topics) whose volume rose or fell the most (supervisors and admins)",
            "parameters": [*common[:3], common[-1]],
            "responses": {"200": ok(
                {"type": "object", "required": ["channels", "topics"], "properties": {
                    "from": {"type": "string"}, "to": {"type": "string"}, "previous_from": {"type": "string"},
                    "channels": {"type": "array", "items": {
                        "type": "object", "required": ["channel", "volume", "first_response"], "properties": {
                            "channel": {"type": "string"},
                            "volume": {"type": "object", "properties": {
                                "now": {"type": "integer"}, "previous": {"type": "integer"},
                                "change": {"type": ["number", "null"]}}},
                            "first_response": {"type": "object", "properties": {
                                "now": {"type": ["number", "null"]}, "previous": {"type": ["number", "null"]},
                                "change": {"type": ["number", "null"]}}}}}},
                    "topics": {"type": "object", "properties": {k: {"type": "array", "items": {
                        "type": "object", "properties": {
                            "label": {"type": "string"}, "title": {"type": "string"}, "now": {"type": "integer"},
                            "previous": {"type": "integer"}, "change": {"type": ["number", "null"]}}}}
                        for k in ("rising", "falling")}}}},
                "The trends (or a CSV file with ?format=csv)"),
                **errors, "403": _json(_ref("Error"), "Not a supervisor or admin")}}},
        "/api/v1/reports/staffing": {"get": {
            "summary": "Staffing forecast: the next weeks' contacts per hour and the agents each hour needs (Erlang C, "
                       "and Erlang A with the measured patience), and last week's needs beside the agents available",
            "description": "Supervisors and admins. The volume model (hour-of-week profile x trending weekly total) is "
                           "fitted on the last history_weeks whole weeks; held_out_wape is its error on the last two "
                           "of them when fitted without them. docs/reports.md has the formulas.",
            "parameters": [
                *common[2:],
                _query("weeks", "weeks to forecast, 1-8 (default 2)", {"type": "integer", "minimum": 1, "maximum": 8}),
                _query("history_weeks", "whole past weeks to learn from, 1-52 (default 8)",
                       {"type": "integer", "minimum": 1, "maximum": 52}),
                _query("handle_seconds", "average handle time per contact (talk + wrap-up; default 300)",
                       {"type": "number", "minimum": 1, "maximum": 86400}),
                _query("target_seconds", "answer within this many seconds (default 60)",
                       {"type": "number", "minimum": 0, "maximum": 86400}),
                _query("goal", "share of contacts to answer within the target (default 0.8)",
                       {"type": "number", "minimum": 0.01, "maximum": 0.999}),
                _query("concurrency", "contacts an agent handles at once (chats; default 1)",
                       {"type": "integer", "minimum": 1, "maximum": 20}),
                _query("patience_seconds", "customers' mean patience for Erlang A (default: measured from the "
                                           "waits of answered and abandoned contacts)",
                       {"type": "number", "minimum": 1, "maximum": 86400}),
            ],
            "responses": {"200": ok(
                {"type": "object", "required": ["history", "model", "assumptions", "hours"],
                 "properties": {
                     "slice": {"type": "object"}, "time_zone": {"type": "string"}, "history": {"type": "object"},
                     "model": {"type": "object", "properties": {
                         "weekly_level": {"type": "number"}, "weekly_trend": {"type": "number"},
                         "held_out_wape": {"type": ["number", "null"]}, "held_out_weeks": {"type": "integer"}}},
                     "assumptions": {"type": "object"},
                     "hours": {"type": "array", "items": _STAFFING_HOUR},
                     "last_week": {"type": "array", "items": _STAFFING_HOUR}}},
                "The forecast (or a CSV file with ?format=csv)"),
                **errors, "403": _json(_ref("Error"), "Not a supervisor or admin")}}},
    }


PATHS.update(_report_paths())

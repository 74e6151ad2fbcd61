"""The OpenAPI 3.1 document for /api/v1. Request schemas come from the pydantic bodies the handlers validate with;
a test checks that every route is documented and that real responses match these schemas."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel

from hub.api.schemas import InboundBody, MergeBody, PresenceBody, ReplyBody, ResolveBody, TransferBody

_STR_OR_NULL = {"type": ["string", "null"]}
_INT_OR_NULL = {"type": ["integer", "null"]}

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
        "status": {"enum": ["open", "assigned", "resolved"]},
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


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _page(item: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["items", "next"],
        "properties": {"items": {"type": "array", "items": _ref(item)}, "next": _STR_OR_NULL},
    }


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _body(model: type[BaseModel], required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": _ref(model.__name__)}}}


_ERRORS = {
    "400": _json(_ref("Error"), "Bad request: the message says what to fix"),
    "401": _json(_ref("Error"), "No valid bearer token"),
    "404": _json(_ref("Error"), "Not found, or not in your queues"),
}
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
                _query("status", "open, assigned or resolved", {"enum": ["open", "assigned", "resolved"]}),
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
                       "customer has an identity for, or add a note",
            "parameters": [_id_param("conversation id")],
            "requestBody": _body(ReplyBody),
            "responses": {"201": _json(_ref("Message"), "Queued for sending (or stored, for a note)"),
                          **_WRITE_ERRORS},
        }
    },
    "/api/v1/conversations/{id}/resolve": {
        "post": {
            "summary": "Resolve the conversation; the customer's next message opens a new one",
            "parameters": [_id_param("conversation id")],
            "requestBody": _body(ResolveBody, required=False),
            "responses": {"200": _json(_ref("Conversation")),
                          "409": _json(_ref("Error"), "Already resolved"), **_WRITE_ERRORS},
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
                                                          "preview": {"type": "string"}}}}}}),
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
            "responses": {"200": _json(_ref("Conversation")), **_ROUTING_ERRORS},
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
                                                          "sla_attainment": {"type": ["number", "null"]}}}}}}),
                          **_ERRORS},
        }
    },
    "/api/v1/agents": {
        "get": {
            "summary": "Agents with presence and current load",
            "responses": {"200": _json({"type": "object", "required": ["items"], "properties": {"items": {
                "type": "array", "items": {"type": "object",
                                           "required": ["id", "name", "email", "role", "queues", "presence",
                                                        "load"],
                                           "properties": {"id": {"type": "integer"}, "name": {"type": "string"},
                                                          "email": {"type": "string"}, "role": {"type": "string"},
                                                          "queues": {"type": "array"},
                                                          "presence": {"enum": ["available", "away", "offline"]},
                                                          "load": _OBJ}}}}}),
                          **_ERRORS},
        }
    },
})


# The console's additions: its inbox list and the events WebSocket.
PATHS.update({
    "/api/v1/inbox": {
        "get": {
            "summary": "Open work the caller may see (their queues and own conversations), most recent first, with "
                       "each customer's name and the last message: what the console's list shows",
            "responses": {
                "200": _json({
                    "type": "object", "required": ["items", "server_time"],
                    "properties": {
                        "server_time": {"type": "number"},
                        "items": {"type": "array", "items": {
                            "type": "object", "required": ["conversation", "customer", "last_message"],
                            "properties": {
                                "conversation": {"type": "object"},
                                "customer": {"type": "object", "required": ["id", "name", "identity"],
                                             "properties": {"id": {"type": "integer"}, "name": {"type": "string"},
                                                            "identity": _STR_OR_NULL}},
                                "last_message": {"type": ["object", "null"]},
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

def document() -> dict[str, Any]:
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
                 "properties": {"customer": _ref("Customer"), "messages": {"type": "array", "items": _ref("Message")}}},
            ]
        },
        "IngestResult": {
            "type": "object",
            "required": ["message", "conversation", "customer", "duplicate"],
            "properties": {"message": _ref("Message"), "conversation": _ref("Conversation"),
                           "customer": _ref("Customer"), "duplicate": {"type": "boolean"}},
        },
    }
    for model in (InboundBody, ReplyBody, MergeBody, ResolveBody, PresenceBody, TransferBody):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, sub in schema.pop("$defs", {}).items():
            schemas[name] = sub
        schemas[model.__name__] = schema
    return {
        "openapi": "3.1.0",
        "info": {"title": "hub REST API", "version": "1"},
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
        "paths": PATHS,
    }


async def serve(request: web.Request) -> web.Response:
    return web.json_response(document())

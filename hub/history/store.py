"""Customers, identities, conversations and messages: the queries behind the timeline, as functions of a `Tx`."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from hub.history.db import Row, Tx
from hub.history.schema import DIACRITICS, PLAIN
from hub.model import Attachment, Conversation, Customer, Identity, Message, parse_time
from hub.visibility import served_customer, served_customers

MESSAGE_COLUMNS = (
    "id, conversation_id, customer_id, channel, direction, kind, text, html, status, status_reason, "
    "external_id, identity, agent_id, meta, created_at, updated_at"
)
ATTACHMENT_COLUMNS = "id, message_id, filename, content_type, size, status, source_url, error"
_MESSAGE_FIELDS = tuple(MESSAGE_COLUMNS.split(", "))


class NotFound(LookupError):
    """The thing asked for does not exist; the message names it."""


# -- cursors ---------------------------------------------------------------------------------------------------


def encode_cursor(*parts: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(parts).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, int]:
    """The (time, id) an encode_cursor() page ended at; ValueError for anything this server did not issue."""
    try:
        parts = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, RecursionError):  # binascii.Error and UnicodeDecodeError are ValueErrors
        parts = None
    if not (isinstance(parts, list) and len(parts) == 2 and isinstance(parts[0], str) and len(parts[0]) <= 64
            and parts[0].isascii() and parts[0].isprintable() and type(parts[1]) is int and 0 <= parts[1] <= 2**63 - 1):
        raise ValueError("cursor is not one this server issued; pass the `next` value back unchanged")
    return parts[0], parts[1]


# -- customers and identities ----------------------------------------------------------------------------------


def identities_of(tx: Tx, customer_id: int) -> list[Identity]:
    rows = tx.all("SELECT kind, value FROM identities WHERE customer_id = ? ORDER BY id", (customer_id,))
    return [Identity(r["kind"], r["value"]) for r in rows]


def customer(tx: Tx, customer_id: int) -> Customer:
    row = tx.one("SELECT id, name, created_at, merged_into FROM customers WHERE id = ?", (customer_id,))
    if row is None:
        raise NotFound(f"customer {customer_id} does not exist")
    return Customer(row["id"], row["name"], row["created_at"], identities_of(tx, row["id"]), row["merged_into"])


def customer_by_identity(tx: Tx, ident: Identity) -> int | None:
    row = tx.one("SELECT customer_id FROM identities WHERE kind = ? AND value = ?", (ident.kind, ident.value))
    return int(row["customer_id"]) if row else None


def resolve_identity(tx: Tx, ident: Identity, name: str | None, now: str) -> tuple[int, bool]:
    """The customer owning IDENT, created if new. Returns (customer id, created)."""
    found = customer_by_identity(tx, ident)
    if found is not None:
        if name:
            tx.exec("UPDATE customers SET name = ?, updated_at = ? WHERE id = ? AND name = ''", (name, now, found))
        return found, False
    return _create_customer(tx, ident, name, now)


def _create_customer(tx: Tx, ident: Identity, name: str | None, now: str) -> tuple[int, bool]:
    """A new customer owning IDENT, or the one another process created with it first. Returns (id, created)."""
    row = tx.one(
        "INSERT INTO customers (name, created_at, updated_at) VALUES (?, ?, ?) RETURNING id", (name or "", now, now)
    )
    assert row is not None
    new_id = int(row["id"])
    claimed = tx.one(
        "INSERT INTO identities (customer_id, kind, value, created_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (kind, value) DO NOTHING RETURNING id",
        (new_id, ident.kind, ident.value, now),
    )
    if claimed is None:
        # Another process created this identity between our look-up and insert: use theirs.
        tx.exec("DELETE FROM customers WHERE id = ?", (new_id,))
        existing = customer_by_identity(tx, ident)
        assert existing is not None
        return existing, False
    return new_id, True


def customer_for_identity(
    tx: Tx, ident: Identity, name: str | None, now: str, lock: bool = False
) -> tuple[Customer, bool]:
    """The customer owning IDENT with all their identities, created if new; a known customer without a name gets
    NAME. One statement for a known customer (the inbound path's common case). LOCK: a known customer's row is
    locked in the same statement (join_or_open's customer_locked). Returns (customer, created)."""
    rows = tx.all(
        "SELECT c.id, c.name, c.created_at, c.merged_into, o.kind, o.value FROM identities i "
        "JOIN customers c ON c.id = i.customer_id JOIN identities o ON o.customer_id = c.id "
        "WHERE i.kind = ? AND i.value = ? ORDER BY o.id" + (tx.for_update + " OF c" if lock and tx.for_update else ""),
        (ident.kind, ident.value),
    )
    if rows:
        first = rows[0]
        found = Customer(int(first["id"]), first["name"], first["created_at"],
                         [Identity(r["kind"], r["value"]) for r in rows], first["merged_into"])
        if name and not found.name and tx.exec(
            "UPDATE customers SET name = ?, updated_at = ? WHERE id = ? AND name = ''", (name, now, found.id)
        ):
            found.name = name
        return found, False
    customer_id, created = _create_customer(tx, ident, name, now)
    if created:
        return Customer(customer_id, name or "", now, [ident], None), True
    # Another process created them between our look-up and insert.
    if lock and tx.for_update:
        tx.one("SELECT id FROM customers WHERE id = ?" + tx.for_update, (customer_id,))
    return customer(tx, customer_id), False


#: Customer search reads the trigram indexes (migration 92) for text this long or longer; shorter text has no
#: trigram to look up, so customers are read in id order until the page is full (few for common text, all for rare).
TRIGRAM = 3
#: How many customers customer search reads in id order before it asks the trigram indexes. Text many customers hold
#: fills a page within them (a LIMIT stops the read early); the indexes cost in proportion to the matches, which
#: then are many, and to the customers not at all: rare text is theirs.
SCAN_FIRST = 1000


def _like_anywhere(text: str) -> str:
    """A LIKE pattern (ESCAPE '\\') matching TEXT anywhere, its % and _ meaning themselves."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def customer_search_needles(q: str) -> list[str]:
    """What customer search looks for: Q lowercased and, for a phone number as people type it ("+1 (415) 555-01"),
    its digits, since phone identities hold E.164 ("+14155550100")."""
    needle = q.strip().lower()
    digits = re.sub(r"\D", "", needle)
    if len(digits) >= 4 and digits != needle and re.fullmatch(r"[\d\s()+.-]+", needle):
        return [needle, digits]
    return [needle]


def search_customers(
    tx: Tx, q: str, limit: int, visible_queues: Sequence[str] | None = None, visible_agent: int | None = None
) -> list[Customer]:
    """Customers whose name or an identity holds Q anywhere, case-insensitively (a phone number also by its digits),
    merged ones left out, in id order. VISIBLE_QUEUES/VISIBLE_AGENT keep those served there (the visibility rule,
    hub.visibility), applied before the limit."""
    needles = customer_search_needles(q)
    where, served_params = "", list[Any]()
    if visible_queues is not None:
        served, served_params = served_customer(visible_queues, visible_agent, "c.id")
        where = f" AND {served}"
    edge = None
    if len(needles[0]) >= TRIGRAM:
        edge = tx.one("SELECT id FROM customers ORDER BY id LIMIT 1 OFFSET ?", (SCAN_FIRST - 1,))
    if len(needles[0]) < TRIGRAM or edge is None:
        ids = _scan_customers(tx, needles, where, served_params, limit, None)
    else:
        # The first customers in id order are the answer when they fill the page: anyone after them comes later.
        ids = _scan_customers(tx, needles, where, served_params, limit, int(edge["id"]))
        if len(ids) < limit:
            ids = _indexed_customers(tx, needles, where, served_params, limit)
    return [customer(tx, i) for i in ids]


def _scan_customers(tx: Tx, needles: list[str], where: str, served_params: list[Any], limit: int,
                    upto: int | None) -> list[int]:
    """Customer search by reading customers (up to id UPTO) in id order, testing each name and identity."""
    held = " OR ".join("lower(c.name) LIKE ? ESCAPE '\\' OR lower(i.value) LIKE ? ESCAPE '\\'" for _ in needles)
    params: list[Any] = [p for n in needles for p in (_like_anywhere(n),) * 2]
    bound = "" if upto is None else " AND c.id <= ?"
    rows = tx.all(
        "SELECT DISTINCT c.id FROM customers c LEFT JOIN identities i ON i.customer_id = c.id "
        f"WHERE c.merged_into IS NULL{bound} AND ({held}){where} ORDER BY c.id LIMIT ?",
        (*([] if upto is None else [upto]), *params, *served_params, limit),
    )
    return [int(r["id"]) for r in rows]


def _indexed_customers(tx: Tx, needles: list[str], where: str, served_params: list[Any], limit: int) -> list[int]:
    """Customer search through the trigram indexes (migration 92): work in proportion to the matches."""
    matched: list[str] = []
    params: list[Any] = []
    for needle in needles:
        if tx.dialect == "sqlite":
            # The trigram phrase finds candidates (FTS5 folds case beyond ASCII, SQLite's lower() does not); the
            # instr() check keeps exactly what the substring test always kept.
            phrase = '"' + needle.replace('"', '""') + '"'
            matched += ["SELECT n.id FROM customers_name_fts JOIN customers n ON n.id = customers_name_fts.rowid "
                        "WHERE customers_name_fts MATCH ? AND instr(lower(n.name), ?) > 0",
                        "SELECT i.customer_id FROM identities_value_fts "
                        "JOIN identities i ON i.id = identities_value_fts.rowid "
                        "WHERE identities_value_fts MATCH ? AND instr(lower(i.value), ?) > 0"]
            params += [phrase, needle, phrase, needle]
        else:
            # Each LIKE is served by its pg_trgm GIN index (customer_search_indexes), or reads the table without it.
            matched += ["SELECT id FROM customers WHERE lower(name) LIKE ? ESCAPE '\\'",
                        "SELECT customer_id FROM identities WHERE lower(value) LIKE ? ESCAPE '\\'"]
            params += [_like_anywhere(needle)] * 2
    rows = tx.all(
        f"SELECT c.id FROM customers c WHERE c.id IN ({' UNION '.join(matched)}) AND c.merged_into IS NULL{where} "
        "ORDER BY c.id LIMIT ?",
        (*params, *served_params, limit),
    )
    return [int(r["id"]) for r in rows]


# -- conversations ---------------------------------------------------------------------------------------------

CONVERSATION_COLUMNS = (
    "id, customer_id, status, channel, queue, agent_id, created_at, updated_at, resolved_at, "
    "last_inbound_channel, business_line"
)


def _conversation(row: Row) -> Conversation:
    return Conversation(**{k: row[k] for k in CONVERSATION_COLUMNS.split(", ")})


def conversation(tx: Tx, conversation_id: int) -> Conversation:
    row = tx.one(f"SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = ?", (conversation_id,))
    if row is None:
        raise NotFound(f"conversation {conversation_id} does not exist")
    return _conversation(row)


# A customer's message on a snoozed conversation makes it due now (with its reason), in the message's own
# transaction: the store, not a timer, wakes it (hub.inbox.snooze), in whichever process looks next.
WAKE_ON_MESSAGE = ("snoozed_until = CASE WHEN status = 'snoozed' THEN ? ELSE snoozed_until END, "
                   "wake_reason = CASE WHEN status = 'snoozed' THEN 'message' ELSE wake_reason END")


def open_conversation(tx: Tx, customer_id: int) -> Conversation | None:
    row = tx.one(
        f"SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE customer_id = ? AND status <> 'resolved'"
        + tx.for_update,
        (customer_id,),
    )
    return _conversation(row) if row else None


def join_or_open(
    tx: Tx,
    customer_id: int,
    channel: str,
    queue: str,
    business_line: str | None,
    reopen_window_seconds: float,
    now: str,
    new_customer: bool = False,
    customer_locked: bool = False,
) -> tuple[Conversation, str]:
    """The customer's open conversation, or one opened (or reopened) for this message. NEW_CUSTOMER: created in this
    transaction (customer_for_identity said so), so they have no conversation to join, reopen or lock yet: opened
    without looking (ids are never reused: AUTOINCREMENT, identity columns). CUSTOMER_LOCKED: the caller locked the
    customer's row already, in an earlier statement (customer_for_identity's LOCK).

    Returns (conversation, how) where how is "joined", "opened" or "reopened".
    """
    if new_customer:
        return _open(tx, customer_id, channel, queue, business_line, now), "opened"
    if tx.dialect == "postgresql" and not customer_locked:
        # Serialize per customer so two processes never both open a conversation for them. (A statement before the
        # UPDATE below: that one must start after the lock is granted, to see a conversation opened meanwhile.)
        tx.one("SELECT id FROM customers WHERE id = ? FOR UPDATE", (customer_id,))
    # At most one open conversation per customer (conversations_one_open): join it in the same statement.
    current = tx.one(
        f"UPDATE conversations SET last_inbound_channel = ?, updated_at = ?, {WAKE_ON_MESSAGE} WHERE customer_id = ? "
        f"AND status <> 'resolved' RETURNING {CONVERSATION_COLUMNS}",
        (channel, now, now, customer_id),
    )
    if current is not None:
        return _conversation(current), "joined"
    if reopen_window_seconds > 0:
        last = tx.one(
            "SELECT id, resolved_at FROM conversations WHERE customer_id = ? AND status = 'resolved' "
            "ORDER BY resolved_at DESC LIMIT 1",
            (customer_id,),
        )
        if last and last["resolved_at"]:
            age = parse_time(now) - parse_time(last["resolved_at"])
            if age <= timedelta(seconds=reopen_window_seconds):
                reopened = tx.one(
                    "UPDATE conversations SET status = 'open', resolved_at = NULL, agent_id = NULL, "
                    f"last_inbound_channel = ?, updated_at = ? WHERE id = ? RETURNING {CONVERSATION_COLUMNS}",
                    (channel, now, last["id"]),
                )
                assert reopened is not None
                return _conversation(reopened), "reopened"
    return _open(tx, customer_id, channel, queue, business_line, now), "opened"


def _open(tx: Tx, customer_id: int, channel: str, queue: str, business_line: str | None, now: str) -> Conversation:
    row = tx.one(
        "INSERT INTO conversations (customer_id, status, channel, queue, business_line, last_inbound_channel, "
        f"created_at, updated_at) VALUES (?, 'open', ?, ?, ?, ?, ?, ?) RETURNING {CONVERSATION_COLUMNS}",
        (customer_id, channel, queue, business_line, channel, now, now),
    )
    assert row is not None
    return _conversation(row)


def record_without_routing(
    tx: Tx, customer_id: int, channel: str, queue: str, business_line: str | None, now: str
) -> tuple[Conversation, str]:
    """Where a message that must not open work (an auto-reply) goes: the customer's open conversation, else their
    latest one left as it is, else a new one already resolved. Returns (conversation, "joined" or "recorded")."""
    current = open_conversation(tx, customer_id)
    if current is not None:
        return current, "joined"
    last = tx.one(
        "SELECT id FROM conversations WHERE customer_id = ? ORDER BY updated_at DESC, id DESC LIMIT 1", (customer_id,)
    )
    if last is not None:
        return conversation(tx, last["id"]), "recorded"
    row = tx.one(
        "INSERT INTO conversations (customer_id, status, channel, queue, business_line, last_inbound_channel, "
        "created_at, updated_at, resolved_at) VALUES (?, 'resolved', ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (customer_id, channel, queue, business_line, channel, now, now, now),
    )
    assert row is not None
    return conversation(tx, row["id"]), "recorded"


def list_conversations(
    tx: Tx,
    status: str | None,
    queue: str | None,
    agent_id: int | None,
    customer_id: int | None,
    visible_queues: Sequence[str] | None,
    visible_agent: int | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[Conversation], str | None]:
    """Newest activity first. VISIBLE_QUEUES/VISIBLE_AGENT restrict an agent to the conversations of customers they
    serve there (the visibility rule, hub.visibility)."""
    where: list[str] = []
    params: list[Any] = []
    if status:
        where.append("status = ?")
        params.append(status)
    if queue:
        where.append("queue = ?")
        params.append(queue)
    if agent_id is not None:
        where.append("agent_id = ?")
        params.append(agent_id)
    if customer_id is not None:
        where.append("customer_id = ?")
        params.append(customer_id)
    if visible_queues is not None:
        served, served_params = served_customers(visible_queues, visible_agent)
        where.append(f"customer_id IN ({served})")
        params.extend(served_params)
    if cursor:
        updated, cid = decode_cursor(cursor)
        where.append("(updated_at, id) < (?, ?)")
        params.extend([updated, cid])
    sql = f"SELECT {CONVERSATION_COLUMNS} FROM conversations"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY updated_at DESC, id DESC LIMIT ?"
    rows = tx.all(sql, (*params, limit + 1))
    items = [_conversation(r) for r in rows[:limit]]
    nxt = encode_cursor(items[-1].updated_at, items[-1].id) if len(rows) > limit else None
    return items, nxt


def set_conversation_status(tx: Tx, conversation_id: int, status: str, now: str) -> Conversation:
    resolved_at = now if status == "resolved" else None
    n = tx.exec(
        "UPDATE conversations SET status = ?, resolved_at = ?, updated_at = ? WHERE id = ?",
        (status, resolved_at, now, conversation_id),
    )
    if n == 0:
        raise NotFound(f"conversation {conversation_id} does not exist")
    return conversation(tx, conversation_id)


# -- messages --------------------------------------------------------------------------------------------------


def insert_message(
    tx: Tx,
    *,
    conversation_id: int,
    customer_id: int,
    channel: str,
    direction: str,
    kind: str,
    text: str,
    status: str,
    now: str,
    html: str | None = None,
    external_id: str | None = None,
    identity: str | None = None,
    agent_id: int | None = None,
    meta: dict[str, Any] | None = None,
    created_at: str | None = None,
    touch_conversation: bool = True,
    meta_text: str | None = None,
) -> int:
    """The new message's id. TOUCH_CONVERSATION: set the conversation's updated_at to NOW (False: the caller just
    did, in the statement that found the conversation). META_TEXT: META already written as JSON (the inbound path
    builds the message from it instead of reading it back)."""
    row = tx.one(
        "INSERT INTO messages (conversation_id, customer_id, channel, direction, kind, text, html, status, "
        "external_id, identity, agent_id, meta, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (
            conversation_id,
            customer_id,
            channel,
            direction,
            kind,
            text,
            html,
            status,
            external_id,
            identity,
            agent_id,
            meta_text if meta_text is not None else json.dumps(meta or {}),
            created_at or now,
            now,
        ),
    )
    assert row is not None
    if touch_conversation:
        tx.exec("UPDATE conversations SET updated_at = ? WHERE id = ?", (now, conversation_id))
    return int(row["id"])


def insert_attachment(
    tx: Tx,
    message_id: int,
    filename: str,
    content_type: str,
    data: bytes | None,
    source_url: str | None,
    status: str,
    error: str | None = None,
) -> int:
    row = tx.one(
        "INSERT INTO attachments (message_id, filename, content_type, size, status, source_url, error, data) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (message_id, filename, content_type, len(data) if data else 0, status, source_url, error, data),
    )
    assert row is not None
    return int(row["id"])


def attachment_data(tx: Tx, attachment_id: int) -> tuple[Attachment, bytes, int]:
    """The attachment, its bytes and the customer it belongs to."""
    row = tx.one(
        "SELECT a.id, a.message_id, a.filename, a.content_type, a.size, a.status, a.source_url, a.error, a.data, "
        "m.customer_id FROM attachments a JOIN messages m ON m.id = a.message_id WHERE a.id = ?",
        (attachment_id,),
    )
    if row is None:
        raise NotFound(f"attachment {attachment_id} does not exist")
    att = Attachment(**{k: row[k] for k in ATTACHMENT_COLUMNS.split(", ")})
    return att, bytes(row["data"] or b""), int(row["customer_id"])


def _messages(tx: Tx, rows: list[Row]) -> list[Message]:
    if not rows:
        return []
    ids = [r["id"] for r in rows]
    marks = ", ".join("?" for _ in ids)
    by_message: dict[int, list[Attachment]] = {}
    for a in tx.all(f"SELECT {ATTACHMENT_COLUMNS} FROM attachments WHERE message_id IN ({marks}) ORDER BY id", ids):
        by_message.setdefault(a["message_id"], []).append(
            Attachment(**{k: a[k] for k in ATTACHMENT_COLUMNS.split(", ")})
        )
    out = []
    for r in rows:
        fields = {k: r[k] for k in _MESSAGE_FIELDS}
        meta = fields["meta"]
        fields["meta"] = json.loads(meta) if meta and meta != "{}" else {}
        out.append(Message(**fields, attachments=by_message.get(r["id"], [])))
    return out


def message(tx: Tx, message_id: int) -> Message:
    rows = tx.all(f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ?", (message_id,))
    if not rows:
        raise NotFound(f"message {message_id} does not exist")
    return _messages(tx, rows)[0]


def timeline(
    tx: Tx, customer_id: int, limit: int, cursor: str | None, newest_first: bool = False
) -> tuple[list[Message], str | None]:
    """A customer's messages across all channels in time order, one page at a time."""
    op, order = ("<", "DESC") if newest_first else (">", "ASC")
    params: list[Any] = [customer_id]
    sql = f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE customer_id = ?"
    if cursor:
        created, mid = decode_cursor(cursor)
        # A row-value comparison lets both databases seek the (customer_id, created_at, id) index to the cursor;
        # the equivalent OR form makes them scan every row before it.
        sql += f" AND (created_at, id) {op} (?, ?)"
        params.extend([created, mid])
    sql += f" ORDER BY created_at {order}, id {order} LIMIT ?"
    rows = tx.all(sql, (*params, limit + 1))
    items = _messages(tx, rows[:limit])
    nxt = encode_cursor(items[-1].created_at, items[-1].id) if len(rows) > limit else None
    return items, nxt


def conversation_messages(tx: Tx, conversation_id: int, limit: int = 500) -> list[Message]:
    rows = tx.all(
        f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ? ORDER BY created_at, id LIMIT ?",
        (conversation_id, limit),
    )
    return _messages(tx, rows)


def last_inbound_identity(tx: Tx, conversation_id: int, channel: str) -> str | None:
    row = tx.one(
        "SELECT identity FROM messages WHERE conversation_id = ? AND channel = ? AND direction = 'in' "
        "AND identity IS NOT NULL ORDER BY created_at DESC, id DESC LIMIT 1",
        (conversation_id, channel),
    )
    return str(row["identity"]) if row else None


def set_message_status(tx: Tx, message_id: int, status: str, reason: str | None, now: str) -> None:
    tx.exec(
        "UPDATE messages SET status = ?, status_reason = ?, updated_at = ? WHERE id = ?",
        (status, reason, now, message_id),
    )


# -- chat channels: edits, attachments fetched in the background, one channel's history for the customer ------


def inbound_by_external_id(tx: Tx, channel: str, external_id: str) -> int | None:
    row = tx.one(
        "SELECT id FROM messages WHERE channel = ? AND external_id = ? AND direction = 'in' ORDER BY id LIMIT 1",
        (channel, external_id),
    )
    return int(row["id"]) if row else None


def edit_message(tx: Tx, message_id: int, text: str, edited_at: str, now: str) -> None:
    """Replace a message's text, keeping every earlier version in meta["edits"] (oldest first)."""
    row = tx.one("SELECT text, meta FROM messages WHERE id = ?" + tx.for_update, (message_id,))
    if row is None:
        raise NotFound(f"message {message_id} does not exist")
    meta = json.loads(row["meta"] or "{}")
    meta.setdefault("edits", []).append({"text": row["text"], "replaced_at": edited_at})
    meta["edited_at"] = edited_at
    tx.exec(
        "UPDATE messages SET text = ?, meta = ?, updated_at = ? WHERE id = ?",
        (text, json.dumps(meta), now, message_id),
    )


def pending_attachments(tx: Tx, channel: str, now: str, limit: int) -> list[tuple[int, str]]:
    """(attachment id, source url) of CHANNEL's attachments waiting to be fetched whose next try is due."""
    rows = tx.all(
        "SELECT a.id, a.source_url FROM attachments a JOIN messages m ON m.id = a.message_id "
        "WHERE a.status = 'pending' AND m.channel = ? AND a.source_url IS NOT NULL "
        "AND (a.next_attempt_at IS NULL OR a.next_attempt_at <= ?) ORDER BY a.id LIMIT ?",
        (channel, now, limit),
    )
    return [(int(r["id"]), str(r["source_url"])) for r in rows]


def claim_attachments(tx: Tx, channel: str, now: str, lease_until: str, limit: int) -> list[tuple[int, str]]:
    """Like pending_attachments, but each returned one is leased until LEASE_UNTIL (its next try moves there), so
    with several hub processes only one fetches it; finish_attachment ends the lease, a crash lets it lapse."""
    claimed = []
    for attachment_id, url in pending_attachments(tx, channel, now, limit):
        taken = tx.exec(
            "UPDATE attachments SET next_attempt_at = ? WHERE id = ? AND status = 'pending' "
            "AND (next_attempt_at IS NULL OR next_attempt_at <= ?)",
            (lease_until, attachment_id, now),
        )
        if taken:
            claimed.append((attachment_id, url))
    return claimed


def finish_attachment(
    tx: Tx,
    attachment_id: int,
    *,
    data: bytes | None = None,
    content_type: str | None = None,
    error: str | None = None,
    retry_at: str | None = None,
) -> int:
    """Record a fetch: DATA stores it; an ERROR with RETRY_AT stays pending until then, without fails it.
    Returns the attachment's message id."""
    if data is not None:
        tx.exec(
            "UPDATE attachments SET data = ?, size = ?, status = 'stored', error = NULL, "
            "content_type = COALESCE(?, content_type), attempts = attempts + 1, next_attempt_at = NULL WHERE id = ?",
            (data, len(data), content_type, attachment_id),
        )
    else:
        tx.exec(
            "UPDATE attachments SET status = ?, error = ?, attempts = attempts + 1, next_attempt_at = ? WHERE id = ?",
            ("pending" if retry_at else "failed", error, retry_at, attachment_id),
        )
    row = tx.one("SELECT message_id, attempts FROM attachments WHERE id = ?", (attachment_id,))
    if row is None:
        raise NotFound(f"attachment {attachment_id} does not exist")
    return int(row["message_id"])


def attachment_attempts(tx: Tx, attachment_id: int) -> int:
    row = tx.one("SELECT attempts FROM attachments WHERE id = ?", (attachment_id,))
    return int(row["attempts"]) if row else 0


def channel_history(tx: Tx, customer_id: int, channel: str, limit: int) -> list[tuple[Message, str | None]]:
    """The customer's last LIMIT messages on CHANNEL in time order, with the sending agent's name; never notes."""
    rows = tx.all(
        f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE customer_id = ? AND channel = ? AND kind <> 'note' "
        "ORDER BY created_at DESC, id DESC LIMIT ?",
        (customer_id, channel, limit),
    )
    msgs = _messages(tx, list(reversed(rows)))
    names = agent_names(tx, {m.agent_id for m in msgs if m.agent_id is not None})
    return [(m, names.get(m.agent_id) if m.agent_id is not None else None) for m in msgs]


def agent_names(tx: Tx, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    marks = ", ".join("?" for _ in ids)
    rows = tx.all(f"SELECT id, name FROM agents WHERE id IN ({marks})", list(ids))
    return {int(r["id"]): str(r["name"]) for r in rows}


# -- threads and mailboxes (email) -------------------------------------------------------------------------------


def join_thread(tx: Tx, conversation_id: int, channel: str, now: str) -> Conversation | None:
    """Conversation CONVERSATION_ID if it is still open (a reply in its thread joins it), else None."""
    row = tx.one(
        f"UPDATE conversations SET last_inbound_channel = ?, updated_at = ?, {WAKE_ON_MESSAGE} WHERE id = ? "
        f"AND status <> 'resolved' RETURNING {CONVERSATION_COLUMNS}",
        (channel, now, now, conversation_id),
    )
    return _conversation(row) if row is not None else None


def conversation_by_external_ids(tx: Tx, channel: str, external_ids: Sequence[str]) -> int | None:
    """The conversation of the first of EXTERNAL_IDS (in the order given) that is a stored message on CHANNEL."""
    ids = list(dict.fromkeys(external_ids))[:100]
    if not ids:
        return None
    marks = ", ".join("?" for _ in ids)
    rows = tx.all(
        f"SELECT external_id, conversation_id FROM messages WHERE channel = ? AND external_id IN ({marks}) "
        "ORDER BY id DESC",
        (channel, *ids),
    )
    found: dict[str, int] = {}
    for r in rows:
        found.setdefault(str(r["external_id"]), int(r["conversation_id"]))
    return next((found[i] for i in ids if i in found), None)


def recent_channel_messages(tx: Tx, conversation_id: int, channel: str, limit: int = 50) -> list[Message]:
    """The conversation's last LIMIT messages on CHANNEL, oldest first."""
    rows = tx.all(
        f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ? AND channel = ? "
        "ORDER BY created_at DESC, id DESC LIMIT ?",
        (conversation_id, channel, limit),
    )
    return list(reversed(_messages(tx, rows)))


def mailbox_state(tx: Tx, mailbox: str) -> tuple[int, int] | None:
    """(UIDVALIDITY, last UID processed) of MAILBOX, or None before its first import."""
    row = tx.one("SELECT uidvalidity, last_uid FROM mailbox_sync WHERE mailbox = ?", (mailbox,))
    if row is None or row["uidvalidity"] is None:
        return None
    return int(row["uidvalidity"]), int(row["last_uid"])


def save_mailbox_state(tx: Tx, mailbox: str, uidvalidity: int, last_uid: int, now: str) -> None:
    """Record progress; within one UIDVALIDITY the last UID only moves forward."""
    tx.exec(
        "INSERT INTO mailbox_sync (mailbox, uidvalidity, last_uid, updated_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (mailbox) DO UPDATE SET "
        "last_uid = CASE WHEN mailbox_sync.uidvalidity = excluded.uidvalidity "
        "AND mailbox_sync.last_uid > excluded.last_uid THEN mailbox_sync.last_uid ELSE excluded.last_uid END, "
        "uidvalidity = excluded.uidvalidity, updated_at = excluded.updated_at",
        (mailbox, uidvalidity, last_uid, now),
    )


def lease_mailbox(tx: Tx, mailbox: str, owner: str, until: str, now: str) -> bool:
    """Take or renew the right to poll MAILBOX until UNTIL; False while another owner's lease is live."""
    tx.exec(
        "INSERT INTO mailbox_sync (mailbox, updated_at) VALUES (?, ?) ON CONFLICT (mailbox) DO NOTHING",
        (mailbox, now),
    )
    return bool(
        tx.exec(
            "UPDATE mailbox_sync SET owner = ?, lease_until = ? "
            "WHERE mailbox = ? AND (owner IS NULL OR owner = ? OR lease_until IS NULL OR lease_until < ?)",
            (owner, until, mailbox, owner, now),
        )
    )


def release_mailbox(tx: Tx, mailbox: str, owner: str) -> None:
    tx.exec(
        "UPDATE mailbox_sync SET owner = NULL, lease_until = NULL WHERE mailbox = ? AND owner = ?",
        (mailbox, owner),
    )


# -- what a provider learns later about an inbound message; opt-outs (Twilio) ------------------------------------


def amend_message(tx: Tx, message_id: int, text: str | None, meta: dict[str, Any], now: str) -> None:
    """Merge META into a message's meta (a key set to None is removed) and replace its text if TEXT is given."""
    row = tx.one("SELECT text, meta FROM messages WHERE id = ?" + tx.for_update, (message_id,))
    if row is None:
        raise NotFound(f"message {message_id} does not exist")
    merged = json.loads(row["meta"] or "{}")
    for k, v in meta.items():
        if v is None:
            merged.pop(k, None)
        else:
            merged[k] = v
    tx.exec(
        "UPDATE messages SET text = ?, meta = ?, updated_at = ? WHERE id = ?",
        (row["text"] if text is None else text, json.dumps(merged), now, message_id),
    )


def set_opt_out(tx: Tx, identity: str, channel: str, keyword: str | None, now: str) -> None:
    """Record that IDENTITY opted out of CHANNEL (KEYWORD, e.g. STOP), or opted back in (KEYWORD None)."""
    if keyword is None:
        tx.exec("DELETE FROM opt_outs WHERE identity = ? AND channel = ?", (identity, channel))
        return
    tx.exec(
        "INSERT INTO opt_outs (identity, channel, keyword, opted_out_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (identity, channel) DO UPDATE SET keyword = excluded.keyword, "
        "opted_out_at = excluded.opted_out_at",
        (identity, channel, keyword, now),
    )


def opt_out(tx: Tx, identity: str, channel: str) -> tuple[str, str] | None:
    """(keyword, when) if IDENTITY has opted out of CHANNEL."""
    row = tx.one("SELECT keyword, opted_out_at FROM opt_outs WHERE identity = ? AND channel = ?", (identity, channel))
    return (str(row["keyword"]), str(row["opted_out_at"])) if row else None


# -- message text search (migration 9: FTS5 on SQLite; 111: a GIN-indexed tsvector column on PostgreSQL) --------


_FOLD = str.maketrans(DIACRITICS, PLAIN)


def search_terms(q: str) -> list[str]:
    """The words of a query as both indexes split and fold text: letters and digits, lower case, the accented Latin
    letters FTS5 folds folded (as migration 111 folds them on PostgreSQL), at most 8."""
    return re.findall(r"[^\W_]+", q.lower().translate(_FOLD))[:8]


#: A search word that begins at most this many stored words is searched as those words (see _fts_prefix).
PREFIX_WORDS = 64
_ASCII_WORD = re.compile(r"[a-z0-9]+")


def _fts_prefix(tx: Tx, term: str) -> str:
    """SQLite: an FTS5 query matching the messages that hold a word beginning with TERM ("" if no stored word does).

    FTS5 reads a prefix query (`"refund"*`) by merging the doclists of every word it matches into one list in memory
    before the first row, so its cost follows the number of matching messages (a third of them for "refund"), not
    the page. The same matches as an OR of those words (`("refund" OR "refunds")`) are read lazily, newest first, a
    page costing about a page. The stored words come from the index's vocabulary (migration 118), one seek each
    (the seek past the last one reads that word's doclist pages, without decoding them: FTS5 has no index entry for
    a page of doclist alone); a prefix that begins more than PREFIX_WORDS of them (what a short prefix does) keeps
    the prefix query, whose merge then costs less than an OR of so many words. Only plain ASCII words are expanded:
    FTS5 tokenizes those to themselves, so the words found are exactly the ones the prefix query would match."""
    if not _ASCII_WORD.fullmatch(term):
        return f'"{term}"*'
    found: list[str] = []
    row = tx.one("SELECT term FROM messages_fts_words WHERE term >= ? LIMIT 1", (term,))
    while row is not None and str(row["term"]).startswith(term):
        if len(found) == PREFIX_WORDS:
            return f'"{term}"*'
        found.append(str(row["term"]))
        # The next stored word: nothing sorts between a word and itself followed by NUL.
        row = tx.one("SELECT term FROM messages_fts_words WHERE term >= ? LIMIT 1", (found[-1] + "\x00",))
    if not found:
        return ""
    return "(" + " OR ".join('"' + word.replace('"', '""') + '"' for word in found) + ")"


def search_messages(
    tx: Tx, q: str, visible_queues: Sequence[str] | None, visible_agent: int | None, limit: int
) -> list[Message]:
    """Messages holding every word of Q (each as a word prefix), newest stored first. VISIBLE_QUEUES/VISIBLE_AGENT
    restrict an agent to the history of customers they serve there, as list_conversations does, before the limit."""
    terms = search_terms(q)
    if not terms:
        return []
    # Newest stored first, in the index's own order: a common word's page is the first matches read, not a sort of
    # millions (an imported old email counts from when it arrived here).
    served, served_params = ("1 = 1", []) if visible_queues is None else served_customer(
        visible_queues, visible_agent, "m.customer_id", probe=True)
    columns = ", ".join(f"m.{c}" for c in _MESSAGE_FIELDS)
    if tx.dialect == "postgresql":
        # The matches newest first in a subquery (OFFSET 0 keeps the visibility rule out of it), then the rule probed
        # row by row above it until the page is full: PostgreSQL walks messages_pkey backwards for a common word, or
        # sorts a rarer word's matches from the GIN index, and in either case checks only the rows the page reads.
        sql = (f"SELECT {columns} FROM (SELECT {columns} FROM messages m WHERE m.text_search @@ "
               f"to_tsquery('simple', ?) AND m.kind <> 'event' ORDER BY m.id DESC OFFSET 0) m WHERE {served} LIMIT ?")
        query = " & ".join(f"{t}:*" for t in terms)
    else:
        # FTS5 walks its doclists backwards for this order.
        sql = (f"SELECT {columns} FROM messages_fts f JOIN messages m ON m.id = f.rowid WHERE messages_fts MATCH ? "
               f"AND {served} AND m.kind <> 'event' ORDER BY f.rowid DESC LIMIT ?")
        words = [_fts_prefix(tx, t) for t in terms]
        if "" in words:
            return []  # a word no stored word begins with: nothing holds them all
        query = " AND ".join(words)
    rows = tx.all(sql, (query, *served_params, limit))
    return _messages(tx, rows)

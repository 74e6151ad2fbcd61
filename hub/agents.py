"""Agents (people who answer), their queue memberships, and the queues themselves as config declares them."""

from __future__ import annotations

from collections.abc import Mapping

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from hub.config import QueueSettings
from hub.history.db import Database, Tx
from hub.identities import IdentityError, normalize_phone
from hub.model import Agent, format_time, utcnow

ROLES = ("admin", "supervisor", "agent")
_hasher = PasswordHasher()


class AgentError(ValueError):
    """An agent operation that cannot be done; the message says why."""


def hash_password(password: str) -> str:
    if len(password) < 8:
        raise AgentError("a password needs at least 8 characters")
    return _hasher.hash(password)


def check_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _agent(tx: Tx, row: Mapping[str, object]) -> Agent:
    queues = [str(r["queue"]) for r in tx.all("SELECT queue FROM agent_queues WHERE agent_id = ? ORDER BY queue",
                                              (row["id"],))]
    return Agent(int(str(row["id"])), str(row["name"]), str(row["email"]), row["role"],  # type: ignore[arg-type]
                 queues, str(row["created_at"]), bool(row["disabled"]),
                 _text(row["phone"]), _text(row["voice_client"]))


def _text(value: object) -> str | None:
    return None if value is None else str(value)


#: the agent row's columns every query reads
AGENT_COLUMNS = "id, name, email, role, disabled, created_at, phone, voice_client"


def check_voice(phone: str | None, voice_client: str | None) -> tuple[str | None, str | None]:
    """An agent's phone in E.164 and a Twilio Client identity, checked; empty means none."""
    phone = (phone or "").strip() or None
    if phone is not None:
        if not phone.startswith("+"):
            raise AgentError(f"phone {phone!r}: write it in E.164 with the country code, e.g. +14155550100")
        try:
            phone = normalize_phone(phone, "US")
        except IdentityError as e:
            raise AgentError(str(e)) from None
    voice_client = (voice_client or "").strip() or None
    if voice_client is not None and not all(ch.isalnum() or ch in "_-.@" for ch in voice_client):
        raise AgentError("a Twilio Client identity may hold letters, digits and _ - . @ only")
    return phone, voice_client


async def add_agent(
    db: Database,
    name: str,
    email: str,
    password: str,
    role: str,
    queues: list[str],
    phone: str | None = None,
    voice_client: str | None = None,
) -> Agent:
    phone, voice_client = check_voice(phone, voice_client)
    if role not in ROLES:
        raise AgentError(f"role must be one of {', '.join(ROLES)}")
    email = email.strip().lower()
    if "@" not in email:
        raise AgentError(f"{email!r} is not an email address")
    digest = hash_password(password)  # slow on purpose: do it outside the transaction
    now = format_time(utcnow())

    def write(tx: Tx) -> Agent:
        known = {str(r["name"]) for r in tx.all("SELECT name FROM queues")}
        unknown = [q for q in queues if q not in known]
        if unknown:
            raise AgentError(f"unknown queue(s) {', '.join(unknown)}; known: {', '.join(sorted(known)) or 'none'}")
        if tx.one("SELECT id FROM agents WHERE email = ?", (email,)):
            raise AgentError(f"an agent with email {email} already exists")
        row = tx.one(
            "INSERT INTO agents (name, email, role, password_hash, created_at, phone, voice_client) "
            f"VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING {AGENT_COLUMNS}",
            (name, email, role, digest, now, phone, voice_client),
        )
        assert row is not None
        for q in queues:
            tx.exec("INSERT INTO agent_queues (agent_id, queue) VALUES (?, ?)", (row["id"], q))
        return _agent(tx, row)

    return await db.write(write)


async def list_agents(db: Database) -> list[Agent]:
    def read(tx: Tx) -> list[Agent]:
        rows = tx.all(f"SELECT {AGENT_COLUMNS} FROM agents ORDER BY id")
        return [_agent(tx, r) for r in rows]

    return await db.read(read)


async def find_agent(db: Database, ref: str) -> Agent | None:
    """An agent by id or email."""

    def read(tx: Tx) -> Agent | None:
        # ASCII digits only: '²' passes isdigit() but not int(); past 64 bits no row can have that id.
        by_id = ref.isascii() and ref.isdigit()
        if by_id and int(ref) > 2**63 - 1:
            return None
        column = "id" if by_id else "email"
        value: object = int(ref) if by_id else ref.strip().lower()
        row = tx.one(f"SELECT {AGENT_COLUMNS} FROM agents WHERE {column} = ?", (value,))
        return _agent(tx, row) if row else None

    return await db.read(read)


async def sync_queues(db: Database, queues: Mapping[str, QueueSettings]) -> None:
    """Make the queues table say what config says (queues referenced by history are kept)."""

    def write(tx: Tx) -> None:
        for name, q in queues.items():
            tx.exec(
                "INSERT INTO queues (name, title) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET title = ?",
                (name, q.title or name, q.title or name),
            )

    await db.write(write)


#: what update_agent may change; a key absent from CHANGES is left alone (None clears phone / voice_client)
EDITABLE = ("name", "email", "role", "queues", "phone", "voice_client", "disabled", "password")


async def update_agent(db: Database, agent_id: int, changes: Mapping[str, object]) -> tuple[Agent, Agent]:
    """Apply CHANGES to one agent; returns (before, after). Refuses to leave the hub without an enabled admin."""
    unknown = sorted(set(changes) - set(EDITABLE))
    if unknown:
        raise AgentError(f"cannot change {', '.join(unknown)}")
    sets: dict[str, object] = {}
    if "name" in changes:
        name = str(changes["name"] or "").strip()
        if not name:
            raise AgentError("a name cannot be empty")
        sets["name"] = name
    if "email" in changes:
        email = str(changes["email"] or "").strip().lower()
        if "@" not in email:
            raise AgentError(f"{email!r} is not an email address")
        sets["email"] = email
    if "role" in changes:
        if changes["role"] not in ROLES:
            raise AgentError(f"role must be one of {', '.join(ROLES)}")
        sets["role"] = changes["role"]
    if "phone" in changes or "voice_client" in changes:
        current = await find_agent(db, str(agent_id))
        if current is None:
            raise AgentNotFound(f"agent {agent_id} does not exist")
        phone = changes["phone"] if "phone" in changes else current.phone
        client = changes["voice_client"] if "voice_client" in changes else current.voice_client
        sets["phone"], sets["voice_client"] = check_voice(_text(phone), _text(client))
    if "disabled" in changes:
        sets["disabled"] = 1 if changes["disabled"] else 0
    if changes.get("password") is not None:
        sets["password_hash"] = hash_password(str(changes["password"]))  # slow: outside the transaction
    queues = changes.get("queues")

    def write(tx: Tx) -> tuple[Agent, Agent]:
        row = tx.one(f"SELECT {AGENT_COLUMNS} FROM agents WHERE id = ?" + tx.for_update, (agent_id,))
        if row is None:
            raise AgentNotFound(f"agent {agent_id} does not exist")
        before = _agent(tx, row)
        if "email" in sets and tx.one("SELECT id FROM agents WHERE email = ? AND id <> ?", (sets["email"], agent_id)):
            raise AgentConflict(f"an agent with email {sets['email']} already exists")
        if sets:
            assignments = ", ".join(f"{column} = ?" for column in sets)
            tx.exec(f"UPDATE agents SET {assignments} WHERE id = ?", (*sets.values(), agent_id))
        if queues is not None:
            wanted = list(dict.fromkeys(str(q) for q in queues))  # type: ignore[attr-defined]
            known = {str(r["name"]) for r in tx.all("SELECT name FROM queues")}
            unknown_queues = [q for q in wanted if q not in known]
            if unknown_queues:
                raise AgentError(f"unknown queue(s) {', '.join(unknown_queues)}; "
                                 f"known: {', '.join(sorted(known)) or 'none'}")
            tx.exec("DELETE FROM agent_queues WHERE agent_id = ?", (agent_id,))
            for q in wanted:
                tx.exec("INSERT INTO agent_queues (agent_id, queue) VALUES (?, ?)", (agent_id, q))
        after_row = tx.one(f"SELECT {AGENT_COLUMNS} FROM agents WHERE id = ?", (agent_id,))
        assert after_row is not None
        after = _agent(tx, after_row)
        was_admin = before.role == "admin" and not before.disabled
        if was_admin and not (after.role == "admin" and not after.disabled) and tx.one(
            "SELECT id FROM agents WHERE role = 'admin' AND disabled = 0 LIMIT 1"
        ) is None:
            raise AgentConflict("this would leave no enabled admin; make someone else an admin first")
        return before, after

    return await db.write(write)


class AgentNotFound(AgentError):
    """No agent has that id."""


class AgentConflict(AgentError):
    """The change contradicts another agent or would lock every admin out."""

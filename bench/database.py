"""The database a benchmark run uses: a fresh SQLite file in a temporary folder, or a fresh PostgreSQL database
created on the server named by --db and dropped afterwards; and the counts that check what the hub stored."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from hub.history.db import Database, Tx


@contextlib.contextmanager
def fresh_database(choice: str, workdir: Path, keep: bool = False) -> Iterator[str]:
    """Yield the URL of an empty database for this run. CHOICE: "sqlite", "sqlite:///PATH" or "postgresql://...".
    KEEP: a PostgreSQL database is left on the server afterwards, to study or measure it again (drop it yourself); a
    SQLite file kept is named by sqlite:///PATH."""
    if choice == "sqlite":
        yield f"sqlite:///{workdir / 'hub.db'}"
    elif choice.startswith("sqlite:///"):
        yield choice
    elif choice.startswith(("postgresql://", "postgres://")):
        with _fresh_postgres(choice, keep) as url:
            yield url
    else:
        raise ValueError(f"--db {choice!r}: use sqlite (a fresh temporary file) or a postgresql:// URL")


@contextlib.contextmanager
def _fresh_postgres(server_url: str, keep: bool = False) -> Iterator[str]:
    import psycopg

    name = f"hub_bench_{secrets.token_hex(4)}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    parts = urlsplit(server_url)
    try:
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        if not keep:
            with psycopg.connect(server_url, autocommit=True) as admin:
                admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@dataclass
class Stored:
    """What the store holds for one run's inbound messages (their external_ids share the run's prefix)."""

    messages: int
    distinct_external_ids: int
    journal: dict[str, int]
    customers: int
    conversations: int


def _stored(tx: Tx, prefix: str) -> Stored:
    like = prefix + "%"
    m = tx.one(
        "SELECT COUNT(*) AS n, COUNT(DISTINCT external_id) AS d, COUNT(DISTINCT customer_id) AS c, "
        "COUNT(DISTINCT conversation_id) AS v FROM messages WHERE external_id LIKE ?",
        (like,),
    )
    assert m is not None
    journal = {
        str(r["status"]): int(r["n"])
        for r in tx.all("SELECT status, COUNT(*) AS n FROM journal WHERE dedupe_key LIKE ? GROUP BY status", (like,))
    }
    return Stored(int(m["n"]), int(m["d"]), journal, int(m["c"]), int(m["v"]))


async def stored(db: Database, prefix: str) -> Stored:
    return await db.read(lambda tx: _stored(tx, prefix))

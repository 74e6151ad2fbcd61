"""Each saved segment's report figures (report_segment_rollups): the sum of report_customer_rollups over the
customers the segment held when the roller last looked (report_segment_members). The roller adds a customer's new
figures to the segments they are kept in, in the transaction that adds them to the customer's own rows; every
REFRESH_SECONDS it looks again, adding the whole rows of the customers who joined and taking away those of the ones
who left. A report by segment reads the segment's rows and corrects them by whoever joined or left since that look
(hub.reports.query), so it counts exactly the members now at a cost bounded by buckets, not members."""

from __future__ import annotations

from typing import Any

from hub.history.db import Database, Tx
from hub.reports.schema import CUSTOMER_COLUMNS
from hub.segments import segment_store
from hub.segments.criteria import Criteria, Cuts, Scorer, compile_where

#: how often the roller moves segment members in and out (between two looks a report corrects by the difference)
REFRESH_SECONDS = 60.0
#: customers moved in or out of one segment per write (each write holds SQLite's only writer)
CHUNK = 1000
# The roller's PostgreSQL advisory lock (hub.reports.rollup): a fold and a move never interleave, or a customer's
# new figures could reach their own rows but miss a segment they are joining.
LOCK = 7246040

_COLS = ", ".join(CUSTOMER_COLUMNS)
_UPSERT = (" ON CONFLICT (segment_id, grain, bucket) DO UPDATE SET "
           + ", ".join(f"{c} = report_segment_rollups.{c} + excluded.{c}" for c in CUSTOMER_COLUMNS))

#: add one customer's figures of one hour or day (grain, bucket, *customer_values, customer) to every segment the
#: customer is kept in
ADD_TO_SEGMENTS = (
    f"INSERT INTO report_segment_rollups (segment_id, grain, bucket, {_COLS}) SELECT segment_id, ?, ?, "
    + ", ".join("?" for _ in CUSTOMER_COLUMNS)
    + " FROM report_segment_members WHERE customer_id = ?" + _UPSERT
)


def lock(tx: Tx) -> None:
    if tx.dialect == "postgresql":
        tx.one("SELECT pg_advisory_xact_lock(?) AS locked", (LOCK,))


def move_merged(tx: Tx, survivor_id: int, merged_id: int) -> None:
    """Before MERGED's figures become SURVIVOR's (hub.history.merge): the segments MERGED was kept in lose them, the
    ones SURVIVOR is kept in gain them, and MERGED is kept in none."""
    lock(tx)
    for sign, who in ((-1, merged_id), (1, survivor_id)):
        tx.exec(f"INSERT INTO report_segment_rollups (segment_id, grain, bucket, {_COLS}) "
                f"SELECT m.segment_id, r.grain, r.bucket, {', '.join(f'{sign} * r.{c}' for c in CUSTOMER_COLUMNS)} "
                "FROM report_segment_members m JOIN report_customer_rollups r ON r.customer_id = ? "
                "WHERE m.customer_id = ?" + _UPSERT, (merged_id, who))
    tx.exec("DELETE FROM report_segment_members WHERE customer_id = ?", (merged_id,))


def differences(tx: Tx, criteria: Criteria, segment_id: int, cuts: Cuts) -> tuple[list[int], list[int]]:
    """(joined, left): the customers in the segment now and not kept in it, and those kept and no longer in it."""
    where, params = compile_where(tx, criteria, Scorer(cuts, tx.dialect))
    joined = tx.all(f"SELECT s.customer_id FROM customer_stats s WHERE {where} AND NOT EXISTS (SELECT 1 FROM "
                    "report_segment_members k WHERE k.segment_id = ? AND k.customer_id = s.customer_id) "
                    "ORDER BY s.customer_id", [*params, segment_id])
    left = tx.all(f"SELECT k.customer_id FROM report_segment_members k WHERE k.segment_id = ? AND NOT EXISTS "
                  f"(SELECT 1 FROM customer_stats s WHERE s.customer_id = k.customer_id AND {where}) "
                  "ORDER BY k.customer_id", [segment_id, *params])
    return [int(r["customer_id"]) for r in joined], [int(r["customer_id"]) for r in left]


def move(tx: Tx, segment_id: int, joined: list[int], left: list[int]) -> int:
    """Keep JOINED in the segment and LEFT out of it, their rows added to or taken from the segment's (a customer
    already where they should be, since the look that listed them, is left alone). Returns how many moved."""
    lock(tx)
    moved = 0
    for sign, ids in ((1, joined), (-1, left)):
        if not ids:
            continue
        marks = ", ".join("?" for _ in ids)
        kept = {int(r["customer_id"]) for r in tx.all(
            f"SELECT customer_id FROM report_segment_members WHERE segment_id = ? AND customer_id IN ({marks})",
            [segment_id, *ids])}
        todo = [c for c in ids if (c in kept) == (sign < 0)]
        if not todo:
            continue
        marks = ", ".join("?" for _ in todo)
        sums = ", ".join(f"{sign} * SUM({c})" for c in CUSTOMER_COLUMNS)
        tx.exec(f"INSERT INTO report_segment_rollups (segment_id, grain, bucket, {_COLS}) SELECT ?, grain, bucket, "
                f"{sums} FROM report_customer_rollups WHERE customer_id IN ({marks}) GROUP BY grain, bucket"
                + _UPSERT, [segment_id, *todo])
        if sign > 0:
            for c in todo:
                tx.exec("INSERT INTO report_segment_members (segment_id, customer_id) VALUES (?, ?)", (segment_id, c))
        else:
            tx.exec(f"DELETE FROM report_segment_members WHERE segment_id = ? AND customer_id IN ({marks})",
                    [segment_id, *todo])
        moved += len(todo)
    return moved


def forget_deleted(tx: Tx) -> None:
    """Drop what is kept for segments that no longer exist."""
    lock(tx)
    for table in ("report_segment_members", "report_segment_rollups"):
        tx.exec(f"DELETE FROM {table} WHERE segment_id NOT IN (SELECT id FROM segments)")


async def refresh(db: Database, cuts: Cuts, chunk: int = CHUNK) -> int:
    """Look at every saved segment again (scored by CUTS) and move whoever joined or left; returns how many moved.
    Each write moves up to CHUNK customers of one segment and keeps the segment's rows the sum of its members'."""
    def saved(tx: Tx) -> list[Any]:
        return [(s.id, s.criteria) for s, _ in segment_store.listing(tx)]

    moved = 0
    await db.write(forget_deleted)
    for segment_id, criteria in await db.read(saved):
        joined, left = await db.read(lambda tx, s=segment_id, c=criteria: differences(tx, c, s, cuts))  # type: ignore[misc]
        for i in range(0, max(len(joined), len(left)), chunk):
            moved += await db.write(lambda tx, s=segment_id, j=joined[i : i + chunk], k=left[i : i + chunk]:  # type: ignore[misc]
                                    move(tx, s, j, k))
    return moved

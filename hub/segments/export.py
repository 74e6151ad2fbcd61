"""A segment's customers as CSV: each chunk of lines made by the database in one statement (identities aggregated
there too), so the export only joins and writes them; byte for byte what Python's csv writer makes of the customers
`segment_store.customers` lists (a row the database cannot format exactly is made that way instead)."""

from __future__ import annotations

import csv
import io
from typing import Any, cast

from hub.history.db import Row, Tx
from hub.segments import segment_store
from hub.segments.criteria import Criteria, Cuts, Scorer, compile_where
from hub.segments.segment_store import FIELDS

COLUMNS = (*FIELDS, "identities")


def _csv(rows: list[list[Any]]) -> str:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue()


def header() -> str:
    return _csv([list(COLUMNS)])


def _quoted(dialect: str, column: str) -> str:
    """COLUMN (text) as the csv writer writes it: quoted, its quotes doubled, when it holds a comma, a quote or a line
    break (the excel dialect's QUOTE_MINIMAL)."""
    find, char = ("strpos", "chr") if dialect == "postgresql" else ("instr", "char")
    needs = " OR ".join(f"{find}({column}, {c}) > 0" for c in ("','", "'\"'", f"{char}(10)", f"{char}(13)"))
    return f"CASE WHEN {needs} THEN '\"' || replace({column}, '\"', '\"\"') || '\"' ELSE {column} END"


def _float(dialect: str, column: str) -> str:
    """COLUMN (a double) as Python's repr writes it, or NULL where the database's text could differ. Both databases
    write a double in plain digits from 1e-4 to below 1e15 (Python up to 1e16); PostgreSQL its shortest digits that
    read back as the same double (Python's too) but no ".0" on a whole number; SQLite 15 significant digits, which
    are the shortest when they read back as the same double (a sum like 0.1 + 0.2 needs 17: NULL)."""
    text = f"CAST({column} AS TEXT)"
    exact = (f"({column} = 0 OR (abs({column}) >= 0.0001 AND abs({column}) < 1e15)) "
             f"AND CAST({text} AS {'DOUBLE PRECISION' if dialect == 'postgresql' else 'REAL'}) = {column}")
    if dialect == "postgresql":
        text = f"CASE WHEN strpos({text}, '.') > 0 THEN {text} ELSE {text} || '.0' END"
    return f"CASE WHEN {exact} THEN {text} END"


def _cents(dialect: str, total: str, answers: str) -> str:
    """round(TOTAL / ANSWERS, 2) in hundredths, as Python rounds the double, or NULL where integers cannot tell it.
    TOTAL is a sum of whole scores: the double TOTAL / ANSWERS is within half a unit in the last place of the exact
    quotient, nearer than any other quotient of such integers lies to a half hundredth, so both round alike; except
    a quotient exactly halfway (2.675, 2.125), which the double may sit either side of: NULL."""
    whole = f"CAST({total} AS {'BIGINT' if dialect == 'postgresql' else 'INTEGER'})"
    halfway = f"((200 * {whole}) % {answers} = 0 AND ((200 * {whole}) / {answers}) % 2 = 1)"
    return (f"CASE WHEN {answers} > 0 AND {answers} < 1000000000 AND {total} >= 0 AND {total} = {whole} "
            f"AND NOT {halfway} THEN (200 * {whole} + {answers}) / (2 * {answers}) END")


def _average(cents: str, answers: str) -> str:
    """Hundredths as Python's repr writes the rounded average (4.0, 3.5, 3.05, 4.33); empty with no answers."""
    return (f"CASE WHEN {answers} = 0 THEN '' ELSE CAST({cents} / 100 AS TEXT) || '.' || CASE "
            f"WHEN {cents} % 100 = 0 THEN '0' WHEN {cents} % 10 = 0 THEN CAST({cents} % 100 / 10 AS TEXT) "
            f"WHEN {cents} % 100 < 10 THEN '0' || CAST({cents} % 100 AS TEXT) ELSE CAST({cents} % 100 AS TEXT) END END")


def _identities(dialect: str) -> str:
    """The customer's identities, kind:value, oldest first, separated by spaces."""
    if dialect == "postgresql":
        return ("(SELECT string_agg(i.kind || ':' || i.value, ' ' ORDER BY i.id) FROM identities i "
                "WHERE i.customer_id = s.customer_id)")
    # SQLite 3.40 has no ORDER BY inside an aggregate: it aggregates an ordered subquery, in its order.
    return ("(SELECT group_concat(x, ' ') FROM (SELECT i.kind || ':' || i.value AS x FROM identities i "
            "WHERE i.customer_id = s.customer_id ORDER BY i.id))")


def chunk(tx: Tx, criteria: Criteria, after: int, limit: int, bounds: Cuts) -> tuple[str, int | None]:
    """The CSV lines of up to LIMIT of the segment's customers after customer AFTER, in id order; and the next
    chunk's `after` (None: this was the last)."""
    rows = lines(tx, criteria, after, limit + 1, bounds)
    made: list[str | None] = [r["line"] for r in rows[:limit]]
    if None in made:
        made = _made_by_python(tx, criteria, bounds, made, [int(r["id"]) for r in rows[:limit]])
    return "".join(cast(list[str], made)), (int(rows[limit - 1]["id"]) if len(rows) > limit else None)


def lines(tx: Tx, criteria: Criteria, after: int, limit: int, bounds: Cuts) -> list[Row]:
    """One statement: `id` and `line` (NULL where the database cannot make it exactly) of up to LIMIT customers
    after customer AFTER, in id order."""
    d = tx.dialect
    scorer = Scorer(bounds, d)
    shown = [scorer.score("r"), scorer.score("f"), scorer.score("m"), scorer.group()]
    where, params = compile_where(tx, criteria, scorer)
    line = " || ',' || ".join([
        "CAST(c.id AS TEXT)", _quoted(d, "c.name"), "CAST(c.contacts AS TEXT)", _quoted(d, "c.last_contact_at"),
        "CAST(c.orders AS TEXT)", "c.order_value", _quoted(d, "c.last_order_at"), _average("c.cents", "c.answers"),
        "CAST(c.r AS TEXT)", "CAST(c.f AS TEXT)", "CAST(c.m AS TEXT)", "c.rfm_group", _quoted(d, "c.identities"),
    ]) + (" || chr(13) || chr(10)" if d == "postgresql" else " || char(13, 10)")
    # The chunk is materialized first, so each column (the identities' subquery above all) is computed once per row
    # however often the line names it.
    return tx.all(
        "WITH c AS MATERIALIZED (SELECT s.customer_id AS id, COALESCE(cu.name, '') AS name, s.contacts, "
        "COALESCE(s.last_contact_at, '') AS last_contact_at, s.orders, "
        f"{_float(d, 's.order_value')} AS order_value, COALESCE(s.last_order_at, '') AS last_order_at, "
        f"s.csat_answers AS answers, {_cents(d, 's.csat_total', 's.csat_answers')} AS cents, "
        f"{shown[0][0]} AS r, {shown[1][0]} AS f, {shown[2][0]} AS m, {shown[3][0]} AS rfm_group, "
        f"COALESCE({_identities(d)}, '') AS identities "
        "FROM customer_stats s LEFT JOIN customers cu ON cu.id = s.customer_id "
        f"WHERE {where} AND s.customer_id > ? ORDER BY s.customer_id LIMIT ?) "
        f"SELECT c.id, {line} AS line FROM c ORDER BY c.id",
        [*(p for _, ps in shown for p in ps), *params, after, limit],
    )


def _made_by_python(tx: Tx, criteria: Criteria, bounds: Cuts, made: list[str | None],
                    ids: list[int]) -> list[str | None]:
    """MADE with the lines the database left out (NULL) made by the csv writer (a customer who has left the segment
    since: no line)."""
    missing = [cid for cid, line in zip(ids, made, strict=True) if line is None]
    found = {c["customer_id"]: _csv([[*(c[k] for k in FIELDS), " ".join(c["identities"])]])
             for c in segment_store.customers_by_id(tx, criteria, missing, bounds)}
    return [found.get(cid, "") if line is None else line for cid, line in zip(ids, made, strict=True)]

"""A segment's customers as CSV: cut into chunks by id (one pass over the segment finds the edges), each chunk's
lines made by the database in one statement (identities aggregated there too), so the export only joins and writes
them; byte for byte what Python's csv writer makes of the customers `segment_store.customers` lists (a row the
database cannot format exactly is made that way instead)."""

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


def _float(dialect: str, column: str, text: str) -> str:
    """COLUMN (a double; TEXT: the database's text of it) as Python's repr writes it, or NULL where the database's
    text could differ. Both databases write a double in plain digits from 1e-4 to below 1e15 (Python up to 1e16);
    PostgreSQL its shortest digits that read back as the same double (Python's too) but no ".0" on a whole number;
    SQLite 15 significant digits, which are the shortest when they read back as the same double (a sum like
    0.1 + 0.2 needs 17: NULL)."""
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
    """The customer's identities, kind:value, oldest first, separated by spaces: an aggregate of an ordered subquery,
    taken in its order (SQLite 3.40 has no ORDER BY inside an aggregate; PostgreSQL 15's sorts each customer's few
    rows again, a third of the statement's time, where the index on (customer_id, id) already gives them in order)."""
    concat = "string_agg" if dialect == "postgresql" else "group_concat"
    return (f"(SELECT {concat}(x, ' ') FROM (SELECT i.kind || ':' || i.value AS x FROM identities i "
            "WHERE i.customer_id = s.customer_id ORDER BY i.id) o)")


def edges(tx: Tx, criteria: Criteria, every: int, bounds: Cuts) -> list[int]:
    """The id of every EVERY-th customer of the segment, in id order: the chunks' edges (chunk k holds the customers
    after edge k-1 up to edge k, the last one those after the last edge). One pass over the segment's ids."""
    where, params = compile_where(tx, criteria, Scorer(bounds, tx.dialect))
    rows = tx.all(f"SELECT id FROM (SELECT s.customer_id AS id, ROW_NUMBER() OVER (ORDER BY s.customer_id) AS n "
                  f"FROM customer_stats s WHERE {where}) e WHERE n % ? = 0 ORDER BY id", [*params, every])
    return [int(r["id"]) for r in rows]


def chunk(tx: Tx, criteria: Criteria, after: int, upto: int | None, bounds: Cuts) -> str:
    """The CSV lines of the segment's customers after customer AFTER up to UPTO (None: every one after), in id
    order."""
    rows = lines(tx, criteria, after, upto, bounds)
    made: list[str | None] = [r["line"] for r in rows]
    if None in made:
        made = _made_by_python(tx, criteria, bounds, made, [int(r["id"]) for r in rows])
    return "".join(cast(list[str], made))


def lines(tx: Tx, criteria: Criteria, after: int, upto: int | None, bounds: Cuts) -> list[Row]:
    """One statement: `id` and `line` (NULL where the database cannot make it exactly) of the customers after
    customer AFTER up to UPTO, in id order."""
    d = tx.dialect
    scorer = Scorer(bounds, d)
    shown = [scorer.score("r"), scorer.score("f"), scorer.score("m"), scorer.group()]
    where, params = compile_where(tx, criteria, scorer)
    upto_sql, upto_params = ("", []) if upto is None else (" AND s.customer_id <= ?", [upto])
    line = " || ',' || ".join([
        "CAST(c.id AS TEXT)", _quoted(d, "c.name"), "CAST(c.contacts AS TEXT)", _quoted(d, "c.last_contact_at"),
        "CAST(c.orders AS TEXT)", _float(d, "c.order_value", "c.order_text"), _quoted(d, "c.last_order_at"),
        _average("c.cents", "c.answers"),
        "CAST(c.r AS TEXT)", "CAST(c.f AS TEXT)", "CAST(c.m AS TEXT)", "c.rfm_group", _quoted(d, "c.identities"),
    ]) + (" || chr(13) || chr(10)" if d == "postgresql" else " || char(13, 10)")
    # The chunk is materialized first, so each column (the identities' subquery above all) is computed once per row
    # however often the line names it. The name and the identities are subqueries, computed for the chunk's rows
    # only: a join to customers was a merge join on PostgreSQL, which read every customer from the first one up to
    # the chunk's last, for every chunk.
    return tx.all(
        "WITH c AS MATERIALIZED (SELECT s.customer_id AS id, "
        "COALESCE((SELECT cu.name FROM customers cu WHERE cu.id = s.customer_id), '') AS name, s.contacts, "
        "COALESCE(s.last_contact_at, '') AS last_contact_at, s.orders, "
        "s.order_value, CAST(s.order_value AS TEXT) AS order_text, "
        "COALESCE(s.last_order_at, '') AS last_order_at, "
        f"s.csat_answers AS answers, {_cents(d, 's.csat_total', 's.csat_answers')} AS cents, "
        f"{shown[0][0]} AS r, {shown[1][0]} AS f, {shown[2][0]} AS m, {shown[3][0]} AS rfm_group, "
        f"COALESCE({_identities(d)}, '') AS identities "
        f"FROM customer_stats s WHERE {where} AND s.customer_id > ?{upto_sql}) "
        f"SELECT c.id, {line} AS line FROM c ORDER BY c.id",
        [*(p for _, ps in shown for p in ps), *params, after, *upto_params],
    )


def _made_by_python(tx: Tx, criteria: Criteria, bounds: Cuts, made: list[str | None],
                    ids: list[int]) -> list[str | None]:
    """MADE with the lines the database left out (NULL) made by the csv writer (a customer who has left the segment
    since: no line)."""
    missing = [cid for cid, line in zip(ids, made, strict=True) if line is None]
    found = {c["customer_id"]: _csv([[*(c[k] for k in FIELDS), " ".join(c["identities"])]])
             for c in segment_store.customers_by_id(tx, criteria, missing, bounds)}
    return [found.get(cid, "") if line is None else line for cid, line in zip(ids, made, strict=True)]

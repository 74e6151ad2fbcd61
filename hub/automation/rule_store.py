"""Automation rules in the hub's database: create, change, order, list."""

from __future__ import annotations

import json

from hub.automation.rules import Rule, RuleBody
from hub.history.db import Tx
from hub.history.store import NotFound

COLUMNS = ("id, name, event, position, enabled, conditions, actions, runs, last_run_at, created_at, updated_at, "
           "problem, problem_at")


def get(tx: Tx, rule_id: int) -> Rule:
    row = tx.one(f"SELECT {COLUMNS} FROM automation_rules WHERE id = ?", (rule_id,))
    if row is None:
        raise NotFound(f"automation rule {rule_id} does not exist")
    return Rule.from_row(row)


def listing(tx: Tx, event: str | None = None, enabled_only: bool = False) -> list[Rule]:
    where, params = [], []
    if event:
        where.append("event = ?")
        params.append(event)
    if enabled_only:
        where.append("enabled = 1")
    sql = f"SELECT {COLUMNS} FROM automation_rules"
    if where:
        sql += " WHERE " + " AND ".join(where)
    return [Rule.from_row(r) for r in tx.all(sql + " ORDER BY position, id", params)]


def _position(tx: Tx, body: RuleBody) -> int:
    if body.position is not None:
        return body.position
    row = tx.one("SELECT COALESCE(MAX(position), -1) + 1 AS p FROM automation_rules")
    return int(row["p"]) if row else 0


def _dump(body: RuleBody) -> tuple[str, str]:
    return (json.dumps([c.model_dump(exclude_none=True) for c in body.conditions]),
            json.dumps([a.model_dump(exclude_none=True) for a in body.actions]))


def create(tx: Tx, body: RuleBody, now: str) -> Rule:
    conditions, actions = _dump(body)
    row = tx.one(
        "INSERT INTO automation_rules (name, event, position, enabled, conditions, actions, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (body.name, body.event, _position(tx, body), int(body.enabled), conditions, actions, now, now),
    )
    assert row is not None
    return get(tx, int(row["id"]))


def replace(tx: Tx, rule_id: int, body: RuleBody, now: str) -> Rule:
    before = get(tx, rule_id)
    conditions, actions = _dump(body)
    position = before.position if body.position is None else body.position
    tx.exec(
        "UPDATE automation_rules SET name = ?, event = ?, position = ?, enabled = ?, conditions = ?, actions = ?, "
        "updated_at = ?, problem = NULL, problem_at = NULL WHERE id = ?",
        (body.name, body.event, position, int(body.enabled), conditions, actions, now, rule_id),
    )
    return get(tx, rule_id)


def flag(tx: Tx, rule_id: int, problem: str, now: str) -> None:
    """Keeps what RULE could not do (shown with the rule until it is saved again)."""
    tx.exec("UPDATE automation_rules SET problem = ?, problem_at = ? WHERE id = ?", (problem[:500], now, rule_id))


def delete(tx: Tx, rule_id: int) -> None:
    get(tx, rule_id)
    tx.exec("DELETE FROM automation_runs WHERE rule_id = ?", (rule_id,))
    tx.exec("DELETE FROM automation_rules WHERE id = ?", (rule_id,))

"""A store transaction that counts what runs through it: the statements (and the rows they wrote) a piece of the hub
costs, for the tests that bound them."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

from hub.history.db import Tx


class CountingTx:
    """Passes every call on to TX; counts the statements run and the rows exec() changed."""

    def __init__(self, tx: Tx) -> None:
        self.tx, self.dialect, self.for_update = tx, tx.dialect, tx.for_update
        self.statements = self.rows = 0

    def one(self, sql: str, params: Any = ()) -> Any:
        self.statements += 1
        return self.tx.one(sql, params)

    def all(self, sql: str, params: Any = ()) -> Any:
        self.statements += 1
        return self.tx.all(sql, params)

    def exec(self, sql: str, params: Any = ()) -> int:
        self.statements += 1
        n = self.tx.exec(sql, params)
        self.rows += max(n, 0)
        return n

    def script(self, sql: str) -> None:
        self.statements += 1
        self.tx.script(sql)

    def undoable(self) -> AbstractContextManager[None]:
        return self.tx.undoable()

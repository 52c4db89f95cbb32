"""The connection under the run store: WAL, migrations, transactions. Only store modules use it."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from agent.store.schema import MIGRATIONS


class StoreConnection:
    """One SQLite file in WAL mode; every write in a ``BEGIN IMMEDIATE`` transaction."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._reader: sqlite3.Connection | None = None
        self._migrate()

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
        self._db.close()

    def _migrate(self) -> None:
        current = self._db.execute("PRAGMA user_version").fetchone()[0]
        for number, script in enumerate(MIGRATIONS[current:], start=current + 1):
            with self._transaction():
                for statement in filter(str.strip, script.split(";")):
                    self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version={number}")

    @property
    def schema_version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE … COMMIT, rolled back on any exception."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _rows(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        return list(self._db.execute(sql, tuple(params)))

    def _rows_where(self, table: str, order_by: str, **equal: Any) -> list[sqlite3.Row]:
        """Rows of ``table`` whose columns equal the given values (a ``None`` value means no condition).

        Column conditions use the ``column__le`` suffix for ``<=``. Names come from the store's own code,
        never from user input; values are always bound parameters.
        """
        clauses, params = [], []
        for key, value in equal.items():
            if value is None:
                continue
            column, _, operator = key.partition("__")
            clauses.append(f"{column} {'<=' if operator == 'le' else '='} ?")
            params.append(value)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        return self._rows(f"SELECT * FROM {table}{where} ORDER BY {order_by}", params)

    def _scalar(self, sql: str, params: Iterable[Any] = ()) -> Any:
        row = self._db.execute(sql, tuple(params)).fetchone()
        return None if row is None else row[0]

    def query(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        """Read-only SQL over a second connection with ``PRAGMA query_only``: for tests and debugging.

        Product code must not call it: it asks the store a named question instead, and
        ``tests/agent/test_store_owns_sql.py`` fails on SQL anywhere outside ``agent/store/``.
        A write through here raises ``sqlite3.OperationalError``.
        """
        if self._reader is None:
            self._reader = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._reader.row_factory = sqlite3.Row
            self._reader.execute("PRAGMA query_only=ON")
        return list(self._reader.execute(sql, tuple(params)))

"""A journal's SQLite connection whose next COMMIT fails once, for the paths a failing disk
takes (a full disk, SQLite's own fsync failing) that no tmpfs here can make SQLite hit at
the one statement a test is about."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from printstation.agent.station.journal import Journal


@contextmanager
def commit_fails_once(journal: Journal, message: str, code: int | None = None) -> Iterator[None]:
    """Within the block, the journal's next COMMIT raises OperationalError(`message`), with
    `code` as its `sqlite_errorcode` (what SQLite reports); every other statement, and every
    COMMIT after it, goes to the real connection."""
    real = journal.store.db

    class CommitFailsOnce:
        failed = False

        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
            if sql == "COMMIT" and not self.failed:
                self.failed = True
                exc = sqlite3.OperationalError(message)
                if code is not None:
                    exc.sqlite_errorcode = code  # type: ignore[attr-defined]
                raise exc
            return real.execute(sql, *args)

    journal.store.db = CommitFailsOnce()  # type: ignore[assignment]
    try:
        yield
    finally:
        journal.store.db = real

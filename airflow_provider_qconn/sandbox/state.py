"""The sandbox's state: one SQLite database (a file for the demo, memory for tests) of JSON documents."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS mailboxes (id TEXT PRIMARY KEY, upn TEXT NOT NULL UNIQUE COLLATE NOCASE,
    doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS apps (client_id TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tokens (token TEXT PRIMARY KEY, kind TEXT NOT NULL, expires_at REAL NOT NULL,
    doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (id TEXT PRIMARY KEY, rest_id TEXT NOT NULL UNIQUE, mailbox_id TEXT NOT NULL,
    transaction_id TEXT, ical_uid TEXT NOT NULL, folder TEXT NOT NULL, seq INTEGER NOT NULL, doc TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_mailbox ON events (mailbox_id, folder, seq);
CREATE INDEX IF NOT EXISTS events_ical ON events (ical_uid);
CREATE TABLE IF NOT EXISTS spent_transaction_ids (mailbox_id TEXT NOT NULL, transaction_id TEXT NOT NULL,
    PRIMARY KEY (mailbox_id, transaction_id));
CREATE TABLE IF NOT EXISTS accounts (sid TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS contents (sid TEXT PRIMARY KEY, account_sid TEXT NOT NULL, seq INTEGER NOT NULL,
    doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS numbers (number TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS messages (sid TEXT PRIMARY KEY, account_sid TEXT NOT NULL, to_addr TEXT NOT NULL,
    from_addr TEXT NOT NULL, created_at REAL NOT NULL, seq INTEGER NOT NULL, doc TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS messages_account ON messages (account_sid, seq);
CREATE INDEX IF NOT EXISTS messages_to ON messages (account_sid, to_addr, seq);
CREATE INDEX IF NOT EXISTS messages_seq ON messages (seq);
CREATE TABLE IF NOT EXISTS faults (id INTEGER PRIMARY KEY AUTOINCREMENT, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS journal (id INTEGER PRIMARY KEY AUTOINCREMENT, doc TEXT NOT NULL);
"""

_TABLES = (
    "settings",
    "mailboxes",
    "apps",
    "tokens",
    "events",
    "spent_transaction_ids",
    "accounts",
    "contents",
    "numbers",
    "messages",
    "faults",
    "journal",
)


class State:
    """A small document store over SQLite; every method is safe to call from any thread."""

    def __init__(self, path: str = ":memory:") -> None:
        self.path = path
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.RLock()
        #: Settings read on every request, kept in memory when no other process can change them (a memory
        #: database); a file may be shared, so there every read goes to it.
        self._settings: dict[str, Any] | None = {} if path == ":memory:" else None
        if path != ":memory:":
            self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def execute(self, sql: str, params: tuple[Any, ...] | list[Any] | dict[str, Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement (positional ``?`` or named ``:name`` parameters) and return all its rows."""
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def transaction(self) -> _Transaction:
        """A context manager that holds the lock and wraps its statements in one SQLite transaction."""
        return _Transaction(self)

    def wipe(self) -> None:
        """Delete everything (the schema stays)."""
        with self.transaction():
            for table in _TABLES:
                self._db.execute(f"DELETE FROM {table}")
            self._db.execute("DELETE FROM sqlite_sequence")
            if self._settings is not None:
                self._settings.clear()

    # --- settings and the clock -------------------------------------------------------------------

    def get_setting(self, key: str, default: Any = None) -> Any:
        cache = self._settings
        if cache is not None and key in cache:
            text = cache[key]
        else:
            rows = self.execute("SELECT value FROM settings WHERE key = ?", (key,))
            text = rows[0][0] if rows else None
            if cache is not None:
                cache[key] = text
        return json.loads(text) if text is not None else default

    def set_setting(self, key: str, value: Any) -> None:
        text = json.dumps(value)
        with self._lock:
            self.execute(
                "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, text),
            )
            if self._settings is not None:
                self._settings[key] = text

    def now(self) -> float:
        """The sandbox clock: wall time plus the offset the control API may have advanced it by."""
        return time.time() + float(self.get_setting("clock_offset", 0.0))

    def advance_clock(self, seconds: float) -> float:
        offset = float(self.get_setting("clock_offset", 0.0)) + seconds
        self.set_setting("clock_offset", offset)
        return offset

    # --- generic documents --------------------------------------------------------------------------

    def docs(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> list[dict[str, Any]]:
        """Rows of one ``doc`` column, decoded."""
        return [json.loads(row[0]) for row in self.execute(sql, params)]

    def doc(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> dict[str, Any] | None:
        found = self.docs(sql, params)
        return found[0] if found else None

    def next_seq(self, table: str) -> int:
        rows = self.execute(f"SELECT COALESCE(MAX(seq), 0) + 1 FROM {table}")
        return int(rows[0][0])

    def iter_journal(self, since: int = 0) -> Iterator[dict[str, Any]]:
        for row_id, doc in self.execute("SELECT id, doc FROM journal WHERE id > ? ORDER BY id", (since,)):
            entry = json.loads(doc)
            entry["id"] = row_id
            text = entry.pop("response_json_text", None)
            if text is not None:
                try:
                    entry["response_json"] = json.loads(text)
                except ValueError:
                    entry["response_json"] = None
            yield entry


class _Transaction:
    def __init__(self, state: State) -> None:
        self._state = state

    def __enter__(self) -> sqlite3.Connection:
        self._state._lock.acquire()
        self._state._db.execute("BEGIN")
        return self._state._db

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            self._state._db.execute("ROLLBACK" if exc_type else "COMMIT")
        finally:
            self._state._lock.release()

"""The send ledger: what a WhatsApp send task has sent, kept durably so no later try sends it again.

One record per task instance (``qconn_whatsapp_ledger_<day>_<run>_<task>_<map index>``), written only by
that task instance, so concurrent runs and mapped instances never read-modify-write a shared record. A
record outlives the task's success: a retry, a clear or a task killed after ``execute()`` returned finds
every recipient it sent to and sends nothing again. Records of the task's other map indexes in the same run
are read too (never written), so a recipient that moved to another chunk when an upstream task was cleared
and re-chunked the list is not sent the same content twice (another map index may send the same person other
content: a reminder of another meeting). Records are pruned :data:`RETENTION` after their last write.

Phone numbers are personal data: a record keeps a keyed hash of each recipient and of what it was sent
(HMAC-SHA256 with the Twilio Auth Token, truncated), never the number or the variables, next to the message
SID or the times its send began. A record written under another Auth Token (the token was rotated between
tries) cannot be matched; its time window then makes every recipient of the new try be looked up at Twilio
before it is sent to.

The storage is a small :class:`LedgerStore`: :class:`VariableStore` (Airflow Variables: the metadata
database, so every worker sees it) in production, :class:`MemoryStore` in unit tests.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from airflow_provider_qconn.task_instance import TaskInstanceIdentity

log = logging.getLogger(__name__)

LEDGER_VERSION = 2
PREFIX = "qconn_whatsapp_ledger_"
#: How long a record is kept after its last write; clearing a task later than this sends again.
RETENTION = dt.timedelta(days=30)
#: At most this many old records are read (and deleted when expired) by one task.
PRUNE_BUDGET = 50
DESCRIPTION = "qconn: WhatsApp send ledger of one task instance (hashed; safe to delete once the run is over)"

#: (when the first send began, when the latest began) of a recipient whose outcome was never recorded.
Window = tuple[float, float]


class LedgerStore(Protocol):
    """Where ledger records live: string values under string keys."""

    def get(self, key: str) -> str | None: ...

    def set(self, key: str, value: str) -> None: ...

    def delete(self, key: str) -> None: ...

    def keys(self, prefix: str) -> Sequence[str] | None:
        """The keys starting with ``prefix``, or None when this store cannot list them."""
        ...


class MemoryStore:
    """A store in a dict (unit tests, and sends that need no durability such as a notifier's)."""

    def __init__(self, values: Mapping[str, str] | None = None) -> None:
        self.values: dict[str, str] = dict(values or {})

    def get(self, key: str) -> str | None:
        return self.values.get(key)

    def set(self, key: str, value: str) -> None:
        self.values[key] = value

    def delete(self, key: str) -> None:
        self.values.pop(key, None)

    def keys(self, prefix: str) -> list[str]:
        return sorted(key for key in self.values if key.startswith(prefix))


class VariableStore:
    """Airflow Variables through the Task SDK (each call is a round trip to the API server).

    Listing keys needs ``Variable.keys`` (Task SDK of Airflow 3.3); on Airflow 3.2 :meth:`keys` returns None,
    so neither other map indexes' records nor old records can be found there.
    """

    def get(self, key: str) -> str | None:
        from airflow.sdk import Variable

        return Variable.get(key, default=None)

    def set(self, key: str, value: str) -> None:
        from airflow.sdk import Variable

        Variable.set(key, value, description=DESCRIPTION)

    def delete(self, key: str) -> None:
        from airflow.sdk import Variable

        Variable.delete(key)

    def keys(self, prefix: str) -> Sequence[str] | None:
        from airflow.sdk import Variable

        lister = getattr(Variable, "keys", None)
        return list(lister(prefix=prefix)) if lister is not None else None


@dataclass(frozen=True)
class LedgerKey:
    """The record name of one task instance: the run's day (for pruning without reading), a hash of the DAG, run
    and task (no personal data; the same for every map index), and the map index."""

    day: str
    family: str
    map_index: int

    @classmethod
    def of(cls, identity: TaskInstanceIdentity) -> LedgerKey:
        run_after = identity.run_after.isoformat() if identity.run_after else ""
        run = hashlib.sha256("\x1f".join((identity.dag_id, identity.run_id, run_after)).encode()).hexdigest()
        task = hashlib.sha256(identity.task_id.encode()).hexdigest()
        day = identity.run_after.strftime("%Y%m%d") if identity.run_after else "00000000"
        return cls(day, f"{run[:20]}_{task[:8]}", identity.map_index)

    @property
    def family_prefix(self) -> str:
        """The prefix shared by the records of every map index of this task in this run."""
        return f"{PREFIX}{self.day}_{self.family}_"

    @property
    def name(self) -> str:
        return f"{self.family_prefix}{self.map_index}"


def _load(stored: str | None) -> dict[str, Any] | None:
    try:
        record = json.loads(stored) if stored else None
    except ValueError:
        return None
    return record if isinstance(record, dict) and record.get("version") == LEDGER_VERSION else None


def _widen(window: Window | None, other: Sequence[float] | None) -> Window | None:
    if not other:
        return window
    if window is None:
        return (float(other[0]), float(other[1]))
    return (min(window[0], float(other[0])), max(window[1], float(other[1])))


class SendLedger:
    """Sent and in-flight recipients of one task instance, plus what its sibling map indexes recorded.

    Every change is one write of this task instance's own record.
    """

    def __init__(self, secret: str, store: LedgerStore | None = None, key: LedgerKey | None = None) -> None:
        self._secret = secret.encode()
        self._store = store if store is not None else MemoryStore()
        self.key = key or LedgerKey("00000000", "detached", -1)
        self.key_id = self._hash("qconn-ledger-key", 12)
        #: A mapped instance's inputs can change with its map index (an upstream re-chunked the list, or one
        #: instance per meeting and the meetings changed), so it keys its entries by recipient and content; an
        #: unmapped one by recipient alone (its inputs can only change by being edited between tries).
        self._mapped = self.key.map_index >= 0
        #: entry key (hashed recipient, plus ``.`` and hashed content when mapped) -> [message SID, hashed content]
        #: recipient -> its keyed hash, computed once per recipient (a send hashes it several times)
        self._recipients: dict[str, str] = {}
        self._sent: dict[str, list[str]] = {}
        #: entry key -> [when the first send began, when the latest began, hashed content]
        self._in_flight: dict[str, list[Any]] = {}
        #: recipient -> the entry key its send was recorded in flight under
        self._entry_keys: dict[str, str] = {}
        #: What the other map indexes of this task in this run recorded (read-only here), by hashed recipient and
        #: hashed content: another map index may rightly send the same person other content (another meeting's
        #: reminder), so only the same content counts as already sent.
        self._sibling_sent: dict[tuple[str, str], str] = {}
        self._sibling_in_flight: dict[tuple[str, str], list[Any]] = {}
        #: When sends recorded under another Auth Token happened: such entries cannot be matched, so every
        #: recipient not otherwise known counts as in flight over this window.
        self.unreadable: Window | None = None
        self.created = time.time()
        self.window: Window | None = None
        self.completed = False
        self.writes = 0

    @classmethod
    def load(cls, secret: str, store: LedgerStore, key: LedgerKey) -> SendLedger:
        """This task instance's ledger, with the records of its sibling map indexes (where the store can list)."""
        ledger = cls(secret, store, key)
        own = store.get(key.name)
        ledger._absorb(_load(own), own=True, present=own is not None)
        for name in store.keys(key.family_prefix) or ():
            if name != key.name:
                stored = store.get(name)
                ledger._absorb(_load(stored), own=False, present=stored is not None)
        return ledger

    def _absorb(self, record: dict[str, Any] | None, own: bool, present: bool) -> None:
        if record is None:
            if present:
                log.warning("A send ledger record could not be read (another version?): it is ignored.")
            return
        readable = record.get("key_id") == self.key_id
        if not readable:
            self.unreadable = _widen(self.unreadable, record.get("window"))
        self.unreadable = _widen(self.unreadable, record.get("unreadable"))
        if own:
            self.created = float(record.get("created") or self.created)
            self.window = _widen(self.window, record.get("window"))
            if readable:
                self._sent.update(record.get("sent", {}))
                self._in_flight.update(record.get("in_flight", {}))
        elif readable:
            for key, (sid, content) in record.get("sent", {}).items():
                self._sibling_sent[(key.partition(".")[0], content)] = sid
            for key, entry in record.get("in_flight", {}).items():
                self._sibling_in_flight[(key.partition(".")[0], str(entry[2]) if len(entry) > 2 else "")] = entry

    def _hash(self, text: str, length: int) -> str:
        return hmac.new(self._secret, text.encode(), hashlib.sha256).hexdigest()[:length]

    def _recipient(self, recipient: str) -> str:
        hashed = self._recipients.get(recipient)
        if hashed is None:
            hashed = self._recipients[recipient] = self._hash(recipient, 24)
        return hashed

    def _entry(self, recipient: str, content: str) -> str:
        hashed = self._recipient(recipient)
        return f"{hashed}.{content}" if self._mapped else hashed

    def content(self, template_sid: str, variables: Mapping[str, str]) -> str:
        """A keyed hash of what a recipient is sent (template and variables), to tell a changed input apart."""
        return self._hash(template_sid + "\x1f" + json.dumps(dict(variables), sort_keys=True), 16)

    def sent_message(self, recipient: str, content: str) -> tuple[str, str] | None:
        """(message SID, hashed content) of what this task instance already sent to a recipient (whatever the
        content, unless it is a mapped instance), or what another map index sent it with this very ``content``;
        None when neither."""
        key = self._recipient(recipient)
        entry = self._sent.get(self._entry(recipient, content))
        if entry:
            return (entry[0], entry[1])
        sid = self._sibling_sent.get((key, content))
        return (sid, content) if sid else None

    def in_flight(self, recipient: str, content: str) -> Window | None:
        """When the first and the latest send to this recipient began (here, or with this ``content`` at another
        map index), if their outcome was never recorded (a crash in between, an answer that never came, or a
        record that cannot be read)."""
        key = self._recipient(recipient)
        entry = self._in_flight.get(self._entry(recipient, content)) or self._sibling_in_flight.get((key, content))
        window = (float(entry[0]), float(entry[1])) if entry else None
        return _widen(window, self.unreadable) if self.unreadable else window

    def begin(self, entries: Iterable[tuple[str, str]], started_at: float) -> None:
        """Record that sends to these (recipient, hashed content) are about to start: one write, before them."""
        if self.mark(entries, started_at):
            self._write()

    def record(self, sent: Mapping[str, str], finished: Iterable[str] = (), complete: bool = False) -> None:
        """Record sent messages (recipient -> SID) and sends that ended without one; ``complete`` marks the end
        of the task's sending (one write)."""
        self.note(sent, finished)
        self.completed = self.completed or complete
        self._write()

    def mark(self, entries: Iterable[tuple[str, str]], started_at: float) -> bool:
        """:meth:`begin` without the write (the caller writes before any of these sends starts); whether
        anything changed."""
        changed = False
        for recipient, content in entries:
            key = self._entry_keys[recipient] = self._entry(recipient, content)
            if key in self._sent:
                continue
            first = self._in_flight.get(key, [started_at])[0]
            self._in_flight[key] = [first, started_at, content]
            self.window = _widen(self.window, (first, started_at))
            changed = True
        return changed

    def note(self, sent: Mapping[str, str], finished: Iterable[str] = ()) -> None:
        """:meth:`record` without the write: the next write, whatever asked for it, carries these outcomes."""
        for recipient, sid in sent.items():
            key = self._entry_keys.get(recipient) or self._recipient(recipient)
            entry = self._in_flight.pop(key, None)
            self._sent[key] = [sid, str(entry[2]) if entry and len(entry) > 2 else ""]
        for recipient in finished:
            self._in_flight.pop(self._entry_keys.get(recipient) or self._recipient(recipient), None)

    async def awrite(self, complete: bool = False) -> None:
        """Write the record as it is now (``complete``: the task's sending is over) without blocking the event
        loop: the record is serialised here, the store is called in a thread."""
        self.completed = self.completed or complete
        text = self.to_json()
        self.writes += 1
        await asyncio.to_thread(self._store.set, self.key.name, text)

    def to_json(self) -> str:
        return json.dumps(
            {
                "version": LEDGER_VERSION,
                "key_id": self.key_id,
                "state": "complete" if self.completed else "sending",
                "created": self.created,
                "updated": time.time(),
                "window": list(self.window) if self.window else None,
                "unreadable": list(self.unreadable) if self.unreadable else None,
                "sent": self._sent,
                "in_flight": self._in_flight,
            },
            separators=(",", ":"),
        )

    def _write(self) -> None:
        self.writes += 1
        self._store.set(self.key.name, self.to_json())


def prune(store: LedgerStore, now: float | None = None, budget: int = PRUNE_BUDGET) -> int | None:
    """Delete records last written more than :data:`RETENTION` ago; the number deleted, or None when the store
    cannot list its keys (Airflow 3.2).

    A record's name carries the day its DAG run was due, and a record is written after that, so only records
    of runs older than the retention are read (at most ``budget`` of them).
    """
    now = time.time() if now is None else now
    names = store.keys(PREFIX)
    if names is None:
        return None
    horizon = now - RETENTION.total_seconds()
    oldest_day = dt.datetime.fromtimestamp(horizon, dt.timezone.utc).strftime("%Y%m%d")
    deleted = 0
    candidates = [name for name in names if name[len(PREFIX) : len(PREFIX) + 8] < oldest_day]
    for name in candidates[:budget]:
        stored = store.get(name)
        try:
            updated = float(json.loads(stored or "{}").get("updated", 0))
        except (ValueError, AttributeError, TypeError):
            updated = 0.0  # not a ledger record we can read, and its run is past the retention
        if updated < horizon:
            store.delete(name)
            deleted += 1
    return deleted

"""The send ledger: what a WhatsApp send task has already sent, kept durably across Airflow retries.

Phone numbers are personal data, so the ledger keeps a keyed hash of each recipient (HMAC-SHA256 with the
Twilio Auth Token, truncated), never the number, next to the message SID or the time its send began.
The storage is a pair of callables, so the hook can use it without knowing where it lives; the operators
store it in an Airflow Variable (which survives retries and lives in the metadata store, so any worker sees it).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

LEDGER_VERSION = 1


class SendLedger:
    """Sent and in-flight recipients of one task instance; every change is one write to the storage."""

    def __init__(
        self,
        secret: str,
        scope: str,
        state: Mapping[str, Any] | None = None,
        save: Callable[[str], None] | None = None,
    ) -> None:
        self._secret = secret.encode()
        self.scope = scope
        loaded = dict(state or {})
        if loaded.get("version") != LEDGER_VERSION or loaded.get("scope") != scope:
            loaded = {}
        self._sent: dict[str, str] = dict(loaded.get("sent", {}))
        #: hashed recipient -> [when the first send began, when the latest began]
        self._in_flight: dict[str, list[float]] = {k: list(v) for k, v in loaded.get("in_flight", {}).items()}
        self._save = save
        self.writes = 0

    @classmethod
    def from_json(
        cls, secret: str, scope: str, stored: str | None, save: Callable[[str], None] | None = None
    ) -> SendLedger:
        """A ledger from its stored JSON (None or unreadable: empty)."""
        try:
            state = json.loads(stored) if stored else None
        except ValueError:
            state = None
        return cls(secret, scope, state if isinstance(state, dict) else None, save)

    def _key(self, recipient: str) -> str:
        return hmac.new(self._secret, recipient.encode(), hashlib.sha256).hexdigest()[:24]

    def sent_message(self, recipient: str) -> str | None:
        """The SID of the message already sent to a recipient, if any."""
        return self._sent.get(self._key(recipient))

    def in_flight(self, recipient: str) -> tuple[float, float] | None:
        """When the first and the latest send to this recipient began, if their outcome was never recorded
        (a crash in between, or an answer that never came)."""
        window = self._in_flight.get(self._key(recipient))
        return (window[0], window[1]) if window else None

    def begin(self, recipients: Iterable[str], started_at: float) -> None:
        """Record that sends to these recipients are about to start (one write)."""
        changed = False
        for recipient in recipients:
            key = self._key(recipient)
            if key in self._sent:
                continue
            first = self._in_flight.get(key, [started_at])[0]
            self._in_flight[key] = [first, started_at]
            changed = True
        if changed:
            self._write()

    def record(self, sent: Mapping[str, str], finished: Iterable[str] = ()) -> None:
        """Record sent messages (recipient -> SID) and sends that ended without one (one write)."""
        for recipient, sid in sent.items():
            key = self._key(recipient)
            self._sent[key] = sid
            self._in_flight.pop(key, None)
        for recipient in finished:
            self._in_flight.pop(self._key(recipient), None)
        self._write()

    def to_json(self) -> str:
        return json.dumps(
            {"version": LEDGER_VERSION, "scope": self.scope, "sent": self._sent, "in_flight": self._in_flight},
            separators=(",", ":"),
        )

    def _write(self) -> None:
        self.writes += 1
        if self._save is not None:
            self._save(self.to_json())

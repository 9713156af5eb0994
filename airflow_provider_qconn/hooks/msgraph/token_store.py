"""The newest refresh token of a delegated connection, kept where every worker can read and write it.

Microsoft rotates a refresh token on each use and does not revoke the one that was used ("Refresh tokens replace
themselves with a fresh token upon every use. The Microsoft identity platform doesn't revoke old refresh tokens
when used to fetch new access tokens", https://learn.microsoft.com/entra/identity-platform/refresh-tokens). A
token lives 90 days after it was issued, so a deployment that keeps the newest one never has to sign in again, while
one that always starts from the token in its connection fails with AADSTS700082 once that token is 90 days old.

The connection itself may be an environment variable or live in a secrets backend, both read-only to a task, so
the newest token goes to a record of its own: the Airflow Variable ``qconn_msgraph_refresh_token__<conn id>``
(:class:`VariableTokenStore`; its name holds "token", so Airflow masks its value and hides it in the UI). The
record remembers which connection token it descends from (a digest, :func:`origin_of`): after a new sign-in
puts another token in the connection, the record no longer matches and the connection's token is used again.

Several tasks may redeem the same token at once on several workers: each gets its own new token, all of them
valid (the old ones are not revoked), and the last write wins. Nothing needs a lock. A record is written at most
once per :data:`PERSIST_INTERVAL` per credential (a task's redemptions are an hour apart at most), far inside
the 90 days.

The store is a small :class:`TokenStore`: :class:`VariableTokenStore` in production, :class:`MemoryTokenStore`
in unit tests and wherever nothing should be kept.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger(__name__)

PREFIX = "qconn_msgraph_refresh_token__"
#: A rotated token is written when the record is older than this (or does not match the connection).
PERSIST_INTERVAL = 3600.0
DESCRIPTION = (
    "qconn: the newest refresh token of an Outlook connection, kept by its tasks. Delete it to go back to the "
    "connection's own token; a new sign-in replaces it by itself."
)


class TokenStoreUnavailable(Exception):
    """The store cannot be read or written here (e.g. Variables outside a task); the message says why."""


class TokenStore(Protocol):
    """Where the newest refresh tokens live: string values under string keys."""

    def get(self, key: str) -> str | None:
        """The value, or None when there is none; raises TokenStoreUnavailable when it cannot be read."""
        ...

    def set(self, key: str, value: str) -> None:
        """Write the value; raises TokenStoreUnavailable when it cannot be written."""
        ...


class MemoryTokenStore:
    """A store in a dict: unit tests, and callers that must not keep anything."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def get(self, key: str) -> str | None:
        return self.values.get(key)

    def set(self, key: str, value: str) -> None:
        self.values[key] = value


class VariableTokenStore:
    """Airflow Variables through the Task SDK: the metadata database, so every worker sees the same record.

    In a task (and a trigger) both work, each call a round trip to the API server. Elsewhere the Task SDK reads
    what it can (the API server's connection test reads the metadata database; ``airflow connections test``
    only environment variables and secrets backends) and cannot write: :meth:`set` raises
    TokenStoreUnavailable and the caller goes on with the token it has.
    """

    def get(self, key: str) -> str | None:
        from airflow.sdk import Variable

        try:
            return Variable.get(key, default=None)
        except Exception as error:  # the Task SDK raises several kinds outside a task; none is ours to handle
            raise TokenStoreUnavailable(f"Variable {key!r} cannot be read here ({type(error).__name__})") from error

    def set(self, key: str, value: str) -> None:
        from airflow.sdk import Variable

        if not _in_task_context():
            raise TokenStoreUnavailable("Variables can only be written from a task or a trigger")
        try:
            Variable.set(key, value, description=DESCRIPTION)
        except Exception as error:
            raise TokenStoreUnavailable(f"Variable {key!r} cannot be written ({type(error).__name__})") from error


def _in_task_context() -> bool:
    """Whether the Task SDK can talk to a supervisor here (a task or a trigger), which writing a Variable needs."""
    from airflow.sdk.execution_time import task_runner

    return getattr(task_runner, "SUPERVISOR_COMMS", None) is not None


def key_of(conn_id: str) -> str:
    """The store key (the Variable's name) of a connection's newest refresh token."""
    return f"{PREFIX}{conn_id}"


def origin_of(connection_token: str) -> str:
    """A digest naming the connection token a record descends from (it reveals nothing of the token)."""
    return hashlib.sha256(connection_token.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class StoredToken:
    """One record: the newest refresh token, the digest of the connection token it descends from, when written."""

    refresh_token: str
    origin: str
    written_at: float

    def to_json(self) -> str:
        return json.dumps({"refresh_token": self.refresh_token, "origin": self.origin, "written_at": self.written_at})

    @classmethod
    def from_json(cls, value: str | None) -> StoredToken | None:
        """The record in ``value``, or None when it is absent or not a record (edited by hand, say)."""
        try:
            data = json.loads(value) if value else None
            if isinstance(data, dict) and data.get("refresh_token") and data.get("origin"):
                return cls(str(data["refresh_token"]), str(data["origin"]), float(data.get("written_at") or 0))
        except (TypeError, ValueError):
            return None
        return None


class NewestRefreshToken:
    """Which refresh token a credential redeems, and where the rotated ones go.

    :param conn_id: the connection (names the record).
    :param connection_token: the refresh token in the connection.
    :param store: where records live.
    :param mask: hides a token in logs (Airflow's secrets masker in production).
    :param clock: the time, for the write interval.
    """

    def __init__(
        self,
        conn_id: str,
        connection_token: str,
        store: TokenStore,
        mask: Callable[[str], None],
        *,
        interval: float = PERSIST_INTERVAL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.conn_id = conn_id
        self.key = key_of(conn_id)
        self._connection_token = connection_token
        self._origin = origin_of(connection_token)
        self._store = store
        self._mask = mask
        self._interval = interval
        self._clock = clock
        self._current: str | None = None
        self._written_at: float | None = None
        #: Where the token being redeemed came from: "the connection" or "Variable '<key>'".
        self.source = "the connection"

    @property
    def current(self) -> str:
        """The token to redeem: the stored one when it descends from the connection's, else the connection's
        (the store is read once, on first use)."""
        if self._current is None:
            self._current = self._connection_token
            try:
                stored = StoredToken.from_json(self._store.get(self.key))
            except TokenStoreUnavailable as error:
                log.info("Using the refresh token of connection %r: %s", self.conn_id, error)
                stored = None
            if stored is not None and stored.origin == self._origin:
                self._mask(stored.refresh_token)
                self._current = stored.refresh_token
                self._written_at = stored.written_at
                self.source = f"Variable {self.key!r}"
            elif stored is not None:
                log.info(
                    "Variable %r holds a token of an earlier sign-in: using the refresh token of connection %r",
                    self.key,
                    self.conn_id,
                )
        return self._current

    def fall_back(self) -> bool:
        """Go back to the connection's token after the stored one was refused; False when it is already in use.

        A record can be refused while its connection's token is not: a token store restored from a backup, an
        identity platform that forgot its tokens (a reset sandbox). The next rotation then replaces the record.
        """
        if self.source == "the connection":
            return False
        log.warning(
            "The refresh token kept in Variable %r was refused: trying the one in connection %r", self.key, self.conn_id
        )
        self._current, self._written_at, self.source = self._connection_token, None, "the connection"
        return True

    def rotated(self, token: str) -> None:
        """Remember the token a redemption returned, and write it when the record is due."""
        self._mask(token)
        if token == self.current:
            return
        self._current = token
        now = self._clock()
        if self._written_at is not None and now - self._written_at < self._interval:
            return
        try:
            self._store.set(self.key, StoredToken(token, self._origin, now).to_json())
        except TokenStoreUnavailable as error:
            log.info(
                "The newest refresh token of connection %r is not kept (%s); the one used stays valid",
                self.conn_id,
                error,
            )
            return
        self._written_at = now
        log.info("Kept the newest refresh token of connection %r in Variable %r", self.conn_id, self.key)

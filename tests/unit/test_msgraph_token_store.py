"""Which refresh token a delegated credential redeems, and when the rotated one is written, over a memory store."""

from __future__ import annotations

import json

from airflow_provider_qconn.hooks.msgraph.token_store import (
    PERSIST_INTERVAL,
    MemoryTokenStore,
    NewestRefreshToken,
    StoredToken,
    TokenStoreUnavailable,
    key_of,
    origin_of,
)

CONN = "outlook"
KEY = key_of(CONN)


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Broken:
    """A store that can be neither read nor written (Variables outside a task)."""

    def get(self, key: str) -> str | None:
        raise TokenStoreUnavailable("not here")

    def set(self, key: str, value: str) -> None:
        raise TokenStoreUnavailable("not here")


def keeper(store, connection_token: str = "rt-conn", clock: Clock | None = None, masked: list | None = None):
    return NewestRefreshToken(
        CONN,
        connection_token,
        store,
        (masked if masked is not None else []).append,
        clock=clock or Clock(),
    )


def record(store: MemoryTokenStore) -> StoredToken:
    return StoredToken.from_json(store.values[KEY])


def test_without_a_record_the_connections_token_is_redeemed_and_the_rotated_one_is_written():
    store = MemoryTokenStore()
    newest = keeper(store)
    assert (newest.current, newest.source) == ("rt-conn", "the connection")

    newest.rotated("rt-2")

    assert newest.current == "rt-2"
    assert record(store) == StoredToken("rt-2", origin_of("rt-conn"), 1_000_000.0)
    assert "rt-conn" not in store.values[KEY]  # the record names its origin by a digest only


def test_a_record_descending_from_the_connections_token_is_redeemed_in_its_place():
    store = MemoryTokenStore()
    store.values[KEY] = StoredToken("rt-7", origin_of("rt-conn"), 1.0).to_json()
    masked: list[str] = []
    newest = keeper(store, masked=masked)
    assert (newest.current, newest.source) == ("rt-7", f"Variable {KEY!r}")
    assert masked == ["rt-7"]


def test_a_record_of_an_earlier_sign_in_is_ignored_and_replaced():
    store = MemoryTokenStore()
    store.values[KEY] = StoredToken("rt-old-family", origin_of("rt-before-login"), 999_999.0).to_json()
    newest = keeper(store, connection_token="rt-after-login")
    assert newest.current == "rt-after-login"

    newest.rotated("rt-new-family")  # written although the old record is recent: it is of another sign-in
    assert record(store).refresh_token == "rt-new-family"
    assert record(store).origin == origin_of("rt-after-login")


def test_the_record_is_written_at_most_once_per_interval():
    store = MemoryTokenStore()
    clock = Clock()
    newest = keeper(store, clock=clock)
    newest.rotated("rt-2")
    clock.now += PERSIST_INTERVAL / 2
    newest.rotated("rt-3")
    assert (newest.current, record(store).refresh_token) == ("rt-3", "rt-2")  # rt-2 stays valid at Microsoft

    clock.now += PERSIST_INTERVAL / 2
    newest.rotated("rt-4")
    assert record(store) == StoredToken("rt-4", origin_of("rt-conn"), clock.now)


def test_a_recent_record_read_at_the_start_delays_the_next_write_too():
    store = MemoryTokenStore()
    clock = Clock()
    store.values[KEY] = StoredToken("rt-5", origin_of("rt-conn"), clock.now - 60).to_json()
    newest = keeper(store, clock=clock)
    newest.rotated("rt-6")
    assert record(store).refresh_token == "rt-5"
    clock.now += PERSIST_INTERVAL
    newest.rotated("rt-7")
    assert record(store).refresh_token == "rt-7"


def test_workers_that_refresh_at_once_each_write_a_valid_token_and_the_last_write_wins():
    store = MemoryTokenStore()
    store.values[KEY] = StoredToken("rt-5", origin_of("rt-conn"), 0.0).to_json()
    first, second = keeper(store), keeper(store)
    assert first.current == second.current == "rt-5"  # both redeem the same token: Microsoft answers both

    first.rotated("rt-6a")
    second.rotated("rt-6b")
    assert record(store).refresh_token == "rt-6b"


def test_a_store_that_cannot_be_read_or_written_leaves_the_connections_token_in_use():
    newest = keeper(Broken())
    assert newest.current == "rt-conn"
    newest.rotated("rt-2")
    assert newest.current == "rt-2"  # kept for this credential's life; the connection's token stays valid


def test_a_record_that_is_not_one_is_ignored():
    store = MemoryTokenStore()
    for value in ("not json", json.dumps(["a"]), json.dumps({"refresh_token": "x"}), json.dumps({"origin": "o"})):
        store.values[KEY] = value
        assert keeper(store).current == "rt-conn"


def test_every_rotated_token_is_masked_and_an_unchanged_one_is_not_written_again():
    store = MemoryTokenStore()
    masked: list[str] = []
    newest = keeper(store, masked=masked)
    newest.rotated("rt-conn")
    assert KEY not in store.values
    newest.rotated("rt-2")
    assert masked == ["rt-conn", "rt-2"]


def test_after_a_refused_record_the_connections_token_is_tried_once_and_its_successor_replaces_the_record():
    store = MemoryTokenStore()
    store.values[KEY] = StoredToken("rt-forgotten", origin_of("rt-conn"), 999_999.0).to_json()
    newest = keeper(store)
    assert newest.current == "rt-forgotten"

    assert newest.fall_back() is True
    assert (newest.current, newest.source) == ("rt-conn", "the connection")
    assert newest.fall_back() is False  # nothing else to try
    newest.rotated("rt-2")  # written at once, although the refused record was recent
    assert record(store).refresh_token == "rt-2"

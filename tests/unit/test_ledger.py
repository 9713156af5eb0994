"""The send ledger over its in-memory store: what a later try finds, whoever wrote it and whenever."""

from __future__ import annotations

import datetime as dt
import json

from airflow_provider_qconn.ledger import (
    PREFIX,
    RETENTION,
    LedgerKey,
    MemoryStore,
    SendLedger,
    prune,
)
from airflow_provider_qconn.task_instance import TaskInstanceIdentity

NUMBER = "+59899123456"
OTHER = "+59899123457"
RUN_AFTER = dt.datetime(2026, 3, 1, 9, 30, tzinfo=dt.timezone.utc)


def key(map_index: int = -1, task_id: str = "send", run_id: str = "manual__1", run_after=RUN_AFTER) -> LedgerKey:
    return LedgerKey.of(TaskInstanceIdentity("dag", task_id, run_id, map_index, run_after))


def sent_to(ledger: SendLedger, number: str, sid: str, content: str = "c") -> None:
    ledger.begin([(number, content)], 100.0)
    ledger.record({number: sid})


def test_a_record_holds_hashes_and_sids_never_numbers_or_variables():
    store = MemoryStore()
    ledger = SendLedger("secret", store, key())
    ledger.begin([(NUMBER, ledger.content("HX1", {"1": "Ana Pérez"}))], 100.0)
    ledger.record({NUMBER: "SM1"}, complete=True)
    [stored] = store.values.values()
    assert "59899123456" not in stored and "Ana" not in stored
    record = json.loads(stored)
    assert record["state"] == "complete" and [sid for sid, _ in record["sent"].values()] == ["SM1"]
    assert ledger.writes == 2


def test_a_later_try_finds_what_was_sent_and_with_what_content():
    store = MemoryStore()
    first = SendLedger("secret", store, key())
    content = first.content("HX1", {"1": "Ana"})
    sent_to(first, NUMBER, "SM1", content)
    later = SendLedger.load("secret", store, key())
    assert later.sent_message(NUMBER, content) == ("SM1", content)
    assert later.content("HX1", {"1": "Bruno"}) != content and later.content("HX2", {"1": "Ana"}) != content
    assert later.sent_message(OTHER, content) is None and later.in_flight(OTHER, content) is None


def test_in_flight_keeps_when_the_first_and_the_latest_send_began():
    ledger = SendLedger("secret")
    ledger.begin([(NUMBER, "c")], 100.0)
    ledger.begin([(NUMBER, "c")], 250.0)  # a later try sent again after finding nothing
    assert ledger.in_flight(NUMBER, "c") == (100.0, 250.0)
    ledger.record({}, finished=[NUMBER])
    assert ledger.in_flight(NUMBER, "c") is None
    assert ledger.writes == 3


def test_each_task_instance_writes_only_its_own_record():
    store = MemoryStore()
    sent_to(SendLedger.load("secret", store, key(0)), NUMBER, "SM1")
    sent_to(SendLedger.load("secret", store, key(1)), OTHER, "SM2")
    sent_to(SendLedger.load("secret", store, key(-1, run_id="manual__2")), NUMBER, "SM3")
    assert sorted(store.values) == sorted([key(0).name, key(1).name, key(-1, run_id="manual__2").name])
    assert all(name.startswith(PREFIX + "20260301_") for name in store.values)


def test_a_recipient_another_map_index_sent_the_same_content_is_found_after_a_re_chunk():
    store = MemoryStore()
    sent_to(SendLedger.load("secret", store, key(0)), NUMBER, "SM1")  # chunk 0 of the first expansion
    rechunked = SendLedger.load("secret", store, key(3))  # the number now falls in chunk 3
    assert rechunked.sent_message(NUMBER, "c") == ("SM1", "c")
    assert rechunked.sent_message(NUMBER, "another meeting") is None  # other content: a message of its own
    assert SendLedger.load("secret", store, key(3, task_id="other")).sent_message(NUMBER, "c") is None
    assert SendLedger.load("secret", store, key(3, run_id="manual__2")).sent_message(NUMBER, "c") is None


def test_another_map_index_left_in_flight_is_looked_up_not_resent():
    store = MemoryStore()
    SendLedger.load("secret", store, key(0)).begin([(NUMBER, "c")], 100.0)
    assert SendLedger.load("secret", store, key(1)).in_flight(NUMBER, "c") == (100.0, 100.0)
    assert SendLedger.load("secret", store, key(1)).in_flight(NUMBER, "other") is None


def test_a_run_re_created_under_the_same_id_starts_a_new_record():
    later = dt.datetime(2026, 3, 2, tzinfo=dt.timezone.utc)
    assert key(run_after=later).name != key().name


def test_a_rotated_auth_token_makes_every_recipient_a_look_up_over_the_old_window():
    store = MemoryStore()
    old = SendLedger("old-token", store, key())
    old.begin([(NUMBER, "c")], 100.0)
    old.begin([(OTHER, "c")], 160.0)
    old.record({NUMBER: "SM1", OTHER: "SM2"}, complete=True)
    rotated = SendLedger.load("new-token", store, key())
    assert rotated.sent_message(NUMBER, "c") is None
    assert rotated.in_flight(NUMBER, "c") == (100.0, 160.0) and rotated.in_flight("+59899000000", "c") == (100.0, 160.0)
    rotated.record({NUMBER: "SM1"})  # found at Twilio, recorded under the new token
    again = SendLedger.load("new-token", store, key())
    assert again.sent_message(NUMBER, "c") == ("SM1", "")
    assert again.in_flight(OTHER, "c") == (100.0, 160.0)  # the old window is remembered until every one is found


def test_an_unreadable_record_is_ignored():
    store = MemoryStore({key().name: "not json"})
    assert SendLedger.load("secret", store, key()).sent_message(NUMBER, "c") is None


def test_prune_deletes_only_records_past_the_retention():
    store = MemoryStore()
    now = dt.datetime(2026, 6, 1, tzinfo=dt.timezone.utc).timestamp()
    old_run, recent_run = key(run_id="old"), key(run_after=dt.datetime(2026, 5, 30, tzinfo=dt.timezone.utc))
    stale = now - RETENTION.total_seconds() - 60
    store.set(old_run.name, json.dumps({"version": 2, "updated": stale}))
    store.set(recent_run.name, json.dumps({"version": 2, "updated": now - 60}))
    backfilled = key(run_id="backfill")  # an old run's record written recently (a backfill, a late clear)
    store.set(backfilled.name, json.dumps({"version": 2, "updated": now - 3600}))
    store.set("unrelated", "x")
    assert prune(store, now) == 1
    assert sorted(store.values) == sorted([recent_run.name, backfilled.name, "unrelated"])


def test_prune_reads_at_most_its_budget():
    store = MemoryStore({key(run_id=f"r{i}").name: "{}" for i in range(5)})
    now = dt.datetime(2026, 6, 1, tzinfo=dt.timezone.utc).timestamp()
    assert prune(store, now, budget=2) == 2 and len(store.values) == 3


class NoListing(MemoryStore):
    """A store that cannot list its keys, as Airflow 3.2's Task SDK cannot."""

    def keys(self, prefix: str) -> None:
        return None


def test_without_listing_only_the_own_record_is_read_and_nothing_is_pruned():
    store = NoListing()
    sent_to(SendLedger.load("secret", store, key(0)), NUMBER, "SM1")
    assert SendLedger.load("secret", store, key(0)).sent_message(NUMBER, "c") == ("SM1", "c")
    assert SendLedger.load("secret", store, key(1)).sent_message(NUMBER, "c") is None
    assert prune(store) is None


def test_a_mapped_instance_whose_inputs_moved_sends_new_content_but_never_the_same_twice():
    store = MemoryStore()
    first = SendLedger.load("secret", store, key(0))
    sent_to(first, NUMBER, "SM1", "meeting A")  # map index 0 reminded NUMBER of meeting A
    # The list shifted: map index 0 now holds meeting B, map index 1 meeting A.
    now_b = SendLedger.load("secret", store, key(0))
    assert now_b.sent_message(NUMBER, "meeting B") is None
    sent_to(now_b, NUMBER, "SM2", "meeting B")
    now_a = SendLedger.load("secret", store, key(1))
    assert now_a.sent_message(NUMBER, "meeting A") == ("SM1", "meeting A")
    again = SendLedger.load("secret", store, key(0))
    assert again.sent_message(NUMBER, "meeting A") == ("SM1", "meeting A")
    assert again.sent_message(NUMBER, "meeting B") == ("SM2", "meeting B")


def test_an_unmapped_instance_keeps_what_it_sent_whatever_the_content_now():
    store = MemoryStore()
    sent_to(SendLedger.load("secret", store, key()), NUMBER, "SM1", "before")
    assert SendLedger.load("secret", store, key()).sent_message(NUMBER, "after") == ("SM1", "before")

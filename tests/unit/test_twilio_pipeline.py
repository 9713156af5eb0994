"""The send pipeline's ledger rules, with a send that stands for Twilio: marked before sent, recorded after,
never waiting on the ledger, a bounded wait between a mark and its send, and a bounded number of writes."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from airflow_provider_qconn.exceptions import QconnError
from airflow_provider_qconn.hooks.twilio_pipeline import LEDGER_BATCHES, SendPipeline, batch_size
from airflow_provider_qconn.ledger import LedgerKey, MemoryStore, SendLedger

KEY = LedgerKey("20260101", "run_task", -1)


def numbers(count: int) -> list[str]:
    return [f"+5989{index:07d}" for index in range(count)]


class WorkerDied(BaseException):
    """Stands for the worker being killed at a write: not an Exception, so nothing catches it."""


class TimedStore(MemoryStore):
    """A store whose writes take ``delay`` seconds; it dies at write ``dies_at``."""

    def __init__(self, delay: float = 0.0, dies_at: int | None = None) -> None:
        super().__init__()
        self.delay = delay
        self.dies_at = dies_at
        self.writes: list[str] = []

    def set(self, key: str, value: str) -> None:
        time.sleep(self.delay)
        if len(self.writes) + 1 == self.dies_at:
            raise WorkerDied
        self.writes.append(value)
        super().set(key, value)


class Twilio:
    """Sends that take ``latency`` seconds, each checking the rule: its recipient is marked in flight in the
    record a completed write left (``violations`` lists those that were not)."""

    def __init__(self, store: TimedStore, recipients: list[str], latency: float = 0.001) -> None:
        self.store = store
        self.recipients = recipients
        self.latency = latency
        self.sent: list[str] = []
        self.violations: list[str] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self._read: tuple[str | None, SendLedger | None] = (None, None)

    def written(self) -> SendLedger:
        """The ledger as the last completed write left it (read again only when it changed)."""
        value = self.store.values.get(KEY.name)
        if self._read[0] is not value:
            self._read = (value, SendLedger.load("secret", MemoryStore(self.store.values), KEY))
        return self._read[1]

    async def send(self, index: int) -> str:
        recipient = self.recipients[index]
        if self.written().in_flight(recipient, "c") is None:
            self.violations.append(recipient)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        await asyncio.sleep(self.latency)
        self.in_flight -= 1
        self.sent.append(recipient)
        return f"SM{index:032d}"


def pipeline(ledger: SendLedger, recipients: list[str], workers: int, **kwargs) -> SendPipeline[str]:
    return SendPipeline(
        ledger,
        [(recipient, "c") for recipient in recipients],
        lambda sid: (sid, True),
        workers=workers,
        batch=kwargs.pop("batch", batch_size(len(recipients), workers)),
        horizon=kwargs.pop("horizon", 60.0),
        **kwargs,
    )


def test_every_recipient_is_marked_by_a_completed_write_before_its_send_and_recorded_after():
    recipients = numbers(300)
    store = TimedStore(delay=0.005)
    ledger = SendLedger("secret", store, KEY)
    twilio = Twilio(store, recipients)
    sids = asyncio.run(pipeline(ledger, recipients, workers=10).run(twilio.send))
    assert twilio.violations == []
    assert sorted(twilio.sent) == sorted(recipients) and len(sids) == 300
    final = SendLedger.load("secret", store, KEY)
    assert [final.sent_message(r, "c")[0] for r in recipients] == sids
    assert all(final.in_flight(r, "c") is None for r in recipients)
    assert json.loads(store.values[KEY.name])["state"] == "complete"


def test_the_senders_keep_every_slot_busy_while_the_ledger_is_written():
    recipients = numbers(400)
    store = TimedStore(delay=0.02)  # each write takes as long as two rounds of sends
    twilio = Twilio(store, recipients, latency=0.01)
    in_flight_at_writes: list[int] = []
    write = store.set
    store.set = lambda key, value: (in_flight_at_writes.append(twilio.in_flight), write(key, value))[1]
    asyncio.run(pipeline(SendLedger("secret", store, KEY), recipients, workers=20).run(twilio.send))
    assert twilio.most_in_flight == 20 and twilio.violations == []
    assert in_flight_at_writes[0] == 0 and max(in_flight_at_writes[1:]) > 0  # later writes overlap the sends


def test_writes_stay_few_and_bytes_per_recipient_bounded_however_long_the_list():
    per_recipient = {}
    for count in (2_000, 6_000):  # both long enough for the most batches at 10 senders
        recipients = numbers(count)
        store = TimedStore()
        twilio = Twilio(store, recipients, latency=0)
        asyncio.run(pipeline(SendLedger("secret", store, KEY), recipients, workers=10).run(twilio.send))
        assert len(store.writes) <= LEDGER_BATCHES + 2  # the batches' marks and the last write
        per_recipient[count] = sum(map(len, store.writes)) / count
    # Linear: three times the recipients, the same bytes each (a fixed batch would write three times as many).
    assert per_recipient[6_000] < 1.2 * per_recipient[2_000]


def test_a_worker_killed_at_a_write_sent_only_what_completed_writes_marked():
    recipients = numbers(40)
    store = TimedStore(dies_at=3)
    twilio = Twilio(store, recipients, latency=0.005)
    with pytest.raises(WorkerDied):
        asyncio.run(pipeline(SendLedger("secret", store, KEY), recipients, workers=2, batch=8).run(twilio.send))
    assert twilio.violations == [] and 0 < len(twilio.sent) < 40
    left = SendLedger.load("secret", store, KEY)
    unaccounted = [r for r in twilio.sent if not (left.sent_message(r, "c") or left.in_flight(r, "c"))]
    assert unaccounted == []  # every message sent is either recorded or still in flight for the next try


def test_a_batch_waiting_longer_than_the_horizon_is_marked_again_before_it_is_sent():
    recipients = numbers(6)
    store = TimedStore()
    ledger = SendLedger("secret", store, KEY)
    twilio = Twilio(store, recipients, latency=0.05)
    asyncio.run(pipeline(ledger, recipients, workers=1, batch=6, horizon=0.12).run(twilio.send))
    marks = [json.loads(value)["in_flight"] for value in store.writes]
    assert len(store.writes) >= 3 and twilio.violations == []
    # The last recipient's latest mark came after the first mark of its batch.
    latest = [entry for record in marks for entry in record.values()]
    assert max(entry[1] for entry in latest) > min(entry[0] for entry in latest)


def test_a_ledger_slower_than_the_horizon_stops_the_send():
    recipients = numbers(3)
    store = TimedStore(delay=0.05)
    twilio = Twilio(store, recipients, latency=0.05)
    with pytest.raises(QconnError, match="could not be written"):
        asyncio.run(pipeline(SendLedger("secret", store, KEY), recipients, workers=1, horizon=0.04).run(twilio.send))

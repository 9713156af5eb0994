"""The send pipeline: ``max_concurrency`` sends in flight from the first recipient to the last, with the send
ledger written ahead of them and behind them, never in their way.

The rules it keeps (the exactly-once rules of :mod:`airflow_provider_qconn.ledger`):

- **Marked before sent.** Recipients are marked in flight in batches, one ledger write per batch; no send to a
  recipient starts before a write that marks it has completed. The next batch is written while the current
  one is being sent (as soon as its first recipient is taken), so the senders never wait for the ledger
  unless its writes are slower than a whole batch of sends.
- **Recorded after.** An outcome (a message SID, or a send that ended without one) goes into the ledger as it
  comes; the next write carries it: the next batch's, one every :data:`RECORD_SECONDS` while outcomes wait, and
  the last one, which marks the record complete. A task killed in between leaves those recipients in flight,
  and the next try looks them up at Twilio before sending.
- **A bounded wait.** A send starts at most ``horizon`` seconds after the write that last marked it. A
  recipient still waiting by then (sends slowed by throttling or timeouts) is marked again, with the others
  of its batch not yet started, before it is sent. So a later try can bound when an earlier one may have
  created a message: between its first mark and its last mark plus ``horizon`` plus one send's longest run.

Cost: the ledger record is one value, rewritten whole at each write, so batches grow with the number of
recipients (at least ``4 x max_concurrency``, at most :data:`LEDGER_BATCHES` of them): the number of writes and
the bytes written per recipient stay bounded however long the list is.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from airflow_provider_qconn.exceptions import QconnError
from airflow_provider_qconn.ledger import SendLedger

R = TypeVar("R")

#: At most this many batches are marked in flight, however many recipients there are.
LEDGER_BATCHES = 16
#: While outcomes wait to be written and no batch write carries them, they are written this often.
RECORD_SECONDS = 10.0


def batch_size(recipients: int, max_concurrency: int) -> int:
    """Recipients marked in flight by one ledger write: 4 rounds of the concurrency bound, or more so that
    there are at most :data:`LEDGER_BATCHES` writes of marks."""
    return max(4 * max_concurrency, math.ceil(recipients / LEDGER_BATCHES), 1)


@dataclass
class _Batch:
    start: int
    end: int
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    #: The time written into the ledger as this batch's latest mark.
    marked_at: float = 0.0


class SendPipeline(Generic[R]):
    """Runs ``send(index)`` for every entry, ``workers`` at a time, under the ledger rules of this module.

    :param ledger: the task instance's ledger (:meth:`SendLedger.mark`, :meth:`SendLedger.awrite`).
    :param entries: (recipient, hashed content) of each send, in order.
    :param outcome: what a send's result means for the ledger: ``(message SID or None, finished)``, where a
        send that ended without a SID is ``finished`` when nothing was created (not when the outcome is unknown).
    """

    def __init__(
        self,
        ledger: SendLedger,
        entries: Sequence[tuple[str, str]],
        outcome: Callable[[R], tuple[str | None, bool]],
        *,
        workers: int,
        batch: int,
        horizon: float,
        record_seconds: float = RECORD_SECONDS,
    ) -> None:
        self._ledger = ledger
        self._entries = entries
        self._outcome = outcome
        self._workers = max(1, min(workers, len(entries)))
        self._size = max(1, batch)
        self._horizon = horizon
        self._record_seconds = record_seconds
        self._batches = [
            _Batch(start, min(start + self._size, len(entries))) for start in range(0, len(entries), batch)
        ]
        self._started = bytearray(len(entries))
        self._claimed = 0
        #: Batches [0, _marked) have been (or are being) written as in flight.
        self._marked = 0
        self._remarks: set[int] = set()
        self._unwritten = 0
        self._last_write = time.monotonic()
        self._finished = False
        self._wake = asyncio.Event()

    async def run(self, send: Callable[[int], Awaitable[R]]) -> list[R]:
        """The results, in entry order; raises what a ledger write raised (no send starts after that)."""
        results: list[R | None] = [None] * len(self._entries)
        writer = asyncio.ensure_future(self._writer())
        workers = [asyncio.ensure_future(self._worker(send, results)) for _ in range(self._workers)]
        try:
            running = set(workers)
            while running:
                done, _ = await asyncio.wait([writer, *running], return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()  # a ledger write or a sender that raised ends the send here
                running -= done
            self._finished = True
            self._wake.set()
            await writer
        finally:
            for task in [writer, *workers]:
                task.cancel()
            await asyncio.gather(writer, *workers, return_exceptions=True)
        return results  # type: ignore[return-value]

    # --- the senders ------------------------------------------------------------------------------------------

    async def _worker(self, send: Callable[[int], Awaitable[R]], results: list[R | None]) -> None:
        while self._claimed < len(self._entries):
            index = self._claimed
            self._claimed += 1
            number = index // self._size
            batch = self._batches[number]
            if index == batch.start:
                self._wake.set()  # the next batch is due to be marked
            await batch.ready.wait()
            if time.time() - batch.marked_at > self._horizon:
                # Too long since this batch was marked: mark what of it has not started again, then send.
                batch.ready.clear()
                self._remarks.add(number)
                self._wake.set()
                await batch.ready.wait()
                if time.time() - batch.marked_at > self._horizon:
                    raise QconnError(
                        f"the send ledger could not be written within {self._horizon:.0f} s: sending stopped"
                    )
            self._started[index] = 1
            result = results[index] = await send(index)
            sid, finished = self._outcome(result)
            recipient = self._entries[index][0]
            if sid:
                self._ledger.note({recipient: sid})
            elif finished:
                self._ledger.note({}, finished=[recipient])
            self._unwritten += 1
            if time.monotonic() - self._last_write >= self._record_seconds:
                self._wake.set()

    # --- the ledger writer ------------------------------------------------------------------------------------

    def _due(self) -> range:
        """Batches to mark now: the one of the latest recipient taken (when not yet marked) and the next."""
        if not self._batches:
            return range(0)
        target = (self._claimed - 1) // self._size + 1 if self._claimed else 0
        return range(self._marked, min(target, len(self._batches) - 1) + 1)

    async def _writer(self) -> None:
        """The only code that writes the ledger: one write at a time, each carrying every change so far."""
        while True:
            due, remarks, finished = self._due(), sorted(self._remarks), self._finished
            waited = time.monotonic() - self._last_write
            record = self._unwritten and waited >= self._record_seconds
            if not (due or remarks or finished or record):
                self._wake.clear()
                timeout = max(0.0, self._record_seconds - waited) if self._unwritten else None
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)
                continue
            now = time.time()
            for number in due:
                batch = self._batches[number]
                self._ledger.mark(self._entries[batch.start : batch.end], now)
            for number in remarks:
                batch = self._batches[number]
                waiting = range(batch.start, batch.end)
                self._ledger.mark([self._entries[i] for i in waiting if not self._started[i]], now)
            self._remarks.clear()
            self._marked = max(self._marked, due.stop)
            self._unwritten = 0
            await self._ledger.awrite(complete=finished)
            self._last_write = time.monotonic()
            for number in [*due, *remarks]:
                self._batches[number].marked_at = now
                self._batches[number].ready.set()
            if finished:
                return

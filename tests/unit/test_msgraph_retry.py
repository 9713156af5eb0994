"""The Graph retry policy on its own: what is replayed, what is transient, how long it waits, when it stops."""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils

import httpx
import pytest

from airflow_provider_qconn.hooks.msgraph import retry


def answer(status: int, retry_after: str | None = None) -> httpx.Response:
    return httpx.Response(status, headers={"Retry-After": retry_after} if retry_after is not None else {})


@pytest.mark.parametrize(("status", "replayed", "transient"), [
    (429, True, True),
    (503, True, True),
    (504, True, True),
    (500, True, True),
    (502, True, True),
    (400, False, False),
    (401, False, False),
    (403, False, False),
    (404, False, False),
    (409, False, False),
])  # fmt: skip
def test_what_is_replayed_and_what_is_transient(status, replayed, transient):
    assert retry.replayable(status) is replayed
    assert retry.transient_status(status) is transient


def test_a_connection_failure_has_no_status_and_is_left_to_the_errors_class():
    assert retry.transient_status(None) is False


def test_retry_after_is_read_as_seconds_or_as_a_date():
    assert retry.retry_after(answer(429, "7")) == 7.0
    assert retry.retry_after(answer(429, "-3")) == 0.0
    assert retry.retry_after(answer(429)) is None
    assert retry.retry_after(answer(429, "soon")) is None
    later = email.utils.format_datetime(dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=30), usegmt=True)
    assert 25 <= retry.retry_after(answer(503, later)) <= 30
    assert retry.retry_after(answer(503, "Mon, 01 Jan 2001 00:00:00 GMT")) == 0.0


def test_the_delay_honours_retry_after_else_backs_off_with_jitter():
    assert retry.delay(1, answer(429, "3")) == 3.0
    assert retry.delay(3, answer(503, "0")) == 0.0
    for replay, ceiling in [(1, 2.0), (2, 4.0), (3, 8.0), (10, retry.MAX_DELAY)]:
        waits = {retry.delay(replay, answer(503)) for _ in range(200)}
        assert all(0.0 <= wait <= ceiling for wait in waits)
        assert len(waits) > 1  # jittered, not a fixed step


def run(outcomes: list[httpx.Response | Exception]) -> tuple[list[float], int, object]:
    """Drive attempts() over scripted outcomes; returns (waits, attempts made, result or raised error)."""
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    async def main() -> object:
        made = 0
        try:
            async for attempt in retry.attempts(sleep=sleep):
                with attempt:
                    outcome = outcomes[made]
                    made += 1
                    if isinstance(outcome, Exception):
                        raise outcome
                    if retry.replayable(outcome.status_code):
                        raise retry.Replay(outcome)
                    return made, outcome
        except Exception as error:
            return made, error
        raise AssertionError("attempts() ended without an outcome")

    made, result = asyncio.run(main())
    return waits, made, result


def test_a_throttled_request_is_replayed_as_retry_after_says():
    waits, made, result = run([answer(429, "1"), answer(503, "2"), answer(200)])
    assert (waits, made) == ([1.0, 2.0], 3)
    assert isinstance(result, httpx.Response) and result.status_code == 200


def test_replays_stop_after_the_attempt_limit_with_the_last_answer():
    waits, made, result = run([answer(504, "0")] * (retry.ATTEMPTS + 2))
    assert made == retry.ATTEMPTS and waits == [0.0] * (retry.ATTEMPTS - 1)
    assert isinstance(result, retry.Replay) and result.response.status_code == 504


def test_a_retry_after_longer_than_a_task_should_wait_is_left_to_a_later_try():
    waits, made, result = run([answer(429, str(int(retry.MAX_RETRY_AFTER) + 1)), answer(200)])
    assert (waits, made) == ([], 1)
    assert isinstance(result, retry.Replay)


def test_other_failures_are_not_replayed():
    refused = ValueError("not a replayable answer")
    waits, made, result = run([refused, answer(200)])
    assert (waits, made, result) == ([], 1, refused)
    waits, made, result = run([answer(400), answer(200)])
    assert (waits, made) == ([], 1) and result.status_code == 400

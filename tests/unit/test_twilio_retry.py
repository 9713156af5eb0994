"""The one retry rule for Twilio requests: what is transient, how long to wait, when to stop."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from twilio.base.exceptions import TwilioRestException

from airflow_provider_qconn.hooks.twilio_retry import Failure, RetryPolicy, classify, throttled_error


@pytest.mark.parametrize(
    ("error", "code", "throttled", "ambiguous"),
    [
        (throttled_error('{"code": 20429, "message": "Too Many Requests"}', "2"), 20429, True, False),
        (TwilioRestException(400, "/Messages.json", "Invalid 'To' Phone Number", code=21211), 21211, False, False),
        (TwilioRestException(401, "/Messages.json", "Authenticate", code=20003), 20003, False, False),
        (TwilioRestException(503, "/Messages.json", "Service Unavailable", code=20503), 20503, False, True),
        (TwilioRestException(500, "/Messages.json", "oops"), 500, False, True),
        (asyncio.TimeoutError(), "timeout", False, True),
        (ValueError("Expecting value"), "invalid_response", False, True),
        (aiohttp.ServerDisconnectedError(), "connection_error", False, True),
    ],
)
def test_every_failure_is_classified_once(error, code, throttled, ambiguous):
    failure = classify(error, timeout=5)
    assert (failure.code, failure.throttled, failure.ambiguous) == (code, throttled, ambiguous)
    assert failure.transient == (throttled or ambiguous)


def test_a_bug_is_not_a_request_failure():
    assert classify(KeyError("x"), timeout=5) is None


def test_retry_after_is_honoured_and_capped():
    policy = RetryPolicy(backoff=0.5, max_wait=30)
    assert policy.wait(1, Failure(429, "slow down", status=429, retry_after=3)) == 3
    assert policy.wait(1, Failure(429, "slow down", status=429, retry_after=900)) == 30
    assert throttled_error("not json", "soon").retry_after is None
    assert throttled_error("", "1.5").retry_after == 1.5


def test_backoff_has_full_jitter_and_doubles_up_to_the_cap():
    policy = RetryPolicy(backoff=0.5, max_wait=4)
    waits = [policy.wait(attempt, None) for attempt in (1, 2, 3, 4, 5, 6) for _ in range(50)]
    assert all(0 <= wait <= 4 for wait in waits)
    assert max(policy.wait(1, None) for _ in range(50)) <= 0.5
    assert policy.worst_case(timeout=1) == 6 * 1 + 0.5 + 1 + 2 + 4 + 4


def test_transient_failures_are_retried_until_the_attempts_run_out():
    calls = []

    async def flaky():
        calls.append(1)
        return Failure("timeout", "no answer", ambiguous=True)

    outcome = asyncio.run(RetryPolicy(attempts=3, backoff=0.001).run(flaky))
    assert isinstance(outcome, Failure) and outcome.code == "timeout" and len(calls) == 3


def test_a_final_failure_is_not_retried_and_a_result_ends_the_loop():
    outcomes = [Failure(429, "slow down", status=429, retry_after=0), "created"]

    async def throttled_then_created():
        return outcomes.pop(0)

    assert asyncio.run(RetryPolicy(attempts=3, backoff=0.001).run(throttled_then_created)) == "created"

    calls = []

    async def refused():
        calls.append(1)
        return Failure(21211, "Invalid 'To' Phone Number", status=400)

    assert asyncio.run(RetryPolicy(attempts=3, backoff=0.001).run(refused)).code == 21211 and len(calls) == 1

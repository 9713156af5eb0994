"""Injected faults against the bare SDK clients: what each retries on its own, and so what the hooks must handle.

How the hooks, operators, sensor and trigger come through each fault is the fault matrix (test_fault_matrix.py).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph.generated.models.date_time_time_zone import DateTimeTimeZone
from msgraph.generated.models.event import Event
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from twilio.base.exceptions import TwilioRestException

from airflow_provider_qconn.sandbox import seed
from airflow_provider_qconn.sandbox.server import Sandbox

pytestmark = [
    pytest.mark.filterwarnings("ignore:This class is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:GetQueryParameters is deprecated:DeprecationWarning"),
]

EVENTS_PATH = rf"^/v1\.0/users/{seed.ORGANIZER}/events$"


def _event(transaction_id: str) -> Event:
    return Event(
        subject="Retry me",
        start=DateTimeTimeZone(date_time="2030-05-06T10:00:00", time_zone="UTC"),
        end=DateTimeTimeZone(date_time="2030-05-06T10:30:00", time_zone="UTC"),
        transaction_id=transaction_id,
    )


async def test_graph_sdk_honours_429_retry_after(sandbox: Sandbox, app_graph: Any) -> None:
    sandbox.control.add_fault(service="graph", method="POST", path=EVENTS_PATH, status=429, retry_after=1, times=1)
    config = RequestConfiguration()
    config.headers.add("Prefer", 'IdType="ImmutableId"')

    started = time.monotonic()
    created = await app_graph.users.by_user_id(seed.ORGANIZER).events.post(
        _event(str(uuid.uuid4())), request_configuration=config
    )
    elapsed = time.monotonic() - started

    assert created.subject == "Retry me"
    posts = [e for e in sandbox.control.journal(service="graph") if e["method"] == "POST"]
    assert [e["status"] for e in posts] == [429, 201]
    assert posts[0]["response_headers"]["retry-after"] == "1"
    assert posts[0]["response_json"]["error"]["code"] == "TooManyRequests"
    assert "retry-attempt" not in posts[0]["headers"]
    assert posts[1]["headers"]["retry-attempt"] == "1"
    assert posts[1]["json"]["transactionId"] == posts[0]["json"]["transactionId"]
    assert elapsed >= 1.0  # it waited as told
    assert len(sandbox.control.mailbox_events(seed.ORGANIZER)) == 1


async def test_graph_persistent_throttling_surfaces_as_odataerror(sandbox: Sandbox, app_graph: Any) -> None:
    """After its retries the SDK raises ODataError 429 with the Retry-After header for the hook to read."""
    from kiota_http.middleware.options import RetryHandlerOption

    sandbox.control.add_fault(service="graph", method="GET", status=429, retry_after=1)
    config = RequestConfiguration(options=[RetryHandlerOption(delay=0, max_retries=1)])
    missing = "AAkALgAAAAAAHYQDEapmEc2byACqAC-EWg0AmissingAAA="

    with pytest.raises(ODataError) as caught:
        await app_graph.users.by_user_id(seed.ORGANIZER).events.by_event_id(missing).get(request_configuration=config)

    assert caught.value.response_status_code == 429
    assert caught.value.error.code == "TooManyRequests"
    assert caught.value.response_headers["retry-after"] == "1"
    assert len(sandbox.control.journal(service="graph")) == 2


def test_twilio_does_not_retry_a_503(sandbox: Sandbox, twilio_client: Any) -> None:
    """Observation for the TwilioHook: the twilio SDK never retries an HTTP error, it raises at once."""
    sid = twilio_client.messages.create(
        to="whatsapp:+59899123456", from_=f"whatsapp:{seed.WHATSAPP_SENDER}", body="hello"
    ).sid
    sandbox.control.add_fault(service="twilio", method="GET", path=r"/Messages/SM\w+\.json$", status=503, times=1)

    with pytest.raises(TwilioRestException) as caught:
        twilio_client.messages(sid).fetch()

    assert caught.value.status == 503
    assert caught.value.code == 20503
    assert caught.value.msg == "Unable to fetch record: Service Unavailable"
    fetches = [e for e in sandbox.control.journal(service="twilio") if e["method"] == "GET"]
    assert [e["status"] for e in fetches] == [503]
    assert twilio_client.messages(sid).fetch().sid == sid  # the next call is fine


async def test_graph_mailbox_concurrency_throttling_is_absorbed_by_the_retry_handler(
    sandbox: Sandbox, app_graph: Any
) -> None:
    """Beyond the per-mailbox cap Graph answers 429 ApplicationThrottled with Retry-After; the SDK waits it out."""
    import asyncio

    sandbox.control.settings(graph_mailbox_concurrency=1, latency={"graph": 0.2})
    events = app_graph.users.by_user_id(seed.ORGANIZER).events

    created = await asyncio.gather(*(events.post(_event(str(uuid.uuid4()))) for _ in range(3)))

    assert len({event.id for event in created}) == 3
    posts = sandbox.control.journal(service="graph")
    throttled = [e for e in posts if e["status"] == 429]
    assert throttled
    assert all(e["response_json"]["error"]["code"] == "ApplicationThrottled" for e in throttled)
    assert [e["status"] for e in posts].count(201) == 3
    assert len(sandbox.control.mailbox_events(seed.ORGANIZER)) == 3


async def test_graph_token_past_its_sandbox_lifetime_is_refused_not_refreshed(sandbox: Sandbox, app_graph: Any) -> None:
    """azure-identity caches tokens by the wall clock; once the (sandbox) clock passes their expiry Graph answers
    401 and neither kiota nor azure-identity fetch a new one (no CAE claims challenge, so no re-authentication).
    A DAG test that advances the sandbox clock by an hour or more needs a fresh credential afterwards."""
    events = app_graph.users.by_user_id(seed.ORGANIZER).events
    await events.post(_event(str(uuid.uuid4())))
    sandbox.control.advance_clock(3600)

    with pytest.raises(ODataError) as caught:
        await events.post(_event(str(uuid.uuid4())))

    assert caught.value.response_status_code == 401
    assert caught.value.error.code == "InvalidAuthenticationToken"
    assert caught.value.error.message == "Lifetime validation failed, the token is expired."
    token_posts = [e for e in sandbox.control.journal(service="identity") if e["method"] == "POST"]
    assert len(token_posts) == 1

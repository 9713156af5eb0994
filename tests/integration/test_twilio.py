"""twilio-python (sync and async), over real HTTP, against the sandbox's Messages and Content APIs."""

from __future__ import annotations

import json
import ssl
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from twilio.base.exceptions import TwilioRestException

from airflow_provider_qconn.sandbox import seed
from airflow_provider_qconn.sandbox.server import Sandbox

RECIPIENT = "whatsapp:+59899123456"
SENDER = f"whatsapp:{seed.WHATSAPP_SENDER}"


def send_reminder(client: Any, to: str = RECIPIENT, name: str = "Ana") -> Any:
    return client.messages.create(
        to=to,
        from_=SENDER,
        content_sid=seed.TEMPLATE_REMINDER,
        content_variables=json.dumps({"1": name}),
    )


def test_domains_have_their_own_base_urls(sandbox: Sandbox) -> None:
    """``client.api.base_url`` does not move ``client.content``: a hook must set both."""
    from twilio.rest import Client

    client = Client(seed.ACCOUNT_SID, seed.AUTH_TOKEN, environment={"TWILIO_NOTHING": "1"})
    assert client.api.base_url == "https://api.twilio.com"
    assert client.content.base_url == "https://content.twilio.com"
    client.api.base_url = sandbox.twilio_base_url
    assert client.content.base_url == "https://content.twilio.com"


def test_empty_environment_mapping_does_not_isolate_from_twilio_edge(monkeypatch: pytest.MonkeyPatch) -> None:
    from twilio.rest import Client

    monkeypatch.setenv("TWILIO_EDGE", "sydney")
    assert Client(seed.ACCOUNT_SID, seed.AUTH_TOKEN, environment={}).edge == "sydney"
    assert Client(seed.ACCOUNT_SID, seed.AUTH_TOKEN, environment={"TWILIO_NOTHING": "1"}).edge is None


def test_template_message_life_cycle(sandbox: Sandbox, twilio_client: Any) -> None:
    message = send_reminder(twilio_client)

    assert message.sid.startswith("SM") and len(message.sid) == 34
    assert message.status == "queued"
    assert message.to == RECIPIENT
    assert message.from_ == SENDER
    assert message.body == "Hello Ana, your appointment is on tomorrow."
    assert message.date_sent is None
    (stored,) = sandbox.control.messages()
    assert stored["content_sid"] == seed.TEMPLATE_REMINDER
    assert json.loads(stored["content_variables"]) == {"1": "Ana"}
    (create,) = sandbox.control.journal(service="twilio")
    assert create["path"] == f"/2010-04-01/Accounts/{seed.ACCOUNT_SID}/Messages.json"
    assert create["headers"]["content-type"] == "application/x-www-form-urlencoded"
    assert create["headers"]["authorization"] == "Basic ***"

    # Slow delays, so that the machine's own slowness never moves a status on: sending at 100 s, sent at
    # 200 s, delivered at 300 s, read at 400 s of sandbox time.
    sandbox.control.settings(status_delays={"sending": 100, "sent": 200, "delivered": 300, "read": 400})
    statuses = [twilio_client.messages(message.sid).fetch().status]
    for _ in range(4):
        sandbox.control.advance_clock(100)
        statuses.append(twilio_client.messages(message.sid).fetch().status)
    assert statuses == ["queued", "sending", "sent", "delivered", "read"]

    read = twilio_client.messages(message.sid).fetch()
    assert read.date_sent is not None
    assert read.error_code is None
    assert read.price == "-0.00500"


def test_list_messages_filtered_by_to(sandbox: Sandbox, twilio_client: Any) -> None:
    first = send_reminder(twilio_client, name="Ana")
    send_reminder(twilio_client, to="whatsapp:+59899654321", name="Bruno")
    second = send_reminder(twilio_client, name="Carla")

    listed = twilio_client.messages.list(to=RECIPIENT, from_=SENDER)

    assert [m.sid for m in listed] == [second.sid, first.sid]  # newest first
    lists = [e for e in sandbox.control.journal(service="twilio") if e["method"] == "GET"]
    assert "To=whatsapp%3A%2B59899123456" in lists[0]["query"]


def test_list_messages_pages_through_next_page_uri(sandbox: Sandbox, twilio_client: Any) -> None:
    sids = [send_reminder(twilio_client, name=str(n)).sid for n in range(5)]
    listed = twilio_client.messages.list(to=RECIPIENT, page_size=2)
    assert [m.sid for m in listed] == sids[::-1]
    assert len([e for e in sandbox.control.journal(service="twilio") if e["method"] == "GET"]) == 3


def test_content_templates(twilio_client: Any) -> None:
    template = twilio_client.content.v1.contents(seed.TEMPLATE_REMINDER).fetch()
    assert template.sid == seed.TEMPLATE_REMINDER
    assert template.friendly_name == "appointment_reminder"
    assert template.language == "en"
    assert template.types == {"twilio/text": {"body": "Hello {{1}}, your appointment is on {{2}}."}}
    assert template.variables == {"1": "Customer", "2": "tomorrow"}

    listed = twilio_client.content.v1.contents.list()
    assert [t.sid for t in listed] == [
        seed.TEMPLATE_REMINDER,
        seed.TEMPLATE_ORDER,
        seed.TEMPLATE_MEETING_REMINDER,
        seed.TEMPLATE_INTERVIEW,
        seed.TEMPLATE_ALERT,
    ]


def test_invalid_number_is_refused_with_21211(sandbox: Sandbox, twilio_client: Any) -> None:
    with pytest.raises(TwilioRestException) as caught:
        send_reminder(twilio_client, to=f"whatsapp:{seed.INVALID_NUMBER}")
    assert caught.value.status == 400
    assert caught.value.code == 21211
    assert caught.value.msg == f"Unable to create record: Invalid 'To' Phone Number: {seed.INVALID_NUMBER}"
    assert sandbox.control.messages() == []


def test_unknown_message_sid_is_20404(twilio_client: Any) -> None:
    with pytest.raises(TwilioRestException) as caught:
        twilio_client.messages("SM" + "0" * 32).fetch()
    assert caught.value.status == 404
    assert caught.value.code == 20404
    assert caught.value.msg.startswith("Unable to fetch record: The requested resource")


def test_unknown_content_sid_is_refused_with_21655(twilio_client: Any) -> None:
    with pytest.raises(TwilioRestException) as caught:
        twilio_client.messages.create(to=RECIPIENT, from_=SENDER, content_sid="HX" + "0" * 32)
    assert caught.value.code == 21655


def test_wrong_auth_token_is_20003(twilio_factory: Any) -> None:
    with pytest.raises(TwilioRestException) as caught:
        send_reminder(twilio_factory(auth_token="0" * 32))
    assert caught.value.status == 401
    assert caught.value.code == 20003


def test_failed_number_ends_failed_with_63016(sandbox: Sandbox, twilio_client: Any) -> None:
    message = send_reminder(twilio_client, to=f"whatsapp:{seed.FAILED_NUMBER}")
    assert message.status == "queued"

    sandbox.control.advance_clock(10)
    failed = twilio_client.messages(message.sid).fetch()

    assert failed.status == "failed"
    assert failed.error_code == 63016
    assert failed.error_message.startswith("Failed to send freeform message")


def test_concurrency_cap_answers_429_20429(sandbox: Sandbox, twilio_client: Any) -> None:
    sandbox.control.settings(twilio_max_concurrency=2, latency={"twilio": 0.3})
    barrier = threading.Barrier(6)

    def create(index: int) -> str:
        barrier.wait()
        try:
            return send_reminder(twilio_client, name=str(index)).status
        except TwilioRestException as error:
            return f"{error.status}/{error.code}"

    with ThreadPoolExecutor(max_workers=6) as pool:
        outcomes = list(pool.map(create, range(6)))

    throttled = [o for o in outcomes if o == "429/20429"]
    assert throttled, outcomes
    assert outcomes.count("queued") >= 2
    assert len(throttled) + outcomes.count("queued") == 6
    assert len(sandbox.control.messages()) == outcomes.count("queued")


def test_ca_bundle_from_the_environment_is_enough_for_a_default_client(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What DAG authors get from ``sandbox_env``: no CA set on the client, REQUESTS_CA_BUNDLE does it."""
    from twilio.rest import Client

    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(sandbox.bundle_path))
    client = Client(seed.ACCOUNT_SID, seed.AUTH_TOKEN, environment={"TWILIO_NOTHING": "1"})
    client.api.base_url = sandbox.twilio_base_url
    assert send_reminder(client).status == "queued"
    client.http_client.session.close()


@pytest.mark.filterwarnings("ignore:.*BasicAuth is deprecated:DeprecationWarning")
@pytest.mark.filterwarnings("ignore:The 'auth' parameter is deprecated:DeprecationWarning")
async def test_async_client_sends_a_message(sandbox: Sandbox, ca: str) -> None:
    import aiohttp
    from twilio.http.async_http_client import AsyncTwilioHttpClient
    from twilio.rest import Client

    async with AsyncTwilioHttpClient() as http_client:
        # aiohttp builds its default SSL context at import time: give the session the CA explicitly.
        await http_client.session.close()
        http_client.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=ssl.create_default_context(cafile=ca))
        )
        client = Client(seed.ACCOUNT_SID, seed.AUTH_TOKEN, environment={"TWILIO_NOTHING": "1"}, http_client=http_client)
        client.api.base_url = sandbox.twilio_base_url
        message = await client.messages.create_async(
            to=RECIPIENT,
            from_=SENDER,
            content_sid=seed.TEMPLATE_REMINDER,
            content_variables=json.dumps({"1": "Ana"}),
        )
        fetched = await client.messages(message.sid).fetch_async()

    assert message.status == "queued"
    assert fetched.body == "Hello Ana, your appointment is on tomorrow."
    assert http_client.session.closed
    assert [m["sid"] for m in sandbox.control.messages()] == [message.sid]

"""The sandbox's Twilio Messages and Content APIs against Twilio's OpenAPI descriptions (``specs/twilio``).

Successful responses are validated against the contracts with every declared property required (Twilio sends
each field, ``null`` when empty). Twilio's contracts describe no error response, so errors are checked against
the error shape Twilio documents (``validation.TWILIO_ERROR_SCHEMA``), and the check fails the day a contract
starts describing them.
"""

from __future__ import annotations

import email.utils
import json
import ssl
import urllib.parse
from collections.abc import Callable, Iterator

import httpx
import pytest

from airflow_provider_qconn.sandbox import seed
from airflow_provider_qconn.sandbox.server import Sandbox
from tests.contracts.validation import Deviation, api_exchanges, check_exchange, check_journal

#: Places where the sandbox follows Twilio's documentation rather than its contracts: none so far.
KNOWN_DEVIATIONS: dict[str, Deviation] = {}

MESSAGES = f"/2010-04-01/Accounts/{seed.ACCOUNT_SID}/Messages.json"
SENDER = f"whatsapp:{seed.WHATSAPP_SENDER}"
CUSTOMER = "whatsapp:+31612345678"
UNKNOWN_TEMPLATE = "HX" + "0" * 32


@pytest.fixture
def twilio(sandbox: Sandbox) -> Iterator[httpx.Client]:
    """The sandbox as Twilio's API host, with the seeded account's Basic credentials."""
    verify = ssl.create_default_context(cafile=str(sandbox.ca_path))
    with httpx.Client(
        base_url=sandbox.url, verify=verify, auth=(seed.ACCOUNT_SID, seed.AUTH_TOKEN), timeout=10
    ) as client:
        yield client


def send_template(twilio: httpx.Client, to: str = CUSTOMER, **fields: str) -> dict[str, object]:
    """Send the seeded reminder template as the provider does: From, To, ContentSid, ContentVariables."""
    form = {
        "To": to,
        "From": SENDER,
        "ContentSid": seed.TEMPLATE_REMINDER,
        "ContentVariables": json.dumps({"1": "Ada", "2": "12 March"}),
        **fields,
    }
    response = twilio.post(MESSAGES, data=form)
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_create_message(sandbox: Sandbox, twilio: httpx.Client) -> None:
    send_template(twilio)
    send_template(twilio, StatusCallback="https://example.com/status", ValidityPeriod="600")
    via_service = twilio.post(
        MESSAGES,
        data={
            "To": CUSTOMER,
            "MessagingServiceSid": seed.MESSAGING_SERVICE_SID,
            "ContentSid": seed.TEMPLATE_ORDER,
            "ContentVariables": json.dumps({"name": "Ada", "order_id": "42", "status": "shipped"}),
        },
    )
    assert via_service.json()["status"] == "accepted"
    free_text = twilio.post(MESSAGES, data={"To": CUSTOMER, "From": SENDER, "Body": "Your table is ready."})
    assert free_text.status_code == 201

    assert [x.status for x in api_exchanges(sandbox.control.journal())] == [201] * 4
    assert check_journal(sandbox.control.journal(), KNOWN_DEVIATIONS) == set()


def test_fetch_message_as_its_status_advances(sandbox: Sandbox, twilio: httpx.Client) -> None:
    sandbox.control.settings(status_delays={"sending": 50, "sent": 100, "delivered": 200, "read": 400})
    recipients = [CUSTOMER, f"whatsapp:{seed.FAILED_NUMBER}", f"whatsapp:{seed.UNDELIVERED_NUMBER}"]
    sids = [send_template(twilio, to)["sid"] for to in recipients]
    seen = set()
    for advance in (0, 75, 75, 100, 250):
        sandbox.control.advance_clock(advance)
        for sid in sids:
            response = twilio.get(f"/2010-04-01/Accounts/{seed.ACCOUNT_SID}/Messages/{sid}.json")
            seen.add(response.json()["status"])
    assert seen == {"queued", "sending", "sent", "delivered", "read", "failed", "undelivered"}

    assert check_journal(sandbox.control.journal(), KNOWN_DEVIATIONS) == set()


def test_list_messages_with_filters_and_paging(sandbox: Sandbox, twilio: httpx.Client) -> None:
    for to in (CUSTOMER, CUSTOMER, "whatsapp:+447700900123"):
        send_template(twilio, to)
    sandbox.control.advance_clock(5)
    everything = twilio.get(MESSAGES).json()
    assert len(everything["messages"]) == 3
    page = twilio.get(MESSAGES, params={"To": CUSTOMER, "From": SENDER, "PageSize": 1}).json()
    pages = 1
    while page["next_page_uri"]:
        page = twilio.get(page["next_page_uri"]).json()
        pages += 1
    assert pages == 2
    sent = email.utils.parsedate_to_datetime(everything["messages"][0]["date_sent"])
    day = sent.strftime("%Y-%m-%dT00:00:00Z")  # twilio-python sends DateSent filters as ISO 8601 date-times
    for name, value, count in [
        ("DateSent", day, 3),
        ("DateSent<", "2999-01-01T00:00:00Z", 3),
        ("DateSent>", "2999-01-01T00:00:00Z", 0),
    ]:
        assert len(twilio.get(MESSAGES, params={name: value}).json()["messages"]) == count
    twilio.get(MESSAGES, params={"PageSize": 2, "Page": 0})

    assert check_journal(sandbox.control.journal(), KNOWN_DEVIATIONS) == set()


def test_fetch_and_list_content(sandbox: Sandbox, twilio: httpx.Client) -> None:
    templates = [
        seed.TEMPLATE_REMINDER,
        seed.TEMPLATE_ORDER,
        seed.TEMPLATE_MEETING_REMINDER,
        seed.TEMPLATE_INTERVIEW,
        seed.TEMPLATE_ALERT,
    ]
    for sid in templates:
        assert twilio.get(f"/v1/Content/{sid}").json()["sid"] == sid
    listed = twilio.get("/v1/Content").json()
    assert [c["sid"] for c in listed["contents"]] == templates
    first = twilio.get("/v1/Content", params={"PageSize": 1}).json()
    following = urllib.parse.urlsplit(first["meta"]["next_page_url"])
    second = twilio.get(f"{following.path}?{following.query}").json()
    assert [c["sid"] for c in second["contents"]] == [seed.TEMPLATE_ORDER]

    assert check_journal(sandbox.control.journal(), KNOWN_DEVIATIONS) == set()


# --- errors ------------------------------------------------------------------------------------------------


def _fault(status: int) -> Callable[[Sandbox, httpx.Client], httpx.Response]:
    def call(sandbox: Sandbox, twilio: httpx.Client) -> httpx.Response:
        sandbox.control.add_fault(service="twilio", status=status, times=1)
        return twilio.post(MESSAGES, data={"To": CUSTOMER, "From": SENDER, "Body": "Hello"})

    return call


def _create(**form: str) -> Callable[[Sandbox, httpx.Client], httpx.Response]:
    return lambda sandbox, twilio: twilio.post(MESSAGES, data=form)


_TEMPLATE = {"From": SENDER, "ContentSid": seed.TEMPLATE_REMINDER}
_BAD_AUTH = (seed.ACCOUNT_SID, "0" * 32)

#: name -> (call, HTTP status, Twilio error code, whether the request itself conforms to the contract)
ERROR_CASES: dict[str, tuple[Callable[[Sandbox, httpx.Client], httpx.Response], int, int, bool]] = {
    "invalid-to": (_create(To=f"whatsapp:{seed.INVALID_NUMBER}", **_TEMPLATE), 400, 21211, True),
    "missing-to": (_create(**_TEMPLATE), 400, 21604, False),
    "missing-from": (_create(To=CUSTOMER, ContentSid=seed.TEMPLATE_REMINDER), 400, 21603, True),
    "unknown-template": (_create(To=CUSTOMER, From=SENDER, ContentSid=UNKNOWN_TEMPLATE), 400, 21655, True),
    "bad-content-variables": (_create(To=CUSTOMER, ContentVariables="{'1': Ada}", **_TEMPLATE), 400, 21656, True),
    "channel-mismatch": (_create(To="+31612345678", **_TEMPLATE), 400, 21910, True),
    "not-a-sender": (_create(To=CUSTOMER, From="whatsapp:+14155550100", Body="Hi"), 400, 63007, True),
    "nothing-to-send": (_create(To=CUSTOMER, From=SENDER), 400, 21619, True),
    "unknown-messaging-service": (
        _create(To=CUSTOMER, MessagingServiceSid="MG" + "0" * 32, Body="Hi"),
        400,
        21701,
        True,
    ),
    "fetch-unknown-message": (
        lambda s, t: t.get(f"/2010-04-01/Accounts/{seed.ACCOUNT_SID}/Messages/SM{'0' * 32}.json"),
        404,
        20404,
        True,
    ),
    "list-with-bad-page-size": (lambda s, t: t.get(MESSAGES, params={"PageSize": "many"}), 400, 20001, False),
    "list-with-page-size-over-1000": (lambda s, t: t.get(MESSAGES, params={"PageSize": 1001}), 400, 20001, False),
    "list-page-past-the-first-without-token": (lambda s, t: t.get(MESSAGES, params={"Page": 1}), 400, 70002, True),
    "list-with-bad-page-token": (lambda s, t: t.get(MESSAGES, params={"PageToken": "nonsense"}), 400, 20001, True),
    "wrong-auth-token": (lambda s, t: t.get(MESSAGES, auth=_BAD_AUTH), 401, 20003, True),
    "no-credentials": (
        lambda s, t: httpx.get(f"{s.url}{MESSAGES}", verify=ssl.create_default_context(cafile=str(s.ca_path))),
        401,
        20003,
        False,
    ),
    "fetch-unknown-content": (lambda s, t: t.get(f"/v1/Content/{UNKNOWN_TEMPLATE}"), 404, 20404, True),
    "list-content-with-wrong-auth-token": (lambda s, t: t.get("/v1/Content", auth=_BAD_AUTH), 401, 20003, True),
    "list-content-with-bad-page": (lambda s, t: t.get("/v1/Content", params={"Page": "last"}), 400, 20001, False),
    "throttled": (_fault(429), 429, 20429, True),
    "unavailable": (_fault(503), 503, 20503, True),
}


@pytest.mark.parametrize("case", ERROR_CASES)
def test_error_responses_have_twilios_error_shape(case: str, sandbox: Sandbox, twilio: httpx.Client) -> None:
    call, status, code, request_valid = ERROR_CASES[case]
    response = call(sandbox, twilio)
    assert (response.status_code, response.json()["code"]) == (status, code)

    (failed,) = api_exchanges(sandbox.control.journal())
    assert check_exchange(failed, KNOWN_DEVIATIONS, request_valid=request_valid) == set()

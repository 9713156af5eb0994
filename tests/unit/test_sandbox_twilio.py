"""Twilio Messages/Content behaviour of the sandbox, in process."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from airflow_provider_qconn.sandbox import seed
from airflow_provider_qconn.sandbox.app import create_app
from tests.unit.sandbox_client import TestClient

AUTH = (seed.ACCOUNT_SID, seed.AUTH_TOKEN)
MESSAGES = f"/2010-04-01/Accounts/{seed.ACCOUNT_SID}/Messages.json"
SENDER = f"whatsapp:{seed.WHATSAPP_SENDER}"


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(create_app()) as test_client:
        yield test_client


def send(client: TestClient, to: str = "whatsapp:+59899123456", **fields) -> tuple[int, dict]:
    data = {"To": to, "From": SENDER, "ContentSid": seed.TEMPLATE_REMINDER, **fields}
    response = client.post(MESSAGES, auth=AUTH, data=data)
    return response.status_code, response.json()


def status_of(client: TestClient, sid: str) -> dict:
    return client.get(f"/2010-04-01/Accounts/{seed.ACCOUNT_SID}/Messages/{sid}.json", auth=AUTH).json()


def test_template_message_is_rendered_and_queued(client):
    status, message = send(client, ContentVariables=json.dumps({"1": "Ana"}))
    assert status == 201
    assert message["status"] == "queued"
    assert message["body"] == "Hello Ana, your appointment is on tomorrow."
    assert message["sid"].startswith("SM") and len(message["sid"]) == 34
    assert message["date_sent"] is None and message["error_code"] is None
    assert message["to"] == "whatsapp:+59899123456" and message["from"] == SENDER


SLOW = {"sending": 100, "sent": 200, "delivered": 300, "read": 400}


def statuses_over_time(client: TestClient, sid: str, steps: int) -> list[dict]:
    """The message at the sandbox's current time, then after each of ``steps`` advances of 100 s."""
    seen = [status_of(client, sid)]
    for _ in range(steps):
        client.post("/_sandbox/clock", json={"advance": 100})
        seen.append(status_of(client, sid))
    return seen


def test_status_follows_twilios_path_with_the_clock(client):
    client.post("/_sandbox/settings", json={"status_delays": SLOW})
    _, message = send(client)
    seen = statuses_over_time(client, message["sid"], 4)
    assert [m["status"] for m in seen] == ["queued", "sending", "sent", "delivered", "read"]
    assert [m["date_sent"] is not None for m in seen] == [False, False, True, True, True]


def test_a_messaging_service_message_goes_from_accepted_to_queued(client):
    delays = {"queued": 100, "sending": 200, "sent": 300, "delivered": 400, "read": 500}
    client.post("/_sandbox/settings", json={"status_delays": delays})
    fields = {"To": "whatsapp:+59899123456", "MessagingServiceSid": seed.MESSAGING_SERVICE_SID}
    message = client.post(MESSAGES, auth=AUTH, data={**fields, "ContentSid": seed.TEMPLATE_REMINDER}).json()
    seen = statuses_over_time(client, message["sid"], 5)
    assert [m["status"] for m in seen] == ["accepted", "queued", "sending", "sent", "delivered", "read"]


def test_failed_means_never_sent_and_undelivered_comes_after_sent(client):
    # Twilio: failed = the message could not be sent (no date_sent, not charged); undelivered = sent, then lost.
    client.post("/_sandbox/settings", json={"status_delays": SLOW})
    failed = statuses_over_time(client, send(client, to=f"whatsapp:{seed.FAILED_NUMBER}")[1]["sid"], 4)
    assert [m["status"] for m in failed] == ["queued", "sending", "failed", "failed", "failed"]
    assert all(m["date_sent"] is None and m["price"] is None for m in failed)
    assert failed[-1]["error_code"] == 63016 and failed[-1]["error_message"].startswith("Failed to send")
    lost = statuses_over_time(client, send(client, to=f"whatsapp:{seed.UNDELIVERED_NUMBER}")[1]["sid"], 4)
    assert [m["status"] for m in lost] == ["queued", "sending", "sent", "undelivered", "undelivered"]
    assert lost[-1]["date_sent"] is not None and lost[-1]["price"] is not None and lost[-1]["error_code"] == 30008


def test_delays_left_out_of_the_setting_never_come_before_a_given_one(client):
    client.post("/_sandbox/settings", json={"status_delays": {"sent": 100}})
    _, message = send(client)
    client.post("/_sandbox/clock", json={"advance": 50})
    assert status_of(client, message["sid"])["status"] == "sending"
    client.post("/_sandbox/clock", json={"advance": 50})
    assert status_of(client, message["sid"])["status"] == "read"


@pytest.mark.parametrize(
    ("number", "final", "code"),
    [
        (seed.FAILED_NUMBER, "failed", 63016),
        (seed.UNDELIVERED_NUMBER, "undelivered", 30008),
        (seed.STUCK_NUMBER, "sent", None),
    ],
)
def test_seeded_numbers_meet_their_fate(client, number, final, code):
    _, message = send(client, to=f"whatsapp:{number}")
    client.post("/_sandbox/clock", json={"advance": 60})
    fetched = status_of(client, message["sid"])
    assert fetched["status"] == final
    assert fetched["error_code"] == code


def send_via_service(client: TestClient, to: str, **fields) -> tuple[int, dict]:
    data = {"To": to, "MessagingServiceSid": seed.MESSAGING_SERVICE_SID, "ContentSid": seed.TEMPLATE_REMINDER}
    response = client.post(MESSAGES, auth=AUTH, data={**data, **fields})
    return response.status_code, response.json()


@pytest.mark.parametrize("to", [f"whatsapp:{seed.INVALID_NUMBER}", "whatsapp:12"])
def test_a_messaging_service_accepts_an_invalid_recipient_and_fails_the_message_later(client, to):
    status, message = send_via_service(client, to)
    assert (status, message["status"], message["error_code"]) == (201, "accepted", None)
    client.post("/_sandbox/clock", json={"advance": 60})
    failed = status_of(client, message["sid"])
    assert (failed["status"], failed["error_code"]) == ("failed", 21211)
    assert failed["error_message"] == "Invalid 'To' Phone Number"
    assert failed["date_sent"] is None and failed["price"] is None


def test_which_errors_a_messaging_service_defers_is_a_setting(client):
    client.post("/_sandbox/seed", json={"numbers": [{"number": "+15005550020", "create_error": 21610}]})
    assert send_via_service(client, "whatsapp:+15005550020")[0] == 201
    client.post("/_sandbox/settings", json={"twilio_service_deferred_errors": [21610]})
    assert send_via_service(client, f"whatsapp:{seed.INVALID_NUMBER}")[1]["code"] == 21211
    assert send_via_service(client, "whatsapp:+15005550020")[0] == 201
    client.post("/_sandbox/settings", json={"twilio_service_deferred_errors": []})
    assert send_via_service(client, "whatsapp:+15005550020")[1]["code"] == 21610


def test_a_messaging_service_still_refuses_at_once_content_and_authentication_errors(client):
    invalid = f"whatsapp:{seed.INVALID_NUMBER}"
    assert send_via_service(client, invalid, ContentVariables=json.dumps({"1": ""}))[1]["code"] == 21656
    assert send_via_service(client, invalid, ContentSid="HX" + "0" * 32)[1]["code"] == 21655
    data = {"To": invalid, "MessagingServiceSid": seed.MESSAGING_SERVICE_SID, "ContentSid": seed.TEMPLATE_REMINDER}
    assert client.post(MESSAGES, auth=(seed.ACCOUNT_SID, "wrong"), data=data).json()["code"] == 20003
    assert client.get("/_sandbox/twilio/messages").json()["messages"] == []


def test_without_a_messaging_service_an_invalid_recipient_is_refused_at_once(client):
    assert send(client, to=f"whatsapp:{seed.INVALID_NUMBER}")[1]["code"] == 21211


@pytest.mark.parametrize(
    "variables",
    [
        {str(n): "x" for n in range(1, 102)},
        {"1": "x" * 1601},
        {"first name": "Ana"},
        {"a" * 17: "Ana"},
        {"1": ""},
        {"1": "two\nlines"},
        {"1": "a\tb"},
        {"1": "a     b"},
    ],
)
def test_content_variables_twilio_refuses_are_21656(client, variables):
    status, body = send(client, ContentVariables=json.dumps(variables))
    assert (status, body["code"], body["message"]) == (400, 21656, "The ContentVariables Parameter is invalid.")


def test_content_variables_at_twilios_limits_are_accepted(client):
    at_limits = {str(n): "x" for n in range(1, 100)} | {"a" * 16: "y" * 1595 + "    z"}
    assert send(client, ContentVariables=json.dumps(at_limits))[0] == 201


def test_messaging_service_starts_accepted(client):
    response = client.post(
        MESSAGES,
        auth=AUTH,
        data={"To": "whatsapp:+59899123456", "MessagingServiceSid": seed.MESSAGING_SERVICE_SID, "Body": "hi"},
    )
    assert response.status_code == 201
    assert response.json()["status"] == "accepted" and response.json()["from"] == SENDER


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"To": f"whatsapp:{seed.INVALID_NUMBER}"}, 21211),
        ({"To": "whatsapp:12"}, 21211),
        ({"To": "+59899123456"}, 21910),
        ({"From": "whatsapp:+15550001111"}, 63007),
        ({"ContentSid": "HX" + "0" * 32}, 21655),
        ({"ContentVariables": "{not json"}, 21656),
        ({"ContentVariables": json.dumps({"1": 5})}, 21656),
        ({"ContentSid": ""}, 21619),
        ({"To": ""}, 21604),
    ],
)
def test_refusals_use_twilio_codes_and_error_shape(client, fields, code):
    status, body = send(client, **fields)
    assert status == 400
    assert body["code"] == code
    assert body["status"] == 400
    assert body["more_info"] == f"https://www.twilio.com/docs/errors/{code}"
    assert client.get("/_sandbox/twilio/messages").json()["messages"] == []


def test_authentication_is_required(client):
    response = client.post(MESSAGES, auth=(seed.ACCOUNT_SID, "wrong"), data={"To": "whatsapp:+59899123456"})
    assert response.status_code == 401 and response.json()["code"] == 20003
    other = client.get(f"/2010-04-01/Accounts/AC{'1' * 32}/Messages.json", auth=AUTH)
    assert other.status_code == 401


def test_unknown_sid_is_20404(client):
    response = client.get(f"/2010-04-01/Accounts/{seed.ACCOUNT_SID}/Messages/SM{'0' * 32}.json", auth=AUTH)
    assert response.status_code == 404 and response.json()["code"] == 20404


def test_list_filters_by_to_newest_first_and_pages(client):
    sids = [send(client, to="whatsapp:+59899123456")[1]["sid"] for _ in range(3)]
    send(client, to="whatsapp:+34612345678")
    page = client.get(MESSAGES, auth=AUTH, params={"To": "whatsapp:+59899123456", "PageSize": 2}).json()
    assert [m["sid"] for m in page["messages"]] == [sids[2], sids[1]]
    assert page["next_page_uri"] and page["page_size"] == 2
    rest = client.get(page["next_page_uri"], auth=AUTH).json()
    assert [m["sid"] for m in rest["messages"]] == [sids[0]] and rest["next_page_uri"] is None


def listed_sids(client: TestClient, **params) -> list[str]:
    """Every SID the list gives, following next_page_uri."""
    page = client.get(MESSAGES, auth=AUTH, params=params).json()
    sids = [m["sid"] for m in page["messages"]]
    while page["next_page_uri"]:
        page = client.get(page["next_page_uri"], auth=AUTH).json()
        sids += [m["sid"] for m in page["messages"]]
    return sids


@pytest.mark.parametrize("placement", ["first", "last"])
def test_list_is_sorted_by_date_sent_with_unsent_messages_where_the_setting_puts_them(client, placement):
    client.post("/_sandbox/settings", json={"status_delays": {"sent": 30}, "twilio_unsent_placement": placement})
    early = send(client)[1]["sid"]
    client.post("/_sandbox/clock", json={"advance": 10})
    late = send(client)[1]["sid"]
    client.post("/_sandbox/clock", json={"advance": 25})  # early sent at +30, late not yet (it will at +40)
    unsent = [send(client)[1]["sid"] for _ in range(2)]
    client.post("/_sandbox/clock", json={"advance": 10})  # now late is sent too: after early, so listed before
    sent_newest_first = [late, early]
    unsent_newest_first = unsent[::-1]
    expected = (
        unsent_newest_first + sent_newest_first if placement == "first" else sent_newest_first + unsent_newest_first
    )
    assert listed_sids(client, PageSize=1) == expected
    assert listed_sids(client) == expected


def test_a_message_sent_between_two_pages_moves_to_the_top_of_the_sent_ones(client):
    client.post("/_sandbox/settings", json={"status_delays": {"sent": 30}, "twilio_unsent_placement": "last"})
    older = send(client)[1]["sid"]
    client.post("/_sandbox/clock", json={"advance": 40})
    ours = send(client)[1]["sid"]
    first = client.get(MESSAGES, auth=AUTH, params={"PageSize": 1}).json()
    assert [m["sid"] for m in first["messages"]] == [older]
    client.post("/_sandbox/clock", json={"advance": 40})  # ours is sent now: listed first, before the token
    second = client.get(first["next_page_uri"], auth=AUTH).json()
    assert second["messages"] == [] and second["next_page_uri"] is None
    assert listed_sids(client) == [ours, older]


@pytest.mark.parametrize("size", [0, 1001, -5])
def test_page_size_outside_1_to_1000_is_refused_not_clamped(client, size):
    response = client.get(MESSAGES, auth=AUTH, params={"PageSize": size})
    assert response.status_code == 400
    assert set(response.json()) == {"code", "message", "more_info", "status"}
    assert response.json()["code"] == 20001 and str(size) in response.json()["message"]


def test_page_sizes_at_the_bounds_are_served(client):
    sids = [send(client)[1]["sid"] for _ in range(3)]
    assert len(client.get(MESSAGES, auth=AUTH, params={"PageSize": 1}).json()["messages"]) == 1
    page = client.get(MESSAGES, auth=AUTH, params={"PageSize": 1000}).json()
    assert [m["sid"] for m in page["messages"]] == sids[::-1] and page["next_page_uri"] is None


def test_page_is_a_page_number_and_the_token_is_the_position(client):
    sids = [send(client)[1]["sid"] for _ in range(5)][::-1]
    first = client.get(MESSAGES, auth=AUTH, params={"PageSize": 2}).json()
    assert (first["page"], first["start"], first["end"]) == (0, 0, 1)
    assert "Page=1" in first["next_page_uri"] and f"PageToken=PA{sids[1]}" in first["next_page_uri"]
    second = client.get(first["next_page_uri"], auth=AUTH).json()
    assert [m["sid"] for m in second["messages"]] == sids[2:4]
    assert (second["page"], second["start"], second["end"]) == (1, 2, 3)
    assert second["previous_page_uri"] and "Page=0" in second["previous_page_uri"]
    third = client.get(second["next_page_uri"], auth=AUTH).json()
    assert [m["sid"] for m in third["messages"]] == sids[4:] and (third["page"], third["start"]) == (2, 4)
    assert third["next_page_uri"] is None
    # Page alone is client state, not a position: without the API's token it is refused, as Twilio does.
    refused = client.get(MESSAGES, auth=AUTH, params={"PageSize": 2, "Page": 1})
    assert refused.status_code == 400 and refused.json()["code"] == 70002


def test_unsent_placement_setting_takes_only_first_or_last(client):
    response = client.post("/_sandbox/settings", json={"twilio_unsent_placement": "middle"})
    assert response.status_code == 400
    assert client.get("/_sandbox/settings").json()["twilio_unsent_placement"] == "first"


def test_date_sent_filter_skips_messages_not_sent_yet(client):
    send(client)
    today = client.get(MESSAGES, auth=AUTH).json()["messages"][0]
    assert today["date_sent"] is None
    day = __import__("email.utils").utils.parsedate_to_datetime(today["date_created"]).strftime("%Y-%m-%d")
    assert client.get(MESSAGES, auth=AUTH, params={"DateSent": day}).json()["messages"] == []
    client.post("/_sandbox/clock", json={"advance": 2})
    assert len(client.get(MESSAGES, auth=AUTH, params={"DateSent": day}).json()["messages"]) == 1


def test_content_templates_are_listed_and_fetched(client):
    listing = client.get("/v1/Content", auth=AUTH).json()
    assert [c["sid"] for c in listing["contents"]] == [
        seed.TEMPLATE_REMINDER,
        seed.TEMPLATE_ORDER,
        seed.TEMPLATE_MEETING_REMINDER,
        seed.TEMPLATE_INTERVIEW,
        seed.TEMPLATE_ALERT,
    ]
    assert listing["meta"]["key"] == "contents"
    one = client.get(f"/v1/Content/{seed.TEMPLATE_ORDER}", auth=AUTH).json()
    assert one["variables"] == {"name": "Customer", "order_id": "1234", "status": "on its way"}
    assert one["types"]["twilio/text"]["body"].startswith("Hi {{name}}")


def test_concurrency_cap_answers_20429(client):
    client.post("/_sandbox/settings", json={"twilio_max_concurrency": 0})
    status, body = send(client)
    assert status == 429 and body["code"] == 20429

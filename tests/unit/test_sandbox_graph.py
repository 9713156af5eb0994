"""Graph calendar behaviour of the sandbox, in process (Starlette's TestClient, no sockets)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from airflow_provider_qconn.sandbox import seed
from airflow_provider_qconn.sandbox.app import create_app
from tests.unit.sandbox_client import TestClient

START = {"dateTime": "2030-01-07T09:00:00", "timeZone": "UTC"}
END = {"dateTime": "2030-01-07T10:00:00", "timeZone": "UTC"}


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(create_app()) as test_client:
        yield test_client


def delegated(client: TestClient, refresh_token: str = seed.REFRESH_TOKEN_ORGANIZER, tenant: str = "common") -> dict:
    response = client.post(
        f"/{tenant}/oauth2/v2.0/token",
        data={
            "grant_type": "refresh_token",
            "client_id": seed.CLIENT_ID,
            "refresh_token": refresh_token,
            "scope": "Calendars.ReadWrite offline_access openid profile",
        },
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def app_only(client: TestClient) -> dict:
    response = client.post(
        f"/{seed.TENANT_ID}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": seed.CLIENT_ID,
            "client_secret": seed.CLIENT_SECRET,
            "scope": "https://graph.microsoft.com/.default",
        },
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def create(client: TestClient, headers: dict, path: str = "/v1.0/me/events", **fields) -> dict:
    response = client.post(path, headers=headers, json={"subject": "Review", "start": START, "end": END, **fields})
    assert response.status_code == 201, response.text
    return response.json()


def stored(client: TestClient, mailbox: str) -> list[dict]:
    return client.get(f"/_sandbox/graph/mailboxes/{mailbox}/events").json()["events"]


def test_create_returns_the_event_and_stores_it(client):
    headers = delegated(client)
    event = create(client, headers, location={"displayName": "Room 1"}, body={"contentType": "text", "content": "a<b"})
    assert event["subject"] == "Review"
    assert event["start"] == {"dateTime": "2030-01-07T09:00:00.0000000", "timeZone": "UTC"}
    assert event["location"]["displayName"] == "Room 1"
    assert event["body"]["contentType"] == "html" and "a&lt;b" in event["body"]["content"]
    assert event["bodyPreview"] == "a<b"
    assert event["webLink"].startswith("https://outlook.office365.com/owa/?itemid=")
    assert event["onlineMeeting"] is None and event["isOnlineMeeting"] is False
    [saved] = stored(client, seed.ORGANIZER)
    assert saved["folder"] == "calendar" and saved["restId"] == event["id"]


def test_double_slash_paths_are_normalised(client):
    event = create(client, delegated(client), path="/v1.0//me/events")
    assert client.get(f"/v1.0//me/events/{event['id']}", headers=delegated(client)).status_code == 200


def test_transaction_id_deduplicates_creates(client):
    headers = delegated(client)
    first = create(client, headers, transactionId="tx-1")
    second = create(client, headers, transactionId="tx-1")
    assert second["id"] == first["id"] and second["subject"] == "Review"
    assert len(stored(client, seed.ORGANIZER)) == 1
    create(client, headers, transactionId="tx-2")
    assert len(stored(client, seed.ORGANIZER)) == 2


def test_a_transaction_id_reused_with_another_payload_is_refused(client):
    headers = delegated(client)
    first = create(client, headers, transactionId="tx-1")
    client.patch(f"/v1.0/me/events/{first['id']}", headers=headers, json={"subject": "Moved"})

    refused = client.post(
        "/v1.0/me/events",
        headers=headers,
        json={"subject": "Other", "start": START, "end": END, "transactionId": "tx-1"},
    )

    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "ErrorDuplicateTransactionId"
    assert "has already been used to create a different event" in refused.json()["error"]["message"]
    assert len(stored(client, seed.ORGANIZER)) == 1
    # The payload is compared with the create's, not with the event as it is now; key order does not matter.
    again = client.post(
        "/v1.0/me/events",
        headers=headers,
        json={"transactionId": "tx-1", "end": END, "start": START, "subject": "Review"},
    )
    assert again.status_code == 201 and again.json()["id"] == first["id"] and again.json()["subject"] == "Moved"


def test_a_cancelled_events_transaction_id_returns_it_cancelled(client):
    headers = delegated(client)
    first = create(client, headers, transactionId="tx-1")
    client.post(f"/v1.0/me/events/{first['id']}/cancel", headers=headers, json={})
    prefer = {**headers, "Prefer": 'IdType="ImmutableId"'}
    again = client.post(
        "/v1.0/me/events",
        headers=prefer,
        json={"subject": "Review", "start": START, "end": END, "transactionId": "tx-1"},
    )
    assert again.status_code == 201 and again.json()["isCancelled"] is True


@pytest.mark.parametrize(("setting", "status"), [("released", 201), ("kept", 400)])
def test_a_deleted_events_transaction_id_is_released_or_kept_as_configured(client, setting, status):
    client.post("/_sandbox/settings", json={"graph_deleted_transaction_ids": setting})
    headers = delegated(client)
    first = create(client, headers, transactionId="tx-1")
    assert client.delete(f"/v1.0/me/events/{first['id']}", headers=headers).status_code == 204

    again = client.post(
        "/v1.0/me/events",
        headers=headers,
        json={"subject": "Review", "start": START, "end": END, "transactionId": "tx-1"},
    )

    assert again.status_code == status
    if status == 201:
        assert again.json()["id"] != first["id"]
    else:
        assert again.json()["error"]["code"] == "ErrorDuplicateTransactionId"
    assert len(stored(client, seed.ORGANIZER)) == (1 if status == 201 else 0)


def test_events_can_be_found_by_their_transaction_id(client):
    headers = delegated(client)
    first = create(client, headers, transactionId="tx-1")
    create(client, headers, transactionId="tx-2")
    found = client.get("/v1.0/me/events", headers=headers, params={"$filter": "transactionId eq 'tx-1'"}).json()
    assert [event["id"] for event in found["value"]] == [first["id"]]


def test_teams_meeting_on_a_work_mailbox_gets_a_join_url_and_a_body_block(client):
    event = create(client, delegated(client), isOnlineMeeting=True, onlineMeetingProvider="teamsForBusiness")
    assert event["isOnlineMeeting"] is True
    assert event["onlineMeetingProvider"] == "teamsForBusiness"
    assert event["onlineMeeting"]["joinUrl"].startswith("https://teams.microsoft.com/l/meetup-join/")
    assert event["onlineMeeting"]["joinUrl"] in event["body"]["content"]


def test_teams_request_is_ignored_for_a_personal_mailbox(client):
    headers = delegated(client, seed.REFRESH_TOKEN_PERSONAL, tenant="consumers")
    event = create(client, headers, isOnlineMeeting=True, onlineMeetingProvider="teamsForBusiness")
    assert event["isOnlineMeeting"] is False
    assert event["onlineMeetingProvider"] == "unknown"
    assert event["onlineMeeting"] is None
    assert event["webLink"].startswith("https://outlook.live.com/")


def test_patch_changes_only_given_fields_and_replaces_attendees(client):
    headers = delegated(client)
    event = create(client, headers, attendees=[{"emailAddress": {"address": "x@example.com"}, "type": "required"}])
    response = client.patch(
        f"/v1.0/me/events/{event['id']}",
        headers=headers,
        json={"end": {"dateTime": "2030-01-07T11:00:00", "timeZone": "UTC"}, "attendees": []},
    )
    assert response.status_code == 200
    patched = response.json()
    assert patched["subject"] == "Review"
    assert patched["end"]["dateTime"].startswith("2030-01-07T11:00:00")
    assert patched["attendees"] == []


def test_patching_the_body_without_the_teams_block_turns_the_meeting_off(client):
    headers = delegated(client)
    event = create(client, headers, isOnlineMeeting=True)
    kept = client.patch(
        f"/v1.0/me/events/{event['id']}",
        headers=headers,
        json={"body": {"contentType": "html", "content": "New agenda" + event["body"]["content"]}},
    ).json()
    assert kept["isOnlineMeeting"] is True
    dropped = client.patch(
        f"/v1.0/me/events/{event['id']}", headers=headers, json={"body": {"contentType": "text", "content": "x"}}
    ).json()
    assert dropped["isOnlineMeeting"] is False and dropped["onlineMeeting"] is None


def test_bad_times_are_refused_with_graph_codes(client):
    headers = delegated(client)
    backwards = client.post(
        "/v1.0/me/events", headers=headers, json={"start": END, "end": START, "subject": "x"}
    ).json()
    assert backwards["error"]["code"] == "ErrorCalendarEndDateIsEarlierThanStartDate"
    bad_zone = client.post(
        "/v1.0/me/events",
        headers=headers,
        json={"start": {**START, "timeZone": "Mars/Olympus"}, "end": END},
    )
    assert bad_zone.status_code == 400
    assert bad_zone.json()["error"]["code"] == "TimeZoneNotSupportedException"
    assert "request-id" in bad_zone.json()["error"]["innerError"]


def test_windows_time_zones_and_prefer_outlook_timezone(client):
    headers = delegated(client)
    event = create(
        client,
        headers,
        start={"dateTime": "2030-07-01T09:00:00", "timeZone": "Pacific Standard Time"},
        end={"dateTime": "2030-07-01T10:00:00", "timeZone": "Pacific Standard Time"},
    )
    # A create without Prefer answers in the zone of its request, as Graph's create-event example does.
    assert event["start"] == {"dateTime": "2030-07-01T09:00:00.0000000", "timeZone": "Pacific Standard Time"}
    read = client.get(f"/v1.0/me/events/{event['id']}", headers=headers).json()
    assert read["start"] == {"dateTime": "2030-07-01T16:00:00.0000000", "timeZone": "UTC"}  # PDT is UTC-7
    local = client.get(
        f"/v1.0/me/events/{event['id']}", headers={**headers, "Prefer": 'outlook.timezone="Europe/Madrid"'}
    )
    assert local.headers["Preference-Applied"] == 'outlook.timezone="Europe/Madrid"'
    assert local.json()["start"] == {"dateTime": "2030-07-01T18:00:00.0000000", "timeZone": "Europe/Madrid"}


def test_cancel_moves_to_deleted_items_and_only_the_immutable_id_survives(client):
    headers = delegated(client)
    immutable = {**headers, "Prefer": 'IdType="ImmutableId"'}
    event = create(client, immutable, attendees=[{"emailAddress": {"address": seed.COLLEAGUE}, "type": "required"}])
    rest_id = stored(client, seed.ORGANIZER)[0]["restId"]
    assert (
        client.post(f"/v1.0/me/events/{event['id']}/cancel", headers=headers, json={"Comment": "sorry"}).status_code
        == 202
    )
    assert client.get(f"/v1.0/me/events/{rest_id}", headers=headers).json()["error"]["code"] == "ErrorItemNotFound"
    again = client.get(f"/v1.0/me/events/{event['id']}", headers=immutable).json()
    assert again["isCancelled"] is True
    assert client.get("/v1.0/me/events", headers=headers).json()["value"] == []
    [copy] = stored(client, seed.COLLEAGUE)
    assert copy["isCancelled"] is True and copy["subject"] == "Canceled: Review" and copy["isOrganizer"] is False
    second = client.post(f"/v1.0/me/events/{event['id']}/cancel", headers=headers, json={})
    assert second.status_code == 404


def test_only_the_organizer_may_cancel(client):
    create(client, delegated(client), attendees=[{"emailAddress": {"address": seed.COLLEAGUE}, "type": "required"}])
    [copy] = stored(client, seed.COLLEAGUE)
    response = client.post(
        f"/v1.0/users/{seed.COLLEAGUE}/events/{copy['restId']}/cancel", headers=app_only(client), json={}
    )
    assert response.status_code == 400
    assert "You need to be an organizer to cancel a meeting." in response.json()["error"]["message"]


def test_delete_removes_the_event(client):
    headers = delegated(client)
    event = create(client, headers)
    assert client.delete(f"/v1.0/me/events/{event['id']}", headers=headers).status_code == 204
    assert client.get(f"/v1.0/me/events/{event['id']}", headers=headers).status_code == 404
    assert stored(client, seed.ORGANIZER) == []


def test_tokens_and_mailboxes_are_checked(client):
    assert client.get("/v1.0/me/events").json()["error"]["code"] == "InvalidAuthenticationToken"
    bad = client.get("/v1.0/me/events", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401
    app = app_only(client)
    me = client.get("/v1.0/me/events", headers=app)
    assert me.status_code == 400 and "/me request is only valid with delegated" in me.json()["error"]["message"]
    assert client.get(f"/v1.0/users/{seed.ORGANIZER}/events", headers=app).status_code == 200
    assert client.get("/v1.0/users/nobody@contoso.example/events", headers=app).json()["error"]["code"] == (
        "ErrorInvalidUser"
    )
    other = client.get(f"/v1.0/users/{seed.COLLEAGUE}/events", headers=delegated(client))
    assert other.status_code == 403


def test_expired_access_tokens_are_refused(client):
    headers = delegated(client)
    client.post("/_sandbox/clock", json={"advance": 3600})
    response = client.get("/v1.0/me/events", headers=headers)
    assert response.status_code == 401
    assert "expired" in response.json()["error"]["message"]


def test_lists_page_with_next_link_select_and_filter(client):
    headers = delegated(client)
    for index in range(3):
        create(client, headers, subject=f"S{index}")
    page = client.get("/v1.0/me/events?$top=2&$select=subject", headers=headers).json()
    assert [event["subject"] for event in page["value"]] == ["S0", "S1"]
    assert set(page["value"][0]) <= {"id", "subject", "@odata.etag"}
    rest = client.get(page["@odata.nextLink"], headers=headers).json()
    assert [event["subject"] for event in rest["value"]] == ["S2"] and "@odata.nextLink" not in rest
    filtered = client.get("/v1.0/me/events?$filter=subject eq 'S1'", headers=headers).json()
    assert [event["subject"] for event in filtered["value"]] == ["S1"]


def test_calendar_view_needs_a_window_and_returns_overlapping_events(client):
    headers = delegated(client)
    create(client, headers)
    missing = client.get("/v1.0/me/calendarView", headers=headers)
    assert missing.status_code == 400 and missing.json()["error"]["code"] == "ErrorInvalidParameter"
    inside = client.get(
        "/v1.0/me/calendarView?startDateTime=2030-01-07T09:30:00&endDateTime=2030-01-07T12:00:00", headers=headers
    ).json()
    outside = client.get(
        "/v1.0/me/calendarView?startDateTime=2030-01-08T00:00:00&endDateTime=2030-01-09T00:00:00", headers=headers
    ).json()
    assert len(inside["value"]) == 1 and outside["value"] == []


def test_mailbox_concurrency_limit_answers_application_throttled(client):
    client.post("/_sandbox/settings", json={"graph_mailbox_concurrency": 0})
    response = client.get("/v1.0/me/events", headers=delegated(client))
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "ApplicationThrottled"
    assert response.headers["retry-after"] == "1"


def test_a_create_answers_in_each_of_its_requests_zones_unless_a_zone_is_preferred(client):
    headers = delegated(client)
    times = {
        "start": {"dateTime": "2030-07-01T09:00:00", "timeZone": "Europe/Madrid"},
        "end": {"dateTime": "2030-07-01T18:00:00", "timeZone": "Tokyo Standard Time"},
    }
    event = create(client, headers, **times)
    assert event["start"] == {"dateTime": "2030-07-01T09:00:00.0000000", "timeZone": "Europe/Madrid"}
    assert event["end"] == {"dateTime": "2030-07-01T18:00:00.0000000", "timeZone": "Tokyo Standard Time"}
    preferred = create(client, {**headers, "Prefer": 'outlook.timezone="UTC"'}, **times)
    assert preferred["start"] == {"dateTime": "2030-07-01T07:00:00.0000000", "timeZone": "UTC"}
    assert preferred["end"] == {"dateTime": "2030-07-01T09:00:00.0000000", "timeZone": "UTC"}

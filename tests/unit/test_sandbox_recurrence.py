"""Recurring events in the sandbox: every pattern and range Graph has, daylight-saving changes, exceptions, paging.

Each test creates a series through the events route (as a client would) and reads it back through
``calendarView``, in process (Starlette's TestClient).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_qconn.sandbox import seed
from airflow_provider_qconn.sandbox.app import create_app
from tests.unit.sandbox_client import TestClient
from tests.unit.test_sandbox_graph import app_only, delegated

IMMUTABLE = 'IdType="ImmutableId"'


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(create_app()) as test_client:
        yield test_client


@pytest.fixture
def me(client: TestClient) -> dict:
    return delegated(client)


def series(client: TestClient, headers: dict, pattern: dict, span: dict, **fields: Any) -> dict:
    """Create a series master starting at ``start`` (default: 09:00 UTC on the range's start date)."""
    day = span["startDate"]
    zone = fields.pop("zone", "UTC")
    start = fields.pop("start", "09:00:00")
    body = {
        "subject": "Stand-up",
        "start": {"dateTime": f"{day}T{start}", "timeZone": zone},
        "end": {"dateTime": f"{day}T{start[:2]}:30:00", "timeZone": zone},
        "recurrence": {"pattern": pattern, "range": span},
        "attendees": [{"emailAddress": {"address": seed.COLLEAGUE}, "type": "required"}],
        **fields,
    }
    response = client.post("/v1.0/me/events", headers={**headers, "Prefer": IMMUTABLE}, json=body)
    assert response.status_code == 201, response.text
    return response.json()


def view(
    client: TestClient, headers: dict, start: str, end: str, prefer: str = IMMUTABLE, path: str = "/v1.0/me"
) -> list:
    """Every event calendarView gives for the window, every page followed."""
    url = f"{path}/calendarView?" + urllib.parse.urlencode({"startDateTime": start, "endDateTime": end})
    events = []
    while url:
        page = client.get(url, headers={**headers, "Prefer": prefer})
        assert page.status_code == 200, page.text
        events += page.json()["value"]
        url = page.json().get("@odata.nextLink")
    return events


def starts(events: list) -> list[str]:
    return [event["start"]["dateTime"][:16] for event in events]


def test_a_daily_series_every_other_day_ends_on_its_end_date_inclusive(client, me):
    master = series(
        client,
        me,
        {"type": "daily", "interval": 2},
        {"type": "endDate", "startDate": "2030-01-01", "endDate": "2030-01-09"},
    )
    events = view(client, me, "2029-12-01T00:00:00Z", "2030-02-01T00:00:00Z")
    assert starts(events) == [f"2030-01-0{day}T09:00" for day in (1, 3, 5, 7, 9)]
    assert {event["type"] for event in events} == {"occurrence"}
    assert {event["seriesMasterId"] for event in events} == {master["id"]}
    assert master["type"] == "seriesMaster" and master["seriesMasterId"] is None
    assert len({event["id"] for event in events}) == 5


def test_a_weekly_series_counts_its_weeks_from_the_first_day_of_week(client, me):
    """RFC 5545's own example: every other week on Tuesday and Sunday from Tuesday 5 August 1997, four times.
    Weeks starting on Monday give 5, 10, 19, 24 August; weeks starting on Sunday give 5, 17, 19, 31 August."""
    pattern = {"type": "weekly", "interval": 2, "daysOfWeek": ["tuesday", "sunday"]}
    span = {"type": "numbered", "startDate": "1997-08-05", "numberOfOccurrences": 4}
    series(client, me, {**pattern, "firstDayOfWeek": "monday"}, span, subject="Monday weeks")
    series(client, me, {**pattern, "firstDayOfWeek": "sunday"}, span, subject="Sunday weeks")
    events = view(client, me, "1997-08-01T00:00:00Z", "1997-09-30T00:00:00Z")
    days = {subject: [e["start"]["dateTime"][8:10] for e in events if e["subject"] == subject] for subject in
            ("Monday weeks", "Sunday weeks")}  # fmt: skip
    assert days == {"Monday weeks": ["05", "10", "19", "24"], "Sunday weeks": ["05", "17", "19", "31"]}


def test_an_absolute_monthly_series_on_the_31st_falls_on_the_last_day_of_shorter_months(client, me):
    series(
        client,
        me,
        {"type": "absoluteMonthly", "interval": 1, "dayOfMonth": 31},
        {"type": "numbered", "startDate": "2030-01-31", "numberOfOccurrences": 4},
    )
    events = view(client, me, "2030-01-01T00:00:00Z", "2031-01-01T00:00:00Z")
    assert starts(events) == ["2030-01-31T09:00", "2030-02-28T09:00", "2030-03-31T09:00", "2030-04-30T09:00"]


def test_a_relative_monthly_series_takes_the_indexed_day_of_each_month(client, me):
    series(
        client,
        me,
        {"type": "relativeMonthly", "interval": 1, "daysOfWeek": ["tuesday"], "index": "second"},
        {"type": "endDate", "startDate": "2030-01-01", "endDate": "2030-03-31"},
        subject="Second Tuesday",
    )
    series(
        client,
        me,
        {
            "type": "relativeMonthly",
            "interval": 2,
            "daysOfWeek": ["monday", "tuesday", "wednesday", "thursday", "friday"],
            "index": "last",
        },
        {"type": "endDate", "startDate": "2030-01-01", "endDate": "2030-06-30"},
        subject="Last weekday, every other month",
    )
    events = view(client, me, "2030-01-01T00:00:00Z", "2030-07-01T00:00:00Z")
    by_subject = {
        s: [e["start"]["dateTime"][:10] for e in events if e["subject"] == s]
        for s in {"Second Tuesday", "Last weekday, every other month"}
    }
    assert by_subject["Second Tuesday"] == ["2030-01-08", "2030-02-12", "2030-03-12"]
    # January 2030 ends on a Thursday, March on a Sunday (so Friday 29th), May on a Friday.
    assert by_subject["Last weekday, every other month"] == ["2030-01-31", "2030-03-29", "2030-05-31"]


def test_an_absolute_yearly_series_on_29_february_falls_on_the_28th_outside_leap_years(client, me):
    series(
        client,
        me,
        {"type": "absoluteYearly", "interval": 1, "month": 2, "dayOfMonth": 29},
        {"type": "noEnd", "startDate": "2028-02-29"},
    )
    events = view(client, me, "2028-01-01T00:00:00Z", "2033-01-01T00:00:00Z")
    assert [s[:10] for s in starts(events)] == ["2028-02-29", "2029-02-28", "2030-02-28", "2031-02-28", "2032-02-29"]


def test_a_relative_yearly_series_without_an_end_goes_on(client, me):
    master = series(
        client,
        me,
        {"type": "relativeYearly", "interval": 1, "month": 11, "daysOfWeek": ["thursday"], "index": "fourth"},
        {"type": "noEnd", "startDate": "2030-11-01"},
    )
    events = view(client, me, "2030-01-01T00:00:00Z", "2033-01-01T00:00:00Z")
    assert [s[:10] for s in starts(events)] == ["2030-11-28", "2031-11-27", "2032-11-25"]
    far = view(client, me, "2099-01-01T00:00:00Z", "2100-01-01T00:00:00Z")
    assert starts(far) == ["2099-11-26T09:00"]
    assert master["recurrence"]["range"] == {
        "type": "noEnd",
        "startDate": "2030-11-01",
        "endDate": "0001-01-01",
        "recurrenceTimeZone": "UTC",
        "numberOfOccurrences": 0,
    }


def test_a_numbered_range_stops_after_its_count(client, me):
    series(
        client,
        me,
        {"type": "weekly", "interval": 1, "daysOfWeek": ["monday", "friday"]},
        {"type": "numbered", "startDate": "2030-01-07", "numberOfOccurrences": 3},
    )
    events = view(client, me, "2030-01-01T00:00:00Z", "2030-03-01T00:00:00Z")
    assert [s[:10] for s in starts(events)] == ["2030-01-07", "2030-01-11", "2030-01-14"]


def test_occurrences_keep_their_local_time_across_a_daylight_saving_change(client, me):
    """Madrid moves to summer time on 31 March 2030: 09:00 there is 08:00 UTC before and 07:00 UTC after."""
    master = series(
        client,
        me,
        {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"]},
        {"type": "endDate", "startDate": "2030-03-25", "endDate": "2030-04-01"},
        zone="Europe/Madrid",
    )
    assert master["recurrence"]["range"]["recurrenceTimeZone"] == "Europe/Madrid"
    utc = view(
        client, me, "2030-03-20T00:00:00Z", "2030-04-05T00:00:00Z", prefer=f'{IMMUTABLE}, outlook.timezone="UTC"'
    )
    assert starts(utc) == ["2030-03-25T08:00", "2030-04-01T07:00"]
    local = view(
        client, me, "2030-03-20T00:00:00Z", "2030-04-05T00:00:00Z", prefer='outlook.timezone="Romance Standard Time"'
    )
    assert starts(local) == ["2030-03-25T09:00", "2030-04-01T09:00"]
    assert [event["originalStart"] for event in utc] == ["2030-03-25T08:00:00Z", "2030-04-01T07:00:00Z"]


def test_the_window_is_read_in_utc_or_its_own_offset_not_in_the_preferred_zone(client, me):
    series(
        client,
        me,
        {"type": "daily", "interval": 1},
        {"type": "numbered", "startDate": "2030-01-07", "numberOfOccurrences": 2},
    )
    madrid = 'outlook.timezone="Europe/Madrid"'
    assert len(view(client, me, "2030-01-07T08:00:00", "2030-01-07T09:30:00", prefer=madrid)) == 1
    assert view(client, me, "2030-01-07T08:00:00+01:00", "2030-01-07T09:00:00+01:00", prefer=madrid) == []


def test_a_moved_occurrence_is_an_exception_shown_at_its_new_time_only(client, me):
    master = series(
        client,
        me,
        {"type": "daily", "interval": 1},
        {"type": "numbered", "startDate": "2030-01-07", "numberOfOccurrences": 3},
    )
    second = view(client, me, "2030-01-08T00:00:00Z", "2030-01-09T00:00:00Z")[0]
    moved = client.patch(
        f"/v1.0/me/events/{second['id']}",
        headers={**me, "Prefer": IMMUTABLE},
        json={
            "subject": "Stand-up (moved)",
            "start": {"dateTime": "2030-01-10T15:00:00", "timeZone": "UTC"},
            "end": {"dateTime": "2030-01-10T15:30:00", "timeZone": "UTC"},
        },
    )
    assert moved.status_code == 200, moved.text
    assert (moved.json()["type"], moved.json()["id"]) == ("exception", second["id"])

    events = view(client, me, "2030-01-01T00:00:00Z", "2030-02-01T00:00:00Z")
    assert [(e["start"]["dateTime"][:16], e["type"], e["subject"]) for e in events] == [
        ("2030-01-07T09:00", "occurrence", "Stand-up"),
        ("2030-01-09T09:00", "occurrence", "Stand-up"),
        ("2030-01-10T15:00", "exception", "Stand-up (moved)"),
    ]
    # A window holding only its new time finds it; its original time no longer does.
    assert [e["id"] for e in view(client, me, "2030-01-10T12:00:00Z", "2030-01-11T00:00:00Z")] == [second["id"]]
    assert view(client, me, "2030-01-08T00:00:00Z", "2030-01-09T00:00:00Z") == []
    read = client.get(f"/v1.0/me/events/{second['id']}", headers={**me, "Prefer": IMMUTABLE}).json()
    assert (read["seriesMasterId"], read["originalStart"]) == (master["id"], "2030-01-08T09:00:00Z")
    listed = client.get("/v1.0/me/events", headers={**me, "Prefer": IMMUTABLE}).json()["value"]
    assert [(e["id"], e["type"]) for e in listed] == [(master["id"], "seriesMaster")]


def test_a_cancelled_occurrence_leaves_the_organizers_calendar_and_shows_cancelled_to_attendees(client, me):
    series(
        client,
        me,
        {"type": "daily", "interval": 1},
        {"type": "numbered", "startDate": "2030-01-07", "numberOfOccurrences": 3},
    )
    second = view(client, me, "2030-01-08T00:00:00Z", "2030-01-09T00:00:00Z")[0]
    cancel = client.post(f"/v1.0/me/events/{second['id']}/cancel", headers=me, json={"Comment": "Holiday"})
    assert cancel.status_code == 202
    assert starts(view(client, me, "2030-01-01T00:00:00Z", "2030-02-01T00:00:00Z")) == [
        "2030-01-07T09:00",
        "2030-01-09T09:00",
    ]
    assert client.get(f"/v1.0/me/events/{second['id']}", headers=me).status_code == 404

    attendee = view(
        client, app_only(client), "2030-01-01T00:00:00Z", "2030-02-01T00:00:00Z", path=f"/v1.0/users/{seed.COLLEAGUE}"
    )
    assert [(e["start"]["dateTime"][:10], e["isCancelled"]) for e in attendee] == [
        ("2030-01-07", False),
        ("2030-01-08", True),
        ("2030-01-09", False),
    ]
    assert attendee[1]["subject"] == "Canceled: Stand-up"
    assert {e["isOrganizer"] for e in attendee} == {False}


def test_a_deleted_occurrence_is_gone_and_the_others_stay(client, me):
    series(
        client,
        me,
        {"type": "daily", "interval": 1},
        {"type": "numbered", "startDate": "2030-01-07", "numberOfOccurrences": 2},
    )
    first = view(client, me, "2030-01-07T00:00:00Z", "2030-01-08T00:00:00Z")[0]
    assert client.delete(f"/v1.0/me/events/{first['id']}", headers=me).status_code == 204
    assert starts(view(client, me, "2030-01-01T00:00:00Z", "2030-02-01T00:00:00Z")) == ["2030-01-08T09:00"]


@pytest.mark.parametrize(
    ("recurrence", "message"),
    [
        ({"pattern": {"type": "hourly"}, "range": {"type": "noEnd", "startDate": "2030-01-07"}}, "pattern type"),
        ({"pattern": {"type": "weekly"}, "range": {"type": "noEnd", "startDate": "2030-01-07"}}, "daysOfWeek"),
        ({"pattern": {"type": "absoluteMonthly"}, "range": {"type": "noEnd", "startDate": "2030-01-07"}}, "dayOfMonth"),
        (
            {"pattern": {"type": "daily", "interval": 0}, "range": {"type": "noEnd", "startDate": "2030-01-07"}},
            "interval",
        ),
        (
            {"pattern": {"type": "daily"}, "range": {"type": "numbered", "startDate": "2030-01-07"}},
            "numberOfOccurrences",
        ),
        (
            {
                "pattern": {"type": "daily"},
                "range": {"type": "endDate", "startDate": "2030-01-07", "endDate": "2030-01-01"},
            },
            "endDate",
        ),
    ],
)
def test_a_recurrence_graph_would_refuse_is_refused(client, me, recurrence, message):
    response = client.post(
        "/v1.0/me/events",
        headers=me,
        json={
            "subject": "Bad",
            "start": {"dateTime": "2030-01-07T09:00:00", "timeZone": "UTC"},
            "end": {"dateTime": "2030-01-07T10:00:00", "timeZone": "UTC"},
            "recurrence": recurrence,
        },
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "ErrorInvalidRequest"
    assert message in response.json()["error"]["message"]


def test_calendar_view_pages_by_the_preferred_page_size(client, me):
    series(
        client,
        me,
        {"type": "daily", "interval": 1},
        {"type": "numbered", "startDate": "2030-01-01", "numberOfOccurrences": 25},
    )
    url = "/v1.0/me/calendarView?startDateTime=2030-01-01T00:00:00Z&endDateTime=2030-02-01T00:00:00Z"
    first = client.get(url, headers={**me, "Prefer": "odata.maxpagesize=20"})
    assert len(first.json()["value"]) == 20
    assert first.headers["preference-applied"] == "odata.maxpagesize=20"
    assert len(view(client, me, "2030-01-01T00:00:00Z", "2030-02-01T00:00:00Z")) == 25  # pages of 10


def test_the_control_api_seeds_a_recurring_meeting_with_its_attendee_copies(client, me):
    seeded = client.post(
        "/_sandbox/seed",
        json={
            "events": [
                {
                    "mailbox": seed.ORGANIZER,
                    "subject": "Weekly sync",
                    "start": {"dateTime": "2030-01-07T10:00:00", "timeZone": "Europe/Madrid"},
                    "end": {"dateTime": "2030-01-07T10:30:00", "timeZone": "Europe/Madrid"},
                    "attendees": [{"emailAddress": {"address": seed.COLLEAGUE}, "type": "required"}],
                    "isOnlineMeeting": True,
                    "onlineMeetingProvider": "teamsForBusiness",
                    "recurrence": {
                        "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"]},
                        "range": {"type": "numbered", "startDate": "2030-01-07", "numberOfOccurrences": 2},
                    },
                }
            ]
        },
    )
    assert seeded.status_code == 200, seeded.text
    events = view(client, me, "2030-01-01T00:00:00Z", "2030-02-01T00:00:00Z")
    assert starts(events) == ["2030-01-07T09:00", "2030-01-14T09:00"]
    assert events[0]["onlineMeeting"]["joinUrl"].startswith("https://teams.microsoft.com/")
    assert len(client.get(f"/_sandbox/graph/mailboxes/{seed.COLLEAGUE}/events").json()["events"]) == 1
    refused = client.post("/_sandbox/seed", json={"events": [{"mailbox": "nobody@contoso.example"}]})
    assert refused.status_code == 400

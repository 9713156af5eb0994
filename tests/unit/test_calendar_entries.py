"""What a calendar view answers, read without a network: Graph's times and zones, attendees, and page links."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from airflow_provider_qconn.hooks.msgraph import CalendarEntry, GraphSettings, MSGraphHook
from tests.unit.test_msgraph_hook import NOWHERE, connection


def test_graph_times_with_seven_decimals_and_windows_zones_are_read_as_instants():
    event = {
        "id": "AAk=",
        "start": {"dateTime": "2030-06-05T09:30:00.0000000", "timeZone": "Romance Standard Time"},
        "end": {"dateTime": "2030-06-05T07:45:00.1234567", "timeZone": "UTC"},
    }
    entry = CalendarEntry.from_graph(event)
    assert entry.start == dt.datetime(2030, 6, 5, 9, 30, tzinfo=ZoneInfo("Europe/Paris"))
    assert entry.start.astimezone(dt.timezone.utc) == dt.datetime(2030, 6, 5, 7, 30, tzinfo=dt.timezone.utc)
    assert entry.end.utcoffset() == dt.timedelta(0) and entry.end.microsecond == 123456
    assert (entry.subject, entry.series_id, entry.join_url, entry.attendees, entry.is_cancelled) == (
        "",
        None,
        None,
        (),
        False,
    )


def test_attendees_keep_their_address_name_type_and_response():
    event = {
        "id": "AAk=",
        "start": {"dateTime": "2030-06-05T07:30:00", "timeZone": "UTC"},
        "end": {"dateTime": "2030-06-05T07:45:00", "timeZone": "UTC"},
        "attendees": [
            {
                "emailAddress": {"address": "a@x.example", "name": "A"},
                "type": "optional",
                "status": {"response": "declined"},
            },
            {"emailAddress": {"address": "b@x.example"}},
        ],
        "organizer": {"emailAddress": {"address": "o@x.example", "name": "O"}},
        "seriesMasterId": "AAm=",
        "onlineMeeting": {"joinUrl": "https://teams.microsoft.com/l/meetup-join/x"},
    }
    entry = CalendarEntry.from_graph(event)
    assert [(a.email, a.name, a.type, a.response) for a in entry.attendees] == [
        ("a@x.example", "A", "optional", "declined"),
        ("b@x.example", None, "required", "none"),
    ]
    assert (entry.organizer, entry.series_id, entry.join_url) == (
        "o@x.example",
        "AAm=",
        "https://teams.microsoft.com/l/meetup-join/x",
    )


def test_only_next_page_links_on_the_configured_graph_host_are_followed():
    hook = MSGraphHook()
    hook.__dict__["settings"] = GraphSettings.from_connection(connection(refresh_token="rt", **NOWHERE))
    assert hook._own_link("https://127.0.0.1:9/v1.0/me/calendarView?$skip=10")
    assert not hook._own_link("https://graph.example/v1.0/me/calendarView?$skip=10")
    assert not hook._own_link("http://127.0.0.1:9/v1.0/me/calendarView?$skip=10")

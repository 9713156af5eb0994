"""ListMeetingsOperator and MSGraphHook.list_events over real HTTP (TLS) against the sandbox, through msgraph-sdk.

Meetings are seeded through the sandbox's control API (a recurring one with its occurrences, single ones), and the
journal shows what went over the wire: one calendarView request per page, the Prefer values, the $select.
"""

from __future__ import annotations

import datetime as dt
import json
import urllib.parse
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_qconn.exceptions import ApiError
from airflow_provider_qconn.hooks.msgraph import CalendarEntry, MSGraphHook
from airflow_provider_qconn.hooks.msgraph.retry import ATTEMPTS
from airflow_provider_qconn.operators.outlook import ListMeetingsOperator
from airflow_provider_qconn.sandbox import connections, seed
from airflow_provider_qconn.sandbox.server import Sandbox
from tests.contracts.validation import Exchange, request_problems

UTC = dt.timezone.utc
VIEW_PATH = r"/calendarView$"
MONDAY = dt.datetime(2030, 3, 4, tzinfo=UTC)


def meeting(subject: str, start: str, end: str, zone: str = "Europe/Madrid", **fields: Any) -> dict[str, Any]:
    """A seeded meeting of the organizer's, with Megan invited, as a Teams meeting."""
    return {
        "mailbox": seed.ORGANIZER,
        "subject": subject,
        "start": {"dateTime": start, "timeZone": zone},
        "end": {"dateTime": end, "timeZone": zone},
        "attendees": [{"emailAddress": {"address": seed.COLLEAGUE, "name": "Megan Bowen"}, "type": "required"}],
        "location": {"displayName": "Room 4"},
        "isOnlineMeeting": True,
        "onlineMeetingProvider": "teamsForBusiness",
        **fields,
    }


def daily(occurrences: int) -> dict[str, Any]:
    return {
        "pattern": {"type": "daily", "interval": 1},
        "range": {"type": "numbered", "startDate": "2030-03-04", "numberOfOccurrences": occurrences},
    }


def context(start: dt.datetime | None = None, end: dt.datetime | None = None) -> dict[str, Any]:
    ti = SimpleNamespace(dag_id="d", task_id="list", run_id="r", map_index=-1, try_number=1)
    return {"ti": ti, "data_interval_start": start, "data_interval_end": end}


def views(sandbox: Sandbox) -> list[dict[str, Any]]:
    return [e for e in sandbox.control.journal(service="graph") if e["path"].endswith("/calendarView")]


def test_the_hook_follows_every_page_asking_for_utc_immutable_ids_and_only_the_fields_it_reads(
    sandbox_env: Sandbox,
) -> None:
    sandbox_env.control.seed(
        events=[meeting("Daily sync", "2030-03-04T09:00:00", "2030-03-04T09:15:00", recurrence=daily(12))]
    )
    with MSGraphHook() as hook:
        entries = hook.list_events(MONDAY, MONDAY + dt.timedelta(days=30), page_size=5)
    assert [entry.start for entry in entries] == [
        dt.datetime(2030, 3, 4 + day, 8, tzinfo=UTC) for day in range(12)
    ]  # 09:00 in Madrid (UTC+1 until 31 March)
    assert len({entry.id for entry in entries}) == 12 and {entry.series_id for entry in entries} != {None}

    requests = views(sandbox_env)
    assert [e["status"] for e in requests] == [200, 200, 200]  # pages of 5, 5 and 2
    first = urllib.parse.parse_qs(requests[0]["query"])
    assert first["startDateTime"] == ["2030-03-04T00:00:00Z"] and first["endDateTime"] == ["2030-04-03T00:00:00Z"]
    assert set(first["$select"][0].split(",")) == set(CalendarEntry.GRAPH_PROPERTIES)
    for request in requests:
        prefer = request["headers"]["prefer"]
        assert 'outlook.timezone="UTC"' in prefer and 'IdType="ImmutableId"' in prefer
        assert "odata.maxpagesize=5" in prefer
        assert request_problems(Exchange.from_journal(request)) == []
    assert len([e for e in sandbox_env.control.journal(service="identity") if e["path"].endswith("/token")]) == 1


@pytest.mark.parametrize("conn_id", ["qconn_msgraph_default", "qconn_msgraph_app"])
def test_the_operator_lists_single_meetings_and_occurrences_of_the_run_in_start_order(
    sandbox_env: Sandbox, conn_id: str
) -> None:
    sandbox_env.control.seed(
        events=[
            meeting("Daily sync", "2030-03-04T09:00:00", "2030-03-04T09:15:00", recurrence=daily(5)),
            meeting("Review", "2030-03-05T08:30:00", "2030-03-05T09:30:00", isOnlineMeeting=False),
            meeting("Next week", "2030-03-12T08:30:00", "2030-03-12T09:30:00"),
        ]
    )
    window = (MONDAY + dt.timedelta(days=1), MONDAY + dt.timedelta(days=2))  # Tuesday, in UTC
    operator = ListMeetingsOperator(task_id="list", time_zone="Europe/Madrid", msgraph_conn_id=conn_id)
    meetings = operator.execute(context(*window))["meetings"]

    assert [(m["subject"], m["start"], m["end"]) for m in meetings] == [
        ("Review", "2030-03-05T08:30:00+01:00", "2030-03-05T09:30:00+01:00"),
        ("Daily sync", "2030-03-05T09:00:00+01:00", "2030-03-05T09:15:00+01:00"),
    ]
    review, sync = meetings
    assert review["series_id"] is None and review["join_url"] is None
    assert sync["series_id"] and sync["join_url"].startswith("https://teams.microsoft.com/l/meetup-join/")
    assert sync["organizer"] == seed.ORGANIZER and sync["location"] == "Room 4"
    assert sync["attendees"] == [
        {"email": seed.COLLEAGUE, "name": "Megan Bowen", "type": "required", "response": "none"}
    ]
    assert sync["web_link"].startswith("https://outlook.office365.com/owa/?itemid=")
    assert {m["time_zone"] for m in meetings} == {"Europe/Madrid"} and not any(m["is_cancelled"] for m in meetings)
    assert json.loads(json.dumps(meetings)) == meetings  # plain data for XCom


def test_an_attendee_sees_a_cancelled_occurrence_only_when_asking_for_cancelled_ones(
    sandbox_env: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox_env.control.seed(
        events=[meeting("Daily sync", "2030-03-04T09:00:00", "2030-03-04T09:15:00", recurrence=daily(3))]
    )
    with MSGraphHook() as hook:
        second = hook.list_events(MONDAY + dt.timedelta(days=1), MONDAY + dt.timedelta(days=2))[0]
        hook.cancel_event(second.id, "Not today")
    attendee = json.loads(json.dumps(connections(sandbox_env.url)["qconn_msgraph_app"]))
    attendee["extra"]["user_id"] = seed.COLLEAGUE
    monkeypatch.setenv("AIRFLOW_CONN_MEGAN", json.dumps(attendee))
    window = {"start": "2030-03-04T00:00:00Z", "end": "2030-03-07T00:00:00Z", "msgraph_conn_id": "megan"}

    active = ListMeetingsOperator(task_id="l", **window).execute(context())["meetings"]
    everything = ListMeetingsOperator(task_id="l", include_cancelled=True, **window).execute(context())["meetings"]
    assert [m["start"][:10] for m in active] == ["2030-03-04", "2030-03-06"]
    assert [(m["start"][:10], m["is_cancelled"]) for m in everything] == [
        ("2030-03-04", False),
        ("2030-03-05", True),
        ("2030-03-06", False),
    ]
    organizer = ListMeetingsOperator(task_id="l", **{**window, "msgraph_conn_id": "qconn_msgraph_default"})
    assert len(organizer.execute(context())["meetings"]) == 2  # gone from the organizer's calendar


def test_subject_contains_keeps_matching_meetings_ignoring_case(sandbox_env: Sandbox) -> None:
    sandbox_env.control.seed(
        events=[
            meeting("Weekly SYNC", "2030-03-04T09:00:00", "2030-03-04T09:15:00"),
            meeting("Review", "2030-03-04T10:00:00", "2030-03-04T11:00:00"),
        ]
    )
    operator = ListMeetingsOperator(
        task_id="l", start="2030-03-04T00:00", end="2030-03-05T00:00", subject_contains="sync"
    )
    assert [m["subject"] for m in operator.execute(context())["meetings"]] == ["Weekly SYNC"]


def test_a_page_that_fails_transiently_is_fetched_again_under_the_retry_policy(sandbox_env: Sandbox) -> None:
    sandbox_env.control.seed(
        events=[meeting("Daily sync", "2030-03-04T09:00:00", "2030-03-04T09:15:00", recurrence=daily(4))]
    )
    sandbox_env.control.add_fault(service="graph", path=VIEW_PATH, status=503, retry_after=0, times=1)
    sandbox_env.control.add_fault(service="graph", path=VIEW_PATH, body="truncated", times=1)
    with MSGraphHook() as hook:
        entries = hook.list_events(MONDAY, MONDAY + dt.timedelta(days=7), page_size=2)
    assert len(entries) == 4
    assert [e["status"] for e in views(sandbox_env)] == [503, 200, 200, 200]  # a refusal, a cut answer, 2 pages


def test_a_listing_still_refused_after_every_attempt_is_left_to_a_later_try(sandbox_env: Sandbox) -> None:
    sandbox_env.control.add_fault(service="graph", path=VIEW_PATH, status=503, retry_after=0)
    operator = ListMeetingsOperator(task_id="l", start="2030-03-04T00:00", end="2030-03-05T00:00")
    with pytest.raises(ApiError) as raised:
        operator.execute(context())
    assert raised.value.status == 503 and type(raised.value) is ApiError  # retryable by Airflow
    assert len(views(sandbox_env)) == ATTEMPTS

"""The Outlook operators without Graph: validation before any request, template fields, outputs.

MSGraphHook is replaced by a MagicMock here only; tests/integration/test_msgraph_hook.py runs them for real.
"""

from __future__ import annotations

import datetime as dt
import inspect
from types import SimpleNamespace
from unittest import mock

import pytest

from airflow_provider_qconn.exceptions import InvalidParameterError, MeetingStateError, NonRetryableApiError
from airflow_provider_qconn.hooks.msgraph import Attendance, CalendarEntry, EventDetails, Meeting
from airflow_provider_qconn.normalise import EmailAddress
from airflow_provider_qconn.operators.outlook import (
    NO_JOIN_URL_COMMENT,
    CancelMeetingOperator,
    ListMeetingsOperator,
    ScheduleMeetingOperator,
    UpdateMeetingOperator,
    transaction_id,
)

MEETING = Meeting(
    id="AAkALg=",
    web_link="https://outlook.office365.com/owa/?itemid=AAkALg%3D",
    join_url="https://teams.microsoft.com/l/meetup-join/x",
    ical_uid="0400",
    is_cancelled=False,
    is_online_meeting=True,
)
OUTPUTS = {
    "meeting_id": MEETING.id,
    "web_link": MEETING.web_link,
    "join_url": MEETING.join_url,
    "ical_uid": MEETING.ical_uid,
}


def context(dag_id: str = "d", task_id: str = "t", run_id: str = "r", map_index: int = -1) -> dict:
    return {"ti": SimpleNamespace(dag_id=dag_id, task_id=task_id, run_id=run_id, map_index=map_index, try_number=1)}


@pytest.fixture
def hook():
    with mock.patch("airflow_provider_qconn.hooks.msgraph.MSGraphHook", autospec=True) as hook_class:
        instance = hook_class.return_value
        instance.create_event.return_value = MEETING
        instance.update_event.return_value = MEETING
        instance.cancel_event.return_value = True
        yield instance


def schedule(**kwargs) -> ScheduleMeetingOperator:
    return ScheduleMeetingOperator(
        task_id="schedule", **{"start": "2030-01-01T10:00", "end": "2030-01-01T11:00", **kwargs}
    )


def test_template_fields_cover_every_parameter():
    # Every constructor parameter is templatable (BaseOperator's own ones excepted).
    for operator_class in (ScheduleMeetingOperator, UpdateMeetingOperator, CancelMeetingOperator, ListMeetingsOperator):
        parameters = set(inspect.signature(operator_class.__init__).parameters) - {"self", "kwargs"}
        parameters |= {"msgraph_conn_id"}
        assert set(operator_class.template_fields) == parameters, operator_class.__name__


def test_each_operator_has_multiple_outputs_and_the_default_connection():
    for operator in (
        schedule(),
        UpdateMeetingOperator(task_id="u", meeting_id="x"),
        CancelMeetingOperator(task_id="c", meeting_id="x"),
        ListMeetingsOperator(task_id="l"),
    ):
        assert operator.multiple_outputs is True
        assert operator.msgraph_conn_id == "qconn_msgraph_default"
    assert CancelMeetingOperator(task_id="c", meeting_id="x", msgraph_conn_id="other").hook.msgraph_conn_id == "other"


def test_schedule_sends_the_validated_details(hook):
    result = schedule(
        subject="Review",
        attendees="Megan <megan@contoso.example>; ana@example.com",
        location="Room 4",
        teams_meeting="True",
        content="Agenda",
        content_type="TEXT",
        time_zone="Europe/Madrid",
    ).execute(context())

    assert result == OUTPUTS
    details, sent_transaction_id = hook.create_event.call_args.args
    madrid = dt.timezone(dt.timedelta(hours=1))
    assert details == EventDetails(
        subject="Review",
        content="Agenda",
        content_type="text",
        start=dt.datetime(2030, 1, 1, 10, tzinfo=madrid),
        end=dt.datetime(2030, 1, 1, 11, tzinfo=madrid),
        location="Room 4",
        attendees=(EmailAddress("megan@contoso.example", "Megan"), EmailAddress("ana@example.com")),
        teams_meeting=True,
    )
    assert sent_transaction_id == transaction_id(context())
    hook.close.assert_called_once_with()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"start": "soon"}, r"^start: 'soon' is not an ISO 8601"),
        ({"end": "2030-01-01T09:00"}, r"^end: must be after start"),
        ({"time_zone": "Mars/Base"}, r"^time_zone: unknown time zone"),
        ({"attendees": "megan@contoso.example, nobody"}, r"^attendees: 'nobody' is not a valid e-mail"),
        ({"teams_meeting": "sometimes"}, r"^teams_meeting: expected true or false"),
        ({"content_type": "markdown"}, r"^content_type: expected one of 'html', 'text'"),
        ({"subject": ["a"]}, r"^subject: expected text"),
        ({"location": 4}, r"^location: expected text"),
        ({"require_join_url": "perhaps"}, r"^require_join_url: expected true or false"),
    ],
)
def test_schedule_rejects_bad_input_before_any_request(hook, kwargs, message):
    with pytest.raises(InvalidParameterError, match=message):
        schedule(**kwargs).execute(context())
    hook.create_event.assert_not_called()


def test_transaction_id_is_stable_per_task_instance_and_distinct_between_them():
    first = transaction_id(context())
    assert transaction_id(context()) == first  # every try of the same task instance
    others = {
        transaction_id(context(dag_id="d2")),
        transaction_id(context(task_id="t2")),
        transaction_id(context(run_id="r2")),
        transaction_id(context(map_index=0)),
        transaction_id(context(map_index=1)),
    }
    assert first not in others and len(others) == 5


def test_no_join_url_warns_by_default(hook, capsys):
    hook.create_event.return_value = Meeting("AAk=", "https://outlook.live.com/x", None, "0400", False, False)
    result = schedule(teams_meeting=True).execute(context())
    assert result["join_url"] is None
    assert "returned no join URL" in capsys.readouterr().out  # Airflow's structlog writes task logs to stdout
    hook.cancel_event.assert_not_called()


def test_no_join_url_with_require_join_url_cancels_then_fails(hook):
    hook.create_event.return_value = Meeting("AAk=", "https://outlook.live.com/x", None, "0400", False, False)
    with pytest.raises(MeetingStateError, match="so meeting AAk= was cancelled"):
        schedule(teams_meeting=True, require_join_url=True).execute(context())
    hook.cancel_event.assert_called_once_with("AAk=", NO_JOIN_URL_COMMENT)
    hook.close.assert_called_once_with()


def test_a_meeting_cancelled_since_an_earlier_try_fails_the_task(hook):
    hook.create_event.return_value = Meeting("AAk=", "https://x", None, "0400", True, False)
    with pytest.raises(MeetingStateError, match="has since been cancelled"):
        schedule().execute(context())


def test_update_sends_only_what_was_given(hook):
    result = UpdateMeetingOperator(
        task_id="update", meeting_id=" AAkALg= ", end="2030-01-01T12:00Z", subject="", attendees=[], location=None
    ).execute(context())
    assert result == OUTPUTS
    meeting_id, details = hook.update_event.call_args.args
    assert meeting_id == "AAkALg="
    assert details == EventDetails(end=dt.datetime(2030, 1, 1, 12, tzinfo=dt.timezone.utc), attendees=())


def test_update_validates_before_any_request(hook):
    with pytest.raises(InvalidParameterError, match=r"^meeting_id: expected an id, got a mapping"):
        UpdateMeetingOperator(task_id="u", meeting_id=OUTPUTS, subject="x").execute(context())
    with pytest.raises(InvalidParameterError, match=r"^end: must be after start"):
        UpdateMeetingOperator(task_id="u", meeting_id="x", start="2030-01-01T10:00", end="2030-01-01T10:00").execute(
            context()
        )
    hook.update_event.assert_not_called()


def test_update_warns_that_teams_cannot_be_turned_off(hook, capsys):
    UpdateMeetingOperator(task_id="u", meeting_id="AAk", teams_meeting=False).execute(context())
    assert "Graph cannot turn a Teams meeting off" in capsys.readouterr().out


def test_cancel(hook):
    result = CancelMeetingOperator(task_id="c", meeting_id="AAk", comment="Sorry").execute(context())
    assert result == {"meeting_id": "AAk", "cancelled": True}
    hook.cancel_event.assert_called_once_with("AAk", "Sorry")

    hook.cancel_event.side_effect = NonRetryableApiError("Microsoft Graph", 404, "ErrorItemNotFound", "not found")
    result = CancelMeetingOperator(task_id="c", meeting_id="AAk", missing_ok=True).execute(context())
    assert result == {"meeting_id": "AAk", "cancelled": False}
    with pytest.raises(NonRetryableApiError, match="not found"):
        CancelMeetingOperator(task_id="c", meeting_id="AAk").execute(context())
    hook.is_cancelled.assert_not_called()  # a first try does not guess that an earlier one cancelled it

    # missing_ok covers a missing meeting, not a missing mailbox.
    hook.cancel_event.side_effect = NonRetryableApiError("Microsoft Graph", 404, "ErrorInvalidUser", "no mailbox")
    with pytest.raises(NonRetryableApiError, match="no mailbox"):
        CancelMeetingOperator(task_id="c", meeting_id="AAk", missing_ok=True).execute(context())


def test_cancel_validates_and_lets_graph_errors_through(hook):
    with pytest.raises(InvalidParameterError, match=r"^meeting_id: expected a non-empty id"):
        CancelMeetingOperator(task_id="c", meeting_id="").execute(context())
    with pytest.raises(InvalidParameterError, match=r"^missing_ok: expected true or false"):
        CancelMeetingOperator(task_id="c", meeting_id="x", missing_ok="sure").execute(context())
    hook.cancel_event.assert_not_called()
    hook.cancel_event.side_effect = NonRetryableApiError("Microsoft Graph", 400, "ErrorInvalidRequest", "organizer")
    with pytest.raises(NonRetryableApiError):
        CancelMeetingOperator(task_id="c", meeting_id="x").execute(context())
    hook.close.assert_called_once_with()


# --- listing -------------------------------------------------------------------------------------------------

UTC = dt.timezone.utc


def entry(subject: str, hour: int, cancelled: bool = False, entry_id: str | None = None) -> CalendarEntry:
    return CalendarEntry(
        id=entry_id or f"id-{subject}",
        series_id="master" if subject.startswith("Daily") else None,
        subject=subject,
        start=dt.datetime(2030, 7, 1, hour, tzinfo=UTC),
        end=dt.datetime(2030, 7, 1, hour, 30, tzinfo=UTC),
        location=None,
        web_link="https://outlook.office365.com/owa/?itemid=x",
        join_url=None,
        organizer="adele@contoso.example",
        attendees=(Attendance("megan@contoso.example", "Megan Bowen", "required", "accepted"),),
        is_cancelled=cancelled,
    )


def listing_context(start: dt.datetime | None, end: dt.datetime | None) -> dict:
    return {**context(), "data_interval_start": start, "data_interval_end": end}


def test_listing_defaults_to_the_data_interval_and_returns_meetings_in_start_order_in_the_zone(hook):
    hook.list_events.return_value = [entry("Review", 10), entry("Daily sync", 8), entry("Gone", 9, cancelled=True)]
    interval = (dt.datetime(2030, 7, 1, 6, tzinfo=UTC), dt.datetime(2030, 7, 1, 12, tzinfo=UTC))
    result = ListMeetingsOperator(task_id="l", time_zone="Europe/Madrid").execute(listing_context(*interval))
    assert hook.list_events.call_args.args == interval
    assert [m["subject"] for m in result["meetings"]] == ["Daily sync", "Review"]
    first = result["meetings"][0]
    assert first == {
        "meeting_id": "id-Daily sync",
        "series_id": "master",
        "subject": "Daily sync",
        "start": "2030-07-01T10:00:00+02:00",
        "end": "2030-07-01T10:30:00+02:00",
        "time_zone": "Europe/Madrid",
        "location": None,
        "web_link": "https://outlook.office365.com/owa/?itemid=x",
        "join_url": None,
        "organizer": "adele@contoso.example",
        "attendees": [
            {"email": "megan@contoso.example", "name": "Megan Bowen", "type": "required", "response": "accepted"}
        ],
        "is_cancelled": False,
    }
    hook.close.assert_called_once()


def test_listing_keeps_cancelled_meetings_when_asked_and_filters_by_subject_ignoring_case(hook):
    hook.list_events.return_value = [entry("Review", 10), entry("Daily sync", 8), entry("Gone sync", 9, True)]
    operator = ListMeetingsOperator(
        task_id="l", start="2030-07-01T00:00", end="2030-07-02T00:00", include_cancelled="true", subject_contains="SYNC"
    )
    result = operator.execute(listing_context(None, None))
    assert [(m["subject"], m["is_cancelled"]) for m in result["meetings"]] == [
        ("Daily sync", False),
        ("Gone sync", True),
    ]
    assert hook.list_events.call_args.args == (dt.datetime(2030, 7, 1, tzinfo=UTC), dt.datetime(2030, 7, 2, tzinfo=UTC))


def test_listing_orders_meetings_that_start_together_by_id(hook):
    hook.list_events.return_value = [entry("B", 8, entry_id="b"), entry("A", 8, entry_id="a")]
    result = ListMeetingsOperator(task_id="l", start="2030-07-01T00:00", end="2030-07-02T00:00").execute(context())
    assert [m["meeting_id"] for m in result["meetings"]] == ["a", "b"]


@pytest.mark.parametrize(
    ("kwargs", "interval", "parameter", "message"),
    [
        ({}, (None, None), "start", "data interval is empty"),
        ({}, (dt.datetime(2030, 7, 1, tzinfo=UTC),) * 2, "start", "interval timetable"),
        ({"start": "2030-07-01T00:00"}, (None, None), "end", "give both start and end"),
        ({"end": "2030-07-01T00:00"}, (None, None), "start", "give both start and end"),
        ({"start": "2030-07-02T00:00", "end": "2030-07-01T00:00"}, (None, None), "end", "after start"),
        ({"time_zone": "Mars/Olympus"}, (None, None), "time_zone", "unknown time zone"),
        (
            {"start": "2030-07-01T00:00", "end": "2030-07-02T00:00", "include_cancelled": "maybe"},
            (None, None),
            "include_cancelled",
            "expected true or false",
        ),
        (
            {"start": "2030-07-01T00:00", "end": "2030-07-02T00:00", "subject_contains": 3},
            (None, None),
            "subject_contains",
            "expected text",
        ),
    ],
)
def test_listing_refuses_an_unusable_window_or_parameter_before_any_request(hook, kwargs, interval, parameter, message):
    with pytest.raises(InvalidParameterError, match=message) as raised:
        ListMeetingsOperator(task_id="l", **kwargs).execute(listing_context(*interval))
    assert raised.value.parameter == parameter
    hook.list_events.assert_not_called()

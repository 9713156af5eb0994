"""example_dags/meeting_reminders.py end to end with dag.test(): hourly runs against the sandbox's calendar.

A run is named by its logical date ``T`` (the DAG's timetable gives it the data interval ``[T - 1h, T)``), so it
reminds the meetings that start in ``[T + 1h, T + 2h)``. Running the DAG again with the same logical date and
run_after re-runs the same DAG run, as clearing it does. The sandbox's journal and its store of messages show
what went to Twilio.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import itertools
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pendulum
import pytest
from airflow.models import Variable

from airflow_provider_qconn.hooks.msgraph import EventDetails, MSGraphHook
from airflow_provider_qconn.sandbox import seed
from airflow_provider_qconn.sandbox.server import Sandbox
from tests.dags.support import xcom

EXAMPLE = Path(__file__).resolve().parents[2] / "example_dags" / "meeting_reminders.py"
UTC = dt.timezone.utc
QUARTER = dt.timedelta(minutes=15)
MEGAN = "+34612345678"
ANA = "+59899123456"
PHONES = {seed.COLLEAGUE: "+34 612 34 56 78", "Ana@Fabrikam.example": "+598 99 123 456", "bad@fabrikam.example": "12"}


def load() -> Any:
    spec = importlib.util.spec_from_file_location("meeting_reminders", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def invitee(address: str, name: str | None = None) -> dict[str, Any]:
    return {"emailAddress": {"address": address, "name": name or address}, "type": "required"}


def meeting(subject: str, start: str, end: str, **fields: Any) -> dict[str, Any]:
    """A meeting of the organizer's in Madrid time (UTC+2 in June), as the control API seeds it."""
    return {
        "mailbox": seed.ORGANIZER,
        "subject": subject,
        "start": {"dateTime": start, "timeZone": "Europe/Madrid"},
        "end": {"dateTime": end, "timeZone": "Europe/Madrid"},
        **fields,
    }


STAND_UP = meeting(
    "Daily stand-up",
    "2030-06-03T09:30:00",
    "2030-06-03T09:45:00",
    attendees=[
        invitee(seed.COLLEAGUE, "Megan Bowen"),
        invitee("ana@fabrikam.example", "Ana"),
        invitee("nobody@fabrikam.example"),
        invitee("bad@fabrikam.example"),
    ],
    isOnlineMeeting=True,
    onlineMeetingProvider="teamsForBusiness",
    recurrence={
        "pattern": {"type": "daily", "interval": 1},
        "range": {"type": "numbered", "startDate": "2030-06-03", "numberOfOccurrences": 5},
    },
)
#: A single meeting without Teams, whose subject has what WhatsApp refuses in a variable (a newline, a tab).
REVIEW = meeting(
    "Budget\nreview\t(Q3)", "2030-06-05T10:15:00", "2030-06-05T11:00:00", attendees=[invitee(seed.COLLEAGUE, "Megan")]
)


def at(day: int, hour: int) -> dt.datetime:
    return dt.datetime(2030, 6, day, hour, tzinfo=UTC)


def run(dag: Any, logical_date: dt.datetime) -> Any:
    """The DAG run for one hour (created, or run again when it exists)."""
    result = dag.test(logical_date=logical_date, run_after=logical_date)
    assert result.state == "success", [(ti.task_id, ti.map_index, ti.state) for ti in result.get_task_instances()]
    return result


def sent(sandbox: Sandbox) -> Counter:
    """(number, subject, when) of every message Twilio accepted."""
    return Counter(
        (m["to"].removeprefix("whatsapp:"), *(json.loads(m["content_variables"])[k] for k in ("2", "3")))
        for m in sandbox.control.messages()
    )


@pytest.fixture
def reminders(sandbox_env: Sandbox) -> Any:
    Variable.set("qconn_meeting_reminder_phones", json.dumps(PHONES))
    yield load().dag
    Variable.delete("qconn_meeting_reminder_phones")


def twilio_creates(sandbox: Sandbox) -> list[int]:
    """The statuses of the message creates Twilio answered."""
    return [e["status"] for e in sandbox.control.journal(service="twilio") if e["method"] == "POST"]


def test_the_hourly_windows_of_a_day_tile_it_shifted_by_the_lead():
    """Every scheduled run of a day, caught up or backfilled: windows that neither overlap nor leave a gap."""
    from airflow.serialization.encoders import coerce_to_core_timetable
    from airflow.timetables.base import TimeRestriction

    module = load()
    timetable = coerce_to_core_timetable(module.dag.timetable)
    restriction = TimeRestriction(
        earliest=pendulum.instance(at(5, 0)), latest=pendulum.instance(at(5, 23)), catchup=True
    )
    intervals, last = [], None
    while (info := timetable.next_dagrun_info(last_automated_data_interval=last, restriction=restriction)) is not None:
        intervals.append(info.data_interval)
        last = info.data_interval
    windows = [(i.start + module.LEAD, i.end + module.LEAD) for i in intervals]
    assert len(windows) == 24
    assert windows[0][0] == at(4, 23) + module.LEAD and windows[-1][1] == at(5, 23) + module.LEAD
    assert all(earlier[1] == later[0] for earlier, later in itertools.pairwise(windows))


def test_each_attendee_is_reminded_once_of_each_meeting_across_retries_a_clear_a_move_and_a_cancellation(
    sandbox_env, reminders
):
    """5 June: the stand-up (07:30 UTC, 09:30 in Madrid) and a one-to-one (07:45 UTC) both have Megan; the
    budget review starts at 08:15 UTC."""
    one_to_one = meeting("1:1", "2030-06-05T09:45:00", "2030-06-05T10:00:00", attendees=[invitee(seed.COLLEAGUE)])
    sandbox_env.control.seed(events=[STAND_UP, one_to_one, REVIEW])
    # One message create answers 503 after Twilio took it: the send task finds it, and sends it once.
    sandbox_env.control.add_fault(service="twilio", method="POST", status=503, phase="after", times=1)

    # The run at 06:00 reminds what starts from 07:00 to 08:00 UTC; Megan gets both meetings' reminders.
    first = run(reminders, at(5, 6))
    stand_up = ("Daily stand-up", "Wed 05 Jun at 09:30 CEST")
    expected = Counter({(MEGAN, *stand_up): 1, (ANA, *stand_up): 1, (MEGAN, "1:1", "Wed 05 Jun at 09:45 CEST"): 1})
    assert sent(sandbox_env) == expected
    assert [(m["email"], m["why"][:24]) for m in xcom(first, "plan_reminders", "without_number")] == [
        ("nobody@fabrikam.example", "no number in qconn_meeti"),
        ("bad@fabrikam.example", "not a phone number: not "),
    ]
    variables = {m["to"]: json.loads(m["content_variables"]) for m in sandbox_env.control.messages()}
    assert variables[f"whatsapp:{ANA}"]["1"] == "Ana"
    assert variables[f"whatsapp:{ANA}"]["4"].startswith("https://teams.microsoft.com/l/meetup-join/")

    # 07:00: the review, its newline and tab made spaces, and a text where it has no Teams link.
    run(reminders, at(5, 7))
    review = (MEGAN, "Budget review (Q3)", "Wed 05 Jun at 10:15 CEST")
    assert sent(sandbox_env) == expected + Counter({review: 1})
    [review_message] = [m for m in sandbox_env.control.messages() if "Budget" in m["content_variables"]]
    assert json.loads(review_message["content_variables"])["4"] == "no Teams link, see your invitation"

    # Then the stand-up's occurrence is cancelled, the review moves from 10:15 to 13:15 in Madrid (into the
    # window of the 10:00 run), and the 06:00 run is cleared: the one-to-one now holds the stand-up's place
    # in the list of sends, and nobody is sent anything again.
    with MSGraphHook() as hook:
        occurrence = next(m for m in hook.list_events(at(5, 7), at(5, 8)) if m.series_id)
        hook.cancel_event(occurrence.id, "Not today")
        [review_id] = [m.id for m in hook.list_events(at(5, 8), at(5, 9))]
        hook.update_event(review_id, EventDetails(start=at(5, 11) + QUARTER, end=at(5, 12)))
    run(reminders, at(5, 6))
    assert sent(sandbox_env) == expected + Counter({review: 1})
    run(reminders, at(5, 10))
    moved = (MEGAN, "Budget review (Q3)", "Wed 05 Jun at 13:15 CEST")
    assert sent(sandbox_env) == expected + Counter({review: 1, moved: 1})
    # One create was answered 503 after it took effect: the send task found that message instead of sending again.
    assert sorted(twilio_creates(sandbox_env)) == [201, 201, 201, 201, 503]


def test_the_plan_leaves_out_who_declined_who_has_no_number_and_meetings_already_started(monkeypatch):
    module = load()
    monkeypatch.setattr(module.Variable, "get", lambda key, default=None: json.dumps(PHONES))
    pushed: dict[str, Any] = {}
    ti = type("TI", (), {"xcom_push": lambda self, key, value: pushed.update({key: value})})()

    def listed(subject: str, start: str, *attendees: tuple[str, str]) -> dict[str, Any]:
        people = [{"email": email, "name": None, "type": "required", "response": answer} for email, answer in attendees]
        return {"subject": subject, "start": start, "join_url": None, "attendees": people}

    meetings = [
        listed(
            "Retro", "2030-06-05T09:30:00+02:00", (seed.COLLEAGUE, "declined"), ("ana@FABRIKAM.example", "accepted")
        ),
        listed("Started", "2020-06-05T09:30:00+02:00", (seed.COLLEAGUE, "accepted")),
        listed("Nobody to tell", "2030-06-05T10:30:00+02:00", ("nobody@fabrikam.example", "none")),
    ]
    sends = module.dag.get_task("plan_reminders").python_callable(meetings, ti=ti)
    assert sends == [
        {
            "recipients": [ANA],
            "template_variables": {
                "2": "Retro",
                "3": "Wed 05 Jun at 09:30 CEST",
                "4": "no Teams link, see your invitation",
            },
            "recipient_variables": {ANA: {"1": "there"}},
        }
    ]
    assert [(m["meeting"], m["email"]) for m in pushed["without_number"]] == [
        ("Nobody to tell", "nobody@fabrikam.example")
    ]

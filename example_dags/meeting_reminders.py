"""Remind every attendee of a meeting on WhatsApp ahead of it: subject, local time and Teams link, once.

Every hour, on an interval timetable: the run for the hour ``[S, E)`` starts at ``E`` and reminds the meetings
of the connection's mailbox (recurring ones expanded into their occurrences) that start in
``[S + LEAD, E + LEAD)``. Consecutive runs' windows neither overlap nor leave a gap, so every meeting start
falls in exactly one run's window: a late run, a catch-up after the scheduler was down or a backfill reminds
its own window's meetings and no other's. With a ``LEAD`` of two hours, the run at 10:00 reminds the
meetings that start from 11:00 to 12:00, between one and two hours ahead. Within a run, the send task's
ledger makes a retry or a clear send nothing twice (see docs/reminders.md).

Phone numbers come from the Airflow Variable ``qconn_meeting_reminder_phones``: a JSON object of e-mail
address -> phone number (any written form; ``+`` and the country code, or ``DEFAULT_REGION``'s numbers). An
attendee without a number, with a number that cannot be one, or who declined, is left out and reported in
the plan task's ``without_number`` output, never failed. Meetings that have already started when the run
executes (a catch-up of a long gap) get no reminder.

Runs as is against the sandbox (``make demo``): the template is the sandbox's ``meeting_reminder`` ("Hi {{1}}, a
reminder: {{2}} starts {{3}}. Join: {{4}}"). Against Twilio, use an approved Content template of your own with
the same four placeholders. ``LEAD`` and the timetable are fixed in the code on purpose: changing either makes
the windows of the runs before and after the change overlap (duplicate reminders) or leave a gap (missed ones).
Set ``start_date`` to when you deploy it: with catch-up on, Airflow runs every hour since then.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any
from zoneinfo import ZoneInfo

import pendulum
from airflow.sdk import DAG, CronTriggerTimetable, Variable, task

from airflow_provider_qconn import normalise
from airflow_provider_qconn.operators.outlook import ListMeetingsOperator
from airflow_provider_qconn.operators.whatsapp import SendWhatsAppTemplateOperator

log = logging.getLogger(__name__)

#: How far ahead of its data interval a run looks: the run for [S, E) reminds meetings starting in [S+LEAD, E+LEAD).
LEAD = dt.timedelta(hours=2)
#: The zone the reminders give times in.
TIME_ZONE = "Europe/Madrid"
PHONES_VARIABLE = "qconn_meeting_reminder_phones"
TEMPLATE_SID = "HX5e6f708192a3b4c5d6e7f8091a2b3c4d"
#: The country of numbers written without a country code in the phone Variable (None: every number has one).
DEFAULT_REGION = "ES"
#: What the reminder says when a meeting has no Teams link (a template variable is never left empty).
NO_JOIN_URL = "no Teams link, see your invitation"


def phone_book(raw: str) -> dict[str, str]:
    """The phone Variable as lower-cased e-mail address -> phone number as written."""
    mapping = json.loads(raw or "{}")
    if not isinstance(mapping, dict):
        raise ValueError(f"the Variable {PHONES_VARIABLE} must hold a JSON object of e-mail address -> phone number")
    return {str(email).strip().casefold(): str(number) for email, number in mapping.items()}


def reminder_text(meeting: dict[str, Any]) -> dict[str, str]:
    """The variables every attendee of a meeting shares: subject, local time, join link (never empty)."""
    start = dt.datetime.fromisoformat(meeting["start"]).astimezone(ZoneInfo(TIME_ZONE))
    when = f"{start:%a %d %b} at {start:%H:%M} {start.tzname()}"
    return {
        "2": normalise.variable_safe_text(meeting["subject"], "your meeting"),
        "3": normalise.variable_safe_text(when, "soon"),
        "4": normalise.variable_safe_text(meeting["join_url"], NO_JOIN_URL),
    }


with DAG(
    dag_id="meeting_reminders",
    schedule=CronTriggerTimetable("0 * * * *", timezone="UTC", interval=dt.timedelta(hours=1)),
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=True,
    max_active_runs=4,
    user_defined_macros={"lead": LEAD},
    tags=["qconn", "outlook", "whatsapp", "example"],
    doc_md=__doc__,
) as dag:
    list_meetings = ListMeetingsOperator(
        task_id="list_meetings",
        # Empty when the run has no data interval: the operator then says what to do about it.
        start="{{ (data_interval_start + lead).isoformat() if data_interval_start else '' }}",
        end="{{ (data_interval_end + lead).isoformat() if data_interval_end else '' }}",
        time_zone=TIME_ZONE,
    )

    @task
    def plan_reminders(meetings: list[dict[str, Any]], **context: Any) -> list[dict[str, Any]]:
        """One send per meeting (recipients and their variables); the attendees who cannot be reminded go to the
        ``without_number`` XCom."""
        phones = phone_book(Variable.get(PHONES_VARIABLE, default="{}"))
        now = pendulum.now("UTC")
        sends: list[dict[str, Any]] = []
        without_number: list[dict[str, Any]] = []
        for meeting in meetings:
            if dt.datetime.fromisoformat(meeting["start"]) <= now:
                log.warning("%r started at %s, before this run: no reminder", meeting["subject"], meeting["start"])
                continue
            personal: dict[str, dict[str, str]] = {}
            for attendee in meeting["attendees"]:
                if attendee["response"] == "declined":
                    continue
                written = phones.get(attendee["email"].casefold())
                try:
                    number = normalise.phone_number(written or "", DEFAULT_REGION)
                except ValueError as error:
                    reason = f"not a phone number: {error}" if written else f"no number in {PHONES_VARIABLE}"
                    without_number.append(
                        {
                            "meeting": meeting["subject"],
                            "start": meeting["start"],
                            "email": attendee["email"],
                            "why": reason,
                        }
                    )
                    continue
                personal[number] = {"1": normalise.variable_safe_text(attendee["name"], "there")}
            if personal:
                sends.append(
                    {
                        "recipients": list(personal),
                        "template_variables": reminder_text(meeting),
                        "recipient_variables": personal,
                    }
                )
        for missing in without_number:
            log.warning(
                "Not reminded: %s of %r at %s (%s)",
                missing["email"],
                missing["meeting"],
                missing["start"],
                missing["why"],
            )
        context["ti"].xcom_push(key="without_number", value=without_number)
        return sends

    plan = plan_reminders(list_meetings.output["meetings"])

    SendWhatsAppTemplateOperator.partial(
        task_id="send_reminders",
        template_sid=TEMPLATE_SID,
        retries=2,
        retry_delay=dt.timedelta(minutes=1),
    ).expand_kwargs(plan)

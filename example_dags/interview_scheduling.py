"""Interview scheduling: a Teams interview for each candidate, then a WhatsApp message with its time and link.

For each candidate in the run's ``candidates`` param (name, e-mail, phone, and when the slot starts), one mapped
``ScheduleMeetingOperator`` task books a Teams meeting in the connection's calendar, with the candidate and the
interviewers invited. One ``SendWhatsAppTemplateOperator`` then sends every candidate the interview template
with their own variables: their name, the time in words, and their meeting's join URL. A meeting without a
join URL (the organizer's mailbox is a personal account, which Graph gives no Teams link) gets a text pointing
to the invitation e-mail instead, because WhatsApp refuses an empty variable. A deferrable
``WhatsAppDeliverySensor`` waits on the triggerer until every message is delivered, and any failure (a
meeting Graph refused, a number WhatsApp cannot deliver to) messages the person on call.

Connections: ``qconn_msgraph_default``, signed in as the mailbox that organizes the interviews (a work or
school account: personal ones get no Teams link), and ``qconn_twilio_default``. Against the sandbox
(``make sandbox``, then the printed ``export`` lines) it runs as is: the template SIDs are the sandbox's
``interview_invitation`` ("Hi {{name}}, your interview is on {{time}}. Video call: {{link}}") and
``airflow_failure_alert`` ("Airflow: {{dag}} failed at {{task}} (run {{run}})."). Against Twilio, use
Content SIDs of your own, approved for WhatsApp, with the same variables.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import Param, dag, task

from airflow_provider_qconn import normalise
from airflow_provider_qconn.exceptions import InvalidParameterError
from airflow_provider_qconn.notifications.whatsapp import WhatsAppNotifier
from airflow_provider_qconn.operators.outlook import ScheduleMeetingOperator
from airflow_provider_qconn.operators.whatsapp import SendWhatsAppTemplateOperator
from airflow_provider_qconn.sensors.whatsapp import WhatsAppDeliverySensor

INVITATION_TEMPLATE_SID = "HX4c8e2a6f0b3d5e7a9c1f3b5d7e9a0c2e"
ALERT_TEMPLATE_SID = "HX6a0d4b8e2f5c7a9d1e3b5f7a9c0e2d4f"
#: The ``link`` variable of a meeting that has no join URL.
NO_JOIN_URL = "see the calendar invitation sent to your e-mail"

CANDIDATE = {
    "type": "object",
    "required": ["name", "email", "phone", "start"],
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "email": {"type": "string", "minLength": 3},
        "phone": {"type": "string", "minLength": 3, "description": "with its country code, e.g. +598 99 123 456"},
        "start": {"type": "string", "description": "ISO 8601; without an offset it is read in time_zone"},
    },
}


def template_value(text: str | None, fallback: str) -> str:
    """``text`` in a form WhatsApp accepts as a template variable, or ``fallback`` when nothing usable is left.

    WhatsApp refuses a value that is empty, longer than 1,600 characters, or holds a newline, a tab or more than
    four consecutive spaces: whitespace is collapsed to single spaces, and a value still refused (empty, or
    too long: a URL must not be cut) gives way to ``fallback``.
    """
    value = " ".join((text or "").split())
    return fallback if normalise.value_problem(value) else value


def meeting_of(interview: dict[str, Any]) -> dict[str, Any]:
    """The ScheduleMeetingOperator arguments of one interview (``.map()`` runs it per candidate)."""
    return interview["meeting"]


@dag(
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    tags=["qconn", "outlook", "whatsapp", "example"],
    default_args={
        # No Airflow retries: the hooks retry what is transient (throttling, 5xx, lost answers) within a try, so
        # a task that still fails is worth a look. Each failed task messages the person on call, from where it ran.
        "on_failure_callback": WhatsAppNotifier(
            recipients="{{ params.on_call }}",
            template_sid=ALERT_TEMPLATE_SID,
            template_variables={"dag": "{{ dag.dag_id }}", "task": "{{ ti.task_id }}", "run": "{{ run_id }}"},
        ),
    },
    params={
        "candidates": Param(
            [
                {
                    "name": "Ana Pereira",
                    "email": "ana.pereira@fabrikam.example",
                    "phone": "+598 99 123 456",
                    "start": "2030-03-04T10:00:00",
                },
                {
                    "name": "Bruno Díaz",
                    "email": "bruno.diaz@fabrikam.example",
                    "phone": "+34 612 34 56 78",
                    "start": "2030-03-04T11:00:00",
                },
            ],
            type="array",
            minItems=1,
            items=CANDIDATE,
        ),
        "role": Param("Data Engineer", type="string", minLength=1),
        "interviewers": Param(["megan@contoso.example"], type="array", items={"type": "string"}),
        "duration_minutes": Param(45, type="integer", minimum=15, maximum=240),
        "time_zone": Param("Europe/Madrid", type="string"),
        "on_call": Param("+598 99 765 432", type="string", description="who is messaged when a task fails"),
    },
    doc_md=__doc__,
)
def interview_scheduling() -> None:
    @task
    def plan_interviews(params: dict[str, Any]) -> list[dict[str, Any]]:
        """One interview per candidate, in the order given: who, their WhatsApp number, when in words, and the
        meeting to schedule. A phone number that is not one, or that two candidates share, fails the task before
        any meeting is booked."""
        time_zone = params["time_zone"]
        length = timedelta(minutes=params["duration_minutes"])
        interviews: list[dict[str, Any]] = []
        for candidate in params["candidates"]:
            try:
                phone = normalise.phone_number(candidate["phone"])
            except ValueError as error:
                problem = f"{candidate['name']}: {candidate['phone']!r}: {error}"
                raise InvalidParameterError("candidates", problem) from None
            if any(phone == other["phone"] for other in interviews):
                raise InvalidParameterError("candidates", f"{candidate['name']}: another candidate has phone {phone}")
            start = pendulum.parse(candidate["start"], tz=time_zone).in_timezone(time_zone)
            interviews.append(
                {
                    "name": candidate["name"],
                    "phone": phone,
                    "when": f"{start.format('dddd D MMMM YYYY, HH:mm')} ({time_zone})",
                    "meeting": {
                        "subject": f"Interview: {candidate['name']} ({params['role']})",
                        # Local times with time_zone, so Outlook shows the interview in the organizer's zone.
                        "start": start.naive().isoformat(),
                        "end": (start + length).naive().isoformat(),
                        "attendees": [candidate["email"], *params["interviewers"]],
                    },
                }
            )
        return interviews

    @task(multiple_outputs=True)
    def invitations(interviews: list[dict[str, Any]], meetings: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """The WhatsApp recipients and each one's template variables. ``meetings`` holds the outputs of the
        mapped schedule tasks in map index order, the order of ``interviews``; ``meetings[:]`` reads them all in
        one request."""
        variables = {
            interview["phone"]: {
                "name": template_value(interview["name"], "there"),
                "time": template_value(interview["when"], "the time in your invitation e-mail"),
                "link": template_value(meeting["join_url"], NO_JOIN_URL),
            }
            for interview, meeting in zip(interviews, meetings[:], strict=True)
        }
        return {"recipients": list(variables), "variables": variables}

    interviews = plan_interviews()
    meetings = ScheduleMeetingOperator.partial(
        task_id="schedule_interview",
        teams_meeting=True,
        time_zone="{{ params.time_zone }}",
        content_type="text",
        content="Your interview for the {{ params.role }} position. Join with the Teams link in this invitation.",
    ).expand_kwargs(interviews.map(meeting_of))

    message = invitations(interviews, meetings.output)
    send = SendWhatsAppTemplateOperator(
        task_id="send_invitations",
        recipients=message["recipients"],
        template_sid=INVITATION_TEMPLATE_SID,
        recipient_variables=message["variables"],
        fail_on="partial",  # a candidate left without the message is worth a call
    )
    WhatsAppDeliverySensor(
        task_id="wait_for_delivery",
        message_ids=send.output["sent_message_ids"],
        deferrable=True,
        poke_interval=timedelta(minutes=1),
        timeout=timedelta(hours=4),  # WhatsApp gives up on a message it could not deliver in about 4 hours
    )


interview_scheduling()

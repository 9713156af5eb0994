"""Outlook meeting life cycle: schedule a Teams meeting, move it, then cancel it.

Qflow's three Outlook actions as Airflow tasks, chained through XCom: the reschedule task reads the id the
schedule task returned (``schedule_meeting.output["meeting_id"]``), and the cancel task the id the reschedule
task returned. Every value comes from the run's params, so a run triggered with a conf changes them.

It uses the connection ``qconn_msgraph_default``: a work or school mailbox (a personal one gets no Teams link),
or the sandbox (``make demo`` prints the connection values, ``qconn-sandbox`` keeps one running).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from airflow_provider_qconn.operators.outlook import (
    CancelMeetingOperator,
    ScheduleMeetingOperator,
    UpdateMeetingOperator,
)

with DAG(
    dag_id="outlook_meeting_lifecycle",
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    tags=["qconn", "outlook"],
    params={
        "subject": "Quarterly review",
        "attendees": ["megan@contoso.example"],
        "time_zone": "Europe/Madrid",
        "start": "2030-03-04T10:00:00",
        "end": "2030-03-04T11:00:00",
        "new_start": "2030-03-05T15:00:00",
        "new_end": "2030-03-05T16:00:00",
    },
    doc_md=__doc__,
) as dag:
    schedule_meeting = ScheduleMeetingOperator(
        task_id="schedule_meeting",
        subject="{{ params.subject }}",
        start="{{ params.start }}",
        end="{{ params.end }}",
        time_zone="{{ params.time_zone }}",
        attendees="{{ params.attendees }}",
        location="Room 4",
        teams_meeting=True,
        content="<p>Agenda: the quarter's numbers, then next quarter's plans.</p>",
    )

    reschedule_meeting = UpdateMeetingOperator(
        task_id="reschedule_meeting",
        meeting_id=schedule_meeting.output["meeting_id"],
        start="{{ params.new_start }}",
        end="{{ params.new_end }}",
        time_zone="{{ params.time_zone }}",
    )

    cancel_meeting = CancelMeetingOperator(
        task_id="cancel_meeting",
        meeting_id=reschedule_meeting.output["meeting_id"],
        comment="Sorry: the review moves to next quarter.",
    )

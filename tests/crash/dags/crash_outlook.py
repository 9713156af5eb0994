"""Meeting schedules for the crash tests, retried by the scheduler after the task process dies.

``crash_schedule_meeting`` is killed from outside by the test; ``crash_schedule_meeting_dies_after_execute``
kills itself on its first try right after ``execute()`` returned, before Airflow could record the success.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
from typing import Any

import pendulum
from airflow.sdk import DAG, Context

from airflow_provider_qconn.operators.outlook import ScheduleMeetingOperator

ATTENDEE = "megan@contoso.example"


class ScheduleThenDieOnFirstTry(ScheduleMeetingOperator):
    """Schedules, then on try 1 dies by SIGKILL before returning: the worker lost between create and record."""

    def execute(self, context: Context) -> dict[str, Any]:
        outputs = super().execute(context)
        if context["ti"].try_number == 1:
            os.kill(os.getpid(), signal.SIGKILL)
        return outputs


def _schedule_dag(dag_id: str, operator: type[ScheduleMeetingOperator]) -> DAG:
    with DAG(dag_id, schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC"), catchup=False) as dag:
        operator(
            task_id="schedule",
            start="2030-03-04T10:00:00",
            end="2030-03-04T10:30:00",
            subject="Quarterly review",
            attendees=[ATTENDEE],
            teams_meeting=True,
            retries=2,
            retry_delay=dt.timedelta(seconds=1),
        )
    return dag


crash_schedule_meeting = _schedule_dag("crash_schedule_meeting", ScheduleMeetingOperator)
crash_schedule_meeting_dies_after_execute = _schedule_dag(
    "crash_schedule_meeting_dies_after_execute", ScheduleThenDieOnFirstTry
)

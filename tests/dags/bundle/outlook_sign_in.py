"""A DAG for the sign-in tests: one meeting scheduled through a delegated connection of its own."""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG

from airflow_provider_qconn.operators.outlook import ScheduleMeetingOperator

CONN_ID = "qconn_msgraph_signed_in"

with DAG("qconn_test_outlook_sign_in", schedule=None, start_date=dt.datetime(2026, 1, 1)) as schedule_weekly:
    ScheduleMeetingOperator(
        task_id="schedule",
        msgraph_conn_id=CONN_ID,
        subject="Weekly sync",
        start="2030-03-04T10:00:00",
        end="2030-03-04T10:30:00",
        time_zone="Europe/Madrid",
    )

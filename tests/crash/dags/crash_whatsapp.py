"""WhatsApp sends for the crash tests: 200 recipients, retried by the scheduler after the task process dies.

``crash_whatsapp_send`` is killed from outside by the test; ``crash_whatsapp_send_dies_after_execute`` kills
itself on its first try right after ``execute()`` returned, before Airflow could record the success.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
from typing import Any

import pendulum
from airflow.sdk import DAG, Context

from airflow_provider_qconn.operators.whatsapp import SendWhatsAppTemplateOperator

#: 200 distinct valid Uruguayan mobile numbers.
RECIPIENTS = [f"+5989910{index:04d}" for index in range(200)]
#: The sandbox's appointment_reminder template ("Hello {{1}}, your appointment is on {{2}}.").
TEMPLATE_SID = "HX1a2b3c4d5e6f708192a3b4c5d6e7f809"


class SendThenDieOnFirstTry(SendWhatsAppTemplateOperator):
    """Sends, then on try 1 dies by SIGKILL before returning: the worker lost between send and record."""

    def execute(self, context: Context) -> dict[str, Any]:
        outputs = super().execute(context)
        if context["ti"].try_number == 1:
            os.kill(os.getpid(), signal.SIGKILL)
        return outputs


def _send_dag(dag_id: str, operator: type[SendWhatsAppTemplateOperator]) -> DAG:
    with DAG(dag_id, schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC"), catchup=False) as dag:
        operator(
            task_id="send",
            recipients=RECIPIENTS,
            template_sid=TEMPLATE_SID,
            template_variables={"1": "there", "2": "Monday at 10:00"},
            retries=2,
            retry_delay=dt.timedelta(seconds=1),
        )
    return dag


crash_whatsapp_send = _send_dag("crash_whatsapp_send", SendWhatsAppTemplateOperator)
crash_whatsapp_send_dies_after_execute = _send_dag("crash_whatsapp_send_dies_after_execute", SendThenDieOnFirstTry)

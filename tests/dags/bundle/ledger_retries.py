"""DAGs for the send-ledger tests: sends whose first try fails after Twilio accepted every message."""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow.sdk import DAG, Context, task

from airflow_provider_qconn.exceptions import QconnError
from airflow_provider_qconn.operators.whatsapp import SendWhatsAppTemplateOperator
from airflow_provider_qconn.sandbox import seed

NUMBERS = ["+59899120001", "+59899120002", "+59899120003"]


class LostAfterSending(SendWhatsAppTemplateOperator):
    """Sends, then fails its first try before Airflow records the success (as when the worker is lost then)."""

    def execute(self, context: Context) -> dict[str, Any]:
        outputs = super().execute(context)
        if context["ti"].try_number == 1:
            raise QconnError("the worker was lost after the send")
        return outputs


with DAG("qconn_test_ledger_retry", schedule=None, start_date=dt.datetime(2026, 1, 1)) as retried_send:
    LostAfterSending(
        task_id="send",
        recipients=NUMBERS,
        template_sid=seed.TEMPLATE_REMINDER,
        template_variables={"1": "{{ params.name }}"},
        params={"name": "Ana"},
        retries=1,
        retry_delay=dt.timedelta(0),
    )


with DAG("qconn_test_ledger_rechunk", schedule=None, start_date=dt.datetime(2026, 1, 1)) as rechunked_send:

    @task
    def chunks(**context: Any) -> list[list[str]]:
        """The recipient chunks this run's configuration asks for (a clear may change them)."""
        return context["dag_run"].conf["chunks"]

    SendWhatsAppTemplateOperator.partial(task_id="send", template_sid=seed.TEMPLATE_REMINDER).expand(
        recipients=chunks()
    )

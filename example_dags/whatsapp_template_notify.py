"""Send a WhatsApp appointment reminder to a list, read the messages' statuses, and branch on the outcome.

Runs as is against the sandbox (``make sandbox``, then the printed ``export`` lines): the template SID below
is the sandbox's ``appointment_reminder`` template ("Hello {{1}}, your appointment is on {{2}}."). Against
Twilio, use a Content SID of your own, approved for WhatsApp.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, task

from airflow_provider_qconn.operators.whatsapp import GetMessageStatusOperator, SendWhatsAppTemplateOperator


@dag(
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    tags=["qconn", "whatsapp", "example"],
    params={
        "template_sid": Param("HX1a2b3c4d5e6f708192a3b4c5d6e7f809", type="string", pattern="^HX[0-9a-fA-F]{32}$"),
        # Numbers as people write them; a typo is reported in failed_recipients, the rest still get the message.
        "recipients": Param("+598 99 123 456; +34 612 34 56 78; 099 765 432; +598 99 12", type="string"),
    },
)
def whatsapp_template_notify() -> None:
    send = SendWhatsAppTemplateOperator(
        task_id="send_reminder",
        recipients="{{ params.recipients }}",
        template_sid="{{ params.template_sid }}",
        template_variables={"1": "there", "2": "{{ logical_date | ds }} at 10:00"},
        recipient_variables={"+59899123456": {"1": "Ana"}, "+34612345678": {"1": "Bruno"}},
        default_region="UY",
    )
    statuses = GetMessageStatusOperator(task_id="read_statuses", message_ids=send.output["sent_message_ids"])

    @task.branch
    def route(result: str) -> str:
        return "all_sent" if result == "Sent" else "follow_up"

    @task
    def all_sent(message_statuses: list[str | None]) -> str:
        return f"Everyone got the reminder ({', '.join(str(status) for status in message_statuses)})."

    @task
    def follow_up(failed: list[str], errors: list[dict]) -> list[str]:
        """What a real DAG would hand to a person (or an e-mail) to fix: one line per failed recipient."""
        return [f"{error['recipient']}: {error['code']} {error['message']}" for error in errors] or failed

    branch = route(send.output["result"])
    branch >> [
        all_sent(statuses.output["statuses"]),
        follow_up(send.output["failed_recipients"], send.output["errors"]),
    ]


whatsapp_template_notify()

"""Send a WhatsApp template to a long list: one mapped task per chunk of recipients, in a pool sized to Twilio.

Twilio's concurrency limit is per account, not per task: ``pool slots x max_concurrency`` (the connection's
extra, 10 by default) must stay within it, whatever else sends from that account. Create the pool once, e.g.
for an account that takes 100 requests in flight, with 10 each::

    airflow pools set qconn_twilio 10 "Twilio requests: slots x max_concurrency <= the account's limit"

Each mapped instance keeps its own send ledger, and reads its siblings' records: a retry, a clear or a list that
changed and moved recipients to other chunks never sends anyone the same message twice. Runs as is against the
sandbox (``make sandbox``, then the printed ``export`` lines); the template is the sandbox's
``appointment_reminder`` ("Hello {{1}}, your appointment is on {{2}}.").
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import Param, dag, task

from airflow_provider_qconn.operators.whatsapp import SendWhatsAppTemplateOperator, recipient_chunks

#: The pool every Twilio send of the account takes a slot of (see above).
POOL = "qconn_twilio"


@dag(
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    tags=["qconn", "whatsapp", "example"],
    params={
        "template_sid": Param("HX1a2b3c4d5e6f708192a3b4c5d6e7f809", type="string", pattern="^HX[0-9a-fA-F]{32}$"),
        "customers": Param(60, type="integer", minimum=1, description="how many customers to remind"),
        "chunk_size": Param(25, type="integer", minimum=1, description="recipients per mapped task"),
    },
)
def whatsapp_bulk_mapped() -> None:
    @task
    def audience(params: dict[str, Any]) -> list[dict[str, Any]]:
        """Who gets the reminder, with each one's name; a real DAG reads them from its database or a file."""
        customers = [(f"+598991{index:05d}", f"customer {index}") for index in range(params["customers"])]
        return recipient_chunks(
            [number for number, _name in customers],
            chunk_size=params["chunk_size"],
            recipient_variables={number: {"1": name} for number, name in customers},
        )

    SendWhatsAppTemplateOperator.partial(
        task_id="send",
        template_sid="{{ params.template_sid }}",
        template_variables={"2": "{{ logical_date | ds }} at 10:00"},
        fail_on="partial",
        pool=POOL,
        retries=2,
    ).expand_kwargs(audience())


whatsapp_bulk_mapped()

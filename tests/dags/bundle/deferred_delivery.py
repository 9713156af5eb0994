"""A DAG for the secret-hygiene test: a send, then a deferrable wait for delivery, so that the Auth Token is also
read by a trigger (the asynchronous connection read) and a trigger event is stored with the task instance."""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG

from airflow_provider_qconn.operators.whatsapp import SendWhatsAppTemplateOperator
from airflow_provider_qconn.sandbox import seed
from airflow_provider_qconn.sensors.whatsapp import WhatsAppDeliverySensor

with DAG("qconn_test_deferred_delivery", schedule=None, start_date=dt.datetime(2026, 1, 1)) as deferred_delivery:
    send = SendWhatsAppTemplateOperator(
        task_id="send",
        recipients=["+59899120101"],
        template_sid=seed.TEMPLATE_REMINDER,
        template_variables={"1": "Ana", "2": "Monday"},
    )
    WhatsAppDeliverySensor(
        task_id="wait_for_delivery",
        message_ids=send.output["sent_message_ids"],
        deferrable=True,
        poke_interval=1,
    )

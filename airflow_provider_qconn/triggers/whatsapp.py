"""WhatsAppDeliveryTrigger: polls message statuses on the triggerer until they are delivered (or failed)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_qconn.delivery import FAILED_STATUSES, delivery_verdict, lookup_errors

__all__ = ["FAILED_STATUSES", "WhatsAppDeliveryTrigger", "delivery_verdict", "lookup_errors"]


class WhatsAppDeliveryTrigger(BaseTrigger):
    """Poll the status of messages every ``poke_interval`` seconds until each has a ``target_statuses`` status,
    or one has failed. The connection is read asynchronously, so the triggerer's loop never blocks."""

    def __init__(
        self,
        message_ids: Sequence[str],
        target_statuses: Sequence[str],
        poke_interval: float,
        twilio_conn_id: str,
    ) -> None:
        super().__init__()
        self.message_ids = list(message_ids)
        self.target_statuses = list(target_statuses)
        self.poke_interval = poke_interval
        self.twilio_conn_id = twilio_conn_id

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "message_ids": self.message_ids,
                "target_statuses": self.target_statuses,
                "poke_interval": self.poke_interval,
                "twilio_conn_id": self.twilio_conn_id,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow_provider_qconn.hooks.twilio import TwilioHook

        hook = TwilioHook(self.twilio_conn_id)
        while True:
            lookups = await hook.afetch_message_statuses(self.message_ids)
            details = [lookups[sid].details for sid in self.message_ids]
            errors = lookup_errors(self.message_ids, lookups)
            verdict = delivery_verdict(details, self.target_statuses)
            if errors or verdict:
                yield TriggerEvent({"verdict": verdict or "error", "details": details, "errors": errors})
                return
            self.log.info("Waiting for %d WhatsApp messages to be delivered", len(self.message_ids))
            await asyncio.sleep(self.poke_interval)

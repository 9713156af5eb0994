"""WhatsAppDeliverySensor: wait until WhatsApp messages are delivered (or read); deferrable."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseSensorOperator, Context, PokeReturnValue, conf

from airflow_provider_qconn.delivery import FAILED_STATUSES, delivery_verdict, lookup_errors
from airflow_provider_qconn.exceptions import InvalidParameterError, NonRetryableApiError

# The hook, the twilio SDK, the trigger and the input rules are imported where the sensor runs, never where a
# DAG is parsed.

#: TwilioHook.default_conn_name, without importing the hook.
DEFAULT_TWILIO_CONN_ID = "qconn_twilio_default"


class MessageNotDeliveredError(NonRetryableApiError):
    """A message ended failed or undelivered: waiting longer cannot change that."""


class WhatsAppDeliverySensor(BaseSensorOperator):
    """Wait until every message has one of ``target_statuses`` (by default ``delivered`` or ``read``).

    Fails at once when a message ends ``failed``, ``undelivered`` or ``canceled`` (with Twilio's error code), or
    when a SID is unknown. With ``deferrable=True`` (default: the ``[operators] default_deferrable`` setting) the
    wait runs on the triggerer and frees the worker slot.

    :param message_ids: Message SIDs: a list (``send.output["sent_message_ids"]``) or a separated string.
    :param target_statuses: the statuses that count as arrived.
    :param twilio_conn_id: a ``qconn_twilio`` connection.
    :param deferrable: wait on the triggerer instead of in a worker slot.
    :param poke_interval: seconds (or a timedelta) between two status checks.

    Returns (XCom) ``{"statuses": [...], "details": [...]}``: one slot per distinct SID, in input order.
    """

    template_fields: Sequence[str] = ("message_ids", "target_statuses", "twilio_conn_id")
    ui_color = "#dcf8c6"

    def __init__(
        self,
        *,
        message_ids: str | Sequence[str],
        target_statuses: Sequence[str] = ("delivered", "read"),
        twilio_conn_id: str = DEFAULT_TWILIO_CONN_ID,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poke_interval: float | timedelta = 30,
        **kwargs: Any,
    ) -> None:
        super().__init__(poke_interval=poke_interval, **kwargs)
        self.message_ids = message_ids
        self.target_statuses = target_statuses
        self.twilio_conn_id = twilio_conn_id
        self.deferrable = deferrable

    def _sids(self) -> list[str]:
        from airflow_provider_qconn import normalise

        sids = list(dict.fromkeys(normalise.message_ids(self.message_ids)))
        bad = [sid for sid in sids if not normalise.is_message_sid(sid)]
        if bad:
            raise InvalidParameterError("message_ids", f"not Message SIDs (SM or MM + 32 hex digits): {bad[:5]}")
        targets = normalise.split_list(self.target_statuses, "target_statuses")
        if not targets or set(targets) & set(FAILED_STATUSES):
            raise InvalidParameterError(
                "target_statuses", f"expected statuses such as delivered or read, got {targets}"
            )
        self.target_statuses = targets
        return sids

    def execute(self, context: Context) -> Any:
        sids = self._sids()
        if not self.deferrable:
            return super().execute(context)
        if (done := self.poke(context)) and done.is_done:
            return done.xcom_value
        from airflow_provider_qconn.triggers.whatsapp import WhatsAppDeliveryTrigger

        self.defer(
            trigger=WhatsAppDeliveryTrigger(sids, self.target_statuses, self._interval(), self.twilio_conn_id),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout) if self.timeout else None,
        )

    def _interval(self) -> float:
        interval = self.poke_interval
        return interval.total_seconds() if isinstance(interval, timedelta) else float(interval)

    def poke(self, context: Context) -> PokeReturnValue:
        from airflow_provider_qconn.hooks.twilio import TwilioHook

        sids = self._sids()
        lookups = TwilioHook(self.twilio_conn_id).fetch_message_statuses(sids)
        return self._decide([lookups[sid].details for sid in sids], lookup_errors(sids, lookups))

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        return self._decide(event["details"], event["errors"]).xcom_value

    def _decide(self, details: list[dict[str, Any] | None], errors: list[dict[str, Any]]) -> PokeReturnValue:
        if errors:
            first = errors[0]
            raise NonRetryableApiError("Twilio", None, first["code"], f"{first['message_id']}: {first['message']}")
        verdict = delivery_verdict(details, self.target_statuses)
        if verdict == "failed":
            failed = [d for d in details if d and d["status"] in FAILED_STATUSES]
            summary = "; ".join(
                f"{d['message_id']} {d['status']} ({d['error_code']}: {d['error_message']})" for d in failed
            )
            raise MessageNotDeliveredError("Twilio", None, failed[0]["error_code"], f"not delivered: {summary}")
        statuses = [detail and detail["status"] for detail in details]
        self.log.info("WhatsApp statuses: %s", ", ".join(str(status) for status in statuses))
        return PokeReturnValue(verdict == "done", {"statuses": statuses, "details": details})

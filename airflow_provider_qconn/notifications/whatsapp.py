"""WhatsAppNotifier: a WhatsApp template message as an Airflow callback (``on_failure_callback`` ...)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseNotifier, Context

from airflow_provider_qconn.exceptions import InvalidParameterError, QconnError

if TYPE_CHECKING:
    from airflow_provider_qconn.hooks.twilio import OutgoingMessage, SendResult

# The hook, the twilio SDK and the input rules are imported where the callback runs, never where a DAG is parsed.

#: TwilioHook.default_conn_name, without importing the hook.
DEFAULT_TWILIO_CONN_ID = "qconn_twilio_default"


class WhatsAppNotifier(BaseNotifier):
    """Send a WhatsApp template message when a DAG or task callback fires.

    >>> DAG(..., on_failure_callback=WhatsAppNotifier(
    ...     recipients="+598 99 123 456", template_sid="HX...",
    ...     template_variables={"1": "{{ dag.dag_id }}", "2": "{{ ti.task_id if ti else 'the DAG' }}"}))

    The parameters and their forms are those of SendWhatsAppTemplateOperator (all templated with the callback's
    context). A callback fires once, so there is no send ledger; each recipient still gets one message, with
    429s retried and ambiguous failures checked with Twilio. It raises when no recipient could be sent to, so
    the failure shows in the callback's log.

    :param recipients: phone numbers, as a list or one string separated by ``,`` or ``;``.
    :param template_sid: the Content SID (``HX`` + 32 hex digits).
    :param template_variables: placeholder -> value (text, number or boolean), for every recipient.
    :param recipient_variables: recipient -> variables, merged over ``template_variables`` for that recipient.
    :param default_region: ISO country code for numbers written without a country code.
    :param twilio_conn_id: a ``qconn_twilio`` connection.
    """

    template_fields: Sequence[str] = (
        "recipients",
        "template_sid",
        "template_variables",
        "recipient_variables",
        "default_region",
        "twilio_conn_id",
    )

    def __init__(
        self,
        *,
        recipients: str | Sequence[str],
        template_sid: str,
        template_variables: dict[str, Any] | str | None = None,
        recipient_variables: dict[str, dict[str, Any]] | str | None = None,
        default_region: str | None = None,
        twilio_conn_id: str = DEFAULT_TWILIO_CONN_ID,
    ) -> None:
        super().__init__()
        self.recipients = recipients
        self.template_sid = template_sid
        self.template_variables = template_variables
        self.recipient_variables = recipient_variables
        self.default_region = default_region
        self.twilio_conn_id = twilio_conn_id

    def _messages(self) -> tuple[str, list[OutgoingMessage]]:
        from airflow_provider_qconn import normalise
        from airflow_provider_qconn.hooks.twilio import OutgoingMessage

        request = normalise.template_send(
            self.recipients, self.template_sid, self.template_variables, self.recipient_variables, self.default_region
        )
        if request.invalid:
            self.log.warning("Not phone numbers, not notified: %s", ", ".join(item for item, _ in request.invalid))
        for _number, reason in request.invalid_variables:
            self.log.warning("Not notified: %s", reason)
        if not request.messages:
            parameter = "recipients" if request.invalid else "recipient_variables"
            raise InvalidParameterError(parameter, "none of the recipients can be sent to")
        return request.template_sid, [OutgoingMessage(number, values) for number, values in request.messages.items()]

    def _report(self, results: list[SendResult]) -> None:
        failed = [result for result in results if not result.sent]
        for result in failed:
            self.log.warning("WhatsApp notification to %s failed: %s %s", result.recipient, result.code, result.message)
        if len(failed) == len(results):
            raise QconnError(f"the WhatsApp notification reached none of its {len(results)} recipients")
        self.log.info("WhatsApp notification sent to %d of %d recipients", len(results) - len(failed), len(results))

    def notify(self, context: Context) -> None:
        from airflow_provider_qconn.hooks.twilio import TwilioHook

        template_sid, messages = self._messages()
        self._report(TwilioHook(self.twilio_conn_id).send_whatsapp_templates(messages, template_sid))

    async def async_notify(self, context: Context) -> None:
        from airflow_provider_qconn.hooks.twilio import TwilioHook

        template_sid, messages = self._messages()
        self._report(await TwilioHook(self.twilio_conn_id).asend_whatsapp_templates(messages, template_sid))


send_whatsapp_notification = WhatsAppNotifier

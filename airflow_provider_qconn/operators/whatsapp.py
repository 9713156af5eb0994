"""WhatsApp operators (Qflow's "WhatsApp" connector): send a template message, read message statuses."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator, Context

from airflow_provider_qconn.exceptions import InvalidParameterError, QconnError

if TYPE_CHECKING:
    from airflow_provider_qconn.ledger import LedgerStore

# The hook, the twilio SDK, the ledger and the input rules are imported where a task runs, never where a DAG is
# parsed.

#: TwilioHook.default_conn_name, without importing the hook.
DEFAULT_TWILIO_CONN_ID = "qconn_twilio_default"
FAIL_ON = ("error", "partial", "never")


def _fail_on(value: Any) -> str:
    if value not in FAIL_ON:
        raise InvalidParameterError("fail_on", f"expected one of {', '.join(FAIL_ON)}, got {value!r}")
    return str(value)


def _verdict(succeeded: int, total: int, words: tuple[str, str, str]) -> str:
    """All, some or none succeeded, in the operator's own words (Sent/PartiallySent/Error, Ok/...)."""
    if total and succeeded == total:
        return words[0]
    return words[1] if succeeded else words[2]


def _finish(context: Context, outputs: dict[str, Any], fail_on: str, failed_words: tuple[str, str]) -> dict[str, Any]:
    """Return the outputs, or push them and fail when ``fail_on`` says so."""
    result = outputs["result"]
    complete, none = failed_words
    should_fail = (fail_on == "error" and result == none) or (fail_on == "partial" and result != complete)
    if not should_fail:
        return outputs
    _push(context, outputs)
    summary = "; ".join(
        f"{e.get('recipient', e.get('message_id'))}: {e['code']} {e['message']}" for e in outputs["errors"][:5]
    )
    raise QconnError(f"result {result} with fail_on={fail_on!r}: {summary}")


def _push(context: Context, outputs: dict[str, Any]) -> None:
    """Push the outputs as XComs before the task fails (a return value would never be pushed)."""
    ti = context["ti"]
    for key, value in outputs.items():
        ti.xcom_push(key=key, value=value)


def recipient_chunks(
    recipients: str | Sequence[str],
    chunk_size: int = 1000,
    recipient_variables: Mapping[str, Mapping[str, Any]] | None = None,
    default_region: str | None = None,
) -> list[dict[str, Any]]:
    """Split a recipient list, with each recipient's own variables, into the keyword arguments of one
    :class:`SendWhatsAppTemplateOperator` per chunk, for Airflow's dynamic task mapping::

        SendWhatsAppTemplateOperator.partial(task_id="send", template_sid="HX...", pool="twilio").expand_kwargs(
            chunks_task_returning(recipient_chunks(numbers, 1000, variables))
        )

    Each chunk is ``{"recipients": [...], "recipient_variables": {...}}`` (the variables key only when some
    recipient of the chunk has its own). Numbers are normalised first (``default_region`` for numbers written
    without ``+``), so one person written two ways lands in one chunk only: two chunks running at once never
    both message them. Entries that are not phone numbers go with the first chunk, whose task reports them in
    ``failed_recipients``. Chunks follow the input order; if the list changes and the chunks move, the send
    ledger still finds a recipient another chunk of the same run already sent the same content to.

    :param recipients: phone numbers, as a list or one string separated by ``,`` or ``;``.
    :param chunk_size: recipients per chunk (per mapped task instance).
    :param recipient_variables: recipient -> variables, as the operator takes them.
    :param default_region: ISO country code for numbers written without a country code.
    """
    from airflow_provider_qconn import normalise

    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise InvalidParameterError("chunk_size", f"expected a whole number >= 1, got {chunk_size!r}")
    region = normalise.region(default_region)
    parsed = normalise.recipients(recipients, region)
    own = normalise.recipient_variables(recipient_variables, region) if recipient_variables else {}
    chunks: list[dict[str, Any]] = []
    for start in range(0, len(parsed.valid), chunk_size):
        numbers = parsed.valid[start : start + chunk_size]
        chunk: dict[str, Any] = {"recipients": numbers}
        variables = {number: own[number] for number in numbers if number in own}
        if variables:
            chunk["recipient_variables"] = variables
        chunks.append(chunk)
    if parsed.invalid:
        written = [entry for entry, _reason in parsed.invalid]
        if chunks:
            chunks[0]["recipients"] = [*chunks[0]["recipients"], *written]
        else:
            chunks.append({"recipients": written})
    return chunks


def _renders_to_itself(value: str) -> bool:
    """Whether Jinja, with its default syntax, would give ``value`` back unchanged: no markup (``{{``, ``{%``,
    ``{#``), and none of the line endings it rewrites (a trailing newline is dropped, ``\r\n`` becomes ``\n``)."""
    return "{" not in value and "\r" not in value and not value.endswith("\n")


def _default_syntax(env: Any) -> bool:
    """Whether a Jinja environment has the default syntax (a DAG's ``jinja_environment_kwargs`` may change it)."""
    return (
        (env.block_start_string, env.variable_start_string, env.comment_start_string) == ("{%", "{{", "{#")
        and env.line_statement_prefix is None
        and env.line_comment_prefix is None
        and env.newline_sequence == "\n"
    )


class _ListTemplatedOperator(BaseOperator):
    """An operator whose templated fields may hold thousands of strings (numbers, names, SIDs).

    Airflow compiles every string of a templated field as a Jinja template, lists mapped in with
    ``expand_kwargs`` included: about a millisecond each, a second for a chunk of a thousand recipients. A
    string Jinja would give back unchanged (with the default syntax) is returned as it is; everything else
    renders as Airflow renders it.
    """

    def render_template(
        self,
        content: Any,
        context: Context,
        jinja_env: Any = None,
        seen_oids: set[int] | None = None,
    ) -> Any:
        if (
            isinstance(content, str)
            and jinja_env is not None
            and _default_syntax(jinja_env)
            and _renders_to_itself(content)
            and not content.endswith(tuple(self.template_ext))
            and not self._renders_native()
        ):
            return content
        return super().render_template(content, context, jinja_env, seen_oids)

    def _renders_native(self) -> bool:
        """Native rendering (``render_template_as_native_obj``) may turn a plain string into another type."""
        native = getattr(self, "render_template_as_native_obj", None)
        if native is not None:
            return bool(native)
        dag = self.get_dag()
        return bool(dag and dag.render_template_as_native_obj)


class SendWhatsAppTemplateOperator(_ListTemplatedOperator):
    """Send a WhatsApp template message (a Twilio Content template) to each recipient.

    Recipients are normalised to E.164 (``default_region`` for numbers written without ``+``) and sent to once
    each, concurrently. An unparseable number, or a recipient whose ``recipient_variables`` break a rule of
    Twilio's (an empty value, a newline, a name with spaces ...), is reported in ``failed_recipients`` and not
    sent to; ``template_variables`` that break one fail the task before any request. Retries are
    safe: an Airflow Variable records what this task instance sent (hashed), so no later try of it, a retry or a
    clear, sends to a recipient twice, and none skips anyone; records are pruned 30 days after their last write.

    :param recipients: phone numbers, as a list or one string separated by ``,`` or ``;``.
    :param template_sid: the Content SID (``HX`` + 32 hex digits).
    :param template_variables: placeholder -> value (text, number or boolean), for every recipient.
    :param recipient_variables: recipient -> variables, merged over ``template_variables`` for that recipient.
    :param default_region: ISO country code for numbers written without a country code.
    :param fail_on: ``"error"`` (fail when nothing was sent), ``"partial"`` (fail unless all were sent), ``"never"``.
    :param twilio_conn_id: a ``qconn_twilio`` connection.

    Returns (and pushes as XComs) ``result`` (``Sent``/``PartiallySent``/``Error``), ``sent_message_ids``,
    ``sent_recipients`` (same order), ``failed_recipients`` and ``errors``.
    """

    template_fields: Sequence[str] = (
        "recipients",
        "template_sid",
        "template_variables",
        "recipient_variables",
        "default_region",
        "fail_on",
        "twilio_conn_id",
    )
    template_fields_renderers = {"template_variables": "json", "recipient_variables": "json"}
    ui_color = "#dcf8c6"

    def __init__(
        self,
        *,
        recipients: str | Sequence[str],
        template_sid: str,
        template_variables: dict[str, Any] | str | None = None,
        recipient_variables: dict[str, dict[str, Any]] | str | None = None,
        default_region: str | None = None,
        fail_on: str = "error",
        twilio_conn_id: str = DEFAULT_TWILIO_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(multiple_outputs=True, **kwargs)
        self.recipients = recipients
        self.template_sid = template_sid
        self.template_variables = template_variables
        self.recipient_variables = recipient_variables
        self.default_region = default_region
        self.fail_on = fail_on
        self.twilio_conn_id = twilio_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_qconn import normalise
        from airflow_provider_qconn.hooks.twilio import OutgoingMessage, TwilioHook
        from airflow_provider_qconn.ledger import LedgerKey, SendLedger
        from airflow_provider_qconn.task_instance import TaskInstanceIdentity

        fail_on = _fail_on(self.fail_on)
        request = normalise.template_send(
            self.recipients, self.template_sid, self.template_variables, self.recipient_variables, self.default_region
        )
        template_sid = request.template_sid
        errors: list[dict[str, Any]] = [
            {"recipient": written, "code": "invalid_number", "message": f"not a phone number: {reason}"}
            for written, reason in request.invalid
        ] + [
            {"recipient": number, "code": "invalid_variables", "message": reason}
            for number, reason in request.invalid_variables
        ]
        failed = [error["recipient"] for error in errors]
        if not request.messages:
            _push(context, self._outputs([], [], failed, errors))
            parameter = "recipients" if request.invalid else "recipient_variables"
            raise InvalidParameterError(
                parameter, f"none of the {len(failed)} recipients can be sent to ({errors[0]['message']})"
            )
        hook = TwilioHook(self.twilio_conn_id)
        hook.config.require_sender()
        store = self._ledger_store()
        ledger = SendLedger.load(hook.config.auth_token, store, LedgerKey.of(TaskInstanceIdentity.of(context)))
        messages = [OutgoingMessage(number, variables) for number, variables in request.messages.items()]
        results = hook.send_whatsapp_templates(messages, template_sid, ledger=ledger)
        sent = [result for result in results if result.sent]
        for result in results:
            if not result.sent:
                failed.append(result.recipient)
                errors.append({"recipient": result.recipient, "code": result.code, "message": result.message})
        outputs = self._outputs(
            [result.message_id for result in sent], [result.recipient for result in sent], failed, errors
        )
        self.log.info(
            "WhatsApp template %s: %s (%d sent, %d resumed from an earlier try, %d failed; %d writes to ledger %s)",
            template_sid,
            outputs["result"],
            len(sent),
            sum(result.resumed for result in sent),
            len(failed),
            ledger.writes,
            ledger.key.name,
        )
        self._prune(store)
        return _finish(context, outputs, fail_on, ("Sent", "Error"))

    def _ledger_store(self) -> LedgerStore:
        """Where the send ledger lives: Airflow Variables, which every worker and every later try can read."""
        from airflow_provider_qconn.ledger import VariableStore

        return VariableStore()

    def _prune(self, store: LedgerStore) -> None:
        """Delete other tasks' expired ledger records; never a reason to fail a send that went through."""
        from airflow_provider_qconn.ledger import prune

        try:
            deleted = prune(store)
        except Exception as error:
            self.log.warning("Old send ledger records could not be pruned: %s", type(error).__name__)
            return
        if deleted:
            self.log.info("Pruned %d send ledger records older than the retention.", deleted)

    @staticmethod
    def _outputs(
        message_ids: list[str | None], recipients: list[str], failed: list[str], errors: list[dict[str, Any]]
    ) -> dict[str, Any]:
        total = len(message_ids) + len(failed)
        return {
            "result": _verdict(len(message_ids), total, ("Sent", "PartiallySent", "Error")),
            "sent_message_ids": message_ids,
            "sent_recipients": recipients,
            "failed_recipients": failed,
            "errors": errors,
        }


class GetMessageStatusOperator(_ListTemplatedOperator):
    """Read the status of WhatsApp messages (Twilio Message SIDs).

    :param message_ids: Message SIDs, as a list (the send operator's ``sent_message_ids`` XCom works as is) or
        one string separated by ``,`` or ``;``.
    :param fail_on: ``"error"`` (fail when no lookup succeeded), ``"partial"`` (fail unless all succeeded),
        ``"never"``.
    :param twilio_conn_id: a ``qconn_twilio`` connection.

    Returns ``statuses`` (one slot per input SID, in input order; None where the lookup failed), ``details``
    (same slots: message_id, status, to, error_code, error_message, date_updated), ``result``
    (``Ok``/``PartiallyOk``/``Error``, counting lookups, not deliveries) and ``errors``.
    """

    template_fields: Sequence[str] = ("message_ids", "fail_on", "twilio_conn_id")
    ui_color = "#dcf8c6"

    def __init__(
        self,
        *,
        message_ids: str | Sequence[str],
        fail_on: str = "error",
        twilio_conn_id: str = DEFAULT_TWILIO_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(multiple_outputs=True, **kwargs)
        self.message_ids = message_ids
        self.fail_on = fail_on
        self.twilio_conn_id = twilio_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_qconn import normalise
        from airflow_provider_qconn.hooks.twilio import TwilioHook

        fail_on = _fail_on(self.fail_on)
        sids = normalise.message_ids(self.message_ids)
        valid = [sid for sid in sids if normalise.is_message_sid(sid)]
        lookups = TwilioHook(self.twilio_conn_id).fetch_message_statuses(valid) if valid else {}
        statuses: list[str | None] = []
        details: list[dict[str, Any] | None] = []
        errors: list[dict[str, Any]] = []
        for sid in sids:
            lookup = lookups.get(sid)
            if lookup is None:
                errors.append(
                    {
                        "message_id": sid,
                        "code": "invalid_sid",
                        "message": "not a Message SID (SM or MM + 32 hex digits)",
                    }
                )
            elif lookup.details is None:
                errors.append({"message_id": sid, "code": lookup.code, "message": lookup.message})
            details.append(lookup.details if lookup else None)
            statuses.append(lookup.details["status"] if lookup and lookup.details else None)
        succeeded = sum(slot is not None for slot in details)
        outputs = {
            "statuses": statuses,
            "details": details,
            "result": _verdict(succeeded, len(sids), ("Ok", "PartiallyOk", "Error")),
            "errors": errors,
        }
        if not valid:
            _push(context, outputs)
            raise InvalidParameterError(
                "message_ids", f"none of the {len(sids)} ids is a Message SID (SM or MM + 32 hex)"
            )
        return _finish(context, outputs, fail_on, ("Ok", "Error"))

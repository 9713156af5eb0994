"""The WhatsApp operators' execute() against the sandbox, the send ledger kept in memory between tries.

The ledger's real storage, Airflow Variables, is exercised in real task runs by tests/dags/test_send_ledger.py.
"""

from __future__ import annotations

import inspect
import json
import os
from collections import Counter
from typing import Any

import pytest

from airflow_provider_qconn.exceptions import InvalidParameterError, QconnError
from airflow_provider_qconn.ledger import MemoryStore
from airflow_provider_qconn.operators.whatsapp import GetMessageStatusOperator, SendWhatsAppTemplateOperator
from airflow_provider_qconn.sandbox import seed
from airflow_provider_qconn.sensors.whatsapp import MessageNotDeliveredError, WhatsAppDeliverySensor

NUMBERS = ["+59899120001", "+59899120002", "+59899120003", "+59899120004"]


class MemoryLedgerSend(SendWhatsAppTemplateOperator):
    """The send operator with its ledger in a dict that outlives a try, as the metadata DB does."""

    store = MemoryStore()

    def _ledger_store(self) -> MemoryStore:
        return self.store


class FakeTaskInstance:
    """The parts of a task instance the operators use: identity and xcom_push."""

    def __init__(self) -> None:
        self.dag_id, self.task_id, self.run_id, self.map_index = "dag", "send", "manual__1", -1
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        json.dumps(value)  # XCom values must be JSON-serialisable
        self.pushed[key] = value


@pytest.fixture
def variables() -> dict[str, str]:
    """The ledger records, emptied for each test."""
    MemoryLedgerSend.store = MemoryStore()
    return MemoryLedgerSend.store.values


def run(operator, ti: FakeTaskInstance | None = None) -> dict[str, Any]:
    return operator.execute({"ti": ti or FakeTaskInstance(), "dag_run": None})


def send_operator(**kwargs) -> SendWhatsAppTemplateOperator:
    return MemoryLedgerSend(task_id="send", template_sid=seed.TEMPLATE_REMINDER, **kwargs)


def test_send_returns_the_outputs_and_keeps_a_complete_ledger(sandbox_env, variables):
    outputs = run(send_operator(recipients=NUMBERS[:2], template_variables={"1": "Ana", "2": True}))
    assert outputs["result"] == "Sent"
    assert outputs["sent_recipients"] == NUMBERS[:2]
    stored = {m["sid"]: m for m in sandbox_env.control.messages()}
    assert set(stored) == set(outputs["sent_message_ids"])
    assert json.loads(stored[outputs["sent_message_ids"][0]]["content_variables"]) == {"1": "Ana", "2": "true"}
    [record] = [json.loads(value) for value in variables.values()]
    assert record["state"] == "complete" and sorted(sid for sid, _ in record["sent"].values()) == sorted(stored)
    assert not any(number in json.dumps(record) for number in NUMBERS)


def test_a_later_try_after_success_sends_nothing_and_rebuilds_the_outputs(sandbox_env, variables):
    operator = send_operator(recipients=NUMBERS[:3], template_variables={"1": "Ana"})
    first = run(operator)
    again = run(operator)
    assert again == first
    assert len(sandbox_env.control.messages()) == 3


def test_a_later_try_with_changed_inputs_keeps_what_was_sent_and_sends_only_to_new_recipients(sandbox_env, variables):
    first = run(send_operator(recipients=NUMBERS[:2], template_variables={"1": "Ana"}))
    changed = run(send_operator(recipients=NUMBERS[:3], template_variables={"1": "Bruno"}))
    assert changed["sent_recipients"] == NUMBERS[:3]
    assert changed["sent_message_ids"][:2] == first["sent_message_ids"]
    bodies = {m["to"]: m["content_variables"] for m in sandbox_env.control.messages()}
    assert len(bodies) == 3 and json.loads(bodies[f"whatsapp:{NUMBERS[2]}"]) == {"1": "Bruno"}
    assert json.loads(bodies[f"whatsapp:{NUMBERS[0]}"]) == {"1": "Ana"}


def test_unparseable_and_refused_numbers_are_reported(sandbox_env, variables):
    outputs = run(send_operator(recipients=f"{NUMBERS[0]}; whatsapp:{seed.INVALID_NUMBER}; call me"))
    assert outputs["result"] == "PartiallySent"
    assert outputs["failed_recipients"] == ["call me", seed.INVALID_NUMBER]
    assert [(e["recipient"], e["code"]) for e in outputs["errors"]] == [
        ("call me", "invalid_number"),
        (seed.INVALID_NUMBER, 21211),
    ]


def test_a_recipients_own_invalid_variables_fail_that_recipient_alone(sandbox_env, variables):
    outputs = run(
        send_operator(
            recipients=NUMBERS[:3],
            template_variables={"1": "there"},
            recipient_variables={NUMBERS[1]: {"1": ""}, NUMBERS[2]: {"2": "two\nlines"}},
        )
    )
    assert outputs["result"] == "PartiallySent"
    assert outputs["sent_recipients"] == [NUMBERS[0]]
    assert outputs["failed_recipients"] == NUMBERS[1:3]
    assert [(e["recipient"], e["code"]) for e in outputs["errors"]] == [
        (NUMBERS[1], "invalid_variables"),
        (NUMBERS[2], "invalid_variables"),
    ]
    assert "placeholder '1': the value is empty" in outputs["errors"][0]["message"]
    assert [m["to"] for m in sandbox_env.control.messages()] == [f"whatsapp:{NUMBERS[0]}"]


@pytest.mark.parametrize(
    ("template_variables", "match"),
    [
        ({"1": "Ana", "2": ""}, "placeholder '2': the value is empty"),
        ({"first name": "Ana"}, "placeholder 'first name': placeholder names have no spaces"),
        ({str(n): "x" for n in range(101)}, "101 variables"),
        ({"1": "x" * 1601}, "placeholder '1': the value has 1601 characters"),
        ({"1": "a\tb"}, "placeholder '1': the value holds a newline or a tab"),
    ],
)
def test_common_variables_twilio_would_refuse_fail_the_task_before_any_request(
    sandbox_env, variables, template_variables, match
):
    with pytest.raises(InvalidParameterError, match=rf"^template_variables: {match}"):
        run(send_operator(recipients=NUMBERS[:2], template_variables=template_variables))
    assert sandbox_env.control.journal() == []


def test_nothing_valid_fails_before_any_request_and_pushes_outputs(sandbox_env, variables):
    ti = FakeTaskInstance()
    with pytest.raises(InvalidParameterError, match=r"^recipients: none of the 2 recipients"):
        run(send_operator(recipients="abc; 12"), ti)
    assert ti.pushed["result"] == "Error" and ti.pushed["failed_recipients"] == ["abc", "12"]
    assert sandbox_env.control.journal() == []


def test_fail_on_partial_pushes_then_fails_and_a_retry_sends_only_the_rest(sandbox_env, variables):
    # First try: two creates fail before Twilio processed them, and the look-up of what happened fails too,
    # so their outcome is unknown and the task fails (fail_on="partial") keeping its ledger.
    sandbox_env.control.add_fault(service="twilio", method="POST", status=503, times=2)
    sandbox_env.control.add_fault(service="twilio", method="GET", status=400, times=2)
    operator = send_operator(recipients=NUMBERS, fail_on="partial")
    ti = FakeTaskInstance()
    with pytest.raises(QconnError, match="PartiallySent"):
        run(operator, ti)
    assert ti.pushed["result"] == "PartiallySent" and len(ti.pushed["sent_message_ids"]) == 2
    assert len(variables) == 1 and all(number not in next(iter(variables.values())) for number in NUMBERS)

    second = run(operator, FakeTaskInstance())
    assert second["result"] == "Sent"
    assert second["sent_recipients"] == NUMBERS
    assert Counter(m["to"] for m in sandbox_env.control.messages()) == Counter(f"whatsapp:{n}" for n in NUMBERS)
    assert len(variables) == 1


def test_fail_on_error_fails_only_when_nothing_was_sent(sandbox_env, variables):
    ti = FakeTaskInstance()
    with pytest.raises(QconnError, match=r"result Error with fail_on='error'.*21211"):
        run(send_operator(recipients=[seed.INVALID_NUMBER]), ti)
    assert ti.pushed["errors"][0]["code"] == 21211
    outputs = run(send_operator(recipients=[seed.INVALID_NUMBER], fail_on="never"))
    assert outputs["result"] == "Error"


def test_status_operator_keeps_order_duplicates_and_reports_bad_sids(sandbox_env, variables):
    sent = run(send_operator(recipients=NUMBERS[:2]))["sent_message_ids"]
    sandbox_env.control.advance_clock(10)
    unknown = "SM" + "f" * 32
    ids = [sent[1], "not-a-sid", sent[0], unknown, sent[1]]
    outputs = run(GetMessageStatusOperator(task_id="status", message_ids=ids))
    assert outputs["statuses"] == ["read", None, "read", None, "read"]
    assert outputs["result"] == "PartiallyOk"
    assert [d and d["message_id"] for d in outputs["details"]] == [sent[1], None, sent[0], None, sent[1]]
    assert outputs["details"][0]["to"] == NUMBERS[1]
    assert [(e["message_id"], e["code"]) for e in outputs["errors"]] == [("not-a-sid", "invalid_sid"), (unknown, 20404)]
    gets = [e for e in sandbox_env.control.journal(service="twilio") if e["method"] == "GET"]
    assert len(gets) == 3  # each distinct valid SID once


def test_status_operator_fails_when_no_lookup_succeeded(sandbox_env):
    ti = FakeTaskInstance()
    with pytest.raises(QconnError, match="result Error"):
        run(GetMessageStatusOperator(task_id="status", message_ids="SM" + "0" * 32), ti)
    assert ti.pushed["statuses"] == [None]


def test_status_operator_with_no_valid_sid_fails_before_any_request(sandbox_env):
    ti = FakeTaskInstance()
    with pytest.raises(InvalidParameterError, match=r"^message_ids: none of the 2 ids"):
        run(GetMessageStatusOperator(task_id="status", message_ids="SM1; nope", fail_on="never"), ti)
    assert ti.pushed["statuses"] == [None, None] and ti.pushed["result"] == "Error"
    assert sandbox_env.control.journal() == []


def test_xcom_list_rendered_as_text_works_as_is(sandbox_env, variables):
    sent = run(send_operator(recipients=NUMBERS[:2]))["sent_message_ids"]
    outputs = run(GetMessageStatusOperator(task_id="status", message_ids=str(sent)))
    assert outputs["result"] == "Ok" and len(outputs["statuses"]) == 2


def test_operators_import_no_sdk():
    import subprocess
    import sys

    code = (
        "import sys; import airflow_provider_qconn.operators.whatsapp, airflow_provider_qconn.sensors.whatsapp, "
        "airflow_provider_qconn.notifications.whatsapp, airflow_provider_qconn.triggers.whatsapp; "
        "print([m for m in ('twilio', 'msgraph', 'azure.identity', 'msal', 'aiohttp') if m in sys.modules])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_template_fields_cover_every_parameter():
    for operator_class in (SendWhatsAppTemplateOperator, GetMessageStatusOperator):
        parameters = set(inspect.signature(operator_class.__init__).parameters) - {"self", "kwargs"}
        assert set(operator_class.template_fields) == parameters, operator_class.__name__


@pytest.fixture
def service_conn_id(sandbox_env, monkeypatch) -> str:
    """A connection that sends through the seeded Messaging Service instead of a sender number."""
    conn = json.loads(os.environ["AIRFLOW_CONN_QCONN_TWILIO_DEFAULT"])
    conn["extra"] = {"messaging_service_sid": seed.MESSAGING_SERVICE_SID, "base_url": conn["extra"]["base_url"]}
    monkeypatch.setenv("AIRFLOW_CONN_QCONN_TWILIO_SERVICE", json.dumps(conn))
    return "qconn_twilio_service"


def test_through_a_messaging_service_an_invalid_recipient_fails_after_the_send(sandbox_env, variables, service_conn_id):
    # Twilio accepts the create and fails the message later: the send reports Sent, the status and the sensor
    # report the failure with Twilio's code.
    outputs = run(send_operator(recipients=[NUMBERS[0], seed.INVALID_NUMBER], twilio_conn_id=service_conn_id))
    assert outputs["result"] == "Sent" and outputs["failed_recipients"] == []
    sandbox_env.control.advance_clock(10)
    statuses = run(GetMessageStatusOperator(task_id="status", message_ids=outputs["sent_message_ids"]))
    assert statuses["statuses"] == ["read", "failed"]
    assert (statuses["details"][1]["to"], statuses["details"][1]["error_code"]) == (seed.INVALID_NUMBER, 21211)
    sensor = WhatsAppDeliverySensor(
        task_id="wait", message_ids=outputs["sent_message_ids"], twilio_conn_id=service_conn_id
    )
    with pytest.raises(MessageNotDeliveredError, match="21211") as caught:
        sensor.poke({"ti": FakeTaskInstance()})
    assert caught.value.code == 21211

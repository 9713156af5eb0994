"""TwilioHook against the sandbox over HTTPS, through the real twilio client (sync and async)."""

from __future__ import annotations

import json
import time
from collections import Counter

import pytest

from airflow_provider_qconn.exceptions import ConnectionConfigError, NonRetryableApiError
from airflow_provider_qconn.hooks.twilio import OutgoingMessage, TwilioHook
from airflow_provider_qconn.ledger import LedgerKey, MemoryStore, SendLedger
from airflow_provider_qconn.sandbox import seed
from tests.contracts.validation import check_journal

NUMBERS = [f"+5989912{index:04d}" for index in range(12)]
KEY = LedgerKey("20260101", "run_task", -1)


def outgoing(numbers, **variables) -> list[OutgoingMessage]:
    return [OutgoingMessage(number, {"1": f"user {index}", **variables}) for index, number in enumerate(numbers)]


def creates(sandbox) -> list[dict]:
    return [e for e in sandbox.control.journal(service="twilio") if e["method"] == "POST"]


def stored_per_recipient(sandbox) -> Counter:
    return Counter(message["to"].removeprefix("whatsapp:") for message in sandbox.control.messages())


@pytest.fixture
def hook(sandbox_env) -> TwilioHook:
    return TwilioHook(backoff_seconds=0.01, max_concurrency=4)


def test_all_sent_once_each_in_input_order(hook, sandbox_env):
    results = hook.send_whatsapp_templates(outgoing(NUMBERS[:5]), seed.TEMPLATE_REMINDER)
    assert [r.recipient for r in results] == NUMBERS[:5]
    assert all(r.sent and r.message_id.startswith("SM") and r.status == "queued" for r in results)
    assert len(creates(sandbox_env)) == 5
    stored = {m["sid"]: m for m in sandbox_env.control.messages()}
    assert json.loads(stored[results[2].message_id]["content_variables"]) == {"1": "user 2"}
    assert stored[results[2].message_id]["from"] == f"whatsapp:{seed.WHATSAPP_SENDER}"
    assert stored[results[2].message_id]["content_sid"] == seed.TEMPLATE_REMINDER
    assert check_journal(sandbox_env.control.journal()) == set()  # our requests, as the Twilio contract says


def test_partial_failure_reports_twilio_code_and_sends_the_rest(hook, sandbox_env):
    numbers = [NUMBERS[0], seed.INVALID_NUMBER, NUMBERS[1]]
    results = hook.send_whatsapp_templates(outgoing(numbers), seed.TEMPLATE_REMINDER)
    assert [r.sent for r in results] == [True, False, True]
    assert results[1].code == 21211 and "Invalid 'To' Phone Number" in results[1].message
    assert not results[1].message.startswith("Unable to create record")
    assert len(creates(sandbox_env)) == 3  # a 400 is not retried


def test_all_failed(hook, sandbox_env):
    hook_unknown = TwilioHook(backoff_seconds=0.01)
    results = hook_unknown.send_whatsapp_templates(outgoing(NUMBERS[:2]), "HX" + "0" * 32)
    assert [r.code for r in results] == [21655, 21655]


def test_429_storm_is_retried_and_nobody_gets_two(hook, sandbox_env):
    sandbox_env.control.add_fault(service="twilio", method="POST", status=429, ratio=0.5)
    hook = TwilioHook(backoff_seconds=0.001, max_concurrency=4, max_attempts=12)
    results = hook.send_whatsapp_templates(outgoing(NUMBERS), seed.TEMPLATE_REMINDER)
    assert all(r.sent for r in results)
    assert set(stored_per_recipient(sandbox_env).values()) == {1}
    statuses = Counter(e["status"] for e in creates(sandbox_env))
    assert statuses[201] == len(NUMBERS) and statuses[429] > 0


def test_throttled_to_the_end_reports_throttled(sandbox_env):
    sandbox_env.control.add_fault(service="twilio", method="POST", status=429)
    hook = TwilioHook(backoff_seconds=0.001, max_attempts=3)
    [result] = hook.send_whatsapp_templates(outgoing(NUMBERS[:1]), seed.TEMPLATE_REMINDER)
    assert result.code == "throttled" and not result.sent
    assert len(creates(sandbox_env)) == 3


@pytest.mark.parametrize(
    "fault",
    [
        {"status": 500, "phase": "after"},
        {"drop": True, "phase": "after"},
        {"latency": 1.5, "phase": "after"},
    ],
    ids=["5xx-after-create", "dropped-after-create", "timeout-after-create"],
)
def test_ambiguous_failure_after_create_is_reconciled_not_resent(sandbox_env, fault):
    sandbox_env.control.add_fault(service="twilio", method="POST", path="Messages.json$", times=1, **fault)
    hook = TwilioHook(backoff_seconds=0.01, timeout=0.5)
    [result] = hook.send_whatsapp_templates(outgoing(NUMBERS[:1]), seed.TEMPLATE_REMINDER)
    assert result.sent
    assert [m["sid"] for m in sandbox_env.control.messages()] == [result.message_id]
    # One create, one page of the look-up and the template it compares bodies with (a slow answer is
    # journaled when it ends, after the look-up).
    deadline = time.monotonic() + 5
    while len(sandbox_env.control.journal(service="twilio")) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    paths = Counter(e["path"] for e in sandbox_env.control.journal(service="twilio"))
    assert paths == {
        f"/2010-04-01/Accounts/{seed.ACCOUNT_SID}/Messages.json": 2,
        f"/v1/Content/{seed.TEMPLATE_REMINDER}": 1,
    }


def test_ambiguous_failure_before_create_is_resent_once(sandbox_env):
    sandbox_env.control.add_fault(service="twilio", method="POST", status=503, times=1)
    hook = TwilioHook(backoff_seconds=0.01)
    [result] = hook.send_whatsapp_templates(outgoing(NUMBERS[:1]), seed.TEMPLATE_REMINDER)
    assert result.sent
    assert [e["method"] for e in sandbox_env.control.journal(service="twilio")] == ["POST", "GET", "POST"]
    assert len(sandbox_env.control.messages()) == 1


class WorkerDied(BaseException):
    """Stands for the worker being killed: not an Exception, so nothing catches it."""


class DiesAtWrite(MemoryStore):
    """A store whose worker dies at its ``at``-th write."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at = at
        self.writes = 0

    def set(self, key: str, value: str) -> None:
        self.writes += 1
        if self.writes == self.at:
            raise WorkerDied
        super().set(key, value)


@pytest.mark.parametrize("dies_at", [3, 4], ids=["while-sending", "at-the-last-write"])
def test_retry_after_a_kill_neither_duplicates_nor_skips(sandbox_env, dies_at):
    sandbox_env.control.settings(latency={"twilio": 0.05})
    store = DiesAtWrite(dies_at)
    hook = TwilioHook(backoff_seconds=0.01, max_concurrency=1)  # batches of 4 recipients: 3 marks, 1 last write
    messages = outgoing(NUMBERS[:10])
    with pytest.raises(WorkerDied):
        hook.send_whatsapp_templates(messages, seed.TEMPLATE_REMINDER, ledger=SendLedger(seed.AUTH_TOKEN, store, KEY))
    time.sleep(0.2)  # a create abandoned by the dying worker may still land
    first = stored_per_recipient(sandbox_env)
    assert 0 < len(first) <= 10 and (dies_at == 4 or len(first) < 10)
    assert "+59899120000" not in store.values[KEY.name]  # hashed, never the number

    second_try = SendLedger.load(seed.AUTH_TOKEN, store, KEY)
    results = TwilioHook(backoff_seconds=0.01, max_concurrency=1).send_whatsapp_templates(
        messages, seed.TEMPLATE_REMINDER, ledger=second_try
    )
    assert all(r.sent for r in results)
    assert stored_per_recipient(sandbox_env) == Counter(NUMBERS[:10])
    assert {r.recipient for r in results if r.resumed} == set(first)
    assert {r.message_id for r in results} == {m["sid"] for m in sandbox_env.control.messages()}


def test_a_send_whose_last_answer_failed_stays_in_flight_for_the_next_try(sandbox_env):
    sandbox_env.control.add_fault(service="twilio", method="POST", status=503, phase="after", times=1)
    sandbox_env.control.add_fault(service="twilio", method="GET", status=400, times=1)  # the look-up fails too
    store = MemoryStore()
    ledger = SendLedger(seed.AUTH_TOKEN, store, KEY)
    hook = TwilioHook(backoff_seconds=0.01, max_attempts=2)
    [first] = hook.send_whatsapp_templates(outgoing(NUMBERS[:1]), seed.TEMPLATE_REMINDER, ledger=ledger)
    assert not first.sent and first.unresolved and first.code == "unknown_outcome"
    assert len(sandbox_env.control.messages()) == 1  # Twilio did create it

    retry = SendLedger.load(seed.AUTH_TOKEN, store, KEY)
    assert retry.in_flight(NUMBERS[0], "") is not None
    [second] = TwilioHook(backoff_seconds=0.01).send_whatsapp_templates(
        outgoing(NUMBERS[:1]), seed.TEMPLATE_REMINDER, ledger=retry
    )
    assert second.sent and second.resumed
    assert [m["sid"] for m in sandbox_env.control.messages()] == [second.message_id]


def test_a_later_message_from_elsewhere_is_not_taken_for_ours(sandbox_env):
    # An earlier try marked the recipient in flight two minutes ago and died before sending anything; since then
    # another DAG sent this number a message from the same sender.
    [foreign] = TwilioHook().send_whatsapp_templates(outgoing(NUMBERS[:1]), seed.TEMPLATE_ORDER)
    ledger = SendLedger(seed.AUTH_TOKEN)
    ledger.begin([(NUMBERS[0], "")], time.time() - 120)
    # It could only have sent within ~68 s of the mark: 60 s to start the send, then one attempt of ~3 s.
    hook = TwilioHook(timeout=1, max_attempts=1, backoff_seconds=0.01)
    [result] = hook.send_whatsapp_templates(outgoing(NUMBERS[:1]), seed.TEMPLATE_REMINDER, ledger=ledger)
    assert result.sent and result.message_id != foreign.message_id and not result.resumed
    assert len(sandbox_env.control.messages()) == 2


def test_ledger_writes_are_batched(sandbox_env):
    ledger = SendLedger(seed.AUTH_TOKEN)
    TwilioHook(max_concurrency=4).send_whatsapp_templates(outgoing(NUMBERS), seed.TEMPLATE_REMINDER, ledger=ledger)
    assert ledger.writes == 2  # 12 recipients fit one batch of 4 x 4: one write before, one after


def test_a_sent_ledger_entry_is_not_sent_again(hook, sandbox_env):
    ledger = SendLedger(seed.AUTH_TOKEN)
    first = hook.send_whatsapp_templates(outgoing(NUMBERS[:3]), seed.TEMPLATE_REMINDER, ledger=ledger)
    again = hook.send_whatsapp_templates(outgoing(NUMBERS[:3]), seed.TEMPLATE_REMINDER, ledger=ledger)
    assert [r.message_id for r in again] == [r.message_id for r in first]
    assert all(r.resumed for r in again)
    assert len(creates(sandbox_env)) == 3


def test_messaging_service_sender(sandbox_env, monkeypatch):
    conn = json.loads(sandbox_env.control and __import__("os").environ["AIRFLOW_CONN_QCONN_TWILIO_DEFAULT"])
    conn["extra"] = {"messaging_service_sid": seed.MESSAGING_SERVICE_SID, "base_url": conn["extra"]["base_url"]}
    monkeypatch.setenv("AIRFLOW_CONN_QCONN_TWILIO_SERVICE", json.dumps(conn))
    [result] = TwilioHook("qconn_twilio_service").send_whatsapp_templates(outgoing(NUMBERS[:1]), seed.TEMPLATE_REMINDER)
    assert result.status == "accepted"
    [create] = creates(sandbox_env)
    assert "MessagingServiceSid=" in create["body"] and "From=" not in create["body"]


def test_statuses_in_order_with_unknown_sids_and_retries(hook, sandbox_env):
    sent = hook.send_whatsapp_templates(outgoing([NUMBERS[0], seed.FAILED_NUMBER]), seed.TEMPLATE_REMINDER)
    sandbox_env.control.advance_clock(10)
    sandbox_env.control.add_fault(service="twilio", method="GET", status=503, times=2)
    unknown = "SM" + "0" * 32
    sids = [sent[1].message_id, unknown, sent[0].message_id, sent[1].message_id]
    lookups = hook.fetch_message_statuses(sids)
    assert set(lookups) == {sent[0].message_id, sent[1].message_id, unknown}
    assert lookups[sent[0].message_id].details["status"] == "read"
    failed = lookups[sent[1].message_id].details
    assert failed == {
        "message_id": sent[1].message_id,
        "status": "failed",
        "to": seed.FAILED_NUMBER,
        "error_code": 63016,
        "error_message": failed["error_message"],
        "date_updated": failed["date_updated"],
    }
    assert lookups[unknown].code == 20404 and lookups[unknown].details is None
    gets = [e for e in sandbox_env.control.journal(service="twilio") if e["method"] == "GET"]
    assert len(gets) == 3 + 2  # three distinct SIDs, two 503s retried


def test_missing_sender_fails_before_any_request(sandbox_env, monkeypatch):
    conn = json.loads(__import__("os").environ["AIRFLOW_CONN_QCONN_TWILIO_DEFAULT"])
    conn["extra"].pop("from_number")
    monkeypatch.setenv("AIRFLOW_CONN_QCONN_TWILIO_DEFAULT", json.dumps(conn))
    with pytest.raises(ConnectionConfigError, match="from_number"):
        TwilioHook().send_whatsapp_templates(outgoing(NUMBERS[:1]), seed.TEMPLATE_REMINDER)
    assert sandbox_env.control.journal() == []


def test_test_connection_and_template(hook, sandbox_env, monkeypatch):
    ok, message = hook.test_connection()
    assert ok and seed.ACCOUNT_SID in message
    assert hook.get_template(seed.TEMPLATE_ORDER)["variables"]["order_id"] == "1234"
    with pytest.raises(NonRetryableApiError, match="20404"):
        hook.get_template("HX" + "1" * 32)
    conn = json.loads(__import__("os").environ["AIRFLOW_CONN_QCONN_TWILIO_DEFAULT"])
    conn["password"] = "wrong-token"
    monkeypatch.setenv("AIRFLOW_CONN_QCONN_TWILIO_DEFAULT", json.dumps(conn))
    ok, message = TwilioHook().test_connection()
    assert not ok and "20003" in message and "wrong-token" not in message


def test_many_statuses_are_read_from_the_newest_page_and_the_rest_fetched(sandbox_env):
    hook = TwilioHook(max_concurrency=8)
    many = [f"+5989913{index:04d}" for index in range(60)]
    sids = [r.message_id for r in hook.send_whatsapp_templates(outgoing(many), seed.TEMPLATE_REMINDER)]
    sandbox_env.control.clear_journal()
    unknown = "SM" + "e" * 32
    lookups = hook.fetch_message_statuses([*sids, unknown, sids[0]])
    assert [lookups[sid].details["to"] for sid in sids] == many
    assert lookups[unknown].code == 20404
    assert check_journal(sandbox_env.control.journal()) == set()
    paths = [e["path"] for e in sandbox_env.control.journal(service="twilio")]
    # One page of the newest messages holds all 60; only the unknown SID is fetched on its own.
    assert paths == [
        f"/2010-04-01/Accounts/{seed.ACCOUNT_SID}/Messages.json",
        f"/2010-04-01/Accounts/{seed.ACCOUNT_SID}/Messages/{unknown}.json",
    ]


def test_twilios_retry_after_sets_the_wait_before_the_next_attempt(sandbox_env):
    from airflow_provider_qconn.hooks.twilio_retry import RetryPolicy

    waited: list[float | None] = []

    class RecordingPolicy(RetryPolicy):
        def wait(self, attempt, failure):
            waited.append(failure.retry_after if failure else None)
            return 0.0

    sandbox_env.control.add_fault(service="twilio", method="POST", status=429, retry_after=7, times=1)
    hook = TwilioHook()
    hook.retry = RecordingPolicy()
    [result] = hook.send_whatsapp_templates(outgoing(NUMBERS[:1]), seed.TEMPLATE_REMINDER)
    assert result.sent and waited == [7.0]
    assert len(creates(sandbox_env)) == 2

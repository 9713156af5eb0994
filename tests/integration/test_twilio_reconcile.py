"""Finding what an earlier send attempt created, for a recipient with a long history from our sender, wherever
Twilio lists messages not sent yet (the sandbox's ``twilio_unsent_placement``): the real twilio client."""

from __future__ import annotations

import json
import threading
import time

import pytest

from airflow_provider_qconn.hooks import twilio_reconcile
from airflow_provider_qconn.hooks.twilio import OutgoingMessage, TwilioHook
from airflow_provider_qconn.ledger import SendLedger
from airflow_provider_qconn.sandbox import seed
from airflow_provider_qconn.sandbox.client import SandboxControl

RECIPIENT = "+59899140000"
TO = f"whatsapp:{RECIPIENT}"
SENDER = f"whatsapp:{seed.WHATSAPP_SENDER}"
OUR_VARIABLES = {"1": "Ana", "2": "Friday"}
HISTORY = 64
MESSAGES_PATH = f"/2010-04-01/Accounts/{seed.ACCOUNT_SID}/Messages.json"


def create(twilio_client, template: str = seed.TEMPLATE_REMINDER, variables: dict | None = None) -> str:
    """One template message to the recipient from our sender, as any earlier attempt or other DAG sends it."""
    variables = OUR_VARIABLES if variables is None else variables
    message = twilio_client.messages.create(
        to=TO, from_=SENDER, content_sid=template, content_variables=json.dumps(variables)
    )
    return message.sid


def seed_history(sandbox, twilio_client, age: float = 3600) -> list[str]:
    """HISTORY messages with our very text, created ``age`` seconds ago (sent long since)."""
    sandbox.control.advance_clock(-age)
    sids = [create(twilio_client) for _ in range(HISTORY)]
    sandbox.control.advance_clock(age)
    return sids


def position_listed(twilio_client, sid: str) -> int:
    return [message.sid for message in twilio_client.messages.list(to=TO)].index(sid)


def send_ours(ledger: SendLedger | None = None):
    [result] = TwilioHook(backoff_seconds=0.01).send_whatsapp_templates(
        [OutgoingMessage(RECIPIENT, OUR_VARIABLES)], seed.TEMPLATE_REMINDER, ledger=ledger
    )
    return result


def creates(sandbox) -> int:
    return sum(1 for e in sandbox.control.journal(service="twilio") if e["method"] == "POST")


@pytest.mark.parametrize("page_size", [1000, 25], ids=["one-page", "three-pages"])
@pytest.mark.parametrize("state", ["queued", "sent"])
@pytest.mark.parametrize("placement", ["first", "last"])
def test_an_earlier_tries_message_is_found_among_older_ones_with_the_same_text(
    sandbox_env, twilio_client, monkeypatch, placement, state, page_size
):
    monkeypatch.setattr(twilio_reconcile, "PAGE_SIZE", page_size)
    delay = 600 if state == "queued" else 1
    sandbox_env.control.settings(twilio_unsent_placement=placement, status_delays={"sent": delay})
    older = seed_history(sandbox_env, twilio_client)
    ledger = SendLedger(seed.AUTH_TOKEN)
    ledger.begin([(RECIPIENT, "")], time.time())
    ours = create(twilio_client)  # the earlier try created it and died before recording the SID
    if state == "sent":
        sandbox_env.control.advance_clock(5)
    # The hard case is real: queued and listed last, ours comes after the whole history.
    expected_position = HISTORY if (state, placement) == ("queued", "last") else 0
    assert position_listed(twilio_client, ours) == expected_position
    sandbox_env.control.clear_journal()

    result = send_ours(ledger)

    assert result.sent and result.resumed and result.message_id == ours
    assert result.message_id not in older
    assert creates(sandbox_env) == 0


@pytest.mark.parametrize("placement", ["first", "last"])
def test_a_message_with_other_content_inside_the_window_is_not_taken_for_ours(
    sandbox_env, twilio_client, monkeypatch, placement
):
    monkeypatch.setattr(twilio_reconcile, "PAGE_SIZE", 25)
    sandbox_env.control.settings(twilio_unsent_placement=placement, status_delays={"sent": 600})
    older = seed_history(sandbox_env, twilio_client)
    ledger = SendLedger(seed.AUTH_TOKEN)
    ledger.begin([(RECIPIENT, "")], time.time())
    # The earlier try died before creating anything; meanwhile other DAGs sent this number other texts.
    other_template = create(twilio_client, seed.TEMPLATE_ORDER, {"name": "Ana"})
    other_variables = create(twilio_client, variables={"1": "Bruno", "2": "Friday"})
    sandbox_env.control.clear_journal()

    result = send_ours(ledger)

    assert result.sent and not result.resumed
    assert result.message_id not in {other_template, other_variables, *older}
    assert creates(sandbox_env) == 1
    stored = {m["sid"]: m for m in sandbox_env.control.messages()}
    assert stored[result.message_id]["body"] == "Hello Ana, your appointment is on Friday."


@pytest.mark.parametrize("placement", ["first", "last"])
def test_an_ambiguous_create_is_found_among_a_long_history_and_not_sent_again(
    sandbox_env, twilio_client, monkeypatch, placement
):
    monkeypatch.setattr(twilio_reconcile, "PAGE_SIZE", 25)
    sandbox_env.control.settings(twilio_unsent_placement=placement, status_delays={"sent": 600})
    older = seed_history(sandbox_env, twilio_client)
    other = create(twilio_client, seed.TEMPLATE_ORDER, {"name": "Ana"})
    sandbox_env.control.add_fault(service="twilio", method="POST", status=500, phase="after", times=1)

    result = send_ours()

    to_recipient = [m for m in sandbox_env.control.messages() if m["to"] == TO]
    assert len(to_recipient) == HISTORY + 2  # the history, the other DAG's, and ours once
    [ours] = [m for m in to_recipient if m["sid"] not in {other, *older}]
    assert result.sent and result.message_id == ours["sid"] and result.status == "queued"


def test_a_message_sent_while_the_listing_is_read_is_found_by_the_sent_pass(sandbox_env, twilio_client, monkeypatch):
    # Queued messages listed last: ours is on the third page of 25. It gets its date_sent after the first page
    # is read, so it moves to the top of the sent ones, behind the pages read: the DateSent listing finds it.
    monkeypatch.setattr(twilio_reconcile, "PAGE_SIZE", 25)
    sandbox_env.control.settings(twilio_unsent_placement="last", status_delays={"sent": 600})
    seed_history(sandbox_env, twilio_client)
    ledger = SendLedger(seed.AUTH_TOKEN)
    ledger.begin([(RECIPIENT, "")], time.time())
    ours = create(twilio_client)
    sandbox_env.control.clear_journal()
    sandbox_env.control.add_fault(service="twilio", method="GET", path="Messages.json$", latency=1.5)
    control = SandboxControl(sandbox_env.url, verify=str(sandbox_env.ca_path))

    def send_it_once_the_first_page_is_read() -> None:
        deadline = time.monotonic() + 30
        while not control.journal(service="twilio") and time.monotonic() < deadline:
            time.sleep(0.01)
        control.advance_clock(700)

    mover = threading.Thread(target=send_it_once_the_first_page_is_read)
    mover.start()
    try:
        result = send_ours(ledger)
    finally:
        mover.join()
        control.close()

    assert result.sent and result.resumed and result.message_id == ours
    lists = [e for e in sandbox_env.control.journal(service="twilio") if e["path"] == MESSAGES_PATH]
    assert [("DateSent%3E" in e["query"]) for e in lists] == [False, False, False, True]

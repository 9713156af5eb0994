"""A WhatsApp send whose task process dies, retried by the scheduler: every recipient gets exactly one message."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_qconn.sandbox.server import Sandbox
from tests.crash.dags.crash_whatsapp import RECIPIENTS
from tests.crash.harness import Deployment

TASK = "send"
#: Latency on each message create: 200 sends at the operator's default concurrency (10) take about 6 s.
CREATE_LATENCY_SECONDS = 0.3
#: Kill once this many messages exist: the first chunk (40) is recorded, the second is in flight.
KILL_AFTER_CREATES = 50


def is_create(entry: dict[str, Any]) -> bool:
    return entry["method"] == "POST" and entry["path"].endswith("/Messages.json") and entry["status"] == 201


def creates_so_far(sandbox: Sandbox, at_least: int) -> Callable[[], int | None]:
    """A check for the sandbox's journal: how many messages it has created, once that is ``at_least``."""
    seen = {"id": 0, "creates": 0}

    def count() -> int | None:
        for entry in sandbox.control.journal(service="twilio", since=seen["id"]):
            seen["id"] = entry["id"]
            seen["creates"] += is_create(entry)
        return seen["creates"] if seen["creates"] >= at_least else None

    return count


def assert_everyone_messaged_once(deployment: Deployment, sandbox: Sandbox, dag_id: str, run_id: str) -> None:
    """200 messages, one per recipient, and the task's outputs name exactly those messages."""
    logs = deployment.task_logs(dag_id, run_id, TASK)
    stored = sandbox.control.messages()
    per_recipient = Counter(message["to"].removeprefix("whatsapp:") for message in stored)
    duplicates = {to: n for to, n in per_recipient.items() if n > 1}
    assert not duplicates, (
        f"{len(duplicates)} recipients were messaged more than once ({len(stored)} messages for "
        f"{len(per_recipient)} recipients), e.g. {sorted(duplicates.items())[:3]}\n{logs}"
    )
    assert sorted(per_recipient) == sorted(RECIPIENTS), f"recipients never messaged\n{logs}"

    assert deployment.xcom(dag_id, run_id, TASK, "result") == "Sent"
    sids = deployment.xcom(dag_id, run_id, TASK, "sent_message_ids")
    recipients = deployment.xcom(dag_id, run_id, TASK, "sent_recipients")
    assert recipients == RECIPIENTS
    assert dict(zip(recipients, sids, strict=True)) == {m["to"].removeprefix("whatsapp:"): m["sid"] for m in stored}
    assert deployment.xcom(dag_id, run_id, TASK, "failed_recipients") == []


@pytest.mark.parametrize("with_supervisor", [False, True], ids=["task-process", "whole-task-process-tree"])
def test_a_send_killed_part_way_is_completed_by_the_retry_messaging_everyone_exactly_once(
    deployment: Deployment, sandbox: Sandbox, with_supervisor: bool
):
    dag_id = "crash_whatsapp_send"
    sandbox.control.add_fault(service="twilio", method="POST", path=r"/Messages\.json$", latency=CREATE_LATENCY_SECONDS)
    run_id = deployment.trigger(dag_id)
    first_try = deployment.wait_until_running(dag_id, run_id, TASK, try_number=1)

    created = deployment.watch_running_task(
        first_try, creates_so_far(sandbox, KILL_AFTER_CREATES), f"{KILL_AFTER_CREATES} messages were created"
    )
    deployment.kill_task(first_try, with_supervisor=with_supervisor)
    assert created < len(RECIPIENTS), "the first try finished before it could be killed: raise the latency"
    sandbox.control.clear_faults()  # the retry may go at full speed

    ti = deployment.wait_until_finished(dag_id, run_id, TASK)
    assert (ti["state"], ti["try_number"]) == ("success", 2), deployment.task_logs(dag_id, run_id, TASK)
    # Without its supervisor nobody reported the death: the scheduler's heartbeat timeout found it.
    assert bool(deployment.heartbeat_timeouts(run_id)) == with_supervisor
    assert_everyone_messaged_once(deployment, sandbox, dag_id, run_id)


def test_a_send_whose_process_dies_after_execute_returned_sends_nothing_again_on_the_retry(
    deployment: Deployment, sandbox: Sandbox
):
    dag_id = "crash_whatsapp_send_dies_after_execute"
    run_id = deployment.trigger(dag_id)

    ti = deployment.wait_until_finished(dag_id, run_id, TASK)

    assert (ti["state"], ti["try_number"]) == ("success", 2), deployment.task_logs(dag_id, run_id, TASK)
    assert_everyone_messaged_once(deployment, sandbox, dag_id, run_id)

"""A meeting schedule whose task process dies, retried by the scheduler: exactly one meeting exists."""

from __future__ import annotations

from typing import Any

from airflow_provider_qconn.sandbox import seed
from airflow_provider_qconn.sandbox.server import Sandbox
from tests.crash.dags.crash_outlook import ATTENDEE
from tests.crash.harness import Deployment, wait_for

TASK = "schedule"


def creates(sandbox: Sandbox) -> list[dict[str, Any]]:
    """The event creates Graph answered so far."""
    return [
        entry
        for entry in sandbox.control.journal(service="graph")
        if entry["method"] == "POST" and entry["path"].endswith("/events")
    ]


def calendar(sandbox: Sandbox, mailbox: str) -> list[dict[str, Any]]:
    return [event for event in sandbox.control.mailbox_events(mailbox) if event["folder"] == "calendar"]


def assert_one_meeting(deployment: Deployment, sandbox: Sandbox, dag_id: str, run_id: str) -> None:
    """One meeting in the organizer's calendar, one invitation, and the task's outputs name that meeting as
    Graph described it to every create."""
    logs = deployment.task_logs(dag_id, run_id, TASK)
    meetings = calendar(sandbox, seed.ORGANIZER)
    assert len(meetings) == 1, f"{len(meetings)} meetings: {[m['subject'] for m in meetings]}\n{logs}"
    assert len(calendar(sandbox, ATTENDEE)) == 1
    answers = {
        (answer["id"], answer["webLink"], answer["onlineMeeting"]["joinUrl"], answer["iCalUId"])
        for answer in (entry["response_json"] for entry in creates(sandbox))
    }
    outputs = tuple(
        deployment.xcom(dag_id, run_id, TASK, key) for key in ("meeting_id", "web_link", "join_url", "ical_uid")
    )
    assert answers == {outputs}, f"Graph's answers {answers}, the task's outputs {outputs}"
    assert outputs[0] == meetings[0]["immutableId"]


def test_a_schedule_killed_after_graph_created_the_meeting_but_before_its_answer_yields_one_meeting(
    deployment: Deployment, sandbox: Sandbox
):
    dag_id = "crash_schedule_meeting"
    # Graph creates the meeting at once but answers only after 5 s: the kill lands in between.
    sandbox.control.add_fault(service="graph", method="POST", path=r"/events$", latency=5, phase="after", times=1)
    run_id = deployment.trigger(dag_id)
    first_try = deployment.wait_until_running(dag_id, run_id, TASK, try_number=1)

    deployment.watch_running_task(first_try, lambda: calendar(sandbox, seed.ORGANIZER) or None, "Graph created it")
    deployment.kill_task(first_try)

    ti = deployment.wait_until_finished(dag_id, run_id, TASK)
    assert (ti["state"], ti["try_number"]) == ("success", 2), deployment.task_logs(dag_id, run_id, TASK)
    # Both tries asked Graph to create it (the first one's answer, delayed, is journaled last).
    wait_for(lambda: len(creates(sandbox)) == 2 or None, 30, "both creates to be answered")
    assert_one_meeting(deployment, sandbox, dag_id, run_id)


def test_a_schedule_whose_process_dies_after_execute_returned_yields_one_meeting(
    deployment: Deployment, sandbox: Sandbox
):
    dag_id = "crash_schedule_meeting_dies_after_execute"
    run_id = deployment.trigger(dag_id)

    ti = deployment.wait_until_finished(dag_id, run_id, TASK)

    assert (ti["state"], ti["try_number"]) == ("success", 2), deployment.task_logs(dag_id, run_id, TASK)
    assert len(creates(sandbox)) == 2
    assert_one_meeting(deployment, sandbox, dag_id, run_id)

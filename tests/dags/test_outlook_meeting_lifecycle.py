"""example_dags/outlook_meeting_lifecycle.py end to end with dag.test() against the sandbox."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from airflow.models.xcom import XComModel
from airflow.utils.session import create_session

from airflow_provider_qconn.sandbox import seed

EXAMPLE = Path(__file__).resolve().parents[2] / "example_dags" / "outlook_meeting_lifecycle.py"


def load_dag() -> Any:
    spec = importlib.util.spec_from_file_location("outlook_meeting_lifecycle", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dag


def xcoms(run: Any, task_id: str) -> dict[str, Any]:
    with create_session() as session:
        rows = session.query(XComModel).filter_by(dag_id=run.dag_id, run_id=run.run_id, task_id=task_id).all()
        return {row.key: XComModel.deserialize_value(row) for row in rows}


def test_schedule_reschedule_cancel(sandbox_env):
    run = load_dag().test()

    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states == {"schedule_meeting": "success", "reschedule_meeting": "success", "cancel_meeting": "success"}
    scheduled = xcoms(run, "schedule_meeting")
    meeting_id = scheduled["meeting_id"]
    assert scheduled["join_url"].startswith("https://teams.microsoft.com/l/meetup-join/")
    outputs = {"return_value", "meeting_id", "web_link", "join_url", "ical_uid"}
    links = {"_link_OutlookEventLink", "_link_TeamsMeetingLink"}  # the task's extra links, resolved by Airflow
    assert set(scheduled) == outputs | links
    assert scheduled["_link_OutlookEventLink"] == scheduled["web_link"]
    assert scheduled["_link_TeamsMeetingLink"] == scheduled["join_url"]
    rescheduled = xcoms(run, "reschedule_meeting")
    assert rescheduled["meeting_id"] == meeting_id
    assert rescheduled["join_url"] == scheduled["join_url"]
    assert xcoms(run, "cancel_meeting")["return_value"] == {"meeting_id": meeting_id, "cancelled": True}

    (event,) = sandbox_env.control.mailbox_events(seed.ORGANIZER)
    assert event["immutableId"] == meeting_id
    assert event["iCalUId"] == scheduled["ical_uid"]
    assert (event["folder"], event["isCancelled"]) == ("deleteditems", True)
    assert event["_cancelComment"] == "Sorry: the review moves to next quarter."
    assert event["subject"] == "Quarterly review"
    assert event["_startUtc"] == "2030-03-05T14:00:00+00:00"  # 15:00 in Madrid, as rescheduled
    assert event["isOnlineMeeting"] is True
    (copy,) = sandbox_env.control.mailbox_events(seed.COLLEAGUE)
    assert copy["isCancelled"] is True
    graph = [(e["method"], e["status"]) for e in sandbox_env.control.journal(service="graph")]
    assert graph == [("POST", 201), ("PATCH", 200), ("POST", 202)]

"""example_dags/interview_scheduling.py end to end with dag.test() against the sandbox."""

from __future__ import annotations

import importlib.util
import json
import re
import threading
from pathlib import Path
from typing import Any

from airflow_provider_qconn.sandbox import connections, seed
from tests.dags.support import xcom

EXAMPLE = Path(__file__).resolve().parents[2] / "example_dags" / "interview_scheduling.py"
ANA, BRUNO, ON_CALL = "+59899123456", "+34612345678", "+59899765432"
STATUS_READ = re.compile(r"/Messages/SM[0-9a-f]{32}\.json$")
DELIVERED_AT_ONCE = {"sending": 0, "sent": 0, "delivered": 0}


def load() -> Any:
    spec = importlib.util.spec_from_file_location("interview_scheduling", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def states(run) -> dict[tuple[str, int], str]:
    return {(ti.task_id, ti.map_index): ti.state for ti in run.get_task_instances()}


def messages_to(sandbox) -> dict[str, dict[str, Any]]:
    return {m["to"].removeprefix("whatsapp:"): m for m in sandbox.control.messages()}


def status_reads(sandbox) -> int:
    return sum(1 for e in sandbox.control.journal(service="twilio") if STATUS_READ.search(e["path"]))


def test_each_candidate_gets_a_teams_interview_and_a_whatsapp_message_with_its_join_url(sandbox_env):
    # Messages stay "sent" until the sandbox clock moves an hour on: the sensor's check on the worker and the
    # trigger's first check both find them undelivered, so the wait really defers. Once both checks have read
    # the two statuses, the clock moves and the trigger's next check (every 0.1 s here, every minute in the DAG)
    # finds them delivered.
    sandbox_env.control.settings(status_delays={"sending": 0, "sent": 0, "delivered": 3600, "read": 7200})
    dag = load().interview_scheduling()
    dag.get_task("wait_for_delivery").poke_interval = 0.1
    stop = threading.Event()

    def deliver_once_deferred() -> None:
        while not stop.wait(0.1):
            if status_reads(sandbox_env) >= 4:
                sandbox_env.control.advance_clock(3600)
                return

    deliverer = threading.Thread(target=deliver_once_deferred, daemon=True)
    deliverer.start()
    try:
        run = dag.test()
    finally:
        stop.set()
        deliverer.join(10)

    assert states(run) == {
        ("plan_interviews", -1): "success",
        ("schedule_interview", 0): "success",
        ("schedule_interview", 1): "success",
        ("invitations", -1): "success",
        ("send_invitations", -1): "success",
        ("wait_for_delivery", -1): "success",
    }
    meetings = [xcom(run, "schedule_interview", map_index=index) for index in (0, 1)]
    join_urls = [meeting["join_url"] for meeting in meetings]
    assert all(url.startswith("https://teams.microsoft.com/l/meetup-join/") for url in join_urls)
    assert xcom(run, "invitations", "variables") == {
        ANA: {
            "name": "Ana Pereira",
            "time": "Monday 4 March 2030, 10:00 (Europe/Madrid)",
            "link": join_urls[0],
        },
        BRUNO: {
            "name": "Bruno Díaz",
            "time": "Monday 4 March 2030, 11:00 (Europe/Madrid)",
            "link": join_urls[1],
        },
    }
    assert xcom(run, "send_invitations", "result") == "Sent"
    assert xcom(run, "send_invitations", "sent_recipients") == [ANA, BRUNO]
    assert xcom(run, "wait_for_delivery")["statuses"] == ["delivered", "delivered"]
    assert status_reads(sandbox_env) > 4  # the trigger asked again after its first check: the wait deferred

    events = {e["immutableId"]: e for e in sandbox_env.control.mailbox_events(seed.ORGANIZER)}
    assert set(events) == {meeting["meeting_id"] for meeting in meetings}
    for meeting, name, email, start in zip(
        meetings,
        ("Ana Pereira", "Bruno Díaz"),
        ("ana.pereira@fabrikam.example", "bruno.diaz@fabrikam.example"),
        ("2030-03-04T09:00:00+00:00", "2030-03-04T10:00:00+00:00"),  # 10:00 and 11:00 in Madrid
        strict=True,
    ):
        event = events[meeting["meeting_id"]]
        assert event["subject"] == f"Interview: {name} (Data Engineer)"
        assert (event["isOnlineMeeting"], event["onlineMeeting"]["joinUrl"]) == (True, meeting["join_url"])
        assert event["_startUtc"] == start
        assert [a["emailAddress"]["address"] for a in event["attendees"]] == [email, seed.COLLEAGUE]
    assert len(sandbox_env.control.mailbox_events(seed.COLLEAGUE)) == 2  # the interviewer's copies

    sent = messages_to(sandbox_env)
    assert set(sent) == {ANA, BRUNO}
    assert sent[ANA]["body"] == (
        f"Hi Ana Pereira, your interview is on Monday 4 March 2030, 10:00 (Europe/Madrid). Video call: {join_urls[0]}"
    )
    assert sent[BRUNO]["body"].endswith(f"11:00 (Europe/Madrid). Video call: {join_urls[1]}")


def test_a_meeting_without_a_join_url_gets_the_fallback_text_instead(sandbox_env, monkeypatch):
    # The organizer signed in with a personal account: Graph schedules the meeting without a Teams link.
    personal = connections(sandbox_env.url)["qconn_msgraph_personal"]
    monkeypatch.setenv("AIRFLOW_CONN_QCONN_MSGRAPH_DEFAULT", json.dumps(personal))
    sandbox_env.control.settings(status_delays=DELIVERED_AT_ONCE)
    module = load()
    candidate = {
        "name": "Ana Pereira",
        "email": "ana@fabrikam.example",
        "phone": "+598 99 123 456",
        "start": "2030-03-04",
    }

    run = module.interview_scheduling().test(run_conf={"candidates": [candidate]})

    assert run.state == "success"
    assert xcom(run, "schedule_interview", "join_url", map_index=0) is None
    [event] = sandbox_env.control.mailbox_events(seed.PERSONAL)
    assert (event["isOnlineMeeting"], event["onlineMeeting"]) == (False, None)
    assert xcom(run, "invitations", "variables")[ANA]["link"] == module.NO_JOIN_URL
    assert messages_to(sandbox_env)[ANA]["body"].endswith(f"Video call: {module.NO_JOIN_URL}")


def test_a_message_whatsapp_cannot_deliver_fails_the_run_and_alerts_on_call(sandbox_env):
    sandbox_env.control.settings(status_delays=DELIVERED_AT_ONCE)
    candidate = {
        "name": "Carla Núñez",
        "email": "carla@fabrikam.example",
        "phone": seed.FAILED_NUMBER,  # accepted by Twilio, then failed: 63016, outside the 24-hour window
        "start": "2030-03-05T09:30:00",
    }

    run = load().interview_scheduling().test(run_conf={"candidates": [candidate]})

    assert run.state == "failed"
    assert states(run)[("send_invitations", -1)] == "success"
    assert states(run)[("wait_for_delivery", -1)] == "failed"  # not retried: waiting cannot change a failure
    sent = messages_to(sandbox_env)
    assert sent[seed.FAILED_NUMBER]["status"] == "failed"
    assert sent[ON_CALL]["body"] == f"Airflow: interview_scheduling failed at wait_for_delivery (run {run.run_id})."


def test_two_candidates_with_one_phone_number_fail_the_run_before_any_meeting_is_booked(sandbox_env):
    ana = {"name": "Ana", "email": "ana@fabrikam.example", "phone": "+598 99 123 456", "start": "2030-03-04T10:00"}
    # Ana's number, written another way:
    bruno = {"name": "Bruno", "email": "bruno@fabrikam.example", "phone": "+59899123456", "start": "2030-03-04T11:00"}

    run = load().interview_scheduling().test(run_conf={"candidates": [ana, bruno]})

    assert run.state == "failed"
    assert states(run)[("plan_interviews", -1)] == "failed"
    assert sandbox_env.control.mailbox_events(seed.ORGANIZER) == []
    assert list(messages_to(sandbox_env)) == [ON_CALL]
    assert "failed at plan_interviews" in messages_to(sandbox_env)[ON_CALL]["body"]


def test_template_values_are_put_on_one_line_and_a_value_whatsapp_would_refuse_gives_way_to_the_fallback():
    template_value = load().template_value
    assert template_value("Ana\n\tPereira     Souza ", "there") == "Ana Pereira Souza"
    assert template_value(" \n ", "there") == "there"
    assert template_value(None, "there") == "there"
    assert template_value("https://teams.example/" + "x" * 1600, "no link") == "no link"

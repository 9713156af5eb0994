"""example_dags/whatsapp_template_notify.py end to end with dag.test() against the sandbox."""

from __future__ import annotations

import importlib.util
from collections import Counter
from pathlib import Path

from tests.dags.support import xcom

EXAMPLE = Path(__file__).resolve().parents[2] / "example_dags" / "whatsapp_template_notify.py"


def load_dag():
    spec = importlib.util.spec_from_file_location("whatsapp_template_notify", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.whatsapp_template_notify()


def test_reminder_goes_to_the_valid_numbers_and_the_typo_is_followed_up(sandbox_env):
    # Statuses advance with the clock; hold them at "queued" however slowly the DAG runs.
    sandbox_env.control.settings(status_delays={"sending": 3600, "sent": 7200, "delivered": 10800, "read": 14400})
    run = load_dag().test()
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states == {
        "send_reminder": "success",
        "read_statuses": "success",
        "route": "success",
        "all_sent": "skipped",
        "follow_up": "success",
    }
    assert xcom(run, "send_reminder", "result") == "PartiallySent"
    assert xcom(run, "send_reminder", "sent_recipients") == ["+59899123456", "+34612345678", "+59899765432"]
    assert xcom(run, "send_reminder", "failed_recipients") == ["+598 99 12"]
    sids = xcom(run, "send_reminder", "sent_message_ids")
    assert xcom(run, "read_statuses", "statuses") == ["queued", "queued", "queued"]
    assert [detail["message_id"] for detail in xcom(run, "read_statuses", "details")] == sids
    assert xcom(run, "follow_up")[0].startswith("+598 99 12: invalid_number")

    stored = {m["sid"]: m for m in sandbox_env.control.messages()}
    assert set(stored) == set(sids)
    bodies = Counter(message["body"].split(",")[0] for message in stored.values())
    assert bodies == {"Hello Ana": 1, "Hello Bruno": 1, "Hello there": 1}
    assert all(" at 10:00." in message["body"] for message in stored.values())

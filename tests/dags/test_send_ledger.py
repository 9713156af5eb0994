"""The send ledger through real Airflow Variables, in real task runs (dag.test()): retries, clears, re-chunks.

Running a DAG again with the same logical date and run_after re-runs the same DAG run's task instances, as
clearing them does.
"""

from __future__ import annotations

import importlib.util
import json
from collections import Counter
from pathlib import Path

import pytest
from airflow.models import Variable
from airflow.utils.session import create_session

from airflow_provider_qconn.ledger import LedgerKey
from airflow_provider_qconn.task_instance import TaskInstanceIdentity
from tests.dags.support import xcom

BUNDLE = Path(__file__).resolve().parent / "bundle"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, BUNDLE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def ledger_records(run, task_id: str = "send") -> dict[str, dict]:
    """The ledger records of one task in one DAG run, by name."""
    family = LedgerKey.of(TaskInstanceIdentity(run.dag_id, task_id, run.run_id, -1, run.run_after)).family_prefix
    with create_session() as session:
        rows = session.query(Variable).filter(Variable.key.startswith(family)).all()
        return {row.key: json.loads(row.val) for row in rows}


def sent_per_number(sandbox) -> Counter:
    return Counter(m["to"].removeprefix("whatsapp:") for m in sandbox.control.messages())


def test_a_retry_or_a_clear_after_the_send_went_through_sends_nothing_and_returns_every_sid(sandbox_env):
    module = load("ledger_retries")
    run = module.retried_send.test()
    [ti] = run.get_task_instances()
    assert (ti.state, ti.try_number) == ("success", 2)  # the first try failed after Twilio accepted everything
    messages = sandbox_env.control.messages()
    assert sent_per_number(sandbox_env) == Counter(module.NUMBERS)
    assert xcom(run, "send", "sent_recipients") == module.NUMBERS
    assert sorted(xcom(run, "send", "sent_message_ids")) == sorted(m["sid"] for m in messages)

    [record] = ledger_records(run).values()
    assert record["state"] == "complete" and len(record["sent"]) == 3 and record["in_flight"] == {}
    assert not any(number.lstrip("+") in json.dumps(record) for number in module.NUMBERS)

    cleared = module.retried_send.test(logical_date=run.logical_date, run_after=run.run_after)
    assert cleared.run_id == run.run_id
    assert sent_per_number(sandbox_env) == Counter(module.NUMBERS)  # still one message each
    assert sorted(xcom(cleared, "send", "sent_message_ids")) == sorted(m["sid"] for m in messages)


@pytest.mark.skipif(not hasattr(__import__("airflow.sdk").sdk.Variable, "keys"), reason="needs Variable.keys (3.3)")
def test_a_recipient_moved_to_another_chunk_by_a_cleared_upstream_is_not_sent_again(sandbox_env):
    module = load("ledger_retries")
    a, b, c, d = [*module.NUMBERS, "+59899120004"]
    run = module.rechunked_send.test(run_conf={"chunks": [[a, b], [c]]})
    assert sent_per_number(sandbox_env) == Counter([a, b, c])

    again = module.rechunked_send.test(
        logical_date=run.logical_date, run_after=run.run_after, run_conf={"chunks": [[c], [a, b, d]]}
    )
    assert {ti.state for ti in again.get_task_instances()} == {"success"}
    assert sent_per_number(sandbox_env) == Counter([a, b, c, d])
    assert xcom(again, "send", "sent_recipients", map_index=1) == [a, b, d]
    assert len(ledger_records(again)) == 2  # one record per map index

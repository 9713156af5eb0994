"""example_dags/whatsapp_bulk_mapped.py end to end with dag.test(): chunks mapped over, everyone messaged once."""

from __future__ import annotations

import importlib.util
from collections import Counter
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "example_dags" / "whatsapp_bulk_mapped.py"


def load_dag():
    spec = importlib.util.spec_from_file_location("whatsapp_bulk_mapped", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.whatsapp_bulk_mapped()


def created_per_recipient(sandbox) -> Counter:
    """Messages created, per recipient, from the sandbox's journal of requests."""
    return Counter(
        entry["response_json"]["to"].removeprefix("whatsapp:")
        for entry in sandbox.control.journal(service="twilio")
        if entry["method"] == "POST" and entry["status"] == 201
    )


def test_every_customer_is_messaged_once_across_the_mapped_chunks(sandbox_env):
    run = load_dag().test(run_conf={"customers": 60, "chunk_size": 25})
    sends = [ti for ti in run.get_task_instances() if ti.task_id == "send"]
    assert sorted((ti.map_index, ti.state) for ti in sends) == [(0, "success"), (1, "success"), (2, "success")]
    customers = [f"+598991{index:05d}" for index in range(60)]
    assert created_per_recipient(sandbox_env) == Counter(customers)
    bodies = {m["to"].removeprefix("whatsapp:"): m["body"] for m in sandbox_env.control.messages()}
    assert bodies["+59899100042"].startswith("Hello customer 42, your appointment is on ")

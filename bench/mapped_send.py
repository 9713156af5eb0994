"""Benchmark: the example DAG ``whatsapp_bulk_mapped`` sends to 10,000 customers in mapped chunks.

The DAG runs with ``dag.test()`` (a SQLite metadata DB in a temporary AIRFLOW_HOME, real Variables for each
chunk's send ledger) against the sandbox in its own process, which adds 100 ms to every Twilio request and
answers 429 beyond 50 requests in flight (the account's limit). The connection's ``max_concurrency`` is 50: one
pool slot's worth, as the pool recipe in docs/whatsapp.md sizes it (``slots x max_concurrency <= the account's
limit``); ``dag.test()`` runs the mapped instances one after the other, as a one-slot pool would.

Measured: the run's time against the limit (recipients x latency / the account's limit), the requests and 429s
the sandbox saw, and, from its journal of requests, how many times each customer was messaged (exactly once
is the check). Results go to bench/results/mapped_send.json.

    .venv/bin/python bench/mapped_send.py [--customers 10000] [--chunk-size 1000]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from harness import SandboxProcess, machine, write_results

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "example_dags" / "whatsapp_bulk_mapped.py"


def load_dag() -> Any:
    spec = importlib.util.spec_from_file_location("whatsapp_bulk_mapped", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.whatsapp_bulk_mapped()


def customers(count: int) -> list[str]:
    """The numbers the example DAG's ``audience`` task makes up for ``count`` customers."""
    return [f"+598991{index:05d}" for index in range(count)]


def main() -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--chunk-size", type=int, default=1_000)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--cap", type=int, default=50, help="the account's limit on requests in flight")
    args = parser.parse_args()

    home = tempfile.mkdtemp(prefix="qconn-bench-airflow-")
    os.environ.update(
        {
            "AIRFLOW_HOME": home,
            "AIRFLOW__CORE__DAGS_FOLDER": str(EXAMPLE.parent),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        }
    )
    os.environ.pop("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", None)
    report: dict[str, Any] = {"machine": machine()}
    try:
        with SandboxProcess() as sandbox:
            environment = sandbox.environment()
            twilio = json.loads(environment["AIRFLOW_CONN_QCONN_TWILIO_DEFAULT"])
            twilio["extra"]["max_concurrency"] = args.cap
            environment["AIRFLOW_CONN_QCONN_TWILIO_DEFAULT"] = json.dumps(twilio)
            os.environ.update(environment)
            from airflow.utils import db

            db.resetdb()
            dag = load_dag()
            # One small run first, uncounted: Airflow's task runner and the hook are imported by then, as they
            # are on a worker that has run a task before.
            dag.test(run_conf={"customers": 2, "chunk_size": 1})
            sandbox.reset(latency={"twilio": args.latency}, twilio_max_concurrency=args.cap)
            started = time.perf_counter()
            run = dag.test(run_conf={"customers": args.customers, "chunk_size": args.chunk_size})
            elapsed = time.perf_counter() - started
            sends = [ti for ti in run.get_task_instances() if ti.task_id == "send"]
            journal = sandbox.control.journal(service="twilio")
            created = Counter(
                entry["response_json"]["to"].removeprefix("whatsapp:")
                for entry in journal
                if entry["method"] == "POST" and entry["status"] == 201
            )
            wanted = customers(args.customers)
            limit = args.customers * args.latency / args.cap
            report["mapped_send"] = {
                "customers": args.customers,
                "chunk_size": args.chunk_size,
                "latency_s": args.latency,
                "account_limit": args.cap,
                "max_concurrency": args.cap,
                "run_state": str(run.state),
                "mapped_instances": len(sends),
                "instances_succeeded": sum(ti.state == "success" for ti in sends),
                "run_s": round(elapsed, 2),
                "limit_s": limit,
                "run_of_limit": round(elapsed / limit, 2),
                "requests": len(journal),
                "throttled_429": sum(entry["status"] == 429 for entry in journal),
                "customers_messaged_once": sum(created[number] == 1 for number in wanted),
                "duplicates": sum(count - 1 for count in created.values() if count > 1),
                "missing": sum(number not in created for number in wanted),
                "strangers": sum(number not in set(wanted) for number in created),
            }
    finally:
        shutil.rmtree(home, ignore_errors=True)
    report["machine_after"] = {"load_average_1m": machine()["load_average_1m"]}
    print(json.dumps(report["mapped_send"]), flush=True)
    print(write_results("mapped_send", report))
    return report


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()

"""The quick-start demo: the sandbox with its seed, the connection values to use, and every example DAG run on it.

Run with ``make demo``. It starts a sandbox on a free loopback port, prints its URLs and ready-made
``AIRFLOW_CONN_*`` values, then, with exactly those values and a throwaway Airflow home (a SQLite metadata DB),
runs each DAG in ``example_dags/`` with ``dag.test()``, prints every task's state and outputs, and ends with the
requests the sandbox saw. It exits non-zero if a DAG run did not succeed.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import tempfile
from collections import Counter
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "example_dags"


def show_environment(url: str, graph_base_url: str, bundle: str) -> dict[str, str]:
    from airflow_provider_qconn.sandbox import environment

    env = environment(url, bundle)
    print(f"Sandbox running on {url}")
    print(f"  Graph base URL   {graph_base_url}")
    print(f"  login authority  {url}")
    print(f"  Twilio base URL  {url}")
    print("\nConnection values for Airflow (valid while this sandbox runs; `make sandbox` keeps one up):\n")
    for name, value in env.items():
        print(f"export {name}={shlex.quote(value)}")
    return env


def run_example_dags() -> bool:
    """dag.test() every example DAG; print task states and outputs; True when all runs succeeded."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.xcom import XComModel
    from airflow.utils import db
    from airflow.utils.session import create_session

    db.resetdb()
    bag = DagBag(dag_folder=EXAMPLES)
    if bag.import_errors:
        for path, error in bag.import_errors.items():
            print(f"\n{path} does not import:\n{error}")
        return False
    succeeded = True
    for dag_id in sorted(bag.dags):
        print(f"\n=== {dag_id} ===")
        run = bag.dags[dag_id].test()
        succeeded &= run.state == "success"
        with create_session() as session:
            rows = session.query(XComModel).filter_by(dag_id=dag_id, run_id=run.run_id).all()
            outputs: dict[tuple[str, int], dict[str, object]] = {}
            for row in rows:
                outputs.setdefault((row.task_id, row.map_index), {})[row.key] = XComModel.deserialize_value(row)
        for ti in sorted(run.get_task_instances(), key=lambda ti: ti.start_date or ti.end_date or run.start_date):
            name = ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"
            print(f"  {name:<24} {ti.state}")
            task_outputs = outputs.get((ti.task_id, ti.map_index), {})
            if len(task_outputs) > 1:  # multiple outputs: each key, not the dict they came from
                task_outputs.pop("return_value", None)
            for key, value in task_outputs.items():
                print(f"      {key}: {json.dumps(value, default=str)[:110]}")
        print(f"  -> run {run.state}")
    return succeeded


def main() -> int:
    home = tempfile.mkdtemp(prefix="qconn-demo-airflow-")
    os.environ.update(
        {
            "AIRFLOW_HOME": home,
            "AIRFLOW__CORE__DAGS_FOLDER": str(EXAMPLES),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        }
    )
    os.environ.pop("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", None)
    from airflow_provider_qconn.sandbox import Sandbox

    with Sandbox() as sandbox:
        os.environ.update(show_environment(sandbox.url, sandbox.graph_base_url, str(sandbox.bundle_path)))
        # Messages are delivered the moment they are sent, so a delivery sensor's first check finds them
        # delivered instead of deferring for its poke interval (a minute in interview_scheduling).
        sandbox.control.settings(status_delays={"sending": 0, "sent": 0, "delivered": 0})
        succeeded = run_example_dags()
        counts = Counter(f"{e['service']:<8} {e['method']:<6} {e['status']}" for e in sandbox.control.journal())
        print("\nRequests the sandbox saw:")
        for key, count in sorted(counts.items()):
            print(f"  {count:3d}  {key}")
    print("\nAll example DAGs succeeded." if succeeded else "\nAn example DAG failed.")
    return 0 if succeeded else 1


if __name__ == "__main__":
    sys.exit(main())

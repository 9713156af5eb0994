"""Test session set-up: an isolated AIRFLOW_HOME and the sandbox fixtures."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

_home = tempfile.mkdtemp(prefix="qconn-airflow-home-")
# Never touch a real Airflow installation: the DAG tests reset this metadata DB.
os.environ["AIRFLOW_HOME"] = _home
os.environ.pop("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", None)
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
# dag.test() syncs the DAG bundle: the example DAGs are the bundle the tests run.
_root = Path(__file__).resolve().parents[1]
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(_root / "example_dags")
# A second bundle holds the DAGs that exist only for tests (retried and cleared tasks, for instance).
os.environ["AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"] = json.dumps(
    [
        {"name": "dags-folder", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle", "kwargs": {}},
        {
            "name": "qconn-tests",
            "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
            "kwargs": {"path": str(_root / "tests" / "dags" / "bundle")},
        },
    ]
)
for _name in ("TWILIO_EDGE", "TWILIO_REGION", "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"):
    os.environ.pop(_name, None)

pytest_plugins = ["airflow_provider_qconn.sandbox.pytest_plugin"]

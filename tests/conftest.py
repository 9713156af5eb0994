"""Test session set-up: an isolated AIRFLOW_HOME and the sandbox fixtures."""

from __future__ import annotations

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
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(Path(__file__).resolve().parents[1] / "example_dags")
for _name in ("TWILIO_EDGE", "TWILIO_REGION", "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"):
    os.environ.pop(_name, None)

pytest_plugins = ["airflow_provider_qconn.sandbox.pytest_plugin"]

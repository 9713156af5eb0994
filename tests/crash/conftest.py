"""One Airflow deployment (API server, scheduler, DAG processor) for the crash tests, on the session's sandbox."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_provider_qconn.sandbox import environment
from airflow_provider_qconn.sandbox.server import Sandbox
from tests.crash.harness import AIRFLOW, Deployment

DAG_FILES = sorted((Path(__file__).parent / "dags").glob("crash_*.py"))
DAG_IDS = (
    "crash_whatsapp_send",
    "crash_whatsapp_send_dies_after_execute",
    "crash_schedule_meeting",
    "crash_schedule_meeting_dies_after_execute",
)


@pytest.fixture(scope="session")
def deployment(qconn_sandbox_server: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    if not AIRFLOW.is_file():
        pytest.skip(f"the crash tests run Airflow's own processes and need the airflow command ({AIRFLOW} is missing)")
    env = environment(qconn_sandbox_server.url, str(qconn_sandbox_server.bundle_path))
    deployment = Deployment(tmp_path_factory.mktemp("crash-airflow-home"), DAG_FILES, env)
    try:
        deployment.check_reaches(f"{qconn_sandbox_server.url}/_sandbox/health")
        deployment.start(DAG_IDS)
        yield deployment
    finally:
        deployment.stop()

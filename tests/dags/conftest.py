"""Example DAGs run end to end with dag.test(): a fresh SQLite metadata DB, once per session."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session", autouse=True)
def airflow_db() -> None:
    from airflow.utils import db

    db.resetdb()

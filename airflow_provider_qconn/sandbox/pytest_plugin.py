"""pytest fixtures for testing DAGs and hooks against the sandbox.

Enable with ``pytest_plugins = ["airflow_provider_qconn.sandbox.pytest_plugin"]`` in a ``conftest.py``:

- ``qconn_sandbox_server``: one sandbox (TLS, in-memory state) for the whole test session;
- ``sandbox``: the same server, reset to the default seed with no faults and an empty journal, for one test;
- ``sandbox_env``: ``sandbox`` plus ``AIRFLOW_CONN_*`` and CA-bundle variables set for that test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from airflow_provider_qconn.sandbox import environment
from airflow_provider_qconn.sandbox.server import Sandbox


@pytest.fixture(scope="session")
def qconn_sandbox_server() -> Iterator[Sandbox]:
    with Sandbox() as server:
        yield server


@pytest.fixture
def sandbox(qconn_sandbox_server: Sandbox) -> Sandbox:
    qconn_sandbox_server.control.reset()
    return qconn_sandbox_server


@pytest.fixture
def sandbox_env(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    for name, value in environment(sandbox.url, str(sandbox.bundle_path)).items():
        monkeypatch.setenv(name, value)
    return sandbox

"""Contract tests: an HTTPS client for the sandbox, and the route-coverage check run after the others."""

from __future__ import annotations

import ssl
from collections.abc import Iterator

import httpx
import pytest

from airflow_provider_qconn.sandbox.server import Sandbox

#: Set when a selection (-k, -m, --deselect, --lf) left out contract tests: route coverage is then not judged.
DESELECTED_CONTRACT_TESTS = pytest.StashKey[bool]()


def pytest_deselected(items: list[pytest.Item]) -> None:
    if any(item.nodeid.startswith("tests/contracts/") for item in items):
        items[0].config.stash[DESELECTED_CONTRACT_TESTS] = True


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the route-coverage test after every contract test (it reads what they validated)."""
    items.sort(key=lambda item: item.nodeid.startswith("tests/contracts/test_route_coverage.py"))


@pytest.fixture
def http(sandbox: Sandbox) -> Iterator[httpx.Client]:
    """Plain HTTPS to the sandbox, trusting its CA."""
    with httpx.Client(
        base_url=sandbox.url, verify=ssl.create_default_context(cafile=str(sandbox.ca_path)), timeout=10
    ) as client:
        yield client

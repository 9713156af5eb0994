"""The package as Airflow sees it: distribution metadata and the provider entry point (what ``airflow providers``
shows is in test_provider_info.py)."""

from __future__ import annotations

from importlib import metadata, resources

from packaging.utils import canonicalize_name

import airflow_provider_qconn
from airflow_provider_qconn.get_provider_info import get_provider_info


def test_package_name_matches_the_distribution():
    # A mismatch makes Airflow's provider discovery fail for every provider.
    distribution = metadata.distribution("airflow-provider-qconn")
    assert get_provider_info()["package-name"] == canonicalize_name(distribution.metadata["Name"])
    assert get_provider_info()["versions"][0] == distribution.version == airflow_provider_qconn.__version__


def test_entry_point_returns_the_provider_info():
    [entry_point] = [
        ep
        for ep in metadata.entry_points(group="apache_airflow_provider")
        if ep.value.startswith("airflow_provider_qconn")
    ]
    assert entry_point.load()() == get_provider_info()


def test_package_is_typed():
    assert (resources.files("airflow_provider_qconn") / "py.typed").is_file()

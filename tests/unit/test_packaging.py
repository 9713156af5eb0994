"""The package as Airflow sees it: distribution metadata and the provider entry point (what ``airflow providers``
shows is in test_provider_info.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from importlib import metadata, resources

from packaging.requirements import Requirement
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


# --- the sandbox is an extra ---------------------------------------------------------------------------------------

#: Run in a fresh interpreter with the sandbox's own requirements made unimportable.
_HIDE_SANDBOX_REQUIREMENTS = """
import sys
for name in {modules!r}:
    sys.modules[name] = None  # "import name" now raises ImportError, as when it is not installed
"""


def _run_without_sandbox_requirements(code: str) -> subprocess.CompletedProcess:
    from airflow_provider_qconn.sandbox import SANDBOX_REQUIREMENTS

    prelude = _HIDE_SANDBOX_REQUIREMENTS.format(modules=sorted(SANDBOX_REQUIREMENTS))
    return subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "AIRFLOW__CORE__LOAD_EXAMPLES": "False"},
        check=False,
    )


def test_the_sandbox_requirements_are_an_extra_not_dependencies():
    from airflow_provider_qconn.sandbox import SANDBOX_REQUIREMENTS

    requirements = [Requirement(text) for text in metadata.requires("airflow-provider-qconn") or []]
    always = {canonicalize_name(req.name) for req in requirements if req.marker is None}
    extra = {
        canonicalize_name(req.name) for req in requirements if req.marker and req.marker.evaluate({"extra": "sandbox"})
    }
    sandbox_only = {canonicalize_name(dist) for dist in SANDBOX_REQUIREMENTS.values()}
    assert sandbox_only <= extra
    assert not sandbox_only & always


def test_importing_the_sandbox_without_its_extra_says_which_extra_to_install():
    result = _run_without_sandbox_requirements(
        """
        try:
            import airflow_provider_qconn.sandbox
        except ImportError as error:
            print(error)
        """
    )
    assert result.returncode == 0, result.stderr[-2000:]
    message = result.stdout.strip()
    assert "pip install 'airflow-provider-qconn[sandbox]'" in message
    assert all(dist in message for dist in ("starlette", "uvicorn", "trustme", "PyJWT")), message


def test_everything_but_the_sandbox_imports_and_works_without_the_sandbox_requirements():
    result = _run_without_sandbox_requirements(
        """
        import datetime as dt
        import importlib
        import pkgutil
        import zoneinfo

        import airflow_provider_qconn

        imported = 0
        for info in pkgutil.walk_packages(airflow_provider_qconn.__path__, "airflow_provider_qconn."):
            if not info.name.startswith("airflow_provider_qconn.sandbox"):
                importlib.import_module(info.name)
                imported += 1
        from airflow_provider_qconn.hooks.msgraph.events import graph_date_time
        from airflow_provider_qconn.hooks.twilio import TwilioHook

        moment = dt.datetime(2030, 3, 4, 10, tzinfo=zoneinfo.ZoneInfo("Europe/Madrid"))
        assert graph_date_time(moment) == ("2030-03-04T10:00:00", "Romance Standard Time")
        assert TwilioHook()._parse_config("AC" + "0" * 32, "token", {"from_number": "+14155238886"}).from_number
        print(imported)
        """
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert int(result.stdout.split()[-1]) > 20

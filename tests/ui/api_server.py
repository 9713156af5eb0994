"""``airflow api-server`` for the browser tests, with one Airflow 3.3.2 bug in the Test button fixed.

The connections page's Test button sends ``port: 0`` for a connection without a port (``Number(null)`` in the
UI), and Airflow 3.3.2's test endpoint reads that as another destination than the stored one: it answers
400 "The host or port to test differs from the stored connection" for every connection type that has no port,
ours included. Airflow fixed it upstream (apache/airflow pull request 73298) by reading port 0 as no port; this
launcher applies the same reading when the running Airflow still has the bug, then runs the server exactly as
the ``airflow`` command does. Run as ``python api_server.py`` with the deployment's environment.
"""

from __future__ import annotations

import sys


def _read_port_zero_as_no_port() -> None:
    from airflow.api_fastapi.core_api.routes.public import connections

    same_endpoint = getattr(connections, "_same_endpoint", None)
    if same_endpoint is not None and not same_endpoint(0, None):

        def fixed(requested: str | int | None, stored: str | int | None) -> bool:
            return bool(same_endpoint(None if requested == 0 else requested, None if stored == 0 else stored))

        connections._same_endpoint = fixed


if __name__ == "__main__":
    _read_port_zero_as_no_port()
    from airflow.__main__ import main

    sys.argv = ["airflow", "api-server"]
    main()

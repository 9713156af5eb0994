"""Helpers shared by the integration tests: scopes, a CA-pinned requests session, the product's delegated credential."""

from __future__ import annotations

import json
from typing import Any

from airflow.sdk import Connection

from airflow_provider_qconn.hooks.msgraph import GraphSettings, MemoryTokenStore, RefreshTokenCredential
from airflow_provider_qconn.sandbox import connections

GRAPH_APP_SCOPES = ["https://graph.microsoft.com/.default"]
GRAPH_DELEGATED_SCOPES = ["Calendars.ReadWrite"]


def requests_session(ca_path: str) -> Any:
    """A requests session that trusts exactly the sandbox CA (``trust_env=False``: the environment cannot win)."""
    import requests

    session = requests.Session()
    session.trust_env = False
    session.verify = ca_path
    return session


def delegated_credential(
    sandbox_url: str, conn_id: str, refresh_token: str | None = None, store: MemoryTokenStore | None = None
) -> RefreshTokenCredential:
    """The provider's own refresh-token credential for one of the sandbox's ready-made delegated connections
    (with another refresh token when given), keeping its newest token in ``store`` (a fresh memory store when
    not given: outside a task there is nowhere to keep it).

    It finds its CA bundle through the standard variables, as the hook does: the caller points them at the
    sandbox's bundle.
    """
    conn = connections(sandbox_url)[conn_id]
    extra = {**conn["extra"], **({"refresh_token": refresh_token} if refresh_token else {})}
    connection = Connection(
        conn_id=conn_id,
        conn_type=str(conn["conn_type"]),
        login=str(conn["login"]),
        extra=json.dumps(extra),
    )
    return RefreshTokenCredential(GraphSettings.from_connection(connection), store or MemoryTokenStore())

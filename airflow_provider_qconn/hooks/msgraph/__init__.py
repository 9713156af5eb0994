"""Outlook calendar events through Microsoft Graph: :class:`MSGraphHook` and what it is built from.

- :mod:`.settings`: the connection, read and checked (:class:`GraphSettings`);
- :mod:`.credentials`: the auth modes, one row each of :data:`AUTH_MODES`, and their token credentials;
- :mod:`.events`: what operators send and get back, the request body, the Teams block;
- :mod:`.errors`: Graph's and the identity platform's refusals as the provider's errors;
- :mod:`.retry`: the one retry policy (what is transient, backoff, attempts);
- :mod:`.token_store`: where a delegated connection's newest refresh token is kept;
- :mod:`.login`: signing a connection in (``airflow qconn outlook-login``);
- :mod:`.client`: the request adapter, and the Graph requests built for it;
- :mod:`.hook`: the calendar calls.

Nothing here imports msgraph-sdk (msgraph-core, kiota), azure-identity or MSAL at module level: parsing a DAG
stays cheap.
"""

from __future__ import annotations

from airflow_provider_qconn.hooks.msgraph.credentials import (
    APP_ONLY_AUTH_TYPES,
    AUTH_MODES,
    AUTH_TYPES,
    AuthMode,
    RefreshTokenCredential,
    build_credential,
    login_command,
    requests_session,
)
from airflow_provider_qconn.hooks.msgraph.errors import DUPLICATE_TRANSACTION_ID, GRAPH, IDENTITY, ITEM_NOT_FOUND
from airflow_provider_qconn.hooks.msgraph.events import (
    Attendance,
    CalendarEntry,
    EventDetails,
    Meeting,
    graph_date_time,
    teams_block,
    with_teams_block,
)
from airflow_provider_qconn.hooks.msgraph.hook import MSGraphHook
from airflow_provider_qconn.hooks.msgraph.settings import GraphSettings
from airflow_provider_qconn.hooks.msgraph.token_store import MemoryTokenStore, TokenStore, VariableTokenStore

# Provider info, the connection form and the docs name the hook by its package: keep that its canonical path.
MSGraphHook.__module__ = __name__

__all__ = [
    "APP_ONLY_AUTH_TYPES",
    "AUTH_MODES",
    "AUTH_TYPES",
    "DUPLICATE_TRANSACTION_ID",
    "GRAPH",
    "IDENTITY",
    "ITEM_NOT_FOUND",
    "Attendance",
    "AuthMode",
    "CalendarEntry",
    "EventDetails",
    "GraphSettings",
    "MSGraphHook",
    "Meeting",
    "MemoryTokenStore",
    "RefreshTokenCredential",
    "TokenStore",
    "VariableTokenStore",
    "build_credential",
    "graph_date_time",
    "login_command",
    "requests_session",
    "teams_block",
    "with_teams_block",
]

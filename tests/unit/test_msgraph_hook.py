"""MSGraphHook without a network: reading connections, building credentials, mapping Graph's errors."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from zoneinfo import ZoneInfo

import httpx
import pytest
from airflow.sdk import Connection

from airflow_provider_qconn.exceptions import ApiError, ConnectionConfigError, NonRetryableApiError
from airflow_provider_qconn.get_provider_info import MSGRAPH_CONN_FIELDS, get_provider_info
from airflow_provider_qconn.hooks.msgraph import (
    AUTH_TYPES,
    GraphSettings,
    MSGraphHook,
    RefreshTokenCredential,
    build_credential,
    graph_date_time,
    requests_session,
    teams_block,
    with_teams_block,
)

TENANT = "7c2e4f1a-3b5d-4e6f-9a8b-1c2d3e4f5a6b"
CLIENT_ID = "3f9a6c1e-2b4d-4f8a-9c7e-5d1b2a3c4e5f"
#: Nothing listens here: a request would fail with a connection error, not a configuration error.
NOWHERE = {"base_url": "https://127.0.0.1:9/v1.0", "authority": "https://127.0.0.1:9"}


def connection(login: str | None = CLIENT_ID, password: str | None = None, **extra: object) -> Connection:
    return Connection(
        conn_id="outlook", conn_type="qconn_msgraph", login=login, password=password, extra=json.dumps(extra)
    )


def settings(login: str | None = CLIENT_ID, password: str | None = None, **extra: object) -> GraphSettings:
    return GraphSettings.from_connection(connection(login, password, **extra))


# --- connection parsing -----------------------------------------------------------------------------------------


def test_delegated_defaults():
    parsed = settings(refresh_token="rt-1")
    assert parsed.auth_type == "refresh_token"
    assert parsed.tenant_id == "common"
    assert parsed.user_id is None
    assert parsed.base_url == "https://graph.microsoft.com/v1.0"
    assert parsed.authority == "https://login.microsoftonline.com"
    assert parsed.scopes == ["Calendars.ReadWrite"]
    assert parsed.microsoft_authority is True
    assert parsed.mailbox == "the signed-in user's mailbox (/me)"
    assert "rt-1" not in repr(parsed)


@pytest.mark.parametrize(
    ("password", "extra", "auth_type"),
    [
        (None, {"refresh_token": "rt"}, "refresh_token"),
        ("secret", {"refresh_token": "rt"}, "refresh_token"),  # a confidential client redeeming the token
        ("pem-password", {"certificate_path": "/c.pem", "tenant_id": TENANT, "user_id": "a@x.com"}, "certificate"),
        (
            None,
            {"certificate_data": "test-certificate-data-1", "tenant_id": TENANT, "user_id": "a@x.com"},
            "certificate",
        ),
        ("secret", {"tenant_id": TENANT, "user_id": "a@x.com"}, "client_secret"),
        (None, {"auth_type": "Managed_Identity", "user_id": "a@x.com"}, "managed_identity"),
        (None, {"auth_type": "workload_identity", "user_id": "a@x.com"}, "workload_identity"),
    ],
)
def test_auth_type_is_read_or_inferred(password, extra, auth_type):
    assert settings(password=password, **extra).auth_type == auth_type


def test_app_only_settings():
    parsed = settings(
        password="s3cr3t-value", tenant_id=TENANT, user_id="a@x.com", base_url="https://graph.microsoft.us/v1.0/"
    )
    assert parsed.scopes == ["https://graph.microsoft.us/.default"]
    assert parsed.graph_host == "graph.microsoft.us"
    assert parsed.base_url == "https://graph.microsoft.us/v1.0"
    assert parsed.mailbox == "a@x.com"
    assert "s3cr3t-value" not in repr(parsed)


def test_a_base_url_outside_microsofts_clouds_still_asks_for_a_graph_token():
    sandbox = settings(password="s", tenant_id=TENANT, user_id="a@x.com", **NOWHERE)
    assert sandbox.scopes == ["https://graph.microsoft.com/.default"]
    assert sandbox.graph_host == "127.0.0.1"
    assert sandbox.microsoft_authority is False
    delegated_us = settings(refresh_token="rt", base_url="https://graph.microsoft.us/v1.0")
    assert delegated_us.scopes == ["https://graph.microsoft.us/Calendars.ReadWrite"]


@pytest.mark.parametrize(
    ("login", "password", "extra", "message"),
    [
        (CLIENT_ID, None, {}, "no credentials"),
        (CLIENT_ID, None, {"auth_type": "password"}, "extra 'auth_type' must be one of"),
        (None, None, {"refresh_token": "rt"}, "the login field must hold the application"),
        (CLIENT_ID, None, {"auth_type": "refresh_token"}, "needs extra 'refresh_token'"),
        (CLIENT_ID, None, {"auth_type": "client_secret", "tenant_id": TENANT}, "client secret in the password"),
        (CLIENT_ID, None, {"auth_type": "certificate"}, "needs extra 'certificate_path' or 'certificate_data'"),
        (CLIENT_ID, None, {"certificate_path": "/a", "certificate_data": "test-certificate-data-2"}, "only one of"),
        (CLIENT_ID, "s", {"user_id": "a@x.com"}, "needs extra 'tenant_id'"),
        (CLIENT_ID, "s", {"user_id": "a@x.com", "tenant_id": "common"}, "not 'common'"),
        (CLIENT_ID, "s", {"user_id": "a@x.com", "tenant_id": "Organizations"}, "not 'Organizations'"),
        (CLIENT_ID, None, {"certificate_path": "/c", "tenant_id": "consumers", "user_id": "u"}, "not 'consumers'"),
        (None, None, {"auth_type": "workload_identity", "tenant_id": "common", "user_id": "u"}, "not 'common'"),
        (CLIENT_ID, "s", {"tenant_id": TENANT}, "needs extra 'user_id'"),
        (None, None, {"auth_type": "managed_identity"}, "needs extra 'user_id'"),
        (CLIENT_ID, None, {"refresh_token": "rt", "base_url": "http://graph.example"}, "must be an https URL"),
    ],
)
def test_unusable_connections_name_the_field(login, password, extra, message):
    with pytest.raises(ConnectionConfigError, match="^connection 'outlook': .*" + message):
        settings(login, password, **extra)


def test_keyword_arguments_override_the_extras(monkeypatch):
    extra = {"refresh_token": "rt", "tenant_id": "organizations", "user_id": "a@x.com"}
    monkeypatch.setenv("AIRFLOW_CONN_OUTLOOK", connection(**extra).as_json())
    hook = MSGraphHook("outlook", tenant_id="consumers", user_id="b@x.com", base_url="https://graph.microsoft.us/v1.0")
    assert hook.settings.tenant_id == "consumers"
    assert hook.settings.user_id == "b@x.com"
    assert hook.settings.base_url == "https://graph.microsoft.us/v1.0"
    assert MSGraphHook("outlook").settings.user_id == "a@x.com"


@pytest.mark.parametrize(
    "extra",
    [
        {"auth_type": "client_secret", "tenant_id": "common", "user_id": "a@x.com"},
        {"auth_type": "client_secret", "tenant_id": TENANT},
        {"auth_type": "certificate", "certificate_path": "/c.pem", "tenant_id": "organizations", "user_id": "u"},
    ],
)
def test_app_only_mistakes_fail_before_any_request(monkeypatch, extra):
    monkeypatch.setenv("AIRFLOW_CONN_OUTLOOK", connection(password="s", **extra, **NOWHERE).as_json())
    hook = MSGraphHook("outlook")
    with pytest.raises(ConnectionConfigError):
        hook.cancel_event("AAk")
    ok, message = MSGraphHook("outlook").test_connection()
    assert not ok and message.startswith("connection 'outlook': app-only sign-in")
    assert "client" not in hook.__dict__  # no client was ever built


# --- credentials --------------------------------------------------------------------------------------------------


def test_client_secret_credential_points_at_the_authority():
    from azure.identity import ClientSecretCredential

    credential = build_credential(settings(password="s", tenant_id=TENANT, user_id="u", **NOWHERE))
    assert isinstance(credential, ClientSecretCredential)
    assert credential._authority == "https://127.0.0.1:9"
    assert credential._instance_discovery is False  # not one of Microsoft's clouds
    assert credential._tenant_id == TENANT
    credential.close()
    microsoft = build_credential(settings(password="s", tenant_id=TENANT, user_id="u"))
    assert microsoft._instance_discovery is not False
    microsoft.close()


def test_certificate_data_is_masked_in_logs_as_soon_as_it_is_read():
    from airflow.providers.common.compat.sdk import redact
    from azure.identity import CertificateCredential

    from airflow_provider_qconn.sandbox.seed import app_certificate

    pem = app_certificate().combined_pem
    parsed = settings(certificate_data=pem, tenant_id=TENANT, user_id="u", **NOWHERE)
    assert redact(f"cert: {pem}") == "cert: ***"
    credential = build_credential(parsed)
    assert isinstance(credential, CertificateCredential)
    credential.close()


def test_the_hook_runs_from_inside_a_running_event_loop():
    import asyncio

    async def answer() -> int:
        return 42

    hook = MSGraphHook()

    async def caller() -> int:
        return hook._run(answer())

    assert asyncio.run(caller()) == 42
    hook.close()


def test_an_unreadable_certificate_is_a_connection_error(tmp_path):
    with pytest.raises(ConnectionConfigError, match="cannot build the certificate credential"):
        build_credential(settings(certificate_path=str(tmp_path / "missing.pem"), tenant_id=TENANT, user_id="u"))


def test_managed_identity_credential(monkeypatch):
    from azure.identity import ManagedIdentityCredential

    credential = build_credential(settings(login=None, auth_type="managed_identity", user_id="a@x.com"))
    assert isinstance(credential, ManagedIdentityCredential)
    user_assigned = build_credential(settings(login="mi-client", auth_type="managed_identity", user_id="a@x.com"))
    assert isinstance(user_assigned, ManagedIdentityCredential)


def test_workload_identity_credential_reads_the_connection_then_the_environment(monkeypatch, tmp_path):
    from azure.identity import WorkloadIdentityCredential

    token_file = tmp_path / "token"
    token_file.write_text("federated-token")
    monkeypatch.setenv("AZURE_FEDERATED_TOKEN_FILE", str(token_file))
    monkeypatch.setenv("AZURE_TENANT_ID", "env-tenant")
    monkeypatch.setenv("AZURE_CLIENT_ID", "env-client")
    from_connection = build_credential(settings(auth_type="workload_identity", tenant_id=TENANT, user_id="u"))
    assert isinstance(from_connection, WorkloadIdentityCredential)
    assert from_connection._client._tenant_id == TENANT
    assert from_connection._client._client_id == CLIENT_ID
    from_environment = build_credential(settings(login=None, auth_type="workload_identity", user_id="u"))
    assert from_environment._client._tenant_id == "env-tenant"
    assert from_environment._client._client_id == "env-client"
    assert from_environment._token_file_path == str(token_file)
    monkeypatch.delenv("AZURE_FEDERATED_TOKEN_FILE")
    with pytest.raises(ConnectionConfigError, match="cannot build the workload_identity credential"):
        build_credential(settings(auth_type="workload_identity", tenant_id=TENANT, user_id="u"))


def test_refresh_token_credential_starts_from_the_connections_token():
    credential = build_credential(settings(refresh_token="rt-1"))
    assert isinstance(credential, RefreshTokenCredential)
    assert credential.refresh_token == "rt-1"
    credential.close()


def test_msal_session_keeps_its_ca_whatever_the_environment_says(monkeypatch, tmp_path):
    bundle = tmp_path / "ca.pem"
    bundle.write_text("")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/somewhere/else.pem")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    session = requests_session(str(bundle))
    merged = session.merge_environment_settings("https://login.example/t", {}, None, None, None)
    assert merged["verify"] == str(bundle)
    assert merged["proxies"]["https"] == "http://proxy.example:3128"  # the proxy variables still apply
    assert session.merge_environment_settings("https://127.0.0.1:1/", {}, None, None, None)["verify"] == str(bundle)
    session.close()


# --- request and response shapes ----------------------------------------------------------------------------------


def test_graph_date_time_keeps_named_zones_as_windows_names():
    madrid = dt.datetime(2030, 7, 1, 9, 30, 15, 123, tzinfo=ZoneInfo("Europe/Madrid"))
    assert graph_date_time(madrid) == ("2030-07-01T09:30:15", "Romance Standard Time")
    import pendulum

    assert graph_date_time(pendulum.datetime(2030, 1, 1, 10, tz="America/Montevideo")) == (
        "2030-01-01T10:00:00",
        "Montevideo Standard Time",
    )
    offset = dt.datetime(2030, 1, 1, 10, tzinfo=dt.timezone(dt.timedelta(hours=-3)))
    assert graph_date_time(offset) == ("2030-01-01T13:00:00", "UTC")
    assert graph_date_time(dt.datetime(2030, 1, 1, 10, tzinfo=dt.timezone.utc)) == ("2030-01-01T10:00:00", "UTC")


RULE = "_" * 80
BLOCK = (
    f'<div style="width:100%"><span>{RULE}</span></div><div class="me-email-text">'
    '<a href="https://teams.microsoft.com/l/meetup-join/x">Join the meeting now</a></div>'
    f'<div style="width:100%"><span>{RULE}</span></div>'
)


def test_the_teams_block_is_found_between_outlooks_rules():
    body = f"<html><body><p>Agenda</p>{BLOCK}\r\n</body></html>"
    assert teams_block(body) == BLOCK
    assert teams_block("<html><body><p>No meeting</p></body></html>") is None
    single = f'<html><body><p>Agenda</p><div><span>{RULE}</span></div><a href="https://t/x">Join</a></body></html>'
    assert teams_block(single) == f'<div><span>{RULE}</span></div><a href="https://t/x">Join</a>'


def test_new_content_gets_the_block_appended_as_html():
    assert with_teams_block("<p>New</p>", "html", BLOCK) == "<p>New</p>" + BLOCK
    assert with_teams_block("a < b\nc", "text", BLOCK) == "a &lt; b<br>\nc" + BLOCK
    document = "<html><body><p>New</p></body></html>"
    assert with_teams_block(document, "html", BLOCK) == f"<html><body><p>New</p>{BLOCK}</body></html>"


def _graph_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> httpx.Response:
    body = {"error": {"code": code, "message": message, "innerError": {"request-id": "inner-id"}}}
    return httpx.Response(status, json=body, headers=headers or {})


@pytest.fixture
def app_hook(monkeypatch) -> MSGraphHook:
    monkeypatch.setenv(
        "AIRFLOW_CONN_OUTLOOK", connection(password="s", tenant_id=TENANT, user_id="adele@x.com", **NOWHERE).as_json()
    )
    return MSGraphHook("outlook")


@pytest.mark.parametrize(
    ("status", "code", "message", "retryable", "explains"),
    [
        (401, "InvalidAuthenticationToken", "Access token is empty.", False, "Check the credentials of connection"),
        (403, "ErrorAccessDenied", "Access is denied.", False, "application permission Calendars.ReadWrite"),
        (404, "ErrorItemNotFound", "The specified object was not found in the store.", False, "was not found in"),
        (404, "ErrorInvalidUser", "The requested user 'x' is invalid.", False, "does not exist (check extra"),
        (400, "ErrorInvalidRequest", "You need to be an organizer to cancel a meeting.", False, "only the organizer"),
        (400, "ErrorInvalidRequest", "Something else.", False, "Graph refused the request: Something else."),
        (429, "TooManyRequests", "Too many requests.", True, "throttling and still refused after the client"),
        (503, "ServiceNotAvailable", "Unavailable.", True, "unavailable"),
        (500, "InternalServerError", "Boom.", True, "Boom."),
    ],
)
def test_graph_errors_are_explained(app_hook, status, code, message, retryable, explains):
    error = app_hook._graph_error(_graph_response(status, code, message, {"request-id": "header-id"}), "AAk=")
    assert isinstance(error, ApiError)
    assert isinstance(error, NonRetryableApiError) is not retryable
    assert (error.status, error.code, error.request_id) == (status, code, "header-id")
    assert explains in str(error)
    assert str(error).startswith(f"Microsoft Graph error {status} ({code}): ")
    assert str(error).endswith("[request-id header-id]")


def test_a_graph_error_without_a_json_body_still_reads(app_hook):
    error = app_hook._graph_error(httpx.Response(502, text="<html>Bad gateway</html>"), None)
    assert type(error) is ApiError and error.status == 502 and error.code is None
    inner = app_hook._graph_error(_graph_response(403, "ErrorAccessDenied", "Denied"), None)
    assert inner.request_id == "inner-id"


def test_identity_errors_keep_the_aadsts_code():
    from azure.core.exceptions import ClientAuthenticationError

    from airflow_provider_qconn.hooks.msgraph.errors import credential_error, identity_error

    refused = identity_error(
        "invalid_grant",
        [700082],
        "AADSTS700082: The refresh token has expired due to inactivity. Trace ID: t Correlation ID: c",
        hint="the refresh token in connection 'x' was refused",
    )
    assert type(refused) is NonRetryableApiError and refused.code == "AADSTS700082"
    assert "Trace ID" not in str(refused) and "refresh token has expired" in str(refused)
    assert type(identity_error("temporarily_unavailable", [], "AADSTS90033: Busy.")) is ApiError
    secret = credential_error(
        ClientAuthenticationError(message="Authentication failed: AADSTS7000215: Invalid client secret provided.")
    )
    assert type(secret) is NonRetryableApiError
    assert secret.code == "AADSTS7000215" and "Invalid client secret provided." in str(secret)


# --- what Airflow reads -----------------------------------------------------------------------------------------------


def test_provider_info_declares_the_hook_and_the_fields_it_reads():
    (entry,) = [c for c in get_provider_info()["connection-types"] if c["connection-type"] == "qconn_msgraph"]
    assert entry["hook-class-name"] == f"{MSGraphHook.__module__}.{MSGraphHook.__name__}"
    assert entry["hook-name"] == MSGraphHook.hook_name
    assert entry["conn-fields"] is MSGRAPH_CONN_FIELDS
    assert MSGraphHook.conn_type == "qconn_msgraph"
    assert MSGraphHook.conn_name_attr == "msgraph_conn_id"
    assert MSGraphHook.default_conn_name == "qconn_msgraph_default"
    assert set(MSGRAPH_CONN_FIELDS) == {
        "auth_type",
        "tenant_id",
        "refresh_token",
        "user_id",
        "certificate_path",
        "certificate_data",
        "base_url",
        "authority",
    }
    assert [v for v in MSGRAPH_CONN_FIELDS["auth_type"]["schema"]["enum"] if v] == list(AUTH_TYPES)
    secret_fields = {name for name, field in MSGRAPH_CONN_FIELDS.items() if field["schema"].get("format") == "password"}
    assert secret_fields == {"refresh_token", "certificate_data"}


def test_every_conn_field_reaches_the_settings():
    values = {
        "auth_type": "certificate",
        "tenant_id": TENANT,
        "user_id": "a@x.com",
        "certificate_path": "/c.pem",
        "base_url": "https://graph.microsoft.us/v1.0",
        "authority": "https://login.microsoftonline.us",
    }
    parsed = settings(**values)
    assert {name: getattr(parsed, name) for name in values} == values
    assert settings(refresh_token="rt").refresh_token == "rt"
    assert settings(certificate_data="test-pem", tenant_id=TENANT, user_id="u").certificate_data == "test-pem"


@pytest.mark.filterwarnings("ignore:ProvidersManager.hooks is deprecated")
def test_providers_manager_finds_the_hook():
    from airflow.providers_manager import ProvidersManager

    info = ProvidersManager().hooks["qconn_msgraph"]
    assert info.hook_class_name == "airflow_provider_qconn.hooks.msgraph.MSGraphHook"
    assert info.connection_id_attribute_name == "msgraph_conn_id"
    assert info.connection_testable is True
    widgets = ProvidersManager().connection_form_widgets
    assert {f"extra__qconn_msgraph__{name}" for name in MSGRAPH_CONN_FIELDS} <= set(widgets)
    assert widgets["extra__qconn_msgraph__refresh_token"].is_sensitive


def test_importing_the_operators_loads_no_sdk():
    code = (
        "import sys, airflow_provider_qconn.operators.outlook\n"
        "loaded = sorted({m.split('.')[0] for m in sys.modules} & {'msgraph', 'msgraph_core', 'kiota_http', 'msal', "
        "'twilio'} | {m for m in sys.modules if m.startswith('azure.identity')})\n"
        "print('loaded:' + ','.join(loaded))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip().splitlines()[-1] == "loaded:"

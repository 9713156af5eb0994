"""Provider metadata read by Airflow's providers manager (entry point ``apache_airflow_provider``).

The connection forms are declared here as ``conn-fields`` (Airflow >= 3.2 reads them without importing the
hooks). Field names are part of the public surface: never rename one. A field's default is the hook's and
its description says it (tests/unit/test_provider_info.py holds code, form and docs to the same value):
Airflow 3's connection form shows ``placeholders`` on the standard fields only, and offers a string field's
``examples`` as suggestions. The integrations, hooks, operators, sensors and triggers feed ``airflow
providers`` and the providers views; the metadata is valid against Airflow's ``provider_info.schema.json``
and its stricter ``provider.yaml.schema.json``.

This module is imported by every ``airflow`` command: it imports nothing of the provider but its version.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_qconn import __version__

_TEXT = {"type": ["string", "null"]}
_SECRET = {"type": ["string", "null"], "format": "password"}


def _field(label: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"label": label, "description": description, "schema": dict(schema or _TEXT)}


MSGRAPH_CONN_FIELDS: dict[str, dict[str, Any]] = {
    "auth_type": _field(
        "Authentication",
        "refresh_token (delegated sign-in), client_secret, certificate, managed_identity or workload_identity. "
        "Inferred when empty: a refresh token means delegated, a certificate means certificate, a password means "
        "client_secret.",
        {
            "type": ["string", "null"],
            "enum": [None, "refresh_token", "client_secret", "certificate", "managed_identity", "workload_identity"],
            "values_display": {
                "null": "Inferred from the credential",
                "refresh_token": "refresh_token: delegated sign-in",
                "client_secret": "client_secret: app-only, client secret",
                "certificate": "certificate: app-only, certificate",
                "managed_identity": "managed_identity: app-only, Azure managed identity",
                "workload_identity": "workload_identity: app-only, workload identity federation",
            },
        },
    ),
    "tenant_id": _field(
        "Tenant",
        "common (default), consumers, organizations, or a tenant id or domain. App-only modes need a real tenant.",
        {"type": ["string", "null"], "examples": ["common", "consumers", "organizations"]},
    ),
    "refresh_token": _field("Refresh token", "Delegated sign-in token (kept secret).", _SECRET),
    "user_id": _field(
        "Mailbox",
        "Mailbox (UPN or id) to act on. Required for app-only modes; delegated sign-in uses the signed-in user's "
        "own mailbox (/me) when empty.",
    ),
    "certificate_path": _field(
        "Certificate path",
        "App-only certificate: a PEM file with the private key and the certificate, readable on every worker; "
        "the password field is the key's password, if any.",
    ),
    "certificate_data": _field(
        "Certificate (PEM)", "App-only certificate and key as PEM text; the password field is its password.", _SECRET
    ),
    "base_url": _field(
        "Graph base URL",
        "Default https://graph.microsoft.com/v1.0; another for a national cloud or a sandbox.",
        {
            "type": ["string", "null"],
            "examples": [
                "https://graph.microsoft.com/v1.0",
                "https://graph.microsoft.us/v1.0",
                "https://dod-graph.microsoft.us/v1.0",
                "https://microsoftgraph.chinacloudapi.cn/v1.0",
            ],
        },
    ),
    "authority": _field(
        "Login authority",
        "Default https://login.microsoftonline.com; another for a national cloud or a sandbox.",
        {
            "type": ["string", "null"],
            "examples": [
                "https://login.microsoftonline.com",
                "https://login.microsoftonline.us",
                "https://login.chinacloudapi.cn",
            ],
        },
    ),
}

TWILIO_CONN_FIELDS: dict[str, dict[str, Any]] = {
    "from_number": _field("WhatsApp sender", "The sender's number in E.164, e.g. +14155238886."),
    "messaging_service_sid": _field("Messaging Service SID", "Alternative sender: a Messaging Service (MG...)."),
    "base_url": _field(
        "API base URL", "One base URL for the Messages and Content APIs (a proxy, a sandbox). Default: Twilio's hosts."
    ),
    "max_concurrency": _field(
        "Maximum concurrency",
        "Upper bound on requests in flight from one task (default 10).",
        {"type": ["integer", "null"], "minimum": 1},
    ),
}


OUTLOOK = "Outlook (Microsoft Graph)"
WHATSAPP = "WhatsApp (Twilio)"


def _modules(*names: str) -> list[str]:
    return [f"airflow_provider_qconn.{name}" for name in names]


def get_provider_info() -> dict[str, Any]:
    """Return the provider's metadata; ``package-name`` must equal the distribution name."""
    return {
        "package-name": "airflow-provider-qconn",
        "name": "Qconn: Outlook meetings and WhatsApp messages",
        "description": (
            "Schedule, update and cancel Outlook meetings through Microsoft Graph, and send WhatsApp "
            "template messages and read their status through Twilio."
        ),
        "versions": [__version__],
        "state": "ready",
        "integrations": [
            {
                "integration-name": OUTLOOK,
                "external-doc-url": "https://learn.microsoft.com/en-us/graph/api/resources/event?view=graph-rest-1.0",
                "tags": ["azure", "service"],
            },
            {
                "integration-name": WHATSAPP,
                "external-doc-url": "https://www.twilio.com/docs/whatsapp",
                "tags": ["service"],
            },
        ],
        "hooks": [
            {"integration-name": OUTLOOK, "python-modules": _modules("hooks.msgraph")},
            {"integration-name": WHATSAPP, "python-modules": _modules("hooks.twilio")},
        ],
        "operators": [
            {"integration-name": OUTLOOK, "python-modules": _modules("operators.outlook")},
            {"integration-name": WHATSAPP, "python-modules": _modules("operators.whatsapp")},
        ],
        "sensors": [{"integration-name": WHATSAPP, "python-modules": _modules("sensors.whatsapp")}],
        "triggers": [{"integration-name": WHATSAPP, "python-modules": _modules("triggers.whatsapp")}],
        "connection-types": [
            {
                "connection-type": "qconn_msgraph",
                "hook-class-name": "airflow_provider_qconn.hooks.msgraph.MSGraphHook",
                "hook-name": OUTLOOK,
                "ui-field-behaviour": {
                    "hidden-fields": ["host", "schema", "port", "extra"],
                    "relabeling": {"login": "Application (client) ID", "password": "Client secret"},
                    "placeholders": {"login": "00000000-0000-0000-0000-000000000000"},
                },
                "conn-fields": MSGRAPH_CONN_FIELDS,
            },
            {
                "connection-type": "qconn_twilio",
                "hook-class-name": "airflow_provider_qconn.hooks.twilio.TwilioHook",
                "hook-name": WHATSAPP,
                "ui-field-behaviour": {
                    "hidden-fields": ["host", "schema", "port", "extra"],
                    "relabeling": {"login": "Account SID", "password": "Auth Token"},
                    "placeholders": {"login": "AC..."},
                },
                "conn-fields": TWILIO_CONN_FIELDS,
            },
        ],
        "cli": ["airflow_provider_qconn.cli.get_cli_commands"],
        "notifications": ["airflow_provider_qconn.notifications.whatsapp.WhatsAppNotifier"],
        "extra-links": [
            "airflow_provider_qconn.links.outlook.OutlookEventLink",
            "airflow_provider_qconn.links.outlook.TeamsMeetingLink",
        ],
    }

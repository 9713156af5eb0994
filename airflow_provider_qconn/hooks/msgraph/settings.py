"""What the hook reads from a ``qconn_msgraph`` connection, checked against the auth mode's row in
:data:`~airflow_provider_qconn.hooks.msgraph.credentials.AUTH_MODES` before any request."""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_provider_qconn.exceptions import ConnectionConfigError
from airflow_provider_qconn.hooks.common import https_url
from airflow_provider_qconn.hooks.msgraph.credentials import AUTH_MODES, AUTH_TYPES, mask_secret

if TYPE_CHECKING:
    from airflow.sdk import Connection

SHARED_TENANTS = ("common", "consumers", "organizations")
DEFAULT_BASE_URL = "https://graph.microsoft.com/v1.0"
DEFAULT_AUTHORITY = "https://login.microsoftonline.com"
#: Graph's host in each national cloud: a base URL on one of them asks for a token for that cloud's Graph.
GRAPH_CLOUD_HOSTS = frozenset(
    {"graph.microsoft.com", "graph.microsoft.us", "dod-graph.microsoft.us", "microsoftgraph.chinacloudapi.cn"}
)
#: The delegated permission every calendar call needs (MSAL adds ``offline_access``, ``openid`` and ``profile``).
DELEGATED_SCOPE = "Calendars.ReadWrite"


@dataclass(frozen=True)
class GraphSettings:
    """Everything the hook reads from its connection (and keyword overrides), validated before any request."""

    conn_id: str
    auth_type: str
    client_id: str | None
    tenant_id: str | None
    user_id: str | None
    base_url: str
    authority: str
    client_secret: str | None = field(default=None, repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    certificate_path: str | None = None
    certificate_data: str | None = field(default=None, repr=False)

    @classmethod
    def from_connection(cls, conn: Connection, **overrides: str | None) -> GraphSettings:
        """Read and check a ``qconn_msgraph`` connection; non-None ``overrides`` replace its extras."""
        conn_id = conn.conn_id
        extra = {key: value for key, value in (conn.extra_dejson or {}).items() if value not in (None, "")}
        extra.update({key: value for key, value in overrides.items() if value not in (None, "")})

        def problem(text: str) -> ConnectionConfigError:
            return ConnectionConfigError(f"connection {conn_id!r}: {text}")

        values: dict[str, Any] = {
            "client_id": _stripped(conn.login),
            "client_secret": conn.password or None,
            "refresh_token": _stripped(extra.get("refresh_token")),
            "certificate_path": _stripped(extra.get("certificate_path")),
            "certificate_data": extra.get("certificate_data") or None,
            "tenant_id": _stripped(extra.get("tenant_id")),
            "user_id": _stripped(extra.get("user_id")),
        }
        if values["certificate_data"]:
            mask_secret(values["certificate_data"])

        auth_type = (_stripped(extra.get("auth_type")) or _inferred_auth_type(values) or "").lower()
        if not auth_type:
            named = ", ".join(mode.named_as for mode in AUTH_MODES.values() if mode.named_as)
            raise problem(f"no credentials: set {named}, or extra 'auth_type' (one of {', '.join(AUTH_TYPES)})")
        mode = AUTH_MODES.get(auth_type)
        if mode is None:
            raise problem(f"extra 'auth_type' must be one of {', '.join(AUTH_TYPES)}, got {auth_type!r}")
        if mode.needs_client_id and not values["client_id"]:
            raise problem("the login field must hold the application (client) id")
        given = [name for name in mode.credential_fields if values[name]]
        if mode.credential_fields and not given:
            raise problem(f"auth_type {auth_type!r} {mode.missing_credential}")
        if len(given) > 1:
            raise problem(f"set only one of extra {' and '.join(repr(name) for name in given)}")
        if mode.delegated:
            values["tenant_id"] = values["tenant_id"] or "common"
        else:
            tenant_id = values["tenant_id"]
            if (tenant_id or "").lower() in SHARED_TENANTS or (mode.needs_tenant and tenant_id is None):
                raise problem(
                    f"app-only sign-in ({auth_type}) needs extra 'tenant_id' set to the directory (tenant) id or "
                    f"domain, not {tenant_id or 'common'!r}: the shared authorities common, consumers and "
                    "organizations only serve delegated sign-in"
                )
            if values["user_id"] is None:
                raise problem(
                    f"app-only sign-in ({auth_type}) needs extra 'user_id', the mailbox (UPN or id) to act on: "
                    "/me only exists for a signed-in user"
                )
        return cls(
            conn_id=conn_id,
            auth_type=auth_type,
            base_url=https_url(extra, "base_url", DEFAULT_BASE_URL, conn_id),
            authority=https_url(extra, "authority", DEFAULT_AUTHORITY, conn_id),
            **values,
        )

    @property
    def delegated(self) -> bool:
        return AUTH_MODES[self.auth_type].delegated

    @property
    def graph_host(self) -> str:
        """The host of the base URL: the only host the access token is sent to."""
        return urllib.parse.urlsplit(self.base_url).hostname or ""

    @property
    def scopes(self) -> list[str]:
        """What the token is asked for: Graph's own resource, that of the base URL's national cloud if it is one."""
        host = self.graph_host if self.graph_host in GRAPH_CLOUD_HOSTS else "graph.microsoft.com"
        if not self.delegated:
            return [f"https://{host}/.default"]
        return [DELEGATED_SCOPE if host == "graph.microsoft.com" else f"https://{host}/{DELEGATED_SCOPE}"]

    @property
    def microsoft_authority(self) -> bool:
        """Whether the authority is one of Microsoft's clouds (else instance discovery must be off)."""
        from msal.authority import WELL_KNOWN_AUTHORITY_HOSTS

        return (urllib.parse.urlsplit(self.authority).hostname or "") in WELL_KNOWN_AUTHORITY_HOSTS

    @property
    def mailbox(self) -> str:
        """The mailbox as people read it: the user id, or the signed-in user."""
        return self.user_id or "the signed-in user's mailbox (/me)"


def _inferred_auth_type(values: dict[str, Any]) -> str | None:
    """The auth mode a connection without ``auth_type`` means: the first, by rank, whose credential is set."""
    inferable = sorted(
        (mode.inferred_rank, name) for name, mode in AUTH_MODES.items() if mode.inferred_rank is not None
    )
    for _rank, name in inferable:
        if any(values[field_name] for field_name in AUTH_MODES[name].credential_fields):
            return name
    return None


def _stripped(value: Any) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text or None

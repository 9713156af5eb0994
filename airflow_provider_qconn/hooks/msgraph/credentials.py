"""Sign-in: the auth modes a connection can use (:data:`AUTH_MODES`, one row each) and their token credentials.

A new auth mode is one row of :data:`AUTH_MODES`: what it needs from the connection, checked by
:meth:`GraphSettings.from_connection <airflow_provider_qconn.hooks.msgraph.settings.GraphSettings.from_connection>`,
and the function that builds its credential. azure-identity, MSAL and requests are imported when a credential
is built or used, never at module level.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_qconn.exceptions import ConnectionConfigError
from airflow_provider_qconn.hooks.common import bundle_context, ca_bundle
from airflow_provider_qconn.hooks.msgraph.errors import IDENTITY, identity_error, unreachable
from airflow_provider_qconn.hooks.msgraph.token_store import NewestRefreshToken, TokenStore, VariableTokenStore

if TYPE_CHECKING:
    import requests
    from azure.core.credentials import AccessToken

    from airflow_provider_qconn.hooks.msgraph.settings import GraphSettings

#: An access token is renewed when it has less than this many seconds left.
TOKEN_RENEWAL_MARGIN = 300
#: azure-core logs every token request's headers, and azure-identity every token lookup, at INFO: quiet them
#: in task logs unless they were configured.
_CHATTY_AZURE_LOGGERS = ("azure.core.pipeline.policies.http_logging_policy", "azure.identity")


def login_command(conn_id: str) -> str:
    """The command that signs a connection in again (``airflow qconn outlook-login``, see docs/outlook.md)."""
    suffix = "" if conn_id == "qconn_msgraph_default" else f" --conn-id {conn_id}"
    return f"airflow qconn outlook-login{suffix}"


def mask_secret(value: str) -> None:
    """Hide a secret in task logs (Airflow masks extras by name; ``certificate_data`` and rotated tokens it
    cannot know)."""
    from airflow.sdk.log import mask_secret as airflow_mask_secret

    airflow_mask_secret(value)


def requests_session(verify: str | bool) -> requests.Session:
    """A requests session that verifies with ``verify`` whatever ``REQUESTS_CA_BUNDLE`` says.

    MSAL sends no ``verify`` of its own with an injected session, so requests would let the environment's CA
    bundle replace the session's. Unlike ``trust_env=False``, this keeps the proxy variables working. A bundle
    file is verified with the process's shared SSL context for it (:func:`~airflow_provider_qconn.hooks.common.
    bundle_context`), which requests would otherwise load again for each connection.
    """
    import requests
    from requests.adapters import HTTPAdapter

    class PinnedSession(requests.Session):
        def merge_environment_settings(
            self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any
        ) -> dict[str, Any]:
            settings = super().merge_environment_settings(url, proxies, stream, verify, cert)
            settings["verify"] = self.verify
            return settings

    class SharedContextAdapter(HTTPAdapter):
        def build_connection_pool_key_attributes(
            self, request: Any, verify: Any, cert: Any = None
        ) -> tuple[dict[str, Any], dict[str, Any]]:
            host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
            if "ca_certs" in pool_kwargs:
                pool_kwargs["ssl_context"] = bundle_context(pool_kwargs.pop("ca_certs"))
            return host_params, pool_kwargs

        def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
            super().cert_verify(conn, url, verify, cert)
            if conn.conn_kw.get("ssl_context") is not None:
                conn.ca_certs = None  # the pool's context holds the bundle already

    session = PinnedSession()
    session.verify = verify
    session.mount("https://", SharedContextAdapter())
    return session


class RefreshTokenCredential:
    """An azure-core ``TokenCredential`` for delegated access from a stored refresh token, redeemed with MSAL.

    No azure-identity credential accepts a refresh token. This one keeps the access token until it nearly
    expires and always redeems the newest refresh token: the one kept in ``token_store`` for this connection
    when there is one (see :mod:`.token_store`; should it be refused, the connection's is tried once), else the
    connection's. Each redemption returns a new refresh
    token, masked in Airflow's logs and written back to the store; nothing goes to disk or to a log.

    :param settings: the checked connection.
    :param token_store: where the newest refresh token lives (Airflow Variables when not given).
    """

    def __init__(self, settings: GraphSettings, token_store: TokenStore | None = None) -> None:
        self._settings = settings
        self._newest = NewestRefreshToken(
            settings.conn_id, settings.refresh_token or "", token_store or VariableTokenStore(), mask_secret
        )
        self._token: AccessToken | None = None
        self._lock = threading.Lock()
        self._session: requests.Session | None = None
        self._app: Any = None

    @property
    def refresh_token(self) -> str:
        """The newest refresh token (the stored one, or the connection's, until the first redemption)."""
        return self._newest.current

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        """An access token for ``scopes``, redeeming the refresh token when the cached one is about to expire."""
        from azure.core.credentials import AccessToken

        with self._lock:
            if self._token is not None and self._token.expires_on - TOKEN_RENEWAL_MARGIN > time.time():
                return self._token
            result = self._redeem(list(scopes))
            if result.get("refresh_token"):
                self._newest.rotated(result["refresh_token"])
            self._token = AccessToken(result["access_token"], int(time.time()) + int(result.get("expires_in", 0)))
            return self._token

    def _redeem(self, scopes: list[str]) -> dict[str, Any]:
        import requests

        try:
            result = self._application().acquire_token_by_refresh_token(self._newest.current, scopes=scopes)
            if result.get("error") == "invalid_grant" and self._newest.fall_back():
                result = self._application().acquire_token_by_refresh_token(self._newest.current, scopes=scopes)
        except requests.RequestException as error:
            raise unreachable(IDENTITY, self._settings.authority, error) from error
        if "access_token" in result:
            return dict(result)
        raise identity_error(
            result.get("error"),
            result.get("error_codes") or [],
            result.get("error_description") or "",
            hint=(
                f"the refresh token of connection {self._settings.conn_id!r} (from {self._newest.source}) was "
                f"refused: sign in again with `{login_command(self._settings.conn_id)}`"
            )
            if result.get("error") == "invalid_grant"
            else None,
        )

    def _application(self) -> Any:
        """The MSAL client application (built on first use: MSAL reads the authority's metadata when built)."""
        if self._app is None:
            import msal
            import requests

            settings = self._settings
            self._session = requests_session(ca_bundle() or True)
            options: dict[str, Any] = {
                "authority": f"{settings.authority}/{settings.tenant_id}",
                "http_client": self._session,
            }
            if not settings.microsoft_authority:
                options["instance_discovery"] = False
            try:
                if settings.client_secret:
                    self._app = msal.ConfidentialClientApplication(
                        settings.client_id, client_credential=settings.client_secret, **options
                    )
                else:
                    self._app = msal.PublicClientApplication(settings.client_id, **options)
            except requests.RequestException as error:
                raise unreachable(IDENTITY, settings.authority, error) from error
            except ValueError as error:
                raise ConnectionConfigError(
                    f"connection {settings.conn_id!r}: the authority {options['authority']!r} is unusable: {error}"
                ) from error
        return self._app

    def close(self) -> None:
        if self._session is not None:
            self._session.close()


# --- the builders, one per auth mode -------------------------------------------------------------------------------


def _quiet_azure_loggers() -> None:
    for name in _CHATTY_AZURE_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.WARNING)


def _azure_options(settings: GraphSettings) -> dict[str, Any]:
    """What every azure-identity credential that talks to the authority gets (and quieter azure loggers): the
    configured CA bundle, through a session that verifies with the shared SSL context (see
    :func:`requests_session`)."""
    from azure.core.pipeline.transport import RequestsTransport

    _quiet_azure_loggers()
    verify = ca_bundle() or True
    return {
        "authority": settings.authority,
        "disable_instance_discovery": not settings.microsoft_authority,
        "connection_verify": verify,
        "transport": RequestsTransport(session=requests_session(verify), session_owner=True),
    }


def _client_secret(settings: GraphSettings) -> Any:
    import azure.identity

    return azure.identity.ClientSecretCredential(
        settings.tenant_id, settings.client_id, settings.client_secret, **_azure_options(settings)
    )


def _certificate(settings: GraphSettings) -> Any:
    import azure.identity

    return azure.identity.CertificateCredential(
        settings.tenant_id,
        settings.client_id,
        certificate_path=settings.certificate_path,
        certificate_data=settings.certificate_data.encode() if settings.certificate_data else None,
        password=settings.client_secret.encode() if settings.client_secret else None,
        **_azure_options(settings),
    )


def _managed_identity(settings: GraphSettings) -> Any:
    import azure.identity

    _quiet_azure_loggers()
    return azure.identity.ManagedIdentityCredential(client_id=settings.client_id)


def _workload_identity(settings: GraphSettings) -> Any:
    import azure.identity

    return azure.identity.WorkloadIdentityCredential(
        tenant_id=settings.tenant_id, client_id=settings.client_id, **_azure_options(settings)
    )


# --- the table -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuthMode:
    """One ``auth_type``: what it needs from the connection and how its credential is built.

    The connection is checked in this order: the client id, the credential, then (app-only modes) the tenant
    and the mailbox.
    """

    #: Builds the token credential from checked settings (and, for a mode that keeps a refresh token, the
    #: ``token_store`` keyword).
    build: Callable[..., Any]
    #: Delegated: acts as the signed-in user (``/me``) on any tenant (``common`` by default). Otherwise
    #: app-only: acts on the mailbox in ``user_id``, with a token of a real tenant.
    delegated: bool = False
    #: The login field must hold the application (client) id.
    needs_client_id: bool = False
    #: The settings fields that hold its secret: exactly one of them must be set.
    credential_fields: tuple[str, ...] = ()
    #: What the error says is missing when none of them is set (after ``auth_type '<name>' ``).
    missing_credential: str = ""
    #: An app-only mode that cannot read its tenant from the environment needs ``tenant_id`` set.
    needs_tenant: bool = False
    #: When ``auth_type`` is empty, a set credential field implies this mode (lower ranks are tried first) ...
    inferred_rank: int | None = None
    #: ... and the "no credentials" error names its secret like this.
    named_as: str = ""
    #: Its credential keeps the newest refresh token in a token store (given to ``build`` as ``token_store``).
    keeps_refresh_token: bool = False


#: Every auth mode, in the order the connection form lists them.
AUTH_MODES: dict[str, AuthMode] = {
    "refresh_token": AuthMode(
        build=RefreshTokenCredential,
        delegated=True,
        needs_client_id=True,
        credential_fields=("refresh_token",),
        missing_credential="needs extra 'refresh_token' (`airflow qconn outlook-login` signs in and sets it)",
        inferred_rank=1,
        named_as="extra 'refresh_token' (delegated sign-in)",
        keeps_refresh_token=True,
    ),
    "client_secret": AuthMode(
        build=_client_secret,
        needs_client_id=True,
        credential_fields=("client_secret",),
        missing_credential="needs the client secret in the password field",
        needs_tenant=True,
        inferred_rank=3,  # a password beside a certificate is the certificate's password
        named_as="the password (client secret)",
    ),
    "certificate": AuthMode(
        build=_certificate,
        needs_client_id=True,
        credential_fields=("certificate_path", "certificate_data"),
        missing_credential="needs extra 'certificate_path' or 'certificate_data' (PEM)",
        needs_tenant=True,
        inferred_rank=2,
        named_as="extra 'certificate_path' or 'certificate_data'",
    ),
    "managed_identity": AuthMode(build=_managed_identity),
    "workload_identity": AuthMode(build=_workload_identity),
}
AUTH_TYPES = tuple(AUTH_MODES)
APP_ONLY_AUTH_TYPES = frozenset(name for name, mode in AUTH_MODES.items() if not mode.delegated)


def build_credential(settings: GraphSettings, token_store: TokenStore | None = None) -> Any:
    """The credential for the connection's auth type (azure-identity's, or ours for a refresh token).

    :param token_store: where a delegated credential keeps the newest refresh token (Airflow Variables when
        None); app-only modes keep nothing.
    """
    mode = AUTH_MODES[settings.auth_type]
    options = {"token_store": token_store} if mode.keeps_refresh_token else {}
    try:
        return mode.build(settings, **options)
    except (ValueError, OSError) as error:
        raise ConnectionConfigError(
            f"connection {settings.conn_id!r}: cannot build the {settings.auth_type} credential: {error}"
        ) from error

"""MSGraphHook: credentials from an Airflow connection, a msgraph-sdk client, and the calendar calls.

Requests are built with msgraph-sdk's request builders and typed models and sent through its request adapter
(kiota's middleware: retries of 429/503/504 honouring ``Retry-After``, redirects, the ``/me`` URL fix-up).
Responses are read as JSON, without the SDK's typed-model parse: its first use in a process imports about 1,200
modules and costs about 2 s (measured by bench/outlook_overhead.py, see docs/outlook.md), for the four fields a
task needs.

msgraph-sdk, azure-identity and MSAL are imported inside the methods that use them, never at module level, so
that parsing a DAG which uses the Outlook operators stays as cheap as importing Airflow.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import functools
import html
import importlib
import json
import logging
import re
import threading
import time
import urllib.parse
import warnings
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

from airflow.sdk import BaseHook

from airflow_provider_qconn.exceptions import ApiError, ConnectionConfigError, NonRetryableApiError, QconnError
from airflow_provider_qconn.hooks.common import ca_bundle, https_url, ssl_context
from airflow_provider_qconn.normalise import EmailAddress

if TYPE_CHECKING:
    import httpx
    import requests
    from airflow.sdk import Connection
    from azure.core.credentials import AccessToken
    from kiota_abstractions.request_information import RequestInformation
    from msgraph import GraphServiceClient

T = TypeVar("T")

GRAPH = "Microsoft Graph"
IDENTITY = "Microsoft identity platform"
AUTH_TYPES = ("refresh_token", "client_secret", "certificate", "managed_identity", "workload_identity")
APP_ONLY_AUTH_TYPES = frozenset(AUTH_TYPES) - {"refresh_token"}
SHARED_TENANTS = ("common", "consumers", "organizations")
DEFAULT_BASE_URL = "https://graph.microsoft.com/v1.0"
DEFAULT_AUTHORITY = "https://login.microsoftonline.com"
#: Graph's host in each national cloud: a base URL on one of them asks for a token for that cloud's Graph.
GRAPH_CLOUD_HOSTS = frozenset(
    {"graph.microsoft.com", "graph.microsoft.us", "dod-graph.microsoft.us", "microsoftgraph.chinacloudapi.cn"}
)
#: The delegated permission every calendar call needs (MSAL adds ``offline_access``, ``openid`` and ``profile``).
DELEGATED_SCOPE = "Calendars.ReadWrite"
#: An access token is renewed when it has less than this many seconds left.
TOKEN_RENEWAL_MARGIN = 300
#: Outlook's Teams block is framed by lines of underscores; Graph warns that dropping it turns the meeting off.
_TEAMS_BLOCK_RULE = re.compile(r"_{30,}")
_PREFER_IMMUTABLE_IDS = 'IdType="ImmutableId"'
_RETRIED_BY_KIOTA = (429, 503, 504)
#: Graph's codes for an event that does not exist (the docs list both spellings).
ITEM_NOT_FOUND = ("ErrorItemNotFound", "itemNotFound")
CANCEL_ATTEMPTS = 3
#: The generated modules the hook uses (imported once, quietly: see _load_sdk).
_SDK_MODULES = (
    "kiota_abstractions.base_request_configuration",
    "msgraph.generated.users.users_request_builder",
    "msgraph.generated.users.item.user_item_request_builder",
    "msgraph.generated.users.item.events.events_request_builder",
    "msgraph.generated.users.item.events.item.event_item_request_builder",
    "msgraph.generated.users.item.events.item.cancel.cancel_request_builder",
)
#: azure-core logs every token request's headers, and azure-identity every token lookup, at INFO: quiet them
#: in task logs unless they were configured.
_CHATTY_AZURE_LOGGERS = ("azure.core.pipeline.policies.http_logging_policy", "azure.identity")


# --- the connection ------------------------------------------------------------------------------------------------


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

        client_id = _stripped(conn.login)
        secret = conn.password or None
        refresh_token = _stripped(extra.get("refresh_token"))
        certificate_path = _stripped(extra.get("certificate_path"))
        certificate_data = extra.get("certificate_data") or None
        if certificate_data:
            _mask_secret(certificate_data)
        auth_type = _stripped(extra.get("auth_type"))
        if auth_type is None:
            if refresh_token:
                auth_type = "refresh_token"
            elif certificate_path or certificate_data:
                auth_type = "certificate"
            elif secret:
                auth_type = "client_secret"
            else:
                raise problem(
                    "no credentials: set extra 'refresh_token' (delegated sign-in), the password (client secret), "
                    "extra 'certificate_path' or 'certificate_data', or extra 'auth_type' "
                    f"(one of {', '.join(AUTH_TYPES)})"
                )
        auth_type = auth_type.lower()
        if auth_type not in AUTH_TYPES:
            raise problem(f"extra 'auth_type' must be one of {', '.join(AUTH_TYPES)}, got {auth_type!r}")
        if auth_type in ("refresh_token", "client_secret", "certificate") and not client_id:
            raise problem("the login field must hold the application (client) id")
        if auth_type == "refresh_token" and not refresh_token:
            raise problem("auth_type 'refresh_token' needs extra 'refresh_token' (sign in to get one)")
        if auth_type == "client_secret" and not secret:
            raise problem("auth_type 'client_secret' needs the client secret in the password field")
        if auth_type == "certificate":
            if not (certificate_path or certificate_data):
                raise problem("auth_type 'certificate' needs extra 'certificate_path' or 'certificate_data' (PEM)")
            if certificate_path and certificate_data:
                raise problem("set only one of extra 'certificate_path' and 'certificate_data'")
        tenant_id = _stripped(extra.get("tenant_id"))
        user_id = _stripped(extra.get("user_id"))
        if auth_type in APP_ONLY_AUTH_TYPES:
            needs_tenant = auth_type in ("client_secret", "certificate")
            if (tenant_id or "").lower() in SHARED_TENANTS or (needs_tenant and tenant_id is None):
                raise problem(
                    f"app-only sign-in ({auth_type}) needs extra 'tenant_id' set to the directory (tenant) id or "
                    f"domain, not {tenant_id or 'common'!r}: the shared authorities common, consumers and "
                    "organizations only serve delegated sign-in"
                )
            if user_id is None:
                raise problem(
                    f"app-only sign-in ({auth_type}) needs extra 'user_id', the mailbox (UPN or id) to act on: "
                    "/me only exists for a signed-in user"
                )
        else:
            tenant_id = tenant_id or "common"
        return cls(
            conn_id=conn_id,
            auth_type=auth_type,
            client_id=client_id,
            tenant_id=tenant_id,
            user_id=user_id,
            base_url=https_url(extra, "base_url", DEFAULT_BASE_URL, conn_id),
            authority=https_url(extra, "authority", DEFAULT_AUTHORITY, conn_id),
            client_secret=secret,
            refresh_token=refresh_token,
            certificate_path=certificate_path,
            certificate_data=certificate_data,
        )

    @property
    def delegated(self) -> bool:
        return self.auth_type == "refresh_token"

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


@functools.cache
def _load_sdk() -> None:
    """Import the msgraph-sdk and kiota modules the hook uses, once and quietly: they define deprecated request
    configuration classes, which warn when their module is imported."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        for module in _SDK_MODULES:
            importlib.import_module(module)


def _stripped(value: Any) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text or None


# --- credentials ---------------------------------------------------------------------------------------------------


def requests_session(verify: str | bool) -> requests.Session:
    """A requests session that verifies with ``verify`` whatever ``REQUESTS_CA_BUNDLE`` says.

    MSAL sends no ``verify`` of its own with an injected session, so requests would let the environment's CA
    bundle replace the session's. Unlike ``trust_env=False``, this keeps the proxy variables working.
    """
    import requests

    class PinnedSession(requests.Session):
        def merge_environment_settings(
            self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any
        ) -> dict[str, Any]:
            settings = super().merge_environment_settings(url, proxies, stream, verify, cert)
            settings["verify"] = self.verify
            return settings

    session = PinnedSession()
    session.verify = verify
    return session


class RefreshTokenCredential:
    """An azure-core ``TokenCredential`` for delegated access from a stored refresh token, redeemed with MSAL.

    No azure-identity credential accepts a refresh token. This one keeps the access token until it nearly
    expires and always redeems the newest refresh token (each redemption returns a new one); nothing is
    written to disk or logged, and the rotated token is masked in Airflow's logs.
    """

    def __init__(self, settings: GraphSettings) -> None:
        self._settings = settings
        self._refresh_token = settings.refresh_token or ""
        self._token: AccessToken | None = None
        self._lock = threading.Lock()
        self._session: requests.Session | None = None
        self._app: Any = None

    @property
    def refresh_token(self) -> str:
        """The newest refresh token (the connection's until the first redemption)."""
        return self._refresh_token

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        """An access token for ``scopes``, redeeming the refresh token when the cached one is about to expire."""
        from azure.core.credentials import AccessToken

        with self._lock:
            if self._token is not None and self._token.expires_on - TOKEN_RENEWAL_MARGIN > time.time():
                return self._token
            result = self._redeem(list(scopes))
            rotated = result.get("refresh_token")
            if rotated and rotated != self._refresh_token:
                _mask_secret(rotated)
                self._refresh_token = rotated
            self._token = AccessToken(result["access_token"], int(time.time()) + int(result.get("expires_in", 0)))
            return self._token

    def _redeem(self, scopes: list[str]) -> dict[str, Any]:
        import requests

        try:
            result = self._application().acquire_token_by_refresh_token(self._refresh_token, scopes=scopes)
        except requests.RequestException as error:
            raise _unreachable(IDENTITY, self._settings.authority, error) from error
        if "access_token" in result:
            return dict(result)
        raise _identity_error(
            result.get("error"),
            result.get("error_codes") or [],
            result.get("error_description") or "",
            hint=(
                f"the refresh token in connection {self._settings.conn_id!r} was refused: sign in again and store "
                "the new refresh token in the connection"
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
                raise _unreachable(IDENTITY, settings.authority, error) from error
            except ValueError as error:
                raise ConnectionConfigError(
                    f"connection {settings.conn_id!r}: the authority {options['authority']!r} is unusable: {error}"
                ) from error
        return self._app

    def close(self) -> None:
        if self._session is not None:
            self._session.close()


def build_credential(settings: GraphSettings) -> Any:
    """The credential for the connection's auth type (azure-identity's, or ours for a refresh token)."""
    if settings.delegated:
        return RefreshTokenCredential(settings)
    import azure.identity

    for name in _CHATTY_AZURE_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.WARNING)

    common: dict[str, Any] = {
        "authority": settings.authority,
        "disable_instance_discovery": not settings.microsoft_authority,
        "connection_verify": ca_bundle() or True,
    }
    try:
        if settings.auth_type == "client_secret":
            return azure.identity.ClientSecretCredential(
                settings.tenant_id, settings.client_id, settings.client_secret, **common
            )
        if settings.auth_type == "certificate":
            return azure.identity.CertificateCredential(
                settings.tenant_id,
                settings.client_id,
                certificate_path=settings.certificate_path,
                certificate_data=settings.certificate_data.encode() if settings.certificate_data else None,
                password=settings.client_secret.encode() if settings.client_secret else None,
                **common,
            )
        if settings.auth_type == "managed_identity":
            return azure.identity.ManagedIdentityCredential(client_id=settings.client_id)
        return azure.identity.WorkloadIdentityCredential(
            tenant_id=settings.tenant_id, client_id=settings.client_id, **common
        )
    except (ValueError, OSError) as error:
        raise ConnectionConfigError(
            f"connection {settings.conn_id!r}: cannot build the {settings.auth_type} credential: {error}"
        ) from error


def _mask_secret(value: str) -> None:
    """Hide a secret in task logs (Airflow masks extras by name; ``certificate_data`` and rotated tokens it
    cannot know)."""
    from airflow.sdk.log import mask_secret

    mask_secret(value)


# --- the calendar: what operators send and get back ---------------------------------------------------------------


@dataclass(frozen=True)
class EventDetails:
    """The event properties an operator sets; None means "not given" (an update keeps the current value)."""

    subject: str | None = None
    content: str | None = None
    content_type: str = "html"
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    location: str | None = None
    attendees: tuple[EmailAddress, ...] | None = None
    teams_meeting: bool | None = None


@dataclass(frozen=True)
class Meeting:
    """What Graph says about an event after a create or an update."""

    id: str
    web_link: str | None
    join_url: str | None
    ical_uid: str | None
    is_cancelled: bool
    is_online_meeting: bool

    @classmethod
    def from_graph(cls, event: Mapping[str, Any]) -> Meeting:
        return cls(
            id=str(event["id"]),
            web_link=event.get("webLink"),
            join_url=(event.get("onlineMeeting") or {}).get("joinUrl"),
            ical_uid=event.get("iCalUId"),
            is_cancelled=bool(event.get("isCancelled")),
            is_online_meeting=bool(event.get("isOnlineMeeting")),
        )


def graph_date_time(moment: dt.datetime) -> tuple[str, str]:
    """A ``dateTimeTimeZone`` (local time, Windows zone name) for an aware datetime.

    A named IANA zone is kept (as Outlook's Windows name, so the event shows its organizer's zone); a fixed
    offset or an unknown zone is converted to UTC.
    """
    from tzlocal.windows_tz import tz_win

    key = getattr(moment.tzinfo, "key", None) or getattr(moment.tzinfo, "name", None)
    windows_name = tz_win.get(key) if isinstance(key, str) else None
    if windows_name is None:
        moment, windows_name = moment.astimezone(dt.timezone.utc), "UTC"
    return moment.replace(tzinfo=None).isoformat(timespec="seconds"), windows_name


def teams_block(body_html: str) -> str | None:
    """The Teams block of an event body (between Outlook's two rules of underscores, with their ``div``)."""
    rules = list(_TEAMS_BLOCK_RULE.finditer(body_html))
    if not rules:
        return None
    start = body_html.rfind("<div", 0, rules[0].start())
    start = rules[0].start() if start < 0 else start
    end = len(body_html)
    if len(rules) > 1:
        close = body_html.find("</div>", rules[-1].end())
        end = close + len("</div>") if close >= 0 else rules[-1].end()
    else:
        body_end = body_html.lower().rfind("</body>")
        end = body_end if body_end > start else end
    return body_html[start:end]


def with_teams_block(content: str, content_type: str, block: str) -> str:
    """New body content (as HTML) with an event's Teams block appended, where Outlook keeps it."""
    if content_type == "text":
        content = html.escape(content).replace("\n", "<br>\n")
    body_end = content.lower().rfind("</body>")
    if body_end >= 0:
        return content[:body_end] + block + content[body_end:]
    return content + block


# --- the hook ------------------------------------------------------------------------------------------------------


class MSGraphHook(BaseHook):
    """Outlook calendar events through Microsoft Graph, for one mailbox of a ``qconn_msgraph`` connection.

    Keyword arguments override the connection's extras. The hook keeps one Graph client (and one access token)
    for its lifetime; :meth:`close` releases them. Its methods are synchronous: each runs the SDK's async calls
    on the hook's own event loop.
    """

    conn_name_attr = "msgraph_conn_id"
    default_conn_name = "qconn_msgraph_default"
    conn_type = "qconn_msgraph"
    hook_name = "Outlook (Microsoft Graph)"

    def __init__(
        self,
        msgraph_conn_id: str = default_conn_name,
        *,
        auth_type: str | None = None,
        tenant_id: str | None = None,
        user_id: str | None = None,
        base_url: str | None = None,
        authority: str | None = None,
    ) -> None:
        super().__init__()
        self.msgraph_conn_id = msgraph_conn_id
        self._overrides = {
            "auth_type": auth_type,
            "tenant_id": tenant_id,
            "user_id": user_id,
            "base_url": base_url,
            "authority": authority,
        }
        self._http: httpx.AsyncClient | None = None

    @cached_property
    def settings(self) -> GraphSettings:
        """The connection, read and checked (raises ConnectionConfigError before any request)."""
        return GraphSettings.from_connection(self.get_connection(self.msgraph_conn_id), **self._overrides)

    @cached_property
    def credential(self) -> Any:
        """The token credential for the connection's auth type."""
        return build_credential(self.settings)

    @cached_property
    def client(self) -> GraphServiceClient:
        """msgraph-sdk's client on the connection's base URL, trusting the configured CA bundle."""
        _load_sdk()
        import httpx
        from kiota_authentication_azure.azure_identity_authentication_provider import (
            AzureIdentityAuthenticationProvider,
        )
        from msgraph import GraphRequestAdapter, GraphServiceClient
        from msgraph.graph_request_adapter import options
        from msgraph_core import GraphClientFactory

        settings = self.settings
        auth = AzureIdentityAuthenticationProvider(
            self.credential, scopes=settings.scopes, allowed_hosts=[settings.graph_host]
        )
        self._http = httpx.AsyncClient(
            base_url=settings.base_url, verify=ssl_context(), timeout=httpx.Timeout(100.0, connect=30.0)
        )
        http = GraphClientFactory.create_with_default_middleware(client=self._http, options=options)
        return GraphServiceClient(request_adapter=GraphRequestAdapter(auth, client=http))

    @cached_property
    def _loop(self) -> asyncio.AbstractEventLoop:
        return asyncio.new_event_loop()

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the hook's loop; from inside a running loop (a notebook, async code), in a thread."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return self._loop.run_until_complete(coroutine)
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            return pool.submit(self._loop.run_until_complete, coroutine).result()

    def close(self) -> None:
        """Close the HTTP client, the credential and the event loop (the next call builds them again)."""
        if self._http is not None:
            self._run(self._http.aclose())
            self._http = None
        credential = self.__dict__.pop("credential", None)
        if credential is not None:
            credential.close()
        self.__dict__.pop("client", None)
        loop = self.__dict__.pop("_loop", None)
        if loop is not None:
            loop.close()

    def __enter__(self) -> MSGraphHook:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- calendar calls ---------------------------------------------------------------------------------------------

    def create_event(self, details: EventDetails, transaction_id: str) -> Meeting:
        """``POST .../events``; Graph returns the earlier event instead when ``transaction_id`` was seen before."""
        self.log.info("Creating an event in %s (transactionId %s)", self.settings.mailbox, transaction_id)
        request = self._events().to_post_request_information(
            _event_model(details, transaction_id=transaction_id), self._configuration()
        )
        return Meeting.from_graph(self._run(self._send(request)))

    def get_event(self, meeting_id: str, select: tuple[str, ...] = ()) -> dict[str, Any]:
        """``GET .../events/{id}`` as Graph's JSON (only the ``select``-ed properties when given)."""
        _load_sdk()
        from msgraph.generated.users.item.events.item.event_item_request_builder import EventItemRequestBuilder

        configuration = self._configuration(
            EventItemRequestBuilder.EventItemRequestBuilderGetQueryParameters(select=list(select) or None)
        )
        request = self._events().by_event_id(meeting_id).to_get_request_information(configuration)
        return self._run(self._send(request, meeting_id=meeting_id))

    def update_event(self, meeting_id: str, details: EventDetails) -> Meeting:
        """``PATCH .../events/{id}`` with the given properties only.

        New content is sent with the event's Teams block kept (read with a ``GET`` first): Graph warns that a
        body without it turns the online meeting off.
        """
        if details.content is not None:
            current = self.get_event(meeting_id, select=("body", "isOnlineMeeting", "onlineMeeting"))
            block = teams_block((current.get("body") or {}).get("content") or "")
            if block is not None:
                details = replace(
                    details, content=with_teams_block(details.content, details.content_type, block), content_type="html"
                )
            elif current.get("isOnlineMeeting"):
                self.log.warning(
                    "Meeting %s is a Teams meeting but its body holds no Teams block to keep; Graph may turn the "
                    "online meeting off with the new content",
                    meeting_id,
                )
        self.log.info("Updating event %s in %s", meeting_id, self.settings.mailbox)
        request = (
            self._events()
            .by_event_id(meeting_id)
            .to_patch_request_information(_event_model(details), self._configuration())
        )
        return Meeting.from_graph(self._run(self._send(request, meeting_id=meeting_id)))

    def cancel_event(self, meeting_id: str, comment: str | None = None, *, missing_ok: bool = False) -> bool:
        """``POST .../events/{id}/cancel``: the organizer cancels the meeting and attendees get ``comment``.

        Returns False when the event is not found and ``missing_ok`` is set (deleted, or already cancelled).
        """
        from kiota_http.middleware.options import RetryHandlerOption
        from msgraph.generated.users.item.events.item.cancel.cancel_post_request_body import CancelPostRequestBody

        self.log.info("Cancelling event %s in %s", meeting_id, self.settings.mailbox)
        for attempt in range(1, CANCEL_ATTEMPTS + 1):
            request = (
                self._events()
                .by_event_id(meeting_id)
                .cancel.to_post_request_information(CancelPostRequestBody(comment=comment), self._configuration())
            )
            # A cancel is not idempotent: the client must not replay it blindly (a replay of one that went through
            # answers 404). 429s were not processed and are retried here; other failures are checked first.
            request.add_request_options([RetryHandlerOption(max_retries=0)])
            try:
                self._run(self._send(request, meeting_id=meeting_id))
                return True
            except NonRetryableApiError as error:
                if missing_ok and error.status == 404 and error.code in ITEM_NOT_FOUND:
                    self.log.info(
                        "Event %s was not found (deleted or already cancelled): nothing to cancel", meeting_id
                    )
                    return False
                raise
            except ApiError as error:
                if attempt == CANCEL_ATTEMPTS:
                    raise
                if error.status != 429 and self.is_cancelled(meeting_id):
                    self.log.info(
                        "Event %s is cancelled: the cancel went through although its answer failed", meeting_id
                    )
                    return True
                time.sleep(2 ** (attempt - 1))
        raise AssertionError("unreachable")  # pragma: no cover

    def is_cancelled(self, meeting_id: str) -> bool:
        """Whether the event exists and is cancelled (False when it cannot be read)."""
        try:
            return bool(self.get_event(meeting_id, select=("isCancelled",)).get("isCancelled"))
        except ApiError:
            return False

    def test_connection(self) -> tuple[bool, str]:
        """Read one event id from the mailbox: proves the credentials, the permission and the mailbox."""
        try:
            _load_sdk()
            from msgraph.generated.users.item.events.events_request_builder import EventsRequestBuilder

            configuration = self._configuration(
                EventsRequestBuilder.EventsRequestBuilderGetQueryParameters(top=1, select=["id"])
            )
            self._run(self._send(self._events().to_get_request_information(configuration)))
        except QconnError as error:
            return False, str(error)
        finally:
            self.close()
        return True, f"Connected: the calendar of {self.settings.mailbox} can be read."

    # --- plumbing ---------------------------------------------------------------------------------------------------

    def _events(self) -> Any:
        """The ``events`` request builder of the mailbox: ``/me`` or ``/users/{user_id}``."""
        user_id = self.settings.user_id
        owner = self.client.me if user_id is None else self.client.users.by_user_id(user_id)
        return owner.events

    def _configuration(self, query_parameters: Any = None) -> Any:
        """A request configuration asking for immutable ids, which survive the event being moved."""
        from kiota_abstractions.base_request_configuration import RequestConfiguration

        configuration = RequestConfiguration(query_parameters=query_parameters)
        configuration.headers.add("Prefer", _PREFER_IMMUTABLE_IDS)
        return configuration

    async def _send(self, request: RequestInformation, meeting_id: str | None = None) -> Any:
        """Send through the request adapter (and its middleware); Graph's JSON back, or our error."""
        import httpx
        from azure.core.exceptions import ClientAuthenticationError, ServiceRequestError
        from kiota_abstractions.native_response_handler import NativeResponseHandler
        from kiota_http.middleware.options import ResponseHandlerOption

        request.add_request_options([ResponseHandlerOption(NativeResponseHandler())])
        try:
            response = await self.client.request_adapter.send_primitive_async(request, "bytes", None)
        except ClientAuthenticationError as error:
            raise _credential_error(error) from error
        except ServiceRequestError as error:  # azure-identity could not reach the authority
            raise _unreachable(IDENTITY, self.settings.authority, error) from error
        except httpx.TransportError as error:
            raise _unreachable(GRAPH, self.settings.base_url, error) from error
        if response.status_code >= 400:
            raise self._graph_error(response, meeting_id)
        return json.loads(response.content) if response.content else None

    def _graph_error(self, response: httpx.Response, meeting_id: str | None) -> ApiError:
        """Graph's error envelope as an error a DAG author can act on, with Graph's code and request id."""
        status = response.status_code
        try:
            error = json.loads(response.content).get("error") or {}
        except (ValueError, AttributeError):
            error = {}
        code = error.get("code")
        message = str(error.get("message") or response.reason_phrase or "no message").rstrip(".") + "."
        request_id = response.headers.get("request-id") or (error.get("innerError") or {}).get("request-id")
        settings = self.settings
        explanation = f"Graph refused the request: {message}"
        if status == 401:
            explanation = (
                f"Graph refused the access token for {settings.mailbox}: {message} Check the credentials of "
                f"connection {settings.conn_id!r}."
            )
        elif status == 403:
            grant = (
                "the delegated permission Calendars.ReadWrite, consented to by the user"
                if settings.delegated
                else "the application permission Calendars.ReadWrite with admin consent (an application access "
                "policy may also limit which mailboxes it reaches)"
            )
            explanation = f"access to the calendar of {settings.mailbox} was denied: {message} The app needs {grant}."
        elif status == 404 and code in ITEM_NOT_FOUND and meeting_id:
            explanation = (
                f"meeting {meeting_id!r} was not found in {settings.mailbox}: it was deleted or cancelled, or it "
                "belongs to another mailbox."
            )
        elif status == 404 and code == "ErrorInvalidUser":
            explanation = f"the mailbox {settings.mailbox!r} does not exist (check extra 'user_id'): {message}"
        elif status == 400 and "organizer" in message.lower():
            explanation = (
                f"only the organizer can cancel a meeting, and {settings.mailbox} holds an attendee's copy of "
                f"meeting {meeting_id!r}. Use a connection for the organizer's mailbox. (Graph: {message})"
            )
        elif status in _RETRIED_BY_KIOTA:
            explanation = (
                f"Graph is {'throttling' if status == 429 else 'unavailable'} and still refused after the client's "
                f"retries (which honour Retry-After): {message} A later task try can repeat the call safely."
            )
        if status >= 500 or status in _RETRIED_BY_KIOTA:
            return ApiError(GRAPH, status, code, explanation, request_id=request_id)
        return NonRetryableApiError(GRAPH, status, code, explanation, request_id=request_id)


def _event_model(details: EventDetails, transaction_id: str | None = None) -> Any:
    """msgraph-sdk's ``Event`` with only the given properties set (unset ones are not serialised)."""
    from msgraph.generated.models.attendee import Attendee
    from msgraph.generated.models.attendee_type import AttendeeType
    from msgraph.generated.models.body_type import BodyType
    from msgraph.generated.models.date_time_time_zone import DateTimeTimeZone
    from msgraph.generated.models.email_address import EmailAddress as GraphEmailAddress
    from msgraph.generated.models.event import Event
    from msgraph.generated.models.item_body import ItemBody
    from msgraph.generated.models.location import Location
    from msgraph.generated.models.online_meeting_provider_type import OnlineMeetingProviderType

    event = Event(subject=details.subject, transaction_id=transaction_id)
    if details.content is not None:
        kind = BodyType.Text if details.content_type == "text" else BodyType.Html
        event.body = ItemBody(content_type=kind, content=details.content)
    if details.start is not None:
        date_time, zone = graph_date_time(details.start)
        event.start = DateTimeTimeZone(date_time=date_time, time_zone=zone)
    if details.end is not None:
        date_time, zone = graph_date_time(details.end)
        event.end = DateTimeTimeZone(date_time=date_time, time_zone=zone)
    if details.location is not None:
        event.location = Location(display_name=details.location)
    if details.attendees is not None:
        event.attendees = [
            Attendee(
                email_address=GraphEmailAddress(address=attendee.address, name=attendee.name),
                type=AttendeeType.Required,
            )
            for attendee in details.attendees
        ]
    if details.teams_meeting is not None:
        event.is_online_meeting = details.teams_meeting
        if details.teams_meeting:
            event.online_meeting_provider = OnlineMeetingProviderType.TeamsForBusiness
    return event


_AADSTS = re.compile(r"AADSTS(\d+):?\s*(.*?)(?:\s+Trace ID:|\r|\n|$)", re.DOTALL)
_TRANSIENT_OAUTH_ERRORS = ("temporarily_unavailable", "server_error")


def _identity_error(error: str | None, codes: list[int], description: str, hint: str | None = None) -> ApiError:
    """An OAuth error from the token endpoint (AADSTS code and its first sentence) as our error."""
    found = _AADSTS.search(description)
    code = f"AADSTS{codes[0]}" if codes else (f"AADSTS{found.group(1)}" if found else error)
    detail = (found.group(2) if found else description).strip() or str(error)
    message = f"{hint}. ({detail})" if hint else f"the token request was refused ({error}): {detail}"
    if error in _TRANSIENT_OAUTH_ERRORS:
        return ApiError(IDENTITY, None, code, message)
    return NonRetryableApiError(IDENTITY, None, code, message)


def _unreachable(service: str, url: str, error: Exception) -> ApiError:
    """A connection failure (retryable), with a hint when the server's certificate was not trusted."""
    hint = ""
    if "CERTIFICATE_VERIFY_FAILED" in str(error):
        hint = " (a custom CA bundle goes in SSL_CERT_FILE or REQUESTS_CA_BUNDLE)"
    return ApiError(service, None, None, f"could not reach {url}: {error}{hint}")


def _credential_error(error: Exception) -> ApiError:
    """azure-identity's ClientAuthenticationError (or CredentialUnavailableError) as our error."""
    status = getattr(error, "status_code", None)
    text = str(getattr(error, "message", None) or error)
    found = _AADSTS.search(text)
    code = f"AADSTS{found.group(1)}" if found else None
    detail = found.group(2).strip() if found else text.splitlines()[0]
    message = f"could not get an access token: {detail}"
    if status is not None and status >= 500:
        return ApiError(IDENTITY, status, code, message)
    return NonRetryableApiError(IDENTITY, status, code, message)

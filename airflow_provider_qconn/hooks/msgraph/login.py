"""Signing a delegated connection in: MSAL's device-code flow, or its authorization-code flow with PKCE and a
loopback redirect, against the connection's authority and tenant, for ``Calendars.ReadWrite`` (MSAL adds
``offline_access``, ``openid`` and ``profile``: a refresh token and who signed in).

:mod:`airflow_provider_qconn.cli` turns this into ``airflow qconn outlook-login``. MSAL is imported when a
sign-in starts.
"""

from __future__ import annotations

import http.server
import queue
import threading
import urllib.parse
import warnings
import webbrowser
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_provider_qconn.exceptions import ConnectionConfigError, QconnError
from airflow_provider_qconn.hooks.common import ca_bundle
from airflow_provider_qconn.hooks.msgraph.credentials import requests_session

if TYPE_CHECKING:
    from airflow_provider_qconn.hooks.msgraph.settings import GraphSettings

#: Microsoft's tenant id of every personal account (outlook.com, hotmail.com ...).
CONSUMER_TENANT_ID = "9188040d-6c67-4c5b-b112-36a304b66dad"
FLOWS = ("device", "browser")


class SignInError(QconnError):
    """The sign-in did not give a refresh token (declined, expired, refused); the message says what happened."""


@dataclass(frozen=True)
class SignedIn:
    """The outcome of a sign-in: the refresh token and who signed in (from the ID token's claims)."""

    refresh_token: str = field(repr=False)
    username: str | None
    name: str | None
    tenant_id: str | None

    @property
    def personal(self) -> bool:
        """A personal Microsoft account (no Teams links) rather than a work or school one."""
        return self.tenant_id == CONSUMER_TENANT_ID

    @property
    def account(self) -> str:
        """The account as people read it: ``Adele Vance <adele@contoso.com>``."""
        if self.name and self.username:
            return f"{self.name} <{self.username}>"
        return self.username or self.name or "an account the identity platform did not name"


def public_client(settings: GraphSettings) -> Any:
    """MSAL's public client application for the connection's app, authority and tenant (with the configured CA
    bundle, and no instance discovery on a host that is not Microsoft's)."""
    import msal
    import requests

    if settings.client_secret:
        raise ConnectionConfigError(
            f"connection {settings.conn_id!r} has a client secret in its password: its refresh token would be "
            "redeemed as a confidential client, which the identity platform refuses for a token signed in as a "
            "public client (AADSTS700025). Remove the password to sign in with this command."
        )
    options: dict[str, Any] = {
        "authority": f"{settings.authority}/{settings.tenant_id}",
        "http_client": requests_session(ca_bundle() or True),
    }
    if not settings.microsoft_authority:
        options["instance_discovery"] = False
    try:
        return msal.PublicClientApplication(settings.client_id, **options)
    except requests.RequestException as error:
        raise SignInError(f"could not reach {settings.authority}: {error}") from error
    except ValueError as error:
        raise ConnectionConfigError(f"the authority {options['authority']!r} is unusable: {error}") from error


def with_device_code(app: Any, scopes: list[str], show: Callable[[str], None]) -> SignedIn:
    """The device-code flow: show the code and the URL to enter it at, then poll until the user answers."""
    flow = app.initiate_device_flow(scopes=scopes)
    if "user_code" not in flow:
        raise SignInError(f"the identity platform refused to start a sign-in: {_reason(flow)}")
    show(flow["message"])
    return _signed_in(app.acquire_token_by_device_flow(flow))


def with_browser(
    app: Any,
    scopes: list[str],
    show: Callable[[str], None],
    *,
    port: int = 0,
    open_browser: bool = True,
    timeout: float = 300.0,
) -> SignedIn:
    """The authorization-code flow with PKCE: a browser signs in and is sent back to a listener on this machine's
    loopback interface (``http://localhost:<port>``, any free port unless given)."""
    with _LoopbackReceiver(port) as receiver:
        with warnings.catch_warnings():
            # MSAL recommends form_post for web apps; a loopback listener reads the answer from the query string.
            warnings.filterwarnings("ignore", "response_mode='form_post' is recommended")
            flow = app.initiate_auth_code_flow(scopes, redirect_uri=receiver.redirect_uri, response_mode="query")
        show(f"Sign in with a browser on this machine at:\n{flow['auth_uri']}")
        if open_browser:
            webbrowser.open(flow["auth_uri"])
        answer = receiver.wait(timeout)
    try:
        return _signed_in(app.acquire_token_by_auth_code_flow(flow, answer))
    except ValueError as error:  # MSAL: the answer does not belong to this sign-in (state mismatch)
        raise SignInError(f"the browser's answer does not belong to this sign-in: {error}") from error


def _signed_in(result: dict[str, Any]) -> SignedIn:
    if "error" in result:
        raise SignInError(f"the sign-in failed: {_reason(result)}")
    if not result.get("refresh_token"):
        raise SignInError("the sign-in gave no refresh token (it must ask for offline_access)")
    claims = result.get("id_token_claims") or {}
    return SignedIn(
        refresh_token=result["refresh_token"],
        username=claims.get("preferred_username"),
        name=claims.get("name"),
        tenant_id=claims.get("tid"),
    )


def _reason(result: dict[str, Any]) -> str:
    description = str(result.get("error_description") or "").split(" Trace ID:")[0].strip()
    return f"{result.get('error')}: {description}" if description else str(result.get("error"))


class _LoopbackReceiver:
    """A one-shot HTTP listener on 127.0.0.1 for the browser's redirect (the query string of the first request
    that carries ``code`` or ``error``)."""

    def __init__(self, port: int) -> None:
        answers: queue.Queue[dict[str, str]] = queue.Queue()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))
                if "code" not in params and "error" not in params:
                    self.send_error(404)
                    return
                answers.put(params)
                text = "Signed in: you may close this window." if "code" in params else "The sign-in failed."
                body = f"<!doctype html><html><body><p>{text}</p></body></html>".encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # the query holds the code: log nothing
                return

        self._answers = answers
        self._server = http.server.HTTPServer(("127.0.0.1", port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="qconn-login-callback", daemon=True)

    @property
    def redirect_uri(self) -> str:
        return f"http://localhost:{self._server.server_address[1]}"

    def wait(self, timeout: float) -> dict[str, str]:
        try:
            return self._answers.get(timeout=timeout)
        except queue.Empty:
            raise SignInError(f"no answer from the browser within {timeout:.0f} s") from None

    def __enter__(self) -> _LoopbackReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()

"""Emulated Microsoft identity platform: OpenID discovery, the OAuth 2.0 v2 token endpoint and interactive sign-in.

Just enough for the real azure-identity and MSAL clients to run their own code paths against it:

- ``client_credentials`` with a secret or a certificate assertion (app-only);
- ``refresh_token`` (delegated), with refresh tokens that rotate as Microsoft's do (each use returns a new one;
  the old one stays valid until its own expiry);
- sign-in with the device-code flow (``/devicecode``, then the ``device_code`` grant answered with
  ``authorization_pending``, ``authorization_declined``, ``bad_verification_code`` or ``expired_token`` as
  Microsoft documents) and with the authorization-code flow (``/authorize`` with PKCE, S256 only, then the
  ``authorization_code`` grant). No one types a password: a sign-in is approved (as a mailbox of the seed) or
  declined through the control API (``/_sandbox/identity/...``, used by tests) or the small HTML pages at
  ``/devicelogin`` and ``/authorize`` (a person with a browser, e.g. against ``make sandbox``).

Tokens issued to a signed-in user carry an ID token (``name``, ``preferred_username``, ``oid``, ``tid``, the
request's ``nonce``) and, when asked (``client_info=1``, as MSAL does), ``client_info``. Lifetimes come from
the settings ``access_token_lifetime``, ``refresh_token_lifetime``, ``device_code_lifetime`` (default 900 s)
and ``device_code_interval`` (the polling interval, default 5 s). Error bodies follow the identity platform's
shape (``error``, ``error_description`` starting with an ``AADSTS`` code, ``error_codes``, ``trace_id`` ...).
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import secrets
import urllib.parse
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from airflow_provider_qconn.sandbox.common import base_url, iso_utc, json_response, random_b64, random_hex, state_of
from airflow_provider_qconn.sandbox.seed import CONSUMER_TENANT_ID, NINETY_DAYS, TENANT_DOMAIN, TENANT_ID
from airflow_provider_qconn.sandbox.state import State

SHARED_TENANTS = ("common", "organizations", "consumers")
ACCESS_TOKEN_LIFETIME = 3599.0
DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
#: Microsoft's device codes last 15 minutes and ask to be polled every 5 seconds (settings change both).
DEVICE_CODE_LIFETIME = 900.0
DEVICE_CODE_INTERVAL = 5
#: How long a sign-in page waits for its answer, and an authorization code for its redemption.
AUTHORIZATION_LIFETIME = 900.0
AUTH_CODE_LIFETIME = 600.0
#: User codes as Microsoft's look (``FJ3XQK7UV``), without the characters people confuse.
_USER_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
_JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
_OIDC_SCOPES = {"openid", "profile", "offline_access", "email"}


class OAuthError(Exception):
    """An error the token endpoint answers with, in the identity platform's shape."""

    def __init__(self, status: int, error: str, code: int, description: str) -> None:
        super().__init__(description)
        self.status, self.error, self.code, self.description = status, error, code, description

    def response(self, state: State) -> Response:
        trace_id, correlation_id = str(uuid.uuid4()), str(uuid.uuid4())
        timestamp = iso_utc(state.now())[:19] + "Z"
        return json_response(
            {
                "error": self.error,
                "error_description": (
                    f"AADSTS{self.code}: {self.description} Trace ID: {trace_id} "
                    f"Correlation ID: {correlation_id} Timestamp: {timestamp}"
                ),
                "error_codes": [self.code],
                "timestamp": timestamp,
                "trace_id": trace_id,
                "correlation_id": correlation_id,
                "error_uri": f"https://login.microsoftonline.com/error?code={self.code}",
            },
            status=self.status,
        )


def resolve_tenant(tenant: str) -> str | None:
    """The tenant id a path segment names, the shared name itself, or None when unknown."""
    if tenant in SHARED_TENANTS:
        return tenant
    if tenant.lower() in (TENANT_ID, TENANT_DOMAIN):
        return TENANT_ID
    if tenant.lower() == CONSUMER_TENANT_ID:
        return CONSUMER_TENANT_ID
    return None


def _unknown_tenant(tenant: str) -> OAuthError:
    return OAuthError(
        400,
        "invalid_tenant",
        90002,
        f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into "
        "the correct cloud.",
    )


async def openid_configuration(request: Request) -> Response:
    """``GET /{tenant}/v2.0/.well-known/openid-configuration``: what MSAL reads before asking for a token."""
    tenant = request.path_params["tenant"]
    if resolve_tenant(tenant) is None:
        return _unknown_tenant(tenant).response(state_of(request))
    root = base_url(request)
    issuer_tenant = "{tenantid}" if tenant in SHARED_TENANTS else resolve_tenant(tenant)
    return json_response(
        {
            "token_endpoint": f"{root}/{tenant}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "jwks_uri": f"{root}/{tenant}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"{root}/{issuer_tenant}/v2.0",
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": f"{root}/oidc/userinfo",
            "authorization_endpoint": f"{root}/{tenant}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{root}/{tenant}/oauth2/v2.0/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{root}/{tenant}/oauth2/v2.0/logout",
            "claims_supported": [
                "sub",
                "iss",
                "aud",
                "exp",
                "iat",
                "nonce",
                "name",
                "preferred_username",
                "oid",
                "tid",
            ],
            "kerberos_endpoint": f"{root}/{tenant}/kerberos",
            "tenant_region_scope": None,
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": "graph.microsoft.com",
            "rbac_url": "https://pas.windows.net",
        }
    )


async def jwks(request: Request) -> Response:
    """``GET /{tenant}/discovery/v2.0/keys``: the sandbox signs nothing a client must verify."""
    return json_response({"keys": []})


async def token(request: Request) -> Response:
    """``POST /{tenant}/oauth2/v2.0/token``."""
    state = state_of(request)
    form = await request.form()
    fields = {key: str(value) for key, value in form.items()}
    try:
        tenant = request.path_params["tenant"]
        resolved = resolve_tenant(tenant)
        if resolved is None:
            raise _unknown_tenant(tenant)
        grant = fields.get("grant_type")
        if grant == "client_credentials":
            body = _client_credentials(request, state, resolved, tenant, fields)
        elif grant == "refresh_token":
            body = _refresh_token(request, state, resolved, fields)
        elif grant == DEVICE_CODE_GRANT:
            body = _device_code_grant(request, state, resolved, fields)
        elif grant == "authorization_code":
            body = _authorization_code_grant(request, state, resolved, fields)
        else:
            raise OAuthError(
                400,
                "unsupported_grant_type",
                70003,
                f"The app requested an unsupported grant type '{grant}'.",
            )
    except OAuthError as error:
        return error.response(state)
    return json_response(body, headers={"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"})


def _load_app(state: State, fields: dict[str, str], directory: str) -> dict[str, Any]:
    client_id = fields.get("client_id", "")
    if not client_id:
        raise OAuthError(
            400,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'client_id'.",
        )
    app = state.doc("SELECT doc FROM apps WHERE client_id = ?", (client_id,))
    if app is None:
        raise _app_not_found(client_id, directory)
    return app


def _app_not_found(client_id: str, directory: str) -> OAuthError:
    return OAuthError(
        400,
        "unauthorized_client",
        700016,
        f"Application with identifier '{client_id}' was not found in the directory '{directory}'. This can "
        "happen if the application has not been installed by the administrator of the tenant or consented "
        "to by any user in the tenant.",
    )


def _authenticate_client(
    request: Request, state: State, app: dict[str, Any], fields: dict[str, str], public_allowed: bool
) -> None:
    """Check a client secret or certificate assertion; a public client may present neither."""
    if "client_secret" in fields:
        if fields["client_secret"] not in app["secrets"]:
            raise OAuthError(
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is the client "
                f"secret value, not the client secret ID, for a secret added to app '{app['client_id']}'.",
            )
        return
    if "client_assertion" in fields:
        _verify_assertion(request, app, fields)
        return
    if public_allowed and app["allow_public_client"]:
        return
    raise OAuthError(
        401,
        "invalid_client",
        7000218,
        "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
    )


def _verify_assertion(request: Request, app: dict[str, Any], fields: dict[str, str]) -> None:
    """Verify a ``private_key_jwt`` client assertion against the app's registered certificates."""
    import jwt
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import rsa

    if fields.get("client_assertion_type") != _JWT_BEARER:
        raise OAuthError(400, "invalid_request", 50027, "Invalid client_assertion_type.")
    assertion = fields["client_assertion"]
    failed = OAuthError(
        401, "invalid_client", 700027, "Client assertion failed signature validation or is not well formed."
    )
    try:
        header = jwt.get_unverified_header(assertion)
    except jwt.PyJWTError as error:
        raise failed from error
    endpoint = f"{base_url(request)}{request.url.path}"
    for pem in app["certificates"]:
        cert = x509.load_pem_x509_certificate(pem.encode())
        sha1 = base64.urlsafe_b64encode(cert.fingerprint(hashes.SHA1())).decode().rstrip("=")
        sha256 = base64.urlsafe_b64encode(cert.fingerprint(hashes.SHA256())).decode().rstrip("=")
        # MSAL keeps the base64 padding of the thumbprints; compare without it.
        if str(header.get("x5t", "")).rstrip("=") != sha1 and str(header.get("x5t#S256", "")).rstrip("=") != sha256:
            continue
        key = cert.public_key()
        if not isinstance(key, rsa.RSAPublicKey):  # RS256 and PS256 need an RSA key
            raise failed
        try:
            claims = jwt.decode(
                assertion,
                key,
                algorithms=["RS256", "PS256"],
                audience=endpoint,
                options={"require": ["exp", "aud", "iss", "sub"]},
            )
        except jwt.PyJWTError as error:
            raise failed from error
        if claims["iss"] != app["client_id"] or claims["sub"] != app["client_id"]:
            raise failed
        return
    raise OAuthError(
        401,
        "invalid_client",
        700027,
        "The certificate with identifier used to sign the client assertion is not registered on application.",
    )


def _client_credentials(
    request: Request, state: State, resolved: str, tenant: str, fields: dict[str, str]
) -> dict[str, Any]:
    if resolved in SHARED_TENANTS:
        raise OAuthError(
            400,
            "invalid_request",
            50059,
            "No tenant-identifying information found in either the request or implied by any provided credentials.",
        )
    app = _load_app(state, fields, tenant)
    if app["tenant_id"] != resolved:
        raise _app_not_found(app["client_id"], tenant)
    _authenticate_client(request, state, app, fields, public_allowed=False)
    scopes = fields.get("scope", "").split()
    if len(scopes) != 1 or not scopes[0].endswith("/.default"):
        raise OAuthError(
            400,
            "invalid_scope",
            1002012,
            f"The provided value for scope {fields.get('scope', '')} is not valid. Client credential flows must "
            "have a scope value with /.default suffixed to the resource identifier (application ID URI).",
        )
    access = _issue_access_token(
        state,
        {
            "client_id": app["client_id"],
            "tenant_id": resolved,
            "mailbox_id": None,
            "scopes": [],
            "roles": app["application_permissions"],
        },
    )
    lifetime = int(state.get_setting("access_token_lifetime", ACCESS_TOKEN_LIFETIME))
    return {
        "token_type": "Bearer",
        "expires_in": lifetime,
        "ext_expires_in": lifetime,
        "access_token": access,
    }


def _refresh_token(request: Request, state: State, resolved: str, fields: dict[str, str]) -> dict[str, Any]:
    app = _load_app(state, fields, resolved)
    _authenticate_client(request, state, app, fields, public_allowed=True)
    presented = fields.get("refresh_token", "")
    rows = state.execute("SELECT expires_at, doc FROM tokens WHERE token = ? AND kind = 'refresh'", (presented,))
    if not rows or json.loads(rows[0][1])["client_id"] != app["client_id"]:
        raise OAuthError(
            400,
            "invalid_grant",
            9002313,
            "Invalid request. Request is malformed or invalid. The refresh token is not valid.",
        )
    expires_at, grant = rows[0][0], json.loads(rows[0][1])
    if grant.get("revoked"):
        raise OAuthError(
            400,
            "invalid_grant",
            50173,
            "The provided grant has expired due to it being revoked, a fresh auth token is needed. The user might "
            "have changed or reset their password.",
        )
    if expires_at <= state.now():
        raise OAuthError(
            400,
            "invalid_grant",
            700082,
            "The refresh token has expired due to inactivity. The token was issued on a date and was inactive "
            "for the configured lifetime.",
        )
    mailbox = state.doc("SELECT doc FROM mailboxes WHERE id = ?", (grant["mailbox_id"],))
    if mailbox is None:
        raise OAuthError(400, "invalid_grant", 50034, "The user account does not exist in the directory.")
    _check_account(resolved, mailbox)
    requested = _scope_names(fields.get("scope", ""))
    missing = [scope for scope in requested if scope not in grant["scopes"] and scope not in _OIDC_SCOPES]
    if missing:
        raise OAuthError(
            400,
            "invalid_grant",
            65001,
            f"The user or administrator has not consented to use the application with ID '{app['client_id']}'. "
            f"Send an interactive authorization request for this user and resource (scopes: {' '.join(missing)}).",
        )
    return _user_tokens(request, state, app, mailbox, grant, requested, fields)


def _scope_names(scope: str) -> list[str]:
    """The scopes of a space-separated ``scope`` without their resource (``https://graph.../Calendars.ReadWrite``)."""
    return [item.rsplit("/", 1)[-1] for item in scope.split()]


def _check_account(resolved: str, mailbox: dict[str, Any]) -> None:
    """Refuse an account the authority does not serve (a personal account on ``organizations``, and so on)."""
    personal = mailbox["kind"] == "personal"
    if (
        (resolved == "organizations" and personal)
        or (resolved == "consumers" and not personal)
        or (resolved not in SHARED_TENANTS and resolved != mailbox["tenant_id"])
    ):
        raise OAuthError(
            400,
            "invalid_grant",
            50020,
            f"User account '{mailbox['upn']}' from identity provider does not exist in tenant '{resolved}'.",
        )


def _user_tokens(
    request: Request,
    state: State,
    app: dict[str, Any],
    mailbox: dict[str, Any],
    grant: dict[str, Any],
    requested: list[str],
    fields: dict[str, str],
    nonce: str | None = None,
) -> dict[str, Any]:
    """The token response for a signed-in user: an access token, a new refresh token when the grant includes
    ``offline_access``, an ID token when ``openid`` or ``profile`` was asked for, and ``client_info`` on request."""
    granted = [scope for scope in requested if scope not in _OIDC_SCOPES] or sorted(set(grant["scopes"]) - _OIDC_SCOPES)
    tenant_id = mailbox["tenant_id"]
    access = _issue_access_token(
        state,
        {
            "client_id": app["client_id"],
            "tenant_id": tenant_id,
            "mailbox_id": mailbox["id"],
            "scopes": granted,
            "roles": [],
        },
    )
    now = state.now()
    access_lifetime = int(state.get_setting("access_token_lifetime", ACCESS_TOKEN_LIFETIME))
    body: dict[str, Any] = {
        "token_type": "Bearer",
        "scope": " ".join([*granted, *(s for s in requested if s in _OIDC_SCOPES)]),
        "expires_in": access_lifetime,
        "ext_expires_in": access_lifetime,
        "access_token": access,
    }
    if "offline_access" in grant["scopes"]:
        rotated = "sbx-rt-" + random_b64(48)
        lifetime = float(state.get_setting("refresh_token_lifetime", NINETY_DAYS))
        state.execute(
            "INSERT INTO tokens (token, kind, expires_at, doc) VALUES (?, 'refresh', ?, ?)",
            (
                rotated,
                now + lifetime,
                json.dumps({"client_id": app["client_id"], "mailbox_id": mailbox["id"], "scopes": grant["scopes"]}),
            ),
        )
        body["refresh_token"] = rotated
    if "openid" in requested or "profile" in requested:
        body["id_token"] = _id_token(request, app["client_id"], mailbox, now, access_lifetime, nonce)
    if fields.get("client_info") == "1":
        body["client_info"] = _b64json({"uid": mailbox["id"], "utid": tenant_id})
    return body


# --- sign-in: the device-code flow ---------------------------------------------------------------------------------


async def device_code(request: Request) -> Response:
    """``POST /{tenant}/oauth2/v2.0/devicecode``: a device code to poll with and a user code to approve."""
    state = state_of(request)
    fields = {key: str(value) for key, value in (await request.form()).items()}
    try:
        tenant = request.path_params["tenant"]
        resolved = resolve_tenant(tenant)
        if resolved is None:
            raise _unknown_tenant(tenant)
        app = _load_app(state, fields, tenant)
        scopes = _scope_names(fields.get("scope", ""))
        if not scopes:
            raise OAuthError(
                400, "invalid_request", 900144, "The request body must contain the following parameter: 'scope'."
            )
    except OAuthError as error:
        return error.response(state)
    lifetime = float(state.get_setting("device_code_lifetime", DEVICE_CODE_LIFETIME))
    interval = int(state.get_setting("device_code_interval", DEVICE_CODE_INTERVAL))
    device = random_b64(48)
    user_code = "".join(secrets.choice(_USER_CODE_ALPHABET) for _ in range(9))
    doc = {"client_id": app["client_id"], "tenant": resolved, "scopes": scopes, "user_code": user_code}
    state.execute(
        "INSERT INTO tokens (token, kind, expires_at, doc) VALUES (?, 'device_code', ?, ?)",
        (device, state.now() + lifetime, json.dumps({**doc, "status": "pending", "mailbox_id": None})),
    )
    verification_uri = f"{base_url(request)}/devicelogin"
    return json_response(
        {
            "user_code": user_code,
            "device_code": device,
            "verification_uri": verification_uri,
            "expires_in": int(lifetime),
            "interval": interval,
            "message": (
                f"To sign in, use a web browser to open the page {verification_uri} and enter the code {user_code} "
                "to authenticate."
            ),
        }
    )


def _device_code_grant(request: Request, state: State, resolved: str, fields: dict[str, str]) -> dict[str, Any]:
    app = _load_app(state, fields, resolved)
    _authenticate_client(request, state, app, fields, public_allowed=True)
    presented = fields.get("device_code") or fields.get("code") or ""
    rows = state.execute("SELECT expires_at, doc FROM tokens WHERE token = ? AND kind = 'device_code'", (presented,))
    if not rows or json.loads(rows[0][1])["client_id"] != app["client_id"]:
        raise OAuthError(
            400, "bad_verification_code", 70018, "The device_code sent to the token endpoint wasn't recognized."
        )
    expires_at, flow = rows[0][0], json.loads(rows[0][1])
    if expires_at <= state.now():
        raise OAuthError(400, "expired_token", 70019, "Verification code expired. Have the user retry the sign-in.")
    if flow["status"] == "declined":
        raise OAuthError(400, "authorization_declined", 65004, "The end user denied the authorization request.")
    if flow["status"] == "pending":
        raise OAuthError(
            400,
            "authorization_pending",
            70016,
            "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
        )
    state.execute("DELETE FROM tokens WHERE token = ? AND kind = 'device_code'", (presented,))
    mailbox = state.doc("SELECT doc FROM mailboxes WHERE id = ?", (flow["mailbox_id"],))
    if mailbox is None:
        raise OAuthError(400, "invalid_grant", 50034, "The user account does not exist in the directory.")
    grant = {"client_id": app["client_id"], "mailbox_id": mailbox["id"], "scopes": flow["scopes"]}
    return _user_tokens(request, state, app, mailbox, grant, flow["scopes"], fields)


def decide_device_code(state: State, user_code: str, mailbox_upn: str | None, approve: bool) -> str:
    """Approve (as a mailbox of the seed) or decline the pending device-code sign-in with ``user_code``.

    Raises LookupError for an unknown or expired code and ValueError for an account the sign-in's authority does
    not serve. Returns the new status.
    """
    for token_value, doc in state.execute(
        "SELECT token, doc FROM tokens WHERE kind = 'device_code' AND expires_at > ?", (state.now(),)
    ):
        flow = json.loads(doc)
        if flow["user_code"] != user_code.strip().upper() or flow["status"] != "pending":
            continue
        if approve:
            flow["mailbox_id"] = _signing_in(state, flow["tenant"], mailbox_upn)["id"]
        flow["status"] = "approved" if approve else "declined"
        state.execute(
            "UPDATE tokens SET doc = ? WHERE token = ? AND kind = 'device_code'", (json.dumps(flow), token_value)
        )
        return flow["status"]
    raise LookupError(f"no pending sign-in with the code {user_code!r} (wrong, already used or expired)")


def _signing_in(state: State, resolved: str, mailbox_upn: str | None) -> dict[str, Any]:
    mailbox = state.doc("SELECT doc FROM mailboxes WHERE upn = ? OR id = ?", (mailbox_upn, mailbox_upn))
    if mailbox is None:
        raise ValueError(f"no mailbox {mailbox_upn!r} in the sandbox")
    try:
        _check_account(resolved, mailbox)
    except OAuthError as error:
        raise ValueError(f"AADSTS{error.code}: {error.description}") from error
    return mailbox


# --- sign-in: the authorization-code flow with PKCE ----------------------------------------------------------------


def _loopback(url: urllib.parse.SplitResult) -> bool:
    return url.scheme == "http" and url.hostname in ("localhost", "127.0.0.1", "::1")


def _redirect_allowed(app: dict[str, Any], redirect_uri: str) -> bool:
    """Registered exactly, or a loopback URI whose registered form differs only by its port (the port of a
    loopback redirect URI is chosen when the app runs, and the identity platform ignores it)."""
    if redirect_uri in app.get("redirect_uris", []):
        return True
    asked = urllib.parse.urlsplit(redirect_uri)
    if not _loopback(asked):
        return False
    return any(
        _loopback(registered)
        and registered.hostname == asked.hostname
        and registered.path.rstrip("/") == asked.path.rstrip("/")
        for registered in map(urllib.parse.urlsplit, app.get("redirect_uris", []))
    )


def _page(title: str, body: str, status: int = 200) -> Response:
    return Response(
        f"<!doctype html><html><head><title>{html.escape(title)}</title></head><body><h1>{html.escape(title)}</h1>"
        f"{body}</body></html>",
        status_code=status,
        media_type="text/html",
    )


def _error_page(error: OAuthError) -> Response:
    return _page("Sign-in error", html.escape(f"AADSTS{error.code}: {error.description}"), error.status)


def _mailbox_choice(state: State) -> str:
    options = "".join(
        f'<option value="{html.escape(m["upn"])}">{html.escape(m["displayName"])} ({html.escape(m["upn"])})</option>'
        for m in state.docs("SELECT doc FROM mailboxes ORDER BY upn")
    )
    return f'<label>Sign in as <select name="mailbox">{options}</select></label>'


async def authorize(request: Request) -> Response:
    """``GET /{tenant}/oauth2/v2.0/authorize``: checks the request and keeps it pending, with a page to approve it
    (a person) and an id to approve it by through the control API (a test)."""
    state = state_of(request)
    params = request.query_params
    tenant = request.path_params["tenant"]
    resolved = resolve_tenant(tenant)
    if resolved is None:
        return _error_page(_unknown_tenant(tenant))
    app = state.doc("SELECT doc FROM apps WHERE client_id = ?", (params.get("client_id", ""),))
    if app is None:
        return _error_page(_app_not_found(params.get("client_id", ""), tenant))
    redirect_uri = params.get("redirect_uri", "")
    if not _redirect_allowed(app, redirect_uri):
        return _page(
            "Sign-in error",
            html.escape(
                f"AADSTS50011: The redirect URI '{redirect_uri}' specified in the request does not match the redirect "
                f"URIs configured for the application '{app['client_id']}'."
            ),
            400,
        )
    problem = None
    if params.get("response_type") != "code":
        problem = "AADSTS70005: response_type 'code' is the only one the sandbox serves."
    elif params.get("response_mode", "query") != "query":
        problem = "The sandbox answers with response_mode=query only."
    elif not params.get("code_challenge") or params.get("code_challenge_method") != "S256":
        problem = "AADSTS9002325: Proof Key for Code Exchange is required (code_challenge with method S256)."
    elif not _scope_names(params.get("scope", "")):
        problem = "AADSTS900144: The request must contain the parameter 'scope'."
    if problem:
        return _page("Sign-in error", html.escape(problem), 400)
    request_id = random_hex(24)
    doc = {
        "client_id": app["client_id"],
        "tenant": resolved,
        "redirect_uri": redirect_uri,
        "scopes": _scope_names(params["scope"]),
        "state": params.get("state"),
        "nonce": params.get("nonce"),
        "code_challenge": params["code_challenge"],
    }
    state.execute(
        "INSERT INTO tokens (token, kind, expires_at, doc) VALUES (?, 'authorization', ?, ?)",
        (request_id, state.now() + AUTHORIZATION_LIFETIME, json.dumps(doc)),
    )
    return _page(
        "Sign in to the qconn sandbox",
        f"<p>{html.escape(app.get('display_name', app['client_id']))} asks for: "
        f"{html.escape(' '.join(doc['scopes']))}.</p>"
        f'<form method="post" action="{html.escape(request.url.path)}/{request_id}">{_mailbox_choice(state)} '
        '<button name="decision" value="approve">Accept</button> '
        '<button name="decision" value="decline">Cancel</button></form>'
        f"<p>Sign-in request <code>{request_id}</code>.</p>",
    )


async def authorize_decision(request: Request) -> Response:
    """``POST /{tenant}/oauth2/v2.0/authorize/{request_id}``: the page's answer; redirects to the app."""
    state = state_of(request)
    form = await request.form()
    try:
        location = decide_authorization(
            state, request.path_params["request_id"], str(form.get("mailbox", "")), form.get("decision") == "approve"
        )
    except (LookupError, ValueError) as error:
        return _page("Sign-in error", html.escape(str(error)), 400)
    return Response(status_code=302, headers={"Location": location})


def decide_authorization(state: State, request_id: str, mailbox_upn: str | None, approve: bool) -> str:
    """Approve (as a mailbox of the seed) or decline a pending authorization request; the URL the browser is then
    sent to (the app's redirect URI with ``code`` and ``state``, or ``error=access_denied``).

    Raises LookupError for an unknown or expired request and ValueError for an account the authority does not
    serve.
    """
    rows = state.execute(
        "SELECT doc FROM tokens WHERE token = ? AND kind = 'authorization' AND expires_at > ?",
        (request_id, state.now()),
    )
    if not rows:
        raise LookupError(f"no pending authorization request {request_id!r} (wrong, already answered or expired)")
    pending = json.loads(rows[0][0])
    answer: dict[str, str] = {}
    if approve:
        mailbox = _signing_in(state, pending["tenant"], mailbox_upn)
        code = "sbx-code-" + random_b64(32)
        state.execute(
            "INSERT INTO tokens (token, kind, expires_at, doc) VALUES (?, 'auth_code', ?, ?)",
            (code, state.now() + AUTH_CODE_LIFETIME, json.dumps({**pending, "mailbox_id": mailbox["id"]})),
        )
        answer["code"] = code
    else:
        answer["error"] = "access_denied"
        answer["error_description"] = "AADSTS65004: User declined to consent to access the app."
    state.execute("DELETE FROM tokens WHERE token = ? AND kind = 'authorization'", (request_id,))
    if pending.get("state") is not None:
        answer["state"] = pending["state"]
    separator = "&" if "?" in pending["redirect_uri"] else "?"
    return f"{pending['redirect_uri']}{separator}{urllib.parse.urlencode(answer)}"


def _authorization_code_grant(request: Request, state: State, resolved: str, fields: dict[str, str]) -> dict[str, Any]:
    app = _load_app(state, fields, resolved)
    _authenticate_client(request, state, app, fields, public_allowed=True)
    presented = fields.get("code", "")
    rows = state.execute("SELECT expires_at, doc FROM tokens WHERE token = ? AND kind = 'auth_code'", (presented,))
    if not rows or json.loads(rows[0][1])["client_id"] != app["client_id"]:
        raise OAuthError(400, "invalid_grant", 70000, "The provided value for the 'code' parameter is not valid.")
    expires_at, issued = rows[0][0], json.loads(rows[0][1])
    if issued.get("redeemed"):
        raise OAuthError(400, "invalid_grant", 54005, "OAuth2 Authorization code was already redeemed.")
    if expires_at <= state.now():
        raise OAuthError(
            400,
            "invalid_grant",
            70008,
            "The provided authorization code or refresh token has expired due to inactivity.",
        )
    if fields.get("redirect_uri") != issued["redirect_uri"]:
        raise OAuthError(
            400,
            "invalid_grant",
            500112,
            "The reply address does not match the reply address provided when requesting the authorization code.",
        )
    verifier = fields.get("code_verifier", "")
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    if not verifier or not secrets.compare_digest(challenge, issued["code_challenge"]):
        raise OAuthError(
            400,
            "invalid_grant",
            501481,
            "The Code_Verifier does not match the code_challenge supplied in the authorization request.",
        )
    issued["redeemed"] = True
    state.execute("UPDATE tokens SET doc = ? WHERE token = ? AND kind = 'auth_code'", (json.dumps(issued), presented))
    mailbox = state.doc("SELECT doc FROM mailboxes WHERE id = ?", (issued["mailbox_id"],))
    if mailbox is None:
        raise OAuthError(400, "invalid_grant", 50034, "The user account does not exist in the directory.")
    grant = {"client_id": app["client_id"], "mailbox_id": mailbox["id"], "scopes": issued["scopes"]}
    requested = _scope_names(fields.get("scope", "")) or issued["scopes"]
    return _user_tokens(request, state, app, mailbox, grant, requested, fields, nonce=issued.get("nonce"))


async def device_login(request: Request) -> Response:
    """``/devicelogin``: the page where a person enters a device code and picks the mailbox to sign in as."""
    state = state_of(request)
    if request.method == "POST":
        form = await request.form()
        try:
            status = decide_device_code(
                state, str(form.get("user_code", "")), str(form.get("mailbox", "")), form.get("decision") == "approve"
            )
        except (LookupError, ValueError) as error:
            return _page("Sign-in error", html.escape(str(error)), 400)
        return _page("Done", f"<p>The sign-in was {status}. You may close this window.</p>")
    return _page(
        "Enter code",
        '<form method="post"><label>Code <input name="user_code" autofocus></label> '
        f"{_mailbox_choice(state)} "
        '<button name="decision" value="approve">Accept</button> '
        '<button name="decision" value="decline">Cancel</button></form>',
    )


# --- the control API's part for sign-ins ---------------------------------------------------------------------------


async def control_sign_ins(request: Request) -> Response:
    """``GET /_sandbox/identity/sign_ins``: the sign-ins waiting for an answer (device codes, authorizations)."""
    state = state_of(request)
    now = state.now()
    pending = state.execute(
        "SELECT token, kind, expires_at, doc FROM tokens WHERE kind IN ('device_code', 'authorization') "
        "AND expires_at > ? ORDER BY rowid DESC",
        (now,),
    )
    device_codes, authorizations = [], []
    for token_value, kind, expires_at, doc in pending:
        item = json.loads(doc)
        summary = {"client_id": item["client_id"], "scopes": item["scopes"], "expires_at": expires_at}
        if kind == "device_code" and item["status"] == "pending":
            device_codes.append({"user_code": item["user_code"], **summary})
        elif kind == "authorization":
            authorizations.append({"id": token_value, "redirect_uri": item["redirect_uri"], **summary})
    return json_response({"device_codes": device_codes, "authorizations": authorizations})


async def control_device_code(request: Request) -> Response:
    """``POST /_sandbox/identity/device_codes/{user_code}`` ``{"mailbox": upn, "approve": true}``."""
    body = await _json_body(request)
    try:
        status = decide_device_code(
            state_of(request), request.path_params["user_code"], body.get("mailbox"), bool(body.get("approve", True))
        )
    except LookupError as error:
        return json_response({"error": str(error)}, status=404)
    except ValueError as error:
        return json_response({"error": str(error)}, status=400)
    return json_response({"status": status})


async def control_authorization(request: Request) -> Response:
    """``POST /_sandbox/identity/authorizations/{id}`` ``{"mailbox": upn, "approve": true}``: where the browser
    would be sent next (``redirect``)."""
    body = await _json_body(request)
    try:
        location = decide_authorization(
            state_of(request), request.path_params["request_id"], body.get("mailbox"), bool(body.get("approve", True))
        )
    except LookupError as error:
        return json_response({"error": str(error)}, status=404)
    except ValueError as error:
        return json_response({"error": str(error)}, status=400)
    return json_response({"redirect": location})


async def control_revoke(request: Request) -> Response:
    """``POST /_sandbox/identity/revoke`` ``{"mailbox": upn}``: revoke every refresh token of a mailbox, as
    ``revokeSignInSessions`` or a password reset does."""
    state = state_of(request)
    user = (await _json_body(request)).get("mailbox", "")
    mailbox = state.doc("SELECT doc FROM mailboxes WHERE id = ? OR upn = ?", (user, user))
    if mailbox is None:
        return json_response({"error": f"no mailbox {user!r}"}, status=404)
    revoked = 0
    with state.transaction() as db:
        for token_value, doc in db.execute("SELECT token, doc FROM tokens WHERE kind = 'refresh'").fetchall():
            grant = json.loads(doc)
            if grant["mailbox_id"] == mailbox["id"] and not grant.get("revoked"):
                db.execute(
                    "UPDATE tokens SET doc = ? WHERE token = ?", (json.dumps({**grant, "revoked": True}), token_value)
                )
                revoked += 1
    return json_response({"revoked": revoked})


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    body = json.loads(raw) if raw else {}
    return body if isinstance(body, dict) else {}


def _issue_access_token(state: State, grant: dict[str, Any]) -> str:
    value = "sbx-at-" + random_b64(48)
    lifetime = float(state.get_setting("access_token_lifetime", ACCESS_TOKEN_LIFETIME))
    state.execute(
        "INSERT INTO tokens (token, kind, expires_at, doc) VALUES (?, 'access', ?, ?)",
        (value, state.now() + lifetime, json.dumps(grant)),
    )
    return value


def _b64json(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def _id_token(
    request: Request, client_id: str, mailbox: dict[str, Any], now: float, lifetime: int, nonce: str | None = None
) -> str:
    """An ID token with the claims MSAL reads (and the sign-in request's ``nonce``, which MSAL checks); signed with
    a throwaway digest, as nothing verifies it here."""
    claims = {
        "aud": client_id,
        "iss": f"{base_url(request)}/{mailbox['tenant_id']}/v2.0",
        "iat": int(now),
        "nbf": int(now),
        "exp": int(now) + lifetime,
        "name": mailbox["displayName"],
        "oid": mailbox["id"],
        "preferred_username": mailbox["upn"],
        "sub": hashlib.sha256(f"{client_id}:{mailbox['id']}".encode()).hexdigest()[:43],
        "tid": mailbox["tenant_id"],
        "ver": "2.0",
    }
    if nonce is not None:
        claims["nonce"] = nonce
    header = _b64json({"typ": "JWT", "alg": "RS256", "kid": "qconn-sandbox"})
    payload = _b64json(claims)
    signature = base64.urlsafe_b64encode(hashlib.sha256(f"{header}.{payload}".encode()).digest()).decode()
    return f"{header}.{payload}.{signature.rstrip('=')}"


def lookup_access_token(state: State, value: str) -> tuple[float, dict[str, Any]] | None:
    """The expiry and grant of an access token this endpoint issued, or None."""
    rows = state.execute("SELECT expires_at, doc FROM tokens WHERE token = ? AND kind = 'access'", (value,))
    return (rows[0][0], json.loads(rows[0][1])) if rows else None


routes = [
    Route("/_sandbox/identity/sign_ins", control_sign_ins, methods=["GET"]),
    Route("/_sandbox/identity/device_codes/{user_code}", control_device_code, methods=["POST"]),
    Route("/_sandbox/identity/authorizations/{request_id}", control_authorization, methods=["POST"]),
    Route("/_sandbox/identity/revoke", control_revoke, methods=["POST"]),
    Route("/devicelogin", device_login, methods=["GET", "POST"]),
    Route("/{tenant}/v2.0/.well-known/openid-configuration", openid_configuration, methods=["GET"]),
    Route("/{tenant}/discovery/v2.0/keys", jwks, methods=["GET"]),
    Route("/{tenant}/oauth2/v2.0/token", token, methods=["POST"]),
    Route("/{tenant}/oauth2/v2.0/devicecode", device_code, methods=["POST"]),
    Route("/{tenant}/oauth2/v2.0/authorize", authorize, methods=["GET"]),
    Route("/{tenant}/oauth2/v2.0/authorize/{request_id}", authorize_decision, methods=["POST"]),
]

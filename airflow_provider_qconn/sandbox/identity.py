"""Emulated Microsoft identity platform: OpenID discovery and the OAuth 2.0 v2 token endpoint.

Just enough for the real azure-identity and MSAL clients to run their own code paths against it:
``client_credentials`` with a secret or a certificate assertion (app-only), and ``refresh_token`` (delegated),
with refresh tokens that rotate as Microsoft's do (each use returns a new one; the old one stays valid
until its own expiry). Error bodies follow the identity platform's shape
(``error``, ``error_description`` starting with an ``AADSTS`` code, ``error_codes``, ``trace_id`` ...).
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from airflow_provider_qconn.sandbox.common import base_url, iso_utc, json_response, random_b64, state_of
from airflow_provider_qconn.sandbox.seed import CONSUMER_TENANT_ID, NINETY_DAYS, TENANT_DOMAIN, TENANT_ID
from airflow_provider_qconn.sandbox.state import State

SHARED_TENANTS = ("common", "organizations", "consumers")
ACCESS_TOKEN_LIFETIME = 3599.0
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
        try:
            claims = jwt.decode(
                assertion,
                cert.public_key(),
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
    personal = mailbox["kind"] == "personal"
    if (resolved == "organizations" and personal) or (resolved == "consumers" and not personal):
        raise OAuthError(
            400,
            "invalid_grant",
            50020,
            f"User account '{mailbox['upn']}' from identity provider does not exist in tenant '{resolved}'.",
        )
    if resolved not in SHARED_TENANTS and resolved != mailbox["tenant_id"]:
        raise OAuthError(
            400,
            "invalid_grant",
            50020,
            f"User account '{mailbox['upn']}' from identity provider does not exist in tenant '{resolved}'.",
        )
    requested = [scope.rsplit("/", 1)[-1] for scope in fields.get("scope", "").split()]
    consented = set(grant["scopes"])
    missing = [scope for scope in requested if scope not in consented and scope not in _OIDC_SCOPES]
    if missing:
        raise OAuthError(
            400,
            "invalid_grant",
            65001,
            f"The user or administrator has not consented to use the application with ID '{app['client_id']}'. "
            f"Send an interactive authorization request for this user and resource (scopes: {' '.join(missing)}).",
        )
    granted = [scope for scope in requested if scope not in _OIDC_SCOPES] or sorted(consented - _OIDC_SCOPES)
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
    rotated = "sbx-rt-" + random_b64(48)
    lifetime = float(state.get_setting("refresh_token_lifetime", NINETY_DAYS))
    state.execute(
        "INSERT INTO tokens (token, kind, expires_at, doc) VALUES (?, 'refresh', ?, ?)",
        (rotated, now + lifetime, json.dumps(grant)),
    )
    access_lifetime = int(state.get_setting("access_token_lifetime", ACCESS_TOKEN_LIFETIME))
    body: dict[str, Any] = {
        "token_type": "Bearer",
        "scope": " ".join([*granted, *(s for s in requested if s in _OIDC_SCOPES)]),
        "expires_in": access_lifetime,
        "ext_expires_in": access_lifetime,
        "access_token": access,
        "refresh_token": rotated,
    }
    if "openid" in requested or "profile" in requested:
        body["id_token"] = _id_token(request, app["client_id"], mailbox, now, access_lifetime)
    if fields.get("client_info") == "1":
        body["client_info"] = _b64json({"uid": mailbox["id"], "utid": tenant_id})
    return body


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


def _id_token(request: Request, client_id: str, mailbox: dict[str, Any], now: float, lifetime: int) -> str:
    """An ID token with the claims MSAL reads; signed with a throwaway digest, as nothing verifies it here."""
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
    header = _b64json({"typ": "JWT", "alg": "RS256", "kid": "qconn-sandbox"})
    payload = _b64json(claims)
    signature = base64.urlsafe_b64encode(hashlib.sha256(f"{header}.{payload}".encode()).digest()).decode()
    return f"{header}.{payload}.{signature.rstrip('=')}"


def lookup_access_token(state: State, value: str) -> tuple[float, dict[str, Any]] | None:
    """The expiry and grant of an access token this endpoint issued, or None."""
    rows = state.execute("SELECT expires_at, doc FROM tokens WHERE token = ? AND kind = 'access'", (value,))
    return (rows[0][0], json.loads(rows[0][1])) if rows else None


routes = [
    Route("/{tenant}/v2.0/.well-known/openid-configuration", openid_configuration, methods=["GET"]),
    Route("/{tenant}/discovery/v2.0/keys", jwks, methods=["GET"]),
    Route("/{tenant}/oauth2/v2.0/token", token, methods=["POST"]),
]

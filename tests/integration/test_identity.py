"""azure-identity and MSAL, unmodified, against the sandbox's token endpoint."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from azure.core.exceptions import ClientAuthenticationError

from airflow_provider_qconn.sandbox import seed
from airflow_provider_qconn.sandbox.server import Sandbox

from .support import GRAPH_APP_SCOPES, GRAPH_DELEGATED_SCOPES


def _credential_kwargs(sandbox: Sandbox, ca: str) -> dict[str, Any]:
    return {"authority": sandbox.authority, "disable_instance_discovery": True, "connection_verify": ca}


def _token_posts(sandbox: Sandbox) -> list[dict[str, Any]]:
    return [e for e in sandbox.control.journal(service="identity") if e["path"].endswith("/oauth2/v2.0/token")]


def test_client_secret_credential_gets_a_token(sandbox: Sandbox, ca: str) -> None:
    from azure.identity import ClientSecretCredential

    credential = ClientSecretCredential(
        seed.TENANT_ID, seed.CLIENT_ID, seed.CLIENT_SECRET, **_credential_kwargs(sandbox, ca)
    )
    token = credential.get_token(*GRAPH_APP_SCOPES)

    assert token.token.startswith("sbx-at-")
    assert token.expires_on > time.time() + 3000
    paths = [(e["method"], e["path"], e["status"]) for e in sandbox.control.journal(service="identity")]
    assert paths == [
        ("GET", f"/{seed.TENANT_ID}/v2.0/.well-known/openid-configuration", 200),
        ("POST", f"/{seed.TENANT_ID}/oauth2/v2.0/token", 200),
    ]
    post = _token_posts(sandbox)[0]
    assert "grant_type=client_credentials" in post["body"]
    assert "client_secret=%2A%2A%2A" in post["body"]  # the journal redacts secrets
    credential.close()


async def test_async_client_secret_credential_gets_a_token(sandbox: Sandbox, ca: str) -> None:
    from azure.identity.aio import ClientSecretCredential

    async with ClientSecretCredential(
        seed.TENANT_ID, seed.CLIENT_ID, seed.CLIENT_SECRET, **_credential_kwargs(sandbox, ca)
    ) as credential:
        token = await credential.get_token(*GRAPH_APP_SCOPES)
        again = await credential.get_token(*GRAPH_APP_SCOPES)

    assert token.token.startswith("sbx-at-")
    assert again.token == token.token  # served from the credential's cache
    assert len(_token_posts(sandbox)) == 1


def _assertion_header(bodies: list[Any]) -> dict[str, Any]:
    """The JOSE header of the client assertion in the one token request among captured request bodies."""
    import jwt

    (assertion,) = [
        body["client_assertion"] for body in bodies if isinstance(body, dict) and "client_assertion" in body
    ]
    return jwt.get_unverified_header(assertion)


def test_certificate_credential_gets_a_token(sandbox: Sandbox, ca: str, certificate_path: str) -> None:
    """The sync credential (MSAL inside) signs its assertion with RS256 and an ``x5t`` (SHA-1) thumbprint."""
    from azure.core.pipeline.transport import RequestsTransport
    from azure.identity import CertificateCredential

    bodies: list[Any] = []

    class CapturingTransport(RequestsTransport):
        def send(self, request: Any, **kwargs: Any) -> Any:
            bodies.append(request.body)
            return super().send(request, **kwargs)

    # A transport of one's own must carry the CA itself: the credential's connection_verify is not applied to it.
    credential = CertificateCredential(
        seed.TENANT_ID,
        seed.CLIENT_ID,
        certificate_path,
        transport=CapturingTransport(connection_verify=ca),
        **_credential_kwargs(sandbox, ca),
    )
    assert credential.get_token(*GRAPH_APP_SCOPES).token.startswith("sbx-at-")
    header = _assertion_header(bodies)
    assert header["alg"] == "RS256"
    assert "x5t" in header
    body = _token_posts(sandbox)[0]["body"]
    assert "client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer" in body
    credential.close()


async def test_async_certificate_credential_gets_a_token(sandbox: Sandbox, ca: str, certificate_path: str) -> None:
    """The aio credential signs with PS256 and an ``x5t#S256`` thumbprint; the sandbox checks both kinds."""
    from azure.core.pipeline.transport import AioHttpTransport
    from azure.identity.aio import CertificateCredential

    bodies: list[Any] = []

    class CapturingTransport(AioHttpTransport):
        async def send(self, request: Any, **kwargs: Any) -> Any:
            bodies.append(request.body)
            return await super().send(request, **kwargs)

    async with CertificateCredential(
        seed.TENANT_ID,
        seed.CLIENT_ID,
        certificate_path,
        transport=CapturingTransport(connection_verify=ca),
        **_credential_kwargs(sandbox, ca),
    ) as credential:
        token = await credential.get_token(*GRAPH_APP_SCOPES)
    assert token.token.startswith("sbx-at-")
    header = _assertion_header(bodies)
    assert header["alg"] == "PS256"
    assert "x5t#S256" in header


def test_a_certificate_the_app_does_not_know_is_refused(sandbox: Sandbox, ca: str, tmp_path: Any) -> None:
    from azure.identity import CertificateCredential

    path = tmp_path / "stranger.pem"
    path.write_text(seed.self_signed_certificate("stranger", days=1).combined_pem)
    credential = CertificateCredential(seed.TENANT_ID, seed.CLIENT_ID, str(path), **_credential_kwargs(sandbox, ca))
    with pytest.raises(ClientAuthenticationError, match="AADSTS700027"):
        credential.get_token(*GRAPH_APP_SCOPES)
    credential.close()


def test_wrong_client_secret_is_refused(sandbox: Sandbox, ca: str) -> None:
    from azure.identity import ClientSecretCredential

    credential = ClientSecretCredential(
        seed.TENANT_ID, seed.CLIENT_ID, "not-the-secret", **_credential_kwargs(sandbox, ca)
    )
    with pytest.raises(ClientAuthenticationError) as caught:
        credential.get_token(*GRAPH_APP_SCOPES)
    assert "AADSTS7000215" in str(caught.value)
    assert "Invalid client secret provided" in str(caught.value)
    assert _token_posts(sandbox)[0]["status"] == 401
    credential.close()


@pytest.mark.parametrize("tenant", ["common", "organizations"])
@pytest.mark.filterwarnings("ignore:Using /common or /organizations authority:DeprecationWarning")
def test_client_credentials_need_a_real_tenant(sandbox: Sandbox, ca: str, tenant: str) -> None:
    from azure.identity import ClientSecretCredential

    credential = ClientSecretCredential(tenant, seed.CLIENT_ID, seed.CLIENT_SECRET, **_credential_kwargs(sandbox, ca))
    with pytest.raises(ClientAuthenticationError, match="AADSTS50059"):
        credential.get_token(*GRAPH_APP_SCOPES)
    credential.close()


async def test_async_client_credentials_on_common_are_refused(sandbox: Sandbox, ca: str) -> None:
    from azure.identity.aio import ClientSecretCredential

    async with ClientSecretCredential(
        "common", seed.CLIENT_ID, seed.CLIENT_SECRET, **_credential_kwargs(sandbox, ca)
    ) as credential:
        with pytest.raises(ClientAuthenticationError, match="AADSTS50059"):
            await credential.get_token(*GRAPH_APP_SCOPES)


def test_http_authority_is_refused_by_azure_identity(sandbox: Sandbox) -> None:
    from azure.identity import ClientSecretCredential

    with pytest.raises(ValueError, match="https"):
        ClientSecretCredential(
            seed.TENANT_ID,
            seed.CLIENT_ID,
            seed.CLIENT_SECRET,
            authority=sandbox.url.replace("https://", "http://"),
            disable_instance_discovery=True,
        )


# --- MSAL: delegated refresh tokens ----------------------------------------------------------------------


def test_refresh_token_rotates_and_the_old_one_stays_valid(sandbox: Sandbox, msal_app: Callable[[str], Any]) -> None:
    app = msal_app("common")

    first = app.acquire_token_by_refresh_token(seed.REFRESH_TOKEN_ORGANIZER, scopes=GRAPH_DELEGATED_SCOPES)
    assert "access_token" in first, first
    assert first["access_token"].startswith("sbx-at-")
    assert first["refresh_token"] != seed.REFRESH_TOKEN_ORGANIZER
    assert first["id_token_claims"]["preferred_username"] == seed.ORGANIZER
    assert "Calendars.ReadWrite" in first["scope"].split()

    again = app.acquire_token_by_refresh_token(seed.REFRESH_TOKEN_ORGANIZER, scopes=GRAPH_DELEGATED_SCOPES)
    assert "access_token" in again, again
    assert again["refresh_token"] not in (first["refresh_token"], seed.REFRESH_TOKEN_ORGANIZER)

    from_rotated = app.acquire_token_by_refresh_token(first["refresh_token"], scopes=GRAPH_DELEGATED_SCOPES)
    assert "access_token" in from_rotated, from_rotated

    valid = {t["token"] for t in sandbox.control.refresh_tokens(seed.ORGANIZER)}
    assert {seed.REFRESH_TOKEN_ORGANIZER, first["refresh_token"], again["refresh_token"]} <= valid


def test_refresh_token_expires_after_its_lifetime(sandbox: Sandbox, msal_app: Callable[[str], Any]) -> None:
    app = msal_app("common")
    sandbox.control.settings(refresh_token_lifetime=60)
    # The seeded token got its (90-day) lifetime at seed time: redeem it for a new one, which gets the short lifetime.
    short = app.acquire_token_by_refresh_token(seed.REFRESH_TOKEN_ORGANIZER, scopes=GRAPH_DELEGATED_SCOPES)
    short_lived = short["refresh_token"]
    assert "access_token" in app.acquire_token_by_refresh_token(short_lived, scopes=GRAPH_DELEGATED_SCOPES)

    sandbox.control.advance_clock(61)
    expired = app.acquire_token_by_refresh_token(short_lived, scopes=GRAPH_DELEGATED_SCOPES)

    assert "access_token" not in expired
    assert expired["error"] == "invalid_grant"
    assert expired["error_codes"] == [700082]
    assert expired["error_description"].startswith("AADSTS700082:")
    still = app.acquire_token_by_refresh_token(seed.REFRESH_TOKEN_ORGANIZER, scopes=GRAPH_DELEGATED_SCOPES)
    assert "access_token" in still  # the seeded one keeps its own, longer, lifetime


def test_unknown_refresh_token_is_invalid_grant(msal_app: Callable[[str], Any]) -> None:
    result = msal_app("common").acquire_token_by_refresh_token("sbx-rt-nonsense", scopes=GRAPH_DELEGATED_SCOPES)
    assert result["error"] == "invalid_grant"
    assert "access_token" not in result


def test_personal_account_token_needs_consumers_not_organizations(msal_app: Callable[[str], Any]) -> None:
    refused = msal_app("organizations").acquire_token_by_refresh_token(
        seed.REFRESH_TOKEN_PERSONAL, scopes=GRAPH_DELEGATED_SCOPES
    )
    assert "access_token" not in refused
    assert refused["error"] == "invalid_grant"
    assert seed.PERSONAL in refused["error_description"]

    accepted = msal_app("consumers").acquire_token_by_refresh_token(
        seed.REFRESH_TOKEN_PERSONAL, scopes=GRAPH_DELEGATED_SCOPES
    )
    assert "access_token" in accepted, accepted
    assert accepted["id_token_claims"]["tid"] == seed.CONSUMER_TENANT_ID


def test_work_account_token_is_refused_on_consumers(msal_app: Callable[[str], Any]) -> None:
    refused = msal_app("consumers").acquire_token_by_refresh_token(
        seed.REFRESH_TOKEN_ORGANIZER, scopes=GRAPH_DELEGATED_SCOPES
    )
    assert refused["error"] == "invalid_grant"

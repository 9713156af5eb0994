"""Fixtures for running the real SDK clients (azure-identity, MSAL, msgraph-sdk, twilio) against the sandbox.

Every client gets the sandbox's CA explicitly; the CA-bundle environment variables are pointed at a bundle
that does NOT hold it (certifi's), so a client that silently prefers the environment fails loudly here.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import certifi
import pytest

from airflow_provider_qconn.hooks.msgraph import RefreshTokenCredential
from airflow_provider_qconn.sandbox import seed
from airflow_provider_qconn.sandbox.server import Sandbox

from .support import GRAPH_APP_SCOPES, GRAPH_DELEGATED_SCOPES, delegated_credential, requests_session


@pytest.fixture(autouse=True)
def _environment_without_sandbox_ca(monkeypatch: pytest.MonkeyPatch) -> None:
    """CA variables that do not trust the sandbox, and no Twilio region/edge from the machine."""
    for name in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE"):
        monkeypatch.setenv(name, certifi.where())
    for name in ("TWILIO_EDGE", "TWILIO_REGION", "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def ca(sandbox: Sandbox) -> str:
    """The sandbox CA's PEM file, for clients that take a CA explicitly."""
    return str(sandbox.ca_path)


@pytest.fixture
def certificate_path(tmp_path: Path) -> str:
    """The seeded app's certificate and private key in one PEM file, as CertificateCredential reads it."""
    path = tmp_path / "app.pem"
    path.write_text(seed.app_certificate().combined_pem)
    return str(path)


@pytest.fixture
def msal_app(sandbox: Sandbox, ca: str) -> Iterator[Callable[[str], Any]]:
    """A factory of MSAL public client apps on a tenant (``common``, ``organizations``, ``consumers`` ...)."""
    import msal

    sessions = []

    def make(tenant: str = "common") -> Any:
        session = requests_session(ca)
        sessions.append(session)
        return msal.PublicClientApplication(
            seed.CLIENT_ID,
            authority=f"{sandbox.authority}/{tenant}",
            instance_discovery=False,
            http_client=session,
        )

    yield make
    for session in sessions:
        session.close()


GraphFactory = Callable[..., Awaitable[Any]]


@pytest.fixture
async def graph_client(sandbox: Sandbox, ca: str) -> AsyncIterator[GraphFactory]:
    """A factory of ``GraphServiceClient`` over real HTTP to the sandbox, built as docs/design.md says it must be.

    ``await graph_client(credential, scopes)``; ``with_options=False`` or ``allowed_hosts=[]`` rebuild the
    known pitfalls. The httpx clients are closed at teardown.
    """
    import httpx
    from kiota_authentication_azure.azure_identity_authentication_provider import (
        AzureIdentityAuthenticationProvider,
    )
    from msgraph import GraphRequestAdapter, GraphServiceClient
    from msgraph.graph_request_adapter import options as graph_options
    from msgraph_core import GraphClientFactory

    opened: list[httpx.AsyncClient] = []

    async def make(
        credential: Any,
        scopes: list[str],
        *,
        with_options: bool = True,
        allowed_hosts: list[str] | None = None,
    ) -> Any:
        http = httpx.AsyncClient(base_url=sandbox.graph_base_url, verify=ssl.create_default_context(cafile=ca))
        opened.append(http)
        http = GraphClientFactory.create_with_default_middleware(
            client=http, options=graph_options if with_options else None
        )
        auth = AzureIdentityAuthenticationProvider(
            credential,
            scopes=scopes,
            allowed_hosts=["127.0.0.1"] if allowed_hosts is None else allowed_hosts,
        )
        return GraphServiceClient(request_adapter=GraphRequestAdapter(auth, client=http))

    yield make
    for http in opened:
        await http.aclose()


@pytest.fixture
async def app_credential(sandbox: Sandbox, ca: str) -> AsyncIterator[Any]:
    """The seeded app's client-secret credential (``azure.identity.aio``), closed at teardown."""
    from azure.identity.aio import ClientSecretCredential

    credential = ClientSecretCredential(
        seed.TENANT_ID,
        seed.CLIENT_ID,
        seed.CLIENT_SECRET,
        authority=sandbox.authority,
        disable_instance_discovery=True,
        connection_verify=ca,
    )
    async with credential:
        yield credential


@pytest.fixture
async def app_graph(graph_client: GraphFactory, app_credential: Any) -> Any:
    """An app-only Graph client (``/users/{id}``)."""
    return await graph_client(app_credential, GRAPH_APP_SCOPES)


@pytest.fixture
def sandbox_ca_variables(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CA variables pointed at the sandbox's bundle, for the provider's credentials (which read them)."""
    for name in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
        monkeypatch.setenv(name, str(sandbox.bundle_path))


@pytest.fixture
def organizer_credential(sandbox: Sandbox, sandbox_ca_variables: None) -> Iterator[RefreshTokenCredential]:
    """The organizer's delegated credential (the provider's), from the seeded refresh token (tenant ``common``)."""
    credential = delegated_credential(sandbox.url, "qconn_msgraph_default")
    yield credential
    credential.close()


@pytest.fixture
async def me_graph(graph_client: GraphFactory, organizer_credential: RefreshTokenCredential) -> Any:
    """A delegated Graph client (``/me``) for the organizer."""
    return await graph_client(organizer_credential, GRAPH_DELEGATED_SCOPES)


@pytest.fixture
def twilio_factory(sandbox: Sandbox, ca: str) -> Iterator[Callable[..., Any]]:
    """A factory of synchronous twilio ``Client``s on the sandbox: both domains moved, the CA given to the session."""
    from twilio.rest import Client

    clients = []

    def make(auth_token: str = seed.AUTH_TOKEN) -> Any:
        client = Client(seed.ACCOUNT_SID, auth_token, environment={"TWILIO_NOTHING": "1"})
        client.api.base_url = sandbox.twilio_base_url
        client.content.base_url = sandbox.twilio_base_url
        client.http_client.session.trust_env = False
        client.http_client.session.verify = ca
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.http_client.session.close()


@pytest.fixture
def twilio_client(twilio_factory: Callable[..., Any]) -> Any:
    """A synchronous twilio ``Client`` for the seeded account."""
    return twilio_factory()

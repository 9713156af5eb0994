"""A local emulator of the Microsoft Graph calendar, Microsoft identity platform and Twilio Messages APIs.

DAG authors develop offline against it, the demo runs on it, and the test suite stands on it. Start one
with ``qconn-sandbox`` on the command line or with :class:`Sandbox` (a context manager); the default seed
(:mod:`airflow_provider_qconn.sandbox.seed`) gives it mailboxes, an app registration, a Twilio account and
WhatsApp templates, and :func:`connections` the matching Airflow connections.
"""

from __future__ import annotations

import importlib.util
import json
from typing import TYPE_CHECKING

#: What only the sandbox needs (module -> distribution): the ``sandbox`` extra, not installed on workers.
SANDBOX_REQUIREMENTS = {"starlette": "starlette", "uvicorn": "uvicorn", "trustme": "trustme", "jwt": "PyJWT"}


_MISSING = [dist for module, dist in SANDBOX_REQUIREMENTS.items() if importlib.util.find_spec(module) is None]
if _MISSING:
    raise ImportError(
        f"the qconn sandbox needs {', '.join(_MISSING)}: install the provider's 'sandbox' extra "
        "(pip install 'airflow-provider-qconn[sandbox]')",
        name=__name__,
    )

from airflow_provider_qconn.sandbox import seed  # noqa: E402

if TYPE_CHECKING:
    from airflow_provider_qconn.sandbox.client import SandboxControl
    from airflow_provider_qconn.sandbox.server import Sandbox

__all__ = ["Sandbox", "SandboxControl", "connections", "environment"]


def __getattr__(name: str) -> object:
    if name == "Sandbox":
        from airflow_provider_qconn.sandbox.server import Sandbox

        return Sandbox
    if name == "SandboxControl":
        from airflow_provider_qconn.sandbox.client import SandboxControl

        return SandboxControl
    raise AttributeError(name)


def connections(url: str) -> dict[str, dict[str, object]]:
    """Airflow connections (conn id -> connection JSON) for the default seed of a sandbox at ``url``."""
    graph = {"base_url": f"{url}/v1.0", "authority": url}
    return {
        "qconn_msgraph_default": {
            "conn_type": "qconn_msgraph",
            "login": seed.CLIENT_ID,
            "extra": {
                "auth_type": "refresh_token",
                "tenant_id": "common",
                "refresh_token": seed.REFRESH_TOKEN_ORGANIZER,
                **graph,
            },
        },
        "qconn_msgraph_app": {
            "conn_type": "qconn_msgraph",
            "login": seed.CLIENT_ID,
            "password": seed.CLIENT_SECRET,
            "extra": {
                "auth_type": "client_secret",
                "tenant_id": seed.TENANT_ID,
                "user_id": seed.ORGANIZER,
                **graph,
            },
        },
        "qconn_msgraph_personal": {
            "conn_type": "qconn_msgraph",
            "login": seed.CLIENT_ID,
            "extra": {
                "auth_type": "refresh_token",
                "tenant_id": "consumers",
                "refresh_token": seed.REFRESH_TOKEN_PERSONAL,
                **graph,
            },
        },
        "qconn_twilio_default": {
            "conn_type": "qconn_twilio",
            "login": seed.ACCOUNT_SID,
            "password": seed.AUTH_TOKEN,
            "extra": {"from_number": seed.WHATSAPP_SENDER, "base_url": url},
        },
    }


def environment(url: str, ca_bundle: str | None) -> dict[str, str]:
    """Environment variables that point Airflow at a sandbox: ``AIRFLOW_CONN_*`` and the CA bundle."""
    env = {f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(conn) for conn_id, conn in connections(url).items()}
    if ca_bundle:
        env["SSL_CERT_FILE"] = env["REQUESTS_CA_BUNDLE"] = ca_bundle
    return env

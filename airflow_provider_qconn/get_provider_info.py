"""Provider metadata read by Airflow's providers manager (entry point ``apache_airflow_provider``)."""

from __future__ import annotations

from typing import Any

from airflow_provider_qconn import __version__


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
    }

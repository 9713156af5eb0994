"""Clients for the sandbox's emulated APIs as the contract tests drive them: tokens, Graph calls, event bodies."""

from __future__ import annotations

from typing import Any

import httpx

from airflow_provider_qconn.sandbox import seed

DELEGATED_SCOPE = "Calendars.ReadWrite offline_access openid profile"


def delegated_token(
    http: httpx.Client, refresh_token: str = seed.REFRESH_TOKEN_ORGANIZER, tenant: str = "common"
) -> str:
    """A delegated Graph access token from a refresh-token grant (the seeded organizer's by default)."""
    response = http.post(
        f"/{tenant}/oauth2/v2.0/token",
        data={
            "grant_type": "refresh_token",
            "client_id": seed.CLIENT_ID,
            "refresh_token": refresh_token,
            "scope": DELEGATED_SCOPE,
        },
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


def app_token(http: httpx.Client) -> str:
    """An app-only Graph access token from a client-credentials grant."""
    response = http.post(
        f"/{seed.TENANT_ID}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": seed.CLIENT_ID,
            "client_secret": seed.CLIENT_SECRET,
            "scope": "https://graph.microsoft.com/.default",
        },
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


class GraphApi:
    """Graph calls on one mailbox (``/v1.0/me`` or ``/v1.0/users/{upn}``) with one access token."""

    def __init__(self, http: httpx.Client, base: str, token: str | None) -> None:
        self.http, self.base, self.token = http, base, token

    def request(self, method: str, path: str, headers: dict[str, str] | None = None, **kwargs: Any) -> httpx.Response:
        auth = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return self.http.request(method, self.base + path, headers={**auth, **(headers or {})}, **kwargs)

    def create(self, **fields: Any) -> dict[str, Any]:
        response = self.request("POST", "/events", json=meeting(**fields))
        assert response.status_code == 201, response.text
        return dict(response.json())


def meeting(**fields: Any) -> dict[str, Any]:
    """An event body as msgraph-sdk sends it (enums in lower case): subject, HTML body, zoned times, attendees,
    a room, Teams."""
    return {
        "subject": "Quarterly review",
        "body": {"contentType": "html", "content": "<p>Agenda: <b>numbers</b></p>"},
        "start": {"dateTime": "2030-03-04T10:00:00", "timeZone": "W. Europe Standard Time"},
        "end": {"dateTime": "2030-03-04T11:00:00", "timeZone": "W. Europe Standard Time"},
        "location": {"displayName": "Room 101"},
        "attendees": [
            {"emailAddress": {"address": seed.COLLEAGUE, "name": "Megan Bowen"}, "type": "required"},
            {"emailAddress": {"address": "guest@fabrikam.example"}, "type": "optional"},
        ],
        "isOnlineMeeting": True,
        "onlineMeetingProvider": "teamsForBusiness",
        "allowNewTimeProposals": True,
        "isReminderOn": True,
        "reminderMinutesBeforeStart": 15,
        **fields,
    }

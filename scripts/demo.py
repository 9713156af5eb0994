"""The quick-start demo: the sandbox up with its seed, the connection values to use, and traffic through it.

Run with ``make demo``. It starts a sandbox on a free loopback port, prints its URLs and ready-made
``AIRFLOW_CONN_*`` values, then uses exactly those values with the real SDKs (msgraph-sdk + MSAL for a
Teams meeting that is scheduled, moved and cancelled; twilio for a WhatsApp template message and its status)
and ends with the sandbox journal's request counts. The example DAGs join it as the operators land.
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import sys
import time
from collections import Counter
from typing import Any

from airflow_provider_qconn.sandbox import Sandbox, environment, seed


def show_environment(sandbox: Sandbox) -> dict[str, str]:
    env = environment(sandbox.url, str(sandbox.bundle_path))
    print(f"Sandbox running on {sandbox.url}")
    print(f"  Graph base URL   {sandbox.graph_base_url}")
    print(f"  login authority  {sandbox.authority}")
    print(f"  Twilio base URL  {sandbox.twilio_base_url}")
    print("\nConnection values for Airflow (valid while this sandbox runs; `make sandbox` keeps one up):\n")
    for name, value in env.items():
        print(f"export {name}={shlex.quote(value)}")
    return env


class StaticCredential:
    """An azure-core async token credential holding one access token (the demo's delegated sign-in)."""

    def __init__(self, token: str, expires_on: int) -> None:
        self._token, self._expires_on = token, expires_on

    async def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken

        return AccessToken(self._token, self._expires_on)

    async def close(self) -> None:
        return None


def delegated_token(conn: dict[str, Any]) -> str:
    """Redeem the connection's refresh token at the sandbox's token endpoint, as a public client."""
    import msal

    extra = conn["extra"]
    app = msal.PublicClientApplication(
        conn["login"], authority=f"{extra['authority']}/{extra['tenant_id']}", instance_discovery=False
    )
    result = app.acquire_token_by_refresh_token(extra["refresh_token"], scopes=["Calendars.ReadWrite"])
    if "access_token" not in result:
        raise SystemExit(f"sign-in failed: {result.get('error_description')}")
    return str(result["access_token"])


async def meeting_roundtrip(conn: dict[str, Any]) -> None:
    import httpx
    from kiota_abstractions.base_request_configuration import RequestConfiguration
    from kiota_authentication_azure.azure_identity_authentication_provider import (
        AzureIdentityAuthenticationProvider,
    )
    from msgraph import GraphRequestAdapter, GraphServiceClient
    from msgraph.generated.models.attendee import Attendee
    from msgraph.generated.models.date_time_time_zone import DateTimeTimeZone
    from msgraph.generated.models.email_address import EmailAddress
    from msgraph.generated.models.event import Event
    from msgraph.generated.models.online_meeting_provider_type import OnlineMeetingProviderType
    from msgraph.generated.users.item.events.item.cancel.cancel_post_request_body import CancelPostRequestBody
    from msgraph.graph_request_adapter import options as graph_options
    from msgraph_core import GraphClientFactory

    base_url = conn["extra"]["base_url"]
    credential = StaticCredential(delegated_token(conn), int(time.time()) + 3000)
    http = GraphClientFactory.create_with_default_middleware(
        client=httpx.AsyncClient(base_url=base_url), options=graph_options
    )
    auth = AzureIdentityAuthenticationProvider(
        credential, scopes=["Calendars.ReadWrite"], allowed_hosts=[httpx.URL(base_url).host]
    )
    client = GraphServiceClient(request_adapter=GraphRequestAdapter(auth, http))
    config = RequestConfiguration()
    config.headers.add("Prefer", 'IdType="ImmutableId", outlook.timezone="Europe/Madrid"')
    event = await client.me.events.post(
        Event(
            subject="Quarterly review",
            start=DateTimeTimeZone(date_time="2030-03-04T15:00:00", time_zone="Europe/Madrid"),
            end=DateTimeTimeZone(date_time="2030-03-04T16:00:00", time_zone="Europe/Madrid"),
            attendees=[Attendee(email_address=EmailAddress(address=seed.COLLEAGUE))],
            is_online_meeting=True,
            online_meeting_provider=OnlineMeetingProviderType.TeamsForBusiness,
            transaction_id="demo-quarterly-review",
        ),
        request_configuration=config,
    )
    print(f"\nScheduled meeting {event.id[:24]}... join URL {event.online_meeting.join_url[:60]}...")
    moved = await client.me.events.by_event_id(event.id).patch(
        Event(end=DateTimeTimeZone(date_time="2030-03-04T16:30:00", time_zone="Europe/Madrid")),
        request_configuration=config,
    )
    print(f"Rescheduled: now ends {moved.end.date_time} ({moved.end.time_zone})")
    await client.me.events.by_event_id(event.id).cancel.post(CancelPostRequestBody(comment="Moved to next quarter"))
    print("Cancelled, with a comment to the attendees")
    await http.aclose()


def whatsapp_roundtrip(conn: dict[str, Any], sandbox: Sandbox) -> None:
    from twilio.rest import Client

    client = Client(conn["login"], conn["password"], environment={"QCONN_DEMO": "1"})
    client.api.base_url = conn["extra"]["base_url"]
    sender = "whatsapp:" + conn["extra"]["from_number"]
    sids = []
    for name, number in (("Ana", "+59899123456"), ("Bruno", "+34612345678")):
        message = client.messages.create(
            to=f"whatsapp:{number}",
            from_=sender,
            content_sid=seed.TEMPLATE_REMINDER,
            content_variables=json.dumps({"1": name, "2": "Monday 10:00"}),
        )
        sids.append(message.sid)
        print(f"\nSent {message.sid} to {number}: {message.status!r}, {message.body!r}")
    sandbox.control.advance_clock(5)
    for sid in sids:
        print(f"Status of {sid} five seconds later: {client.messages(sid).fetch().status!r}")


def main() -> int:
    with Sandbox() as sandbox:
        env = show_environment(sandbox)
        os.environ.update({k: v for k, v in env.items() if not k.startswith("AIRFLOW_CONN_")})
        graph = json.loads(env["AIRFLOW_CONN_QCONN_MSGRAPH_DEFAULT"])
        twilio = json.loads(env["AIRFLOW_CONN_QCONN_TWILIO_DEFAULT"])
        asyncio.run(meeting_roundtrip(graph))
        whatsapp_roundtrip(twilio, sandbox)
        counts = Counter(f"{e['service']} {e['method']} {e['status']}" for e in sandbox.control.journal())
        print("\nRequests the sandbox saw:")
        for key, count in sorted(counts.items()):
            print(f"  {count:3d}  {key}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""msgraph-sdk's GraphServiceClient, over real HTTP, against the sandbox's Graph calendar.

Assertions look at what the sandbox stored (``sandbox.control.mailbox_events``), not only at what the SDK
returned, so that a request the SDK shapes wrongly cannot pass by echo.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph.generated.models.attendee import Attendee
from msgraph.generated.models.attendee_type import AttendeeType
from msgraph.generated.models.body_type import BodyType
from msgraph.generated.models.date_time_time_zone import DateTimeTimeZone
from msgraph.generated.models.email_address import EmailAddress
from msgraph.generated.models.event import Event
from msgraph.generated.models.item_body import ItemBody
from msgraph.generated.models.location import Location
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.online_meeting_provider_type import OnlineMeetingProviderType
from msgraph.generated.users.item.events.item.cancel.cancel_post_request_body import CancelPostRequestBody

from airflow_provider_qconn.hooks.msgraph import RefreshTokenCredential
from airflow_provider_qconn.sandbox import seed
from airflow_provider_qconn.sandbox.server import Sandbox

from .support import GRAPH_APP_SCOPES, GRAPH_DELEGATED_SCOPES, delegated_credential

# msgraph-sdk's generated request builders warn about their own deprecated configuration classes on first use.
pytestmark = [
    pytest.mark.filterwarnings("ignore:This class is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:GetQueryParameters is deprecated:DeprecationWarning"),
]


def immutable_ids(*extra_prefer: str) -> RequestConfiguration:
    """A request configuration asking for immutable ids (and any other ``Prefer`` values)."""
    config = RequestConfiguration()
    config.headers.add("Prefer", 'IdType="ImmutableId"')
    for value in extra_prefer:
        config.headers.add("Prefer", value)
    return config


def meeting(
    subject: str = "Quarterly review",
    *,
    attendees: tuple[str, ...] = (seed.COLLEAGUE,),
    teams: bool = True,
    transaction_id: str | None = None,
) -> Event:
    return Event(
        subject=subject,
        body=ItemBody(content_type=BodyType.Text, content="Agenda: numbers & plans"),
        start=DateTimeTimeZone(date_time="2030-03-04T15:00:00", time_zone="UTC"),
        end=DateTimeTimeZone(date_time="2030-03-04T15:45:00", time_zone="UTC"),
        location=Location(display_name="Room 4"),
        attendees=[
            Attendee(email_address=EmailAddress(address=address), type=AttendeeType.Required) for address in attendees
        ],
        is_online_meeting=teams,
        online_meeting_provider=OnlineMeetingProviderType.TeamsForBusiness if teams else None,
        transaction_id=transaction_id or str(uuid.uuid4()),
    )


def stored(sandbox: Sandbox, mailbox: str) -> list[dict[str, Any]]:
    return sandbox.control.mailbox_events(mailbox)


def stored_by_id(sandbox: Sandbox, mailbox: str, event_id: str) -> dict[str, Any]:
    (event,) = [e for e in stored(sandbox, mailbox) if event_id in (e["immutableId"], e["restId"])]
    return event


async def _create_patch_cancel(sandbox: Sandbox, events: Any, owner_path: str) -> None:
    """The full meeting life cycle on one ``events`` request builder (``me.events`` or ``users[x].events``)."""
    created = await events.post(meeting(), request_configuration=immutable_ids())

    assert created.id.startswith("AAkALg")  # an immutable id, as asked for
    assert created.is_organizer is True
    assert created.online_meeting is not None
    assert created.online_meeting.join_url.startswith("https://teams.microsoft.com/l/meetup-join/")
    event = stored_by_id(sandbox, seed.ORGANIZER, created.id)
    assert event["folder"] == "calendar"
    assert event["subject"] == "Quarterly review"
    assert event["_startUtc"] == "2030-03-04T15:00:00+00:00"
    assert event["_endUtc"] == "2030-03-04T15:45:00+00:00"
    assert [a["emailAddress"]["address"] for a in event["attendees"]] == [seed.COLLEAGUE]
    assert event["attendees"][0]["type"] == "required"
    assert event["isOnlineMeeting"] is True
    assert event["onlineMeetingProvider"] == "teamsForBusiness"
    assert event["onlineMeeting"]["joinUrl"] == created.online_meeting.join_url
    assert event["location"]["displayName"] == "Room 4"
    assert "numbers &amp; plans" in event["body"]["content"]  # text bodies are stored as escaped HTML
    (copy,) = [e for e in stored(sandbox, seed.COLLEAGUE) if e["iCalUId"] == event["iCalUId"]]
    assert copy["isOrganizer"] is False
    assert copy["isCancelled"] is False

    patch = Event(
        subject="Quarterly review (moved)",
        start=DateTimeTimeZone(date_time="2030-03-05T09:00:00", time_zone="Pacific Standard Time"),
        end=DateTimeTimeZone(date_time="2030-03-05T10:00:00", time_zone="Pacific Standard Time"),
    )
    updated = await events.by_event_id(created.id).patch(
        patch, request_configuration=immutable_ids('outlook.timezone="Pacific Standard Time"')
    )

    assert updated.subject == "Quarterly review (moved)"
    assert updated.start.time_zone == "Pacific Standard Time"
    assert updated.start.date_time.startswith("2030-03-05T09:00:00")
    event = stored_by_id(sandbox, seed.ORGANIZER, created.id)
    assert event["subject"] == "Quarterly review (moved)"
    assert event["_startUtc"] == "2030-03-05T17:00:00+00:00"  # PST is UTC-8 in March before DST
    assert event["isOnlineMeeting"] is True  # a PATCH without a body keeps the Teams meeting
    (copy,) = [e for e in stored(sandbox, seed.COLLEAGUE) if e["iCalUId"] == event["iCalUId"]]
    assert copy["subject"] == "Quarterly review (moved)"

    result = await events.by_event_id(created.id).cancel.post(
        CancelPostRequestBody(comment="Sorry, moved to next quarter."), request_configuration=immutable_ids()
    )

    assert result is None
    event = stored_by_id(sandbox, seed.ORGANIZER, created.id)
    assert event["isCancelled"] is True
    assert event["folder"] == "deleteditems"
    assert event["_cancelComment"] == "Sorry, moved to next quarter."
    (copy,) = [e for e in stored(sandbox, seed.COLLEAGUE) if e["iCalUId"] == event["iCalUId"]]
    assert copy["isCancelled"] is True
    assert copy["subject"] == "Canceled: Quarterly review (moved)"

    journal = sandbox.control.journal(service="graph")
    assert [(e["method"], e["status"]) for e in journal] == [("POST", 201), ("PATCH", 200), ("POST", 202)]
    assert journal[0]["path"] == f"/v1.0/{owner_path}/events"
    assert journal[2]["path"] == f"/v1.0/{owner_path}/events/{created.id}/cancel"
    assert journal[2]["json"] == {"Comment": "Sorry, moved to next quarter."}  # the SDK's capitalised key
    assert all(e["headers"]["authorization"] == "Bearer ***" for e in journal)
    assert all('IdType="ImmutableId"' in e["headers"]["prefer"] for e in journal)
    assert journal[0]["json"]["transactionId"]


async def test_app_only_meeting_life_cycle(sandbox: Sandbox, app_graph: Any) -> None:
    await _create_patch_cancel(sandbox, app_graph.users.by_user_id(seed.ORGANIZER).events, f"users/{seed.ORGANIZER}")


async def test_delegated_meeting_life_cycle(
    sandbox: Sandbox, me_graph: Any, organizer_credential: RefreshTokenCredential
) -> None:
    await _create_patch_cancel(sandbox, me_graph.me.events, "me")
    token_posts = [e for e in sandbox.control.journal(service="identity") if e["path"].endswith("/oauth2/v2.0/token")]
    assert len(token_posts) == 1  # one refresh, then the cached access token
    assert organizer_credential.refresh_token != seed.REFRESH_TOKEN_ORGANIZER  # the rotated one was kept


async def test_personal_mailbox_gets_no_teams_meeting(
    sandbox: Sandbox, graph_client: Any, sandbox_ca_variables: None
) -> None:
    credential = delegated_credential(sandbox.url, "qconn_msgraph_personal")
    client = await graph_client(credential, GRAPH_DELEGATED_SCOPES)

    created = await client.me.events.post(meeting(attendees=()), request_configuration=immutable_ids())

    assert created.online_meeting is None
    assert created.is_online_meeting is False
    assert created.online_meeting_provider == OnlineMeetingProviderType.Unknown
    (event,) = stored(sandbox, seed.PERSONAL)
    assert event["isOnlineMeeting"] is False
    assert event["onlineMeeting"] is None
    assert "teams.microsoft.com" not in event["body"]["content"]
    credential.close()


async def test_transaction_id_deduplicates_creates(sandbox: Sandbox, app_graph: Any) -> None:
    events = app_graph.users.by_user_id(seed.ORGANIZER).events
    transaction_id = str(uuid.uuid4())

    first = await events.post(meeting(transaction_id=transaction_id), request_configuration=immutable_ids())
    second = await events.post(meeting(transaction_id=transaction_id), request_configuration=immutable_ids())
    other = await events.post(meeting(), request_configuration=immutable_ids())

    assert second.id == first.id
    assert other.id != first.id
    organizer_events = stored(sandbox, seed.ORGANIZER)
    assert [e["transactionId"] for e in organizer_events].count(transaction_id) == 1
    assert len(organizer_events) == 2
    assert len(stored(sandbox, seed.COLLEAGUE)) == 2  # one attendee copy per meeting, none for the replay


async def test_only_the_organizer_may_cancel(sandbox: Sandbox, app_graph: Any) -> None:
    created = await app_graph.users.by_user_id(seed.ORGANIZER).events.post(
        meeting(), request_configuration=immutable_ids()
    )
    (copy,) = stored(sandbox, seed.COLLEAGUE)

    with pytest.raises(ODataError) as caught:
        await (
            app_graph.users.by_user_id(seed.COLLEAGUE)
            .events.by_event_id(copy["immutableId"])
            .cancel.post(CancelPostRequestBody(comment="not mine"), request_configuration=immutable_ids())
        )

    error = caught.value
    assert error.response_status_code == 400
    assert error.error.code == "ErrorInvalidRequest"
    assert error.error.message == "Your request can't be completed. You need to be an organizer to cancel a meeting."
    assert stored_by_id(sandbox, seed.ORGANIZER, created.id)["isCancelled"] is False
    assert stored(sandbox, seed.COLLEAGUE)[0]["isCancelled"] is False


async def test_deleted_and_cancelled_events_are_not_found_by_their_old_ids(sandbox: Sandbox, app_graph: Any) -> None:
    events = app_graph.users.by_user_id(seed.ORGANIZER).events

    deleted = await events.post(meeting("Deleted"), request_configuration=immutable_ids())
    await events.by_event_id(deleted.id).delete()
    with pytest.raises(ODataError) as caught:
        await events.by_event_id(deleted.id).get(request_configuration=immutable_ids())
    assert caught.value.response_status_code == 404
    assert caught.value.error.code == "ErrorItemNotFound"
    assert caught.value.error.message == "The specified object was not found in the store."
    assert "request-id" in caught.value.response_headers

    cancelled = await events.post(meeting("Cancelled"), request_configuration=immutable_ids())
    regular_id = (await events.by_event_id(cancelled.id).get()).id  # no Prefer header: the regular id
    assert regular_id != cancelled.id
    await events.by_event_id(cancelled.id).cancel.post(CancelPostRequestBody())
    with pytest.raises(ODataError) as caught:
        await events.by_event_id(regular_id).get()
    assert caught.value.response_status_code == 404
    assert caught.value.error.code == "ErrorItemNotFound"
    in_deleted_items = await events.by_event_id(cancelled.id).get(request_configuration=immutable_ids())
    assert in_deleted_items.is_cancelled is True  # the immutable id follows the item into Deleted Items


async def test_prefer_outlook_timezone(app_graph: Any) -> None:
    created = await app_graph.users.by_user_id(seed.ORGANIZER).events.post(
        meeting(teams=False), request_configuration=immutable_ids('outlook.timezone="America/Montevideo"')
    )
    assert created.start.time_zone == "America/Montevideo"
    assert created.start.date_time.startswith("2030-03-04T12:00:00")


async def test_app_only_token_cannot_use_me(app_graph: Any) -> None:
    with pytest.raises(ODataError) as caught:
        await app_graph.me.events.post(meeting())
    assert caught.value.response_status_code == 400
    assert "/me request is only valid with delegated authentication flow" in caught.value.error.message


# --- the SDK behaviours docs/design.md records, kept honest -----------------------------------------------


async def test_without_graph_options_me_becomes_a_placeholder_user(
    sandbox: Sandbox, graph_client: Any, organizer_credential: RefreshTokenCredential
) -> None:
    client = await graph_client(organizer_credential, GRAPH_DELEGATED_SCOPES, with_options=False)
    with pytest.raises(ODataError) as caught:
        await client.me.events.post(meeting())
    assert caught.value.response_status_code == 404
    (entry,) = sandbox.control.journal(service="graph")
    assert entry["path"] == "/v1.0/users/me-token-to-replace/events"


async def test_no_token_is_sent_to_a_host_outside_allowed_hosts(
    sandbox: Sandbox, graph_client: Any, app_credential: Any
) -> None:
    client = await graph_client(app_credential, GRAPH_APP_SCOPES, allowed_hosts=["graph.microsoft.com"])
    with pytest.raises(ODataError) as caught:
        await client.users.by_user_id(seed.ORGANIZER).events.post(meeting())
    assert caught.value.response_status_code == 401
    assert caught.value.error.code == "InvalidAuthenticationToken"
    assert sandbox.control.journal(service="identity") == []  # it never even asked for a token


def test_msgraph_core_provider_defaults_are_refused_by_kiota(app_credential: Any) -> None:
    """msgraph-core's provider defaults ``allowed_hosts`` to cloud URLs with a scheme, which kiota 1.16 refuses:
    use kiota's ``AzureIdentityAuthenticationProvider`` with bare host names instead."""
    from msgraph_core.authentication import AzureIdentityAuthenticationProvider

    with pytest.raises(ValueError, match="cannot contain 'https://' or 'http://' prefix"):
        AzureIdentityAuthenticationProvider(app_credential, scopes=GRAPH_APP_SCOPES)

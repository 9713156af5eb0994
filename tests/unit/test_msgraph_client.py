"""The Graph requests the hook builds (URL, query, headers, JSON body) and the CA bundle's shared SSL context,
without a network."""

from __future__ import annotations

import datetime as dt
import json
import ssl
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from airflow.sdk import Connection

from airflow_provider_qconn.hooks.common import bundle_context
from airflow_provider_qconn.hooks.msgraph import EventDetails, GraphSettings, requests_session
from airflow_provider_qconn.hooks.msgraph.client import graph_request, mailbox_url, with_query
from airflow_provider_qconn.hooks.msgraph.events import graph_event
from airflow_provider_qconn.normalise import EmailAddress

BASE = "https://graph.example/v1.0"


def settings(**extra: object) -> GraphSettings:
    return GraphSettings.from_connection(
        Connection(
            conn_id="outlook",
            conn_type="qconn_msgraph",
            login="client",
            password="secret",
            extra=json.dumps({"base_url": BASE, "tenant_id": "contoso.example", **extra}),
        )
    )


# --- URLs and queries ---------------------------------------------------------------------------------------------


def test_the_mailbox_is_me_when_delegated_and_the_user_path_segment_when_app_only():
    assert mailbox_url(settings(refresh_token="rt")) == f"{BASE}/me"
    assert mailbox_url(settings(user_id="adele@contoso.example")) == f"{BASE}/users/adele%40contoso.example"
    assert mailbox_url(settings(user_id="a/b c")) == f"{BASE}/users/a%2Fb%20c"


def test_query_parameters_keep_their_order_and_names_and_join_lists_with_commas():
    url = with_query(
        f"{BASE}/me/events",
        {"$filter": "transactionId eq 'x&y'", "$select": ("id", "webLink"), "$top": 1, "$skip": None},
    )
    assert url == f"{BASE}/me/events?$filter=transactionId%20eq%20%27x%26y%27&$select=id,webLink&$top=1"


def test_a_query_is_appended_to_a_link_that_has_one_and_nothing_is_added_for_an_empty_query():
    assert with_query(f"{BASE}/me/calendarView?$skiptoken=a", {"$top": 5}) == (
        f"{BASE}/me/calendarView?$skiptoken=a&$top=5"
    )
    assert with_query(f"{BASE}/me/events", {"$select": None}) == f"{BASE}/me/events"
    assert with_query(f"{BASE}/me/events", None) == f"{BASE}/me/events"


def test_a_request_accepts_json_prefers_immutable_ids_and_turns_kiotas_retry_handler_off():
    from kiota_abstractions.native_response_handler import NativeResponseHandler
    from kiota_http.middleware.options import ResponseHandlerOption, RetryHandlerOption

    request = graph_request(
        "patch", f"{BASE}/me/events/1", {"$select": ["id"]}, ('outlook.timezone="UTC"',), body={"subject": "é"}
    )
    assert request.http_method.value == "PATCH"
    assert request.url == f"{BASE}/me/events/1?$select=id"
    headers = request.headers.get_all()
    assert headers["accept"] == {"application/json"}
    assert headers["prefer"] == {'IdType="ImmutableId"', 'outlook.timezone="UTC"'}
    assert headers["content-type"] == {"application/json"}
    assert json.loads(request.content) == {"subject": "é"}
    options = request.request_options
    assert isinstance(options[ResponseHandlerOption.get_key()].response_handler, NativeResponseHandler)
    assert options[RetryHandlerOption.get_key()].max_retry == 0


def test_a_request_without_a_body_sends_no_content():
    request = graph_request("GET", f"{BASE}/me/events")
    assert request.content is None
    assert "content-type" not in request.headers.get_all()


# --- the event's JSON -----------------------------------------------------------------------------------------------


def sdk_serialised(details: EventDetails, transaction_id: str | None = None) -> dict[str, object]:
    """What msgraph-sdk's ``Event`` model, with the same properties set, serialises into."""
    from kiota_serialization_json.json_serialization_writer_factory import JsonSerializationWriterFactory
    from msgraph.generated.models.attendee import Attendee
    from msgraph.generated.models.attendee_type import AttendeeType
    from msgraph.generated.models.body_type import BodyType
    from msgraph.generated.models.date_time_time_zone import DateTimeTimeZone
    from msgraph.generated.models.email_address import EmailAddress as SdkEmailAddress
    from msgraph.generated.models.event import Event
    from msgraph.generated.models.item_body import ItemBody
    from msgraph.generated.models.location import Location
    from msgraph.generated.models.online_meeting_provider_type import OnlineMeetingProviderType

    from airflow_provider_qconn.hooks.msgraph import graph_date_time

    event = Event(subject=details.subject, transaction_id=transaction_id)
    if details.content is not None:
        kind = BodyType.Text if details.content_type == "text" else BodyType.Html
        event.body = ItemBody(content_type=kind, content=details.content)
    for name, moment in (("start", details.start), ("end", details.end)):
        if moment is not None:
            date_time, zone = graph_date_time(moment)
            setattr(event, name, DateTimeTimeZone(date_time=date_time, time_zone=zone))
    if details.location is not None:
        event.location = Location(display_name=details.location)
    if details.attendees is not None:
        event.attendees = [
            Attendee(email_address=SdkEmailAddress(address=a.address, name=a.name), type=AttendeeType.Required)
            for a in details.attendees
        ]
    if details.teams_meeting is not None:
        event.is_online_meeting = details.teams_meeting
        if details.teams_meeting:
            event.online_meeting_provider = OnlineMeetingProviderType.TeamsForBusiness
    writer = JsonSerializationWriterFactory().get_serialization_writer("application/json")
    writer.write_object_value(None, event)
    return json.loads(writer.get_serialized_content())


@pytest.mark.parametrize(
    ("details", "transaction_id"),
    [
        (
            EventDetails(
                subject="Review",
                content="<p>Agenda</p>",
                start=dt.datetime(2030, 3, 4, 10, tzinfo=ZoneInfo("Europe/Madrid")),
                end=dt.datetime(2030, 3, 4, 11, tzinfo=dt.timezone.utc),
                location="Room 4",
                attendees=(EmailAddress("megan@contoso.example", "Megan"), EmailAddress("alex@contoso.example")),
                teams_meeting=True,
            ),
            "tx-1",
        ),
        (EventDetails(subject="Plain", content="line 1\nline 2", content_type="text", teams_meeting=False), None),
        (EventDetails(attendees=()), None),
        (EventDetails(subject=""), None),
        (EventDetails(), None),
    ],
    ids=["every-property", "text-without-teams", "no-attendees", "empty-subject", "nothing"],
)
def test_the_event_json_is_what_msgraph_sdks_event_model_serialises(details, transaction_id):
    assert graph_event(details, transaction_id) == sdk_serialised(details, transaction_id)


# --- the CA bundle's SSL context -----------------------------------------------------------------------------------


def write_bundle(path: Path, organization: str) -> None:
    import trustme

    path.write_bytes(trustme.CA(organization_name=organization).cert_pem.bytes())


def test_a_bundle_is_loaded_once_and_again_when_the_file_changes(tmp_path):
    bundle = tmp_path / "bundle.pem"
    write_bundle(bundle, "First CA")
    first = bundle_context(str(bundle))
    assert isinstance(first, ssl.SSLContext)
    assert bundle_context(str(bundle)) is first
    write_bundle(bundle, "A second CA with a longer name")
    assert bundle_context(str(bundle)) is not first
    assert bundle_context(None) is bundle_context(None)


def test_the_msal_session_verifies_a_bundle_with_the_shared_context_instead_of_loading_it_per_connection(tmp_path):
    import requests

    bundle = tmp_path / "bundle.pem"
    write_bundle(bundle, "Shared CA")
    session = requests_session(str(bundle))
    request = session.prepare_request(requests.Request("GET", "https://login.example/t"))
    adapter = session.get_adapter(request.url)
    _, pool_kwargs = adapter.build_connection_pool_key_attributes(request, str(bundle))
    assert pool_kwargs["ssl_context"] is bundle_context(str(bundle))
    assert "ca_certs" not in pool_kwargs
    pool = adapter.get_connection_with_tls_context(request, str(bundle))
    adapter.cert_verify(pool, request.url, str(bundle), None)
    assert pool.ca_certs is None
    session.close()


def test_without_a_bundle_the_msal_session_verifies_as_requests_does():
    import requests

    session = requests_session(True)
    request = session.prepare_request(requests.Request("GET", "https://login.example/t"))
    adapter = session.get_adapter(request.url)
    pool = adapter.get_connection_with_tls_context(request, True)
    adapter.cert_verify(pool, request.url, True, None)
    assert "ssl_context" not in pool.conn_kw
    assert pool.ca_certs  # requests' own CA bundle
    session.close()

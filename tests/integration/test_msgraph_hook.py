"""MSGraphHook and the Outlook operators over real HTTP (TLS) against the sandbox, through the real SDKs.

Assertions look at what the sandbox stored and journaled: one Graph request per action (two for an update that
changes the content), at most one token request per hook, and requests that follow Graph's contract.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import urllib.parse
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_qconn.exceptions import ApiError, ConnectionConfigError, MeetingStateError, NonRetryableApiError
from airflow_provider_qconn.hooks.msgraph import EventDetails, MSGraphHook
from airflow_provider_qconn.operators.outlook import (
    CancelMeetingOperator,
    ScheduleMeetingOperator,
    UpdateMeetingOperator,
    transaction_id,
)
from airflow_provider_qconn.sandbox import connections, seed
from airflow_provider_qconn.sandbox.server import Sandbox
from tests.contracts.validation import Exchange, request_problems

EVENTS_PATH = r"/events$"


def context(run_id: str = "manual__2030-03-01", map_index: int = -1, try_number: int = 1) -> dict[str, Any]:
    ti = SimpleNamespace(
        dag_id="outlook_tests", task_id="meeting", run_id=run_id, map_index=map_index, try_number=try_number
    )
    return {"ti": ti}


def schedule(**kwargs: Any) -> ScheduleMeetingOperator:
    defaults = {
        "start": "2030-03-04T10:00",
        "end": "2030-03-04T10:45",
        "time_zone": "Europe/Madrid",
        "subject": "Quarterly review",
        "attendees": f"Megan Bowen <{seed.COLLEAGUE}>",
        "location": "Room 4",
        "content": "<p>Agenda: <b>numbers</b></p>",
    }
    return ScheduleMeetingOperator(task_id="schedule", **{**defaults, **kwargs})


def add_connection(monkeypatch: pytest.MonkeyPatch, sandbox: Sandbox, conn_id: str, base: str, **changes: Any) -> None:
    """Another connection to the sandbox: one of its ready-made ones with some fields changed."""
    conn = json.loads(json.dumps(connections(sandbox.url)[base]))
    extra = changes.pop("extra", {})
    conn.update(changes)
    conn["extra"].update(extra)
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))


def graph_requests(sandbox: Sandbox) -> list[dict[str, Any]]:
    return sandbox.control.journal(service="graph")


def token_requests(sandbox: Sandbox) -> list[dict[str, Any]]:
    return [e for e in sandbox.control.journal(service="identity") if e["path"].endswith("/oauth2/v2.0/token")]


def stored(sandbox: Sandbox, mailbox: str, event_id: str) -> dict[str, Any]:
    (event,) = [e for e in sandbox.control.mailbox_events(mailbox) if event_id in (e["immutableId"], e["restId"])]
    return event


def assert_requests_follow_the_contract(sandbox: Sandbox) -> None:
    for entry in graph_requests(sandbox):
        exchange = Exchange.from_journal(entry)
        assert request_problems(exchange) == [], str(exchange)


# --- the three operators ------------------------------------------------------------------------------------------


def test_schedule_creates_the_meeting_as_asked(sandbox_env: Sandbox) -> None:
    result = schedule(teams_meeting=True).execute(context())

    event = stored(sandbox_env, seed.ORGANIZER, result["meeting_id"])
    assert result == {
        "meeting_id": event["immutableId"],  # Prefer: IdType="ImmutableId"
        "web_link": result["web_link"],
        "join_url": event["onlineMeeting"]["joinUrl"],
        "ical_uid": event["iCalUId"],
    }
    assert result["web_link"].startswith("https://outlook.office365.com/owa/?itemid=")
    assert result["join_url"].startswith("https://teams.microsoft.com/l/meetup-join/")
    assert event["subject"] == "Quarterly review"
    assert event["_startUtc"] == "2030-03-04T09:00:00+00:00"  # 10:00 in Madrid (UTC+1 in March)
    assert event["_endUtc"] == "2030-03-04T09:45:00+00:00"
    assert event["originalStartTimeZone"] == "Romance Standard Time"
    assert [(a["emailAddress"]["address"], a["emailAddress"]["name"], a["type"]) for a in event["attendees"]] == [
        (seed.COLLEAGUE, "Megan Bowen", "required")
    ]
    assert event["location"]["displayName"] == "Room 4"
    assert "<b>numbers</b>" in event["body"]["content"]
    assert event["isOnlineMeeting"] is True and event["onlineMeetingProvider"] == "teamsForBusiness"
    assert event["transactionId"] == transaction_id(context())

    (request,) = graph_requests(sandbox_env)
    assert (request["method"], request["path"], request["status"]) == ("POST", "/v1.0/me/events", 201)
    assert 'IdType="ImmutableId"' in request["headers"]["prefer"]
    assert request["json"]["body"] == {"contentType": "html", "content": "<p>Agenda: <b>numbers</b></p>"}
    assert request["json"]["start"] == {"dateTime": "2030-03-04T10:00:00", "timeZone": "Romance Standard Time"}
    assert len(token_requests(sandbox_env)) == 1
    assert_requests_follow_the_contract(sandbox_env)


def test_update_sends_only_the_given_fields(sandbox_env: Sandbox) -> None:
    created = schedule(msgraph_conn_id="qconn_msgraph_app").execute(context())
    sandbox_env.control.clear_journal()

    result = UpdateMeetingOperator(
        task_id="update",
        msgraph_conn_id="qconn_msgraph_app",
        meeting_id=created["meeting_id"],
        subject="Quarterly review (moved)",
        start="2030-03-05T08:00:00+00:00",
        end="2030-03-05T09:00:00Z",
    ).execute(context())

    assert result == created
    (patch,) = graph_requests(sandbox_env)
    assert (patch["method"], patch["path"], patch["status"]) == (
        "PATCH",
        f"/v1.0/users/{seed.ORGANIZER}/events/{created['meeting_id']}",
        200,
    )
    assert set(patch["json"]) == {"@odata.type", "subject", "start", "end"}
    event = stored(sandbox_env, seed.ORGANIZER, created["meeting_id"])
    assert event["subject"] == "Quarterly review (moved)"
    assert (event["_startUtc"], event["_endUtc"]) == ("2030-03-05T08:00:00+00:00", "2030-03-05T09:00:00+00:00")
    assert event["location"]["displayName"] == "Room 4"  # omitted: kept
    assert [a["emailAddress"]["address"] for a in event["attendees"]] == [seed.COLLEAGUE]
    assert "<b>numbers</b>" in event["body"]["content"]
    assert len(token_requests(sandbox_env)) == 1  # each task's hook signs in once
    assert_requests_follow_the_contract(sandbox_env)


def test_new_content_keeps_the_teams_meeting(sandbox_env: Sandbox) -> None:
    created = schedule(teams_meeting=True).execute(context())
    sandbox_env.control.clear_journal()

    result = UpdateMeetingOperator(
        task_id="update", meeting_id=created["meeting_id"], content="New agenda:\n1. <numbers>", content_type="text"
    ).execute(context())

    assert result["join_url"] == created["join_url"]
    event = stored(sandbox_env, seed.ORGANIZER, created["meeting_id"])
    assert event["isOnlineMeeting"] is True
    assert event["onlineMeeting"]["joinUrl"] == created["join_url"]
    assert "New agenda:<br>\n1. &lt;numbers&gt;" in event["body"]["content"]
    assert "Agenda: <b>numbers</b>" not in event["body"]["content"]
    assert event["body"]["content"].count(created["join_url"]) == 1
    get, patch = graph_requests(sandbox_env)
    assert (get["method"], get["status"], patch["method"], patch["status"]) == ("GET", 200, "PATCH", 200)
    assert get["query"] == "$select=body,isOnlineMeeting,onlineMeeting"
    assert patch["json"]["body"]["contentType"] == "html"
    assert set(patch["json"]) == {"@odata.type", "body"}
    assert_requests_follow_the_contract(sandbox_env)


def test_new_content_of_a_meeting_without_teams_is_sent_as_given(sandbox_env: Sandbox) -> None:
    created = schedule().execute(context())
    sandbox_env.control.clear_journal()
    UpdateMeetingOperator(
        task_id="update", meeting_id=created["meeting_id"], content="Plain", content_type="text"
    ).execute(context())
    _, patch = graph_requests(sandbox_env)
    assert patch["json"]["body"] == {"contentType": "text", "content": "Plain"}
    assert stored(sandbox_env, seed.ORGANIZER, created["meeting_id"])["isOnlineMeeting"] is False


def test_attendees_replace_the_whole_list(sandbox_env: Sandbox) -> None:
    created = schedule(attendees=[seed.COLLEAGUE, "guest@fabrikam.example"]).execute(context())

    UpdateMeetingOperator(
        task_id="update", meeting_id=created["meeting_id"], attendees="guest@fabrikam.example"
    ).execute(context())
    event = stored(sandbox_env, seed.ORGANIZER, created["meeting_id"])
    assert [a["emailAddress"]["address"] for a in event["attendees"]] == ["guest@fabrikam.example"]
    (copy,) = sandbox_env.control.mailbox_events(seed.COLLEAGUE)
    assert copy["isCancelled"] is True  # the removed attendee's copy

    UpdateMeetingOperator(task_id="update", meeting_id=created["meeting_id"], attendees=[]).execute(context())
    assert stored(sandbox_env, seed.ORGANIZER, created["meeting_id"])["attendees"] == []


def test_cancel_sends_the_comment_and_missing_ok_tolerates_a_second_cancel(sandbox_env: Sandbox) -> None:
    created = schedule().execute(context())
    sandbox_env.control.clear_journal()

    result = CancelMeetingOperator(task_id="cancel", meeting_id=created["meeting_id"], comment="Moved to Q3").execute(
        context()
    )

    assert result == {"meeting_id": created["meeting_id"], "cancelled": True}
    event = stored(sandbox_env, seed.ORGANIZER, created["meeting_id"])
    assert (event["folder"], event["isCancelled"], event["_cancelComment"]) == ("deleteditems", True, "Moved to Q3")
    assert sandbox_env.control.mailbox_events(seed.COLLEAGUE)[0]["isCancelled"] is True
    (cancel,) = graph_requests(sandbox_env)
    assert (cancel["path"], cancel["status"], cancel["json"]) == (
        f"/v1.0/me/events/{created['meeting_id']}/cancel",
        202,
        {"Comment": "Moved to Q3"},
    )
    assert_requests_follow_the_contract(sandbox_env)

    again = CancelMeetingOperator(task_id="cancel", meeting_id=created["meeting_id"], missing_ok=True)
    assert again.execute(context()) == {"meeting_id": created["meeting_id"], "cancelled": False}
    with pytest.raises(NonRetryableApiError, match="was not found in the signed-in user's mailbox") as caught:
        CancelMeetingOperator(task_id="cancel", meeting_id=created["meeting_id"]).execute(context())
    assert (caught.value.status, caught.value.code) == (404, "ErrorItemNotFound")
    assert caught.value.request_id


def test_a_retry_of_a_cancel_that_took_effect_succeeds(sandbox_env: Sandbox) -> None:
    # The first try cancelled the meeting, then its worker died before reporting success.
    created = schedule().execute(context())
    CancelMeetingOperator(task_id="cancel", meeting_id=created["meeting_id"]).execute(context())

    retry = CancelMeetingOperator(task_id="cancel", meeting_id=created["meeting_id"]).execute(context(try_number=2))

    assert retry == {"meeting_id": created["meeting_id"], "cancelled": True}
    cancels = [e for e in sandbox_env.control.journal(service="graph") if e["path"].endswith("/cancel")]
    assert [e["status"] for e in cancels] == [202, 404]  # the retry sent no second cancellation


def test_an_attendee_cannot_cancel_and_is_told_why(sandbox_env: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    created = schedule(msgraph_conn_id="qconn_msgraph_app").execute(context())
    (copy,) = sandbox_env.control.mailbox_events(seed.COLLEAGUE)
    add_connection(monkeypatch, sandbox_env, "colleague", "qconn_msgraph_app", extra={"user_id": seed.COLLEAGUE})

    with pytest.raises(NonRetryableApiError) as caught:
        CancelMeetingOperator(task_id="cancel", msgraph_conn_id="colleague", meeting_id=copy["immutableId"]).execute(
            context()
        )

    assert caught.value.status == 400
    assert f"only the organizer can cancel a meeting, and {seed.COLLEAGUE} holds an attendee's copy" in str(
        caught.value
    )
    assert "You need to be an organizer to cancel a meeting." in str(caught.value)
    assert stored(sandbox_env, seed.ORGANIZER, created["meeting_id"])["isCancelled"] is False
    assert sandbox_env.control.mailbox_events(seed.COLLEAGUE)[0]["isCancelled"] is False


# --- retries and task-instance identity -------------------------------------------------------------------------------


def test_a_create_whose_answer_was_lost_is_replayed_with_its_transaction_id_into_one_event(
    sandbox_env: Sandbox,
) -> None:
    sandbox_env.control.add_fault(service="graph", method="POST", path=EVENTS_PATH, drop=True, phase="after", times=1)

    first_try = schedule().execute(context())

    (event,) = sandbox_env.control.mailbox_events(seed.ORGANIZER)
    assert event["immutableId"] == first_try["meeting_id"]
    posts = graph_requests(sandbox_env)
    assert [p["json"]["transactionId"] for p in posts] == [transaction_id(context())] * 2
    assert schedule().execute(context()) == first_try  # a later try too finds the same event
    other_run = schedule().execute(context(run_id="manual__2030-03-02"))
    assert other_run["meeting_id"] != first_try["meeting_id"]
    assert len(sandbox_env.control.mailbox_events(seed.ORGANIZER)) == 2


def test_a_create_that_never_gets_an_answer_is_left_to_a_later_try_which_creates_no_second_event(
    sandbox_env: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_qconn.hooks.msgraph import retry

    monkeypatch.setattr(retry, "BASE_DELAY", 0.01)
    sandbox_env.control.add_fault(
        service="graph", method="POST", path=EVENTS_PATH, drop=True, phase="after", times=retry.ATTEMPTS
    )
    with pytest.raises(ApiError, match="may have taken effect") as first_try:
        schedule().execute(context())
    assert not isinstance(first_try.value, NonRetryableApiError)  # Airflow retries it
    second_try = schedule().execute(context())
    (event,) = sandbox_env.control.mailbox_events(seed.ORGANIZER)
    assert event["immutableId"] == second_try["meeting_id"]


def test_a_cleared_schedule_finds_its_meeting_and_fails_once_it_is_cancelled(sandbox_env: Sandbox) -> None:
    first = schedule().execute(context())
    assert schedule(subject="Changed").execute(context()) == first  # Graph returns the first try's meeting
    assert stored(sandbox_env, seed.ORGANIZER, first["meeting_id"])["subject"] == "Quarterly review"
    CancelMeetingOperator(task_id="cancel", meeting_id=first["meeting_id"]).execute(context())

    with pytest.raises(MeetingStateError, match="has since been cancelled"):
        schedule().execute(context())
    assert len(sandbox_env.control.mailbox_events(seed.ORGANIZER)) == 1


def test_a_cleared_schedule_with_changed_parameters_returns_the_meeting_and_warns(
    sandbox_env: Sandbox, capsys: Any
) -> None:
    first = schedule().execute(context())
    sandbox_env.control.clear_journal()

    again = schedule(subject="Changed", location="Room 5").execute(context())

    assert again == first
    event = stored(sandbox_env, seed.ORGANIZER, first["meeting_id"])
    assert (event["subject"], event["location"]["displayName"]) == ("Quarterly review", "Room 4")
    post, lookup = graph_requests(sandbox_env)
    assert (post["method"], post["status"], post["response_json"]["error"]["code"]) == (
        "POST",
        400,
        "ErrorDuplicateTransactionId",
    )
    assert (lookup["method"], lookup["status"]) == ("GET", 200)
    assert f"$filter=transactionId eq '{transaction_id(context())}'" in urllib.parse.unquote(lookup["query"])
    assert "the parameters of this try were NOT applied" in capsys.readouterr().out
    assert_requests_follow_the_contract(sandbox_env)


def test_a_cleared_schedule_with_changed_parameters_fails_clearly_once_the_meeting_is_cancelled(
    sandbox_env: Sandbox,
) -> None:
    first = schedule().execute(context())
    CancelMeetingOperator(task_id="cancel", meeting_id=first["meeting_id"]).execute(context())

    with pytest.raises(MeetingStateError, match=r"no longer in the calendar \(cancelled or deleted\).*new DAG run"):
        schedule(subject="Changed").execute(context())
    assert len(sandbox_env.control.mailbox_events(seed.ORGANIZER)) == 1


def delete_event(meeting_id: str) -> None:
    """Delete (not cancel) an event, as someone in Outlook or another program would."""
    from airflow_provider_qconn.hooks.msgraph.client import graph_request

    with MSGraphHook() as hook:
        hook._run(hook._send(graph_request("DELETE", hook._event_url(meeting_id)), read=False))


@pytest.mark.parametrize("subject", ["Quarterly review", "Changed"], ids=["same-parameters", "changed-parameters"])
def test_a_cleared_schedule_after_a_delete_schedules_anew_where_graph_releases_the_transaction_id(
    sandbox_env: Sandbox, subject: str
) -> None:
    sandbox_env.control.settings(graph_deleted_transaction_ids="released")
    first = schedule().execute(context())
    delete_event(first["meeting_id"])

    again = schedule(subject=subject).execute(context())

    assert again["meeting_id"] != first["meeting_id"]
    (event,) = sandbox_env.control.mailbox_events(seed.ORGANIZER)
    assert (event["immutableId"], event["subject"]) == (again["meeting_id"], subject)


@pytest.mark.parametrize("subject", ["Quarterly review", "Changed"], ids=["same-parameters", "changed-parameters"])
def test_a_cleared_schedule_after_a_delete_fails_clearly_where_graph_keeps_the_transaction_id(
    sandbox_env: Sandbox, subject: str
) -> None:
    sandbox_env.control.settings(graph_deleted_transaction_ids="kept")
    first = schedule().execute(context())
    delete_event(first["meeting_id"])

    with pytest.raises(MeetingStateError, match=r"no longer in the calendar \(cancelled or deleted\)"):
        schedule(subject=subject).execute(context())
    assert sandbox_env.control.mailbox_events(seed.ORGANIZER) == []


def test_429_with_retry_after_is_retried(sandbox_env: Sandbox) -> None:
    sandbox_env.control.add_fault(service="graph", method="POST", path=EVENTS_PATH, status=429, retry_after=1, times=1)

    started = time.monotonic()
    result = schedule().execute(context())

    assert time.monotonic() - started >= 1.0
    assert [(e["method"], e["status"]) for e in graph_requests(sandbox_env)] == [("POST", 429), ("POST", 201)]
    (event,) = sandbox_env.control.mailbox_events(seed.ORGANIZER)
    assert event["immutableId"] == result["meeting_id"]


def test_a_create_answered_503_after_it_took_effect_is_replayed_into_the_same_event(sandbox_env: Sandbox) -> None:
    sandbox_env.control.add_fault(
        service="graph", method="POST", path=EVENTS_PATH, status=503, retry_after=0, phase="after", times=1
    )

    result = schedule().execute(context())

    assert [(e["method"], e["status"]) for e in graph_requests(sandbox_env)] == [("POST", 503), ("POST", 201)]
    (event,) = sandbox_env.control.mailbox_events(seed.ORGANIZER)  # the transactionId made the replay harmless
    assert event["immutableId"] == result["meeting_id"]


def test_persistent_unavailability_ends_in_a_retryable_error_after_the_policys_attempts(
    sandbox_env: Sandbox,
) -> None:
    from airflow_provider_qconn.hooks.msgraph.retry import ATTEMPTS

    sandbox_env.control.add_fault(service="graph", method="PATCH", status=503, retry_after=0)

    with pytest.raises(ApiError) as caught:
        UpdateMeetingOperator(task_id="update", meeting_id="AAk", subject="x").execute(context())

    assert not isinstance(caught.value, NonRetryableApiError)
    assert "still refused after the client's retries" in str(caught.value)
    assert [e["status"] for e in graph_requests(sandbox_env)] == [503] * ATTEMPTS
    assert "retry-attempt" not in {name.lower() for e in graph_requests(sandbox_env) for name in e["headers"]}


def test_an_expired_token_401_is_not_retried(sandbox_env: Sandbox) -> None:
    sandbox_env.control.settings(access_token_lifetime=400)  # the hook keeps a token with more than 300 s left
    hook = MSGraphHook()
    hook.credential.get_token(*hook.settings.scopes)
    sandbox_env.control.advance_clock(500)  # the sandbox now sees that token expired

    with pytest.raises(NonRetryableApiError) as caught:
        hook.update_event("AAk", EventDetails(subject="x"))
    hook.close()

    assert (caught.value.status, caught.value.code) == (401, "InvalidAuthenticationToken")
    assert "Check the credentials of connection 'qconn_msgraph_default'" in str(caught.value)
    assert [e["status"] for e in graph_requests(sandbox_env)] == [401]


def test_a_forbidden_mailbox_403_is_not_retried(sandbox_env: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    add_connection(monkeypatch, sandbox_env, "megans", "qconn_msgraph_default", extra={"user_id": seed.COLLEAGUE})

    with pytest.raises(NonRetryableApiError) as caught:
        schedule(msgraph_conn_id="megans").execute(context())

    assert (caught.value.status, caught.value.code) == (403, "ErrorAccessDenied")
    assert f"access to the calendar of {seed.COLLEAGUE} was denied" in str(caught.value)
    assert [e["status"] for e in graph_requests(sandbox_env)] == [403]


# --- sign-in: every auth mode gets its token from the sandbox ------------------------------------------------------


@pytest.fixture
def certificate_file(tmp_path: Any) -> str:
    path = tmp_path / "app.pem"
    path.write_text(seed.app_certificate().combined_pem)
    return str(path)


@pytest.mark.parametrize(
    ("base", "changes", "grant", "client_auth", "mailbox"),
    [
        ("qconn_msgraph_default", {}, "refresh_token", None, "the signed-in user's mailbox (/me)"),
        ("qconn_msgraph_default", {"password": seed.CLIENT_SECRET}, "refresh_token", "client_secret", None),
        ("qconn_msgraph_personal", {}, "refresh_token", None, None),
        ("qconn_msgraph_app", {}, "client_credentials", "client_secret", seed.ORGANIZER),
        (
            "qconn_msgraph_app",
            {"password": None, "extra": {"auth_type": "certificate", "certificate_data": "<pem>"}},
            "client_credentials",
            "client_assertion",
            None,
        ),
        (
            "qconn_msgraph_app",
            {"password": None, "extra": {"auth_type": None, "certificate_path": "<file>"}},  # inferred
            "client_credentials",
            "client_assertion",
            None,
        ),
    ],
    ids=["delegated", "delegated-confidential", "personal", "client-secret", "certificate-data", "certificate-path"],
)
def test_each_auth_mode_gets_a_token_and_reads_the_mailbox(
    sandbox_env: Sandbox,
    monkeypatch: pytest.MonkeyPatch,
    certificate_file: str,
    base: str,
    changes: dict[str, Any],
    grant: str,
    client_auth: str | None,
    mailbox: str | None,
) -> None:
    pem = json.dumps(seed.app_certificate().combined_pem)[1:-1]
    changes = json.loads(json.dumps(changes).replace("<file>", certificate_file).replace("<pem>", pem))
    add_connection(monkeypatch, sandbox_env, "under_test", base, **changes)

    ok, message = MSGraphHook("under_test").test_connection()

    assert ok, message
    if mailbox:
        assert mailbox in message
    (token,) = token_requests(sandbox_env)
    assert token["status"] == 200
    assert f"grant_type={grant}" in token["body"]
    assert ("client_secret=" in token["body"]) is (client_auth == "client_secret")
    assert ("client_assertion=" in token["body"]) is (client_auth == "client_assertion")
    (read,) = graph_requests(sandbox_env)
    assert (read["method"], read["status"], read["query"]) == ("GET", 200, "$select=id&$top=1")
    assert_requests_follow_the_contract(sandbox_env)


def test_one_hook_asks_for_one_token_for_all_its_requests(sandbox_env: Sandbox) -> None:
    details = EventDetails(
        subject="Sync",
        start=dt.datetime(2030, 3, 4, 10, tzinfo=dt.timezone.utc),
        end=dt.datetime(2030, 3, 4, 11, tzinfo=dt.timezone.utc),
        teams_meeting=True,
    )
    with MSGraphHook("qconn_msgraph_app") as hook:
        meeting = hook.create_event(details, "one-token")
        hook.update_event(meeting.id, EventDetails(content="<p>Agenda</p>"))
        assert hook.cancel_event(meeting.id, "Done") is True

    assert [(e["method"], e["status"]) for e in graph_requests(sandbox_env)] == [
        ("POST", 201),
        ("GET", 200),
        ("PATCH", 200),
        ("POST", 202),
    ]
    assert len(token_requests(sandbox_env)) == 1
    assert_requests_follow_the_contract(sandbox_env)


def test_the_newest_refresh_token_is_redeemed(
    sandbox_env: Sandbox, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    short_lived = "sbx-rt-short-lived-000000000000000000000000"
    sandbox_env.control.seed(
        refresh_tokens=[{"token": short_lived, "client_id": seed.CLIENT_ID, "mailbox": seed.ORGANIZER, "lifetime": 100}]
    )
    sandbox_env.control.settings(access_token_lifetime=60)  # under the hook's margin: each call redeems again
    add_connection(monkeypatch, sandbox_env, "short", "qconn_msgraph_default", extra={"refresh_token": short_lived})

    with MSGraphHook("short") as hook:
        meeting = hook.create_event(
            EventDetails(
                subject="Rotation",
                start=dt.datetime(2030, 3, 4, 10, tzinfo=dt.timezone.utc),
                end=dt.datetime(2030, 3, 4, 11, tzinfo=dt.timezone.utc),
            ),
            "rotation",
        )
        sandbox_env.control.advance_clock(120)  # the connection's refresh token has now expired
        hook.update_event(meeting.id, EventDetails(subject="Rotation (moved)"))
        newest = hook.credential.refresh_token

    assert [e["status"] for e in token_requests(sandbox_env)] == [200, 200]
    assert newest != short_lived
    assert newest in {t["token"] for t in sandbox_env.control.refresh_tokens(seed.ORGANIZER)}
    assert stored(sandbox_env, seed.ORGANIZER, meeting.id)["subject"] == "Rotation (moved)"
    assert newest not in capsys.readouterr().out


def test_a_refused_refresh_token_says_to_sign_in_again(sandbox_env: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    add_connection(monkeypatch, sandbox_env, "stale", "qconn_msgraph_default", extra={"refresh_token": "sbx-rt-gone"})

    with pytest.raises(NonRetryableApiError) as caught:
        CancelMeetingOperator(task_id="cancel", msgraph_conn_id="stale", meeting_id="AAk").execute(context())

    assert caught.value.code == "AADSTS9002313"
    assert "refresh token of connection 'stale' (from the connection) was refused" in str(caught.value)
    assert "sign in again with `airflow qconn outlook-login --conn-id stale`" in str(caught.value)
    assert "sbx-rt-gone" not in str(caught.value)
    assert graph_requests(sandbox_env) == []


def test_an_unknown_tenant_is_a_connection_error(sandbox_env: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    add_connection(monkeypatch, sandbox_env, "typo", "qconn_msgraph_default", extra={"tenant_id": "contoso.exmaple"})

    unusable = r"^connection 'typo': the authority '.*/contoso.exmaple' is unusable"
    with pytest.raises(ConnectionConfigError, match=unusable):
        CancelMeetingOperator(task_id="cancel", msgraph_conn_id="typo", meeting_id="AAk").execute(context())
    assert graph_requests(sandbox_env) == []


# --- personal accounts: no Teams -----------------------------------------------------------------------------------


def test_a_personal_account_gets_no_join_url_and_a_warning(sandbox_env: Sandbox, capsys: Any) -> None:
    result = schedule(msgraph_conn_id="qconn_msgraph_personal", teams_meeting=True, attendees=None).execute(context())

    assert result["join_url"] is None
    assert result["web_link"].startswith("https://outlook.live.com/")
    assert "Graph returned no join URL" in capsys.readouterr().out
    (event,) = sandbox_env.control.mailbox_events(seed.PERSONAL)
    assert (event["isOnlineMeeting"], event["isCancelled"]) == (False, False)


def test_require_join_url_cancels_the_meeting_and_fails(sandbox_env: Sandbox) -> None:
    with pytest.raises(MeetingStateError, match="returned no join URL"):
        schedule(msgraph_conn_id="qconn_msgraph_personal", teams_meeting=True, require_join_url=True).execute(context())

    (event,) = sandbox_env.control.mailbox_events(seed.PERSONAL)
    assert (event["folder"], event["isCancelled"]) == ("deleteditems", True)
    assert [(e["method"], e["status"]) for e in graph_requests(sandbox_env)] == [("POST", 201), ("POST", 202)]


# --- CA bundles ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("variable", ["SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"])
@pytest.mark.parametrize("conn_id", ["qconn_msgraph_default", "qconn_msgraph_app"])
def test_either_ca_variable_serves_every_client(
    sandbox_env: Sandbox, monkeypatch: pytest.MonkeyPatch, variable: str, conn_id: str
) -> None:
    for name in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(variable, str(sandbox_env.bundle_path))

    assert MSGraphHook(conn_id).test_connection()[0]


def test_an_untrusted_certificate_is_explained(sandbox_env: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    import certifi

    for name in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"):
        monkeypatch.setenv(name, certifi.where())
    ok, message = MSGraphHook().test_connection()
    assert not ok
    assert message.startswith(f"Microsoft identity platform error: could not reach {sandbox_env.url}")
    assert message.endswith("(a custom CA bundle goes in SSL_CERT_FILE or REQUESTS_CA_BUNDLE)")


def test_a_cancel_whose_answer_failed_is_checked_not_replayed(sandbox_env: Sandbox) -> None:
    created = schedule().execute(context())
    sandbox_env.control.add_fault(service="graph", method="POST", path="/cancel$", status=504, phase="after", times=1)
    sandbox_env.control.clear_journal()

    result = CancelMeetingOperator(task_id="cancel", meeting_id=created["meeting_id"]).execute(context())

    assert result == {"meeting_id": created["meeting_id"], "cancelled": True}
    calls = [(e["method"], e["path"].rsplit("/", 1)[-1], e["status"]) for e in graph_requests(sandbox_env)]
    assert calls == [("POST", "cancel", 504), ("GET", created["meeting_id"], 200)]


def test_a_throttled_cancel_is_retried(sandbox_env: Sandbox) -> None:
    created = schedule().execute(context())
    sandbox_env.control.add_fault(service="graph", method="POST", path="/cancel$", status=429, retry_after=0, times=1)
    sandbox_env.control.clear_journal()

    result = CancelMeetingOperator(task_id="cancel", meeting_id=created["meeting_id"]).execute(context())

    assert result["cancelled"] is True
    assert [e["status"] for e in graph_requests(sandbox_env)] == [429, 202]

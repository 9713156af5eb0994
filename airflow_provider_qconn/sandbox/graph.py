"""Emulated Microsoft Graph v1.0 calendar events, as Graph's documentation describes them.

Routes: ``/v1.0/me/...`` and ``/v1.0/users/{id or UPN}/...`` for ``events`` (list, create), ``events/{id}``
(get, patch, delete), ``events/{id}/cancel`` and ``calendarView``.

Behaviour worth knowing (each from Graph's docs; see the module's tests):
- ``transactionId`` de-duplicates creates per mailbox: a second POST with the same payload returns the first
  event (cancelled or not); one with a different payload is refused with 400 ``ErrorDuplicateTransactionId``,
  as client code written against Graph reports. What a deleted event's transactionId does the docs do not say:
  the setting ``graph_deleted_transaction_ids`` chooses ("released": a new create makes a new event; "kept":
  it is refused as a duplicate).
- Teams meetings (``isOnlineMeeting`` + ``teamsForBusiness``) get a join URL, and the Teams block in the body,
  on work mailboxes only; personal mailboxes ignore the request (``onlineMeetingProvider: unknown``).
  A PATCH of the body that drops the Teams block turns the online meeting off, as Graph warns it does.
- Attendees that are sandbox mailboxes get their own copy of the meeting (``isOrganizer: false``), kept in
  step on update and cancelled with the meeting. Only the organizer may cancel.
- Cancel moves the event to Deleted Items: its regular id stops resolving, its immutable id still reads it
  (``isCancelled: true``); it no longer shows in lists. ``Prefer: IdType="ImmutableId"`` selects which id
  responses carry; ``Prefer: outlook.timezone`` the zone of ``start``/``end``. Without it, times are in UTC,
  except in a create's answer: there they are in the zones the request gave (the create-event documentation's
  example answers in the request's zone).
- Recurring events (``recurrence``: every pattern and range type, see :mod:`.recurrence`) are stored as a series
  master (``type: seriesMaster``, listed by ``events``); ``calendarView`` expands them into occurrences
  (``type: occurrence``, ``seriesMasterId``, ``originalStart``) in the series' zone. An occurrence's id reads,
  updates, cancels and deletes that occurrence alone: an update makes it an ``exception`` (shown at its new
  time), a cancel or delete removes it from the organizer's calendar, while attendees' copies show it
  ``isCancelled``. The order of ``calendarView`` is by start; its page size is ``$top`` or ``Prefer:
  odata.maxpagesize`` (default 10), followed through ``@odata.nextLink``.
- Where the docs give no error code (not-organizer cancel, a missing start), the sandbox answers
  ``ErrorInvalidRequest`` with the documented message or a plain one.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import html
import json
import re
import urllib.parse
import uuid
from html.parser import HTMLParser
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from airflow_provider_qconn.sandbox.common import iso_utc, json_response, random_b64, random_hex, state_of
from airflow_provider_qconn.sandbox.identity import lookup_access_token
from airflow_provider_qconn.sandbox.recurrence import RecurrenceError, Series, normalise
from airflow_provider_qconn.sandbox.state import State

GRAPH_ROOT = "https://graph.microsoft.com/v1.0"
DELEGATED_WRITE_SCOPES = {"Calendars.ReadWrite", "Calendars.ReadWrite.Shared"}
MAX_ATTENDEES = 500
_TEAMS_MARKER = "________________________________________________________________________________"
_ZERO_TIME = "0001-01-01T00:00:00Z"


class GraphError(Exception):
    """An error Graph answers with its error envelope."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}

    def response(self, request: Request) -> Response:
        request_id = str(uuid.uuid4())
        client_request_id = request.headers.get("client-request-id", str(uuid.uuid4()))
        body = {
            "error": {
                "code": self.code,
                "message": self.message,
                "innerError": {
                    "date": iso_utc(state_of(request).now())[:19],
                    "request-id": request_id,
                    "client-request-id": client_request_id,
                },
            }
        }
        headers = {"request-id": request_id, "client-request-id": client_request_id, **self.headers}
        return json_response(body, status=self.status, headers=headers)


def _not_found() -> GraphError:
    return GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")


def _duplicate_transaction_id() -> GraphError:
    return GraphError(
        400,
        "ErrorDuplicateTransactionId",
        "Your request can't be completed. The TransactionId specified in the request has already been used to "
        "create a different event.",
    )


def _payload_digest(body: dict[str, Any]) -> str:
    """What tells an identical create payload from a different one (key order does not matter)."""
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


# --- time zones ---------------------------------------------------------------------------------------


def resolve_zone(name: str) -> ZoneInfo | None:
    """A Graph ``timeZone`` value (IANA or Windows name) as a ZoneInfo, or None if Graph would refuse it."""
    from tzlocal.windows_tz import win_tz

    for candidate in (name, win_tz.get(name)):
        if not candidate:
            continue
        try:
            return ZoneInfo(candidate)
        except (ZoneInfoNotFoundError, ValueError):
            continue
    return None


def _parse_dtz(value: Any, prop: str) -> dt.datetime:
    """A ``dateTimeTimeZone`` as an aware UTC datetime; Graph's errors for a bad one."""
    if not isinstance(value, dict) or not value.get("dateTime"):
        raise GraphError(400, "ErrorInvalidRequest", f"The '{prop}' property must have a dateTime and timeZone.")
    zone_name = value.get("timeZone") or "UTC"
    zone = resolve_zone(zone_name)
    if zone is None:
        raise GraphError(
            400,
            "TimeZoneNotSupportedException",
            f"A valid TimeZone value must be specified. The following TimeZone value is not supported: '{zone_name}'.",
        )
    text = str(value["dateTime"]).replace("Z", "+00:00")
    text = re.sub(r"\.(\d{6})\d+", r".\1", text)
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError as error:
        raise GraphError(
            400,
            "ErrorInvalidRequest",
            f"Cannot convert the literal '{value['dateTime']}' to the expected type.",
        ) from error
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(dt.timezone.utc)


def _format_dtz(moment_utc: dt.datetime, zone_name: str) -> dict[str, str]:
    zone = resolve_zone(zone_name) or ZoneInfo("UTC")
    local = moment_utc.astimezone(zone)
    return {
        "dateTime": local.strftime("%Y-%m-%dT%H:%M:%S.") + f"{local.microsecond:06d}0",
        "timeZone": zone_name,
    }


# --- request context ---------------------------------------------------------------------------------


class Preferences:
    """The ``Prefer`` header values Graph honours for events."""

    def __init__(self, request: Request) -> None:
        values = ",".join(request.headers.getlist("prefer"))
        self.time_zone = "UTC"
        #: Whether the request named a zone (``outlook.timezone``) for the times of the answer.
        self.zone_preferred = False
        self.immutable_ids = False
        self.text_body = False
        #: ``odata.maxpagesize``: the page size of a collection when the request gives no ``$top``.
        self.page_size: int | None = None
        applied = []
        for raw in values.split(","):
            item = raw.strip()
            key, _, value = item.partition("=")
            value = value.strip().strip('"')
            if key.strip().lower() == "outlook.timezone" and value:
                if resolve_zone(value) is not None:
                    self.time_zone = value
                    self.zone_preferred = True
                    applied.append(item)
            elif key.strip().lower() == "idtype" and value.lower() == "immutableid":
                self.immutable_ids = True
                applied.append(item)
            elif key.strip().lower() == "outlook.body-content-type" and value.lower() == "text":
                self.text_body = True
                applied.append(item)
            elif key.strip().lower() == "odata.maxpagesize" and value.isdigit() and int(value) > 0:
                self.page_size = int(value)
                applied.append(item)
        self.applied = ",".join(applied)

    def headers(self) -> dict[str, str]:
        return {"Preference-Applied": self.applied} if self.applied else {}


def _mailbox_for(request: Request, state: State) -> tuple[dict[str, Any], dict[str, Any]]:
    """Authenticate the bearer token and return (mailbox, grant) for ``/me`` or ``/users/{id}``."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value:
        raise GraphError(401, "InvalidAuthenticationToken", "Access token is empty.")
    found = lookup_access_token(state, value.strip())
    if found is None:
        raise GraphError(401, "InvalidAuthenticationToken", "IDX14100: JWT is not well formed, there are no dots (.).")
    expires_at, grant = found
    if expires_at <= state.now():
        raise GraphError(401, "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired.")
    user = request.path_params.get("user")
    if user is None:
        if grant["mailbox_id"] is None:
            raise GraphError(400, "BadRequest", "/me request is only valid with delegated authentication flow.")
        mailbox = state.doc("SELECT doc FROM mailboxes WHERE id = ?", (grant["mailbox_id"],))
    else:
        user = urllib.parse.unquote(user)
        mailbox = state.doc("SELECT doc FROM mailboxes WHERE id = ? OR upn = ?", (user, user))
        if mailbox is None:
            raise GraphError(404, "ErrorInvalidUser", f"The requested user '{user}' is invalid.")
    if mailbox is None:
        raise GraphError(404, "ErrorInvalidUser", "The requested user is invalid.")
    if grant["mailbox_id"] is None:
        if mailbox["kind"] == "personal" or mailbox["tenant_id"] != grant["tenant_id"]:
            raise GraphError(404, "ErrorInvalidUser", f"The requested user '{mailbox['upn']}' is invalid.")
        if not {"Calendars.ReadWrite", "Calendars.Read"} & set(grant["roles"]):
            raise GraphError(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")
    else:
        if grant["mailbox_id"] != mailbox["id"]:
            raise GraphError(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")
        if not ({"Calendars.Read"} | DELEGATED_WRITE_SCOPES) & set(grant["scopes"]):
            raise GraphError(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")
    writing = request.method in ("POST", "PATCH", "DELETE")
    if writing and grant["mailbox_id"] is not None and not DELEGATED_WRITE_SCOPES & set(grant["scopes"]):
        raise GraphError(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")
    if writing and grant["mailbox_id"] is None and "Calendars.ReadWrite" not in grant["roles"]:
        raise GraphError(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")
    return mailbox, grant


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = json.loads(raw or b"{}")
    except ValueError as error:
        raise GraphError(
            400,
            "BadRequest",
            "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of "
            "valid JSON format.",
        ) from error
    if not isinstance(body, dict):
        raise GraphError(400, "BadRequest", "Unable to read JSON request payload.")
    return body


# --- events: storage -----------------------------------------------------------------------------------


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("style", "script", "head"):
            self._skip += 1
        elif tag in ("br", "p", "div"):
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "script", "head"):
            self._skip = max(0, self._skip - 1)

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def html_to_text(content: str) -> str:
    parser = _TextExtractor()
    parser.feed(content)
    return re.sub(r"\n\s*\n+", "\n", "".join(parser.parts)).strip()


def _as_stored_html(body: Any) -> str:
    """Outlook stores event bodies as HTML documents: text is escaped, fragments are wrapped."""
    if not isinstance(body, dict):
        raise GraphError(400, "ErrorInvalidRequest", "The 'body' property must be an itemBody.")
    content = str(body.get("content") or "")
    kind = str(body.get("contentType") or "text").lower()
    if kind not in ("text", "html"):
        raise GraphError(400, "ErrorInvalidRequest", f"Requested value '{body.get('contentType')}' was not found.")
    if kind == "text":
        content = html.escape(content).replace("\n", "<br>\r\n")
    if "<html" in content.lower():
        return content
    return f'<html>\r\n<head>\r\n<meta http-equiv="Content-Type" content="text/html; charset=utf-8">\r\n</head>\r\n<body>\r\n{content}\r\n</body>\r\n</html>\r\n'  # noqa: E501


def _teams_block(join_url: str, conference_id: str) -> str:
    return (
        f'<div style="width:100%"><span style="white-space:nowrap;color:#5F5F5F;opacity:.36">{_TEAMS_MARKER}'
        '</span></div><div class="me-email-text" lang="en-US" style="color:#242424">'
        '<div style="margin-bottom:24px;overflow:hidden;white-space:nowrap">'
        '<span style="font-size:24px;font-weight:700">Microsoft Teams meeting</span></div>'
        f'<div style="margin-bottom:6px"><a id="meet_invite_block.action.join_link" href="{join_url}" '
        'title="Meeting join link" target="_blank">Join the meeting now</a></div>'
        f'<div style="margin-bottom:6px">Meeting ID: <span>{conference_id}</span></div></div>'
        f'<div style="width:100%"><span style="white-space:nowrap;color:#5F5F5F;opacity:.36">{_TEAMS_MARKER}'
        "</span></div>"
    )


def _with_teams_block(content: str, join_url: str, conference_id: str) -> str:
    block = _teams_block(join_url, conference_id)
    index = content.lower().rfind("</body>")
    return content[:index] + block + "\r\n" + content[index:] if index >= 0 else content + block


def _new_ids(mailbox_id: str) -> tuple[str, str]:
    """A (regular, immutable) id pair shaped like Exchange's."""
    tail = random_b64(33)
    return f"AAMkAG{tail}AAA=", f"AAkALgAAAAAAHYQDEapmEc2byACqAC-EWg0A{tail[:24]}AAA="


def _attendees(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise GraphError(400, "ErrorInvalidRequest", "The 'attendees' property must be a collection.")
    if len(value) > MAX_ATTENDEES:
        raise GraphError(400, "ErrorExceededMaxRecipientLimit", f"An event can have at most {MAX_ATTENDEES} attendees.")
    result = []
    for item in value:
        address = (item or {}).get("emailAddress") or {}
        if not address.get("address"):
            raise GraphError(400, "ErrorInvalidRecipients", "At least one recipient isn't valid.")
        kind = item.get("type") or "required"
        if kind not in ("required", "optional", "resource"):
            raise GraphError(400, "ErrorInvalidRequest", f"Requested value '{kind}' was not found.")
        result.append(
            {
                "type": kind,
                "status": {"response": "none", "time": _ZERO_TIME},
                "emailAddress": {
                    "name": address.get("name") or address["address"],
                    "address": address["address"],
                },
            }
        )
    return result


def _location(value: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    if value is None:
        return {"displayName": "", "locationType": "default", "uniqueIdType": "unknown"}, []
    if not isinstance(value, dict):
        raise GraphError(400, "ErrorInvalidRequest", "The 'location' property must be a location.")
    name = str(value.get("displayName") or "")
    location = {
        "displayName": name,
        "locationType": value.get("locationType") or "default",
        "uniqueId": name,
        "uniqueIdType": "private",
    }
    if value.get("address"):
        location["address"] = value["address"]
    return location, ([location] if name else [])


def _online(event: dict[str, Any], mailbox: dict[str, Any], provider: str | None) -> None:
    """Turn a stored event into a Teams meeting when the mailbox supports it (work accounts only)."""
    if mailbox["kind"] != "work" or (provider or "teamsForBusiness") != "teamsForBusiness":
        event["isOnlineMeeting"] = False
        event["onlineMeetingProvider"] = "unknown"
        event["onlineMeeting"] = None
        return
    thread = random_b64(24)
    join_url = (
        f"https://teams.microsoft.com/l/meetup-join/19%3ameeting_{thread}%40thread.v2/0?context="
        + urllib.parse.quote(json.dumps({"Tid": mailbox["tenant_id"], "Oid": mailbox["id"]}, separators=(",", ":")))
    )
    conference_id = "".join(str(int(c, 16) % 10) for c in random_hex(12))
    event["isOnlineMeeting"] = True
    event["onlineMeetingProvider"] = "teamsForBusiness"
    event["onlineMeeting"] = {"joinUrl": join_url, "conferenceId": conference_id, "tollNumber": None}
    event["body"]["content"] = _with_teams_block(event["body"]["content"], join_url, conference_id)


def _touch(state: State, event: dict[str, Any]) -> None:
    event["lastModifiedDateTime"] = iso_utc(state.now())
    event["changeKey"] = random_b64(30)


def _save(state: State, event: dict[str, Any], folder: str = "calendar") -> None:
    seq_rows = state.execute("SELECT seq FROM events WHERE id = ?", (event["immutableId"],))
    seq = seq_rows[0][0] if seq_rows else state.next_seq("events")
    state.execute(
        "INSERT OR REPLACE INTO events (id, rest_id, mailbox_id, transaction_id, ical_uid, folder, seq, doc) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            event["immutableId"],
            event["restId"],
            event["mailboxId"],
            event.get("transactionId"),
            event["iCalUId"],
            folder,
            seq,
            json.dumps(event),
        ),
    )


def _load(state: State, mailbox: dict[str, Any], event_id: str) -> tuple[dict[str, Any], str]:
    rows = state.execute(
        "SELECT doc, folder FROM events WHERE mailbox_id = ? AND (id = ? OR rest_id = ?)",
        (mailbox["id"], event_id, event_id),
    )
    if not rows:
        raise _not_found()
    event, folder = json.loads(rows[0][0]), rows[0][1]
    if folder != "calendar" and event_id != event["immutableId"]:
        raise _not_found()  # the regular id changed when the item moved to Deleted Items
    return event, folder


# --- recurring series ----------------------------------------------------------------------------------

#: What an update of one occurrence may change (kept in its master's ``_exceptions``).
_EXCEPTION_FIELDS = (
    "subject", "body", "location", "locations", "attendees", "importance", "sensitivity", "showAs",
    "isReminderOn", "reminderMinutesBeforeStart", "_startUtc", "_endUtc",
)  # fmt: skip
#: Where Exchange's global object id carries an occurrence's original date (zeros in a master's).
_ICAL_DATE = slice(32, 40)
_OCCURRENCE_ID_PREFIX = "AAMkAGOcc"


def _recurrence(body: dict[str, Any]) -> dict[str, Any] | None:
    """The request's recurrence as Graph stores it (zone from the start when the range names none), or None."""
    value = body.get("recurrence")
    if value is None:
        return None
    try:
        return normalise(value, ((body.get("start") or {}).get("timeZone")) or "UTC")
    except RecurrenceError as error:
        raise GraphError(400, "ErrorInvalidRequest", str(error)) from error


def _occurrence_id(master_id: str, day: dt.date) -> str:
    """An occurrence's id: opaque to clients, made from its master's id and its original date."""
    payload = f"{master_id}|{day.isoformat()}".encode()
    return _OCCURRENCE_ID_PREFIX + base64.urlsafe_b64encode(payload).decode()


def _parse_occurrence_id(event_id: str) -> tuple[str, dt.date] | None:
    if not event_id.startswith(_OCCURRENCE_ID_PREFIX):
        return None
    try:
        master_id, _, day = base64.urlsafe_b64decode(event_id[len(_OCCURRENCE_ID_PREFIX) :]).decode().rpartition("|")
        return master_id, dt.date.fromisoformat(day)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def _series(master: dict[str, Any]) -> Series:
    zone = resolve_zone(master["recurrence"]["range"]["recurrenceTimeZone"]) or ZoneInfo("UTC")
    return Series(
        master["recurrence"],
        zone,
        dt.datetime.fromisoformat(master["_startUtc"]),
        dt.datetime.fromisoformat(master["_endUtc"]),
    )


def _occurrence(
    master: dict[str, Any], day: dt.date, original_start: dt.datetime, duration: dt.timedelta
) -> dict[str, Any]:
    """One occurrence of a series, stored-event shaped: the master's properties, then its exception's changes."""
    exception = (master.get("_exceptions") or {}).get(day.isoformat(), {})
    occurrence = {k: v for k, v in master.items() if k not in ("_exceptions", "_createPayload")}
    occurrence.update(
        immutableId=_occurrence_id(master["immutableId"], day),
        restId=_occurrence_id(master["restId"], day),
        _masterIds=[master["immutableId"], master["restId"]],
        _day=day.isoformat(),
        _startUtc=original_start.isoformat(),
        _endUtc=(original_start + duration).isoformat(),
        type="exception" if exception.get("changes") else "occurrence",
        recurrence=None,
        transactionId=None,
        originalStart=original_start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        iCalUId=master["iCalUId"][: _ICAL_DATE.start]
        + f"{day.year:04X}{day.month:02X}{day.day:02X}"
        + master["iCalUId"][_ICAL_DATE.stop :],
    )
    occurrence.update(exception.get("changes") or {})
    if exception.get("cancelled"):
        occurrence["isCancelled"] = True
        if not occurrence["subject"].startswith("Canceled: "):
            occurrence["subject"] = "Canceled: " + occurrence["subject"]
    return occurrence


def _visible(event: dict[str, Any]) -> bool:
    """Whether an event shows in its mailbox's calendar: a cancelled occurrence leaves the organizer's."""
    return not (event.get("_masterIds") and event["isCancelled"] and event["isOrganizer"])


def _expand(master: dict[str, Any], start: dt.datetime, end: dt.datetime) -> list[dict[str, Any]]:
    """The occurrences of a series that overlap ``[start, end)``, exceptions at their own (maybe moved) times."""
    series = _series(master)
    days = dict(series.between(start, end))
    for day_text, exception in (master.get("_exceptions") or {}).items():
        day = dt.date.fromisoformat(day_text)
        if "_startUtc" in exception.get("changes", {}) and day not in days:
            original = series.start_on(day)
            if original is not None:
                days[day] = original
    occurrences = [_occurrence(master, day, begins, series.duration) for day, begins in days.items()]
    return [
        occurrence
        for occurrence in occurrences
        if _visible(occurrence)
        and dt.datetime.fromisoformat(occurrence["_startUtc"]) < end
        and dt.datetime.fromisoformat(occurrence["_endUtc"]) > start
    ]


def _resolve(state: State, mailbox: dict[str, Any], event_id: str) -> tuple[dict[str, Any], str, dict[str, Any] | None]:
    """(event, folder, its series master) for an id: a stored event (master None), or an occurrence of one."""
    try:
        event, folder = _load(state, mailbox, event_id)
        return event, folder, None
    except GraphError:
        parsed = _parse_occurrence_id(event_id)
        if parsed is None:
            raise
    master_id, day = parsed
    master, folder = _load(state, mailbox, master_id)
    series = _series(master) if master.get("recurrence") else None
    original = series.start_on(day) if series else None
    if series is None or original is None:
        raise _not_found()
    occurrence = _occurrence(master, day, original, series.duration)
    if not _visible(occurrence):
        raise _not_found()
    return occurrence, folder, master


def _record_exception(
    state: State, master: dict[str, Any], day: str, changes: dict[str, Any] | None = None, cancelled: bool = False
) -> None:
    """Record an occurrence's changed properties (or its cancellation) in its master, and pass it on to attendees."""
    entry = master.setdefault("_exceptions", {}).setdefault(day, {})
    entry.setdefault("changes", {}).update(changes or {})
    entry["cancelled"] = entry.get("cancelled", False) or cancelled
    _touch(state, master)
    with state.transaction():
        _save(state, master)
        if master["isOrganizer"]:
            _sync_attendee_copies(state, master)


def _validate_times(event: dict[str, Any]) -> None:
    if event["_endUtc"] < event["_startUtc"]:
        raise GraphError(
            400,
            "ErrorCalendarEndDateIsEarlierThanStartDate",
            "The end date you entered occurs before the start date.",
        )


def _set_times(event: dict[str, Any], body: dict[str, Any]) -> None:
    if "start" in body:
        event["_startUtc"] = _parse_dtz(body["start"], "start").isoformat()
        event["originalStartTimeZone"] = body["start"].get("timeZone") or "UTC"
    if "end" in body:
        event["_endUtc"] = _parse_dtz(body["end"], "end").isoformat()
        event["originalEndTimeZone"] = body["end"].get("timeZone") or "UTC"
    _validate_times(event)


def _body_preview(content: str) -> str:
    text = html_to_text(content.split(_TEAMS_MARKER)[0])
    return text[:255]


def _render(
    request: Request,
    event: dict[str, Any],
    prefs: Preferences,
    mailbox: dict[str, Any],
    zones: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """An event as Graph returns it, in the caller's preferred id type and time zone (``zones``, the start's
    and the end's, where no zone was preferred)."""
    public = {key: value for key, value in event.items() if not key.startswith("_") and key not in _PRIVATE}
    public["id"] = event["immutableId"] if prefs.immutable_ids else event["restId"]
    if "_masterIds" in event:
        master_id = event["_masterIds"][0 if prefs.immutable_ids else 1]
        public["seriesMasterId"] = master_id
        public["occurrenceId"] = f"OID.{master_id}.{event['_day']}"
    start_zone, end_zone = zones if zones and not prefs.zone_preferred else (prefs.time_zone, prefs.time_zone)
    public["start"] = _format_dtz(dt.datetime.fromisoformat(event["_startUtc"]), start_zone)
    public["end"] = _format_dtz(dt.datetime.fromisoformat(event["_endUtc"]), end_zone)
    public["bodyPreview"] = _body_preview(event["body"]["content"])
    if prefs.text_body:
        public["body"] = {"contentType": "text", "content": html_to_text(event["body"]["content"])}
    host = "outlook.office365.com" if mailbox["kind"] == "work" else "outlook.live.com"
    public["webLink"] = (
        f"https://{host}/owa/?itemid={urllib.parse.quote(public['id'], safe='')}&exvsurl=1&path=/calendar/item"
    )
    public["@odata.etag"] = f'W/"{event["changeKey"]}"'
    owner = f"users('{mailbox['upn']}')" if "user" in request.path_params else "users('me')"
    return {"@odata.context": f"{GRAPH_ROOT}/$metadata#{owner}/events/$entity", **public}


_PRIVATE = {"immutableId", "restId", "mailboxId"}


def _select(rendered: dict[str, Any], select: str | None) -> dict[str, Any]:
    if not select:
        return rendered
    wanted = {name.strip() for name in select.split(",") if name.strip()} | {"id"}
    return {key: value for key, value in rendered.items() if key in wanted or key.startswith("@odata")}


def _event_response(
    request: Request, event: dict[str, Any], prefs: Preferences, mailbox: dict[str, Any], status: int = 200
) -> Response:
    # A create answers, unless a zone is preferred, in the zones its request gave (the event's original ones).
    zones = (event["originalStartTimeZone"], event["originalEndTimeZone"]) if status == 201 else None
    rendered = _select(_render(request, event, prefs, mailbox, zones), request.query_params.get("$select"))
    headers = prefs.headers()
    if status == 201:
        headers["Location"] = f"{GRAPH_ROOT}/users('{mailbox['id']}')/events('{rendered['id']}')"
    return json_response(rendered, status=status, headers=headers)


# --- attendee copies -----------------------------------------------------------------------------------


def _sync_attendee_copies(state: State, organizer_event: dict[str, Any], cancelled: bool = False) -> None:
    """Give every attendee who is a sandbox mailbox an up-to-date copy of the organizer's meeting."""
    invited = {a["emailAddress"]["address"].lower() for a in organizer_event["attendees"]}
    copies = state.docs(
        "SELECT doc FROM events WHERE ical_uid = ? AND mailbox_id != ? AND folder = 'calendar'",
        (organizer_event["iCalUId"], organizer_event["mailboxId"]),
    )
    by_mailbox = {copy["mailboxId"]: copy for copy in copies}
    mailboxes = {m["upn"].lower(): m for m in state.docs("SELECT doc FROM mailboxes")}
    for upn in invited | {m["upn"].lower() for m in mailboxes.values() if m["id"] in by_mailbox}:
        mailbox = mailboxes.get(upn)
        if mailbox is None:
            continue
        copy = by_mailbox.get(mailbox["id"])
        removed = upn not in invited
        if copy is None:
            if cancelled or removed:
                continue
            rest_id, immutable_id = _new_ids(mailbox["id"])
            copy = {"restId": rest_id, "immutableId": immutable_id, "mailboxId": mailbox["id"]}
            copy["createdDateTime"] = iso_utc(state.now())
        for key, value in organizer_event.items():
            if key not in ("restId", "immutableId", "mailboxId", "createdDateTime", "transactionId", "_createPayload"):
                copy[key] = value
        copy.pop("transactionId", None)
        copy["isOrganizer"] = False
        copy["responseStatus"] = {"response": "notResponded", "time": _ZERO_TIME}
        if cancelled or removed:
            copy["isCancelled"] = True
            copy["subject"] = "Canceled: " + (organizer_event.get("subject") or "")
        _touch(state, copy)
        _save(state, copy)


# --- handlers ------------------------------------------------------------------------------------------


def graph_route(handler: Any) -> Any:
    """Wrap a handler: authenticate, resolve the mailbox, turn GraphError into Graph's envelope."""

    async def endpoint(request: Request) -> Response:
        state = state_of(request)
        try:
            mailbox, _grant = _mailbox_for(request, state)
            return await handler(request, state, mailbox, Preferences(request))
        except GraphError as error:
            return error.response(request)

    endpoint.__name__ = handler.__name__
    return endpoint


@graph_route
async def create_event(request: Request, state: State, mailbox: dict[str, Any], prefs: Preferences) -> Response:
    event = insert_event(state, mailbox, await _json_body(request))
    return _event_response(request, event, prefs, mailbox, status=201)


def insert_event(state: State, mailbox: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """Create an event in a mailbox from a request body as Graph takes it (the create route, and the control
    API's seed); an earlier event with the same ``transactionId`` and payload is returned instead.

    Raises GraphError for a body Graph refuses."""
    transaction_id = body.get("transactionId")
    if transaction_id:
        existing = state.doc(
            "SELECT doc FROM events WHERE mailbox_id = ? AND transaction_id = ?",
            (mailbox["id"], transaction_id),
        )
        if existing is not None:
            if existing.get("_createPayload") != _payload_digest(body):
                raise _duplicate_transaction_id()
            return existing
        if state.execute(
            "SELECT 1 FROM spent_transaction_ids WHERE mailbox_id = ? AND transaction_id = ?",
            (mailbox["id"], transaction_id),
        ):
            raise _duplicate_transaction_id()
    if "start" not in body or "end" not in body:
        raise GraphError(
            400, "ErrorInvalidRequest", "Your request can't be completed. A start and an end are required."
        )
    recurrence = _recurrence(body)
    now = state.now()
    rest_id, immutable_id = _new_ids(mailbox["id"])
    ical = "040000008200E00074C5B7101A82E00800000000" + random_hex(72).upper()
    location, locations = _location(body.get("location"))
    event: dict[str, Any] = {
        "restId": rest_id,
        "immutableId": immutable_id,
        "mailboxId": mailbox["id"],
        "createdDateTime": iso_utc(now),
        "lastModifiedDateTime": iso_utc(now),
        "changeKey": random_b64(30),
        "categories": list(body.get("categories") or []),
        "transactionId": transaction_id,
        "originalStartTimeZone": "UTC",
        "originalEndTimeZone": "UTC",
        "iCalUId": ical,
        "uid": ical,
        "reminderMinutesBeforeStart": int(body.get("reminderMinutesBeforeStart", 15)),
        "isReminderOn": bool(body.get("isReminderOn", True)),
        "hasAttachments": False,
        "subject": str(body.get("subject") or ""),
        "importance": body.get("importance") or "normal",
        "sensitivity": body.get("sensitivity") or "normal",
        "isAllDay": bool(body.get("isAllDay", False)),
        "isCancelled": False,
        "isOrganizer": True,
        "responseRequested": bool(body.get("responseRequested", True)),
        "seriesMasterId": None,
        "showAs": body.get("showAs") or "busy",
        "type": "seriesMaster" if recurrence else "singleInstance",
        "onlineMeetingUrl": None,
        "isOnlineMeeting": False,
        "onlineMeetingProvider": "unknown",
        "allowNewTimeProposals": bool(body.get("allowNewTimeProposals", True)),
        "occurrenceId": None,
        "isDraft": False,
        "hideAttendees": bool(body.get("hideAttendees", False)),
        "responseStatus": {"response": "organizer", "time": _ZERO_TIME},
        "body": {"contentType": "html", "content": _as_stored_html(body.get("body") or {"content": ""})},
        "location": location,
        "locations": locations,
        "recurrence": recurrence,
        "attendees": _attendees(body.get("attendees") or []),
        "organizer": {"emailAddress": {"name": mailbox["displayName"], "address": mailbox["upn"]}},
        "onlineMeeting": None,
        "_createPayload": _payload_digest(body),
    }
    _set_times(event, body)
    if body.get("isOnlineMeeting"):
        _online(event, mailbox, body.get("onlineMeetingProvider"))
    with state.transaction():
        _save(state, event)
        _sync_attendee_copies(state, event)
    return event


@graph_route
async def get_event(request: Request, state: State, mailbox: dict[str, Any], prefs: Preferences) -> Response:
    event, _folder, _master = _resolve(state, mailbox, request.path_params["event_id"])
    return _event_response(request, event, prefs, mailbox)


@graph_route
async def update_event(request: Request, state: State, mailbox: dict[str, Any], prefs: Preferences) -> Response:
    body = await _json_body(request)
    event, folder, master = _resolve(state, mailbox, request.path_params["event_id"])
    if folder != "calendar":
        raise _not_found()
    if "transactionId" in body and body["transactionId"] != event.get("transactionId"):
        raise GraphError(400, "ErrorInvalidRequest", "The transactionId of an event cannot be changed.")
    if master is not None:
        if "recurrence" in body:
            raise GraphError(400, "ErrorInvalidRequest", "The recurrence of an occurrence cannot be changed.")
        before = dict(event)
        _apply_update(event, body, mailbox)
        changes = {key: event[key] for key in _EXCEPTION_FIELDS if event.get(key) != before.get(key)}
        _record_exception(state, master, event["_day"], changes=changes)
        event["type"] = "exception"
        return _event_response(request, event, prefs, mailbox)
    if "recurrence" in body:
        event["recurrence"] = _recurrence({"start": {"timeZone": event["originalStartTimeZone"]}, **body})
        event["type"] = "seriesMaster" if event["recurrence"] else "singleInstance"
    _apply_update(event, body, mailbox)
    _touch(state, event)
    with state.transaction():
        _save(state, event)
        if event["isOrganizer"]:
            _sync_attendee_copies(state, event)
    return _event_response(request, event, prefs, mailbox)


def _apply_update(event: dict[str, Any], body: dict[str, Any], mailbox: dict[str, Any]) -> None:
    """Apply a PATCH body's properties to a stored event (or to an occurrence about to become an exception)."""
    for key in ("subject", "importance", "sensitivity", "showAs", "categories", "isReminderOn",
                "reminderMinutesBeforeStart", "responseRequested", "allowNewTimeProposals", "hideAttendees",
                "isAllDay"):  # fmt: skip
        if key in body:
            event[key] = body[key]
    if "location" in body:
        event["location"], event["locations"] = _location(body["location"])
    if "attendees" in body:
        event["attendees"] = _attendees(body["attendees"] or [])
    _set_times(event, body)
    if "body" in body:
        content = _as_stored_html(body["body"] or {"content": ""})
        join_url = (event.get("onlineMeeting") or {}).get("joinUrl")
        if event["isOnlineMeeting"] and join_url and join_url not in content:
            # Graph: "inadvertently removing the meeting blob from the body would disable meeting online".
            event["isOnlineMeeting"] = False
            event["onlineMeeting"] = None
        event["body"] = {"contentType": "html", "content": content}
    if body.get("isOnlineMeeting") and not event["isOnlineMeeting"]:
        _online(event, mailbox, body.get("onlineMeetingProvider"))


@graph_route
async def delete_event(request: Request, state: State, mailbox: dict[str, Any], prefs: Preferences) -> Response:
    event, folder, master = _resolve(state, mailbox, request.path_params["event_id"])
    if master is not None:
        _record_exception(state, master, event["_day"], cancelled=True)
        return Response(status_code=204)
    with state.transaction():
        if event["isOrganizer"] and folder == "calendar":
            _sync_attendee_copies(state, event, cancelled=True)
        state.execute("DELETE FROM events WHERE id = ?", (event["immutableId"],))
        if event.get("transactionId") and state.get_setting("graph_deleted_transaction_ids", "released") == "kept":
            state.execute(
                "INSERT OR IGNORE INTO spent_transaction_ids (mailbox_id, transaction_id) VALUES (?, ?)",
                (mailbox["id"], event["transactionId"]),
            )
    return Response(status_code=204)


@graph_route
async def cancel_event(request: Request, state: State, mailbox: dict[str, Any], prefs: Preferences) -> Response:
    body = await _json_body(request)
    event, folder, master = _resolve(state, mailbox, request.path_params["event_id"])
    if folder != "calendar":
        raise _not_found()
    if not event["isOrganizer"]:
        raise GraphError(
            400,
            "ErrorInvalidRequest",
            "Your request can't be completed. You need to be an organizer to cancel a meeting.",
        )
    if master is not None:
        _record_exception(state, master, event["_day"], cancelled=True)
        return Response(status_code=202)
    comment = body.get("Comment", body.get("comment"))
    event["isCancelled"] = True
    event["_cancelComment"] = comment
    event["restId"] = _new_ids(mailbox["id"])[0]  # moving to Deleted Items changes the regular id
    _touch(state, event)
    with state.transaction():
        _sync_attendee_copies(state, event, cancelled=True)
        _save(state, event, folder="deleteditems")
    return Response(status_code=202)


def _collection(
    request: Request, events: list[dict[str, Any]], prefs: Preferences, mailbox: dict[str, Any]
) -> Response:
    try:
        top = int(request.query_params.get("$top", str(prefs.page_size or 10)))
        skip = int(request.query_params.get("$skip", "0"))
    except ValueError as error:
        raise GraphError(400, "BadRequest", "Invalid $top or $skip value.") from error
    if top < 0 or skip < 0:
        raise GraphError(400, "BadRequest", "Invalid $top or $skip value.")
    page = events[skip : skip + top]
    select = request.query_params.get("$select")
    body: dict[str, Any] = {
        "@odata.context": f"{GRAPH_ROOT}/$metadata#users('{mailbox['upn']}')/events",
        "value": [_item(_select(_render(request, event, prefs, mailbox), select)) for event in page],
    }
    if skip + top < len(events):
        query = dict(request.query_params)
        query["$skip"] = str(skip + top)
        path = request.url.path
        body["@odata.nextLink"] = f"{request.url.scheme}://{request.url.netloc}{path}?{urllib.parse.urlencode(query)}"
    return json_response(body, headers=prefs.headers())


def _item(rendered: dict[str, Any]) -> dict[str, Any]:
    """An event inside a collection: Graph gives the context once, on the collection."""
    rendered.pop("@odata.context", None)
    return rendered


def _filter(events: list[dict[str, Any]], expression: str | None) -> list[dict[str, Any]]:
    """The subset of OData ``$filter`` the sandbox understands: ``prop eq 'value'`` joined by ``and``."""
    if not expression:
        return events
    clauses = []
    for clause in re.split(r"\s+and\s+", expression.strip(), flags=re.IGNORECASE):
        match = re.fullmatch(r"(\w+)\s+eq\s+'((?:[^']|'')*)'", clause.strip())
        if not match:
            raise GraphError(400, "ErrorInvalidUrlQueryFilter", "The query filter contains one or more invalid nodes.")
        clauses.append((match.group(1), match.group(2).replace("''", "'")))
    return [e for e in events if all(str(e.get(prop)) == value for prop, value in clauses)]


@graph_route
async def list_events(request: Request, state: State, mailbox: dict[str, Any], prefs: Preferences) -> Response:
    events = state.docs(
        "SELECT doc FROM events WHERE mailbox_id = ? AND folder = 'calendar' ORDER BY seq", (mailbox["id"],)
    )
    return _collection(request, _filter(events, request.query_params.get("$filter")), prefs, mailbox)


@graph_route
async def calendar_view(request: Request, state: State, mailbox: dict[str, Any], prefs: Preferences) -> Response:
    start_text = request.query_params.get("startDateTime") or request.query_params.get("StartDateTime")
    end_text = request.query_params.get("endDateTime") or request.query_params.get("EndDateTime")
    if not start_text or not end_text:
        raise GraphError(
            400,
            "ErrorInvalidParameter",
            "This request requires a time window specified by the query string parameters StartDateTime and "
            "EndDateTime.",
        )
    # The window is read with the offset it carries, or as UTC: never in the Prefer header's zone.
    window_start = _parse_dtz({"dateTime": start_text, "timeZone": "UTC"}, "startDateTime")
    window_end = _parse_dtz({"dateTime": end_text, "timeZone": "UTC"}, "endDateTime")
    events: list[dict[str, Any]] = []
    for event in state.docs(
        "SELECT doc FROM events WHERE mailbox_id = ? AND folder = 'calendar' ORDER BY seq", (mailbox["id"],)
    ):
        if event.get("recurrence"):
            events += _expand(event, window_start, window_end)
        elif (
            dt.datetime.fromisoformat(event["_startUtc"]) < window_end
            and dt.datetime.fromisoformat(event["_endUtc"]) > window_start
        ):
            events.append(event)
    events.sort(key=lambda event: (dt.datetime.fromisoformat(event["_startUtc"]), event["immutableId"]))
    return _collection(request, events, prefs, mailbox)


def _routes() -> list[Route]:
    result = []
    for owner in ("/v1.0/me", "/v1.0/users/{user}"):
        result += [
            Route(f"{owner}/events", list_events, methods=["GET"]),
            Route(f"{owner}/events", create_event, methods=["POST"]),
            Route(f"{owner}/events/{{event_id}}", get_event, methods=["GET"]),
            Route(f"{owner}/events/{{event_id}}", update_event, methods=["PATCH"]),
            Route(f"{owner}/events/{{event_id}}", delete_event, methods=["DELETE"]),
            Route(f"{owner}/events/{{event_id}}/cancel", cancel_event, methods=["POST"]),
            Route(f"{owner}/calendarView", calendar_view, methods=["GET"]),
        ]
    return result


routes = _routes()

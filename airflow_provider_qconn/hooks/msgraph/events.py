"""The calendar's data: what operators send (:class:`EventDetails`), what they get back (:class:`Meeting`, and
:class:`CalendarEntry` from a calendar view), the Graph request body built from the one, and the Teams block a
body update must keep."""

from __future__ import annotations

import datetime as dt
import html
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from airflow_provider_qconn.normalise import EmailAddress

#: Outlook's Teams block is framed by lines of underscores; Graph warns that dropping it turns the meeting off.
_TEAMS_BLOCK_RULE = re.compile(r"_{30,}")


@dataclass(frozen=True)
class EventDetails:
    """The event properties an operator sets; None means "not given" (an update keeps the current value)."""

    subject: str | None = None
    content: str | None = None
    content_type: str = "html"
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    location: str | None = None
    attendees: tuple[EmailAddress, ...] | None = None
    teams_meeting: bool | None = None


@dataclass(frozen=True)
class Meeting:
    """What Graph says about an event after a create or an update."""

    #: The event properties it is read from.
    GRAPH_PROPERTIES: ClassVar[tuple[str, ...]] = (
        "id",
        "webLink",
        "onlineMeeting",
        "iCalUId",
        "isCancelled",
        "isOnlineMeeting",
    )

    id: str
    web_link: str | None
    join_url: str | None
    ical_uid: str | None
    is_cancelled: bool
    is_online_meeting: bool

    @classmethod
    def from_graph(cls, event: Mapping[str, Any]) -> Meeting:
        return cls(
            id=str(event["id"]),
            web_link=event.get("webLink"),
            join_url=(event.get("onlineMeeting") or {}).get("joinUrl"),
            ical_uid=event.get("iCalUId"),
            is_cancelled=bool(event.get("isCancelled")),
            is_online_meeting=bool(event.get("isOnlineMeeting")),
        )


@dataclass(frozen=True)
class Attendance:
    """One attendee of a meeting as Graph lists it: address, display name, type and response."""

    email: str
    name: str | None
    type: str
    response: str


@dataclass(frozen=True)
class CalendarEntry:
    """A meeting (a single one, or one occurrence of a series) as a calendar view lists it."""

    #: The event properties it is read from (besides ``id``, which Graph always returns).
    GRAPH_PROPERTIES: ClassVar[tuple[str, ...]] = (
        "subject",
        "start",
        "end",
        "location",
        "webLink",
        "onlineMeeting",
        "organizer",
        "attendees",
        "isCancelled",
        "seriesMasterId",
    )

    id: str
    series_id: str | None
    subject: str
    start: dt.datetime
    end: dt.datetime
    location: str | None
    web_link: str | None
    join_url: str | None
    organizer: str | None
    attendees: tuple[Attendance, ...]
    is_cancelled: bool

    @classmethod
    def from_graph(cls, event: Mapping[str, Any]) -> CalendarEntry:
        attendees = tuple(
            Attendance(
                email=str((item.get("emailAddress") or {}).get("address") or ""),
                name=(item.get("emailAddress") or {}).get("name") or None,
                type=str(item.get("type") or "required"),
                response=str((item.get("status") or {}).get("response") or "none"),
            )
            for item in event.get("attendees") or []
        )
        return cls(
            id=str(event["id"]),
            series_id=event.get("seriesMasterId") or None,
            subject=str(event.get("subject") or ""),
            start=graph_moment(event["start"]),
            end=graph_moment(event["end"]),
            location=(event.get("location") or {}).get("displayName") or None,
            web_link=event.get("webLink"),
            join_url=(event.get("onlineMeeting") or {}).get("joinUrl"),
            organizer=((event.get("organizer") or {}).get("emailAddress") or {}).get("address"),
            attendees=attendees,
            is_cancelled=bool(event.get("isCancelled")),
        )


def graph_moment(value: Mapping[str, Any]) -> dt.datetime:
    """An aware datetime from a ``dateTimeTimeZone`` (Graph writes seven decimals; its zone is a Windows or
    IANA name)."""
    from zoneinfo import ZoneInfo

    from tzlocal.windows_tz import win_tz

    text = re.sub(r"(\.\d{6})\d+", r"\1", str(value["dateTime"]).replace("Z", "+00:00"))
    name = str(value.get("timeZone") or "UTC")
    moment = dt.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(win_tz.get(name, name)))
    return moment


def graph_date_time(moment: dt.datetime) -> tuple[str, str]:
    """A ``dateTimeTimeZone`` (local time, Windows zone name) for an aware datetime.

    A named IANA zone is kept (as Outlook's Windows name, so the event shows its organizer's zone); a fixed
    offset or an unknown zone is converted to UTC.
    """
    from tzlocal.windows_tz import tz_win

    key = getattr(moment.tzinfo, "key", None) or getattr(moment.tzinfo, "name", None)
    windows_name = tz_win.get(key) if isinstance(key, str) else None
    if windows_name is None:
        moment, windows_name = moment.astimezone(dt.timezone.utc), "UTC"
    return moment.replace(tzinfo=None).isoformat(timespec="seconds"), windows_name


def teams_block(body_html: str) -> str | None:
    """The Teams block of an event body (between Outlook's two rules of underscores, with their ``div``)."""
    rules = list(_TEAMS_BLOCK_RULE.finditer(body_html))
    if not rules:
        return None
    start = body_html.rfind("<div", 0, rules[0].start())
    start = rules[0].start() if start < 0 else start
    end = len(body_html)
    if len(rules) > 1:
        close = body_html.find("</div>", rules[-1].end())
        end = close + len("</div>") if close >= 0 else rules[-1].end()
    else:
        body_end = body_html.lower().rfind("</body>")
        end = body_end if body_end > start else end
    return body_html[start:end]


def with_teams_block(content: str, content_type: str, block: str) -> str:
    """New body content (as HTML) with an event's Teams block appended, where Outlook keeps it."""
    if content_type == "text":
        content = html.escape(content).replace("\n", "<br>\n")
    body_end = content.lower().rfind("</body>")
    if body_end >= 0:
        return content[:body_end] + block + content[body_end:]
    return content + block


def graph_event(details: EventDetails, transaction_id: str | None = None) -> dict[str, Any]:
    """Graph's JSON for an ``event`` with only the given properties set (the others are left out, so an update
    keeps them), as msgraph-sdk's ``Event`` model serialises it."""
    event: dict[str, Any] = {"@odata.type": "#microsoft.graph.event"}
    if details.attendees is not None:
        event["attendees"] = [
            {
                "emailAddress": {
                    "address": attendee.address,
                    **({} if attendee.name is None else {"name": attendee.name}),
                },
                "@odata.type": "#microsoft.graph.attendee",
                "type": "required",
            }
            for attendee in details.attendees
        ]
    if details.content is not None:
        event["body"] = {
            "content": details.content,
            "contentType": "text" if details.content_type == "text" else "html",
        }
    if details.end is not None:
        date_time, zone = graph_date_time(details.end)
        event["end"] = {"dateTime": date_time, "timeZone": zone}
    if details.teams_meeting is not None:
        event["isOnlineMeeting"] = details.teams_meeting
    if details.location is not None:
        event["location"] = {"displayName": details.location}
    if details.teams_meeting:
        event["onlineMeetingProvider"] = "teamsForBusiness"
    if details.start is not None:
        date_time, zone = graph_date_time(details.start)
        event["start"] = {"dateTime": date_time, "timeZone": zone}
    if details.subject is not None:
        event["subject"] = details.subject
    if transaction_id is not None:
        event["transactionId"] = transaction_id
    return event

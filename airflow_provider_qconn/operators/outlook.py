"""Outlook operators (Qflow's "Outlook" connector): schedule, update and cancel a meeting through Microsoft Graph,
and list a mailbox's meetings in a window.

Each operator validates its (rendered) parameters before any request, makes one hook call, and returns a dict
that ``multiple_outputs`` turns into one XCom per key (``schedule.output["meeting_id"]``).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from airflow.sdk import BaseOperator, Context

from airflow_provider_qconn.exceptions import MeetingStateError, NonRetryableApiError
from airflow_provider_qconn.links.outlook import OutlookEventLink, TeamsMeetingLink

if TYPE_CHECKING:
    from airflow_provider_qconn.hooks.msgraph import CalendarEntry, EventDetails, Meeting, MSGraphHook

# The hook, its SDKs and the input rules are imported where a task runs, never where a DAG is parsed.

#: MSGraphHook.default_conn_name, without importing the hook.
DEFAULT_MSGRAPH_CONN_ID = "qconn_msgraph_default"

CONTENT_TYPES = ("html", "text")
#: The namespace of the transactionIds derived from task instances (a uuid5 of the task instance's identity).
TRANSACTION_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/qconn/airflow-provider-qconn/transaction")
NO_JOIN_URL_COMMENT = "This meeting was cancelled because Microsoft Teams could not be added to it."


def transaction_id(context: Context) -> str:
    """Graph's ``transactionId`` for this task instance: the same for every try, so a create is never repeated."""
    from airflow_provider_qconn.task_instance import TaskInstanceIdentity

    return str(uuid.uuid5(TRANSACTION_NAMESPACE, TaskInstanceIdentity.of(context).text))


def _outputs(operator: _MeetingOperator, meeting: Meeting) -> dict[str, Any]:
    operator.last_outputs = {
        "meeting_id": meeting.id,
        "web_link": meeting.web_link,
        "join_url": meeting.join_url,
        "ical_uid": meeting.ical_uid,
    }
    return operator.last_outputs


class _MeetingOperator(BaseOperator):
    """What the three operators share: the connection id, the hook, and multiple outputs."""

    template_fields_renderers = {"content": "html"}
    ui_color = "#cce4f7"

    def __init__(self, *, msgraph_conn_id: str = DEFAULT_MSGRAPH_CONN_ID, **kwargs: Any) -> None:
        super().__init__(multiple_outputs=True, **kwargs)
        self.msgraph_conn_id = msgraph_conn_id
        #: What the last execute() returned (the extra links read it).
        self.last_outputs: dict[str, Any] = {}

    @cached_property
    def hook(self) -> MSGraphHook:
        from airflow_provider_qconn.hooks.msgraph import MSGraphHook

        return MSGraphHook(self.msgraph_conn_id)


class ScheduleMeetingOperator(_MeetingOperator):
    """Schedule an Outlook meeting (``POST .../events``), optionally a Microsoft Teams meeting.

    A new try or a cleared task of the same task instance sends the same ``transactionId``, so Graph returns the
    meeting the first try created instead of creating another (its details as they are now). When the rendered
    parameters changed since, Graph refuses the create; the task then reads that meeting by its transactionId,
    returns it and logs a warning that the new parameters were NOT applied (use UpdateMeetingOperator for that).
    If that meeting has been cancelled (or deleted, where Graph keeps its transactionId) the task fails.

    :param start: when it starts: an aware datetime, or an ISO 8601 string; naive values are read in ``time_zone``.
    :param end: when it ends (after ``start``), in the same forms.
    :param subject: the title.
    :param attendees: e-mail addresses (``a@x.com`` or ``Name <a@x.com>``), as a list or one string separated by
        ``,`` or ``;``; each is invited as a required attendee.
    :param location: where (a display name such as a room).
    :param teams_meeting: add a Microsoft Teams meeting (work or school mailboxes only).
    :param content: the invitation's body.
    :param time_zone: the IANA zone of naive ``start``/``end`` values (default ``UTC``).
    :param content_type: ``"html"`` (default) or ``"text"``.
    :param require_join_url: when a Teams meeting was asked for and Graph gave no join URL (personal accounts),
        cancel the new meeting and fail; by default a warning is logged and ``join_url`` is None.
    :param msgraph_conn_id: a ``qconn_msgraph`` connection.

    Returns ``meeting_id`` (an immutable Graph event id), ``web_link``, ``join_url`` and ``ical_uid``.
    """

    operator_extra_links = (OutlookEventLink(), TeamsMeetingLink())
    template_fields: Sequence[str] = (
        "start",
        "end",
        "subject",
        "attendees",
        "location",
        "teams_meeting",
        "content",
        "time_zone",
        "content_type",
        "require_join_url",
        "msgraph_conn_id",
    )

    def __init__(
        self,
        *,
        start: Any,
        end: Any,
        subject: str = "",
        attendees: Any = None,
        location: str | None = None,
        teams_meeting: Any = False,
        content: str | None = None,
        time_zone: str = "UTC",
        content_type: str = "html",
        require_join_url: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.start = start
        self.end = end
        self.subject = subject
        self.attendees = attendees
        self.location = location
        self.teams_meeting = teams_meeting
        self.content = content
        self.time_zone = time_zone
        self.content_type = content_type
        self.require_join_url = require_join_url

    def details(self) -> EventDetails:
        """The rendered parameters, validated (InvalidParameterError names the first bad one)."""
        from airflow_provider_qconn import normalise
        from airflow_provider_qconn.hooks.msgraph import EventDetails

        start, end = normalise.time_range(self.start, self.end, self.time_zone)
        return EventDetails(
            subject=normalise.text(self.subject, "subject") or "",
            content=normalise.text(self.content, "content"),
            content_type=normalise.choice(self.content_type, "content_type", CONTENT_TYPES),
            start=start,
            end=end,
            location=normalise.text(self.location, "location"),
            attendees=tuple(normalise.email_addresses(self.attendees, "attendees")),
            teams_meeting=normalise.flag(self.teams_meeting, "teams_meeting", default=False),
        )

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_qconn import normalise

        details = self.details()
        require_join_url = normalise.flag(self.require_join_url, "require_join_url", default=False)
        try:
            meeting, as_asked = self._create(details, transaction_id(context))
            if meeting.is_cancelled:
                raise MeetingStateError(
                    f"meeting {meeting.id} was created by an earlier try of this task instance and has since been "
                    "cancelled; Graph de-duplicates creates by transactionId, so clearing the task cannot schedule "
                    "it again. Trigger a new DAG run to schedule a new meeting."
                )
            if as_asked and details.teams_meeting and not meeting.join_url:
                if require_join_url:
                    self.hook.cancel_event(meeting.id, NO_JOIN_URL_COMMENT)
                    raise MeetingStateError(
                        f"a Teams meeting was asked for but Graph returned no join URL (personal Microsoft "
                        f"accounts cannot host Teams meetings), so meeting {meeting.id} was cancelled "
                        "(require_join_url=True)."
                    )
                self.log.warning(
                    "A Teams meeting was asked for but Graph returned no join URL (personal Microsoft accounts "
                    "cannot host Teams meetings): meeting %s has no Teams link and join_url is None",
                    meeting.id,
                )
        finally:
            self.hook.close()
        self.log.info("Meeting %s scheduled: %s", meeting.id, meeting.web_link)
        return _outputs(self, meeting)

    def _create(self, details: EventDetails, key: str) -> tuple[Meeting, bool]:
        """The task instance's meeting, and whether it was made from ``details`` (False: an earlier try created
        it with other parameters, which stay as they were)."""
        from airflow_provider_qconn.hooks.msgraph import DUPLICATE_TRANSACTION_ID

        try:
            return self.hook.create_event(details, key), True
        except NonRetryableApiError as error:
            if error.code != DUPLICATE_TRANSACTION_ID:
                raise
            existing = self.hook.find_event(key)
            if existing is None:
                raise MeetingStateError(
                    "an earlier try of this task instance created a meeting with other parameters, and that meeting "
                    "is no longer in the calendar (cancelled or deleted); Graph de-duplicates creates by "
                    "transactionId and refuses one with other parameters, so clearing the task cannot schedule it "
                    "again. Trigger a new DAG run to schedule a new meeting."
                ) from error
        self.log.warning(
            "Meeting %s was created by an earlier try of this task instance with other parameters, and Graph "
            "creates one meeting per task instance: the parameters of this try were NOT applied, and the outputs "
            "are that meeting's as it is now. To apply them, update it with an UpdateMeetingOperator (or trigger a "
            "new DAG run for a new meeting).",
            existing.id,
        )
        return existing, False


class UpdateMeetingOperator(_MeetingOperator):
    """Change a meeting (``PATCH .../events/{id}``): only the parameters given are sent; the others keep their
    values. None or an empty string means "not given".

    ``attendees`` replaces the whole list (pass ``[]`` to remove everyone); Graph notifies only the attendees
    that changed. New ``content`` keeps the meeting's Teams block (the event is read first: one more request),
    because Graph turns a Teams meeting off when its body loses that block. A Teams meeting cannot be turned off
    (``teams_meeting=False`` on one is ignored by Graph, with a warning here).

    :param meeting_id: the Graph event id, e.g. ``schedule.output["meeting_id"]``.
    :param start: the new start (forms as for ScheduleMeetingOperator); with ``end``, ``end`` must follow it.
    :param end: the new end.
    :param subject: the new title.
    :param attendees: the new attendee list (replaces the current one).
    :param location: the new location.
    :param teams_meeting: True adds a Teams meeting to a meeting that has none.
    :param content: the new body.
    :param time_zone: the IANA zone of naive ``start``/``end`` values (default ``UTC``).
    :param content_type: ``"html"`` (default) or ``"text"``, for ``content``.
    :param msgraph_conn_id: a ``qconn_msgraph`` connection.

    Returns ``meeting_id``, ``web_link``, ``join_url`` and ``ical_uid``, as they are after the update.
    """

    operator_extra_links = (OutlookEventLink(), TeamsMeetingLink())
    template_fields: Sequence[str] = (
        "meeting_id",
        "start",
        "end",
        "subject",
        "attendees",
        "location",
        "teams_meeting",
        "content",
        "time_zone",
        "content_type",
        "msgraph_conn_id",
    )

    def __init__(
        self,
        *,
        meeting_id: Any,
        start: Any = None,
        end: Any = None,
        subject: str | None = None,
        attendees: Any = None,
        location: str | None = None,
        teams_meeting: Any = None,
        content: str | None = None,
        time_zone: str = "UTC",
        content_type: str = "html",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.meeting_id = meeting_id
        self.start = start
        self.end = end
        self.subject = subject
        self.attendees = attendees
        self.location = location
        self.teams_meeting = teams_meeting
        self.content = content
        self.time_zone = time_zone
        self.content_type = content_type

    def details(self) -> EventDetails:
        """The rendered parameters that were given, validated; the others stay None (unchanged)."""
        from airflow_provider_qconn import normalise
        from airflow_provider_qconn.hooks.msgraph import EventDetails

        start, end = normalise.optional_time_range(self.start, self.end, self.time_zone)
        attendees = normalise.optional_email_addresses(self.attendees, "attendees")
        return EventDetails(
            subject=normalise.text(self.subject, "subject") or None,
            content=normalise.text(self.content, "content") or None,
            content_type=normalise.choice(self.content_type, "content_type", CONTENT_TYPES),
            start=start,
            end=end,
            location=normalise.text(self.location, "location") or None,
            attendees=None if attendees is None else tuple(attendees),
            teams_meeting=normalise.flag(self.teams_meeting, "teams_meeting"),
        )

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_qconn import normalise
        from airflow_provider_qconn.hooks.msgraph import EventDetails

        meeting_id = normalise.identifier(self.meeting_id, "meeting_id")
        details = self.details()
        if details == EventDetails(content_type=details.content_type):
            self.log.warning("No parameter to change was given: meeting %s is left as it is", meeting_id)
        try:
            meeting = self.hook.update_event(meeting_id, details)
        finally:
            self.hook.close()
        if details.teams_meeting is False and meeting.is_online_meeting:
            self.log.warning("Meeting %s stays a Teams meeting: Graph cannot turn a Teams meeting off", meeting.id)
        if details.teams_meeting and not meeting.join_url:
            self.log.warning(
                "A Teams meeting was asked for but Graph returned no join URL (personal Microsoft accounts cannot "
                "host Teams meetings): join_url is None"
            )
        return _outputs(self, meeting)


class CancelMeetingOperator(_MeetingOperator):
    """Cancel a meeting (``POST .../events/{id}/cancel``): attendees get a cancellation with ``comment`` and the
    event moves to Deleted Items. Only the organizer's mailbox can cancel.

    :param meeting_id: the Graph event id, e.g. ``schedule.output["meeting_id"]``.
    :param comment: the message sent to the attendees with the cancellation.
    :param missing_ok: a meeting that is already gone (deleted, or cancelled, e.g. by an earlier try) counts as
        success with ``cancelled: False`` instead of failing the task.
    :param msgraph_conn_id: a ``qconn_msgraph`` connection.

    Returns ``meeting_id`` and ``cancelled``.
    """

    template_fields: Sequence[str] = ("meeting_id", "comment", "missing_ok", "msgraph_conn_id")

    def __init__(self, *, meeting_id: Any, comment: str | None = None, missing_ok: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.meeting_id = meeting_id
        self.comment = comment
        self.missing_ok = missing_ok

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_qconn import normalise
        from airflow_provider_qconn.hooks.msgraph import ITEM_NOT_FOUND

        meeting_id = normalise.identifier(self.meeting_id, "meeting_id")
        comment = normalise.text(self.comment, "comment") or None
        missing_ok = normalise.flag(self.missing_ok, "missing_ok", default=False)
        try:
            cancelled = self.hook.cancel_event(meeting_id, comment)
        except NonRetryableApiError as error:
            if error.status != 404 or error.code not in ITEM_NOT_FOUND:
                raise
            # On a later try (a retry, or a cleared task), a meeting that is now cancelled was cancelled by the
            # try before, which died before it could report it: that is this task's success.
            cancelled = context["ti"].try_number > 1 and self.hook.is_cancelled(meeting_id)
            if cancelled:
                self.log.info("Meeting %s is already cancelled: an earlier try of this task cancelled it", meeting_id)
            elif not missing_ok:
                raise
        finally:
            self.hook.close()
        return {"meeting_id": meeting_id, "cancelled": cancelled}


class ListMeetingsOperator(_MeetingOperator):
    """List the meetings of the connection's mailbox that overlap a window (``GET .../calendarView``), recurring
    ones expanded into their occurrences, in start order.

    By default the window is the run's data interval, so consecutive runs of a DAG on an interval timetable
    list disjoint windows that together cover every moment: each meeting start falls in exactly one run's
    window. A run without a data interval (Airflow 3's default cron timetable, a manual run) fails before any
    request unless ``start`` and ``end`` are given.

    :param start: the window's start (forms as for ScheduleMeetingOperator); default: the data interval's start.
    :param end: the window's end; default: the data interval's end. Give both or neither.
    :param time_zone: the IANA zone of naive ``start``/``end`` values and of the times returned (default ``UTC``).
    :param include_cancelled: also list meetings marked cancelled (an attendee's copy of a meeting its organizer
        cancelled stays in the attendee's calendar until removed); default False.
    :param subject_contains: only meetings whose subject contains this text, ignoring case.
    :param msgraph_conn_id: a ``qconn_msgraph`` connection.

    Returns ``meetings``: one dict per meeting or occurrence, with ``meeting_id``, ``series_id`` (None for a
    single meeting), ``subject``, ``start`` and ``end`` (ISO 8601 with the offset of ``time_zone``),
    ``time_zone``, ``location``, ``web_link``, ``join_url``, ``organizer`` (an address), ``attendees`` (each
    ``email``, ``name``, ``type``, ``response``) and ``is_cancelled``.
    """

    template_fields: Sequence[str] = (
        "start",
        "end",
        "time_zone",
        "include_cancelled",
        "subject_contains",
        "msgraph_conn_id",
    )

    def __init__(
        self,
        *,
        start: Any = None,
        end: Any = None,
        time_zone: str = "UTC",
        include_cancelled: Any = False,
        subject_contains: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.start = start
        self.end = end
        self.time_zone = time_zone
        self.include_cancelled = include_cancelled
        self.subject_contains = subject_contains

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_qconn import normalise

        zone = normalise.zone(self.time_zone)
        interval = (context.get("data_interval_start"), context.get("data_interval_end"))
        start, end = normalise.listing_window(self.start, self.end, zone.key, interval)
        include_cancelled = normalise.flag(self.include_cancelled, "include_cancelled", default=False)
        wanted = (normalise.text(self.subject_contains, "subject_contains") or "").casefold()
        try:
            entries = self.hook.list_events(start, end)
        finally:
            self.hook.close()
        kept = [
            entry
            for entry in entries
            if (include_cancelled or not entry.is_cancelled) and wanted in entry.subject.casefold()
        ]
        kept.sort(key=lambda entry: (entry.start, entry.id))
        self.log.info(
            "%d meetings from %s to %s (%d of the %d listed left out: cancelled or without %r in the subject)",
            len(kept),
            start.isoformat(),
            end.isoformat(),
            len(entries) - len(kept),
            len(entries),
            wanted,
        )
        return {"meetings": [_listed(entry, zone) for entry in kept]}


def _listed(entry: CalendarEntry, zone: ZoneInfo) -> dict[str, Any]:
    """A meeting as ListMeetingsOperator returns it, its times in ``zone``."""
    return {
        "meeting_id": entry.id,
        "series_id": entry.series_id,
        "subject": entry.subject,
        "start": entry.start.astimezone(zone).isoformat(),
        "end": entry.end.astimezone(zone).isoformat(),
        "time_zone": zone.key,
        "location": entry.location,
        "web_link": entry.web_link,
        "join_url": entry.join_url,
        "organizer": entry.organizer,
        "attendees": [
            {"email": person.email, "name": person.name, "type": person.type, "response": person.response}
            for person in entry.attendees
        ],
        "is_cancelled": entry.is_cancelled,
    }

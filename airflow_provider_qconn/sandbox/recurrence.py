"""Recurring events as Graph expands them: a ``patternedRecurrence`` read, checked and turned into occurrences.

Graph describes a series by a pattern (``daily``, ``weekly``, ``absoluteMonthly``, ``relativeMonthly``,
``absoluteYearly``, ``relativeYearly``, each with an ``interval``) and a range (``endDate``, ``noEnd``,
``numbered``) starting on ``range.startDate``, at the series master's time of day, in the range's
``recurrenceTimeZone`` (the master's start zone when absent). Occurrences keep their local time of day
across daylight-saving changes, so the expansion runs on local wall times (dateutil's rrule) and each
occurrence is then placed in the zone.

Where Graph's own documentation is silent, Exchange's (which Graph's calendar sits on) decides:
``dayOfMonth`` beyond a month's last day means that month's last day (the ``DayOfMonth`` element of the EWS
reference), and a relative pattern with several days picks the ``index``-th of any of them in the month (the
first weekday, the last weekend day), and an ``interval`` is from 1 to 99 (the EWS reference's recurrence
patterns).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any
from zoneinfo import ZoneInfo

from dateutil import rrule

PATTERN_TYPES = ("daily", "weekly", "absoluteMonthly", "relativeMonthly", "absoluteYearly", "relativeYearly")
RANGE_TYPES = ("endDate", "noEnd", "numbered")
DAYS_OF_WEEK = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")
WEEK_INDEXES = {"first": 1, "second": 2, "third": 3, "fourth": 4, "last": -1}
#: Graph's value for a date it does not use (a ``noEnd`` or ``numbered`` range's ``endDate``).
NO_DATE = "0001-01-01"
_RRULE_DAYS = dict(
    zip(DAYS_OF_WEEK, (rrule.SU, rrule.MO, rrule.TU, rrule.WE, rrule.TH, rrule.FR, rrule.SA), strict=True)
)
_FREQUENCIES = {"daily": rrule.DAILY, "weekly": rrule.WEEKLY}
#: Patterns that need days of the week, a day of the month, a month.
_NEEDS_DAYS = {"weekly", "relativeMonthly", "relativeYearly"}
_NEEDS_DAY_OF_MONTH = {"absoluteMonthly", "absoluteYearly"}
_NEEDS_MONTH = {"absoluteYearly", "relativeYearly"}


class RecurrenceError(ValueError):
    """A recurrence Graph would refuse; the message says which property and why."""


def _integer(value: Any, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise RecurrenceError(f"The recurrence's '{name}' must be a whole number from {low} to {high}.")
    return value


def _date(value: Any, name: str) -> dt.date:
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError as error:
        raise RecurrenceError(f"The recurrence range's '{name}' must be a date (yyyy-MM-dd).") from error


def normalise(recurrence: Any, default_zone: str) -> dict[str, Any]:
    """A recurrence as Graph stores and returns it: every property present (unused ones 0, ``first``,
    ``sunday`` or ``0001-01-01``), names of days in lower case. Raises RecurrenceError for one Graph refuses."""
    if not isinstance(recurrence, dict):
        raise RecurrenceError("The 'recurrence' property must be a patternedRecurrence.")
    pattern, span = recurrence.get("pattern"), recurrence.get("range")
    if not isinstance(pattern, dict) or not isinstance(span, dict):
        raise RecurrenceError("A recurrence needs a pattern and a range.")
    kind = pattern.get("type")
    if kind not in PATTERN_TYPES:
        raise RecurrenceError(f"The recurrence pattern type must be one of {', '.join(PATTERN_TYPES)}.")
    days = [str(day).lower() for day in pattern.get("daysOfWeek") or []]
    if any(day not in DAYS_OF_WEEK for day in days):
        raise RecurrenceError("The recurrence's 'daysOfWeek' must name days of the week.")
    if kind in _NEEDS_DAYS and not days:
        raise RecurrenceError(f"A {kind} recurrence needs 'daysOfWeek'.")
    first_day = str(pattern.get("firstDayOfWeek") or "sunday").lower()
    index = str(pattern.get("index") or "first").lower()
    if first_day not in DAYS_OF_WEEK or index not in WEEK_INDEXES:
        raise RecurrenceError("The recurrence's 'firstDayOfWeek' or 'index' is not one Graph knows.")
    normalised_pattern = {
        "type": kind,
        "interval": _integer(pattern.get("interval", 1), "interval", 1, 99),
        "month": _integer(pattern.get("month") or 0, "month", 1 if kind in _NEEDS_MONTH else 0, 12),
        "dayOfMonth": _integer(
            pattern.get("dayOfMonth") or 0, "dayOfMonth", 1 if kind in _NEEDS_DAY_OF_MONTH else 0, 31
        ),
        "daysOfWeek": days,
        "firstDayOfWeek": first_day,
        "index": index,
    }
    range_kind = span.get("type")
    if range_kind not in RANGE_TYPES:
        raise RecurrenceError(f"The recurrence range type must be one of {', '.join(RANGE_TYPES)}.")
    start = _date(span.get("startDate"), "startDate")
    end = _date(span.get("endDate") or NO_DATE, "endDate")
    if range_kind == "endDate" and end < start:
        raise RecurrenceError("The recurrence range's 'endDate' must not be before its 'startDate'.")
    count = span.get("numberOfOccurrences") or 0
    normalised_range = {
        "type": range_kind,
        "startDate": start.isoformat(),
        "endDate": end.isoformat() if range_kind == "endDate" else NO_DATE,
        "recurrenceTimeZone": span.get("recurrenceTimeZone") or default_zone,
        "numberOfOccurrences": _integer(count, "numberOfOccurrences", 1, 2**31 - 1) if range_kind == "numbered" else 0,
    }
    return {"pattern": normalised_pattern, "range": normalised_range}


def rule(recurrence: dict[str, Any], time_of_day: dt.time) -> rrule.rrule:
    """The series as an rrule of local wall times (naive), from a recurrence :func:`normalise` returned."""
    pattern, span = recurrence["pattern"], recurrence["range"]
    kind = pattern["type"]
    options: dict[str, Any] = {
        "dtstart": dt.datetime.combine(dt.date.fromisoformat(span["startDate"]), time_of_day),
        "interval": pattern["interval"],
        "wkst": _RRULE_DAYS[pattern["firstDayOfWeek"]],
    }
    if kind in _NEEDS_DAYS:
        options["byweekday"] = [_RRULE_DAYS[day] for day in pattern["daysOfWeek"]]
    if kind in ("relativeMonthly", "relativeYearly"):
        options["bysetpos"] = WEEK_INDEXES[pattern["index"]]
    if kind in _NEEDS_DAY_OF_MONTH:
        day = pattern["dayOfMonth"]
        # The day itself where the month has it, else the month's last day (the earlier of the two candidates).
        options["bymonthday"] = (day,) if day <= 28 else (day, -1)
        if day > 28:
            options["bysetpos"] = 1
    if kind in _NEEDS_MONTH:
        options["bymonth"] = pattern["month"]
    if span["type"] == "endDate":
        options["until"] = dt.datetime.combine(dt.date.fromisoformat(span["endDate"]), dt.time.max)
    elif span["type"] == "numbered":
        options["count"] = span["numberOfOccurrences"]
    frequency = _FREQUENCIES.get(kind, rrule.MONTHLY if kind.endswith("Monthly") else rrule.YEARLY)
    return rrule.rrule(frequency, **options)


class Series:
    """A series master's occurrences: their original dates (local, in the series' zone) and UTC times."""

    def __init__(self, recurrence: dict[str, Any], zone: ZoneInfo, start_utc: dt.datetime, end_utc: dt.datetime):
        self.zone = zone
        self.duration = end_utc - start_utc
        local_start = start_utc.astimezone(zone)
        self.rule = rule(recurrence, local_start.time().replace(tzinfo=None))

    def _utc(self, local: dt.datetime) -> dt.datetime:
        return local.replace(tzinfo=self.zone).astimezone(dt.timezone.utc)

    def between(self, start_utc: dt.datetime, end_utc: dt.datetime) -> Iterator[tuple[dt.date, dt.datetime]]:
        """(original date, start in UTC) of the occurrences that overlap ``[start_utc, end_utc)``."""
        # Local bounds with a day's margin (no zone is more than 14 hours from UTC), then the exact UTC test.
        earliest = (start_utc - self.duration).astimezone(self.zone).replace(tzinfo=None) - dt.timedelta(days=1)
        latest = end_utc.astimezone(self.zone).replace(tzinfo=None) + dt.timedelta(days=1)
        for local in self.rule.between(earliest, latest, inc=True):
            begins = self._utc(local)
            if begins < end_utc and begins + self.duration > start_utc:
                yield local.date(), begins

    def start_on(self, day: dt.date) -> dt.datetime | None:
        """The UTC start of the occurrence originally on ``day`` (local date), or None when there is none."""
        midnight = dt.datetime.combine(day, dt.time())
        found = self.rule.after(midnight, inc=True)
        return self._utc(found) if found is not None and found.date() == day else None

"""Which listed Twilio message, if any, is the one an earlier send attempt created: pure rules, no I/O.

After an ambiguous create (a timeout, a cut connection, a 5xx) or for a recipient an earlier Airflow try left
in flight, the hook lists the recipient's messages from our sender and asks these functions which one is ours.
Twilio documents the list as sorted by ``DateSent``, most recent first; a message still queued has no
``DateSent`` and where such messages are listed is not documented (first, last, anywhere). So nothing here
trusts the position of a message in the listing:

* **The stop rule** (:func:`coverage`, :func:`needs_sent_pass`): the recipient's listing from our sender is read
  to its end (``PageSize`` 1,000, at most :data:`MAX_PAGES` pages). Stopping at the first message sent before
  the window would be right for sent messages only: with queued messages listed last, ours comes after every
  sent one, so no early stop is correct for every placement. A listing read in more than one request has one
  more gap: a message that gets its ``DateSent`` between two requests moves from wherever queued messages are to
  the top of the sent ones, possibly behind the pages already read. It was created in our window, so it was
  sent on or after the window's first day: a second listing filtered by ``DateSent>=`` that day (sent messages
  only, a day's worth to one recipient) finds it. A listing longer than the page budget is not guessed at: the
  look-up reports that it could not be sure, and the send stays unresolved instead of being repeated.
* **The match** (:func:`in_window`, :func:`same_content`, :func:`matches`): a candidate was created inside the
  window (``date_created``, never an older message to the same number), is not claimed by another result, was
  sent through our Messaging Service when we send through one, and carries our text: Twilio records the
  rendered template in the message's ``body``. The hook renders the template the same way
  (:func:`expected_bodies`: the template's text with ``{{name}}`` placeholders filled from our variables,
  the template's defaults for the rest). The body is the field to compare because it is the only one of
  the Message resource that reflects what was sent: the resource has no ``content_sid`` and no variables. A
  candidate with an empty body is not ruled out: Twilio's guide to Content sends says the create response's
  body is empty when a Messaging Service sends the template, so a message can be listed before its body is
  filled in.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

#: The contract's largest page: the fewest requests for a recipient's whole listing.
PAGE_SIZE = 1000
#: Pages read of one listing before giving up on being sure: 10,000 messages from one sender to one number.
MAX_PAGES = 10

_PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")


class ListedMessage(Protocol):
    """What the matching reads of a listed message (the twilio SDK's ``MessageInstance`` has it)."""

    sid: str
    date_created: dt.datetime | None
    body: str | None
    messaging_service_sid: str | None


M = TypeVar("M", bound=ListedMessage)


@dataclass(frozen=True)
class Window:
    """When our message can have been created: ``date_created`` from ``start`` to ``end`` (open when None)."""

    start: dt.datetime
    end: dt.datetime | None = None

    @classmethod
    def between(cls, since: float, until: float | None, clock_skew: float) -> Window:
        """The window of a send that began at ``since`` (epoch seconds, our clock) and could create messages
        until ``until``; ``clock_skew`` widens the start for Twilio's clock and its whole-second dates."""
        start = dt.datetime.fromtimestamp(since - clock_skew, dt.timezone.utc)
        end = dt.datetime.fromtimestamp(until, dt.timezone.utc) if until is not None else None
        return cls(start, end)

    def holds(self, created: dt.datetime | None) -> bool:
        return created is not None and created >= self.start and (self.end is None or created <= self.end)

    def sent_since(self) -> str:
        """The ``DateSent>`` filter of the second listing: the window's first day (GMT), as the contract
        documents its date filters (``YYYY-MM-DD``, on and after)."""
        return self.start.astimezone(dt.timezone.utc).strftime("%Y-%m-%d")


class Coverage(enum.Enum):
    """How far a listing has been read."""

    COMPLETE = "complete"  # the listing ended: every message it holds was seen
    MORE = "more"  # read the next page
    OVER_BUDGET = "over_budget"  # pages remain beyond the budget: nothing can be concluded


def coverage(pages_read: int, has_next: bool, max_pages: int = MAX_PAGES) -> Coverage:
    """Whether a listing whose ``pages_read`` pages held no match is finished, to be read on, or too long."""
    if not has_next:
        return Coverage.COMPLETE
    return Coverage.MORE if pages_read < max_pages else Coverage.OVER_BUDGET


def needs_sent_pass(pages_read: int) -> bool:
    """Whether a complete listing without a match needs the second, ``DateSent``-filtered listing: only when
    it took more than one request (a single page is one snapshot, in which nothing moves)."""
    return pages_read > 1


def in_window(
    messages: Iterable[M], window: Window, claimed: Collection[str], messaging_service_sid: str | None = None
) -> list[M]:
    """The listed messages that can be ours by when they were created and who sent them."""
    return [
        message
        for message in messages
        if message.sid not in claimed
        and window.holds(message.date_created)
        and (messaging_service_sid is None or message.messaging_service_sid == messaging_service_sid)
    ]


def template_texts(types: Mapping[str, Any]) -> list[str]:
    """The texts a Content template's ``types`` carry (``twilio/text``'s ``body``, and any other type's),
    distinct, in the template's order: Twilio picks the type the channel supports, so any can be recorded."""
    texts: list[str] = []
    for definition in types.values():
        body = definition.get("body") if isinstance(definition, Mapping) else None
        if isinstance(body, str) and body and body not in texts:
            texts.append(body)
    return texts


def render(text: str, defaults: Mapping[str, Any], variables: Mapping[str, str]) -> str:
    """A template text with ``{{name}}`` placeholders filled: our variables first, then the template's
    default values; a placeholder with neither stays as written."""
    values = {**{str(k): str(v) for k, v in defaults.items()}, **variables}
    return _PLACEHOLDER.sub(lambda match: values.get(match.group(1), match.group(0)), text)


def expected_bodies(
    types: Mapping[str, Any], defaults: Mapping[str, Any], variables: Mapping[str, str]
) -> frozenset[str]:
    """Every ``body`` Twilio can have recorded for our send of this template (empty: it has no text)."""
    return frozenset(_normal(render(text, defaults, variables)) for text in template_texts(types))


def same_content(message: ListedMessage, expected: Collection[str]) -> bool:
    """False only on evidence: Twilio recorded a body and it is none of ours."""
    body = _normal(message.body or "")
    return not expected or not body or body in expected


def matches(candidates: Iterable[M], expected: Collection[str]) -> list[M]:
    """The candidates in the window that carry our text, earliest created first (the first is ours; more than
    one means an earlier attempt already made a duplicate)."""
    utc_max = dt.datetime.max.replace(tzinfo=dt.timezone.utc)
    found = [message for message in candidates if same_content(message, expected)]
    return sorted(found, key=lambda message: message.date_created or utc_max)


def _normal(text: str) -> str:
    return text.replace("\r\n", "\n").strip()

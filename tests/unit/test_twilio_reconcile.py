"""The pure rules that pick our message out of a Twilio listing (hooks/twilio_reconcile.py)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest

from airflow_provider_qconn.hooks import twilio_reconcile as rec

T0 = dt.datetime(2026, 5, 4, 23, 59, 58, tzinfo=dt.timezone.utc)


@dataclass
class Listed:
    sid: str
    date_created: dt.datetime | None
    body: str | None = "Hello Ana, your appointment is on Friday."
    messaging_service_sid: str | None = None


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


WINDOW = rec.Window(start=at(0), end=at(60))
OURS = frozenset({"Hello Ana, your appointment is on Friday."})


def test_the_window_widens_its_start_by_the_clock_skew_and_keeps_its_end():
    window = rec.Window.between(T0.timestamp(), T0.timestamp() + 60, clock_skew=5)
    assert (window.start, window.end) == (at(-5), at(60))
    assert rec.Window.between(T0.timestamp(), None, clock_skew=5).end is None


def test_the_window_holds_only_what_was_created_inside_it():
    assert [WINDOW.holds(at(s)) for s in (-1, 0, 30, 60, 61)] == [False, True, True, True, False]
    assert not WINDOW.holds(None)
    assert rec.Window(start=at(0)).holds(at(10**6))


def test_the_sent_pass_filters_from_the_windows_first_day_in_gmt():
    assert WINDOW.sent_since() == "2026-05-04"  # starts two seconds before midnight: that day, not the next


@pytest.mark.parametrize(
    ("pages_read", "has_next", "expected"),
    [
        (1, False, rec.Coverage.COMPLETE),
        (1, True, rec.Coverage.MORE),
        (9, True, rec.Coverage.MORE),
        (10, True, rec.Coverage.OVER_BUDGET),
        (10, False, rec.Coverage.COMPLETE),
    ],
)
def test_a_listing_is_read_to_its_end_within_the_page_budget(pages_read, has_next, expected):
    assert rec.coverage(pages_read, has_next, max_pages=10) is expected


def test_only_a_listing_read_in_several_requests_needs_the_sent_pass():
    assert not rec.needs_sent_pass(1)
    assert rec.needs_sent_pass(2)


def test_candidates_are_unclaimed_messages_created_inside_the_window():
    older = Listed("SMolder", at(-3600))
    ours = Listed("SMours", at(2))
    claimed = Listed("SMclaimed", at(3))
    queued_without_date = Listed("SMnodate", None)
    later = Listed("SMlater", at(120))
    listed = [later, older, ours, claimed, queued_without_date]
    assert rec.in_window(listed, WINDOW, {"SMclaimed"}) == [ours]


def test_sending_through_a_messaging_service_takes_only_its_messages():
    ours = Listed("SMours", at(2), messaging_service_sid="MGours")
    other = Listed("SMother", at(3), messaging_service_sid="MGother")
    assert rec.in_window([ours, other], WINDOW, set(), "MGours") == [ours]
    assert rec.in_window([ours, other], WINDOW, set()) == [ours, other]


def test_a_template_is_rendered_with_our_variables_then_its_defaults():
    text = "Hello {{1}}, your appointment is on {{ 2 }} at {{time}}."
    assert rec.render(text, {"1": "Customer", "2": "tomorrow"}, {"1": "Ana"}) == (
        "Hello Ana, your appointment is on tomorrow at {{time}}."
    )


def test_expected_bodies_cover_each_text_the_template_carries():
    types = {
        "twilio/text": {"body": "Hi {{1}}"},
        "twilio/quick-reply": {"body": "Hi {{1}}, pick one", "actions": [{"title": "OK"}]},
        "twilio/media": {"media": ["https://example.com/a.png"]},
        "whatsapp/card": {"body": "Hi {{1}}"},
    }
    assert rec.template_texts(types) == ["Hi {{1}}", "Hi {{1}}, pick one"]
    assert rec.expected_bodies(types, {}, {"1": "Ana"}) == {"Hi Ana", "Hi Ana, pick one"}
    assert rec.expected_bodies({"twilio/media": {"media": []}}, {}, {}) == frozenset()


def test_content_rules_a_candidate_out_only_on_a_different_recorded_body():
    assert rec.same_content(Listed("SM1", at(1)), OURS)
    assert rec.same_content(
        Listed("SM1", at(1), body="Hello Ana, your appointment\r\n is on Friday. "),
        {"Hello Ana, your appointment\n is on Friday."},
    )
    assert not rec.same_content(Listed("SM1", at(1), body="Hello Bruno, your appointment is on Friday."), OURS)
    assert rec.same_content(Listed("SM1", at(1), body=""), OURS)  # not filled in yet: cannot rule it out
    assert rec.same_content(Listed("SM1", at(1), body=None), OURS)
    assert rec.same_content(Listed("SM1", at(1), body="anything"), frozenset())  # a template without text


def test_matches_keep_our_text_earliest_first():
    later = Listed("SMlater", at(20))
    other = Listed("SMother", at(1), body="Hi Ana, your order 1234 is on its way.")
    earliest = Listed("SMearliest", at(5))
    assert [m.sid for m in rec.matches([later, other, earliest], OURS)] == ["SMearliest", "SMlater"]
    assert rec.matches([other], OURS) == []

"""Input normalisation: what DAG authors write, and the errors that name the parameter."""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

import phonenumbers
import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_provider_qconn import normalise
from airflow_provider_qconn.exceptions import InvalidParameterError


@pytest.mark.parametrize(
    ("written", "region", "expected"),
    [
        ("+598 99 123 456", None, "+59899123456"),
        ("whatsapp:+59899123456", None, "+59899123456"),
        ("WhatsApp: +598-99-123-456", None, "+59899123456"),
        ("(099) 123-456", "UY", "+59899123456"),
        ("0059899123456", None, "+59899123456"),
        ("+1 (415) 523-8886", None, "+14155238886"),
        ("612 34 56 78", "es", "+34612345678"),
    ],
)
def test_phone_numbers_in_common_written_forms(written, region, expected):
    assert normalise.phone_number(written, region) == expected


@pytest.mark.parametrize("written", ["abc", "12", "+1", "+598 99"])
def test_unparseable_phone_numbers_raise_value_error_with_a_reason(written):
    with pytest.raises(ValueError, match=r"\w"):
        normalise.phone_number(written)


def test_number_without_country_code_explains_default_region():
    with pytest.raises(ValueError, match="default_region"):
        normalise.phone_number("099 123 456")


@given(st.sampled_from(sorted(phonenumbers.SUPPORTED_REGIONS)))
def test_example_numbers_of_every_region_round_trip(region):
    example = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
    if example is None:
        return
    e164 = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
    national = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.NATIONAL)
    international = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    assert normalise.phone_number(international) == e164
    assert normalise.phone_number(f"whatsapp:{e164}") == e164
    assert normalise.phone_number(national, region) == e164


@given(st.text(max_size=30))
def test_phone_number_never_raises_anything_but_value_error(text):
    try:
        result = normalise.phone_number(text)
    except ValueError:
        return
    assert result.startswith("+") and result[1:].isdigit()


def test_recipients_deduplicate_and_report_unparseable_ones():
    result = normalise.recipients("+59899123456; whatsapp:+598 99 123 456, nope,\n+34612345678")
    assert result.valid == ["+59899123456", "+34612345678"]
    assert [item for item, _reason in result.invalid] == ["nope"]


@pytest.mark.parametrize("value", [None, "", [], " ; , "])
def test_no_recipients_is_an_error_naming_the_parameter(value):
    with pytest.raises(InvalidParameterError, match=r"^recipients: no recipients"):
        normalise.recipients(value)


def test_lists_rendered_by_jinja_are_read_back():
    assert normalise.split_list("['a', 'b']", "x") == ["a", "b"]
    assert normalise.split_list('["a","b"]', "x") == ["a", "b"]
    with pytest.raises(InvalidParameterError, match=r"^x: cannot read"):
        normalise.split_list("[unclosed", "x")
    with pytest.raises(InvalidParameterError, match=r"^x: expected a list"):
        normalise.split_list(42, "x")


def test_email_addresses_are_validated_and_deduplicated():
    result = normalise.email_addresses("Ana <ana@example.com>; bob@example.org, ANA@example.com")
    assert result == [
        normalise.EmailAddress("ana@example.com", "Ana"),
        normalise.EmailAddress("bob@example.org"),
    ]
    with pytest.raises(InvalidParameterError, match=r"^attendees: 'not-an-address' is not a valid e-mail"):
        normalise.email_addresses(["ok@example.com", "not-an-address"])


def test_naive_datetimes_are_read_in_the_time_zone():
    start, end = normalise.time_range("2030-01-01T10:00:00", "2030-01-01T11:00:00Z", "Europe/Madrid")
    assert start.utcoffset() == dt.timedelta(hours=1)
    assert end.utcoffset() == dt.timedelta(0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("20300131T093000", dt.datetime(2030, 1, 31, 9, 30, tzinfo=dt.timezone.utc)),  # {{ ts_nodash }}
        ("2030-01-31T09:30:00+0100", dt.datetime(2030, 1, 31, 8, 30, tzinfo=dt.timezone.utc)),
        ("2030-01-31T09:30:00.5Z", dt.datetime(2030, 1, 31, 9, 30, 0, 500000, tzinfo=dt.timezone.utc)),
        ("2030-01-31 09:30", dt.datetime(2030, 1, 31, 9, 30, tzinfo=dt.timezone.utc)),
    ],
)
def test_iso_forms_read_alike_on_every_python(text, expected):
    assert normalise.aware_datetime(text, "start") == expected


def test_a_date_alone_is_not_a_start():
    with pytest.raises(InvalidParameterError, match=r"^start: '2030-01-31' is not an ISO 8601 date and time"):
        normalise.aware_datetime("2030-01-31", "start")


def test_aware_and_pendulum_datetimes_are_kept():
    import pendulum

    moment = pendulum.datetime(2030, 1, 1, 10, tz="America/Montevideo")
    assert normalise.aware_datetime(moment, "start") == moment


@pytest.mark.parametrize(
    ("start", "end", "match"),
    [
        ("2030-01-01T10:00", "2030-01-01T10:00", "^end: must be after start"),
        ("2030-01-01T10:00", "2029-12-31T10:00", "^end: must be after start"),
        ("tomorrow", "2030-01-01T10:00", "^start: 'tomorrow' is not an ISO 8601"),
        (None, "2030-01-01T10:00", "^start: expected a datetime"),
    ],
)
def test_bad_time_ranges_name_the_parameter(start, end, match):
    with pytest.raises(InvalidParameterError, match=match):
        normalise.time_range(start, end)


def test_unknown_time_zone_names_time_zone():
    with pytest.raises(InvalidParameterError, match=r"^time_zone: unknown time zone"):
        normalise.time_range("2030-01-01T10:00", "2030-01-01T11:00", "Mars/Olympus")


def test_template_sid_and_message_sids():
    sid = "HX" + "a" * 32
    assert normalise.template_sid(f" {sid} ") == sid
    with pytest.raises(InvalidParameterError, match=r"^template_sid: expected a Content SID"):
        normalise.template_sid("HX123")
    assert normalise.is_message_sid("SM" + "0" * 32) and normalise.is_message_sid("MM" + "F" * 32)
    assert not normalise.is_message_sid("XX" + "0" * 32)
    assert normalise.message_ids("SM1, SM1") == ["SM1", "SM1"]
    with pytest.raises(InvalidParameterError, match=r"^message_ids: no message ids"):
        normalise.message_ids([])


def test_variables_are_sent_as_text():
    assert normalise.variables({"1": "Ana", 2: 3, "flag": False, "price": 9.5}) == {
        "1": "Ana",
        "2": "3",
        "flag": "false",
        "price": "9.5",
    }
    assert normalise.variables('{"1": true}') == {"1": "true"}
    with pytest.raises(InvalidParameterError, match=r"^template_variables: the value of 'x' must be text"):
        normalise.variables({"x": {"nested": 1}})
    with pytest.raises(InvalidParameterError, match=r"^template_variables: expected a mapping"):
        normalise.variables(["a"])


@pytest.mark.parametrize(
    ("variables", "match"),
    [
        ({str(n): "x" for n in range(1, 102)}, "101 variables, more than the 100"),
        ({"1": "x" * 1601}, "placeholder '1': the value has 1601 characters, more than Twilio's 1600"),
        ({"first name": "Ana"}, "placeholder 'first name': placeholder names have no spaces"),
        ({"a" * 17: "Ana"}, "placeholder 'aaaaaaaaaaaaaaaaa': placeholder names have at most 16 characters"),
        ({"1": ""}, "placeholder '1': the value is empty"),
        ({"1": "two\nlines"}, "placeholder '1': the value holds a newline or a tab"),
        ({"1": "a\tb"}, "placeholder '1': the value holds a newline or a tab"),
        ({"1": "a     b"}, "placeholder '1': the value holds more than four consecutive spaces"),
    ],
)
def test_variables_twilio_refuses_fail_naming_the_parameter_and_the_placeholder(variables, match):
    with pytest.raises(InvalidParameterError, match=rf"^template_variables: {re.escape(match)}"):
        normalise.variables(variables)


def test_variables_at_twilios_limits_are_accepted():
    at_limits = {str(n): "x" for n in range(1, 100)} | {"a" * 16: "y" * 1595 + "    z"}
    assert normalise.variables(at_limits) == at_limits


def test_a_recipient_whose_own_variables_break_a_rule_is_left_out_alone():
    request = normalise.template_send(
        "+59899123456; +34612345678; +59899654321",
        "HX" + "a" * 32,
        {"1": "there"},
        {"+34612345678": {"1": ""}, "+59899654321": {"first name": "Bruno"}},
    )
    assert list(request.messages) == ["+59899123456"]
    assert request.invalid_variables == [
        ("+34612345678", "recipient_variables['+34612345678']: placeholder '1': the value is empty (Twilio "
         "refuses empty values with error 21656)"),
        ("+59899654321", "recipient_variables['+59899654321']: placeholder 'first name': placeholder names have "
         "no spaces"),
    ]  # fmt: skip


def test_common_variables_that_break_a_rule_fail_the_send_even_where_a_recipient_overrides_them():
    with pytest.raises(InvalidParameterError, match=r"^template_variables: placeholder '2': the value is empty"):
        normalise.template_send("+59899123456", "HX" + "a" * 32, {"1": "x", "2": ""}, {"+59899123456": {"2": "y"}})


def test_too_many_variables_once_merged_fail_that_recipient():
    common = {str(n): "x" for n in range(1, 100)}
    request = normalise.template_send(
        "+59899123456; +34612345678", "HX" + "a" * 32, common, {"+34612345678": {"extra1": "a", "extra2": "b"}}
    )
    assert list(request.messages) == ["+59899123456"]
    assert request.invalid_variables[0][1].endswith("101 variables, more than the 100 a template takes")


def test_region_is_checked():
    assert normalise.region("uy") == "UY" and normalise.region(None) is None
    with pytest.raises(InvalidParameterError, match=r"^default_region:"):
        normalise.region("Uruguay")


# --- what the Outlook operators add ---------------------------------------------------------------------------


def test_an_update_may_give_only_one_of_start_and_end():
    start, end = normalise.optional_time_range("2030-01-01T10:00", None, "Europe/Madrid")
    assert start == dt.datetime(2030, 1, 1, 10, tzinfo=ZoneInfo("Europe/Madrid")) and end is None
    assert normalise.optional_time_range("", " ", "UTC") == (None, None)
    with pytest.raises(InvalidParameterError, match=r"^end: must be after start"):
        normalise.optional_time_range("2030-01-01T10:00", "2030-01-01T09:00")
    with pytest.raises(InvalidParameterError, match=r"^end: 'soon' is not an ISO 8601"):
        normalise.optional_time_range(None, "soon")


@pytest.mark.parametrize(
    ("value", "expected"),
    [(True, True), (False, False), ("True", True), ("false", False), (" yes ", True), ("0", False), (1, True)],
)
def test_flags_read_what_templates_render(value, expected):
    assert normalise.flag(value, "teams_meeting") is expected


def test_an_omitted_flag_is_its_default_and_a_bad_one_names_the_parameter():
    assert normalise.flag(None, "teams_meeting") is None
    assert normalise.flag("", "teams_meeting", default=False) is False
    with pytest.raises(InvalidParameterError, match=r"^teams_meeting: expected true or false, got 'maybe'"):
        normalise.flag("maybe", "teams_meeting")
    with pytest.raises(InvalidParameterError, match=r"^missing_ok: expected true or false"):
        normalise.flag(2, "missing_ok")


def test_text_choice_and_identifier():
    assert normalise.text(None, "subject") is None
    assert normalise.text("Review", "subject") == "Review"
    with pytest.raises(InvalidParameterError, match=r"^subject: expected text, got list"):
        normalise.text(["Review"], "subject")
    assert normalise.choice(" HTML ", "content_type", ("html", "text")) == "html"
    with pytest.raises(InvalidParameterError, match=r"^content_type: expected one of 'html', 'text', got 'md'"):
        normalise.choice("md", "content_type", ("html", "text"))
    assert normalise.identifier(" AAkALg= ", "meeting_id") == "AAkALg="
    with pytest.raises(InvalidParameterError, match=r"^meeting_id: expected a non-empty id"):
        normalise.identifier("", "meeting_id")
    with pytest.raises(InvalidParameterError, match=r"^meeting_id: 'a b' is not an id"):
        normalise.identifier("a b", "meeting_id")
    with pytest.raises(InvalidParameterError, match=r"^meeting_id: expected an id, got a mapping .*'meeting_id'"):
        normalise.identifier({"meeting_id": "AAk", "join_url": None}, "meeting_id")


def test_optional_attendees_tell_not_given_from_nobody():
    assert normalise.optional_email_addresses(None) is None
    assert normalise.optional_email_addresses("  ") is None
    assert normalise.optional_email_addresses([]) == []
    assert normalise.optional_email_addresses("a@example.com") == [normalise.EmailAddress("a@example.com")]

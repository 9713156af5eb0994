"""Property-based tests: whatever a DAG author (or an API) hands the normalisers and response readers, the answer
is a result in canonical form or our clear error naming the parameter, never an unhandled exception."""

from __future__ import annotations

import datetime as dt
import json
import string
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_qconn import normalise
from airflow_provider_qconn.exceptions import ApiError, InvalidParameterError
from airflow_provider_qconn.hooks.msgraph.errors import graph_error
from airflow_provider_qconn.hooks.msgraph.settings import GraphSettings
from airflow_provider_qconn.hooks.twilio_reconcile import expected_bodies, render, template_texts
from airflow_provider_qconn.hooks.twilio_retry import retry_after_seconds, throttled_error
from airflow_provider_qconn.sandbox import twilio as sandbox_twilio
from airflow_provider_qconn.triggers.whatsapp import delivery_verdict

GRAPH_SETTINGS = GraphSettings(
    conn_id="qconn_msgraph_default",
    auth_type="refresh_token",
    client_id="3f9a6c1e-2b4d-4f8a-9c7e-5d1b2a3c4e5f",
    tenant_id="common",
    user_id=None,
    base_url="https://graph.microsoft.com/v1.0",
    authority="https://login.microsoftonline.com",
)
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

#: What a template renders, what a DAG author types: text of any kind, numbers, lists, mappings, None.
anything = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=8,
)


def raises_naming(parameters: str | tuple[str, ...], call: Any, *args: Any, **kwargs: Any) -> Any:
    """The result of ``call``, or None when it raised InvalidParameterError naming one of ``parameters`` (a
    per-recipient parameter such as ``recipient_variables['+598...']`` counts as ``recipient_variables``)."""
    try:
        return call(*args, **kwargs)
    except InvalidParameterError as error:
        named = error.parameter.split("[")[0]
        assert named in ((parameters,) if isinstance(parameters, str) else parameters), error
        assert str(error).startswith(f"{error.parameter}: ")
        return None


# --- datetimes and zones ---------------------------------------------------------------------------------------

iso_like = st.from_regex(
    r"\A\d{4}-?\d{2}-?\d{2}[T ]\d{2}:?\d{2}(:?\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?\Z", fullmatch=True
)


@FAST
@given(value=st.one_of(anything, iso_like, st.datetimes(), st.datetimes(timezones=st.timezones())))
def test_any_start_is_an_aware_datetime_or_an_error_naming_start(value):
    moment = raises_naming("start", normalise.aware_datetime, value, "start")
    if moment is not None:
        assert moment.tzinfo is not None and moment.utcoffset() is not None


@FAST
@given(moment=st.datetimes(min_value=dt.datetime(1970, 1, 1), timezones=st.timezones()))
def test_an_aware_datetime_written_in_iso_8601_reads_back_as_the_same_instant(moment):
    # From 1970: older local mean times have offsets in seconds (-00:16:08), which no one writes.
    # In UTC: an aware datetime in a zone's gap or fold never compares equal to one in another zone.
    utc = dt.timezone.utc
    assert normalise.aware_datetime(moment.isoformat(), "start").astimezone(utc) == moment.astimezone(utc)


@FAST
@given(name=anything)
def test_any_time_zone_is_a_zone_or_an_error_naming_time_zone(name):
    raises_naming("time_zone", normalise.zone, name)


@FAST
@given(start=st.datetimes(timezones=st.timezones()), end=st.datetimes(timezones=st.timezones()))
def test_a_time_range_ends_after_it_starts_or_names_end(start, end):
    result = raises_naming("end", normalise.time_range, start, end)
    assert (result is not None) == (end > start)


# --- phone numbers ---------------------------------------------------------------------------------------------

written_numbers = st.from_regex(r"\A(whatsapp:)?\+?[0-9 ()\-.]{0,20}\Z", fullmatch=True)


@FAST
@given(value=st.one_of(anything, written_numbers, st.lists(written_numbers | st.text(max_size=15), max_size=6)))
def test_recipients_are_e164_or_reported_or_an_error_naming_recipients(value):
    result = raises_naming("recipients", normalise.recipients, value)
    if result is not None:
        assert all(number.startswith("+") and number[1:].isdigit() for number in result.valid)
        assert len(set(result.valid)) == len(result.valid)
        assert all(reason for _written, reason in result.invalid)


@FAST
@given(value=anything)
def test_any_default_region_is_a_country_code_or_an_error_naming_it(value):
    raises_naming("default_region", normalise.region, value)


# --- e-mail lists ----------------------------------------------------------------------------------------------


@FAST
@given(value=st.one_of(anything, st.lists(st.emails(), max_size=4), st.lists(st.text(max_size=20), max_size=4)))
def test_attendees_are_addresses_or_an_error_naming_attendees(value):
    result = raises_naming("attendees", normalise.email_addresses, value)
    if result is not None:
        assert all("@" in item.address for item in result)
        assert len({item.address.lower() for item in result}) == len(result)


@FAST
@given(addresses=st.lists(st.emails(), min_size=1, max_size=4))
def test_valid_addresses_joined_by_semicolons_all_come_back(addresses):
    result = raises_naming("attendees", normalise.email_addresses, "; ".join(addresses))
    if result is not None:  # st.emails() can make addresses email-validator rightly refuses (reserved names)
        assert len(result) == len({address.lower() for address in addresses})


# --- SIDs and ids ----------------------------------------------------------------------------------------------

hex32 = st.text(alphabet="0123456789abcdefABCDEF", min_size=32, max_size=32)


@FAST
@given(value=st.one_of(anything, hex32.map(lambda h: "HX" + h)))
def test_any_template_sid_is_a_content_sid_or_an_error_naming_it(value):
    sid = raises_naming("template_sid", normalise.template_sid, value)
    if sid is not None:
        assert sid.startswith("HX") and len(sid) == 34


@FAST
@given(value=st.one_of(anything, st.lists(hex32.map(lambda h: "SM" + h), max_size=4)))
def test_any_message_ids_are_a_list_or_an_error_naming_message_ids(value):
    ids = raises_naming("message_ids", normalise.message_ids, value)
    if ids is not None:
        assert ids and all(isinstance(sid, str) for sid in ids)
        assert all(normalise.is_message_sid(sid) in (True, False) for sid in ids)


@FAST
@given(value=anything)
def test_any_meeting_id_is_an_id_or_an_error_naming_it(value):
    result = raises_naming("meeting_id", normalise.identifier, value, "meeting_id")
    if result is not None:
        assert result and not any(character.isspace() for character in result)


# --- template variables ----------------------------------------------------------------------------------------

keys = st.one_of(st.text(max_size=20), st.text(alphabet=string.ascii_letters + "_", min_size=1, max_size=16))
values = st.one_of(st.text(max_size=40), st.integers(), st.booleans(), st.floats(allow_nan=False), anything)
mappings = st.dictionaries(keys, values, max_size=6)


@FAST
@given(
    text=st.one_of(st.none(), st.text(), st.text(alphabet=" \t\n\r\u00a0x", max_size=3000)),
    fallback=st.text(min_size=1).filter(lambda f: f.split()),
)
def test_any_text_made_safe_for_a_variable_breaks_no_rule_of_twilios(text, fallback):
    safe = normalise.variable_safe_text(text, fallback)
    assert normalise.value_problem(safe) is None
    if text and text.split():
        assert safe.split()[0] == text.split()[0][: len(safe.split()[0])]


@FAST
@given(value=st.one_of(anything, mappings, mappings.map(lambda m: json.dumps(m, default=str))))
def test_template_variables_are_text_twilio_accepts_or_an_error_naming_them(value):
    result = raises_naming("template_variables", normalise.variables, value)
    if result is not None:
        assert all(isinstance(key, str) and isinstance(text, str) for key, text in result.items())
        assert normalise.variables_problem(result) is None


@FAST
@given(common=mappings, own=st.dictionaries(st.sampled_from(["+59899123456", "+34612345678"]), mappings))
def test_each_recipient_is_sent_valid_variables_or_reported_never_both(common, own):
    recipients = ["+59899123456", "+34612345678"]
    request = raises_naming(
        ("template_variables", "recipient_variables"),
        normalise.template_send,
        recipients,
        "HX" + "a" * 32,
        common,
        own or None,
    )
    if request is None:
        return
    refused = [number for number, _reason in request.invalid_variables]
    assert sorted([*request.messages, *refused]) == sorted(recipients)
    assert all(normalise.variables_problem(variables) is None for variables in request.messages.values())


@FAST
@given(variables=st.dictionaries(st.text(max_size=20), st.text(max_size=1700), max_size=4))
def test_the_sandbox_refuses_exactly_the_variables_the_operator_refuses(variables):
    # One rule in two places: what our validation lets through, the emulated Twilio accepts, and the reverse.
    try:
        sandbox_twilio._content_variables(json.dumps(variables))
        accepted = True
    except sandbox_twilio.TwilioError as error:
        assert error.code == 21656
        accepted = False
    assert accepted == (normalise.variables_problem(variables) is None)


# --- reading responses -----------------------------------------------------------------------------------------


@FAST
@given(value=st.none() | st.text(max_size=12))
def test_any_retry_after_header_is_seconds_or_none(value):
    seconds = retry_after_seconds(value)
    assert seconds is None or seconds >= 0


@FAST
@given(body=st.one_of(st.text(max_size=40), anything.map(json.dumps)), retry_after=st.none() | st.text(max_size=8))
def test_any_429_body_reads_as_throttled(body, retry_after):
    error = throttled_error(body, retry_after)
    assert error.message and (error.code is None or isinstance(error.code, int))


@FAST
@given(
    status=st.sampled_from([400, 401, 403, 404, 409, 429, 500, 503, 504]),
    body=st.one_of(st.binary(max_size=40), anything.map(lambda v: json.dumps(v).encode())),
)
def test_any_graph_error_answer_reads_as_our_error(status, body):
    response = httpx.Response(status, content=body)
    error = graph_error(response, GRAPH_SETTINGS, "AAk=")
    assert isinstance(error, ApiError) and error.status == status and error.message


@FAST
@given(types=anything, defaults=anything, variables=st.dictionaries(st.text(max_size=5), st.text(max_size=10)))
def test_any_content_template_gives_the_texts_twilio_may_record(types, defaults, variables):
    if not isinstance(types, dict):
        types = {"twilio/text": types}
    defaults = defaults if isinstance(defaults, dict) else {}
    texts = template_texts(types)
    assert all(isinstance(text, str) and text for text in texts)
    assert all(isinstance(render(text, defaults, variables), str) for text in texts)
    assert len(expected_bodies(types, defaults, variables)) <= len(texts)


statuses = st.sampled_from(["accepted", "queued", "sending", "sent", "delivered", "read", "failed", "undelivered"])


@FAST
@given(details=st.lists(st.none() | statuses.map(lambda s: {"status": s}), max_size=5))
def test_a_delivery_verdict_is_done_failed_or_wait(details):
    verdict = delivery_verdict(details, ["delivered", "read"])
    assert verdict in ("done", "failed", None)
    if any(d and d["status"] in ("failed", "undelivered") for d in details):
        assert verdict == "failed"

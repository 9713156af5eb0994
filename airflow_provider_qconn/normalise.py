"""Input normalisation, in one place: datetimes, e-mail addresses, phone numbers, Twilio SIDs, variables.

Every function takes what a DAG author may write (including strings rendered by Jinja) and either returns the
canonical form or raises :class:`InvalidParameterError` naming the parameter. Nothing here sends a request.
"""

from __future__ import annotations

import ast
import datetime as dt
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from email.utils import parseaddr
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from airflow_provider_qconn.exceptions import InvalidParameterError

WHATSAPP_PREFIX = "whatsapp:"
_TEMPLATE_SID = re.compile(r"HX[0-9a-fA-F]{32}")
_MESSAGE_SID = re.compile(r"(SM|MM)[0-9a-fA-F]{32}")
_SEPARATORS = re.compile(r"[;,\n]")


def split_list(value: Any, parameter: str) -> list[str]:
    """A list of non-empty strings from a list, a tuple, or one string separated by ``,`` or ``;``.

    A string that holds a JSON or Python list literal (what Jinja renders a list into) is read as that list.
    """
    if value is None:
        return []
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                parsed = json.loads(text)
            except ValueError:
                try:
                    parsed = ast.literal_eval(text)
                except (ValueError, SyntaxError) as error:
                    raise InvalidParameterError(parameter, f"cannot read {value!r} as a list") from error
            return split_list(parsed, parameter)
        items: Iterable[Any] = _SEPARATORS.split(text)
    elif isinstance(value, Iterable) and not isinstance(value, (bytes, Mapping)):
        items = value
    else:
        raise InvalidParameterError(parameter, f"expected a list or a separated string, got {type(value).__name__}")
    result = []
    for item in items:
        if not isinstance(item, (str, int)) or isinstance(item, bool):
            raise InvalidParameterError(parameter, f"expected text items, got {type(item).__name__}")
        text = str(item).strip()
        if text:
            result.append(text)
    return result


# --- time -------------------------------------------------------------------------------------------------


def zone(name: Any, parameter: str = "time_zone") -> ZoneInfo:
    """An IANA time zone by name."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidParameterError(parameter, f"expected an IANA time zone name such as 'Europe/Madrid', got {name!r}")
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise InvalidParameterError(parameter, f"unknown time zone {name!r} (use an IANA name)") from error


def _parse_iso(value: str, parameter: str) -> dt.datetime:
    """An ISO 8601 date and time, in every form pendulum reads (the same on Python 3.10 and 3.11+:
    ``20300131T093000`` as ``{{ ts_nodash }}`` renders, ``+0100`` offsets, any fraction of a second)."""
    import pendulum

    problem = f"{value!r} is not an ISO 8601 date and time (e.g. 2030-01-31T09:30:00)"
    try:
        parsed = pendulum.parse(value.strip(), tz=None, exact=True)
    except ValueError as error:  # pendulum's ParserError included
        raise InvalidParameterError(parameter, problem) from error
    if not isinstance(parsed, dt.datetime):
        raise InvalidParameterError(parameter, problem)
    fields = (parsed.year, parsed.month, parsed.day, parsed.hour, parsed.minute, parsed.second, parsed.microsecond)
    return dt.datetime(*fields, tzinfo=parsed.tzinfo)


def aware_datetime(value: Any, parameter: str, time_zone: str = "UTC") -> dt.datetime:
    """An aware datetime from a datetime (pendulum included) or an ISO 8601 string; naive ones are read in
    ``time_zone``."""
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, str) and value.strip():
        moment = _parse_iso(value, parameter)
    else:
        raise InvalidParameterError(parameter, f"expected a datetime or an ISO 8601 string, got {value!r}")
    if moment.tzinfo is None or moment.tzinfo.utcoffset(moment) is None:
        moment = moment.replace(tzinfo=zone(time_zone))
    return moment


def time_range(start: Any, end: Any, time_zone: str = "UTC") -> tuple[dt.datetime, dt.datetime]:
    """``start`` and ``end`` as aware datetimes, ``end`` strictly after ``start``."""
    begins = aware_datetime(start, "start", time_zone)
    ends = aware_datetime(end, "end", time_zone)
    if ends <= begins:
        raise InvalidParameterError("end", f"must be after start ({ends.isoformat()} <= {begins.isoformat()})")
    return begins, ends


def optional_time_range(start: Any, end: Any, time_zone: str = "UTC") -> tuple[dt.datetime | None, dt.datetime | None]:
    """Like :func:`time_range` for an update: either may be omitted (None or an empty string, what a template
    renders for a missing value); ``end`` must follow ``start`` when both are given."""
    if _omitted(start) or _omitted(end):
        begins = None if _omitted(start) else aware_datetime(start, "start", time_zone)
        ends = None if _omitted(end) else aware_datetime(end, "end", time_zone)
        return begins, ends
    return time_range(start, end, time_zone)


def listing_window(
    start: Any, end: Any, time_zone: str, data_interval: tuple[Any, Any]
) -> tuple[dt.datetime, dt.datetime]:
    """The window a listing covers: ``start`` and ``end`` as given (both, or neither), or else the run's data
    interval (``data_interval``: its start and end, None when the run has none)."""
    if not _omitted(start) and not _omitted(end):
        return time_range(start, end, time_zone)
    if not (_omitted(start) and _omitted(end)):
        missing = "start" if _omitted(start) else "end"
        raise InvalidParameterError(missing, "give both start and end, or neither (the run's data interval is used)")
    begins, ends = data_interval
    if begins is None or ends is None or begins >= ends:
        raise InvalidParameterError(
            "start",
            "no start and end were given, and this run's data interval is empty, as it is for runs of Airflow 3's "
            "default cron timetable (CronTriggerTimetable without an interval) and for manual runs: pass start and "
            "end, or schedule the DAG on an interval timetable (CronDataIntervalTimetable, or CronTriggerTimetable "
            "with interval=...)",
        )
    return time_range(begins, ends, time_zone)


# --- e-mail -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EmailAddress:
    """A validated e-mail address, with the display name it was written with, if any."""

    address: str
    name: str | None = None


def email_addresses(value: Any, parameter: str = "attendees") -> list[EmailAddress]:
    """Validated, de-duplicated addresses (``a@x.com``, ``Name <a@x.com>``), from a list or a separated string."""
    from email_validator import EmailNotValidError, validate_email

    seen: set[str] = set()
    result = []
    for item in split_list(value, parameter):
        name, address = parseaddr(item)
        if not address:
            address, name = item, ""
        try:
            normalised = validate_email(address, check_deliverability=False).normalized
        except EmailNotValidError as error:
            raise InvalidParameterError(parameter, f"{item!r} is not a valid e-mail address: {error}") from error
        if normalised.lower() not in seen:
            seen.add(normalised.lower())
            result.append(EmailAddress(normalised, name or None))
    return result


def optional_email_addresses(value: Any, parameter: str = "attendees") -> list[EmailAddress] | None:
    """Like :func:`email_addresses` for an update: None or an empty string means "not given" (None), while an
    empty list means "nobody"."""
    return None if _omitted(value) else email_addresses(value, parameter)


# --- phone numbers ------------------------------------------------------------------------------------------


def phone_number(value: str, default_region: str | None = None) -> str:
    """One phone number in E.164 (``+59899123456``), from any common written form; ``whatsapp:`` is dropped.

    Raises ValueError with the reason when the text cannot be a phone number.
    """
    import phonenumbers

    text = value.strip()
    if text.lower().startswith(WHATSAPP_PREFIX):
        text = text[len(WHATSAPP_PREFIX) :].strip()
    if text.startswith("00") and not default_region:
        text = "+" + text[2:]
    try:
        parsed = phonenumbers.parse(text, (default_region or "").upper() or None)
    except phonenumbers.NumberParseException as error:
        if error.error_type == phonenumbers.NumberParseException.INVALID_COUNTRY_CODE:
            raise ValueError("no country code: write it as +<country code><number>, or set default_region") from error
        raise ValueError(re.sub(r"^\(\d+\)\s*", "", str(error))) from error
    if not phonenumbers.is_valid_number(parsed):
        raise ValueError("not a valid phone number for its country (too short, too long or an unused range)")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def region(value: Any, parameter: str = "default_region") -> str | None:
    """An ISO 3166 alpha-2 country code phonenumbers knows, upper-cased; None stays None."""
    import phonenumbers

    if value is None or value == "":
        return None
    if not isinstance(value, str) or value.upper() not in phonenumbers.SUPPORTED_REGIONS:
        raise InvalidParameterError(parameter, f"{value!r} is not a country code such as 'UY' or 'ES'")
    return value.upper()


@dataclass(frozen=True)
class Recipients:
    """Recipients split into E.164 numbers to send to (unique, in input order) and unparseable entries."""

    valid: list[str]
    invalid: list[tuple[str, str]]


def recipients(value: Any, default_region: str | None = None, parameter: str = "recipients") -> Recipients:
    """Normalise recipients; an unparseable entry is reported, not fatal. Raises when none were given."""
    items = split_list(value, parameter)
    if not items:
        raise InvalidParameterError(parameter, "no recipients given")
    valid: list[str] = []
    invalid: list[tuple[str, str]] = []
    for item in items:
        try:
            number = phone_number(item, default_region)
        except ValueError as error:
            invalid.append((item, str(error)))
            continue
        if number not in valid:
            valid.append(number)
    return Recipients(valid, invalid)


# --- Twilio identifiers and variables -----------------------------------------------------------------------------


def template_sid(value: Any, parameter: str = "template_sid") -> str:
    if not isinstance(value, str) or not _TEMPLATE_SID.fullmatch(value.strip()):
        raise InvalidParameterError(parameter, f"expected a Content SID ('HX' and 32 hex digits), got {value!r}")
    return value.strip()


def is_message_sid(value: str) -> bool:
    return bool(_MESSAGE_SID.fullmatch(value))


def message_ids(value: Any, parameter: str = "message_ids") -> list[str]:
    """Message SIDs in input order (duplicates kept); raises when none were given."""
    items = split_list(value, parameter)
    if not items:
        raise InvalidParameterError(parameter, "no message ids given")
    return items


#: Twilio's limits on ContentVariables (its guide to variables with Content templates): at most 100 variables a
#: template; placeholder names without spaces, at most 16 characters; values at most 1,600 characters.
MAX_TEMPLATE_VARIABLES = 100
MAX_PLACEHOLDER_LENGTH = 16
MAX_VARIABLE_LENGTH = 1600
#: WhatsApp refuses template parameters holding a newline, a tab or more than four consecutive spaces.
_WHATSAPP_FORBIDDEN = re.compile(r"[\n\r\t]| {5,}")


def placeholder_problem(key: str) -> str | None:
    """Why Twilio would refuse ``key`` as a placeholder name, or None."""
    if not key:
        return "a placeholder name is empty"
    if any(character.isspace() for character in key):
        return "placeholder names have no spaces"
    if len(key) > MAX_PLACEHOLDER_LENGTH:
        return f"placeholder names have at most {MAX_PLACEHOLDER_LENGTH} characters, this one has {len(key)}"
    return None


def value_problem(value: str) -> str | None:
    """Why Twilio would refuse ``value`` (already text) as a variable's value, or None."""
    if not value:
        return "the value is empty (Twilio refuses empty values with error 21656)"
    if len(value) > MAX_VARIABLE_LENGTH:
        return f"the value has {len(value)} characters, more than Twilio's {MAX_VARIABLE_LENGTH}"
    forbidden = _WHATSAPP_FORBIDDEN.search(value)
    if forbidden:
        what = "more than four consecutive spaces" if forbidden.group().startswith(" ") else "a newline or a tab"
        return f"the value holds {what}, which WhatsApp refuses in a template variable"
    return None


def variable_safe_text(text: Any, fallback: str) -> str:
    """Text from elsewhere (a meeting's subject, a person's name) made fit for a template variable: every run of
    whitespace, newlines and tabs included, becomes one space; the ends are trimmed; text longer than Twilio's
    limit is cut, ending with an ellipsis; and what is left empty becomes ``fallback`` (made fit the same way,
    and not empty itself)."""
    cleaned = " ".join(str(text or "").split())
    if len(cleaned) > MAX_VARIABLE_LENGTH:
        cleaned = cleaned[: MAX_VARIABLE_LENGTH - 1].rstrip() + "\u2026"
    if cleaned:
        return cleaned
    if not " ".join(fallback.split()):
        raise ValueError("the fallback of a template variable must hold text")
    return variable_safe_text(fallback, fallback)


def variables_problem(values: Mapping[str, str], keys: Iterable[str] | None = None) -> tuple[str | None, str] | None:
    """The first rule of Twilio's for template variables that ``values`` breaks, as (placeholder or None, why),
    or None. Only the placeholders in ``keys`` are checked one by one (all of them by default); the count
    always covers the whole mapping."""
    if len(values) > MAX_TEMPLATE_VARIABLES:
        return None, f"{len(values)} variables, more than the {MAX_TEMPLATE_VARIABLES} a template takes"
    for key in values if keys is None else keys:
        problem = placeholder_problem(key) or value_problem(values[key])
        if problem:
            return key, problem
    return None


def _describe(problem: tuple[str | None, str]) -> str:
    """A broken rule in words, naming the placeholder when it is one's."""
    key, why = problem
    return why if key is None else f"placeholder {key!r}: {why}"


def variable_text(value: Any, parameter: str, key: str) -> str:
    """A template variable as the text Twilio receives: strings as they are, booleans as ``true``/``false``,
    numbers as ``str()`` of them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float, Decimal)):
        return str(value)
    raise InvalidParameterError(
        parameter, f"the value of {key!r} must be text, a number or a boolean, got {type(value).__name__}"
    )


def _mapping(value: Any, parameter: str, what: str) -> Mapping[Any, Any]:
    """A mapping as given, or read from a JSON object string (what Jinja renders); empty for None or ""."""
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as error:
            raise InvalidParameterError(parameter, "expected a mapping or a JSON object") from error
    if not isinstance(value, Mapping):
        raise InvalidParameterError(parameter, f"expected a mapping of {what}, got {type(value).__name__}")
    return value


def _texts(value: Any, parameter: str) -> dict[str, str]:
    """A flat mapping of placeholder -> text, its form checked (not yet Twilio's rules)."""
    result = {}
    for key, item in _mapping(value, parameter, "placeholder to value").items():
        if not isinstance(key, (str, int)) or isinstance(key, bool) or not str(key).strip():
            raise InvalidParameterError(parameter, f"placeholder names must be text or numbers, got {key!r}")
        result[str(key).strip()] = variable_text(item, parameter, str(key))
    return result


def variables(value: Any, parameter: str = "template_variables") -> dict[str, str]:
    """A flat mapping of placeholder -> text that Twilio accepts; a JSON object string (from Jinja) is accepted.

    Raises naming ``parameter`` and the placeholder when a rule of Twilio's is broken (see
    :func:`variables_problem`)."""
    result = _texts(value, parameter)
    problem = variables_problem(result)
    if problem:
        raise InvalidParameterError(parameter, _describe(problem))
    return result


def recipient_variables(
    value: Any, default_region: str | None = None, parameter: str = "recipient_variables"
) -> dict[str, dict[str, str]]:
    """Per-recipient variables keyed by E.164 number, in their form only: Twilio's rules are checked per
    recipient by :func:`template_send`, on what that recipient would be sent."""
    result: dict[str, dict[str, str]] = {}
    for recipient, mapping in _mapping(value, parameter, "recipient to variables").items():
        try:
            number = phone_number(str(recipient), default_region)
        except ValueError as error:
            raise InvalidParameterError(parameter, f"{recipient!r} is not a phone number: {error}") from error
        result[number] = {**result.get(number, {}), **_texts(mapping, f"{parameter}[{recipient!r}]")}
    return result


# --- plain values -----------------------------------------------------------------------------------------------

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def _omitted(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def flag(value: Any, parameter: str, default: bool | None = None) -> bool | None:
    """A boolean from a bool or what a template renders one into (``True``, ``false``, ``yes``, ``0`` ...);
    None or an empty string gives ``default``."""
    if _omitted(value):
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise InvalidParameterError(parameter, f"expected true or false, got {value!r}")


def text(value: Any, parameter: str) -> str | None:
    """Optional free text (a subject, a location, a comment); None stays None."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidParameterError(parameter, f"expected text, got {type(value).__name__}")
    return value


def choice(value: Any, parameter: str, options: tuple[str, ...]) -> str:
    """One of ``options``, case-insensitively, returned as written in ``options``."""
    if isinstance(value, str):
        for option in options:
            if value.strip().lower() == option.lower():
                return option
    raise InvalidParameterError(parameter, f"expected one of {', '.join(map(repr, options))}, got {value!r}")


#: What a Jinja template renders when the value it reads is missing: never an id.
RENDERED_NOTHING = frozenset({"None", "null", "undefined", "[]", "{}"})


def identifier(value: Any, parameter: str) -> str:
    """An opaque API identifier (a Graph event id ...): non-empty text without spaces."""
    if isinstance(value, Mapping):
        raise InvalidParameterError(
            parameter, f"expected an id, got a mapping with keys {sorted(map(str, value))}: pick one of its keys"
        )
    if not isinstance(value, str) or not value.strip():
        raise InvalidParameterError(parameter, f"expected a non-empty id, got {value!r}")
    if any(character.isspace() for character in value.strip()):
        raise InvalidParameterError(parameter, f"{value!r} is not an id: it contains spaces")
    if value.strip() in RENDERED_NOTHING:
        raise InvalidParameterError(
            parameter, f"got {value.strip()!r}: a template rendered an empty value (an XCom that was never pushed?)"
        )
    return value.strip()


@dataclass(frozen=True)
class TemplateSend:
    """A WhatsApp template send, validated: the Content SID, each valid recipient's variables (E.164 ->
    placeholder -> text, in input order), the entries that are not phone numbers (as written, why) and the
    recipients whose own variables break a rule of Twilio's (E.164, why)."""

    template_sid: str
    messages: dict[str, dict[str, str]]
    invalid: list[tuple[str, str]]
    invalid_variables: list[tuple[str, str]]


def template_send(
    to: Any, content_sid: Any, common: Any = None, personal: Any = None, default_region: Any = None
) -> TemplateSend:
    """Validate what the send operator and the notifier take (``recipients``, ``template_sid``,
    ``template_variables``, ``recipient_variables``, ``default_region``); per-recipient variables merge over
    the common ones.

    Common variables that break a rule of Twilio's fail the whole send (InvalidParameterError naming
    ``template_variables`` and the placeholder); a recipient whose own variables break one (or whose merged
    variables are too many) is left out and reported in ``invalid_variables``."""
    region_code = region(default_region)
    parsed = recipients(to, region_code)
    sid = template_sid(content_sid)
    shared = variables(common)
    own = recipient_variables(personal, region_code)
    messages: dict[str, dict[str, str]] = {}
    refused: list[tuple[str, str]] = []
    for number in parsed.valid:
        mine = own.get(number, {})
        merged = {**shared, **mine}
        problem = variables_problem(merged, mine)
        if problem:
            refused.append((number, f"recipient_variables[{number!r}]: {_describe(problem)}"))
        else:
            messages[number] = merged
    return TemplateSend(sid, messages, parsed.invalid, refused)

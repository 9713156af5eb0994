"""Emulated Twilio Messages (API 2010-04-01) and Content (v1) APIs for WhatsApp template messages.

- ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json``: form body, HTTP Basic auth, ``whatsapp:``
  addresses, ``ContentSid`` + ``ContentVariables`` (a JSON object of strings), ``From`` or
  ``MessagingServiceSid``. Refusals use Twilio's codes: 21211 (invalid To), 21910 (From/To channel mismatch),
  21619 (no Body, MediaUrl or ContentSid), 21655 (unknown ContentSid), 21656 (bad ContentVariables),
  63007 (From is not a sender of the account), 21604/21603 (missing To/From), 20003 (authentication).
- ``GET .../Messages/{Sid}.json`` (20404 when unknown) and ``GET .../Messages.json`` with ``To``, ``From``,
  ``DateSent`` (and ``<``/``>``) filters, sorted by ``date_sent``, most recent first, messages not sent yet
  first or last (the ``twilio_unsent_placement`` setting), with ``PageSize`` (1 to 1,000), ``Page`` (a page
  number) and ``PageToken`` paging.
- ``ContentVariables`` are held to Twilio's rules (21656): a JSON object of at most 100 strings, keys without
  spaces of at most 16 characters, values of at most 1,600 characters, none empty (error 21656's causes), none
  holding a newline, a tab or more than four consecutive spaces (WhatsApp's rule for template parameters).
- Statuses advance with the sandbox clock along Twilio's path: ``accepted`` (via a Messaging Service) ->
  ``queued`` -> ``sending`` -> ``sent`` -> ``delivered`` -> ``read``, at the delays (seconds after the create)
  of the ``status_delays`` setting. Seeded numbers end ``undelivered`` (after ``sent``), ``failed`` (instead
  of ``sent``: never sent, so no ``date_sent`` and no ``price``) or stay ``sent``.
- Through a Messaging Service, the create errors listed in the ``twilio_service_deferred_errors`` setting
  (invalid or unreachable recipients) are not answered with a 400: the message is created ``accepted`` and
  turns ``failed`` with that error code, as Twilio's support article on undelivered messages describes.
  Authentication (20003), throttling (20429) and content errors (21655, 21656) still come back at once.
- ``GET /v1/Content/{Sid}`` and ``GET /v1/Content`` list the seeded templates.
- More than ``twilio_max_concurrency`` requests in flight at once get 429 with code 20429 (the control
  middleware counts them).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import urllib.parse
from typing import Any

import phonenumbers
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from airflow_provider_qconn.sandbox.common import json_response, random_hex, rfc2822, state_of
from airflow_provider_qconn.sandbox.control import DEFAULT_SETTINGS
from airflow_provider_qconn.sandbox.state import State

#: Seconds after the create at which a message reaches each status (``queued`` only after ``accepted``).
DEFAULT_STATUS_DELAYS = {"queued": 0.25, "sending": 0.5, "sent": 1.0, "delivered": 2.0, "read": 4.0}
_STEPS = ("queued", "sending", "sent", "delivered", "read")
#: Twilio's limits on ContentVariables (its guide to variables with Content templates, error 21656's page)
#: and WhatsApp's rule for template parameters (no newline, no tab, at most four consecutive spaces).
MAX_CONTENT_VARIABLES = 100
MAX_VARIABLE_KEY_LENGTH = 16
MAX_VARIABLE_VALUE_LENGTH = 1600
_WHATSAPP_FORBIDDEN = re.compile(r"[\n\r\t]| {5,}")
_ERROR_MESSAGES = {
    21211: "Invalid 'To' Phone Number",
    30008: "Unknown error",
    63016: "Failed to send freeform message because you are outside the allowed window. If you are using "
    "WhatsApp, please use a Message Template.",
}
_API_VERSION = "2010-04-01"
DEFERRED_ERRORS = "twilio_service_deferred_errors"


class TwilioError(Exception):
    """An error Twilio answers with: ``{"code", "message", "more_info", "status"}``."""

    def __init__(self, status: int, code: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}

    def response(self) -> Response:
        return json_response(error_body(self.status, self.code, self.message), self.status, self.headers)


def error_body(status: int, code: int, message: str) -> dict[str, Any]:
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


def _authenticate(request: Request, state: State) -> dict[str, Any]:
    """Check HTTP Basic auth (Account SID + Auth Token) against the account in the path."""
    failure = TwilioError(
        401,
        20003,
        "Authenticate",
        headers={"WWW-Authenticate": 'Basic realm="Twilio API"'},
    )
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        raise failure
    try:
        username, _, password = base64.b64decode(encoded).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError) as error:
        raise failure from error
    account = state.doc("SELECT doc FROM accounts WHERE sid = ?", (username,))
    if account is None or account["auth_token"] != password:
        raise failure
    path_sid = request.path_params.get("account_sid")
    if path_sid is not None and path_sid != account["sid"]:
        raise failure
    return account


def twilio_route(handler: Any) -> Any:
    async def endpoint(request: Request) -> Response:
        state = state_of(request)
        try:
            account = _authenticate(request, state)
            return await handler(request, state, account)
        except TwilioError as error:
            return error.response()

    endpoint.__name__ = handler.__name__
    return endpoint


# --- messages ------------------------------------------------------------------------------------------


def _address(value: str) -> tuple[str, str]:
    """Split ``whatsapp:+1555...`` into (channel, number); plain numbers are the SMS channel."""
    channel, sep, number = value.partition(":")
    return (channel, number) if sep else ("sms", value)


def _valid_e164(number: str) -> bool:
    if not re.fullmatch(r"\+[1-9]\d{6,14}", number):
        return False
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.is_possible_number(parsed)


def status_delays(state: State) -> dict[str, float]:
    """When each status is reached, in seconds after the create: the ``status_delays`` setting, and for the
    steps it leaves out their defaults, moved so that no step comes before an earlier one."""
    given = {step: float(delay) for step, delay in state.get_setting("status_delays", {}).items()}
    delays: dict[str, float] = {}
    for index, step in enumerate(_STEPS):
        earliest = max([delays[earlier] for earlier in _STEPS[:index]], default=0.0)
        if step in given:
            delays[step] = max(given[step], earliest)
            continue
        latest = min([given[later] for later in _STEPS[index + 1 :] if later in given], default=float("inf"))
        delays[step] = max(min(DEFAULT_STATUS_DELAYS[step], latest), earliest)
    return delays


def _timeline(delays: dict[str, float], message: dict[str, Any]) -> list[tuple[float, str]]:
    """The (time, status) steps of a message, from its creation to its final status, at these ``status_delays``.

    Twilio's path: accepted (Messaging Service) -> queued -> sending -> sent -> delivered -> read, or
    undelivered after sent. ``failed`` means the message could not be sent: it comes instead of ``sent``.
    """
    created = message["_created"]
    steps = [(created, message["_initial_status"])]
    fate = message.get("_fate") or {}
    if fate.get("deferred"):  # refused, but through a Messaging Service: accepted, then failed
        return [*steps, (created + delays["queued"], "failed")]
    final = fate.get("final_status", "read")
    if message["_initial_status"] == "accepted":
        steps.append((created + delays["queued"], "queued"))
    steps.append((created + delays["sending"], "sending"))
    if final == "failed":
        return [*steps, (created + delays["sent"], "failed")]
    steps.append((created + delays["sent"], "sent"))
    if final == "undelivered":
        steps.append((created + delays["delivered"], final))
    elif final in ("delivered", "read"):
        steps.append((created + delays["delivered"], "delivered"))
        if final == "read":
            steps.append((created + delays["read"], "read"))
    return steps


def render_message(
    state: State, message: dict[str, Any], now: float | None = None, delays: dict[str, float] | None = None
) -> dict[str, Any]:
    """A message resource as Twilio returns it at the sandbox clock's current time.

    ``now`` and ``delays`` (``status_delays`` of the settings) may be given when many messages are rendered.
    """
    now = state.now() if now is None else now
    reached = [(when, status) for when, status in _timeline(delays or status_delays(state), message) if when <= now]
    updated, status = reached[-1]
    sent_at = next((when for when, step in reached if step == "sent"), None)
    fate = message.get("_fate") or {}
    failed = status in ("failed", "undelivered")
    public = {key: value for key, value in message.items() if not key.startswith("_")}
    public.update(
        {
            "status": status,
            "date_updated": rfc2822(updated),
            "date_sent": rfc2822(sent_at),
            "error_code": fate.get("error_code") if failed else None,
            "error_message": (fate.get("error_message") or _ERROR_MESSAGES.get(fate.get("error_code", 0)))
            if failed
            else None,
            "price": "-0.00500" if sent_at is not None else None,
        }
    )
    return public


def _content_variables(text: str | None) -> dict[str, str]:
    """``ContentVariables`` read and held to Twilio's rules; 21656 for any broken one."""
    invalid = TwilioError(400, 21656, "The ContentVariables Parameter is invalid.")
    try:
        variables = json.loads(text or "{}")
    except ValueError as error:
        raise invalid from error
    if not isinstance(variables, dict) or len(variables) > MAX_CONTENT_VARIABLES:
        raise invalid
    for key, value in variables.items():
        if not key or any(c.isspace() for c in key) or len(key) > MAX_VARIABLE_KEY_LENGTH:
            raise invalid
        if not isinstance(value, str) or not value or len(value) > MAX_VARIABLE_VALUE_LENGTH:
            raise invalid
        if _WHATSAPP_FORBIDDEN.search(value):
            raise invalid
    return variables


def _render_template(template: dict[str, Any], variables: dict[str, str]) -> str:
    values = {**template.get("variables", {}), **variables}
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: str(values.get(m.group(1), m.group(0))), template["body"])


@twilio_route
async def create_message(request: Request, state: State, account: dict[str, Any]) -> Response:
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        # What Twilio's clients send; parsed directly, cheaper than Starlette's general form parser.
        text = (await request.body()).decode(errors="replace")
        fields = dict(urllib.parse.parse_qsl(text, keep_blank_values=True))
    else:
        form = await request.form()
        fields = {key: str(value) for key, value in form.multi_items()}
    to = fields.get("To", "")
    if not to:
        raise TwilioError(400, 21604, "A 'To' phone number is required.")
    service_sid = fields.get("MessagingServiceSid")
    sender = fields.get("From")
    if service_sid:
        senders = account["messaging_services"].get(service_sid)
        if senders is None:
            raise TwilioError(400, 21701, f"The Messaging Service Sid {service_sid} is invalid.")
        to_channel = _address(to)[0]
        sender = next((s for s in senders if _address(s)[0] == to_channel), None)
        if sender is None:
            raise TwilioError(
                400, 21703, "The Messaging Service does not have a phone number available to send a message."
            )
    elif not sender:
        raise TwilioError(400, 21603, "A 'From' phone number is required.")
    to_channel, to_number = _address(to)
    from_channel, _from_number = _address(sender)
    fate = state.doc("SELECT doc FROM numbers WHERE number = ?", (to_number,)) or {}
    deferrable = set(state.get_setting(DEFERRED_ERRORS, DEFAULT_SETTINGS[DEFERRED_ERRORS]))
    deferred: TwilioError | None = None
    try:
        if fate.get("create_error") == 21211 or not _valid_e164(to_number):
            raise TwilioError(400, 21211, f"Invalid 'To' Phone Number: {to_number}")
        if to_channel != from_channel:
            raise TwilioError(400, 21910, "Invalid From and To pair. From and To should be of the same channel")
        if sender not in account["senders"]:
            raise TwilioError(400, 63007, "Twilio could not find a Channel with the specified From address")
        if fate.get("create_error"):
            code = int(fate["create_error"])
            raise TwilioError(400, code, fate.get("message", "The message could not be created."))
    except TwilioError as error:
        if not (service_sid and error.code in deferrable):
            raise
        deferred = error  # a Messaging Service accepts the message and fails it later
    content_sid = fields.get("ContentSid")
    body = fields.get("Body")
    if content_sid:
        template = state.doc(
            "SELECT doc FROM contents WHERE sid = ? AND account_sid = ?", (content_sid, account["sid"])
        )
        if template is None:
            raise TwilioError(400, 21655, "The ContentSid is Invalid.")
        body = _render_template(template, _content_variables(fields.get("ContentVariables")))
    elif not body and "MediaUrl" not in fields:
        raise TwilioError(400, 21619, "A text message body or media urls must be specified.")
    now = state.now()
    sid = "SM" + random_hex(32)
    root = f"/{_API_VERSION}/Accounts/{account['sid']}/Messages/{sid}"
    message = {
        "account_sid": account["sid"],
        "api_version": _API_VERSION,
        "body": body,
        "date_created": rfc2822(now),
        "direction": "outbound-api",
        "from": sender,
        "messaging_service_sid": service_sid,
        "num_media": "0",
        "num_segments": "1",
        "price_unit": "USD",
        "sid": sid,
        "subresource_uris": {"media": f"{root}/Media.json", "feedback": f"{root}/Feedback.json"},
        "to": to,
        "uri": f"{root}.json",
        "_created": now,
        "_initial_status": "accepted" if service_sid else "queued",
        "_fate": fate
        if deferred is None
        else {
            "deferred": True,
            "error_code": deferred.code,
            "error_message": _ERROR_MESSAGES.get(deferred.code, deferred.message),
        },
        "_content_sid": content_sid,
        "_content_variables": fields.get("ContentVariables"),
    }
    state.execute(
        "INSERT INTO messages (sid, account_sid, to_addr, from_addr, created_at, seq, doc) "
        "VALUES (?, ?, ?, ?, ?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM messages), ?)",
        (sid, account["sid"], to, sender, now, json.dumps(message)),
    )
    return json_response(render_message(state, message, now), status=201)


@twilio_route
async def fetch_message(request: Request, state: State, account: dict[str, Any]) -> Response:
    sid = request.path_params["sid"]
    message = state.doc("SELECT doc FROM messages WHERE sid = ? AND account_sid = ?", (sid, account["sid"]))
    if message is None:
        raise TwilioError(404, 20404, f"The requested resource {request.url.path} was not found")
    return json_response(render_message(state, message))


def _date_filter(value: str) -> str:
    match = re.match(r"\d{4}-\d{2}-\d{2}", value)
    if not match:
        raise TwilioError(400, 20001, f"Invalid date: {value}")
    return match.group(0)


def _paging(params: Any) -> tuple[int, int, str | None]:
    """(PageSize, Page, the SID a PageToken names) of a list request, validated.

    The contract bounds PageSize to 1..1,000 (default 50). Twilio documents no answer to a size outside that: the
    sandbox refuses it with Twilio's error shape (400, the code it gives any unusable paging parameter) rather
    than clamping it silently, so a client asking for more than Twilio would give finds out here. ``Page`` is
    "simply for client state" (the contract): a page number echoed back, never an offset; the position comes
    from ``PageToken``, which only the API hands out (in ``next_page_uri``): like Twilio's (``PA`` + a SID), it
    names the last message of the previous page, and the next page starts after wherever that message is now.
    A page past the first without a token is refused as Twilio refused it to users listing their accounts:
    400, 70002.
    """
    try:
        page_size = int(params.get("PageSize", "50"))
        page = int(params.get("Page", "0"))
    except ValueError as error:
        raise TwilioError(400, 20001, "Invalid paging parameter") from error
    if not 1 <= page_size <= 1000:
        raise TwilioError(400, 20001, f"PageSize must be between 1 and 1000, not {page_size}")
    if page < 0:
        raise TwilioError(400, 20001, f"Page must not be negative, not {page}")
    token = params.get("PageToken")
    if not token:
        if page > 0:
            raise TwilioError(400, 70002, "Paged requests must include a PageToken")
        return page_size, page, None
    match = re.fullmatch(r"PA(SM[0-9a-f]{32})", token)
    if not match:
        raise TwilioError(400, 20001, "Invalid PageToken")
    return page_size, page, match.group(1)


#: Whether a stored message ever reaches ``sent`` (what ``_timeline`` says, in SQL): not when its create was
#: deferred to a failure, nor when its number's fate is ``failed``.
_REACHES_SENT = (
    "(COALESCE(json_extract(doc, '$._fate.deferred'), 0) = 0"
    " AND COALESCE(json_extract(doc, '$._fate.final_status'), 'read') != 'failed')"
)


@twilio_route
async def list_messages(request: Request, state: State, account: dict[str, Any]) -> Response:
    """A page of the account's messages, in Twilio's order, filtered and ordered in SQL.

    Twilio documents its message list as sorted by DateSent, most recent first; a message not sent yet has no
    DateSent, and where such messages go is not documented. The ``twilio_unsent_placement`` setting puts them
    ``"first"`` or ``"last"`` (newest created first among themselves), so clients can be tried against both.
    Each page orders the ids of every matching message in SQL (a fast scan), and decodes and renders only its
    own messages.
    """
    params = request.query_params
    page_size, page, after_sid = _paging(params)
    now = state.now()
    delays = status_delays(state)
    where = ["account_sid = :account"]
    args: dict[str, Any] = {"account": account["sid"], "sent_delay": delays["sent"], "now": now}
    for name, column in (("To", "to_addr"), ("From", "from_addr")):
        if params.get(name):
            where.append(f"{column} = :{column}")
            args[column] = params[name]
    # The contract's DateSent filters compare dates (YYYY-MM-DD, GMT); a message without one never matches.
    day_filters: list[str] = []
    for name, operator in (("DateSent", "="), ("DateSent<", "<="), ("DateSent>", ">=")):
        if params.get(name):
            key = f"day_{len(day_filters)}"
            day_filters.append(f"sent_day {operator} :{key}")
            args[key] = _date_filter(params[name])
    unsent_first = state.get_setting("twilio_unsent_placement", "first") == "first"
    listed = f"""
        WITH listed AS (
            SELECT sid, seq, created_at, ({_REACHES_SENT} AND created_at + :sent_delay <= :now) AS is_sent
            FROM messages WHERE {" AND ".join(where)}
        )
        SELECT sid FROM (
            SELECT *, CASE WHEN is_sent
                THEN strftime('%Y-%m-%d', CAST(created_at + :sent_delay AS INTEGER), 'unixepoch') END
                AS sent_day
            FROM listed
        ) {"WHERE is_sent AND " + " AND ".join(day_filters) if day_filters else ""}
        ORDER BY is_sent {"ASC" if unsent_first else "DESC"},
            CASE WHEN is_sent THEN created_at + :sent_delay ELSE created_at END DESC, seq DESC
    """
    with state.transaction() as db:  # the listing and its page's documents, from one snapshot
        sids = [sid for (sid,) in db.execute(listed, args)]
        start = 0
        if after_sid is not None:
            try:
                start = sids.index(after_sid) + 1
            except ValueError:
                raise TwilioError(400, 20001, "Invalid PageToken") from None
        page_sids = sids[start : start + page_size]
        marks = ", ".join("?" * len(page_sids))
        docs = dict(db.execute(f"SELECT sid, doc FROM messages WHERE sid IN ({marks})", page_sids).fetchall())
    chunk = [json.loads(docs[sid]) for sid in page_sids]
    path = request.url.path
    base_query = {k: v for k, v in params.items() if k not in ("Page", "PageToken", "PageSize")}

    def page_uri(number: int, extra: dict[str, str] | None = None) -> str:
        query = {**base_query, "PageSize": str(page_size), "Page": str(number), **(extra or {})}
        return f"{path}?{urllib.parse.urlencode(query)}"

    more = len(sids) > start + page_size
    first_index = page * page_size  # Twilio's start/end count from the page number, not from the token
    body = {
        "end": first_index + len(chunk) - 1 if chunk else 0,
        "first_page_uri": page_uri(0),
        "messages": [render_message(state, message, now, delays) for message in chunk],
        "next_page_uri": page_uri(page + 1, {"PageToken": f"PA{chunk[-1]['sid']}"}) if more else None,
        "page": page,
        "page_size": page_size,
        "previous_page_uri": page_uri(page - 1) if page > 0 else None,
        "start": first_index,
        "uri": page_uri(page),
    }
    return json_response(body)


# --- content ---------------------------------------------------------------------------------------------


def _render_content(request: Request, template: dict[str, Any]) -> dict[str, Any]:
    root = f"{request.url.scheme}://{request.url.netloc}/v1/Content/{template['sid']}"
    return {
        "account_sid": template["account_sid"],
        "date_created": _iso(template["date_created"]),
        "date_updated": _iso(template.get("date_updated", template["date_created"])),
        "friendly_name": template["friendly_name"],
        "language": template["language"],
        "links": {
            "approval_create": f"{root}/ApprovalRequests/whatsapp",
            "approval_fetch": f"{root}/ApprovalRequests",
        },
        "sid": template["sid"],
        "types": {"twilio/text": {"body": template["body"]}},
        "url": root,
        "variables": template.get("variables", {}),
    }


def _iso(timestamp: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(int(timestamp), dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@twilio_route
async def fetch_content(request: Request, state: State, account: dict[str, Any]) -> Response:
    template = state.doc(
        "SELECT doc FROM contents WHERE sid = ? AND account_sid = ?",
        (request.path_params["sid"], account["sid"]),
    )
    if template is None:
        raise TwilioError(404, 20404, f"The requested resource {request.url.path} was not found")
    return json_response(_render_content(request, template))


@twilio_route
async def list_content(request: Request, state: State, account: dict[str, Any]) -> Response:
    try:
        page_size = max(1, min(1000, int(request.query_params.get("PageSize", "50"))))
        page = max(0, int(request.query_params.get("Page", "0")))
    except ValueError as error:
        raise TwilioError(400, 20001, "Invalid paging parameter") from error
    templates = state.docs("SELECT doc FROM contents WHERE account_sid = ? ORDER BY seq", (account["sid"],))
    chunk = templates[page * page_size : (page + 1) * page_size]
    url = f"{request.url.scheme}://{request.url.netloc}/v1/Content"

    def page_url(number: int) -> str:
        return f"{url}?PageSize={page_size}&Page={number}"

    more = len(templates) > (page + 1) * page_size
    return json_response(
        {
            "contents": [_render_content(request, template) for template in chunk],
            "meta": {
                "page": page,
                "page_size": page_size,
                "first_page_url": page_url(0),
                "previous_page_url": page_url(page - 1) if page > 0 else None,
                "url": page_url(page),
                "next_page_url": page_url(page + 1) if more else None,
                "key": "contents",
            },
        }
    )


routes = [
    Route("/2010-04-01/Accounts/{account_sid}/Messages.json", create_message, methods=["POST"]),
    Route("/2010-04-01/Accounts/{account_sid}/Messages.json", list_messages, methods=["GET"]),
    Route("/2010-04-01/Accounts/{account_sid}/Messages/{sid}.json", fetch_message, methods=["GET"]),
    Route("/v1/Content/{sid}", fetch_content, methods=["GET"]),
    Route("/v1/Content", list_content, methods=["GET"]),
]

"""Check the sandbox's recorded exchanges against the published OpenAPI contracts in ``specs/``.

Each journal entry of the sandbox (``sandbox.control.journal()``) becomes an openapi-core request and response
(:class:`JournalRequest`, :class:`JournalResponse`, implementing ``openapi_core.protocols``) validated against the
contract of the service its path belongs to, on that service's real host:

- Graph, ``/v1.0/...``: ``specs/msgraph`` on ``https://graph.microsoft.com/v1.0`` (the sandbox's ``/v1.0`` prefix
  is the server's path, so the spec's ``/me/events`` is the sandbox's ``/v1.0/me/events``);
- Twilio Messages, ``/2010-04-01/...``: ``specs/twilio/api_v2010_messages.json`` on ``https://api.twilio.com``;
- Twilio Content, ``/v1/Content...``: ``specs/twilio/content_v1.json`` on ``https://content.twilio.com``, which the
  sandbox serves on its own host.

Beyond what openapi-core checks, responses may carry no property their schema does not declare (OData
annotations ``@odata.*`` aside), and Twilio responses must carry every property their schema declares (Twilio
always sends each field, ``null`` when empty).

The identity platform's token endpoint is in no contract: the real azure-identity and MSAL clients in
``tests/integration`` prove it. Twilio's error bodies are not in its contract either: :func:`twilio_error_problems`
checks them against the shape Twilio documents.
"""

from __future__ import annotations

import email.utils
import json
import re
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
from openapi_core import Config, OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_core.templating.paths.finders import APICallPathFinder
from openapi_core.templating.responses.exceptions import ResponseNotFound
from werkzeug.datastructures import Headers, ImmutableMultiDict

SPECS = Path(__file__).parent / "specs"
GRAPH_STRICT = "msgraph/v1.0-events.json"
GRAPH_LENIENT = "msgraph/v1.0-events.lenient.json"
TWILIO_MESSAGES = "twilio/api_v2010_messages.json"
TWILIO_CONTENT = "twilio/content_v1.json"

#: The shape of a Twilio REST error: the fields Twilio documents for its JSON exceptions
#: (https://www.twilio.com/docs/usage/twilios-response, "Exceptions") and twilio-python reads
#: (``twilio.base.version.Version.exception``: ``code``, ``message``, ``more_info``).
TWILIO_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["code", "message", "more_info", "status"],
    "properties": {
        "code": {"type": "integer", "minimum": 10000, "maximum": 99999},
        "message": {"type": "string", "minLength": 1},
        "more_info": {"type": "string", "pattern": r"^https://www\.twilio\.com/docs/errors/\d+$"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
    },
}

_RFC2822 = re.compile(
    r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} "
    r"\d{2}:\d{2}:\d{2} \+0000$"
)


def _is_rfc2822(value: Any) -> bool:
    if not isinstance(value, str):
        return True
    return bool(_RFC2822.match(value)) and email.utils.parsedate_to_datetime(value) is not None


#: Twilio's own formats, which a generic validator would ignore: dates as Twilio writes them
#: (``Thu, 24 Aug 2023 05:01:45 +0000``, GMT), numbers in E.164 with an optional channel prefix
#: (``whatsapp:+14155238886``), ISO 4217 currency codes.
TWILIO_FORMATS: dict[str, Callable[[Any], bool]] = {
    "date-time-rfc-2822": _is_rfc2822,
    "phone-number": lambda v: not isinstance(v, str) or bool(re.fullmatch(r"(?:[a-z]+:)?\+[1-9]\d{1,14}", v)),
    "currency": lambda v: not isinstance(v, str) or bool(re.fullmatch(r"[A-Z]{3}", v)),
}


@cache
def document(name: str) -> dict[str, Any]:
    """A contract file under ``specs/`` as parsed JSON."""
    return json.loads((SPECS / name).read_text())


@cache
def load_spec(name: str, complete_responses: bool = False) -> OpenAPI:
    """A contract file as an openapi-core application (built once per session).

    ``complete_responses`` treats every property a response schema declares as required.
    """
    config = Config(
        extra_format_validators=TWILIO_FORMATS if name.startswith("twilio/") else None,
        response_properties_default_policy="required" if complete_responses else "optional",
    )
    return OpenAPI.from_dict(document(name), config=config)


@dataclass(frozen=True)
class Contract:
    """Which contract covers a sandbox path, on which of the real service's hosts, and how strictly."""

    name: str
    host_url: str
    request_spec: str
    response_spec: str
    complete_responses: bool
    error_shape: str  # "contract": its errors are in the contract; "twilio": see TWILIO_ERROR_SCHEMA


#: Graph requests are checked against the lenient file because the strict one requires ``@odata.type`` in every
#: object, and neither Graph's clients nor its documentation's examples send it. Graph's responses do not carry it
#: either: an event comes back with ``@odata.context`` and ``@odata.etag`` but no ``@odata.type``, on the event
#: or on its nested ``start``/``body``/``attendees``/``emailAddress`` objects, nor does an error's ``innerError``.
#: So every real Graph response fails the strict file (``test_strict_graph_file_rejects_only_odata_type`` shows
#: it, and that nothing else is wrong, for the sandbox's responses) and responses are checked against the lenient
#: file too: the strict one without that single requirement. Graph leaves properties out of a response (those of
#: navigation properties, and all but ``$select``-ed ones), so its responses need not be complete.
GRAPH = Contract("graph", "https://graph.microsoft.com", GRAPH_LENIENT, GRAPH_LENIENT, False, "contract")
TWILIO_API = Contract("twilio-messages", "https://api.twilio.com", TWILIO_MESSAGES, TWILIO_MESSAGES, True, "twilio")
TWILIO_CONTENT_API = Contract(
    "twilio-content", "https://content.twilio.com", TWILIO_CONTENT, TWILIO_CONTENT, True, "twilio"
)


def contract_for(path: str) -> Contract:
    """The contract of a sandbox path; LookupError for a path in no contract (token endpoint, control API)."""
    if path.startswith("/v1.0/"):
        return GRAPH
    if path.startswith("/2010-04-01/"):
        return TWILIO_API
    if path == "/v1/Content" or path.startswith("/v1/Content/"):
        return TWILIO_CONTENT_API
    raise LookupError(f"no contract describes {path}")


@dataclass(frozen=True)
class Exchange:
    """One request and its response, as the sandbox journal recorded them."""

    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    body: str
    status: int
    response_headers: Mapping[str, str]
    response_json: Any
    service: str = ""
    raw: Mapping[str, Any] = field(repr=False, compare=False, default_factory=dict)

    @classmethod
    def from_journal(cls, entry: Mapping[str, Any]) -> Exchange:
        return cls(
            method=entry["method"],
            path=entry["path"],
            query=entry.get("query") or "",
            headers=dict(entry.get("headers") or {}),
            body=entry.get("body") or "",
            status=int(entry["status"]),
            response_headers=dict(entry.get("response_headers") or {}),
            response_json=entry.get("response_json"),
            service=entry.get("service", ""),
            raw=entry,
        )

    @property
    def contract(self) -> Contract:
        return contract_for(self.path)

    def with_response_json(self, body: Any) -> Exchange:
        return replace(self, response_json=body)

    def with_status(self, status: int) -> Exchange:
        return replace(self, status=status)

    def __str__(self) -> str:
        query = f"?{self.query}" if self.query else ""
        return f"{self.method} {self.path}{query} -> {self.status}"


class JournalRequest:
    """An openapi-core ``Request`` (``openapi_core.protocols.Request``) made from a journal entry."""

    def __init__(self, exchange: Exchange, host_url: str) -> None:
        self.host_url = host_url
        self.path = exchange.path
        self.method = exchange.method.lower()
        self.body: bytes | None = exchange.body.encode() if exchange.body else None
        self.content_type = exchange.headers.get("content-type", "")
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(urllib.parse.parse_qsl(exchange.query, keep_blank_values=True)),
            header=Headers(list(exchange.headers.items())),
        )


class JournalResponse:
    """An openapi-core ``Response`` (``openapi_core.protocols.Response``) made from a journal entry."""

    def __init__(self, exchange: Exchange) -> None:
        self.status_code = exchange.status
        self.headers = Headers(list(exchange.response_headers.items()))
        self.content_type = exchange.response_headers.get("content-type", "")
        self.data: bytes | None = (
            json.dumps(exchange.response_json).encode() if exchange.response_json is not None else None
        )


def _describe(error: Exception) -> str:
    """An openapi-core error as its schema errors (where in the document, what is wrong), or its message."""
    schema_errors = getattr(error.__cause__, "schema_errors", None) or ()
    if not schema_errors:
        return f"{type(error).__name__}: {error}"
    return "; ".join(
        f"{type(error).__name__} at {'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message[:300]}"
        for e in schema_errors
    )


def request_problems(exchange: Exchange, spec: str | None = None) -> list[str]:
    """Every way the exchange's request breaks its contract (empty when it conforms)."""
    contract = exchange.contract
    app = load_spec(spec or contract.request_spec)
    return [_describe(e) for e in app.iter_request_errors(JournalRequest(exchange, contract.host_url))]


def response_problems(exchange: Exchange, spec: str | None = None) -> list[str]:
    """Every way the exchange's response breaks its contract (empty when it conforms)."""
    contract = exchange.contract
    name = spec or contract.response_spec
    app = load_spec(name, contract.complete_responses)
    request = JournalRequest(exchange, contract.host_url)
    problems = [_describe(e) for e in app.iter_response_errors(request, JournalResponse(exchange))]
    if not problems:
        problems = [f"undeclared property {p}" for p in undeclared_properties(exchange, name)]
    return problems


def response_described(exchange: Exchange) -> bool:
    """Whether the exchange's contract describes a response with its status at all."""
    contract = exchange.contract
    app = load_spec(contract.response_spec)
    request = JournalRequest(exchange, contract.host_url)
    return not any(
        isinstance(e, ResponseNotFound) for e in app.iter_response_errors(request, JournalResponse(exchange))
    )


def response_schema(exchange: Exchange, spec: str | None = None) -> dict[str, Any] | None:
    """The JSON schema the contract gives the exchange's response (None when it gives none)."""
    contract = exchange.contract
    name = spec or contract.response_spec
    found = APICallPathFinder(load_spec(name).spec).find(exchange.method.lower(), contract.host_url + exchange.path)
    responses = document(name)["paths"][found.path_result.pattern][exchange.method.lower()]["responses"]
    status = str(exchange.status)
    response = responses.get(status) or responses.get(f"{status[0]}XX") or responses.get("default")
    if response is None:
        return None
    response = _resolve(document(name), response)
    return response.get("content", {}).get("application/json", {}).get("schema")


def undeclared_properties(exchange: Exchange, spec: str | None = None) -> list[str]:
    """JSON pointers of the properties in the response that its schema does not declare."""
    name = spec or exchange.contract.response_spec
    schema = response_schema(exchange, name)
    if schema is None or exchange.response_json is None:
        return []
    return list(_undeclared(document(name), schema, exchange.response_json, ""))


def _resolve(root: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        node: Any = root
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def _declared(root: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any] | None:
    """Property name -> schema over a schema and its allOf/anyOf/oneOf parts; None for a free-form object."""
    schema = _resolve(root, schema)
    found = dict(schema.get("properties", {})) if "properties" in schema else None
    for key in ("allOf", "anyOf", "oneOf"):
        for part in schema.get(key, []):
            more = _declared(root, part)
            if more is not None:
                found = {**(found or {}), **more}
    return found


def _items(root: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any] | None:
    schema = _resolve(root, schema)
    if "items" in schema:
        return schema["items"]
    for key in ("allOf", "anyOf", "oneOf"):
        for part in schema.get(key, []):
            items = _items(root, part)
            if items is not None:
                return items
    return None


def _undeclared(root: dict[str, Any], schema: dict[str, Any], value: Any, pointer: str) -> Iterator[str]:
    if isinstance(value, dict):
        declared = _declared(root, schema)
        if declared is None:
            return
        for key, item in value.items():
            if key.startswith("@odata."):
                continue  # OData control information (context, etag, nextLink), not properties
            if key not in declared:
                yield f"{pointer}/{key}"
            else:
                yield from _undeclared(root, declared[key], item, f"{pointer}/{key}")
    elif isinstance(value, list):
        items = _items(root, schema)
        if items is not None:
            for index, item in enumerate(value):
                yield from _undeclared(root, items, item, f"{pointer}/{index}")


def twilio_error_problems(exchange: Exchange) -> list[str]:
    """How a Twilio error response differs from Twilio's documented error shape (and from its own status)."""
    body = exchange.response_json
    validator = jsonschema.Draft202012Validator(TWILIO_ERROR_SCHEMA)
    problems = [f"at {'/'.join(map(str, e.path)) or '(root)'}: {e.message}" for e in validator.iter_errors(body)]
    if not problems:
        if body["status"] != exchange.status:
            problems.append(f"status {body['status']} in the body, {exchange.status} on the response")
        if not body["more_info"].endswith(f"/{body['code']}"):
            problems.append(f"more_info {body['more_info']} is not the page of code {body['code']}")
    if "application/json" not in exchange.response_headers.get("content-type", ""):
        problems.append(f"content-type {exchange.response_headers.get('content-type')!r} is not JSON")
    return problems


@dataclass(frozen=True)
class Deviation:
    """A place where the sandbox follows the service's documentation rather than its generated contract.

    ``applies`` picks the exchanges concerned; ``adjust`` rewrites one into what the contract describes. A
    deviation must still be needed: the unadjusted response has to fail the contract, so that a fix of the
    contract upstream, or a change of the sandbox, shows up as a stale entry instead of hiding a difference.
    """

    reason: str
    applies: Callable[[Exchange], bool]
    adjust: Callable[[Exchange], Exchange]


#: Every exchange validated so far in this session, for the route-coverage test.
VALIDATED: list[Exchange] = []


def check_exchange(
    exchange: Exchange, deviations: Mapping[str, Deviation] | None = None, *, request_valid: bool = True
) -> set[str]:
    """Validate the request and the response of an exchange; return the names of the deviations it needed.

    ``request_valid=False`` states that the request deliberately breaks the contract (an error case): then the
    contract must reject it too. Raises AssertionError listing every problem.
    """
    deviations = deviations or {}
    problems = []
    request_errors = request_problems(exchange)
    if request_valid:
        problems += [f"request: {p}" for p in request_errors]
    elif not request_errors:
        problems.append("request: the contract accepts this request, which the test calls invalid")
    applied = {name for name, deviation in deviations.items() if deviation.applies(exchange)}
    for name in sorted(applied):
        if not response_problems(_adjusted(exchange, deviations, applied - {name})):
            problems.append(f"known deviation {name!r} is no longer needed: the response conforms without it")
    adjusted = _adjusted(exchange, deviations, applied)
    if exchange.contract.error_shape == "twilio" and exchange.status >= 400:
        if response_described(adjusted):
            problems.append("response: the contract now describes this error status: validate it against it")
        problems += [f"response (Twilio error shape): {p}" for p in twilio_error_problems(adjusted)]
    else:
        problems += [f"response: {p}" for p in response_problems(adjusted)]
    if problems:
        raise AssertionError(f"{exchange} breaks its contract:\n" + "\n".join(problems))
    VALIDATED.append(exchange)
    return applied


def _adjusted(exchange: Exchange, deviations: Mapping[str, Deviation], names: Iterable[str]) -> Exchange:
    for name in sorted(names):
        exchange = deviations[name].adjust(exchange)
    return exchange


def api_exchanges(entries: Iterable[Mapping[str, Any]]) -> list[Exchange]:
    """The journal entries of the emulated APIs, leaving out the token endpoint (in no contract, see above)."""
    return [Exchange.from_journal(e) for e in entries if e["service"] != "identity"]


def check_journal(entries: Iterable[Mapping[str, Any]], deviations: Mapping[str, Deviation] | None = None) -> set[str]:
    """:func:`check_exchange` over the API exchanges of a journal; returns the deviations they needed."""
    exchanges = api_exchanges(entries)
    assert exchanges, "the journal holds no API exchange to check"
    return set().union(*(check_exchange(exchange, deviations) for exchange in exchanges))

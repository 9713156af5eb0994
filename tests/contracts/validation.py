"""Check the sandbox's recorded exchanges against the published OpenAPI contracts in ``specs/``.

Each journal entry of the sandbox (``sandbox.control.journal()``) is turned into openapi-core request and
response objects and validated against the contract of the service its path belongs to:

- Graph (``/v1.0/...``): ``specs/msgraph``, on ``https://graph.microsoft.com/v1.0`` (the sandbox's ``/v1.0``
  prefix is the server's path, so the spec's ``/me/events`` is the sandbox's ``/v1.0/me/events``);
- Twilio Messages (``/2010-04-01/...``): ``specs/twilio/api_v2010_messages.json`` on ``https://api.twilio.com``;
- Twilio Content (``/v1/Content...``): ``specs/twilio/content_v1.json`` on ``https://content.twilio.com``, which
  the sandbox serves on its own host.

The identity platform's token endpoint is in no contract; the real azure-identity and MSAL clients in
``tests/integration`` prove it. Twilio's error bodies are not described by its contract either, so
:func:`twilio_error_problems` checks them against the shape Twilio documents.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
from openapi_core import OpenAPI
from openapi_core.datatypes import RequestParameters
from werkzeug.datastructures import Headers, ImmutableMultiDict

SPECS = Path(__file__).parent / "specs"
GRAPH_STRICT = "msgraph/v1.0-events.json"
GRAPH_LENIENT = "msgraph/v1.0-events.lenient.json"
TWILIO_MESSAGES = "twilio/api_v2010_messages.json"
TWILIO_CONTENT = "twilio/content_v1.json"

#: The shape of a Twilio REST error (``twilio.base.version.Version.exception`` reads these fields, and
#: https://www.twilio.com/docs/usage/twilios-response#response-formats-exceptions documents them).
TWILIO_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["code", "message", "more_info", "status"],
    "properties": {
        "code": {"type": "integer", "minimum": 10000},
        "message": {"type": "string", "minLength": 1},
        "more_info": {"type": "string", "pattern": r"^https://www\.twilio\.com/docs/errors/\d+$"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
    },
}


@cache
def load_spec(name: str) -> OpenAPI:
    """A contract file under ``specs/`` as an openapi-core application (parsed once per session)."""
    return OpenAPI.from_dict(json.loads((SPECS / name).read_text()))


@dataclass(frozen=True)
class Contract:
    """Which contract covers a sandbox path, and on which of the real service's hosts."""

    name: str
    host_url: str
    request_spec: str
    response_spec: str


#: Graph requests are checked against the lenient file because the strict one requires ``@odata.type`` in every
#: object and Graph's clients (and documentation examples) do not send it. Graph's responses do not carry it
#: either: an event comes back with ``@odata.context`` and ``@odata.etag`` but no ``@odata.type``, on the event or
#: on its nested ``start``/``body``/``attendees``/``emailAddress`` objects, and no ``innerError`` of an error has
#: one; so every real Graph response fails the strict file (``test_strict_graph_file_rejects_only_odata_type``
#: shows it for the sandbox's responses), and responses are checked against the lenient file, which is the strict
#: one without that single requirement.
GRAPH = Contract("graph", "https://graph.microsoft.com", GRAPH_LENIENT, GRAPH_LENIENT)
TWILIO_API = Contract("twilio-messages", "https://api.twilio.com", TWILIO_MESSAGES, TWILIO_MESSAGES)
TWILIO_CONTENT_API = Contract("twilio-content", "https://content.twilio.com", TWILIO_CONTENT, TWILIO_CONTENT)


def contract_for(path: str) -> Contract:
    """The contract of a sandbox path; LookupError for paths in no contract (the token endpoint, the control API)."""
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
            raw=entry,
        )

    @property
    def contract(self) -> Contract:
        return contract_for(self.path)

    def with_response_json(self, body: Any) -> Exchange:
        return replace(self, response_json=body)

    def with_status(self, status: int) -> Exchange:
        return replace(self, status=status)


class JournalRequest:
    """An openapi-core ``Request`` (see ``openapi_core.protocols``) made from a journal entry."""

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
    """An openapi-core ``Response`` made from a journal entry (the JSON body re-encoded as bytes)."""

    def __init__(self, exchange: Exchange) -> None:
        self.status_code = exchange.status
        self.headers = Headers(list(exchange.response_headers.items()))
        self.content_type = exchange.response_headers.get("content-type", "")
        self.data: bytes | None = (
            json.dumps(exchange.response_json).encode() if exchange.response_json is not None else None
        )


def _describe(error: Exception) -> str:
    """An openapi-core error with the schema errors behind it (path in the document and message)."""
    lines = [f"{type(error).__name__}: {error}"]
    for schema_error in getattr(error.__cause__, "schema_errors", None) or ():
        location = "/".join(str(part) for part in schema_error.path) or "(root)"
        lines.append(f"  at {location}: {schema_error.message}")
    return "\n".join(lines)


def request_problems(exchange: Exchange, spec: str | None = None) -> list[str]:
    """Every way the exchange's request breaks its contract (empty when it conforms)."""
    contract = exchange.contract
    app = load_spec(spec or contract.request_spec)
    return [_describe(e) for e in app.iter_request_errors(JournalRequest(exchange, contract.host_url))]


def response_problems(exchange: Exchange, spec: str | None = None) -> list[str]:
    """Every way the exchange's response breaks its contract (empty when it conforms)."""
    contract = exchange.contract
    app = load_spec(spec or contract.response_spec)
    request = JournalRequest(exchange, contract.host_url)
    return [_describe(e) for e in app.iter_response_errors(request, JournalResponse(exchange))]


def twilio_error_problems(exchange: Exchange) -> list[str]:
    """How a Twilio error response differs from Twilio's documented error shape (and its own HTTP status)."""
    body = exchange.response_json
    problems = [
        f"at {'/'.join(map(str, e.path)) or '(root)'}: {e.message}"
        for e in jsonschema.Draft202012Validator(TWILIO_ERROR_SCHEMA).iter_errors(body)
    ]
    if not problems:
        if body["status"] != exchange.status:
            problems.append(f"status {body['status']} in the body, {exchange.status} on the response")
        if not body["more_info"].endswith(f"/{body['code']}"):
            problems.append(f"more_info {body['more_info']} is not the page of code {body['code']}")
    if "json" not in exchange.response_headers.get("content-type", ""):
        problems.append(f"content-type {exchange.response_headers.get('content-type')!r} is not JSON")
    return problems


@dataclass(frozen=True)
class Deviation:
    """A place where the sandbox follows the service's documentation rather than its generated contract.

    ``applies`` picks the exchanges concerned; ``adjust`` rewrites one into what the contract describes. A
    deviation must still be needed: the unadjusted exchange has to fail the contract (so that a contract fix
    upstream, or a sandbox change, shows up as a stale entry instead of hiding a difference).
    """

    reason: str
    applies: Callable[[Exchange], bool]
    adjust: Callable[[Exchange], Exchange]


def check_exchange(exchange: Exchange, deviations: Mapping[str, Deviation] | None = None) -> set[str]:
    """Validate request and response of an exchange; return the names of the known deviations it needed.

    Raises AssertionError listing every problem.
    """
    deviations = deviations or {}
    problems = [f"request: {p}" for p in request_problems(exchange)]
    applied = {name for name, deviation in deviations.items() if deviation.applies(exchange)}
    if applied:
        if not response_problems(exchange):
            problems.append(f"known deviations {sorted(applied)} no longer needed: the response conforms as it is")
        for name in sorted(applied):
            exchange = deviations[name].adjust(exchange)
    problems += [f"response: {p}" for p in response_problems(exchange)]
    if problems:
        raise AssertionError(_headline(exchange) + "\n" + "\n".join(problems))
    return applied


def check_journal(
    entries: Iterable[Mapping[str, Any]], deviations: Mapping[str, Deviation] | None = None
) -> dict[str, set[str]]:
    """:func:`check_exchange` over journal entries; returns ``"METHOD path" -> deviations needed`` per exchange."""
    needed: dict[str, set[str]] = {}
    for entry in entries:
        exchange = Exchange.from_journal(entry)
        needed.setdefault(_headline(exchange), set()).update(check_exchange(exchange, deviations))
    return needed


def _headline(exchange: Exchange) -> str:
    return f"{exchange.method} {exchange.path} -> {exchange.status}"


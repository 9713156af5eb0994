"""The sandbox's control plane: a middleware (journal, faults, latency, concurrency caps) and an admin API.

Everything under ``/_sandbox/`` is the admin API; it is neither journaled nor subject to faults.

Fault rules (``POST /_sandbox/faults``) match requests by ``service`` (``graph``, ``identity``, ``twilio``),
``method`` and ``path`` (a regular expression searched in the path), and do one of:
``{"status": 429|500|503|504, "retry_after": seconds}`` (the provider's own error body), ``{"drop": true}``
(the connection is cut after the response headers), and/or ``{"latency": seconds}``. ``"phase": "after"``
lets the request take effect first (the ambiguous failure: a message was created but the client saw a 5xx, a
cut connection, or, with ``latency``, no answer before its timeout). ``{"body": "truncated"}`` or
``{"body": "not_json"}`` always let the request take effect and keep its 2xx status, but replace the answer
with its first half or with an HTML page (what a broken proxy hands back). ``"times": N`` applies a rule to the
next N matching requests, ``"ratio": p`` to a random share.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from airflow_provider_qconn.sandbox import seed as seeds
from airflow_provider_qconn.sandbox.common import json_response, state_of
from airflow_provider_qconn.sandbox.state import State

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

CONTROL_PREFIX = "/_sandbox"
DEFAULT_SETTINGS: dict[str, Any] = {
    "twilio_max_concurrency": 100,
    #: Where Twilio's message list puts messages without a date_sent ("first" or "last"): undocumented.
    "twilio_unsent_placement": "first",
    #: Create errors that a Messaging Service turns into failed messages instead of a 400. Twilio's support
    #: article on undelivered messages: through a Messaging Service, "certain errors which would otherwise fail
    #: straight away with a 400 Bad Request response will instead be accepted initially and then assigned to a
    #: Failed message record". Here: invalid To, no permission for the region, unsubscribed, unreachable, not
    #: a mobile number.
    "twilio_service_deferred_errors": [21211, 21408, 21610, 21612, 21614],
    "graph_mailbox_concurrency": 4,
    "latency": {},
    # What becomes of a deleted event's transactionId (Graph's docs do not say): "released" lets a later create
    # with it make a new event; "kept" refuses that create with ErrorDuplicateTransactionId.
    "graph_deleted_transaction_ids": "released",
}
_SECRET_FIELDS = {
    "client_secret",
    "client_assertion",
    "refresh_token",
    "password",
    "code",
    "access_token",
    "id_token",
    "device_code",
    "assertion",
}
_REDACTED = "***"


class DroppedConnection(Exception):
    """Raised inside the app to make the server cut a connection mid-response (an injected fault)."""


class _HideDroppedConnections(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], DroppedConnection))


logging.getLogger("uvicorn.error").addFilter(_HideDroppedConnections())


def service_of(path: str) -> str:
    """Which emulated service a (normalised) path belongs to."""
    if path.startswith(CONTROL_PREFIX + "/") or path == CONTROL_PREFIX:
        return "control"
    if path.startswith("/v1.0/"):
        return "graph"
    if path.startswith(("/2010-04-01/", "/v1/Content")):
        return "twilio"
    return "identity"


def redact_form(body: str) -> str:
    """A form body with its secret fields replaced."""
    import urllib.parse

    names = {pair.partition("=")[0] for pair in body.split("&")}
    if names.isdisjoint(_SECRET_FIELDS) and not any("%" in name or "+" in name for name in names):
        return body  # the common case (a Twilio create): no field to redact, even once its name is decoded
    pairs = urllib.parse.parse_qsl(body, keep_blank_values=True)
    return urllib.parse.urlencode([(k, _REDACTED if k in _SECRET_FIELDS else v) for k, v in pairs])


def _redact_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: (_REDACTED if k in _SECRET_FIELDS else _redact_json(v)) for k, v in value.items()}
    return value


def _error_for(service: str, status: int, retry_after: float | None) -> tuple[bytes, dict[str, str]]:
    """The body and headers a provider sends with an injected error status."""
    headers = {"content-type": "application/json"}
    if retry_after is not None:
        headers["retry-after"] = str(int(retry_after)) if float(retry_after).is_integer() else str(retry_after)
    if service == "twilio":
        from airflow_provider_qconn.sandbox.twilio import error_body

        code, message = {
            429: (20429, "Too Many Requests"),
            500: (20500, "Internal Server Error"),
            503: (20503, "Service Unavailable"),
        }.get(status, (20500, "Internal Server Error"))
        return json.dumps(error_body(status, code, message)).encode(), headers
    if service == "identity":
        body = {"error": "temporarily_unavailable", "error_description": f"AADSTS90033: Injected {status}."}
        return json.dumps(body).encode(), headers
    graph_code, message = {
        429: ("TooManyRequests", "Too many requests."),
        503: ("ServiceNotAvailable", "The service is temporarily unavailable."),
        504: ("GatewayTimeout", "The gateway timed out."),
    }.get(status, ("InternalServerError", "An internal server error occurred."))
    request_id = str(uuid.uuid4())
    headers["request-id"] = request_id
    inner = {"date": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()), "request-id": request_id}
    return json.dumps({"error": {"code": graph_code, "message": message, "innerError": inner}}).encode(), headers


class SandboxMiddleware:
    """Normalises paths, applies latency/faults/concurrency caps, and journals every API request."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], state: State) -> None:
        self.app = app
        self.state = state
        self.in_flight: dict[str, int] = defaultdict(int)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = re.sub(r"/{2,}", "/", scope["path"])  # msgraph-sdk sends /v1.0//me/...
        scope = {**scope, "path": path, "raw_path": path.encode()}
        service = service_of(path)
        if service == "control":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        body = await _read_body(receive)
        replay = _replayer(body)
        captured: dict[str, Any] = {"status": None, "headers": [], "body": bytearray()}

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                captured["status"] = message["status"]
                captured["headers"] = message.get("headers", [])
            elif message["type"] == "http.response.body":
                captured["body"] += message.get("body", b"")

        rule = None
        limit_key, limit = self._concurrency_limit(service, scope, path)
        self.in_flight[limit_key] += 1
        try:
            if limit is not None and self.in_flight[limit_key] > limit:
                await self._respond_throttled(service, capture)
                await self._finish(scope, service, body, captured, started, rule, send)
                return
            rule = self._match_fault(service, scope["method"], path)
            after = bool(rule and rule.get("phase", "before") == "after")
            rule_latency = float((rule or {}).get("latency", 0.0))
            latency = float(self._setting("latency").get(service, 0.0)) + (0.0 if after else rule_latency)
            if latency:
                await asyncio.sleep(latency)
            if rule and (rule.get("status") or rule.get("drop")):
                if after:
                    await self.app(scope, replay, _discard)
                    await asyncio.sleep(rule_latency)
                if rule.get("status"):
                    payload, headers = _error_for(service, int(rule["status"]), rule.get("retry_after"))
                    await _send_bytes(capture, int(rule["status"]), payload, headers)
                else:
                    captured["status"] = 0
            else:
                await self.app(scope, replay, capture)
                if rule and rule.get("body"):
                    _spoil_body(captured, rule["body"])
                if after and rule_latency:
                    await asyncio.sleep(rule_latency)  # the request took effect; the answer is slow
        finally:
            self.in_flight[limit_key] -= 1
        await self._finish(scope, service, body, captured, started, rule, send)

    async def _finish(
        self,
        scope: Scope,
        service: str,
        body: bytes,
        captured: dict[str, Any],
        started: float,
        rule: dict[str, Any] | None,
        send: Send,
    ) -> None:
        """Journal the exchange, then send the captured response (or cut the connection)."""
        self._journal(scope, service, body, captured, started, rule)
        if captured["status"] == 0:
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"64")]})
            await send({"type": "http.response.body", "body": b"{", "more_body": True})
            raise DroppedConnection("connection dropped by an injected fault")
        await send({"type": "http.response.start", "status": captured["status"], "headers": captured["headers"]})
        await send({"type": "http.response.body", "body": bytes(captured["body"])})

    def _setting(self, key: str) -> Any:
        return self.state.get_setting(key, DEFAULT_SETTINGS[key])

    def _concurrency_limit(self, service: str, scope: Scope, path: str) -> tuple[str, int | None]:
        if service == "twilio":
            return "twilio", self._setting("twilio_max_concurrency")
        if service == "graph":
            match = re.match(r"/v1\.0/(me|users/[^/]+)", path)
            owner = match.group(1) if match else "-"
            if owner == "me":
                auth = dict(scope.get("headers", [])).get(b"authorization", b"")
                owner = "me:" + auth.decode(errors="replace")[-16:]
            return f"graph:{owner.lower()}", self._setting("graph_mailbox_concurrency")
        return service, None

    async def _respond_throttled(self, service: str, send: Send) -> None:
        if service == "twilio":
            from airflow_provider_qconn.sandbox.twilio import error_body

            payload = json.dumps(error_body(429, 20429, "Too Many Requests")).encode()
            await _send_bytes(send, 429, payload, {"content-type": "application/json"})
            return
        body = {
            "error": {
                "code": "ApplicationThrottled",
                "message": "Application is over its MailboxConcurrency limit.",
            }
        }
        await _send_bytes(
            send, 429, json.dumps(body).encode(), {"content-type": "application/json", "retry-after": "1"}
        )

    def _match_fault(self, service: str, method: str, path: str) -> dict[str, Any] | None:
        if not self.state.execute("SELECT 1 FROM faults LIMIT 1"):
            return None  # no rules: no transaction to open
        with self.state.transaction() as db:
            for row_id, doc in db.execute("SELECT id, doc FROM faults ORDER BY id").fetchall():
                rule = json.loads(doc)
                if rule.get("times") is not None and rule["times"] <= 0:
                    continue
                if rule.get("service") and rule["service"] != service:
                    continue
                if rule.get("method") and rule["method"].upper() != method:
                    continue
                if rule.get("path") and not re.search(rule["path"], path):
                    continue
                if "ratio" in rule:
                    # Deterministic per rule: the n-th matching request always gets the same draw.
                    seen = rule.get("seen", 0)
                    rule["seen"] = seen + 1
                    if random.Random(f"{row_id}:{seen}").random() >= float(rule["ratio"]):
                        db.execute("UPDATE faults SET doc = ? WHERE id = ?", (json.dumps(rule), row_id))
                        continue
                if rule.get("times") is not None:
                    rule["times"] -= 1
                rule["hits"] = rule.get("hits", 0) + 1
                db.execute("UPDATE faults SET doc = ? WHERE id = ?", (json.dumps(rule), row_id))
                rule["id"] = row_id
                return rule
        return None

    def _journal(
        self,
        scope: Scope,
        service: str,
        body: bytes,
        captured: dict[str, Any],
        started: float,
        rule: dict[str, Any] | None,
    ) -> None:
        headers = {k.decode().lower(): v.decode(errors="replace") for k, v in scope.get("headers", [])}
        if "authorization" in headers:
            headers["authorization"] = headers["authorization"].split(" ", 1)[0] + " " + _REDACTED
        request_type = headers.get("content-type", "")
        text = body.decode(errors="replace")
        request_json = None
        if "form-urlencoded" in request_type:
            text = redact_form(text)
        elif "json" in request_type and text:
            try:
                request_json = _redact_json(json.loads(text))
                text = json.dumps(request_json)
            except ValueError:
                pass
        response_headers = {k.decode().lower(): v.decode(errors="replace") for k, v in captured["headers"]}
        response_text = bytes(captured["body"]).decode(errors="replace")
        response_json = None
        #: Decoded when the journal is read (``State.iter_journal``), not on every request: the identity
        #: platform's answers are decoded now, to redact their tokens before they are stored.
        response_json_text = None
        if "json" in response_headers.get("content-type", "") and response_text:
            if service == "identity":
                try:
                    response_json = _redact_json(json.loads(response_text))
                except ValueError:
                    response_json = None
            else:
                response_json_text = response_text
        entry = {
            "time": self.state.now(),
            "service": service,
            "method": scope["method"],
            "path": scope["path"],
            "query": scope.get("query_string", b"").decode(errors="replace"),
            "headers": headers,
            "body": text,
            "json": request_json,
            "status": captured["status"],
            "response_headers": response_headers,
            "response_json": response_json,
            "response_json_text": response_json_text,
            "duration_ms": round((time.monotonic() - started) * 1000, 3),
            "fault": rule["id"] if rule else None,
        }
        self.state.execute("INSERT INTO journal (doc) VALUES (?)", (json.dumps(entry),))


#: What a proxy in the way might answer instead of the API's JSON (a ``"body": "not_json"`` fault).
_NOT_JSON_PAGE = b"<html><head><title>OK</title></head><body><p>Request accepted.</p></body></html>"
SPOILED_BODIES = ("truncated", "not_json")


def _spoil_body(captured: dict[str, Any], kind: str) -> None:
    """Replace a 2xx answer's body (the request has taken effect) with its first half, or with an HTML page.

    The status and the other headers stay; ``content-length`` (and, for HTML, ``content-type``) match the new
    body, so the HTTP exchange is well formed and only its content is unreadable. Other statuses pass unchanged.
    """
    if not 200 <= int(captured["status"] or 0) < 300:
        return
    original = bytes(captured["body"])
    body = original[: len(original) // 2] if kind == "truncated" else _NOT_JSON_PAGE
    replaced = {b"content-length", b"content-type"} if kind == "not_json" else {b"content-length"}
    headers = [(k, v) for k, v in captured["headers"] if k.lower() not in replaced]
    if kind == "not_json":
        headers.append((b"content-type", b"text/html; charset=utf-8"))
    headers.append((b"content-length", str(len(body)).encode()))
    captured["headers"], captured["body"] = headers, bytearray(body)


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return b"".join(chunks)


def _replayer(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)  # a well-behaved app never reads past the body
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


async def _discard(message: Message) -> None:
    return None


async def _send_bytes(send: Send, status: int, payload: bytes, headers: dict[str, str]) -> None:
    raw_headers = [(k.encode(), v.encode()) for k, v in headers.items()]
    raw_headers.append((b"content-length", str(len(payload)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": payload})


# --- the admin API ---------------------------------------------------------------------------------------


def reset_state(state: State, with_defaults: bool = True) -> None:
    state.wipe()
    for key, value in DEFAULT_SETTINGS.items():
        state.set_setting(key, value)
    if with_defaults:
        seeds.apply_seed(state, seeds.default_seed())


async def _json(request: Request) -> Any:
    raw = await request.body()
    return json.loads(raw) if raw else {}


async def health(request: Request) -> Response:
    return json_response({"status": "ok"})


async def reset(request: Request) -> Response:
    body = await _json(request)
    reset_state(state_of(request), with_defaults=body.get("defaults", True))
    return json_response({"status": "reset"})


async def seed(request: Request) -> Response:
    try:
        data = seeds.Seed.from_json(await _json(request))
        seeds.apply_seed(state_of(request), data)
    except (ValueError, KeyError, TypeError) as error:
        return json_response({"error": f"bad seed: {error}"}, status=400)
    return json_response({"status": "seeded"})


async def settings(request: Request) -> Response:
    state = state_of(request)
    if request.method == "POST":
        values = await _json(request)
        if values.get("twilio_unsent_placement", "first") not in ("first", "last"):
            return json_response({"error": "twilio_unsent_placement is 'first' or 'last'"}, status=400)
        for key, value in values.items():
            state.set_setting(key, value)
    names = [row[0] for row in state.execute("SELECT key FROM settings ORDER BY key")]
    return json_response({name: state.get_setting(name) for name in names if name != "clock_offset"})


async def clock(request: Request) -> Response:
    state = state_of(request)
    if request.method == "POST":
        state.advance_clock(float((await _json(request)).get("advance", 0)))
    return json_response({"now": state.now(), "offset": state.get_setting("clock_offset", 0.0)})


async def faults(request: Request) -> Response:
    state = state_of(request)
    if request.method == "POST":
        rule = await _json(request)
        allowed = {
            "service",
            "method",
            "path",
            "status",
            "retry_after",
            "drop",
            "latency",
            "phase",
            "times",
            "ratio",
            "body",
        }
        if not isinstance(rule, dict) or set(rule) - allowed:
            return json_response({"error": f"fault rules take only {sorted(allowed)}"}, status=400)
        if rule.get("body") not in (None, *SPOILED_BODIES):
            return json_response({"error": f"a fault's body is one of {list(SPOILED_BODIES)}"}, status=400)
        state.execute("INSERT INTO faults (doc) VALUES (?)", (json.dumps(rule),))
        rule_id = state.execute("SELECT MAX(id) FROM faults")[0][0]
        return json_response({"id": rule_id, **rule}, status=201)
    if request.method == "DELETE":
        state.execute("DELETE FROM faults")
        return json_response({"status": "cleared"})
    rules = [{"id": row_id, **json.loads(doc)} for row_id, doc in state.execute("SELECT id, doc FROM faults")]
    return json_response({"faults": rules})


async def journal(request: Request) -> Response:
    state = state_of(request)
    if request.method == "DELETE":
        state.execute("DELETE FROM journal")
        return json_response({"status": "cleared"})
    since = int(request.query_params.get("since", "0"))
    service = request.query_params.get("service")
    entries = [e for e in state.iter_journal(since) if service is None or e["service"] == service]
    return json_response({"entries": entries})


async def mailbox_events(request: Request) -> Response:
    """Every event stored in a mailbox, Deleted Items included, with the sandbox's own bookkeeping."""
    state = state_of(request)
    user = request.path_params["user"]
    mailbox = state.doc("SELECT doc FROM mailboxes WHERE id = ? OR upn = ?", (user, user))
    if mailbox is None:
        return json_response({"error": f"no mailbox {user!r}"}, status=404)
    rows = state.execute("SELECT folder, doc FROM events WHERE mailbox_id = ? ORDER BY seq", (mailbox["id"],))
    events = [{"folder": folder, **json.loads(doc)} for folder, doc in rows]
    return json_response({"mailbox": mailbox, "events": events})


async def twilio_messages(request: Request) -> Response:
    """Every message with its status now and what was sent (content SID and variables)."""
    from airflow_provider_qconn.sandbox.twilio import render_message, status_delays

    state = state_of(request)
    now, delays = state.now(), status_delays(state)
    messages = []
    for message in state.docs("SELECT doc FROM messages ORDER BY seq"):
        rendered = render_message(state, message, now, delays)
        rendered["content_sid"] = message.get("_content_sid")
        rendered["content_variables"] = message.get("_content_variables")
        messages.append(rendered)
    return json_response({"messages": messages})


async def refresh_tokens(request: Request) -> Response:
    """The refresh tokens of a mailbox that are still valid (newest first)."""
    state = state_of(request)
    user = request.query_params.get("mailbox", "")
    mailbox = state.doc("SELECT doc FROM mailboxes WHERE id = ? OR upn = ?", (user, user))
    if mailbox is None:
        return json_response({"error": f"no mailbox {user!r}"}, status=404)
    rows = state.execute(
        "SELECT token, expires_at, doc FROM tokens WHERE kind = 'refresh' AND expires_at > ? ORDER BY rowid DESC",
        (state.now(),),
    )
    tokens = [
        {"token": token, "expires_at": expires_at}
        for token, expires_at, doc in rows
        if json.loads(doc)["mailbox_id"] == mailbox["id"]
    ]
    return json_response({"refresh_tokens": tokens})


routes = [
    Route(f"{CONTROL_PREFIX}/health", health, methods=["GET"]),
    Route(f"{CONTROL_PREFIX}/reset", reset, methods=["POST"]),
    Route(f"{CONTROL_PREFIX}/seed", seed, methods=["POST"]),
    Route(f"{CONTROL_PREFIX}/settings", settings, methods=["GET", "POST"]),
    Route(f"{CONTROL_PREFIX}/clock", clock, methods=["GET", "POST"]),
    Route(f"{CONTROL_PREFIX}/faults", faults, methods=["GET", "POST", "DELETE"]),
    Route(f"{CONTROL_PREFIX}/journal", journal, methods=["GET", "DELETE"]),
    Route(f"{CONTROL_PREFIX}/graph/mailboxes/{{user}}/events", mailbox_events, methods=["GET"]),
    Route(f"{CONTROL_PREFIX}/twilio/messages", twilio_messages, methods=["GET"]),
    Route(f"{CONTROL_PREFIX}/identity/refresh_tokens", refresh_tokens, methods=["GET"]),
]

"""TwilioHook: WhatsApp template messages and message status through Twilio's Messages and Content APIs.

The connection holds the Account SID (login), the Auth Token (password) and, as extras, the WhatsApp sender
(``from_number``) or a Messaging Service (``messaging_service_sid``), one ``base_url`` for every Twilio domain
(a proxy, the sandbox) and ``max_concurrency``. The twilio SDK is imported only when a client is built.

Sending is retry-safe: every request follows one :class:`~airflow_provider_qconn.hooks.twilio_retry.RetryPolicy`
(429/20429, never processed by Twilio, is retried after ``Retry-After`` or a jittered backoff); a timeout, a cut
connection or a 5xx on a create is ambiguous, so the hook asks Twilio whether the message exists (the
recipient's listing from our sender read whatever its order, matched on ``date_created`` and the rendered body:
see :mod:`~airflow_provider_qconn.hooks.twilio_reconcile`) before sending again; and a
:class:`~airflow_provider_qconn.ledger.SendLedger` lets a later Airflow try skip what an earlier one sent, and
reconcile what it was sending when it died.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

from airflow.sdk import BaseHook

from airflow_provider_qconn import normalise
from airflow_provider_qconn.exceptions import ApiError, ConnectionConfigError, NonRetryableApiError
from airflow_provider_qconn.hooks import twilio_reconcile
from airflow_provider_qconn.hooks.common import ca_bundle, https_url, positive_int, ssl_context
from airflow_provider_qconn.hooks.twilio_pipeline import SendPipeline, batch_size
from airflow_provider_qconn.hooks.twilio_retry import Failure, RetryPolicy, classify, throttled_error, twilio_error
from airflow_provider_qconn.ledger import SendLedger

if TYPE_CHECKING:
    from twilio.rest import Client

log = logging.getLogger(__name__)

T = TypeVar("T")

#: The twilio clients log every request (URLs with numbers, form fields) at INFO: keep that out of task logs.
_QUIET = logging.getLogger("airflow_provider_qconn.twilio_http")
_QUIET.setLevel(logging.WARNING)

DEFAULT_MAX_CONCURRENCY = 10
#: What one WhatsApp sender takes by default (Twilio's WhatsApp best practices: 80 messages/s, text or media; text
#: up to 400/s on request); Twilio queues the excess for at most QUEUE_HOURS, then fails it. A Messaging Service
#: with several senders spreads the volume over them. Meta separately caps the business-initiated conversations
#: a sender starts per rolling 24 hours by its tier (250, 1K, 10K, 100K, unlimited; beyond it messages fail
#: with 63018): see docs/whatsapp.md, "Large lists".
SENDER_MESSAGES_PER_SECOND = 80
QUEUE_HOURS = 4
#: A recipient is sent to at most this long after the ledger write that marked it in flight (else it is marked
#: again first): what bounds the look-up window of a later try (see :mod:`.twilio_pipeline`).
SEND_HORIZON_SECONDS = 60.0
#: Tolerance between our clock and Twilio's when matching ``date_created`` (Twilio stores whole seconds).
CLOCK_SKEW_SECONDS = 5.0
#: After a create timed out, Twilio may still be creating the message: wait this long (at most the timeout)
#: before looking for it, so an answer that is slow, not lost, is found rather than sent again.
SETTLE_SECONDS = 10.0
#: From this many SIDs on, statuses are read by listing the newest messages (LIST_PAGE a page) before fetching.
LIST_THRESHOLD = 50
LIST_PAGE = 1000
#: Where the twilio SDK sends Messages API requests when the connection names no base_url.
TWILIO_API = "https://api.twilio.com"


def env_proxy(url: str) -> str | None:
    """The proxy ``HTTPS_PROXY``/``HTTP_PROXY`` name for ``url``, unless ``NO_PROXY`` exempts its host."""
    import urllib.parse
    import urllib.request

    parts = urllib.parse.urlsplit(url)
    if parts.hostname is None or urllib.request.proxy_bypass(parts.hostname):
        return None
    return urllib.request.getproxies().get(parts.scheme)


@dataclass(frozen=True)
class TwilioConfig:
    """What the hook needs from the connection, validated."""

    conn_id: str
    account_sid: str
    auth_token: str = field(repr=False)
    from_number: str | None
    messaging_service_sid: str | None
    base_url: str | None
    max_concurrency: int

    @property
    def sender(self) -> str | None:
        """The ``From`` address (``whatsapp:+...``), or None when a Messaging Service picks it."""
        return f"{normalise.WHATSAPP_PREFIX}{self.from_number}" if self.from_number else None

    def require_sender(self) -> None:
        if not (self.from_number or self.messaging_service_sid):
            raise ConnectionConfigError(
                f"connection {self.conn_id!r}: set extra 'from_number' (the WhatsApp sender, E.164) or "
                "'messaging_service_sid'"
            )


@dataclass(frozen=True)
class OutgoingMessage:
    """One template message to send: the recipient (E.164) and its variables as text."""

    recipient: str
    variables: dict[str, str]


@dataclass(frozen=True)
class _Pending:
    """A message still to send: its hashed content (for the ledger) and, when an earlier try may have sent it,
    when that try's sends began."""

    outgoing: OutgoingMessage
    content: str
    in_flight: tuple[float, float] | None


@dataclass
class SendResult:
    """What became of one recipient: a message SID, or the provider's (or our) error code and message."""

    recipient: str
    message_id: str | None = None
    status: str | None = None
    code: int | str | None = None
    message: str | None = None
    resumed: bool = False
    #: Twilio may have created the message after all (its last answer failed): a later try looks it up first.
    unresolved: bool = False

    @property
    def sent(self) -> bool:
        return self.message_id is not None


@dataclass
class LookupResult:
    """The status of one message, or why it could not be read."""

    message_id: str
    details: dict[str, Any] | None = None
    code: int | str | None = None
    message: str | None = None
    #: The failure may pass (throttling, a timeout, a 5xx): asking again later can succeed.
    transient: bool = False


class TwilioHook(BaseHook):
    """Interact with Twilio's Messages and Content APIs for WhatsApp.

    :param twilio_conn_id: a ``qconn_twilio`` connection.
    :param from_number: WhatsApp sender (E.164); overrides the connection's ``from_number``.
    :param messaging_service_sid: Messaging Service (``MG...``); overrides the connection's.
    :param max_concurrency: requests in flight at once; overrides the connection's (default 10).
    :param timeout: seconds to wait for one HTTP response.
    :param max_attempts: attempts per request when Twilio throttles (429) or fails (5xx, timeouts).
    :param backoff_seconds: the first backoff's upper bound; it doubles per attempt, with full jitter.
    """

    conn_name_attr = "twilio_conn_id"
    default_conn_name = "qconn_twilio_default"
    conn_type = "qconn_twilio"
    hook_name = "WhatsApp (Twilio)"

    def __init__(
        self,
        twilio_conn_id: str = default_conn_name,
        *,
        from_number: str | None = None,
        messaging_service_sid: str | None = None,
        max_concurrency: int | None = None,
        timeout: float = 30.0,
        max_attempts: int = 6,
        backoff_seconds: float = 0.5,
    ) -> None:
        super().__init__()
        self.twilio_conn_id = twilio_conn_id
        self._overrides = {
            "from_number": from_number,
            "messaging_service_sid": messaging_service_sid,
            "max_concurrency": max_concurrency,
        }
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self.retry = RetryPolicy(attempts=max_attempts, backoff=backoff_seconds)
        #: A send starts at most this many seconds after the ledger write that marked it in flight.
        self.send_horizon = SEND_HORIZON_SECONDS

    # --- configuration and clients -------------------------------------------------------------------------

    @cached_property
    def config(self) -> TwilioConfig:
        """The connection's fields, validated (raises ConnectionConfigError naming the field)."""
        conn = self.get_connection(self.twilio_conn_id)
        return self._parse_config(conn.login, conn.password, conn.extra_dejson)

    async def aget_config(self) -> TwilioConfig:
        """:attr:`config`, read without blocking an event loop (triggers, async notifiers)."""
        if "config" not in self.__dict__:
            conn = await self.aget_connection(self.twilio_conn_id)
            # conn.extra itself, not extra_dejson: before Airflow 3.3.2 that masks secrets with a blocking call,
            # which fails inside a running event loop (and no Twilio extra is a secret).
            try:
                extra = json.loads(conn.extra or "{}")
            except ValueError as error:
                raise ConnectionConfigError(f"connection {self.twilio_conn_id!r}: extra is not JSON") from error
            self.__dict__["config"] = self._parse_config(conn.login, conn.password, extra)
        return self.config

    def _parse_config(self, login: str | None, password: str | None, stored_extra: dict[str, Any]) -> TwilioConfig:
        extra = {**stored_extra, **{k: v for k, v in self._overrides.items() if v is not None}}
        conn_id = self.twilio_conn_id
        account_sid = (login or "").strip()
        if not (account_sid.startswith("AC") and len(account_sid) == 34):
            raise ConnectionConfigError(f"connection {conn_id!r}: login must be the Account SID (AC + 32 hex digits)")
        if not password:
            raise ConnectionConfigError(f"connection {conn_id!r}: password must be the Auth Token")
        from_number = extra.get("from_number") or None
        if from_number:
            try:
                from_number = normalise.phone_number(str(from_number))
            except ValueError as error:
                raise ConnectionConfigError(f"connection {conn_id!r}: extra 'from_number': {error}") from error
        service = extra.get("messaging_service_sid") or None
        if service and not (str(service).startswith("MG") and len(str(service)) == 34):
            raise ConnectionConfigError(f"connection {conn_id!r}: extra 'messaging_service_sid' must be MG + 32 hex")
        base_url = https_url(extra, "base_url", "", conn_id) if extra.get("base_url") else None
        return TwilioConfig(
            conn_id=conn_id,
            account_sid=account_sid,
            auth_token=password,
            from_number=from_number,
            messaging_service_sid=service,
            base_url=base_url,
            max_concurrency=positive_int(extra, "max_concurrency", DEFAULT_MAX_CONCURRENCY, conn_id),
        )

    def _client(self, http_client: Any) -> Client:
        from twilio.rest import Client

        config = self.config
        # A non-empty mapping: an empty one makes twilio read TWILIO_EDGE/TWILIO_REGION from os.environ.
        client = Client(config.account_sid, config.auth_token, http_client=http_client, environment={"QCONN": "1"})
        if config.base_url:
            # Each Twilio domain has its own base URL; moving client.api does not move client.content.
            client.api.base_url = config.base_url
            client.content.base_url = config.base_url
        return client

    @cached_property
    def client(self) -> Client:
        """A synchronous twilio Client (requests), for single calls."""
        from twilio.http.http_client import TwilioHttpClient

        http = TwilioHttpClient(timeout=self.timeout, logger=_QUIET)
        bundle = ca_bundle()
        if bundle and http.session is not None:
            http.session.verify = bundle
        return self._client(http)

    async def _open_async(self) -> tuple[Client, Any]:
        """An asynchronous twilio Client over one aiohttp session bounded by ``max_concurrency``."""
        import aiohttp
        from twilio.http.async_http_client import AsyncTwilioHttpClient

        class HttpClient(AsyncTwilioHttpClient):
            """Raises :class:`~airflow_provider_qconn.hooks.twilio_retry.Throttled` on a 429, keeping the
            ``Retry-After`` header that the SDK's own error drops."""

            async def request(self, *args: Any, **kwargs: Any) -> Any:
                auth = kwargs.pop("auth", None)
                if auth is not None:  # the same Basic credentials, as a header: aiohttp deprecates ``auth=``
                    basic = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
                    kwargs["headers"] = {**(kwargs.get("headers") or {}), "Authorization": f"Basic {basic}"}
                response = await super().request(*args, **kwargs)
                if response.status_code == 429:
                    raise throttled_error(response.text, response.headers.get("Retry-After"))
                return response

        http = HttpClient(pool_connections=False, logger=_QUIET)
        connector = aiohttp.TCPConnector(limit=self.config.max_concurrency, ssl=ssl_context())
        # HTTPS_PROXY/NO_PROXY apply, as they do for every other client the provider uses: read once here, not
        # by aiohttp's trust_env, which looks them up in a thread for every request.
        http.session = aiohttp.ClientSession(connector=connector, proxy=env_proxy(self.config.base_url or TWILIO_API))
        return self._client(http), http

    async def _arun(self, work: Callable[[Client], Awaitable[T]]) -> T:
        """Run ``work`` with an asynchronous client, closed afterwards."""
        await self.aget_config()
        client, http = await self._open_async()
        try:
            return await work(client)
        finally:
            await http.close()

    # --- calls ----------------------------------------------------------------------------------------------

    def test_connection(self) -> tuple[bool, str]:
        """Check the credentials with the cheapest authenticated call (one message of the list)."""
        from twilio.base.exceptions import TwilioException

        try:
            config = self.config
            self.client.messages.list(limit=1)
        except ConnectionConfigError as error:
            return False, str(error)
        except TwilioException as error:
            status, code, message = twilio_error(error)
            return False, f"Twilio refused the request: {status} ({code}) {message}"
        except Exception as error:  # network errors of any client library
            return False, f"Twilio could not be reached: {type(error).__name__}"
        sender = config.sender or config.messaging_service_sid or "no sender configured"
        return True, f"Connected to Twilio account {config.account_sid} (sender: {sender})"

    def get_template(self, template_sid: str) -> dict[str, Any]:
        """A Content template: ``sid``, ``friendly_name``, ``language``, ``variables``, ``types``."""
        from twilio.base.exceptions import TwilioException

        try:
            content = self.client.content.v1.contents(template_sid).fetch()
        except TwilioException as error:
            failure = classify(error, self.timeout)
            assert failure is not None
            kind = ApiError if failure.transient else NonRetryableApiError
            raise kind("Twilio", failure.status, failure.code, failure.message) from error
        return {
            "sid": content.sid,
            "friendly_name": content.friendly_name,
            "language": content.language,
            "variables": content.variables,
            "types": content.types,
        }

    def send_whatsapp_templates(
        self,
        messages: Sequence[OutgoingMessage],
        template_sid: str,
        ledger: SendLedger | None = None,
    ) -> list[SendResult]:
        """Send one template message per recipient, concurrently; never twice to a recipient.

        Recipients the ledger shows as sent to (by this or any earlier try) are not sent to again, whatever
        their variables are now; those it shows in flight (an earlier try died mid-send, or its record cannot
        be read) are first looked up at Twilio. ``max_concurrency`` requests stay in flight from the first
        recipient to the last, while the ledger is written ahead of them: no recipient is sent to before a
        ledger write that marks it in flight has completed, and message SIDs are written after (see
        :mod:`~airflow_provider_qconn.hooks.twilio_pipeline`). Results come back in input order.

        :param messages: one per recipient (E.164), with the variables for that recipient as text.
        :param template_sid: the Content SID.
        :param ledger: what earlier tries sent; a ledger of this call alone when omitted.
        """
        self.config.require_sender()
        return asyncio.run(self.asend_whatsapp_templates(messages, template_sid, ledger))

    async def asend_whatsapp_templates(
        self,
        messages: Sequence[OutgoingMessage],
        template_sid: str,
        ledger: SendLedger | None = None,
    ) -> list[SendResult]:
        """:meth:`send_whatsapp_templates` for callers that run an event loop (triggers, async notifiers)."""
        config = await self.aget_config()
        config.require_sender()
        ledger = ledger or SendLedger(config.auth_token)
        queue_limit = SENDER_MESSAGES_PER_SECOND * QUEUE_HOURS * 3600
        if len(messages) > queue_limit:
            log.warning(
                "Sending %d messages: at its default %d messages/s one WhatsApp sender delivers about %d within the "
                "%d hours Twilio keeps them queued; the rest may fail (spread them over a Messaging Service's "
                "senders, or ask Twilio for more throughput).",
                len(messages),
                SENDER_MESSAGES_PER_SECOND,
                queue_limit,
                QUEUE_HOURS,
            )
        results: dict[str, SendResult] = {}
        pending: list[_Pending] = []
        changed = 0
        for outgoing in messages:
            content = ledger.content(template_sid, outgoing.variables)
            previous = ledger.sent_message(outgoing.recipient, content)
            if previous:
                sid, sent_content = previous
                changed += bool(sent_content) and sent_content != content
                results[outgoing.recipient] = SendResult(outgoing.recipient, sid, resumed=True)
            else:
                pending.append(_Pending(outgoing, content, ledger.in_flight(outgoing.recipient, content)))
        if results:
            log.info("%d recipients were sent to by an earlier try; not sending to them again.", len(results))
        if changed:
            log.warning(
                "%d of them were sent other content (the template or their variables changed since): each keeps "
                "the message it got. A new DAG run sends the new content.",
                changed,
            )
        claimed = {result.message_id for result in results.values() if result.message_id}

        async def work(client: Client) -> None:
            limiter = asyncio.Semaphore(config.max_concurrency)
            pipeline: SendPipeline[SendResult] = SendPipeline(
                ledger,
                [(item.outgoing.recipient, item.content) for item in pending],
                lambda outcome: (outcome.message_id, not outcome.unresolved),
                workers=config.max_concurrency,
                batch=batch_size(len(pending), config.max_concurrency),
                horizon=self.send_horizon,
            )
            outcomes = await pipeline.run(
                lambda index: self._send_one(client, limiter, pending[index], template_sid, claimed)
            )
            for outcome in outcomes:
                results[outcome.recipient] = outcome

        if pending:
            await self._arun(work)
        return [results[outgoing.recipient] for outgoing in messages]

    async def _send_one(
        self, client: Client, limiter: asyncio.Semaphore, item: _Pending, template_sid: str, claimed: set[str]
    ) -> SendResult:
        config = self.config
        recipient = item.outgoing.recipient
        to = f"{normalise.WHATSAPP_PREFIX}{recipient}"
        if item.in_flight is not None:
            # Earlier tries were sending this when they died: only what they could have created counts.
            first, latest = item.in_flight
            found = await self._find_created(
                client,
                limiter,
                to,
                first,
                claimed,
                latest + self._send_window(),
                template_sid=template_sid,
                variables=item.outgoing.variables,
            )
            if isinstance(found, Failure):
                message = (
                    "an earlier try's message may have been sent, and Twilio could not be asked whether it was "
                    f"({found.message})"
                )
                return SendResult(recipient, code="unknown_outcome", message=message, unresolved=True)
            if found is not None:
                return SendResult(recipient, found.sid, found.status, resumed=True)
        params: dict[str, Any] = {"to": to, "content_sid": template_sid}
        if item.outgoing.variables:
            params["content_variables"] = json.dumps(item.outgoing.variables)
        if config.messaging_service_sid and not config.from_number:
            params["messaging_service_sid"] = config.messaging_service_sid
        else:
            params["from_"] = config.sender

        async def attempt() -> Any:
            started = time.time()
            outcome = await self._call(limiter, lambda: client.messages.create_async(**params))
            if not (isinstance(outcome, Failure) and outcome.ambiguous):
                return outcome
            # Twilio may have created it: look before sending again. A create that timed out may still be
            # under way at Twilio, so give it time to land first.
            await asyncio.sleep(self._settle_seconds() if outcome.code == "timeout" else min(self.backoff_seconds, 2.0))
            found = await self._find_created(
                client, limiter, to, started, claimed, template_sid=template_sid, variables=item.outgoing.variables
            )
            if isinstance(found, Failure):
                return Failure(
                    "unknown_outcome",
                    f"the send failed ({outcome.message}): the message may have been sent, and Twilio could not "
                    f"be asked whether it was ({found.message})",
                )
            return outcome if found is None else found

        outcome = await self.retry.run(attempt)
        if isinstance(outcome, Failure):
            unresolved = outcome.ambiguous or outcome.code == "unknown_outcome"
            return SendResult(recipient, code=outcome.reported_code, message=outcome.message, unresolved=unresolved)
        claimed.add(outcome.sid)
        return SendResult(recipient, outcome.sid, outcome.status)

    def _settle_seconds(self) -> float:
        return min(self.timeout, SETTLE_SECONDS)

    def _send_window(self) -> float:
        """How long after its latest mark in the ledger a recipient's send could still create a message: the send
        starts within :attr:`send_horizon` of the mark (:mod:`.twilio_pipeline`), then every attempt may take
        its timeout, settling time and look-up, plus the backoffs."""
        per_attempt = self.timeout + self._settle_seconds() + self.timeout
        waits = self.retry.worst_case(0.0)
        return self.send_horizon + self.max_attempts * per_attempt + waits + CLOCK_SKEW_SECONDS

    async def _find_created(
        self,
        client: Client,
        limiter: asyncio.Semaphore,
        to: str,
        since: float,
        claimed: set[str],
        until: float | None = None,
        *,
        template_sid: str,
        variables: Mapping[str, str],
    ) -> Any:
        """The message an earlier attempt created for ``to`` between ``since`` and ``until`` from this template
        and these variables, or None; a :class:`Failure` when Twilio could not be asked or its listing was too
        long to be sure.

        The rules (see :mod:`~airflow_provider_qconn.hooks.twilio_reconcile`): the recipient's whole listing from
        our sender is read, since queued messages can be listed anywhere; when that took more than one request,
        the messages sent since the window's first day are listed too (one sent while we paged moved behind us).
        A match was created inside the window, is unclaimed, and carries our rendered template unless Twilio
        recorded no body. The template is fetched only when a listed message falls inside the window.
        """
        config = self.config
        service = config.messaging_service_sid if config.messaging_service_sid and not config.from_number else None
        params: dict[str, Any] = {"to": to, "page_size": twilio_reconcile.PAGE_SIZE}
        if config.sender and service is None:
            params["from_"] = config.sender
        window = twilio_reconcile.Window.between(since, until, CLOCK_SKEW_SECONDS)
        expected: frozenset[str] | None = None

        async def scan(listing: dict[str, Any]) -> tuple[Any, int]:
            nonlocal expected
            page: Any = await self._request(limiter, lambda: client.messages.page_async(**listing))
            pages = 0
            while not isinstance(page, Failure):
                pages += 1
                timed = twilio_reconcile.in_window(page, window, claimed, service)
                if timed and expected is None:
                    bodies = await self._expected_bodies(client, limiter, template_sid, variables)
                    if isinstance(bodies, Failure):
                        return bodies, pages
                    expected = bodies
                found = twilio_reconcile.matches(timed, expected or frozenset())
                if found:
                    if len(found) > 1:
                        log.warning(
                            "Found %d messages to one recipient from one send; keeping the earliest.", len(found)
                        )
                    return found[0], pages
                step = twilio_reconcile.coverage(pages, page.next_page_url is not None)
                if step is twilio_reconcile.Coverage.COMPLETE:
                    return None, pages
                if step is twilio_reconcile.Coverage.OVER_BUDGET:
                    read = pages * twilio_reconcile.PAGE_SIZE
                    message = f"more than {read:,} messages to the recipient from this sender: not all were read"
                    return Failure("lookup_incomplete", message), pages
                page = await self._request(limiter, page.next_page_async)
            return page, pages

        found, pages = await scan(params)
        if found is None and twilio_reconcile.needs_sent_pass(pages):
            found, _pages = await scan({**params, "date_sent_after": window.sent_since()})
        if found is not None and not isinstance(found, Failure):
            claimed.add(found.sid)
        return found

    @cached_property
    def _template_fetches(self) -> dict[str, asyncio.Task[Any]]:
        """Content templates fetched for look-ups, by SID: one request per template and event loop."""
        return {}

    async def _expected_bodies(
        self, client: Client, limiter: asyncio.Semaphore, template_sid: str, variables: Mapping[str, str]
    ) -> frozenset[str] | Failure:
        """The bodies Twilio can have recorded for our send (the template fetched once, however many look-ups)."""
        loop = asyncio.get_running_loop()
        task = self._template_fetches.get(template_sid)
        if task is None or task.get_loop() is not loop:
            fetch = self._request(limiter, lambda: client.content.v1.contents(template_sid).fetch_async())
            task = self._template_fetches[template_sid] = loop.create_task(fetch)
        content = await task
        if isinstance(content, Failure):
            if self._template_fetches.get(template_sid) is task:
                del self._template_fetches[template_sid]  # the next look-up asks again
            return content
        return twilio_reconcile.expected_bodies(content.types or {}, content.variables or {}, variables)

    async def _call(self, limiter: asyncio.Semaphore, request: Callable[[], Awaitable[T]]) -> T | Failure:
        """One request within the concurrency bound, its failure classified (:func:`classify`) instead of raised."""
        async with limiter:
            try:
                # The async twilio client passes timeout=None to aiohttp, which disables every timeout.
                return await asyncio.wait_for(request(), self.timeout)
            except Exception as error:
                failure = classify(error, self.timeout)
                if failure is None:
                    raise
                return failure

    async def _request(self, limiter: asyncio.Semaphore, request: Callable[[], Awaitable[T]]) -> T | Failure:
        """:meth:`_call` tried as the retry policy says (for reads, which are safe to repeat)."""
        return await self.retry.run(lambda: self._call(limiter, request))

    def fetch_message_statuses(self, message_ids: Sequence[str]) -> dict[str, LookupResult]:
        """The status of each distinct message SID.

        From :data:`LIST_THRESHOLD` SIDs on, the newest messages of the account are listed first, 1,000 a page
        and at most one page more than the SIDs fill (0.27 s against 0.81 s fetching each of 1,000
        messages just sent); whatever that does not find is fetched one by one, concurrently, with 429, 5xx
        and timeouts retried.
        """
        self.config  # noqa: B018 - read (and validated) outside the event loop
        return asyncio.run(self.afetch_message_statuses(message_ids))

    async def afetch_message_statuses(self, message_ids: Sequence[str]) -> dict[str, LookupResult]:
        """:meth:`fetch_message_statuses` for callers that run an event loop (the delivery trigger)."""
        unique = list(dict.fromkeys(message_ids))

        async def work(client: Client) -> dict[str, LookupResult]:
            limiter = asyncio.Semaphore(self.config.max_concurrency)
            found: dict[str, LookupResult] = {}
            if len(unique) >= LIST_THRESHOLD:
                found = await self._list_recent(client, limiter, set(unique), pages=2 + len(unique) // LIST_PAGE)
            missing = [sid for sid in unique if sid not in found]
            fetched = await asyncio.gather(*(self._fetch_one(client, limiter, sid) for sid in missing))
            return {**found, **{result.message_id: result for result in fetched}}

        return await self._arun(work) if unique else {}

    async def _list_recent(
        self, client: Client, limiter: asyncio.Semaphore, wanted: set[str], pages: int
    ) -> dict[str, LookupResult]:
        """Statuses of the wanted SIDs among the account's newest messages (a page that fails ends the scan)."""
        found: dict[str, LookupResult] = {}
        page: Any = await self._request(limiter, lambda: client.messages.page_async(page_size=LIST_PAGE))
        for number in range(1, pages + 1):
            if isinstance(page, Failure) or page is None:
                break
            for message in page:
                if message.sid in wanted:
                    found[message.sid] = LookupResult(message.sid, details=message_details(message))
            if len(found) == len(wanted) or number == pages:
                break
            page = await self._request(limiter, page.next_page_async)
        return found

    async def _fetch_one(self, client: Client, limiter: asyncio.Semaphore, sid: str) -> LookupResult:
        outcome = await self._request(limiter, lambda: client.messages(sid).fetch_async())
        if isinstance(outcome, Failure):
            return LookupResult(sid, code=outcome.reported_code, message=outcome.message, transient=outcome.transient)
        return LookupResult(sid, details=message_details(outcome))


def message_details(message: Any) -> dict[str, Any]:
    """The fields of a message the operators publish, JSON-serialisable."""
    to = message.to or ""
    if to.lower().startswith(normalise.WHATSAPP_PREFIX):
        to = to[len(normalise.WHATSAPP_PREFIX) :]
    updated = message.date_updated
    return {
        "message_id": message.sid,
        "status": message.status,
        "to": to,
        "error_code": message.error_code,
        "error_message": message.error_message,
        "date_updated": updated.isoformat() if updated is not None else None,
    }

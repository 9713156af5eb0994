"""MSGraphHook: a Graph client for one mailbox of a connection, and the calendar calls.

Requests are built as kiota request objects with JSON bodies (:mod:`.client`) and sent through msgraph-core's
request adapter and middleware, under the retry policy of :mod:`.retry` (429/503/504 replayed, honouring
``Retry-After``; kiota's own RetryHandler is turned off). Responses are read as JSON, without the SDK's typed-model
parse: its first use in a process imports about 1,200 modules and costs about 2 s (measured by
bench/outlook_overhead.py, see docs/outlook.md), for the four fields a task needs.

msgraph-core, kiota, azure-identity and MSAL are imported inside the methods that use them, never at module level,
so that parsing a DAG which uses the Outlook operators stays as cheap as importing Airflow.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import json
import urllib.parse
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import replace
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

from airflow.sdk import BaseHook

from airflow_provider_qconn.exceptions import ApiError, NonRetryableApiError, QconnError
from airflow_provider_qconn.hooks.common import ssl_context
from airflow_provider_qconn.hooks.msgraph import retry
from airflow_provider_qconn.hooks.msgraph.client import (
    QueryValue,
    graph_request,
    mailbox_url,
    path_segment,
    request_adapter,
)
from airflow_provider_qconn.hooks.msgraph.credentials import build_credential
from airflow_provider_qconn.hooks.msgraph.errors import (
    GRAPH,
    IDENTITY,
    ITEM_NOT_FOUND,
    credential_error,
    graph_error,
    unreachable,
    unreadable,
)
from airflow_provider_qconn.hooks.msgraph.events import (
    CalendarEntry,
    EventDetails,
    Meeting,
    graph_event,
    teams_block,
    with_teams_block,
)
from airflow_provider_qconn.hooks.msgraph.settings import GraphSettings
from airflow_provider_qconn.hooks.msgraph.token_store import TokenStore

if TYPE_CHECKING:
    import httpx
    from kiota_abstractions.request_information import RequestInformation

T = TypeVar("T")

#: Events asked for per page of a calendar view (``Prefer: odata.maxpagesize``), and the most pages followed.
PAGE_SIZE = 100
MAX_PAGES = 200


def _graph_instant(moment: dt.datetime) -> str:
    """An aware datetime as calendarView's window takes it: UTC with a ``Z`` (no ``+`` to escape in a query)."""
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- the hook ------------------------------------------------------------------------------------------------------


class MSGraphHook(BaseHook):
    """Outlook calendar events through Microsoft Graph, for one mailbox of a ``qconn_msgraph`` connection.

    Keyword arguments override the connection's extras; ``token_store`` is where a delegated connection's newest
    refresh token is kept (Airflow Variables by default, see :mod:`.token_store`). The hook keeps one Graph
    client (and one access token) for its lifetime; :meth:`close` releases them. Its methods are synchronous:
    each runs the SDK's async calls on the hook's own event loop.
    """

    conn_name_attr = "msgraph_conn_id"
    default_conn_name = "qconn_msgraph_default"
    conn_type = "qconn_msgraph"
    hook_name = "Outlook (Microsoft Graph)"

    def __init__(
        self,
        msgraph_conn_id: str = default_conn_name,
        *,
        auth_type: str | None = None,
        tenant_id: str | None = None,
        user_id: str | None = None,
        base_url: str | None = None,
        authority: str | None = None,
        token_store: TokenStore | None = None,
    ) -> None:
        super().__init__()
        self._token_store = token_store
        self.msgraph_conn_id = msgraph_conn_id
        self._overrides = {
            "auth_type": auth_type,
            "tenant_id": tenant_id,
            "user_id": user_id,
            "base_url": base_url,
            "authority": authority,
        }
        self._http: httpx.AsyncClient | None = None

    @cached_property
    def settings(self) -> GraphSettings:
        """The connection, read and checked (raises ConnectionConfigError before any request)."""
        return GraphSettings.from_connection(self.get_connection(self.msgraph_conn_id), **self._overrides)

    @cached_property
    def credential(self) -> Any:
        """The token credential for the connection's auth type."""
        return build_credential(self.settings, self._token_store)

    @cached_property
    def client(self) -> Any:
        """The request adapter every call sends through (msgraph-core's, see :mod:`.client`), over an httpx
        client on the connection's base URL that trusts the configured CA bundle."""
        import httpx

        self._http = httpx.AsyncClient(
            base_url=self.settings.base_url, verify=ssl_context(), timeout=httpx.Timeout(100.0, connect=30.0)
        )
        return request_adapter(self.credential, self.settings, self._http)

    @cached_property
    def _loop(self) -> asyncio.AbstractEventLoop:
        return asyncio.new_event_loop()

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the hook's loop; from inside a running loop (a notebook, async code), in a thread."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return self._loop.run_until_complete(coroutine)
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            return pool.submit(self._loop.run_until_complete, coroutine).result()

    def close(self) -> None:
        """Close the HTTP client, the credential and the event loop (the next call builds them again)."""
        if self._http is not None:
            self._run(self._http.aclose())
            self._http = None
        credential = self.__dict__.pop("credential", None)
        if credential is not None:
            credential.close()
        self.__dict__.pop("client", None)
        loop = self.__dict__.pop("_loop", None)
        if loop is not None:
            loop.close()

    def __enter__(self) -> MSGraphHook:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- calendar calls ---------------------------------------------------------------------------------------------

    def create_event(self, details: EventDetails, transaction_id: str) -> Meeting:
        """``POST .../events``; Graph returns the earlier event instead when ``transaction_id`` was seen before.

        :param details: the event's properties.
        :param transaction_id: the create's idempotency key, the same for every attempt to create this event.
            Reused with other details it is refused (NonRetryableApiError with code
            ``ErrorDuplicateTransactionId``): :meth:`find_event` reads the event it created.
        """
        self.log.info("Creating an event in %s (transactionId %s)", self.settings.mailbox, transaction_id)
        request = graph_request("POST", self._events_url(), body=graph_event(details, transaction_id=transaction_id))
        return Meeting.from_graph(self._run(self._send(request)))

    def find_event(self, transaction_id: str) -> Meeting | None:
        """The event created with ``transaction_id`` (``GET .../events?$filter=transactionId eq '...'``).

        :param transaction_id: the transactionId the event was created with.

        Returns None when the calendar holds no such event (it was cancelled, which moves it to Deleted Items, or
        deleted).
        """
        quoted = transaction_id.replace("'", "''")
        query: dict[str, QueryValue] = {
            "$filter": f"transactionId eq '{quoted}'",
            "$select": Meeting.GRAPH_PROPERTIES,
            "$top": 1,
        }
        found = self._run(self._send(graph_request("GET", self._events_url(), query)))
        events = (found or {}).get("value") or []
        return Meeting.from_graph(events[0]) if events else None

    def get_event(self, meeting_id: str, select: tuple[str, ...] = ()) -> dict[str, Any]:
        """``GET .../events/{id}`` as Graph's JSON (only the ``select``-ed properties when given).

        :param meeting_id: the Graph event id.
        :param select: the properties to read (all when empty).
        """
        return self._run(self._get(meeting_id, select))

    def update_event(self, meeting_id: str, details: EventDetails) -> Meeting:
        """``PATCH .../events/{id}`` with the given properties only.

        New content is sent with the event's Teams block kept (read with a ``GET`` first): Graph warns that a
        body without it turns the online meeting off.
        """
        if details.content is not None:
            current = self.get_event(meeting_id, select=("body", "isOnlineMeeting", "onlineMeeting"))
            block = teams_block((current.get("body") or {}).get("content") or "")
            if block is not None:
                details = replace(
                    details, content=with_teams_block(details.content, details.content_type, block), content_type="html"
                )
            elif current.get("isOnlineMeeting"):
                self.log.warning(
                    "Meeting %s is a Teams meeting but its body holds no Teams block to keep; Graph may turn the "
                    "online meeting off with the new content",
                    meeting_id,
                )
        self.log.info("Updating event %s in %s", meeting_id, self.settings.mailbox)
        request = graph_request("PATCH", self._event_url(meeting_id), body=graph_event(details))
        return Meeting.from_graph(self._run(self._send(request, meeting_id=meeting_id)))

    def cancel_event(self, meeting_id: str, comment: str | None = None, *, missing_ok: bool = False) -> bool:
        """``POST .../events/{id}/cancel``: the organizer cancels the meeting and attendees get ``comment``.

        :param meeting_id: the Graph event id.
        :param comment: the message sent to the attendees with the cancellation.
        :param missing_ok: return False instead of failing when the event is not found (deleted, or already
            cancelled).

        A cancel is not idempotent (a replay of one that went through answers 404), so it is not replayed
        blindly: before a replay the event is read, and found cancelled it counts as done. A 429 was not
        processed and is replayed without that read.
        """
        self.log.info("Cancelling event %s in %s", meeting_id, self.settings.mailbox)
        body = {} if comment is None else {"Comment": comment}  # the property's name as msgraph-sdk's model sends it
        request = graph_request("POST", f"{self._event_url(meeting_id)}/cancel", body=body)

        async def took_effect() -> bool:
            if not await self._cancelled(meeting_id):
                return False
            self.log.info("Event %s is cancelled: the cancel went through although its answer failed", meeting_id)
            return True

        try:
            self._run(self._send(request, meeting_id=meeting_id, settled=took_effect, read=False))
        except NonRetryableApiError as error:
            if missing_ok and error.status == 404 and error.code in ITEM_NOT_FOUND:
                self.log.info("Event %s was not found (deleted or already cancelled): nothing to cancel", meeting_id)
                return False
            raise
        return True

    def is_cancelled(self, meeting_id: str) -> bool:
        """Whether the event exists and is cancelled (False when it cannot be read).

        :param meeting_id: the Graph event id.
        """
        return self._run(self._cancelled(meeting_id))

    def list_events(self, start: dt.datetime, end: dt.datetime, page_size: int = PAGE_SIZE) -> list[CalendarEntry]:
        """``GET .../calendarView``: the events that overlap ``[start, end)``, recurring ones expanded into their
        occurrences, every page followed (``@odata.nextLink``).

        :param start: the window's start (an aware datetime).
        :param end: the window's end (an aware datetime).
        :param page_size: the events asked for per page (``Prefer: odata.maxpagesize``).

        Times come back in UTC (``Prefer: outlook.timezone="UTC"``): an instant, where local times would be
        ambiguous in the hour a daylight-saving change repeats. Only the properties :class:`CalendarEntry` reads
        are asked for (``$select``), with immutable ids. Cancelled occurrences are listed as Graph lists them.
        """
        query: dict[str, QueryValue] = {
            "endDateTime": _graph_instant(end),
            "startDateTime": _graph_instant(start),
            "$select": CalendarEntry.GRAPH_PROPERTIES,
        }
        self.log.info("Listing the events of %s from %s to %s", self.settings.mailbox, start, end)
        events = self._run(self._pages(f"{mailbox_url(self.settings)}/calendarView", query, page_size))
        return [CalendarEntry.from_graph(event) for event in events]

    async def _pages(self, url: str, query: dict[str, QueryValue], page_size: int) -> list[dict[str, Any]]:
        """Every item of a collection, page after page; each page under the retry policy."""
        preferences = ('outlook.timezone="UTC"', f"odata.maxpagesize={page_size}")
        request = graph_request("GET", url, query, preferences)
        items: list[dict[str, Any]] = []
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            page = await self._send(request) or {}
            items += page.get("value") or []
            link = page.get("@odata.nextLink")
            if not link:
                return items
            if link in seen or not self._own_link(link):
                raise NonRetryableApiError(
                    GRAPH,
                    None,
                    "invalid_next_link",
                    f"Graph's next page link {link!r} repeats or leaves {self.settings.base_url}",
                )
            seen.add(link)
            request = graph_request("GET", link, preferences=preferences)
        raise NonRetryableApiError(
            GRAPH,
            None,
            "too_many_pages",
            f"more than {MAX_PAGES} pages of {page_size} events: narrow the window ({len(items)} events read)",
        )

    def _own_link(self, link: str) -> bool:
        """Whether a link Graph returned points at the configured Graph (the token is sent nowhere else)."""
        ours, theirs = urllib.parse.urlsplit(self.settings.base_url), urllib.parse.urlsplit(link)
        return (theirs.scheme, theirs.netloc) == (ours.scheme, ours.netloc)

    def test_connection(self) -> tuple[bool, str]:
        """Read one event id from the mailbox: proves the credentials, the permission and the mailbox."""
        try:
            self._run(self._send(graph_request("GET", self._events_url(), {"$select": ["id"], "$top": 1})))
        except QconnError as error:
            return False, str(error)
        finally:
            self.close()
        return True, f"Connected: the calendar of {self.settings.mailbox} can be read."

    # --- plumbing ---------------------------------------------------------------------------------------------------

    def _events_url(self) -> str:
        """The URL of the mailbox's events: ``.../me/events`` or ``.../users/{user_id}/events``."""
        return f"{mailbox_url(self.settings)}/events"

    def _event_url(self, meeting_id: str) -> str:
        """The URL of one event of the mailbox."""
        return f"{self._events_url()}/{path_segment(meeting_id)}"

    async def _get(self, meeting_id: str, select: tuple[str, ...] = ()) -> dict[str, Any]:
        request = graph_request("GET", self._event_url(meeting_id), {"$select": select or None})
        return await self._send(request, meeting_id=meeting_id)

    async def _cancelled(self, meeting_id: str) -> bool:
        try:
            return bool((await self._get(meeting_id, ("isCancelled",))).get("isCancelled"))
        except ApiError:
            return False

    async def _send(
        self,
        request: RequestInformation,
        meeting_id: str | None = None,
        settled: Callable[[], Awaitable[bool]] | None = None,
        read: bool = True,
    ) -> Any:
        """Send a request built by :func:`.client.graph_request` through the request adapter under the retry policy
        (:mod:`.retry`); Graph's JSON back (when ``read``), or our error.

        ``settled`` is asked, before replaying a request whose failure could have followed its taking effect
        (anything but a 429), whether it did: if so nothing is replayed and None is returned. Without it, the
        request is replayed as is (safe for reads, PATCHes and creates with a transactionId).
        """
        try:
            async for attempt in retry.attempts():
                with attempt:
                    try:
                        response = await self._send_once(request)
                    except retry.Unanswered:
                        if settled is not None and await settled():
                            return None
                        raise
                    if retry.replayable(response.status_code):
                        if settled is not None and response.status_code != 429 and await settled():
                            return None
                        raise retry.Replay(response)
                    if response.status_code >= 400 or not (read and response.content):
                        break
                    try:
                        return json.loads(response.content)
                    except ValueError:
                        raise retry.Unreadable(response) from None
        except retry.Unreadable as last:
            raise unreadable(GRAPH, last.response) from None
        except retry.Replay as last:
            response = last.response
        except retry.Unanswered as last:
            raise unreachable(GRAPH, self.settings.base_url, last.error) from last.error
        if response.status_code >= 400:
            raise self._graph_error(response, meeting_id)
        return None

    async def _send_once(self, request: RequestInformation) -> httpx.Response:
        """One attempt: the raw answer, :class:`.retry.Unanswered` when none came, or our error for a failure to
        sign in or to reach Graph at all."""
        import httpx
        from azure.core.exceptions import ClientAuthenticationError, ServiceRequestError

        try:
            return await self.client.send_primitive_async(request, "bytes", None)
        except ClientAuthenticationError as error:
            raise credential_error(error) from error
        except ServiceRequestError as error:  # azure-identity could not reach the authority
            raise unreachable(IDENTITY, self.settings.authority, error) from error
        except httpx.TransportError as error:
            if "CERTIFICATE_VERIFY_FAILED" in str(error):
                raise unreachable(GRAPH, self.settings.base_url, error) from error
            raise retry.Unanswered(error) from error

    def _graph_error(self, response: httpx.Response, meeting_id: str | None) -> ApiError:
        """Graph's error envelope as an error a DAG author can act on (see :func:`.errors.graph_error`)."""
        return graph_error(response, self.settings, meeting_id)

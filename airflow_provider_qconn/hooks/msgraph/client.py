"""The hook's Graph client: msgraph-core's request adapter and middleware, and the requests the calendar calls send.

msgraph-sdk's ``GraphServiceClient`` is not used: importing the ``msgraph`` package loads the client and its
generated request builders (some 200 modules), and every request builder and typed model a call reaches adds more,
where a task sends one or two requests (measured by bench/outlook_overhead.py). Each request is built here
as a kiota :class:`RequestInformation` (method, absolute URL with its query, ``Accept`` and ``Prefer`` headers, JSON
body) and sent through msgraph-core's request adapter, over an httpx client carrying kiota's and msgraph-core's
default middleware (redirects, parameter-name decoding, Graph's telemetry headers). kiota's RetryHandler is turned
off on every request: :mod:`.retry` decides every replay.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx
    from kiota_abstractions.request_information import RequestInformation

    from airflow_provider_qconn.hooks.msgraph.settings import GraphSettings

#: Every request asks for immutable ids, which survive the event being moved to another folder.
PREFER_IMMUTABLE_IDS = 'IdType="ImmutableId"'
JSON = "application/json"
#: A query parameter's value: a list is sent comma-separated (``$select=id,webLink``); None is left out.
QueryValue = str | int | Sequence[str] | None


def request_adapter(credential: Any, settings: GraphSettings, http: httpx.AsyncClient) -> Any:
    """msgraph-core's request adapter over ``http`` (with the default middleware added to it), attaching
    ``credential``'s token to requests for the configured Graph host only."""
    from kiota_authentication_azure.azure_identity_authentication_provider import (
        AzureIdentityAuthenticationProvider,
    )
    from msgraph_core import BaseGraphRequestAdapter, GraphClientFactory

    auth = AzureIdentityAuthenticationProvider(credential, scopes=settings.scopes, allowed_hosts=[settings.graph_host])
    return BaseGraphRequestAdapter(auth, http_client=GraphClientFactory.create_with_default_middleware(client=http))


def mailbox_url(settings: GraphSettings) -> str:
    """The URL of the connection's mailbox: ``{base_url}/me``, or ``{base_url}/users/{user_id}``."""
    if settings.user_id is None:
        return f"{settings.base_url}/me"
    return f"{settings.base_url}/users/{urllib.parse.quote(settings.user_id, safe='')}"


def path_segment(value: str) -> str:
    """An id (a user's, an event's) as one path segment: every reserved character percent-encoded."""
    return urllib.parse.quote(value, safe="")


def with_query(url: str, query: Mapping[str, QueryValue] | None) -> str:
    """``url`` with the query parameters that are not None, in the given order (names such as ``$select`` kept
    as they are, values percent-encoded but for a list's commas)."""
    pairs = []
    for name, value in (query or {}).items():
        if value is None:
            continue
        text = ",".join(value) if isinstance(value, Sequence) and not isinstance(value, str) else str(value)
        pairs.append(f"{urllib.parse.quote(name, safe='$')}={urllib.parse.quote(text, safe=',')}")
    if not pairs:
        return url
    return f"{url}{'&' if '?' in url else '?'}{'&'.join(pairs)}"


def graph_request(
    method: str,
    url: str,
    query: Mapping[str, QueryValue] | None = None,
    preferences: Sequence[str] = (),
    body: Mapping[str, Any] | None = None,
) -> RequestInformation:
    """A Graph request as the request adapter sends it: JSON accepted (and sent, when ``body`` is given), immutable
    ids and any other ``Prefer`` values asked for, the raw answer handed back (no typed parse), kiota's
    RetryHandler off.

    :param method: the HTTP method (``GET``, ``POST``, ``PATCH`` ...).
    :param url: the absolute URL (e.g. from :func:`mailbox_url`, or a next-page link Graph returned).
    :param query: query parameters added to ``url``.
    :param preferences: ``Prefer`` values besides immutable ids.
    :param body: the JSON body.
    """
    from kiota_abstractions.method import Method
    from kiota_abstractions.native_response_handler import NativeResponseHandler
    from kiota_abstractions.request_information import RequestInformation
    from kiota_http.middleware.options import ResponseHandlerOption, RetryHandlerOption

    request = RequestInformation(Method(method.upper()))
    request.url = with_query(url, query)
    request.headers.try_add("Accept", JSON)
    request.headers.add("Prefer", [PREFER_IMMUTABLE_IDS, *preferences])
    if body is not None:
        request.set_stream_content(json.dumps(body).encode(), JSON)
    request.add_request_options([ResponseHandlerOption(NativeResponseHandler()), RetryHandlerOption(max_retries=0)])
    return request

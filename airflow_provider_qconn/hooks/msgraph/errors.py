"""Graph's and the identity platform's refusals as the provider's errors, each saying what to do about it.

Which class an error gets decides whether Airflow retries the task: :class:`ApiError` for a failure a later try
can fix (throttling, an outage, an unreachable host), :class:`NonRetryableApiError` for one it cannot; what
counts as transient is decided in :mod:`.retry`.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

from airflow_provider_qconn.exceptions import ApiError, NonRetryableApiError
from airflow_provider_qconn.hooks.msgraph.retry import TRANSIENT_OAUTH_ERRORS, replayable, transient_status

if TYPE_CHECKING:
    import httpx

    from airflow_provider_qconn.hooks.msgraph.settings import GraphSettings

GRAPH = "Microsoft Graph"
IDENTITY = "Microsoft identity platform"
#: Graph's codes for an event that does not exist (the docs list both spellings).
ITEM_NOT_FOUND = ("ErrorItemNotFound", "itemNotFound")
#: Graph's code for a create whose transactionId was already used for an event with another payload (client code
#: written against Graph reports it with 400, some with 409).
DUPLICATE_TRANSACTION_ID = "ErrorDuplicateTransactionId"
_AADSTS = re.compile(r"AADSTS(\d+):?\s*(.*?)(?:\s+Trace ID:|\r|\n|$)", re.DOTALL)


def graph_error(response: httpx.Response, settings: GraphSettings, meeting_id: str | None) -> ApiError:
    """Graph's error envelope as an error a DAG author can act on, with Graph's code and request id."""
    status = response.status_code
    try:
        error = json.loads(response.content).get("error") or {}
    except (ValueError, AttributeError):
        error = {}
    code = error.get("code")
    message = str(error.get("message") or response.reason_phrase or "no message").rstrip(".") + "."
    request_id = response.headers.get("request-id") or (error.get("innerError") or {}).get("request-id")
    explanation = f"Graph refused the request: {message}"
    if status == 401:
        explanation = (
            f"Graph refused the access token for {settings.mailbox}: {message} Check the credentials of "
            f"connection {settings.conn_id!r}."
        )
    elif status == 403:
        grant = (
            "the delegated permission Calendars.ReadWrite, consented to by the user"
            if settings.delegated
            else "the application permission Calendars.ReadWrite with admin consent (an application access "
            "policy may also limit which mailboxes it reaches)"
        )
        explanation = f"access to the calendar of {settings.mailbox} was denied: {message} The app needs {grant}."
    elif status == 404 and code in ITEM_NOT_FOUND and meeting_id:
        explanation = (
            f"meeting {meeting_id!r} was not found in {settings.mailbox}: it was deleted or cancelled, or it "
            "belongs to another mailbox."
        )
    elif code == DUPLICATE_TRANSACTION_ID:
        explanation = (
            f"the transactionId was already used in {settings.mailbox} to create an event with other details, and "
            f"Graph creates one event per transactionId: the new details were not applied. (Graph: {message})"
        )
    elif status == 404 and code == "ErrorInvalidUser":
        explanation = f"the mailbox {settings.mailbox!r} does not exist (check extra 'user_id'): {message}"
    elif status == 400 and "organizer" in message.lower():
        explanation = (
            f"only the organizer can cancel a meeting, and {settings.mailbox} holds an attendee's copy of "
            f"meeting {meeting_id!r}. Use a connection for the organizer's mailbox. (Graph: {message})"
        )
    elif replayable(status):
        explanation = (
            f"Graph is {'throttling' if status == 429 else 'unavailable'} and still refused after the client's "
            f"retries (which honour Retry-After): {message} A later task try can repeat the call safely."
        )
    if transient_status(status):
        return ApiError(GRAPH, status, code, explanation, request_id=request_id)
    return NonRetryableApiError(GRAPH, status, code, explanation, request_id=request_id)


def identity_error(error: str | None, codes: list[int], description: str, hint: str | None = None) -> ApiError:
    """An OAuth error from the token endpoint (AADSTS code and its first sentence) as our error."""
    found = _AADSTS.search(description)
    code = f"AADSTS{codes[0]}" if codes else (f"AADSTS{found.group(1)}" if found else error)
    detail = (found.group(2) if found else description).strip() or str(error)
    message = f"{hint}. ({detail})" if hint else f"the token request was refused ({error}): {detail}"
    if error in TRANSIENT_OAUTH_ERRORS:
        return ApiError(IDENTITY, None, code, message)
    return NonRetryableApiError(IDENTITY, None, code, message)


def unreachable(service: str, url: str, error: Exception) -> ApiError:
    """A request that got no answer (retryable): never connected, no answer in time, or a connection that broke
    after the request was sent; with a hint when the server's certificate was not trusted."""
    import httpx

    text = str(error) or type(error).__name__
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return ApiError(
            service,
            None,
            None,
            f"could not reach {url}: {text} (a custom CA bundle goes in SSL_CERT_FILE or REQUESTS_CA_BUNDLE)",
        )
    if isinstance(error, (httpx.ConnectError, httpx.ConnectTimeout)):
        return ApiError(service, None, None, f"could not reach {url}: {text}")
    if isinstance(error, httpx.TimeoutException):
        return ApiError(
            service,
            None,
            "timeout",
            f"no answer from {url} in time ({text}): the request may have taken effect; a later try repeats it safely",
        )
    return ApiError(
        service,
        None,
        None,
        f"the connection to {url} broke before the answer ({text}): the request may have "
        "taken effect; a later try repeats it safely",
    )


def unreadable(service: str, response: httpx.Response) -> ApiError:
    """A 2xx answer whose body is not the service's JSON, still so after every attempt (retryable)."""
    return ApiError(
        service,
        response.status_code,
        "invalid_response",
        f"the answer could not be read ({len(response.content)} "
        f"bytes of {response.headers.get('content-type') or 'unknown type'}): the request took effect, and a later "
        "try repeats it safely",
    )


def credential_error(error: Exception) -> ApiError:
    """azure-identity's ClientAuthenticationError (or CredentialUnavailableError) as our error."""
    status = getattr(error, "status_code", None)
    text = str(getattr(error, "message", None) or error)
    found = _AADSTS.search(text)
    code = f"AADSTS{found.group(1)}" if found else None
    detail = found.group(2).strip() if found else text.splitlines()[0]
    message = f"could not get an access token: {detail}"
    if transient_status(status):
        return ApiError(IDENTITY, status, code, message)
    return NonRetryableApiError(IDENTITY, status, code, message)

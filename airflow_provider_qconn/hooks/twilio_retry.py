"""The one retry rule for Twilio requests: what failed, whether it may pass, how long to wait, how often to try.

Every request the Twilio hook makes (creates, look-ups, fetches, list pages) goes through :class:`RetryPolicy`;
a failure is classified once, by :func:`classify`, into a :class:`Failure`:

- **throttled** (HTTP 429 / 20429): Twilio did not process the request; always safe to send again, after the
  ``Retry-After`` Twilio sent or an exponential backoff with full jitter;
- **ambiguous** (a 5xx, a timeout, a cut connection, a 2xx body that is not Twilio's JSON): the request may have
  taken effect. A read is simply repeated; a create is repeated only after a look-up found no message;
- anything else (4xx): final, never repeated.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass
class Failure:
    """A request outcome that is not a resource: a provider refusal or a transport failure."""

    code: int | str
    message: str
    status: int | None = None
    ambiguous: bool = False
    #: Seconds Twilio asked us to wait (``Retry-After``), when it said.
    retry_after: float | None = None

    @property
    def throttled(self) -> bool:
        return self.status == 429

    @property
    def transient(self) -> bool:
        """Asking again later can succeed."""
        return self.throttled or self.ambiguous

    @property
    def reported_code(self) -> int | str:
        """The code a user sees: ``throttled`` for a 429 still refused after every attempt."""
        return "throttled" if self.throttled else self.code


class Throttled(Exception):
    """A 429 seen by the HTTP client, raised with the ``Retry-After`` that the twilio SDK's own errors drop."""

    def __init__(self, code: int | None, message: str, retry_after: float | None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after


def retry_after_seconds(value: str | None) -> float | None:
    """A ``Retry-After`` header in seconds (Twilio sends delta-seconds); None when absent or unreadable."""
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return seconds if seconds is not None and seconds >= 0 else None


def throttled_error(body: str, retry_after: str | None) -> Throttled:
    """The :class:`Throttled` for a 429 response with this body and ``Retry-After`` header."""
    try:
        payload = json.loads(body or "{}")
    except ValueError:
        payload = {}
    payload = payload if isinstance(payload, dict) else {}
    message = str(payload.get("message") or "Too Many Requests")
    code = payload.get("code") if isinstance(payload.get("code"), int) else None
    return Throttled(code, message, retry_after_seconds(retry_after))


def _clean(message: str | None) -> str:
    """Twilio's message without the SDK's 'Unable to create record: ' prefix."""
    text = (message or "").strip()
    for prefix in ("Unable to create record: ", "Unable to fetch record: ", "Unable to fetch page: "):
        text = text.removeprefix(prefix)
    return text


def twilio_error(error: Exception) -> tuple[int | None, int | None, str]:
    """(HTTP status, Twilio code, message) of a twilio SDK error.

    Single-resource calls raise TwilioRestException; list pages raise a plain TwilioException whose second
    argument is the HTTP response, with Twilio's error body.
    """
    from twilio.base.exceptions import TwilioRestException

    if isinstance(error, TwilioRestException):
        return error.status, error.code, _clean(error.msg)
    response = error.args[1] if len(error.args) > 1 else None
    status = getattr(response, "status_code", None)
    try:
        body = json.loads(getattr(response, "text", "") or "{}")
    except ValueError:
        body = {}
    return status, body.get("code"), str(body.get("message") or (error.args[0] if error.args else error))


def classify(error: BaseException, timeout: float) -> Failure | None:
    """The :class:`Failure` an exception of a Twilio request stands for, or None when it is not a request failure
    (a bug, which must propagate)."""
    import aiohttp
    from twilio.base.exceptions import TwilioException

    if isinstance(error, Throttled):
        return Failure(error.code or 429, error.message, status=429, retry_after=error.retry_after)
    if isinstance(error, TwilioException):
        status, code, message = twilio_error(error)
        return Failure(code or status or "error", message, status=status, ambiguous=(status or 500) >= 500)
    if isinstance(error, (asyncio.TimeoutError, TimeoutError)):
        return Failure("timeout", f"no response within {timeout} s", ambiguous=True)
    if isinstance(error, ValueError):  # a 2xx answer that is not Twilio's JSON (a proxy's page, a cut body)
        return Failure("invalid_response", f"Twilio's answer could not be read: {type(error).__name__}", ambiguous=True)
    if isinstance(error, aiohttp.ClientError):
        return Failure("connection_error", f"the connection failed: {type(error).__name__}", ambiguous=True)
    return None


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a Twilio request is tried (tenacity does the looping).

    :param attempts: tries per request, the first included.
    :param backoff: the first backoff's upper bound in seconds; it doubles per attempt (full jitter).
    :param max_wait: no single wait is longer, ``Retry-After`` included.
    """

    attempts: int = 6
    backoff: float = 0.5
    max_wait: float = 30.0

    def wait(self, attempt: int, failure: Failure | None) -> float:
        """Seconds to wait after ``attempt`` failed: Twilio's ``Retry-After``, else a jittered backoff."""
        if failure is not None and failure.retry_after is not None:
            return min(failure.retry_after, self.max_wait)
        return random.uniform(0, min(self.max_wait, self.backoff * 2 ** (attempt - 1)))

    def worst_case(self, timeout: float) -> float:
        """The longest one request can take with every attempt timing out and every wait at its maximum."""
        waits = sum(min(self.max_wait, self.backoff * 2 ** (attempt - 1)) for attempt in range(1, self.attempts))
        return self.attempts * timeout + waits

    async def run(
        self,
        attempt: Callable[[], Awaitable[T | Failure]],
        retry_if: Callable[[Failure], bool] | None = None,
    ) -> T | Failure:
        """Call ``attempt`` until it returns a result, a failure that ``retry_if`` (default: transient) rejects, or
        the attempts run out; the last outcome is returned, never raised.

        The first attempt is made directly (most requests need no other); tenacity runs the rest."""
        from tenacity import AsyncRetrying, retry_if_result, stop_after_attempt

        should_retry = retry_if or (lambda failure: failure.transient)
        first = await attempt()
        if not (isinstance(first, Failure) and should_retry(first)) or self.attempts <= 1:
            return first
        await asyncio.sleep(self.wait(1, first))

        def wait(state: Any) -> float:
            outcome = state.outcome.result() if state.outcome is not None else None
            return self.wait(state.attempt_number + 1, outcome if isinstance(outcome, Failure) else None)

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.attempts - 1),
            wait=wait,
            retry=retry_if_result(lambda outcome: isinstance(outcome, Failure) and should_retry(outcome)),
            retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
        )

        async def call() -> T | Failure:  # a coroutine function, which tenacity awaits (a lambda it would not)
            return await attempt()

        return await retrying(call)

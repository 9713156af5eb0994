"""The one retry policy for Microsoft Graph: what is transient, how long to wait, how many attempts.

Two tiers, both decided here:

- **Replayed within the task** (:func:`replayable`): Graph's answers 429 (throttled), 500, 502, 503
  (unavailable) and 504 (gateway timeout), a request that got no answer (a cut connection, a timeout:
  :class:`Unanswered`) and a 2xx whose body cannot be read (:class:`Unreadable`), up to :data:`ATTEMPTS`
  attempts, waiting what ``Retry-After`` says or else an exponential backoff with full jitter (:func:`delay`).
  The hook sends every request through :func:`attempts` and turns kiota's own RetryHandler off, so there is
  one policy, not two. A replay is safe for every call the hook makes: reads and PATCHes are idempotent, a
  create carries its transactionId (Graph returns the event a first attempt created), and a cancel is checked
  with a read before it is replayed (a 429 was not processed and is replayed as is).
- **Transient for the task** (an :class:`~airflow_provider_qconn.exceptions.ApiError`, which Airflow retries, as
  opposed to a ``NonRetryableApiError``): what is still failing after the last attempt, any other 5xx
  (:func:`transient_status`), and the identity platform's transient OAuth errors (:data:`TRANSIENT_OAUTH_ERRORS`;
  MSAL and azure-identity retry their own requests).
"""

from __future__ import annotations

import datetime as dt
import email.utils
import random
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx
    from tenacity import AsyncRetrying, RetryCallState

#: Graph's answers that say "not now": replayed within the task.
REPLAYED_STATUSES = frozenset({429, 500, 502, 503, 504})
#: Attempts of one request within the task (the first and 3 replays).
ATTEMPTS = 4
#: The backoff's first ceiling (seconds), doubled at each replay, and its cap.
BASE_DELAY = 2.0
MAX_DELAY = 60.0
#: The longest ``Retry-After`` honoured within the task (Graph's own limit for a throttled request); beyond it
#: the request is left to a later task try.
MAX_RETRY_AFTER = 180.0
#: OAuth error codes from the token endpoint that a later attempt can get past.
TRANSIENT_OAUTH_ERRORS = frozenset({"temporarily_unavailable", "server_error"})


def replayable(status: int) -> bool:
    """Whether an answer with this status is replayed within the task."""
    return status in REPLAYED_STATUSES


def transient_status(status: int | None) -> bool:
    """Whether a failed answer with this status is one a later task try can get past (5xx, throttling)."""
    return status is not None and (status >= 500 or status in REPLAYED_STATUSES)


def retry_after(response: httpx.Response) -> float | None:
    """The wait ``Retry-After`` asks for, in seconds (as a number or an HTTP date), or None."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return max(0.0, (when - dt.datetime.now(dt.timezone.utc)).total_seconds())


def delay(replay: int, response: httpx.Response | None) -> float:
    """How long to wait before replay number ``replay`` (1, 2 ...) of a request that got ``response`` (None: no
    answer at all)."""
    asked = retry_after(response) if response is not None else None
    if asked is not None:
        return asked
    return random.uniform(0.0, min(MAX_DELAY, BASE_DELAY * 2 ** (replay - 1)))


class Replay(Exception):
    """A replayable answer, raised inside :func:`attempts` to have the request sent again."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response


class Unreadable(Replay):
    """A 2xx answer whose body is not Graph's JSON (cut short, or a proxy's page): the request took effect, but
    what it made cannot be read, so it is sent again (safe for every request the hook replays)."""


class Unanswered(Exception):
    """No answer: the connection broke or the answer was too slow. The request may have taken effect."""

    def __init__(self, error: Exception) -> None:
        super().__init__(type(error).__name__)
        self.error = error


def _wait(state: RetryCallState) -> float:
    error = state.outcome.exception() if state.outcome else None
    if isinstance(error, Replay):
        return delay(state.attempt_number, error.response)
    return delay(state.attempt_number, None) if isinstance(error, Unanswered) else 0.0


def _honourable(state: RetryCallState) -> bool:
    """Whether to replay: a Replay (unless its ``Retry-After`` is longer than a task should wait) or an
    Unanswered request."""
    error = state.outcome.exception() if state.outcome else None
    if isinstance(error, Unanswered):
        return True
    if not isinstance(error, Replay):
        return False
    asked = retry_after(error.response)
    return asked is None or asked <= MAX_RETRY_AFTER


def attempts(sleep: Callable[[float], Awaitable[None]] | None = None) -> AsyncRetrying:
    """The attempts of one request: ``async for attempt in attempts(): with attempt: ...`` raising
    :class:`Replay` for a replayable answer, :class:`Unanswered` for none. After the last attempt the last of
    them is re-raised."""
    from tenacity import AsyncRetrying, stop_after_attempt

    options: dict[str, Any] = {"sleep": sleep} if sleep is not None else {}
    return AsyncRetrying(retry=_honourable, wait=_wait, stop=stop_after_attempt(ATTEMPTS), reraise=True, **options)

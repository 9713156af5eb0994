"""Small helpers shared by the sandbox's emulated services."""

from __future__ import annotations

import base64
import datetime as dt
import json
import secrets
from email.utils import format_datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from airflow_provider_qconn.sandbox.state import State


def state_of(request: Request) -> State:
    return request.app.state.sandbox_state


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A compact JSON response (Starlette's JSONResponse re-encodes; this keeps key order and speed)."""
    return Response(
        json.dumps(body, separators=(",", ":")),
        status_code=status,
        headers=headers,
        media_type="application/json",
    )


def random_hex(length: int) -> str:
    return secrets.token_hex((length + 1) // 2)[:length]


def random_b64(nbytes: int) -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(nbytes)).decode().rstrip("=")


def iso_utc(timestamp: float) -> str:
    """ISO 8601 in UTC with a ``Z``, as Graph writes ``createdDateTime``."""
    moment = dt.datetime.fromtimestamp(timestamp, dt.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond:06d}0Z"


def rfc2822(timestamp: float | None) -> str | None:
    """RFC 2822 dates, as Twilio writes ``date_created`` (``Thu, 30 Jul 2015 20:12:31 +0000``)."""
    if timestamp is None:
        return None
    return format_datetime(dt.datetime.fromtimestamp(int(timestamp), dt.timezone.utc)).replace("-0000", "+0000")


def base_url(request: Request) -> str:
    """The scheme and authority the client used to reach us (so links point back at the sandbox)."""
    return f"{request.url.scheme}://{request.url.netloc}"

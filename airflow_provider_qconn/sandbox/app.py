"""The sandbox's ASGI application: Graph, the identity platform and Twilio behind one control middleware."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from airflow_provider_qconn.sandbox import control, graph, identity, twilio
from airflow_provider_qconn.sandbox.common import json_response
from airflow_provider_qconn.sandbox.state import State


async def _http_error(request: Request, exc: Exception) -> Response:
    """Unknown routes and methods, answered in the shape of the service the path belongs to."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    service = control.service_of(request.url.path)
    if service == "graph":
        return graph.GraphError(
            400 if status == 404 else status,
            "BadRequest" if status == 404 else "UnsupportedMethod",
            f"Resource not found for the segment '{request.url.path.rsplit('/', 1)[-1]}'."
            if status == 404
            else f"Method {request.method} is not supported on this resource.",
        ).response(request)
    if service == "twilio":
        return twilio.TwilioError(
            status,
            20404 if status == 404 else 20004,
            f"The requested resource {request.url.path} was not found",
        ).response()
    return json_response({"error": "not_found" if status == 404 else "method_not_allowed"}, status=status)


def create_app(state: State | None = None, seed_defaults: bool = True) -> Any:
    """Build the sandbox app over a state (a fresh in-memory one by default), seeded with the default cast."""
    state = state or State()
    if seed_defaults and not state.execute("SELECT 1 FROM mailboxes LIMIT 1"):
        control.reset_state(state)
    app = Starlette(
        # Twilio's before Graph's: the paths do not overlap, and bulk sends are the hot path.
        routes=[*control.routes, *twilio.routes, *graph.routes, *identity.routes],
        exception_handlers={HTTPException: _http_error},
    )
    app.state.sandbox_state = state
    return control.SandboxMiddleware(app, state)

"""Every API route of the sandbox is proven against a contract: a new route without a contract test fails here.

Runs after the other contract tests (``conftest.py`` orders it last) and reads the exchanges they validated.
Each route and method (``HEAD``, which Starlette adds to every ``GET``, aside) needs a validated success, and
each handler a validated error. The token endpoint is in no contract (the real azure-identity and MSAL clients
in ``tests/integration`` prove it) and the control API is the sandbox's own.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from starlette.routing import Match, Route

from airflow_provider_qconn.sandbox import graph, twilio
from tests.contracts import conftest
from tests.contracts.validation import (
    GRAPH_LENIENT,
    TWILIO_CONTENT,
    TWILIO_MESSAGES,
    VALIDATED,
    contract_for,
    document,
)

API_ROUTES: list[Route] = [*graph.routes, *twilio.routes]

#: Operations of the contracts the sandbox does not emulate, and why.
NOT_EMULATED = {
    "DELETE /2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json": "deleting a message: the provider never does",
    "POST /2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json": "redacting or cancelling a message: not used",
}

#: Stand-ins for the path parameters of the contracts, to find the sandbox route serving a contract path.
_SAMPLE_PARAMETERS = {
    "user-id": "adele@contoso.example",
    "event-id": "AAMkAGevent=",
    "AccountSid": "AC" + "0" * 32,
    "Sid": "SM" + "0" * 32,
}


def _methods(route: Route) -> set[str]:
    return set(route.methods or ()) - {"HEAD"}


def _served_by(route: Route, method: str, path: str) -> bool:
    return route.matches({"type": "http", "method": method, "path": path})[0] is Match.FULL


def _require_every_contract_test(request: pytest.FixtureRequest) -> None:
    here = Path(__file__).parent
    modules = {str(here / "test_graph_contract.py"), str(here / "test_twilio_contract.py")}
    collected = {str(item.path) for item in request.session.items}
    if not modules <= collected or request.config.stash.get(conftest.DESELECTED_CONTRACT_TESTS, False):
        pytest.skip("route coverage is judged over the whole tests/contracts folder only")


def test_every_sandbox_route_is_contract_tested(request: pytest.FixtureRequest) -> None:
    _require_every_contract_test(request)
    missing = []
    for route in API_ROUTES:
        for method in sorted(_methods(route)):
            served = [x for x in VALIDATED if _served_by(route, method, x.path) and x.method == method]
            if not any(x.status < 300 for x in served):
                missing.append(f"{method} {route.path}: no successful exchange validated against its contract")
    for name in sorted({route.name for route in API_ROUTES}):
        routes = [route for route in API_ROUTES if route.name == name]
        served = [x for x in VALIDATED if any(_served_by(r, x.method, x.path) for r in routes)]
        if not any(x.status >= 400 for x in served):
            missing.append(f"{name} ({routes[0].path}): no error response validated")
    assert not missing, "\n".join(missing)


def test_every_route_belongs_to_a_contract() -> None:
    for route in API_ROUTES:
        assert contract_for(route.path).name, route.path


def test_every_contract_operation_is_emulated_or_excused() -> None:
    unserved = set()
    for spec, prefix in ((GRAPH_LENIENT, "/v1.0"), (TWILIO_MESSAGES, ""), (TWILIO_CONTENT, "")):
        for template, item in document(spec)["paths"].items():
            path = prefix + re.sub(r"\{([^}]+)\}", lambda m: _SAMPLE_PARAMETERS[m.group(1)], template)
            for method in {"get", "post", "patch", "put", "delete"} & set(item):
                if not any(_served_by(route, method.upper(), path) for route in API_ROUTES):
                    unserved.add(f"{method.upper()} {template}")
    assert unserved == set(NOT_EMULATED)

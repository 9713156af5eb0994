"""Benchmark: what the Outlook operators add to a task, in a fresh process, beyond ``import airflow.sdk``.

Each figure is the median of fresh interpreters (after one warm-up run, so bytecode is compiled), all against
one sandbox on a loopback port:

- ``operators_import``: importing ``airflow_provider_qconn.operators.outlook`` (what parsing a DAG costs);
- ``schedule``: a ScheduleMeetingOperator run, split into building the hook's Graph client (the SDK imports)
  and the first call (validating the parameters, sign-in and the POST), plus a second call (an update) once
  everything is warm; once per sign-in: delegated (``qconn_msgraph_default``, a refresh token) and app-only
  (``qconn_msgraph_app``, a client secret);
- ``azure_provider_schedule``: the same meeting created through the hook of Airflow's ``MSGraphAsyncOperator``
  (``KiotaRequestAdapterHook`` from ``apache-airflow-providers-microsoft-azure``, which ``make bench`` installs
  into the benchmark's environment only), app-only with the same client secret: importing its hook module,
  building its request adapter, the first call (sign-in and the POST, no input validation) and a warm update;
  skipped when that provider is not installed;
- ``typed_parse``: msgraph-sdk's typed-model parse of one event (first and second time) against ``json.loads``,
  the measurement behind reading responses as JSON (one measured run: seconds against microseconds).

It also records the requests each action sends (from the sandbox's journal). Results go to
bench/results/outlook_overhead.json.

    .venv/bin/python bench/outlook_overhead.py [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results" / "outlook_overhead.json"
#: A Graph event as the sandbox returns it (attendees, body, Teams), parsed by the ``typed_parse`` child.
EVENT_FILE = "QCONN_BENCH_EVENT_FILE"
#: The Azure provider's ``msgraph`` connection to the sandbox (app-only, the seed's client secret).
AZURE_CONN_ID = "qconn_bench_azure_msgraph"
AZURE_HOOK_MODULE = "airflow.providers.microsoft.azure.hooks.msgraph"
AZURE_PROVIDER = "apache-airflow-providers-microsoft-azure"
#: The meeting every schedule creates, as the operator takes it.
MEETING = {
    "subject": "Benchmark",
    "start": "2030-03-04T10:00:00",
    "end": "2030-03-04T11:00:00",
    "time_zone": "Europe/Madrid",
    "attendees": ["megan@contoso.example"],
    "teams_meeting": True,
    "content": "<p>Agenda</p>",
}


def azure_connection(sandbox_url: str, bundle: str) -> dict[str, Any]:
    """The Azure provider's ``msgraph`` connection for the sandbox's seeded app, as its hook reads one: the Graph
    base URL, tenant, authority (the sandbox emulates the token endpoint; no instance discovery off Microsoft's
    hosts), the hosts a token may be sent to, and the CA bundle for both httpx and azure-identity."""
    from airflow_provider_qconn.sandbox import seed

    return {
        "conn_type": "msgraph",
        "login": seed.CLIENT_ID,
        "password": seed.CLIENT_SECRET,
        "extra": {
            "tenant_id": seed.TENANT_ID,
            "base_url": f"{sandbox_url}/v1.0/",
            "authority": sandbox_url,
            "disable_instance_discovery": True,
            "allowed_hosts": "127.0.0.1",
            "verify": bundle,
        },
    }


def azure_provider_installed() -> bool:
    """Whether Airflow's Microsoft Azure provider is installed here (``make bench`` installs it)."""
    try:
        return importlib.util.find_spec(AZURE_HOOK_MODULE) is not None
    except ModuleNotFoundError:  # no airflow.providers.microsoft package at all
        return False


def _azure_provider_schedule(result: dict[str, Any]) -> int:
    """The meeting through the Azure provider's KiotaRequestAdapterHook: the same JSON body our hook sends (built
    here by our own code, outside the timings), the same mailbox and ``Prefer`` header."""
    from airflow_provider_qconn import normalise
    from airflow_provider_qconn.hooks.msgraph import EventDetails
    from airflow_provider_qconn.hooks.msgraph.events import graph_event
    from airflow_provider_qconn.sandbox import seed

    start, end = normalise.time_range(MEETING["start"], MEETING["end"], MEETING["time_zone"])
    details = EventDetails(
        subject=MEETING["subject"],
        content=MEETING["content"],
        start=start,
        end=end,
        attendees=tuple(normalise.email_addresses(MEETING["attendees"])),
        teams_meeting=True,
    )
    body = graph_event(details, transaction_id=os.environ["QCONN_BENCH_RUN"])
    events = f"users/{seed.ORGANIZER}/events"
    headers = {"Prefer": 'IdType="ImmutableId"'}
    modules = len(sys.modules)  # what building the body loaded is not the hook's

    async def run() -> None:
        mark = time.perf_counter()
        module = importlib.import_module(AZURE_HOOK_MODULE)
        result["operators_import_s"] = time.perf_counter() - mark
        hook = module.KiotaRequestAdapterHook(conn_id=AZURE_CONN_ID, timeout=100)
        mark = time.perf_counter()
        await hook.get_async_conn()
        result["client_build_s"] = time.perf_counter() - mark
        mark = time.perf_counter()
        created = await hook.run(url=events, method="POST", data=body, headers=headers)
        result["first_call_s"] = time.perf_counter() - mark
        if not created.get("id"):
            raise RuntimeError(f"the Azure provider's hook created no event: {created!r}")
        mark = time.perf_counter()
        await hook.run(url=f"{events}/{created['id']}", method="PATCH", data={"subject": "Moved"}, headers=headers)
        result["warm_call_s"] = time.perf_counter() - mark
        await hook.close()

    asyncio.run(run())
    result["schedule_total_s"] = result["operators_import_s"] + result["client_build_s"] + result["first_call_s"]
    return modules


def _context(run_id: str) -> dict[str, Any]:
    from types import SimpleNamespace

    return {"ti": SimpleNamespace(dag_id="bench", task_id="schedule", run_id=run_id, map_index=-1)}


def child(measure: str) -> dict[str, Any]:
    """One measurement in this (fresh) interpreter; seconds, and modules loaded by the measured step."""
    started = time.perf_counter()
    import airflow.sdk  # noqa: F401

    result: dict[str, Any] = {"airflow_sdk_import_s": time.perf_counter() - started}
    modules = len(sys.modules)
    if measure == "operators_import":
        mark = time.perf_counter()
        import airflow_provider_qconn.operators.outlook  # noqa: F401

        result["operators_import_s"] = time.perf_counter() - mark
    elif measure == "schedule":
        mark = time.perf_counter()
        from airflow_provider_qconn.hooks.msgraph import EventDetails
        from airflow_provider_qconn.operators.outlook import ScheduleMeetingOperator

        operator = ScheduleMeetingOperator(
            task_id="schedule", msgraph_conn_id=os.environ["QCONN_BENCH_CONN"], **MEETING
        )
        result["operators_import_s"] = time.perf_counter() - mark
        hook = operator.hook
        mark = time.perf_counter()
        hook.client  # noqa: B018
        result["client_build_s"] = time.perf_counter() - mark
        mark = time.perf_counter()
        meeting = hook.create_event(operator.details(), os.environ["QCONN_BENCH_RUN"])
        result["first_call_s"] = time.perf_counter() - mark
        mark = time.perf_counter()
        hook.update_event(meeting.id, EventDetails(subject="Benchmark (moved)"))
        result["warm_call_s"] = time.perf_counter() - mark
        hook.close()
        result["schedule_total_s"] = result["operators_import_s"] + result["client_build_s"] + result["first_call_s"]
    elif measure == "azure_provider_schedule":
        modules = _azure_provider_schedule(result)
    elif measure == "typed_parse":
        raw = Path(os.environ[EVENT_FILE]).read_bytes()
        importlib.import_module("msgraph")  # the SDK itself is loaded by then: count only what the step adds

        modules = len(sys.modules)
        mark = time.perf_counter()
        from kiota_serialization_json.json_parse_node_factory import JsonParseNodeFactory
        from msgraph.generated.models.event import Event

        JsonParseNodeFactory().get_root_parse_node("application/json", raw).get_object_value(Event)
        result["first_parse_s"] = time.perf_counter() - mark
        mark = time.perf_counter()
        JsonParseNodeFactory().get_root_parse_node("application/json", raw).get_object_value(Event)
        result["second_parse_s"] = time.perf_counter() - mark
        mark = time.perf_counter()
        json.loads(raw)
        result["json_loads_s"] = time.perf_counter() - mark
    else:
        raise SystemExit(f"unknown measure {measure!r}")
    result["modules_loaded"] = len(sys.modules) - modules
    return result


def run_children(measure: str, runs: int, env: dict[str, str]) -> list[dict[str, Any]]:
    results = []
    for index in range(runs + 1):  # the first run compiles bytecode and warms the disk cache: not counted
        run_env = {**env, "QCONN_BENCH_RUN": f"{measure}-{index}-{time.time_ns()}"}
        run_env.pop("PYTHONDONTWRITEBYTECODE", None)  # bytecode written by the warm-up and used, as on a worker
        output = subprocess.run(
            [sys.executable, __file__, "--child", measure],
            env=run_env,
            capture_output=True,
            text=True,
            check=True,
            timeout=300,
        ).stdout
        if index:
            results.append(json.loads(output.strip().splitlines()[-1]))
    return results


def summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Median (and range) of each figure over the runs."""
    figures: dict[str, Any] = {}
    for key in results[0]:
        values = [r[key] for r in results]
        if key.endswith("_s"):
            figures[key] = {
                "median": round(statistics.median(values), 4),
                "min": round(min(values), 4),
                "max": round(max(values), 4),
            }
        else:
            figures[key] = int(statistics.median(values))
    return figures


def request_counts(env: dict[str, str], sandbox: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The requests each action sends through one hook (Graph, and token requests), from the journal; and the
    event Graph returned to the schedule."""
    import datetime as dt

    from airflow_provider_qconn.hooks.msgraph import EventDetails, MSGraphHook

    os.environ.update(env)
    details = EventDetails(
        subject="Counted",
        start=dt.datetime(2030, 3, 4, 10, tzinfo=dt.timezone.utc),
        end=dt.datetime(2030, 3, 4, 11, tzinfo=dt.timezone.utc),
        teams_meeting=True,
    )
    counts: dict[str, Any] = {}
    sandbox.control.clear_journal()

    def count(action: str) -> list[dict[str, Any]]:
        journal = sandbox.control.journal()
        graph = [e for e in journal if e["service"] == "graph"]
        counts[action] = {
            "graph": [f"{e['method']} {e['status']}" for e in graph],
            "token_requests": sum(e["path"].endswith("/oauth2/v2.0/token") for e in journal),
        }
        sandbox.control.clear_journal()
        return graph

    with MSGraphHook("qconn_msgraph_default") as hook:
        meeting = hook.create_event(details, "counted")
        (created,) = count("schedule (first request of the hook)")
        hook.update_event(meeting.id, EventDetails(subject="Counted (moved)"))
        count("update without content")
        hook.update_event(meeting.id, EventDetails(content="<p>New agenda</p>"))
        count("update with content")
        hook.cancel_event(meeting.id, "Done")
        count("cancel")
    return counts, created["response_json"]


def main() -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--child")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child)))
        return {}

    from airflow_provider_qconn.sandbox import Sandbox, environment

    with Sandbox() as sandbox, tempfile.TemporaryDirectory(prefix="qconn-bench-") as home:
        env = {
            **os.environ,
            **environment(sandbox.url, str(sandbox.bundle_path)),
            f"AIRFLOW_CONN_{AZURE_CONN_ID.upper()}": json.dumps(
                azure_connection(sandbox.url, str(sandbox.bundle_path))
            ),
            "AIRFLOW_HOME": home,
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        }
        counts, event = request_counts(env, sandbox)
        event_file = Path(home) / "event.json"
        event_file.write_text(json.dumps(event))
        env[EVENT_FILE] = str(event_file)
        measures: dict[str, Any] = {}
        plan = [
            ("operators_import", ""),
            ("schedule", "qconn_msgraph_default"),
            ("schedule", "qconn_msgraph_app"),
            ("azure_provider_schedule", AZURE_CONN_ID),
            ("typed_parse", ""),
        ]
        if not azure_provider_installed():
            print("apache-airflow-providers-microsoft-azure is not installed: its hook is not measured", flush=True)
            plan.remove(("azure_provider_schedule", AZURE_CONN_ID))
        for measure, conn_id in plan:
            name = f"{measure} ({conn_id})" if conn_id else measure
            runs = 1 if measure == "typed_parse" else args.runs
            measures[name] = summary(run_children(measure, runs, {**env, "QCONN_BENCH_CONN": conn_id}))
            print(name, json.dumps(measures[name]), flush=True)
    results = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "runs_per_figure": args.runs,
        "versions": {
            name: importlib.metadata.version(name)
            for name in ("apache-airflow", "msgraph-core", "azure-identity", "msal", AZURE_PROVIDER)
            if name != AZURE_PROVIDER or azure_provider_installed()
        },
        "fresh_process_beyond_airflow_sdk": measures,
        "requests_per_action": counts,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()

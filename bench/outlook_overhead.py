"""Benchmark: what the Outlook operators add to a task, in a fresh process, beyond ``import airflow.sdk``.

Each figure is the median of fresh interpreters (after one warm-up run, so bytecode is compiled), all against
one sandbox on a loopback port:

- ``operators_import``: importing ``airflow_provider_qconn.operators.outlook`` (what parsing a DAG costs);
- ``schedule``: a ScheduleMeetingOperator run, split into building the hook's Graph client (the SDK imports)
  and the first call (sign-in and the POST), plus a second call (an update) once everything is warm;
- ``typed_parse``: msgraph-sdk's typed-model parse of one event (first and second time) against ``json.loads``,
  the measurement behind reading responses as JSON; ``typed_serialize``: building and serialising the request
  ``Event`` model, which the hook does use.

It also records the requests each action sends (from the sandbox's journal). Results go to
bench/results/outlook_overhead.json.

    .venv/bin/python bench/outlook_overhead.py [--runs 5]
"""

from __future__ import annotations

import argparse
import importlib
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
            task_id="schedule",
            msgraph_conn_id=os.environ["QCONN_BENCH_CONN"],
            subject="Benchmark",
            start="2030-03-04T10:00:00",
            end="2030-03-04T11:00:00",
            time_zone="Europe/Madrid",
            attendees=["megan@contoso.example"],
            teams_meeting=True,
            content="<p>Agenda</p>",
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
    elif measure == "typed_serialize":
        import datetime as dt

        importlib.import_module("msgraph")  # the SDK itself is loaded by then: count only what the step adds

        from airflow_provider_qconn.hooks.msgraph.events import EventDetails, event_model
        from airflow_provider_qconn.normalise import EmailAddress

        modules = len(sys.modules)
        details = EventDetails(
            subject="Benchmark",
            content="<p>Agenda</p>",
            start=dt.datetime(2030, 3, 4, 10, tzinfo=dt.timezone.utc),
            end=dt.datetime(2030, 3, 4, 11, tzinfo=dt.timezone.utc),
            location="Room 4",
            attendees=(EmailAddress("megan@contoso.example"),),
            teams_meeting=True,
        )
        mark = time.perf_counter()
        from kiota_serialization_json.json_serialization_writer_factory import JsonSerializationWriterFactory

        writer = JsonSerializationWriterFactory().get_serialization_writer("application/json")
        writer.write_object_value(None, event_model(details, transaction_id="bench"))
        writer.get_serialized_content()
        result["first_serialize_s"] = time.perf_counter() - mark
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
            "AIRFLOW_HOME": home,
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        }
        counts, event = request_counts(env, sandbox)
        event_file = Path(home) / "event.json"
        event_file.write_text(json.dumps(event))
        env[EVENT_FILE] = str(event_file)
        measures: dict[str, Any] = {}
        for measure, conn_id in [
            ("operators_import", ""),
            ("schedule", "qconn_msgraph_default"),
            ("schedule", "qconn_msgraph_app"),
            ("typed_parse", ""),
            ("typed_serialize", ""),
        ]:
            name = f"{measure} ({conn_id})" if conn_id else measure
            measures[name] = summary(run_children(measure, args.runs, {**env, "QCONN_BENCH_CONN": conn_id}))
            print(name, json.dumps(measures[name]), flush=True)
    results = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "runs_per_figure": args.runs,
        "fresh_process_beyond_airflow_sdk": measures,
        "requests_per_action": counts,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()

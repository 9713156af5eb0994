"""The quick-start demo: the sandbox with its seed, the connection values to use, and every example DAG run on it.

Run with ``make demo``. It starts a sandbox on a free loopback port, prints its URLs and ready-made
``AIRFLOW_CONN_*`` values, then, with exactly those values and a throwaway Airflow home (a SQLite metadata DB),
runs each DAG in ``example_dags/`` with ``dag.test()``, prints every task's state and outputs, and ends with a
summary of the runs and the requests the sandbox saw. For ``meeting_reminders`` it first seeds a recurring
meeting and a single one that start within the window of the current hour's run, and the phone numbers of
their attendees, then shows the WhatsApp reminders that went out (and the interview invitations of
``interview_scheduling``). It exits non-zero if a DAG run did not succeed.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shlex
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

EXAMPLES = Path(__file__).resolve().parents[1] / "example_dags"


def show_environment(url: str, graph_base_url: str, bundle: str) -> dict[str, str]:
    from airflow_provider_qconn.sandbox import environment

    env = environment(url, bundle)
    print(f"Sandbox running on {url}")
    print(f"  Graph base URL   {graph_base_url}")
    print(f"  login authority  {url}")
    print(f"  Twilio base URL  {url}")
    print("\nConnection values for Airflow (valid while this sandbox runs; `make sandbox` keeps one up):\n")
    for name, value in env.items():
        print(f"export {name}={shlex.quote(value)}")
    return env


def prepare_meeting_reminders(sandbox: Any) -> dict[str, Any]:
    """Seed what the reminders DAG needs for a run now: meetings that start within its window, and phone numbers.

    The run for the current hour ``T`` reminds the meetings starting from ``T + 1h`` to ``T + 2h`` (its data
    interval is the hour before ``T``, shifted by the DAG's two-hour lead): a daily stand-up at ``T + 1h15m``
    (recurring, with a Teams link) and a single budget review at ``T + 1h40m``, in Madrid time.
    """
    from airflow.models import Variable

    from airflow_provider_qconn.sandbox import seed

    hour = dt.datetime.now(dt.timezone.utc).replace(minute=0, second=0, microsecond=0)

    def meeting(subject: str, start: dt.datetime, minutes: int, **fields: Any) -> dict[str, Any]:
        local = start.astimezone(ZoneInfo("Europe/Madrid")).replace(tzinfo=None)
        return {
            "mailbox": seed.ORGANIZER,
            "subject": subject,
            "start": {"dateTime": local.isoformat(), "timeZone": "Europe/Madrid"},
            "end": {"dateTime": (local + dt.timedelta(minutes=minutes)).isoformat(), "timeZone": "Europe/Madrid"},
            **fields,
        }

    invitees = [
        {"emailAddress": {"address": seed.COLLEAGUE, "name": "Megan Bowen"}, "type": "required"},
        {"emailAddress": {"address": "ana@fabrikam.example", "name": "Ana"}, "type": "required"},
        {"emailAddress": {"address": "leo@fabrikam.example", "name": "Leo"}, "type": "optional"},
    ]
    stand_up = hour + dt.timedelta(hours=1, minutes=15)
    sandbox.control.seed(
        events=[
            meeting(
                "Daily stand-up",
                stand_up,
                15,
                attendees=invitees,
                isOnlineMeeting=True,
                onlineMeetingProvider="teamsForBusiness",
                recurrence={
                    "pattern": {"type": "daily", "interval": 1},
                    "range": {
                        "type": "noEnd",
                        "startDate": stand_up.astimezone(ZoneInfo("Europe/Madrid")).date().isoformat(),
                    },
                },
            ),
            meeting("Budget review", hour + dt.timedelta(hours=1, minutes=40), 45, attendees=invitees[:1]),
        ]
    )
    # Leo has no number: the run reports him instead of failing.
    Variable.set(
        "qconn_meeting_reminder_phones",
        json.dumps({seed.COLLEAGUE: "+34 612 34 56 78", "ana@fabrikam.example": "+598 99 123 456"}),
    )
    return {"logical_date": hour, "run_after": hour}


#: What a DAG needs before its demo run: a function of the sandbox returning dag.test()'s arguments.
PREPARATIONS: dict[str, Callable[[Any], dict[str, Any]]] = {"meeting_reminders": prepare_meeting_reminders}


def show_whatsapp(sandbox: Any, dag_id: str) -> None:
    """The WhatsApp messages a DAG sent with its template (reminders, interview invitations), as their
    recipients read them."""
    from airflow_provider_qconn.sandbox import seed

    template = {
        "meeting_reminders": seed.TEMPLATE_MEETING_REMINDER,
        "interview_scheduling": seed.TEMPLATE_INTERVIEW,
    }.get(dag_id)
    for message in sandbox.control.messages():
        if template and message["content_sid"] == template:
            print(f"      WhatsApp to {message['to'].removeprefix('whatsapp:')}: {message['body']}")


def run_example_dags(sandbox: Any) -> dict[str, str]:
    """dag.test() every example DAG; print task states and outputs; the state of each DAG's run."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.xcom import XComModel
    from airflow.utils import db
    from airflow.utils.session import create_session

    db.resetdb()
    bag = DagBag(dag_folder=EXAMPLES)
    if bag.import_errors:
        for path, error in bag.import_errors.items():
            print(f"\n{path} does not import:\n{error}")
        return {path: "import error" for path in bag.import_errors}
    states: dict[str, str] = {}
    for dag_id in sorted(bag.dags):
        print(f"\n=== {dag_id} ===")
        prepare = PREPARATIONS.get(dag_id)
        run = bag.dags[dag_id].test(**(prepare(sandbox) if prepare else {}))
        states[dag_id] = str(run.state)
        with create_session() as session:
            rows = session.query(XComModel).filter_by(dag_id=dag_id, run_id=run.run_id).all()
            outputs: dict[tuple[str, int], dict[str, object]] = {}
            for row in rows:
                outputs.setdefault((row.task_id, row.map_index), {})[row.key] = XComModel.deserialize_value(row)
        for ti in sorted(
            run.get_task_instances(), key=lambda ti: (ti.start_date or ti.end_date or run.start_date, ti.map_index)
        ):
            name = ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"
            print(f"  {name:<22} {ti.state}")
            task_outputs = outputs.get((ti.task_id, ti.map_index), {})
            if len(task_outputs) > 1:  # multiple outputs: each key, not the dict they came from
                task_outputs.pop("return_value", None)
            for key, value in task_outputs.items():
                print(f"      {key}: {json.dumps(value, default=str)[:110]}")
        show_whatsapp(sandbox, dag_id)
        print(f"  -> run {run.state}")
    return states


def main() -> int:
    home = tempfile.mkdtemp(prefix="qconn-demo-airflow-")
    os.environ.update(
        {
            "AIRFLOW_HOME": home,
            "AIRFLOW__CORE__DAGS_FOLDER": str(EXAMPLES),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        }
    )
    os.environ.pop("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", None)
    from airflow_provider_qconn.sandbox import Sandbox

    with Sandbox() as sandbox:
        os.environ.update(show_environment(sandbox.url, sandbox.graph_base_url, str(sandbox.bundle_path)))
        # Messages are delivered the moment they are sent, so a delivery sensor's first check finds them
        # delivered instead of deferring for its poke interval (a minute in interview_scheduling).
        sandbox.control.settings(status_delays={"sending": 0, "sent": 0, "delivered": 0})
        states = run_example_dags(sandbox)
        succeeded = bool(states) and all(state == "success" for state in states.values())
        print("\nExample DAG runs:")
        for dag_id, state in states.items():
            print(f"  {dag_id:<28} {state}")
        counts = Counter(f"{e['service']:<8} {e['method']:<6} {e['status']}" for e in sandbox.control.journal())
        print("\nRequests the sandbox saw:")
        for key, count in sorted(counts.items()):
            print(f"  {count:3d}  {key}")
    print("\nAll example DAGs succeeded." if succeeded else "\nAn example DAG failed.")
    return 0 if succeeded else 1


if __name__ == "__main__":
    sys.exit(main())

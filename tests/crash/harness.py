"""An Airflow deployment in a temporary AIRFLOW_HOME, run as real processes, for the crash tests.

Airflow 3 has no ``airflow tasks run``: a task runs when the scheduler's executor hands it to a worker, whose
supervisor forks the process that runs the operator and reports its fate to the API server's execution API.
To kill tasks the way a deployment loses them, this module runs that whole chain as separate processes:
``airflow api-server`` (REST and execution API), ``airflow scheduler`` with the LocalExecutor and
``airflow dag-processor``, on their own SQLite metadata database (``airflow db migrate``). The LocalExecutor
accepts SQLite in Airflow 3 (``airflow standalone`` runs it that way), so no other database is needed; its
workers run the Task SDK's supervisor exactly as a production worker does, so a retry after a crash is
decided by the scheduler, not by the test.

The process tree of a running task is: scheduler -> LocalExecutor worker (the supervisor: heartbeats, reports
the outcome) -> task process (its own process group; the task instance's ``pid``). Killing the task process
makes the supervisor report a failure at once; killing the supervisor too leaves the task instance
``running`` until the scheduler's heartbeat timeout, lowered here to a few seconds, fails it. Either way,
the scheduler retries it after the task's ``retry_delay``.

Connections come in as ``AIRFLOW_CONN_*`` variables pointing at the test sandbox, with the CA bundle
variables that make its TLS certificate trusted. DAG runs are triggered and watched through the REST API
(the simple auth manager with every user an admin, so no login). Every process is started in a new session
and :meth:`Deployment.stop` ends them and all their descendants (task processes lead process groups of
their own), whatever happened.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psutil
from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_fixed

T = TypeVar("T")

#: The ``airflow`` command of the interpreter running the tests (the one the provider is installed in).
AIRFLOW = Path(sys.executable).with_name("airflow")
#: The scheduler's task heartbeat timeout: how long a task whose supervisor died stays ``running``.
HEARTBEAT_TIMEOUT_SECONDS = 10
STARTUP_TIMEOUT_SECONDS = 120.0
#: How long a DAG run may take to reach the state a test waits for (generous: the machine is shared).
TASK_TIMEOUT_SECONDS = 120.0
FINISHED = frozenset({"success", "failed", "upstream_failed", "skipped", "removed"})
#: Where the Airflow processes keep their compiled bytecode (shared by sessions; safe to delete).
BYTECODE_CACHE = Path(tempfile.gettempdir()) / "qconn-crash-tests-bytecode"


class DeploymentError(AssertionError):
    """A wait ran out, or the deployment misbehaved; the message carries what the logs say."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def poll(check: Callable[[], T | None], timeout: float, interval: float = 0.2) -> T | None:
    """Call ``check`` until it returns something other than None, for at most ``timeout`` seconds."""
    retrying = Retrying(
        retry=retry_if_result(lambda value: value is None),
        stop=stop_after_delay(timeout),
        wait=wait_fixed(interval),
    )
    try:
        return retrying(check)
    except RetryError:
        return None


def wait_for(check: Callable[[], T | None], timeout: float, what: str, interval: float = 0.1) -> T:
    """Poll ``check`` until it returns something other than None; fail naming ``what`` was awaited."""
    found = poll(check, timeout, interval)
    if found is None:
        raise DeploymentError(f"gave up waiting {timeout:.0f} s for {what}")
    return found


class Deployment:
    """A scheduler (LocalExecutor), an API server and a DAG processor sharing one temporary AIRFLOW_HOME."""

    def __init__(self, home: Path, dag_files: Iterable[Path], env: Mapping[str, str]) -> None:
        self.home = home
        self.dags_folder = home / "dags"
        self.logs_folder = home / "logs"
        self.dags_folder.mkdir(parents=True, exist_ok=True)
        for dag_file in dag_files:
            (self.dags_folder / dag_file.name).write_text(dag_file.read_text())
        port = _free_port()
        self.api_url = f"http://127.0.0.1:{port}"
        # The environment of every Airflow process: nothing inherited from the test session's own Airflow.
        inherited = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("AIRFLOW", "TWILIO_")) and k != "PYTHONDONTWRITEBYTECODE"
        }
        self.env = {
            **inherited,
            "AIRFLOW_HOME": str(home),
            "PYTHONUNBUFFERED": "1",  # the logs are read while the processes run
            # Bytecode compiled once and reused by every Airflow process and task try (Airflow, msgraph and twilio
            # are thousands of modules) even where PYTHONDONTWRITEBYTECODE is the norm; kept outside the
            # installed packages, in a cache that later sessions reuse (Python recompiles what changed).
            "PYTHONPYCACHEPREFIX": str(BYTECODE_CACHE),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.api_url}/execution/",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__BASE_URL": f"{self.api_url}/",
            "AIRFLOW__API__WORKERS": "1",
            # The scheduler signs the tasks' execution-API tokens; the API server checks them.
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(_free_port()),
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT_SECONDS),
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "1",
            "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.5",
            "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "2",
            **env,
        }
        self._processes: dict[str, subprocess.Popen[bytes]] = {}
        self._http = httpx.Client(base_url=f"{self.api_url}/api/v2", timeout=30)

    # --- lifecycle -------------------------------------------------------------------------------------------

    def check_reaches(self, url: str) -> None:
        """Fail unless a process with this deployment's environment can GET ``url`` over verified TLS (the
        CA bundle variables in the environment must make the sandbox's certificate trusted)."""
        probe = "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=10)"
        result = subprocess.run(
            [sys.executable, "-c", probe, url], env=self.env, capture_output=True, text=True, check=False
        )
        if result.returncode:
            raise DeploymentError(f"the Airflow processes could not reach {url}:\n{result.stderr[-2000:]}")

    def start(self, dag_ids: Iterable[str]) -> Deployment:
        """Create the metadata database, start the three processes, and wait until the DAGs are parsed."""
        migrate = subprocess.run(
            [str(AIRFLOW), "db", "migrate"], env=self.env, capture_output=True, text=True, check=False
        )
        if migrate.returncode:
            raise DeploymentError(f"airflow db migrate failed:\n{migrate.stdout[-3000:]}\n{migrate.stderr[-3000:]}")
        for name in ("api-server", "scheduler", "dag-processor"):
            with (self.home / f"{name}.log").open("wb") as output:
                self._processes[name] = subprocess.Popen(
                    [str(AIRFLOW), name],
                    env=self.env,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
        wanted = set(dag_ids)
        warmed = False

        def parsed() -> bool | None:
            nonlocal warmed
            self._check_alive()
            try:
                listed = self._http.get("/dags", params={"limit": 100})
                if not warmed:
                    self._warm_up_execution_api()
                    warmed = True
            except httpx.TransportError:
                return None
            if listed.status_code != 200:
                return None
            return True if wanted <= {dag["dag_id"] for dag in listed.json()["dags"]} else None

        if poll(parsed, STARTUP_TIMEOUT_SECONDS, interval=0.5) is None:
            raise DeploymentError(f"the DAGs {sorted(wanted)} were not parsed in time\n{self._diagnostics()}")
        return self

    def _warm_up_execution_api(self) -> None:
        """Make the API server build its versioned execution-API models (it does so on the first request to a
        versioned route, and that takes seconds) while the DAGs are parsed: on the first task's first call it
        outlasts the task's request timeout and costs a retried call. The request itself is refused."""
        self._http.put(
            f"{self.api_url}/execution/task-instances/{uuid.uuid4()}/heartbeat",
            headers={"authorization": "Bearer warm-up"},
            json={},
            timeout=60,
        )

    def stop(self) -> None:
        """End every process this deployment started, and everything they started (task processes too)."""
        self._http.close()
        processes = self._own_processes()
        for process in processes:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.send_signal(signal.SIGTERM)
        _gone, alive = psutil.wait_procs(processes, timeout=3)
        for process in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        psutil.wait_procs(alive, timeout=10)
        for popen in self._processes.values():
            popen.wait(timeout=10)

    def _own_processes(self) -> list[psutil.Process]:
        """The processes started here and their descendants, and any orphan of theirs (a task process whose
        supervisor died), recognised by its AIRFLOW_HOME."""
        found: dict[int, psutil.Process] = {}
        for popen in self._processes.values():
            with contextlib.suppress(psutil.NoSuchProcess):
                root = psutil.Process(popen.pid)
                found.update({p.pid: p for p in [root, *root.children(recursive=True)]})
        for process in psutil.process_iter():
            with contextlib.suppress(psutil.Error):
                if process.pid not in found and process.environ().get("AIRFLOW_HOME") == str(self.home):
                    found[process.pid] = process
        return list(found.values())

    def _check_alive(self) -> None:
        for name, popen in self._processes.items():
            if popen.poll() is not None:
                raise DeploymentError(f"airflow {name} exited with {popen.returncode}\n{self._diagnostics()}")

    # --- DAG runs and task instances -------------------------------------------------------------------------

    def _api(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._http.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise DeploymentError(f"{method} {path}: {response.status_code} {response.text}")
        return response.json()

    def trigger(self, dag_id: str) -> str:
        """Start a DAG run now and return its run id."""
        run_id = f"crash__{uuid.uuid4().hex[:12]}"
        self._api("POST", f"/dags/{dag_id}/dagRuns", json={"dag_run_id": run_id, "logical_date": None})
        return run_id

    def task_instance(self, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
        """The task instance as the REST API shows it (``state``, ``try_number``, ``pid``, ...)."""
        return dict(self._api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}"))

    def wait_for_task(
        self,
        dag_id: str,
        run_id: str,
        task_id: str,
        until: Callable[[dict[str, Any]], bool],
        what: str,
        timeout: float = TASK_TIMEOUT_SECONDS,
        interval: float = 0.2,
    ) -> dict[str, Any]:
        """Poll the task instance until ``until(ti)`` holds; fail with its logs (and the deployment's) if not."""
        last: dict[str, Any] = {}

        def check() -> dict[str, Any] | None:
            self._check_alive()
            last.update(self.task_instance(dag_id, run_id, task_id))
            return dict(last) if until(last) else None

        found = poll(check, timeout, interval)
        if found is None:
            raise DeploymentError(
                f"{dag_id}.{task_id} ({run_id}) never became {what} within {timeout:.0f} s; last seen: "
                f"state={last.get('state')} try_number={last.get('try_number')}\n"
                f"{self.task_logs(dag_id, run_id, task_id)}\n{self._diagnostics()}"
            )
        return found

    def wait_until_running(self, dag_id: str, run_id: str, task_id: str, try_number: int) -> dict[str, Any]:
        """Wait until the given try is running in its own process (the task instance's ``pid``)."""
        return self.wait_for_task(
            dag_id,
            run_id,
            task_id,
            lambda ti: ti["state"] == "running" and ti["try_number"] == try_number and bool(ti["pid"]),
            f"running (try {try_number})",
            interval=0.1,
        )

    def wait_until_finished(self, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
        """Wait until the task instance ends for good (no retry left to run)."""
        return self.wait_for_task(dag_id, run_id, task_id, lambda ti: ti["state"] in FINISHED, "finished")

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str) -> Any:
        """An XCom value the task pushed (or returned, with ``multiple_outputs``)."""
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}"
        return self._api("GET", path)["value"]

    def task_logs(self, dag_id: str, run_id: str, task_id: str) -> str:
        """Every try's log of a task instance, as the workers wrote them under AIRFLOW_HOME/logs."""
        folder = self.logs_folder / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
        tries = sorted(folder.glob("attempt=*.log"))
        if not tries:
            return f"(no task log under {folder})"
        return "\n".join(f"--- {path.name} ---\n{_readable_log(path)}" for path in tries)

    def heartbeat_timeouts(self, run_id: str) -> list[str]:
        """The scheduler's reports of task instances of this DAG run it failed for lack of a heartbeat."""
        text = (self.home / "scheduler.log").read_text(errors="replace")
        return [line for line in text.splitlines() if "without a heartbeat" in line and run_id in line]

    def _diagnostics(self) -> str:
        tails = []
        for name in self._processes:
            text = (self.home / f"{name}.log").read_text(errors="replace")
            tails.append(f"--- airflow {name} (last lines) ---\n" + "\n".join(text.splitlines()[-30:]))
        return "\n".join(tails)

    # --- killing tasks ---------------------------------------------------------------------------------------

    def watch_running_task(
        self, ti: Mapping[str, Any], check: Callable[[], T | None], what: str, timeout: float = TASK_TIMEOUT_SECONDS
    ) -> T:
        """Poll ``check`` while this try of the task instance runs, until it returns something other than None;
        fail with the task's logs if the try ends first or the wait runs out."""
        dag_id, run_id, task_id = ti["dag_id"], ti["dag_run_id"], ti["task_id"]

        def watch() -> T | None:
            found = check()
            if found is not None:
                return found
            now = self.task_instance(dag_id, run_id, task_id)
            if (now["state"], now["try_number"]) != ("running", ti["try_number"]):
                raise DeploymentError(
                    f"try {ti['try_number']} of {dag_id}.{task_id} ended ({now['state']}) before {what}\n"
                    f"{self.task_logs(dag_id, run_id, task_id)}"
                )
            return None

        found = poll(watch, timeout, interval=0.1)
        if found is None:
            raise DeploymentError(
                f"gave up waiting {timeout:.0f} s for {what}\n{self.task_logs(dag_id, run_id, task_id)}"
            )
        return found

    def task_processes(self, ti: Mapping[str, Any]) -> tuple[psutil.Process, psutil.Process]:
        """The running task instance's process and its supervisor (the executor worker), checked to be ours."""
        task = psutil.Process(int(ti["pid"]))
        supervisor = task.parent()
        scheduler = self._processes["scheduler"].pid
        if supervisor is None or supervisor.ppid() != scheduler:
            raise DeploymentError(f"process {task.pid} is not a task process of this deployment's scheduler")
        return task, supervisor

    def kill_task(self, ti: Mapping[str, Any], with_supervisor: bool = False) -> None:
        """SIGKILL a running task's process; with ``with_supervisor``, its supervisor first (the whole tree, as
        when a worker machine dies: nobody reports the task's end, the heartbeat timeout must)."""
        task, supervisor = self.task_processes(ti)
        victims = [supervisor, task] if with_supervisor else [task]
        for process in victims:
            process.send_signal(signal.SIGKILL)
        psutil.wait_procs(victims, timeout=10)


def _readable_log(path: Path) -> str:
    """A task log (JSON lines) as ``level event`` text, the way the UI shows it."""
    lines = []
    for raw in path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(raw)
        except ValueError:
            lines.append(raw)
            continue
        text = f"{record.get('timestamp', '')} {record.get('level', '')} {record.get('event', '')}"
        if record.get("error_detail"):
            text += f" {record['error_detail']}"
        lines.append(text)
    return "\n".join(lines)

"""``make airflow``: ``airflow standalone`` on the example DAGs, wired to a sandbox, to click through in a browser.

It starts a sandbox on https://127.0.0.1:8766 (``QCONN_SANDBOX_PORT``; state and TLS files in
``.airflow/sandbox/``, kept across restarts), writes the sandbox's demo connections (``qconn_msgraph_default``,
``qconn_msgraph_app``, ``qconn_msgraph_personal``, ``qconn_twilio_default``) into the metadata database, so
the connections page lists them, and runs ``airflow standalone`` with AIRFLOW_HOME ``.airflow/`` (SQLite), the
DAGs folder ``example_dags/``, the connections page's Test button enabled and the sandbox's CA bundle trusted.
The API server listens on 127.0.0.1:8080 and the LocalExecutor runs 4 tasks at once, unless the environment says
otherwise (``AIRFLOW__API__HOST``, ``AIRFLOW__API__PORT``, ``AIRFLOW__CORE__PARALLELISM``).

Ctrl+C stops Airflow, then the sandbox. Airflow runs in a session of its own and gets one interrupt from here:
when the terminal's Ctrl+C reached every component at once, the scheduler could hang on its way out, its
executor's workers holding standalone's output open. Whatever is left after a minute is killed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import FrameType

ROOT = Path(__file__).resolve().parents[1]
HOME = ROOT / ".airflow"
AIRFLOW = Path(sys.executable).with_name("airflow")
#: Seconds Airflow gets to shut its components down after an interrupt.
STOP_TIMEOUT_SECONDS = 60


def airflow_environment(bundle: str) -> dict[str, str]:
    """The environment of every Airflow process: this repository's home and DAGs, the sandbox's CA bundle.

    Connection variables from the shell (``make sandbox`` prints some) are left out: they would win over the
    connections written to the database, which point at this sandbox.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_QCONN_")}
    env.update(
        {
            # airflow standalone starts its components as `airflow ...` from the PATH.
            "PATH": os.pathsep.join([str(AIRFLOW.parent), os.environ.get("PATH", "")]),
            "AIRFLOW_HOME": str(HOME),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "example_dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
            "SSL_CERT_FILE": bundle,
            "REQUESTS_CA_BUNDLE": bundle,
        }
    )
    env.setdefault("AIRFLOW__API__HOST", "127.0.0.1")
    env.setdefault("AIRFLOW__CORE__PARALLELISM", "4")
    env.pop("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", None)
    return env


def write_connections(env: dict[str, str], connections: dict[str, dict[str, object]]) -> None:
    """Create the metadata database if needed and (over)write the demo connections in it."""
    migrate = subprocess.run([str(AIRFLOW), "db", "migrate"], env=env, capture_output=True, text=True, check=False)
    if migrate.returncode:
        sys.exit(f"airflow db migrate failed:\n{migrate.stdout[-3000:]}\n{migrate.stderr[-3000:]}")
    path = HOME / "demo-connections.json"
    path.touch(mode=0o600)
    try:
        path.write_text(json.dumps(connections))
        imported = subprocess.run(
            [str(AIRFLOW), "connections", "import", "--overwrite", str(path)],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        path.unlink()
    if imported.returncode:
        sys.exit(f"airflow connections import failed:\n{imported.stdout[-3000:]}\n{imported.stderr[-3000:]}")


def stop(standalone: subprocess.Popen[bytes]) -> int:
    """Interrupt ``airflow standalone`` once, as Ctrl+C would; kill its session if it outlives the timeout."""
    print("\nStopping Airflow ...", flush=True)
    standalone.send_signal(signal.SIGINT)
    try:
        return standalone.wait(STOP_TIMEOUT_SECONDS)
    except (subprocess.TimeoutExpired, KeyboardInterrupt):
        print("Airflow did not stop in time: killing what is left of it.", flush=True)
        os.killpg(standalone.pid, signal.SIGKILL)
        return standalone.wait()


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main() -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    from airflow_provider_qconn.sandbox import Sandbox, connections

    sandbox_dir = HOME / "sandbox"
    sandbox_dir.mkdir(parents=True, exist_ok=True)
    port = int(os.environ.get("QCONN_SANDBOX_PORT", "8766"))
    sandbox = Sandbox(port=port, state_path=sandbox_dir / "state.db", tls_dir=sandbox_dir / "tls")
    try:
        sandbox.start()
    except (OSError, RuntimeError) as error:
        sys.exit(f"the sandbox could not start on port {port} ({error}); set QCONN_SANDBOX_PORT to a free port")
    try:
        env = airflow_environment(str(sandbox.bundle_path))
        demo = connections(sandbox.url)
        write_connections(env, demo)
        print(f"Sandbox on {sandbox.url} (control API {sandbox.url}/_sandbox/), state in {sandbox_dir}")
        print(f"Connections written to the metadata database: {', '.join(demo)}")
        print(f"AIRFLOW_HOME={HOME}, DAGs from {ROOT / 'example_dags'}")
        ui = f"http://{env['AIRFLOW__API__HOST']}:{env.get('AIRFLOW__API__PORT', '8080')}"
        print(f"Airflow's UI: {ui}, user admin, password in {HOME / 'simple_auth_manager_passwords.json.generated'}")
        print("Starting airflow standalone (Ctrl+C stops it) ...\n", flush=True)
        standalone = subprocess.Popen([str(AIRFLOW), "standalone"], env=env, start_new_session=True)
        try:
            return standalone.wait()
        except KeyboardInterrupt:
            return stop(standalone)
    finally:
        sandbox.stop()


if __name__ == "__main__":
    sys.exit(main())

"""An Airflow API server (the React UI) with the provider installed, next to the test sandbox, and a headless
Chromium driven by Selenium through Debian's chromedriver (nothing is downloaded).

Without a Chromium and its chromedriver (``apt-get install chromium chromium-driver``) the tests skip, saying
so; ``.ci/run`` installs both.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

from airflow_provider_qconn.sandbox.server import Sandbox
from tests.crash.harness import BYTECODE_CACHE

HERE = Path(__file__).resolve().parent
#: Debian's packages put them here; CHROMIUM and CHROMEDRIVER override.
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = os.environ.get("CHROMEDRIVER") or shutil.which("chromedriver") or "/usr/bin/chromedriver"
STARTUP_TIMEOUT_SECONDS = 180


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _require_chromium() -> None:
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
    if missing:
        pytest.skip(f"no headless browser: {', '.join(missing)} not found (apt-get install chromium chromium-driver)")


class ApiServer:
    """``airflow api-server`` in a temporary AIRFLOW_HOME (SQLite, every user an admin, Test enabled)."""

    def __init__(self, home: Path, sandbox: Sandbox) -> None:
        port = _free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.log = home / "api-server.log"
        inherited = {
            k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW") and k != "PYTHONDONTWRITEBYTECODE"
        }
        self.env = {
            **inherited,
            # Airflow's thousands of modules compiled once, in the cache the crash tests' processes share.
            "PYTHONPYCACHEPREFIX": str(BYTECODE_CACHE),
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
            # The Test button runs the hook in the API server: it must trust the sandbox's certificate.
            "SSL_CERT_FILE": str(sandbox.bundle_path),
            "REQUESTS_CA_BUNDLE": str(sandbox.bundle_path),
        }
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> ApiServer:
        migrate = subprocess.run(
            [sys.executable, "-m", "airflow", "db", "migrate"],
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert migrate.returncode == 0, migrate.stdout[-3000:] + migrate.stderr[-3000:]
        with self.log.open("wb") as output:
            self._process = subprocess.Popen(
                [sys.executable, str(HERE / "api_server.py")],
                env=self.env,
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        for attempt in Retrying(
            retry=retry_if_exception_type((httpx.TransportError, AssertionError)),
            stop=stop_after_delay(STARTUP_TIMEOUT_SECONDS),
            wait=wait_fixed(0.5),
            reraise=True,
        ):
            with attempt:
                assert self._process.poll() is None, f"the API server exited:\n{self.log.read_text()[-3000:]}"
                assert httpx.get(f"{self.url}/api/v2/monitor/health", timeout=5).status_code == 200
        return self

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=10)

    def connection(self, conn_id: str) -> dict:
        """The connection as the REST API stores it (secrets masked)."""
        response = httpx.get(f"{self.url}/api/v2/connections/{conn_id}", timeout=30)
        response.raise_for_status()
        return response.json()


@pytest.fixture(scope="module")
def api_server(qconn_sandbox_server: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    _require_chromium()
    server = ApiServer(tmp_path_factory.mktemp("airflow-ui-home"), qconn_sandbox_server)
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser(api_server: ApiServer) -> Iterator[object]:
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1700"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()

"""Run the sandbox: a uvicorn server in a background thread, with TLS from a throwaway CA."""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from airflow_provider_qconn.sandbox.app import create_app
from airflow_provider_qconn.sandbox.client import SandboxControl
from airflow_provider_qconn.sandbox.state import State


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def make_tls_files(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1/localhost/::1 (reused when already in ``directory``).

    Returns (ca.pem, server.pem with key and chain, bundle.pem = the system CAs plus the sandbox's CA).
    """
    import ssl

    import trustme

    directory.mkdir(parents=True, exist_ok=True)
    ca_path, server_path, bundle_path = (
        directory / "ca.pem",
        directory / "server.pem",
        directory / "bundle.pem",
    )
    if not (ca_path.exists() and server_path.exists()):
        ca = trustme.CA(organization_name="qconn sandbox")
        ca.cert_pem.write_to_path(str(ca_path))
        ca.issue_cert("127.0.0.1", "localhost", "::1").private_key_and_cert_chain_pem.write_to_path(str(server_path))
    system = ssl.get_default_verify_paths().cafile or os.environ.get("SSL_CERT_FILE")
    parts = [Path(system).read_text()] if system and Path(system).is_file() else []
    bundle_path.write_text("".join([*parts, "\n", ca_path.read_text()]))
    return ca_path, server_path, bundle_path


class Sandbox:
    """The sandbox on a loopback port, for tests, the demo and DAG authors.

    >>> with Sandbox() as sandbox:
    ...     sandbox.graph_base_url    # https://127.0.0.1:PORT/v1.0
    ...     sandbox.control.journal()
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: bool = True,
        state_path: str | os.PathLike[str] | None = None,
        tls_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.host = host
        self.port = port or _free_port(host)
        self.tls = tls
        self.state = State(str(state_path) if state_path else ":memory:")
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.ca_path = self.bundle_path = None
        self._server_pem: Path | None = None
        if tls:
            if tls_dir is None:
                self._tmp = tempfile.TemporaryDirectory(prefix="qconn-sandbox-")
                tls_dir = self._tmp.name
            self.ca_path, self._server_pem, self.bundle_path = make_tls_files(Path(tls_dir))
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._control: SandboxControl | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{self.host}:{self.port}"

    @property
    def graph_base_url(self) -> str:
        return f"{self.url}/v1.0"

    @property
    def authority(self) -> str:
        return self.url

    @property
    def twilio_base_url(self) -> str:
        return self.url

    @property
    def control(self) -> SandboxControl:
        if self._control is None:
            self._control = SandboxControl(self.url, verify=str(self.ca_path) if self.ca_path else True)
        return self._control

    def start(self) -> Sandbox:
        import uvicorn

        config = uvicorn.Config(
            create_app(self.state),
            host=self.host,
            port=self.port,
            log_level="warning",
            access_log=False,
            lifespan="off",
            ssl_certfile=str(self._server_pem) if self._server_pem else None,
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="qconn-sandbox", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the sandbox did not start on {self.url}")
            time.sleep(0.02)
        return self

    def serve_forever(self) -> None:
        """Block until interrupted (the command line), then stop; starts the server if it is not running."""
        if self._server is None:
            self.start()
        try:
            while self._thread is not None and self._thread.is_alive():
                self._thread.join(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def stop(self) -> None:
        if self._server is not None:
            # Idle keep-alive connections of clients still open would make uvicorn log a shutdown timeout.
            logging.getLogger("uvicorn.error").setLevel(logging.CRITICAL)
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        if self._control is not None:
            self._control.close()
            self._control = None
        self.state.close()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

"""What the benchmarks share: the sandbox in a process of its own, the machine's description, results files."""

from __future__ import annotations

import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SandboxProcess:
    """``qconn-sandbox`` (state in memory) in its own process, so it never competes for the benchmark's GIL.

    >>> with SandboxProcess() as sandbox:
    ...     sandbox.control.settings(latency={"twilio": 0.1})
    """

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self._dir = tempfile.mkdtemp(prefix="qconn-bench-sandbox-")
        self.bundle = str(Path(self._dir) / "tls" / "bundle.pem")
        self.ca = str(Path(self._dir) / "tls" / "ca.pem")
        self._process: subprocess.Popen[str] | None = None
        self.control: Any = None

    def __enter__(self) -> SandboxProcess:
        from airflow_provider_qconn.sandbox.client import SandboxControl

        command = [str(BIN / "qconn-sandbox"), "--memory", "--port", str(self.port), "--state-dir", self._dir]
        self._process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert self._process.stdout is not None
        deadline = time.monotonic() + 60
        for line in self._process.stdout:
            if line.startswith("Press Ctrl+C") or time.monotonic() > deadline:
                break
        if self._process.poll() is not None:
            raise RuntimeError("the sandbox did not start")
        self.control = SandboxControl(self.url, verify=self.ca)
        return self

    def cpu_seconds(self) -> float:
        """CPU time the sandbox's process has used so far (Linux: from /proc)."""
        assert self._process is not None
        fields = Path(f"/proc/{self._process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def environment(self) -> dict[str, str]:
        from airflow_provider_qconn.sandbox import environment

        return environment(self.url, self.bundle)

    def reset(self, **settings: Any) -> None:
        """The default seed, no messages, an empty journal, and these settings."""
        self.control.reset()
        if settings:
            self.control.settings(**settings)

    def __exit__(self, *exc_info: object) -> None:
        if self.control is not None:
            self.control.close()
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
        shutil.rmtree(self._dir, ignore_errors=True)


def machine() -> dict[str, Any]:
    """What the figures were measured on (the load says how much the machine was shared at the time)."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "system": platform.platform(terse=True),
        "load_average_1m": round(load[0], 2) if load else None,
    }


def write_results(name: str, report: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    return path

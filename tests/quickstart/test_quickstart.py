"""The README's promises: `make demo` works and `qconn-sandbox` serves what it prints."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def test_demo_runs_every_example_dag_on_the_sandbox():
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "demo.py")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "export AIRFLOW_CONN_QCONN_MSGRAPH_DEFAULT=" in out
    assert "export AIRFLOW_CONN_QCONN_TWILIO_DEFAULT=" in out
    for example in sorted((ROOT / "example_dags").glob("*.py")):
        assert f"=== {example.stem} ===" in out
    assert out.count("-> run success") == len(list((ROOT / "example_dags").glob("*.py")))
    assert "All example DAGs succeeded." in out
    assert "\n  meeting_reminders            success" in out.split("Example DAG runs:")[1]
    assert "WhatsApp to +34612345678: Hi Megan Bowen, a reminder: Daily stand-up starts" in out
    assert "WhatsApp to +59899123456: Hi Ana, a reminder: Daily stand-up starts" in out
    assert "WhatsApp to +34612345678: Hi Megan Bowen, a reminder: Budget review starts" in out
    assert "twilio   POST   201" in out


def test_command_line_sandbox_serves_what_it_prints(tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_qconn.sandbox.cli", "--port", "0", "--state-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = []
        for line in process.stdout:
            lines.append(line)
            if line.startswith("Press Ctrl+C"):
                break
        exports = dict(
            line.removeprefix("export ").strip().split("=", 1) for line in lines if line.startswith("export ")
        )
        twilio = json.loads(exports["AIRFLOW_CONN_QCONN_TWILIO_DEFAULT"].strip("'"))
        bundle = exports["REQUESTS_CA_BUNDLE"]
        response = httpx.get(
            f"{twilio['extra']['base_url']}/v1/Content",
            auth=(twilio["login"], twilio["password"]),
            verify=ssl.create_default_context(cafile=bundle),
        )
        assert response.status_code == 200
        assert (tmp_path / "state.db").exists() and (tmp_path / "tls" / "ca.pem").exists()
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_command_line_help_lists_the_options():
    result = subprocess.run(
        [sys.executable, "-m", "airflow_provider_qconn.sandbox.cli", "--help"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ},
    )
    for option in ("--port", "--state-dir", "--memory", "--no-tls", "--latency", "--twilio-max-concurrency"):
        assert option in result.stdout

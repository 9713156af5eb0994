"""Parsing a DAG that uses the provider loads no SDK and no hook: those are imported where a task runs."""

from __future__ import annotations

import json
import subprocess
import sys

from airflow_provider_qconn.hooks.msgraph import MSGraphHook
from airflow_provider_qconn.hooks.twilio import TwilioHook
from airflow_provider_qconn.notifications import whatsapp as notifier
from airflow_provider_qconn.operators import outlook, whatsapp
from airflow_provider_qconn.sensors import whatsapp as sensor

PARSE = """
import json, sys
import airflow.sdk
before = set(sys.modules)
import airflow_provider_qconn.operators.outlook
import airflow_provider_qconn.operators.whatsapp
import airflow_provider_qconn.sensors.whatsapp
import airflow_provider_qconn.notifications.whatsapp
print(json.dumps(sorted(set(sys.modules) - before)))
"""
SDKS = ("msgraph", "msgraph_core", "azure", "msal", "kiota_abstractions", "kiota_http", "twilio", "aiohttp")


def test_importing_every_operator_sensor_and_notifier_loads_no_sdk_and_no_hook():
    output = subprocess.run([sys.executable, "-c", PARSE], capture_output=True, text=True, check=True).stdout
    loaded = json.loads(output.strip().splitlines()[-1])
    assert [module for module in loaded if module.split(".")[0] in SDKS] == []
    assert [module for module in loaded if module.startswith("airflow_provider_qconn.hooks")] == []
    assert "airflow_provider_qconn.triggers.whatsapp" not in loaded  # Airflow's trigger machinery neither


def test_the_default_connection_ids_are_the_hooks():
    assert MSGraphHook.default_conn_name == outlook.DEFAULT_MSGRAPH_CONN_ID
    for module in (whatsapp, sensor, notifier):
        assert TwilioHook.default_conn_name == module.DEFAULT_TWILIO_CONN_ID

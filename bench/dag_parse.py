"""Benchmark: what parsing a DAG pays for the provider, in fresh processes, beyond ``import airflow.sdk``.

Each run is a fresh interpreter that imports ``airflow.sdk``, then every operator, sensor and notifier module of
the provider, and reports the time of the second step and the modules it loaded (SDKs among them must be none:
hooks are imported where a task runs). Bytecode is compiled by a first run that is not counted.
Results go to bench/results/dag_parse.json.

    .venv/bin/python bench/dag_parse.py [--runs 9]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import machine, write_results

#: What a DAG file imports from the provider.
MODULES = (
    "airflow_provider_qconn.operators.outlook",
    "airflow_provider_qconn.operators.whatsapp",
    "airflow_provider_qconn.sensors.whatsapp",
    "airflow_provider_qconn.notifications.whatsapp",
)
#: Packages that must not be loaded by parsing a DAG.
SDKS = ("msgraph", "msgraph_core", "azure", "msal", "kiota_abstractions", "kiota_http", "twilio", "aiohttp")


def child() -> dict[str, Any]:
    import importlib

    import airflow.sdk  # noqa: F401

    before = set(sys.modules)
    started = time.perf_counter()
    for module in MODULES:
        importlib.import_module(module)
    elapsed = time.perf_counter() - started
    loaded = set(sys.modules) - before
    return {
        "import_s": elapsed,
        "modules_loaded": len(loaded),
        "sdk_modules_loaded": sorted(m for m in loaded if m.split(".")[0] in SDKS),
        "provider_modules_loaded": sorted(m for m in loaded if m.startswith("airflow_provider_qconn")),
    }


def fresh_env() -> dict[str, str]:
    """The environment of the runs: bytecode written and used, as on a deployed worker."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    env.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    return env


def main() -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--child", action="store_true")
    parser.add_argument("--name", default="dag_parse", help="results file: bench/results/<name>.json")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child()))
        return {}
    runs = []
    for index in range(args.runs + 1):
        output = subprocess.run(
            [sys.executable, __file__, "--child"], env=fresh_env(), capture_output=True, text=True, check=True
        ).stdout
        if index:  # the first run compiles bytecode
            runs.append(json.loads(output.strip().splitlines()[-1]))
    times = [run["import_s"] for run in runs]
    report = {
        "machine": machine(),
        "runs": args.runs,
        "modules": list(MODULES),
        "import_s": {
            "median": round(statistics.median(times), 4),
            "min": round(min(times), 4),
            "max": round(max(times), 4),
        },
        "modules_loaded": runs[-1]["modules_loaded"],
        "sdk_modules_loaded": runs[-1]["sdk_modules_loaded"],
        "provider_modules_loaded": runs[-1]["provider_modules_loaded"],
    }
    print(json.dumps(report["import_s"]), "SDK modules:", report["sdk_modules_loaded"])
    write_results(args.name, report)
    return report


if __name__ == "__main__":
    main()

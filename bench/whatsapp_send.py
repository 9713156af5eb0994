"""Benchmark: WhatsApp template sends and status reads through TwilioHook vs a plain twilio loop.

The workload of issue 4: 1,000 recipients, 20 ms added to every Twilio request by the sandbox, and a Twilio
concurrency cap of 50. Both sides run in one process against one sandbox, one after the other, so the ratio
is what the figures mean on a shared machine. Results go to bench/results/whatsapp_send.json.

    .venv/bin/python bench/whatsapp_send.py [--recipients 1000] [--latency 0.02] [--cap 50]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results" / "whatsapp_send.json"


def numbers(count: int, offset: int) -> list[str]:
    return [f"+5989{offset + index:07d}" for index in range(count)]


def main() -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--cap", type=int, default=50)
    args = parser.parse_args()

    from airflow_provider_qconn.hooks import twilio as twilio_hook
    from airflow_provider_qconn.hooks.twilio import OutgoingMessage, TwilioHook
    from airflow_provider_qconn.ledger import SendLedger
    from airflow_provider_qconn.sandbox import Sandbox, environment, seed

    with Sandbox() as sandbox:
        os.environ.update(environment(sandbox.url, str(sandbox.bundle_path)))
        sandbox.control.settings(latency={"twilio": args.latency}, twilio_max_concurrency=args.cap)

        # Baseline: what one writes with the twilio client alone, one message at a time.
        from twilio.rest import Client

        client = Client(seed.ACCOUNT_SID, seed.AUTH_TOKEN, environment={"BENCH": "1"})
        client.api.base_url = sandbox.twilio_base_url
        client.http_client.session.verify = str(sandbox.bundle_path)
        started = time.perf_counter()
        for number in numbers(args.recipients, 0):
            client.messages.create(
                to=f"whatsapp:{number}",
                from_=f"whatsapp:{seed.WHATSAPP_SENDER}",
                content_sid=seed.TEMPLATE_REMINDER,
                content_variables=json.dumps({"1": "Ana"}),
            )
        baseline = time.perf_counter() - started

        hook = TwilioHook(max_concurrency=args.cap)
        ledger = SendLedger(seed.AUTH_TOKEN, seed.TEMPLATE_REMINDER)
        messages = [OutgoingMessage(number, {"1": "Ana"}) for number in numbers(args.recipients, 500_000)]
        sandbox.control.clear_journal()
        started = time.perf_counter()
        results = hook.send_whatsapp_templates(messages, seed.TEMPLATE_REMINDER, ledger=ledger)
        ours = time.perf_counter() - started
        journal = sandbox.control.journal(service="twilio")
        throttled = sum(1 for entry in journal if entry["status"] == 429)
        assert all(result.sent for result in results), "every message must be sent"

        sids = [result.message_id for result in results]
        timings = {}
        for name, threshold in (("fetch_each_concurrently_s", len(sids) + 1), ("list_newest_then_fetch_s", 50)):
            twilio_hook.LIST_THRESHOLD = threshold
            sandbox.control.clear_journal()
            started = time.perf_counter()
            lookups = hook.fetch_message_statuses(sids)
            timings[name] = round(time.perf_counter() - started, 3)
            timings[name.replace("_s", "_requests")] = len(sandbox.control.journal(service="twilio"))
            assert all(lookup.details for lookup in lookups.values()) and len(lookups) == len(sids)

    report = {
        "workload": {"recipients": args.recipients, "latency_s": args.latency, "twilio_concurrency_cap": args.cap},
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "send": {
            "plain_loop_s": round(baseline, 3),
            "hook_s": round(ours, 3),
            "speedup": round(baseline / ours, 2),
            "hook_requests": len(journal),
            "hook_429s_retried": throttled,
            "ledger_writes": ledger.writes,
        },
        "statuses": timings,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()

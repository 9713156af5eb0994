"""Benchmark: WhatsApp template sends and status reads through TwilioHook, against the server's own limit.

The sandbox runs in a process of its own (``qconn-sandbox``), adds ``--latency`` to every Twilio request and
answers 429/20429 beyond ``--cap`` requests in flight: the fastest any client can send N messages is then
N x latency / cap (the "limit"). In one run, side by side:

- capacity: what the sandbox answers per second with no latency (a load generator of raw HTTP requests), and
  at the latency with ``cap`` and with 4 x ``cap`` clients, so the figures below are not the sandbox's;
- the plain asyncio client (the async twilio client, a semaphore of ``cap``, gather) and TwilioHook, in
  alternating rounds, each recipient checked in the sandbox's messages (none twice, none missing);
- the one-at-a-time loop (the sync twilio client), measured on ``--loop-recipients`` and scaled up;
- status reads of the sent SIDs: the hook (listing, then fetching what it misses), the hook fetching each,
  the plain client fetching each;
- a scale curve: send and status for each of ``--scale`` recipients in a fresh process (peak RSS).

The hook's ledger is kept in a store whose writes take ``--ledger-write`` seconds (a Variable's round trip).
Results go to bench/results/whatsapp_send.json.

    .venv/bin/python bench/whatsapp_send.py [--recipients 1000] [--latency 0.1] [--cap 50]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import resource
import ssl
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import SandboxProcess, machine, write_results

from airflow_provider_qconn.ledger import MemoryStore
from airflow_provider_qconn.sandbox import seed

VARIABLES = {"1": "Ana", "2": "Monday"}
#: The scale curve runs the plain client beside the hook up to this many recipients.
PLAIN_SCALE_LIMIT = 1000


def numbers(count: int, offset: int) -> list[str]:
    return [f"+5989{offset + index:07d}" for index in range(count)]


class SlowStore(MemoryStore):
    """A ledger store whose writes take as long as a round trip to Airflow's API server, and that counts bytes."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay
        self.bytes = 0

    def set(self, key: str, value: str) -> None:
        time.sleep(self.delay)
        self.bytes += len(value)
        super().set(key, value)


# --- the clients compared --------------------------------------------------------------------------------------


#: The twilio clients log every request at INFO, which Airflow's logging would print: a plain script does not.
QUIET = logging.getLogger("bench.twilio_http")
QUIET.setLevel(logging.WARNING)


def _async_client(url: str, ca: str, cap: int) -> Any:
    import aiohttp
    from twilio.http.async_http_client import AsyncTwilioHttpClient
    from twilio.rest import Client

    http = AsyncTwilioHttpClient(pool_connections=False, logger=QUIET)
    connector = aiohttp.TCPConnector(limit=cap, ssl=ssl.create_default_context(cafile=ca))
    http.session = aiohttp.ClientSession(connector=connector)
    client = Client(seed.ACCOUNT_SID, seed.AUTH_TOKEN, http_client=http, environment={"BENCH": "1"})
    client.api.base_url = url
    return client, http


async def plain_send(url: str, ca: str, cap: int, recipients: list[str]) -> list[str]:
    """What one writes with the async twilio client alone: a semaphore of ``cap`` and gather."""
    client, http = _async_client(url, ca, cap)
    limiter = asyncio.Semaphore(cap)

    async def one(number: str) -> str:
        async with limiter:
            message = await client.messages.create_async(
                to=f"whatsapp:{number}",
                from_=f"whatsapp:{seed.WHATSAPP_SENDER}",
                content_sid=seed.TEMPLATE_REMINDER,
                content_variables=json.dumps(VARIABLES),
            )
            return message.sid

    try:
        return await asyncio.gather(*(one(number) for number in recipients))
    finally:
        await http.close()


async def plain_status(url: str, ca: str, cap: int, sids: list[str]) -> list[str]:
    client, http = _async_client(url, ca, cap)
    limiter = asyncio.Semaphore(cap)

    async def one(sid: str) -> str:
        async with limiter:
            return (await client.messages(sid).fetch_async()).status

    try:
        return await asyncio.gather(*(one(sid) for sid in sids))
    finally:
        await http.close()


def loop_send(url: str, ca: str, recipients: list[str]) -> None:
    """The one-at-a-time loop: the sync twilio client, one message after the other."""
    from twilio.http.http_client import TwilioHttpClient
    from twilio.rest import Client

    http = TwilioHttpClient(logger=QUIET)
    client = Client(seed.ACCOUNT_SID, seed.AUTH_TOKEN, http_client=http, environment={"BENCH": "1"})
    client.api.base_url = url
    http.session.verify = ca
    for number in recipients:
        client.messages.create(
            to=f"whatsapp:{number}",
            from_=f"whatsapp:{seed.WHATSAPP_SENDER}",
            content_sid=seed.TEMPLATE_REMINDER,
            content_variables=json.dumps(VARIABLES),
        )


def hook_send(cap: int, recipients: list[str], ledger_write: float) -> tuple[list[Any], SlowStore, Any]:
    from airflow_provider_qconn.hooks.twilio import OutgoingMessage, TwilioHook
    from airflow_provider_qconn.ledger import LedgerKey, SendLedger

    store = SlowStore(ledger_write)
    ledger = SendLedger(seed.AUTH_TOKEN, store, LedgerKey("20260101", "bench", -1))
    messages = [OutgoingMessage(number, dict(VARIABLES)) for number in recipients]
    results = TwilioHook(max_concurrency=cap).send_whatsapp_templates(messages, seed.TEMPLATE_REMINDER, ledger=ledger)
    return results, store, ledger


# --- checks and figures ----------------------------------------------------------------------------------------


def exactly_once(sandbox: SandboxProcess, recipients: list[str]) -> dict[str, int]:
    """Duplicates and missing recipients among the messages the sandbox holds (it was reset before the send)."""
    per_recipient = Counter(message["to"].removeprefix("whatsapp:") for message in sandbox.control.messages())
    wanted = set(recipients)
    return {
        "messages": sum(per_recipient.values()),
        "duplicates": sum(n - 1 for to, n in per_recipient.items() if n > 1),
        "missing": len(wanted - set(per_recipient)),
        "strangers": len(set(per_recipient) - wanted),
    }


def requests_since_reset(sandbox: SandboxProcess) -> Counter:
    return Counter(entry["status"] for entry in sandbox.control.journal(service="twilio"))


def timed(function: Any, *args: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    value = function(*args)
    return time.perf_counter() - started, value


async def _load(url: str, ca: str, clients: int, total: int, cpu: Callable[[], float]) -> tuple[float, float]:
    """Requests per second answered to ``clients`` concurrent raw HTTP clients sending ``total`` creates, and
    the share of a CPU the sandbox used meanwhile (``cpu`` reads its CPU seconds), both after the warm-up."""
    import aiohttp

    body = {
        "To": "whatsapp:+59891234567",
        "From": f"whatsapp:{seed.WHATSAPP_SENDER}",
        "ContentSid": seed.TEMPLATE_REMINDER,
        "ContentVariables": json.dumps(VARIABLES),
    }
    path = f"{url}/2010-04-01/Accounts/{seed.ACCOUNT_SID}/Messages.json"
    headers = {"Authorization": aiohttp.encode_basic_auth(seed.ACCOUNT_SID, seed.AUTH_TOKEN)}
    connector = aiohttp.TCPConnector(limit=clients, ssl=ssl.create_default_context(cafile=ca))
    counter = iter(range(total))
    statuses: Counter = Counter()

    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def client() -> None:
            for _ in counter:
                async with session.post(path, data=body) as response:
                    await response.read()
                    statuses[response.status] += 1

        counter = iter(range(clients))
        await asyncio.gather(*(client() for _ in range(clients)))  # one request a connection, uncounted
        statuses.clear()
        cpu_before, started = cpu(), time.perf_counter()
        counter = iter(range(total))
        await asyncio.gather(*(client() for _ in range(clients)))
        elapsed = time.perf_counter() - started
        busy = (cpu() - cpu_before) / elapsed
    assert set(statuses) == {201}, statuses
    return total / elapsed, busy


def capacity(sandbox: SandboxProcess, latency: float, cap: int) -> dict[str, Any]:
    """Requests/s the sandbox answers, and how busy its process was meanwhile (CPU seconds per second)."""
    figures: dict[str, Any] = {}
    for clients, delay, total in (
        (50, 0.0, 3000),
        (cap, latency, max(1000, 10 * cap)),
        (4 * cap, latency, 8 * cap * 5),
    ):
        sandbox.reset(twilio_max_concurrency=100_000, latency={"twilio": delay})
        rate, busy = asyncio.run(_load(sandbox.url, sandbox.ca, clients, total, sandbox.cpu_seconds))
        name = f"latency_{clients}_clients" if delay else f"no_latency_{clients}_clients"
        figures[f"{name}_per_s"] = round(rate, 1)
        figures[f"{name}_sandbox_busy"] = round(busy, 2)
        if delay:
            figures[f"{name}_of_ideal"] = round(rate / (clients / delay), 3)
    return figures


# --- one scale point, in a fresh process ---------------------------------------------------------------------


def scale_point(count: int, latency: float, cap: int, ledger_write: float) -> dict[str, Any]:
    with SandboxProcess() as sandbox:
        os.environ.update(sandbox.environment())
        sandbox.reset(latency={"twilio": latency}, twilio_max_concurrency=cap)
        recipients = numbers(count, 0)
        from airflow_provider_qconn.hooks.twilio import TwilioHook

        # Both clients once, uncounted: the imports and the first connection are no part of the curve.
        hook_send(cap, numbers(1, 8_000_000), 0.0)
        asyncio.run(plain_send(sandbox.url, sandbox.ca, cap, numbers(1, 8_100_000)))
        sandbox.reset(latency={"twilio": latency}, twilio_max_concurrency=cap)
        cpu = time.process_time()
        send_s, (results, store, ledger) = timed(hook_send, cap, recipients, ledger_write)
        send_cpu = time.process_time() - cpu
        assert all(result.sent for result in results), Counter(str(r.code) for r in results if not r.sent)
        send_requests = requests_since_reset(sandbox)
        once = exactly_once(sandbox, recipients)
        sandbox.control.clear_journal()
        hook = TwilioHook(max_concurrency=cap)
        status_s, lookups = timed(hook.fetch_message_statuses, [r.message_id for r in results])
        assert all(lookup.details for lookup in lookups.values())
        status_requests = requests_since_reset(sandbox)
        plain_s = plain_cpu = None
        if count <= PLAIN_SCALE_LIMIT:  # beyond, the plain client would double the benchmark's time
            cpu = time.process_time()
            plain_s, _ = timed(asyncio.run, plain_send(sandbox.url, sandbox.ca, cap, numbers(count, 5_000_000)))
            plain_cpu = time.process_time() - cpu
    limit = count * latency / cap
    return {
        "recipients": count,
        "limit_s": limit,
        "send_s": round(send_s, 3),
        "send_of_limit": round(send_s / limit, 2),
        "plain_send_s": round(plain_s, 3) if plain_s else None,
        "send_of_plain": round(send_s / plain_s, 3) if plain_s else None,
        "send_cpu_s": round(send_cpu, 3),
        "plain_send_cpu_s": round(plain_cpu, 3) if plain_cpu else None,
        "send_requests": sum(send_requests.values()),
        "send_429s": send_requests.get(429, 0),
        "ledger_writes": ledger.writes,
        "ledger_bytes_written": store.bytes,
        **{f"send_{key}": value for key, value in once.items()},
        "status_s": round(status_s, 3),
        "status_requests": sum(status_requests.values()),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def run_scale_point(count: int, args: argparse.Namespace) -> dict[str, Any]:
    command = [
        sys.executable,
        __file__,
        "--child",
        str(count),
        "--latency",
        str(args.latency),
        "--cap",
        str(args.cap),
        "--ledger-write",
        str(args.ledger_write),
    ]
    output = subprocess.run(command, capture_output=True, text=True, check=True, timeout=900).stdout
    return json.loads(output.strip().splitlines()[-1])


# --- the main comparison -------------------------------------------------------------------------------------


def compare(
    sandbox: SandboxProcess, args: argparse.Namespace, count: int, latency: float, rounds: int, extras: bool = True
) -> dict[str, Any]:
    """The plain client and the hook in alternating rounds; with ``extras``, the loop and the status reads."""
    from airflow_provider_qconn.hooks import twilio as twilio_hook
    from airflow_provider_qconn.hooks.twilio import TwilioHook

    cap = args.cap
    settings = {"latency": {"twilio": latency}, "twilio_max_concurrency": cap}
    plain_times, hook_times, checks, writes = [], [], [], []
    plain_cpu, hook_cpu = [], []
    sandbox.reset(**settings)
    hook_send(cap, numbers(1, 8_000_000), 0.0)  # imports and first connections, uncounted
    asyncio.run(plain_send(sandbox.url, sandbox.ca, cap, numbers(1, 8_100_000)))
    for round_number in range(rounds):
        recipients = numbers(count, 1_000_000 * round_number)
        # Alternating which goes first, so neither always meets the machine in the same mood.
        for side in ("plain", "hook") if round_number % 2 == 0 else ("hook", "plain"):
            sandbox.reset(**settings)
            cpu = time.process_time()
            if side == "plain":
                elapsed, _ = timed(asyncio.run, plain_send(sandbox.url, sandbox.ca, cap, recipients))
                plain_times.append(elapsed)
                plain_cpu.append(time.process_time() - cpu)
                plain_check = exactly_once(sandbox, recipients)
            else:
                elapsed, (results, store, ledger) = timed(hook_send, cap, recipients, args.ledger_write)
                hook_times.append(elapsed)
                hook_cpu.append(time.process_time() - cpu)
                assert all(result.sent for result in results), Counter(str(r.code) for r in results if not r.sent)
                hook_check = exactly_once(sandbox, recipients)
                throttled = requests_since_reset(sandbox)[429]
                writes.append({"writes": ledger.writes, "bytes": store.bytes, "throttled": throttled})
        checks.append({"plain": plain_check, "hook": hook_check})
        print(f"  round {round_number + 1}: plain {plain_times[-1]:.2f} s, hook {hook_times[-1]:.2f} s", flush=True)
    limit = count * latency / cap
    plain, ours = statistics.median(plain_times), statistics.median(hook_times)
    figures: dict[str, Any] = {
        "recipients": count,
        "latency_s": latency,
        "limit_s": limit,
        "plain_client_s": round(plain, 3),
        "plain_client_rounds_s": [round(t, 3) for t in plain_times],
        "hook_s": round(ours, 3),
        "hook_rounds_s": [round(t, 3) for t in hook_times],
        "hook_of_plain": round(ours / plain, 3),
        "hook_of_limit": round(ours / limit, 2),
        "plain_of_limit": round(plain / limit, 2),
        "plain_client_cpu_s": round(statistics.median(plain_cpu), 3),
        "hook_cpu_s": round(statistics.median(hook_cpu), 3),
        "exactly_once": checks,
        "ledger": writes,
    }
    if not extras:
        return figures

    sandbox.reset(**settings)
    loop_recipients = numbers(args.loop_recipients, 9_000_000)
    loop_s, _ = timed(loop_send, sandbox.url, sandbox.bundle, loop_recipients)
    loop_scaled = loop_s * count / args.loop_recipients

    sandbox.reset(**settings)
    hook_send(cap, numbers(count, 0), 0.0)  # messages to read the statuses of, in a fresh journal
    sids = [message["sid"] for message in sandbox.control.messages()]
    hook = TwilioHook(max_concurrency=cap)
    status: dict[str, Any] = {}
    for name, threshold in (("hook_s", twilio_hook.LIST_THRESHOLD), ("hook_fetch_each_s", len(sids) + 1)):
        twilio_hook.LIST_THRESHOLD = threshold
        sandbox.control.clear_journal()
        status[name], lookups = timed(hook.fetch_message_statuses, sids)
        status[name.replace("_s", "_requests")] = sum(requests_since_reset(sandbox).values())
        assert len(lookups) == len(sids) and all(lookup.details for lookup in lookups.values())
    status["plain_fetch_each_s"], _ = timed(asyncio.run, plain_status(sandbox.url, sandbox.ca, cap, sids))
    return {
        **figures,
        "loop_measured_recipients": args.loop_recipients,
        "loop_measured_s": round(loop_s, 3),
        "loop_scaled_s": round(loop_scaled, 2),
        "hook_speedup_over_loop": round(loop_scaled / ours, 1),
        "status": {key: round(value, 3) if isinstance(value, float) else value for key, value in status.items()},
    }


def main() -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--cap", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--loop-recipients", type=int, default=100)
    parser.add_argument("--ledger-write", type=float, default=0.05, help="seconds each ledger write takes")
    parser.add_argument("--scale", default="100,1000,10000", help="recipient counts of the scale curve")
    parser.add_argument("--slow-latency", type=float, default=1.0, help="latency of the slow-server comparison")
    parser.add_argument("--slow-recipients", type=int, default=500)
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: capacity,compare,slow,scale")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--name", default="whatsapp_send", help="results file: bench/results/<name>.json")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(scale_point(args.child, args.latency, args.cap, args.ledger_write)))
        return {}
    skip = set(filter(None, args.skip.split(",")))

    report: dict[str, Any] = {
        "machine": machine(),
        "workload": {
            "recipients": args.recipients,
            "latency_s": args.latency,
            "twilio_concurrency_cap": args.cap,
            "ledger_write_s": args.ledger_write,
            "rounds": args.rounds,
        },
    }
    with SandboxProcess() as sandbox:
        os.environ.update(sandbox.environment())
        if "capacity" not in skip:
            report["sandbox_capacity"] = capacity(sandbox, args.latency, args.cap)
            print("sandbox capacity", json.dumps(report["sandbox_capacity"]), flush=True)
        if "compare" not in skip:
            report["send"] = compare(sandbox, args, args.recipients, args.latency, args.rounds)
            print("send", json.dumps({k: v for k, v in report["send"].items() if k != "exactly_once"}), flush=True)
        if "slow" not in skip:
            # A latency at which the sandbox keeps up (cap / latency requests a second, far below its capacity):
            # there the limit is the server's pace alone.
            report["send_slow_server"] = compare(sandbox, args, args.slow_recipients, args.slow_latency, 1, False)
            print("send (slow server)", json.dumps(report["send_slow_server"]["hook_of_plain"]), flush=True)
    if "scale" not in skip:
        report["scale"] = []
        for count in [int(n) for n in args.scale.split(",") if n]:
            report["scale"].append(run_scale_point(count, args))
            print("scale", json.dumps(report["scale"][-1]), flush=True)
    report["machine_after"] = {"load_average_1m": machine()["load_average_1m"]}
    print(write_results(args.name, report))
    return report


if __name__ == "__main__":
    main()

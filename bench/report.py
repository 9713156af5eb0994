"""Print the benchmarks' results (bench/results/*.json) as one markdown table, and write it to summary.md.

Each figure stands next to what it is measured against (the server's limit, the plain asyncio client, the
one-at-a-time loop, or the same figure before this branch: the ``*_before.json`` files that
``make bench-baseline`` writes from an earlier commit), with the ratio.

    .venv/bin/python bench/report.py
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def load(name: str) -> dict[str, Any]:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else {}


def seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f} s" if value < 1 else f"{value:.2f} s"


def ratio(value: float | None, baseline: float | None) -> str:
    return "n/a" if not value or not baseline else f"{value / baseline:.2f}x"


def busy(share: float | None) -> str:
    """How much of one CPU the sandbox's process used while it was measured."""
    return "" if share is None else f"sandbox process busy {share:.0%} of a CPU"


def hook_rows(label: str, figures: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """A send comparison's TwilioHook time against the plain asyncio client and against the limit."""
    hook = seconds(figures["hook_s"])
    return [
        (
            f"{label}: TwilioHook",
            hook,
            f"plain asyncio client {seconds(figures['plain_client_s'])}",
            f"{figures['hook_of_plain']:.2f}x",
        ),
        (f"{label}: TwilioHook", hook, f"limit {seconds(figures['limit_s'])}", f"{figures['hook_of_limit']:.2f}x"),
    ]


def rows() -> list[tuple[str, str, str, str]]:
    send, before = load("whatsapp_send"), load("whatsapp_send_before")
    table: list[tuple[str, str, str, str]] = []
    capacity = send.get("sandbox_capacity") or {}
    workload = send.get("workload") or {}
    latency, cap = workload.get("latency_s", 0.1), workload.get("twilio_concurrency_cap", 50)
    if capacity:
        table.append(
            (
                "Sandbox capacity, no latency, 50 clients",
                f"{capacity['no_latency_50_clients_per_s']:.0f} req/s",
                busy(capacity.get("no_latency_50_clients_sandbox_busy")),
                "",
            )
        )
        for clients in (cap, 4 * cap):
            ideal = clients / latency
            table.append(
                (
                    f"Sandbox at {latency * 1000:.0f} ms, {clients} clients",
                    f"{capacity[f'latency_{clients}_clients_per_s']:.0f} req/s",
                    "; ".join(
                        filter(
                            None,
                            (f"ideal {ideal:.0f} req/s", busy(capacity.get(f"latency_{clients}_clients_sandbox_busy"))),
                        )
                    ),
                    f"{capacity[f'latency_{clients}_clients_of_ideal']:.2f}x",
                )
            )
    old_capacity = before.get("sandbox_capacity") or {}
    if capacity and old_capacity:
        for name, label in (
            ("no_latency_50_clients_per_s", "no latency, 50 clients"),
            (f"latency_{cap}_clients_per_s", f"{latency * 1000:.0f} ms, {cap} clients"),
            (f"latency_{4 * cap}_clients_per_s", f"{latency * 1000:.0f} ms, {4 * cap} clients"),
        ):
            if name in old_capacity:
                table.append(
                    (
                        f"Sandbox {label}, before this branch (its own run)",
                        f"{old_capacity[name]:.0f} req/s",
                        f"now {capacity[name]:.0f} req/s",
                        f"{capacity[name] / old_capacity[name]:.2f}x more now",
                    )
                )
    main = send.get("send") or {}
    if main:
        count = main["recipients"]
        label = f"Send {count:,} (cap {cap}, {latency * 1000:.0f} ms)"
        table += hook_rows(label, main)
        table.append(
            (
                f"{label}: plain asyncio client",
                seconds(main["plain_client_s"]),
                f"limit {seconds(main['limit_s'])}",
                f"{main['plain_of_limit']:.2f}x",
            )
        )
        table.append(
            (
                f"{label}: one-at-a-time loop ({main['loop_measured_recipients']} measured, scaled)",
                seconds(main["loop_scaled_s"]),
                f"TwilioHook {seconds(main['hook_s'])}",
                f"hook {main['hook_speedup_over_loop']:.1f}x faster",
            )
        )
        old = before.get("send") or {}
        if old:
            table.append(
                (
                    f"{label}: TwilioHook / plain client, before this branch (its own run)",
                    f"{old['hook_of_plain']:.2f}x",
                    f"now {main['hook_of_plain']:.2f}x",
                    f"CPU {old['hook_cpu_s'] / old['plain_client_cpu_s']:.2f}x before, "
                    f"{main['hook_cpu_s'] / main['plain_client_cpu_s']:.2f}x now",
                )
            )
        duplicates = sum(check["hook"]["duplicates"] + check["hook"]["missing"] for check in main["exactly_once"])
        table.append((f"{label}: duplicates + missing recipients (sandbox)", str(duplicates), "0", ""))
        status = main.get("status") or {}
        table.append(
            (
                f"Statuses of {count:,}: TwilioHook (list, then fetch)",
                seconds(status.get("hook_s")),
                f"requests: {status.get('hook_requests')}",
                "",
            )
        )
        table.append(
            (
                f"Statuses of {count:,}: TwilioHook fetching each",
                seconds(status.get("hook_fetch_each_s")),
                f"plain client {seconds(status.get('plain_fetch_each_s'))}",
                ratio(status.get("hook_fetch_each_s"), status.get("plain_fetch_each_s")),
            )
        )
    slow = send.get("send_slow_server") or {}
    if slow:
        label = f"Send {slow['recipients']:,} (cap {cap}, {slow['latency_s'] * 1000:.0f} ms: the sandbox keeps up)"
        table += hook_rows(label, slow)
        old = before.get("send_slow_server") or {}
        if old:
            table.append(
                (
                    f"{label}: TwilioHook / plain client, before this branch (its own run)",
                    f"{old['hook_of_plain']:.2f}x",
                    f"now {slow['hook_of_plain']:.2f}x",
                    "",
                )
            )
    old_scale = {point["recipients"]: point for point in before.get("scale", []) if "send_s" in point}
    for point in send.get("scale", []):
        n = point["recipients"]
        label = f"Scale {n:,}: send"
        detail = (
            f"{point['send_requests']:,} requests, {point['ledger_writes']} ledger writes "
            f"({point['ledger_bytes_written'] / n:.0f} B/recipient), peak RSS {point['peak_rss_mb']:.0f} MB"
        )
        table.append(
            (label, seconds(point["send_s"]), f"limit {seconds(point['limit_s'])}", f"{point['send_of_limit']:.2f}x")
        )
        if point.get("plain_send_s"):
            plain = f"plain client {seconds(point['plain_send_s'])}"
            table.append((label, seconds(point["send_s"]), plain, f"{point['send_of_plain']:.2f}x"))
        cpu = point["send_cpu_s"], point.get("plain_send_cpu_s")
        if cpu[1]:
            table.append((f"Scale {n:,}: send CPU", seconds(cpu[0]), f"plain client {seconds(cpu[1])}", ratio(*cpu)))
        table.append(
            (
                f"Scale {n:,}: send detail",
                detail,
                f"duplicates {point['send_duplicates']}, missing {point['send_missing']}",
                "",
            )
        )
        if n in old_scale:
            old = old_scale[n]
            against = "plain" if old.get("send_of_plain") and point.get("send_of_plain") else "limit"
            table.append(
                (
                    f"Scale {n:,}: send / {against}, before this branch (its own run)",
                    f"{old[f'send_of_{against}']:.2f}x",
                    f"now {point[f'send_of_{against}']:.2f}x",
                    f"ledger writes {old['ledger_writes']} before, {point['ledger_writes']} now",
                )
            )
        table.append(
            (f"Scale {n:,}: statuses", seconds(point["status_s"]), f"requests: {point['status_requests']}", "")
        )
        if n in old_scale and old_scale[n].get("status_s"):
            old = old_scale[n]
            table.append(
                (
                    f"Scale {n:,}: statuses, before this branch (its own run)",
                    seconds(old["status_s"]),
                    f"now {seconds(point['status_s'])}",
                    f"{old['status_s'] / point['status_s']:.2f}x slower before",
                )
            )
    mapped = load("mapped_send").get("mapped_send") or {}
    if mapped:
        label = (
            f"Mapped send, example DAG with dag.test(): {mapped['customers']:,} customers in "
            f"{mapped['mapped_instances']} chunks"
        )
        table.append(
            (label, seconds(mapped["run_s"]), f"limit {seconds(mapped['limit_s'])}", f"{mapped['run_of_limit']:.2f}x")
        )
        table.append(
            (
                f"{label}: messaged once (sandbox journal)",
                f"{mapped['customers_messaged_once']:,} of {mapped['customers']:,}",
                f"duplicates {mapped['duplicates']}, missing {mapped['missing']}, 429s {mapped['throttled_429']}",
                f"{mapped['instances_succeeded']} of {mapped['mapped_instances']} chunks succeeded",
            )
        )
    parse, parse_before = load("dag_parse"), load("dag_parse_before")
    if parse:
        median = parse["import_s"]["median"]
        old = (parse_before.get("import_s") or {}).get("median")
        table.append(
            (
                "DAG parse: every operator/sensor/notifier module after `import airflow.sdk` (median)",
                seconds(median),
                f"before {seconds(old)}" if old else "target 0.015 s",
                ratio(old, median) + " slower before" if old else ratio(median, 0.015) + " of target",
            )
        )
        table.append(
            (
                "DAG parse: SDK modules loaded",
                str(len(parse["sdk_modules_loaded"])),
                "msgraph, azure, msal, kiota, twilio, aiohttp",
                "",
            )
        )
    table += outlook_rows()
    return table


#: The cost a ScheduleMeetingOperator run may add to a fresh task process beyond ``import airflow.sdk``.
OUTLOOK_TARGET_S = 0.4
OUTLOOK_SIGN_INS = {
    "schedule (qconn_msgraph_default)": "delegated, refresh token",
    "schedule (qconn_msgraph_app)": "app-only, client secret",
}
AZURE_PROVIDER_MEASURE = "azure_provider_schedule (qconn_bench_azure_msgraph)"
#: Our sign-in that does what the Azure provider's hook does (app-only, client secret): the one set beside it.
AZURE_COMPARABLE = "schedule (qconn_msgraph_app)"


def outlook_rows() -> list[tuple[str, str, str, str]]:
    """A ScheduleMeetingOperator run per sign-in against the target and against the same meeting made through the
    Azure provider's ``KiotaRequestAdapterHook`` (medians of fresh processes, one run of the benchmark)."""
    results = load("outlook_overhead")
    outlook = results.get("fresh_process_beyond_airflow_sdk") or {}
    provider = (results.get("versions") or {}).get("apache-airflow-providers-microsoft-azure")
    azure_hook = f"Azure provider {provider}'s hook" if provider else "Azure provider's hook"
    azure = outlook.get(AZURE_PROVIDER_MEASURE)
    azure_total = azure["schedule_total_s"]["median"] if azure else None
    table: list[tuple[str, str, str, str]] = []
    for name, sign_in in OUTLOOK_SIGN_INS.items():
        figures = outlook.get(name)
        if not figures:
            continue
        total = figures["schedule_total_s"]["median"]
        client, first = figures["client_build_s"]["median"], figures["first_call_s"]["median"]
        label = f"Outlook schedule, {sign_in}: beyond `import airflow.sdk` (median)"
        table.append(
            (
                label,
                seconds(total),
                f"target {seconds(OUTLOOK_TARGET_S)} (client {seconds(client)}, first call {seconds(first)})",
                ratio(total, OUTLOOK_TARGET_S) + " of target",
            )
        )
        if azure_total and name == AZURE_COMPARABLE:  # the Azure provider's hook signs in app-only alone
            table.append((label, seconds(total), f"{azure_hook} {seconds(azure_total)}", ratio(total, azure_total)))
    if azure:
        parts = ", ".join(
            f"{what} {seconds(azure[key]['median'])}"
            for what, key in (
                ("hook import", "operators_import_s"),
                ("client", "client_build_s"),
                ("first call", "first_call_s"),
            )
        )
        table.append(
            (
                f"Outlook schedule through the {azure_hook} (KiotaRequestAdapterHook), app-only, client secret "
                "(no input validation): beyond `import airflow.sdk` (median)",
                seconds(azure_total),
                parts,
                ratio(azure_total, OUTLOOK_TARGET_S) + " of target",
            )
        )
    return table


def markdown() -> str:
    send = load("whatsapp_send")
    machine = send.get("machine") or load("dag_parse").get("machine") or {}
    lines = [
        f"Machine: {machine.get('cpus')} CPUs ({machine.get('cpu')}), Python {machine.get('python')}, "
        f"{machine.get('system')}, load average {machine.get('load_average_1m')} when the run began "
        "(shared with other work: ratios within one run are what matter).",
        "",
        "| measure | figure | against | ratio |",
        "|---|---|---|---|",
    ]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows()]
    return "\n".join(lines) + "\n"


def main() -> None:
    text = markdown()
    (RESULTS / "summary.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()

"""``qconn-sandbox``: run the sandbox in the foreground and print how to point Airflow at it."""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Sequence
from pathlib import Path

from airflow_provider_qconn.sandbox import environment
from airflow_provider_qconn.sandbox.server import Sandbox


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qconn-sandbox",
        description="Local emulator of Microsoft Graph calendar events, the Microsoft identity platform and "
        "Twilio Messages/Content, for developing and testing DAGs offline.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 picks a free one)")
    parser.add_argument(
        "--state-dir",
        default=".sandbox",
        help="folder for the state database and TLS files, kept across restarts (default .sandbox)",
    )
    parser.add_argument("--memory", action="store_true", help="keep state in memory only (forgotten on exit)")
    parser.add_argument("--no-tls", action="store_true", help="serve plain http (azure-identity will refuse it)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every Graph/Twilio request")
    parser.add_argument(
        "--twilio-max-concurrency", type=int, default=None, help="Twilio requests in flight before 429/20429"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    state_dir = Path(args.state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    sandbox = Sandbox(
        host=args.host,
        port=args.port,
        tls=not args.no_tls,
        state_path=None if args.memory else state_dir / "state.db",
        tls_dir=state_dir / "tls",
    )
    sandbox.start()
    settings: dict[str, object] = {}
    if args.latency:
        settings["latency"] = {"graph": args.latency, "twilio": args.latency, "identity": args.latency}
    if args.twilio_max_concurrency is not None:
        settings["twilio_max_concurrency"] = args.twilio_max_concurrency
    if settings:
        sandbox.control.settings(**settings)
    print(f"qconn sandbox on {sandbox.url}  (state: {'memory' if args.memory else state_dir / 'state.db'})")
    print(f"  Graph base URL   {sandbox.graph_base_url}")
    print(f"  login authority  {sandbox.authority}")
    print(f"  Twilio base URL  {sandbox.twilio_base_url}")
    print(f"  control API      {sandbox.url}/_sandbox/  (journal, faults, clock, seed, reset)")
    print("\nPoint Airflow at it (paste into the shell that runs Airflow):\n")
    for name, value in environment(sandbox.url, str(sandbox.bundle_path) if sandbox.bundle_path else None).items():
        print(f"export {name}={shlex.quote(value)}")
    print("\nPress Ctrl+C to stop.", flush=True)
    sandbox.serve_forever()


if __name__ == "__main__":
    main()

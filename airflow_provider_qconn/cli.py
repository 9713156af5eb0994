"""The provider's Airflow CLI commands: ``airflow qconn outlook-login`` signs an Outlook connection in.

Registered through the ``cli`` list of the provider info, which Airflow's providers manager reads (Airflow 3.2
and later). :func:`get_cli_commands` runs on every ``airflow`` invocation, so it only declares the command; the
work is in :func:`outlook_login`, imported when the command runs.

The login signs in once per connection (the device-code flow by default, or ``--flow browser``) and then
either writes the connection to the metadata database (created, or updated in place) or prints it, for a
connection that lives in an environment variable (``--output env``) or a secrets backend (``--output json``).
The refresh token is printed only in those two outputs.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.cli.cli_config import CLICommand

    from airflow_provider_qconn.hooks.msgraph.login import SignedIn
    from airflow_provider_qconn.hooks.msgraph.settings import GraphSettings

CONN_TYPE = "qconn_msgraph"
DEFAULT_CONN_ID = "qconn_msgraph_default"
OUTPUTS = ("connection", "env", "json")


def get_cli_commands() -> list[CLICommand]:
    """The ``qconn`` command group (read by Airflow's providers manager from the provider info's ``cli``)."""
    from airflow.cli.cli_config import ActionCommand, Arg, GroupCommand, lazy_load_command

    args = (
        Arg(("--conn-id",), default=DEFAULT_CONN_ID, help=f"the connection to sign in (default {DEFAULT_CONN_ID})"),
        Arg(("--client-id",), help="the app registration's application (client) id (default: the connection's)"),
        Arg(
            ("--tenant",),
            help="common, consumers, organizations, or a tenant id or domain (default: the connection's, else common)",
        ),
        Arg(
            ("--authority",),
            help="the sign-in host (default: the connection's, else https://login.microsoftonline.com)",
        ),
        Arg(("--base-url",), help="Graph's base URL to store in the connection (default: the connection's)"),
        Arg(("--user-id",), help="a mailbox other than the signed-in user's own to store in the connection"),
        Arg(
            ("--flow",),
            choices=("device", "browser"),
            default="device",
            help="device: show a code to enter on any device (headless servers; the default); browser: sign in "
            "with a browser on this machine, which comes back to a listener on localhost",
        ),
        Arg(("--port",), type=int, default=0, help="the browser flow's loopback port (default: any free one)"),
        Arg(("--no-browser",), action="store_true", help="browser flow: print the sign-in URL, do not open it"),
        Arg(
            ("--output",),
            choices=OUTPUTS,
            default="connection",
            help="connection: create or update the connection in the metadata database (the default); env: print "
            "an AIRFLOW_CONN_... line; json: print the connection as JSON for a secrets backend. Only env and json "
            "print the refresh token.",
        ),
    )
    return [
        GroupCommand(
            name="qconn",
            help="Qconn provider: sign an Outlook connection in",
            subcommands=[
                ActionCommand(
                    name="outlook-login",
                    help="Sign in to a Microsoft account and store its refresh token in an Outlook connection",
                    description=(
                        "Sign in once per connection, with the device-code flow or a browser, for Calendars.ReadWrite "
                        "and offline_access. The tasks then keep the newest refresh token themselves."
                    ),
                    func=lazy_load_command("airflow_provider_qconn.cli.outlook_login"),
                    args=args,
                )
            ],
        )
    ]


def outlook_login(args: argparse.Namespace) -> None:
    """``airflow qconn outlook-login``: sign in, then store or print the connection."""
    from airflow_provider_qconn.exceptions import QconnError

    try:
        _outlook_login(args)
    except QconnError as error:
        raise SystemExit(f"Sign-in failed: {error}") from None


def _outlook_login(args: argparse.Namespace) -> None:
    from airflow_provider_qconn.hooks.msgraph import login
    from airflow_provider_qconn.hooks.msgraph.settings import DELEGATED_SCOPE

    existing, where = _existing_connection(args.conn_id)
    if args.output == "connection" and where not in (None, "the metadata database"):
        raise SystemExit(
            f"Connection {args.conn_id!r} is defined in {where}, which the metadata database cannot override: "
            "rerun with --output env (an environment variable) or --output json (a secrets backend) and put the "
            "printed value there."
        )
    connection = _connection(args, existing)
    settings = _settings(connection)
    print(
        f"Signing in to {settings.authority}/{settings.tenant_id} for connection {args.conn_id!r} "
        f"(app {settings.client_id}; asking for {DELEGATED_SCOPE} offline_access)."
    )
    app = login.public_client(settings)
    show = _printer
    if args.flow == "device":
        signed_in = login.with_device_code(app, settings.scopes, show)
    else:
        signed_in = login.with_browser(app, settings.scopes, show, port=args.port, open_browser=not args.no_browser)
    kind = "personal Microsoft account" if signed_in.personal else "work or school account"
    print(f"Signed in as {signed_in.account} ({kind}, tenant {signed_in.tenant_id}).")
    print(f"Mailbox: {_mailbox(settings, signed_in)}")
    if signed_in.personal:
        print("Personal accounts get no Teams links on their meetings.")
    _deliver(args, {**connection, "extra": {**connection["extra"], "refresh_token": signed_in.refresh_token}})


def _printer(text: str) -> None:
    print(text, flush=True)


def _existing_connection(conn_id: str) -> tuple[Any, str | None]:
    """The connection as Airflow finds it, and where: the first secrets backend (environment variables, a
    configured backend, the metadata database) that has it."""
    from airflow.configuration import ensure_secrets_loaded
    from airflow.secrets.environment_variables import EnvironmentVariablesBackend
    from airflow.secrets.metastore import MetastoreBackend

    for backend in ensure_secrets_loaded():
        found = backend.get_connection(conn_id)
        if found is None:
            continue
        if isinstance(backend, EnvironmentVariablesBackend):
            return found, f"the environment variable AIRFLOW_CONN_{conn_id.upper()}"
        if isinstance(backend, MetastoreBackend):
            return found, "the metadata database"
        return found, f"the secrets backend {type(backend).__name__}"
    return None, None


def _connection(args: argparse.Namespace, existing: Any) -> dict[str, Any]:
    """The connection to store: the existing one's fields, the command's options over them."""
    extra = dict(existing.extra_dejson) if existing is not None else {}
    if existing is not None and existing.conn_type not in (CONN_TYPE, None):
        raise SystemExit(f"Connection {args.conn_id!r} is of type {existing.conn_type!r}, not {CONN_TYPE!r}.")
    extra.pop("refresh_token", None)
    extra["auth_type"] = "refresh_token"
    for option, name in (("tenant", "tenant_id"), ("authority", "authority"), ("base_url", "base_url")):
        if getattr(args, option):
            extra[name] = getattr(args, option)
    if args.user_id:
        extra["user_id"] = args.user_id
    extra.setdefault("tenant_id", "common")
    client_id = args.client_id or (existing.login if existing is not None else None)
    if not client_id:
        raise SystemExit("--client-id is needed: the application (client) id of the app registration.")
    connection: dict[str, Any] = {"conn_type": CONN_TYPE, "login": client_id, "extra": extra}
    for name in ("description", "password"):
        value = getattr(existing, name, None) if existing is not None else None
        if value:
            connection[name] = value
    return connection


def _settings(connection: dict[str, Any]) -> GraphSettings:
    """The connection checked as a task would check it (the refresh token is the one thing still missing)."""
    from airflow.sdk import Connection

    from airflow_provider_qconn.hooks.msgraph.settings import GraphSettings

    candidate = Connection(conn_id="outlook-login", **{**connection, "extra": json.dumps(connection["extra"])})
    return GraphSettings.from_connection(candidate, refresh_token="to be signed in")


def _mailbox(settings: GraphSettings, signed_in: SignedIn) -> str:
    if settings.user_id:
        return f"{settings.user_id} (extra user_id: {signed_in.username} needs access to it)"
    return f"{signed_in.username} (the signed-in user's own, /me)"


def _deliver(args: argparse.Namespace, connection: dict[str, Any]) -> None:
    if args.output == "env":
        name = f"AIRFLOW_CONN_{args.conn_id.upper()}"
        print(f"\nexport {name}={shlex.quote(json.dumps(connection))}")
        if os.environ.get(name) is not None:
            print(f"Replace {name} wherever it is set: this command cannot change it.", file=sys.stderr)
        return
    if args.output == "json":
        print(f"\n{json.dumps(connection, indent=2)}")
        return
    from airflow.models import Connection
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        stored = session.scalar(select(Connection).where(Connection.conn_id == args.conn_id).limit(1))
        if stored is None:
            session.add(Connection(conn_id=args.conn_id, **{**connection, "extra": json.dumps(connection["extra"])}))
            verb = "created"
        else:
            stored.conn_type, stored.login = connection["conn_type"], connection["login"]
            stored.set_extra(json.dumps(connection["extra"]))
            verb = "updated"
    print(
        f"Connection {args.conn_id!r} {verb} in the metadata database (the refresh token is in its extra; it was "
        "not printed)."
    )

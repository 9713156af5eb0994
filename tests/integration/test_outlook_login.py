"""``airflow qconn outlook-login`` end to end against the sandbox, through Airflow's own CLI parser (the command
comes from the provider info's ``cli``): the device-code flow and the browser flow with its local callback.

The connection is the one ``make demo`` and ``make sandbox`` print (an environment variable), so the login
prints the new value (``--output env`` / ``--output json``); writing to the metadata database is covered in
tests/dags/test_outlook_sign_in.py, which has one.
"""

from __future__ import annotations

import json
import shlex
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from airflow_provider_qconn.sandbox import seed
from airflow_provider_qconn.sandbox.server import Sandbox

from .support import delegated_credential

CONN_VAR = "AIRFLOW_CONN_QCONN_MSGRAPH_DEFAULT"


@pytest.fixture
def demo_values(sandbox_env: Sandbox, sandbox_ca_variables: None) -> Sandbox:
    """The connection values ``make demo`` prints, the CA variables pointed at the sandbox, fast polling."""
    sandbox_env.control.settings(device_code_interval=1)
    return sandbox_env


@pytest.fixture
def airflow_cli() -> Callable[..., Any]:
    """Parse a command line with Airflow's own parser and run it, as ``airflow ...`` would."""
    from airflow.cli import cli_parser

    parser = cli_parser.get_parser()

    def run(*argv: str) -> None:
        args = parser.parse_args(list(argv))
        args.func(args)

    return run


class Running:
    """A command running in a thread; its output is read from pytest's capture as it comes."""

    def __init__(self, command: Callable[[], None], capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys
        self.out = ""
        self.error: BaseException | None = None

        def target() -> None:
            try:
                command()
            except BaseException as error:  # SystemExit included: the test reads it
                self.error = error

        self.thread = threading.Thread(target=target, daemon=True)
        self.thread.start()

    def read(self) -> str:
        self.out += self.capsys.readouterr().out
        return self.out

    def wait_for(self, found: Callable[[], Any], timeout: float = 60) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = found()
            if value:
                return value
            assert self.thread.is_alive() or self.error is None, self.error
            time.sleep(0.05)
        raise AssertionError(f"nothing came; output so far:\n{self.read()}")

    def finish(self, timeout: float = 60) -> str:
        self.thread.join(timeout)
        assert not self.thread.is_alive()
        if self.error is not None:
            raise self.error
        return self.read()


@pytest.fixture
def running(capsys: pytest.CaptureFixture[str]) -> Iterator[Callable[[Callable[[], None]], Running]]:
    started: list[Running] = []

    def start(command: Callable[[], None]) -> Running:
        started.append(Running(command, capsys))
        return started[-1]

    yield start
    for item in started:
        item.thread.join(5)


def exported(output: str) -> dict[str, Any]:
    """The connection in the ``export AIRFLOW_CONN_...=...`` line the login printed."""
    [line] = [line for line in output.splitlines() if line.startswith(f"export {CONN_VAR}=")]
    return json.loads(shlex.split(line.removeprefix(f"export {CONN_VAR}="))[0])


def test_the_device_code_login_signs_in_with_the_demo_values_and_prints_the_new_connection(
    demo_values: Sandbox, airflow_cli: Callable[..., Any], running: Callable[..., Running]
) -> None:
    before = json.loads(__import__("os").environ[CONN_VAR])
    login = running(lambda: airflow_cli("qconn", "outlook-login", "--output", "env"))
    [pending] = login.wait_for(lambda: demo_values.control.sign_ins()["device_codes"])
    assert pending["client_id"] == seed.CLIENT_ID and "Calendars.ReadWrite" in pending["scopes"]
    login.wait_for(lambda: pending["user_code"] in login.read())
    demo_values.control.answer_device_code(pending["user_code"], seed.ORGANIZER)
    output = login.finish()

    assert f"{demo_values.url}/devicelogin" in output
    assert f"Signed in as Adele Vance <{seed.ORGANIZER}> (work or school account, tenant {seed.TENANT_ID})" in output
    assert f"Mailbox: {seed.ORGANIZER} (the signed-in user's own, /me)" in output
    connection = exported(output)
    token = connection["extra"].pop("refresh_token")
    before["extra"].pop("refresh_token")
    assert connection == before  # everything else as it was: client id, tenant, authority, base URL
    assert token in {t["token"] for t in demo_values.control.refresh_tokens(seed.ORGANIZER)}
    assert output.count(token) == 1  # only in the line it was asked for


def test_the_browser_login_comes_back_to_its_local_callback_and_prints_secrets_backend_json(
    demo_values: Sandbox, ca: str, airflow_cli: Callable[..., Any], running: Callable[..., Running]
) -> None:
    login = running(
        lambda: airflow_cli(
            "qconn", "outlook-login", "--conn-id", "qconn_msgraph_personal", "--flow", "browser", "--no-browser",
            "--output", "json",
        )
    )  # fmt: skip
    url = login.wait_for(
        lambda: next((line for line in login.read().splitlines() if "/oauth2/v2.0/authorize?" in line), None)
    )
    browser = httpx.Client(verify=ssl.create_default_context(cafile=ca))
    assert browser.get(url).status_code == 200  # the sign-in page
    [pending] = demo_values.control.sign_ins()["authorizations"]
    assert pending["redirect_uri"].startswith("http://localhost:")
    callback = browser.get(demo_values.control.answer_authorization(pending["id"], seed.PERSONAL))
    assert callback.status_code == 200 and "Signed in" in callback.text
    output = login.finish()

    assert f"Signed in as Sam Personal <{seed.PERSONAL}> (personal Microsoft account" in output
    assert "no Teams links" in output
    connection = json.loads(output[output.index("\n{") :])
    assert connection["extra"]["tenant_id"] == "consumers" and connection["login"] == seed.CLIENT_ID
    credential = delegated_credential(demo_values.url, "qconn_msgraph_personal", connection["extra"]["refresh_token"])
    assert credential.get_token("Calendars.ReadWrite").token.startswith("sbx-at-")  # the hook can use it
    credential.close()


def test_a_declined_sign_in_fails_the_command_and_stores_nothing(
    demo_values: Sandbox, airflow_cli: Callable[..., Any], running: Callable[..., Running]
) -> None:
    login = running(lambda: airflow_cli("qconn", "outlook-login", "--output", "env"))
    [pending] = login.wait_for(lambda: demo_values.control.sign_ins()["device_codes"])
    demo_values.control.answer_device_code(pending["user_code"], approve=False)
    with pytest.raises(SystemExit, match="Sign-in failed: the sign-in failed: authorization_declined"):
        login.finish()
    assert "export" not in login.read()


def test_the_default_output_refuses_a_connection_the_database_cannot_override(
    demo_values: Sandbox, airflow_cli: Callable[..., Any]
) -> None:
    with pytest.raises(SystemExit, match=f"environment variable {CONN_VAR}.*--output env"):
        airflow_cli("qconn", "outlook-login")
    assert demo_values.control.sign_ins()["device_codes"] == []  # refused before any sign-in


def test_a_connection_with_a_client_secret_is_refused_before_any_sign_in(
    demo_values: Sandbox, airflow_cli: Callable[..., Any]
) -> None:
    with pytest.raises(SystemExit, match="AADSTS700025"):
        airflow_cli("qconn", "outlook-login", "--conn-id", "qconn_msgraph_app", "--output", "env", "--tenant", "common")
    assert demo_values.control.sign_ins()["device_codes"] == []

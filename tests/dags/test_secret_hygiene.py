"""Secret hygiene, proven: every example DAG runs with distinctive fake secrets, each credential path is shown to
have run (the sandbox journal), and no secret, nor any 9-character piece of one, reaches a task log, a log file,
the metadata database (XComs, rendered template fields, triggers, every other table), an exception's text or the
sandbox's journal.

The secrets are a client secret, a delegated refresh token, the password of an encrypted certificate (app-only
certificate sign-in) and a Twilio Auth Token, plus a wrong value of each: a refused sign-in must not leak either.
The DAGs are found by globbing ``example_dags/``, so a new example DAG is checked without editing this file; the
test bundle's deferring DAG runs with them, so that a trigger reads the Auth Token too. Each DAG using Outlook runs
once per sign-in mode (refresh token, client secret, certificate) and once per wrong secret.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import traceback
import urllib.parse
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_qconn.sandbox import connections, seed
from airflow_provider_qconn.sandbox.server import Sandbox

EXAMPLE_DAGS = Path(__file__).resolve().parents[2] / "example_dags"
#: The test bundle's DAG with a deferrable sensor (no example DAG defers yet): the trigger path is checked too.
DEFERRING_DAG = Path(__file__).resolve().parent / "bundle" / "deferred_delivery.py"

#: The application the fake secrets belong to (registered in the sandbox by the test).
APP_ID = "5e1d9c2b-7a4f-4c3e-8b6d-0f9e8d7c6b5a"
CLIENT_SECRET = "QCONNFAKEcs7Hq2Zt9Lw4Xv8Nb3Km6Pd1Rf5Gj0Yc"
REFRESH_TOKEN = "QCONNFAKErtUe4Wd8Ja2Sm6Qx0Vk3Lb7Hn1Tp5Gz9"
CERTIFICATE_PASSWORD = "QCONNFAKEcpBy6Mf2Rw8Kd4Xs0Nj3Vh7Qa1Lc5Te9"
AUTH_TOKEN = "QCONNFAKEtwZq3Ng7Pv1Hs5Dk9Wb2Mx6Fj0Ry4Lt8C"
SECRETS = {
    "client secret": CLIENT_SECRET,
    "refresh token": REFRESH_TOKEN,
    "certificate password": CERTIFICATE_PASSWORD,
    "Twilio auth token": AUTH_TOKEN,
}
#: Values that are refused: the errors they cause must not hold them either.
WRONG = {
    "client secret": "QCONNWRONGcsPe8Ku2Yn6Ad0Gm4Vr9Sx3Hb7Jw1Zf",
    "refresh token": "QCONNWRONGrtLx5Cq9Tf3Wn7Bk1Dh6Mv0Rg4Js8Pa",
    "certificate password": "QCONNWRONGcpVj2Hy6Nd0Qs4Xb8Ka3Wm7Fe1Ru5Gt",
    "Twilio auth token": "QCONNWRONGtwMa9Rk3Ez7Pu1Jc5Yh0Lw4Nq8Bs2Dv",
}
#: A leak is any piece of a secret longer than 8 characters.
PIECE = 9


def basic_auth_tail(auth_token: str) -> str:
    """The part of the Basic ``Authorization`` value Twilio's client sends (base64 of ``<account sid>:<token>``)
    that encodes only the token: a header logged as is would show it, and the plain scan would not."""
    encoded = base64.b64encode(f"{seed.ACCOUNT_SID}:{auth_token}".encode()).decode().rstrip("=")
    return encoded[-(-(len(seed.ACCOUNT_SID) + 1) // 3) * 4 :]


class Pieces:
    """Finds the pieces (of PIECE characters or more) of some secret values in a text."""

    def __init__(self, values: list[str]) -> None:
        assert values and all(len(value) >= PIECE for value in values)
        pieces = {value[i : i + PIECE] for value in values for i in range(len(value) - PIECE + 1)}
        self._pattern = re.compile("|".join(re.escape(piece) for piece in sorted(pieces)))

    def count(self, text: str) -> int:
        """How many pieces ``text`` holds (non-overlapping)."""
        return len(self._pattern.findall(text))


#: The secrets the test gives, plain and as Twilio's client encodes its Auth Token.
GIVEN = Pieces(
    [
        *SECRETS.values(),
        *WRONG.values(),
        basic_auth_tail(SECRETS["Twilio auth token"]),
        basic_auth_tail(WRONG["Twilio auth token"]),
    ]
)

GRAPH_MODES = ("refresh_token", "client_secret", "certificate")
#: The wrong credential that breaks each Graph mode.
GRAPH_BREAKS = {
    "refresh_token": "refresh token",
    "client_secret": "client secret",
    "certificate": "certificate password",
}
#: Operator (and notifier) attributes that name a connection, by the kind of connection they name.
CONN_ATTRIBUTES = {"msgraph_conn_id": "graph", "twilio_conn_id": "twilio"}


# --- the credentials -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate() -> tuple[str, str]:
    """A self-signed certificate and its private key encrypted with CERTIFICATE_PASSWORD (PEMs)."""
    made = seed.self_signed_certificate("qconn-secret-hygiene", days=30, password=CERTIFICATE_PASSWORD)
    return made.cert_pem, made.key_pem


@dataclass
class FakeWorld:
    """The sandbox with the fake secrets registered, and the connections that use them."""

    sandbox: Sandbox
    certificate_path: str
    monkeypatch: pytest.MonkeyPatch

    def graph_connection(self, mode: str, *, wrong: bool = False) -> dict[str, Any]:
        """A ``qconn_msgraph`` connection signing in with ``mode`` (with the wrong secret when ``wrong``)."""
        secret = WRONG if wrong else SECRETS
        extra: dict[str, Any] = {
            "auth_type": mode,
            "base_url": self.sandbox.graph_base_url,
            "authority": self.sandbox.url,
        }
        connection: dict[str, Any] = {"conn_type": "qconn_msgraph", "login": APP_ID, "extra": extra}
        if mode == "refresh_token":
            extra.update(tenant_id="common", refresh_token=secret["refresh token"])
        else:
            extra.update(tenant_id=seed.TENANT_ID, user_id=seed.ORGANIZER)
            if mode == "client_secret":
                connection["password"] = secret["client secret"]
            else:
                connection["password"] = secret["certificate password"]
                extra["certificate_path"] = self.certificate_path
        return connection

    def twilio_connection(self, *, wrong: bool = False) -> dict[str, Any]:
        connection = dict(connections(self.sandbox.url)["qconn_twilio_default"])
        connection["password"] = (WRONG if wrong else SECRETS)["Twilio auth token"]
        return connection

    def use(self, conn_ids: dict[str, set[str]], graph: dict[str, Any], twilio: dict[str, Any]) -> None:
        """Point the sandbox's ready-made connections and the given ones at these connection values."""
        ready_made = {conn_id for conn_id in connections(self.sandbox.url) if "msgraph" in conn_id}
        for conn_id in ready_made | conn_ids["graph"]:
            self.monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(graph))
        for conn_id in {"qconn_twilio_default"} | conn_ids["twilio"]:
            self.monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(twilio))


@pytest.fixture
def world(
    sandbox_env: Sandbox, certificate: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> FakeWorld:
    """An app whose only secret, certificate and refresh token are the fake ones, and the default Twilio account
    with the fake Auth Token in place of its own (its templates and senders kept)."""
    cert_pem, key_pem = certificate
    path = tmp_path / "app.pem"
    path.write_text(key_pem + cert_pem)
    account = {**seed.default_seed().accounts[0], "auth_token": AUTH_TOKEN}
    sandbox_env.control.seed(
        apps=[
            {
                "client_id": APP_ID,
                "tenant_id": seed.TENANT_ID,
                "display_name": "qconn secret hygiene",
                "secrets": [CLIENT_SECRET],
                "certificates": [cert_pem],
                "allow_public_client": True,
                "application_permissions": ["Calendars.ReadWrite"],
            }
        ],
        refresh_tokens=[{"token": REFRESH_TOKEN, "client_id": APP_ID, "mailbox": seed.ORGANIZER}],
        accounts=[account],
    )
    return FakeWorld(sandbox_env, str(path), monkeypatch)


# --- the DAGs ----------------------------------------------------------------------------------------------------


def dags_in(path: Path, bundle_path: Path, bundle_name: str) -> list[Any]:
    """The DAGs a file defines, as Airflow's parser finds them (an import error fails the test)."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=path, safe_mode=False, bundle_path=bundle_path, bundle_name=bundle_name)
    assert not bag.import_errors, bag.import_errors
    return [bag.dags[dag_id] for dag_id in sorted(bag.dags)]


def dags_to_run() -> list[Any]:
    """Every DAG of example_dags/*.py, and the test bundle's deferring DAG."""
    examples = [dag for path in sorted(EXAMPLE_DAGS.glob("*.py")) for dag in dags_in(path, EXAMPLE_DAGS, "dags-folder")]
    assert examples, "no example DAG found"
    return [*examples, *dags_in(DEFERRING_DAG, DEFERRING_DAG.parent, "qconn-tests")]


def _callbacks(owner: Any) -> Iterator[Any]:
    for name in (
        "on_failure_callback",
        "on_success_callback",
        "on_retry_callback",
        "on_execute_callback",
        "on_skipped_callback",
        "sla_miss_callback",
    ):
        value = getattr(owner, name, None)
        yield from value if isinstance(value, (list, tuple)) else ([value] if value else [])


def conn_ids_of(dag: Any) -> dict[str, set[str]]:
    """The connection ids a DAG's operators and notifiers name, by kind ("graph", "twilio")."""
    found: dict[str, set[str]] = {"graph": set(), "twilio": set()}
    for owner in (*dag.tasks, *_callbacks(dag), *(callback for task in dag.tasks for callback in _callbacks(task))):
        for attribute, kind in CONN_ATTRIBUTES.items():
            value = getattr(owner, attribute, None)
            if isinstance(value, str) and value and "{{" not in value:
                found[kind].add(value)
    return found


@dataclass
class Run:
    """One dag.test() run: which credentials it used and how its tasks ended."""

    dag_id: str
    run_id: str
    credentials: str
    states: dict[str, str | None]


# --- where secrets could end up ----------------------------------------------------------------------------------


def _text(value: Any) -> str:
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        with contextlib.suppress(zlib.error):  # the serialized DAG's compressed column
            raw = zlib.decompress(raw)
        return raw.decode(errors="replace")
    return str(value)


def metadata_tables() -> dict[str, str]:
    """Every row of every table of the metadata database as text, with what Airflow encrypts (trigger kwargs,
    Variable values, connection passwords and extras) also decrypted."""
    import sqlalchemy
    from airflow import settings
    from airflow.models import Connection, Variable
    from airflow.models.trigger import Trigger
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    texts: dict[str, list[str]] = {}
    with settings.engine.connect() as connection:
        for table in sqlalchemy.inspect(settings.engine).get_table_names():
            rows = connection.execute(sqlalchemy.text(f'SELECT * FROM "{table}"')).fetchall()
            texts[table] = ["\t".join(_text(value) for value in row) for row in rows]
    with create_session() as session:
        texts["xcom"] += [json.dumps(XComModel.deserialize_value(row), default=str) for row in session.query(XComModel)]
        texts["trigger"] += [json.dumps(trigger.kwargs, default=str) for trigger in session.query(Trigger)]
        texts["variable"] += [str(variable.val) for variable in session.query(Variable)]
        texts["connection"] += [f"{conn.password}\t{conn.extra}" for conn in session.query(Connection)]
    return {table: "\n".join(lines) for table, lines in texts.items()}


def exception_text(call: Callable[[], Any]) -> str:
    """The full text of the exception ``call`` raises (chained causes and their messages), or what it returned."""
    try:
        return repr(call())
    except Exception as error:
        return "".join(traceback.format_exception(error)) + repr(error.args)


# --- the test ----------------------------------------------------------------------------------------------------


def test_no_secret_reaches_a_log_an_xcom_a_rendered_field_a_trigger_an_error_or_the_journal(
    world, capfd, caplog, monkeypatch
):
    from airflow.configuration import conf
    from airflow.sdk.definitions import dag as dag_module

    from airflow_provider_qconn.hooks.msgraph import MSGraphHook
    from airflow_provider_qconn.hooks.twilio import TwilioHook

    caplog.set_level("DEBUG")
    dags = dags_to_run()
    runs: list[Run] = []
    # Messages stay queued until the clock is moved: a deferrable sensor defers, then its trigger sees them read.
    world.sandbox.control.settings(status_delays={"sending": 3600, "sent": 7200, "delivered": 10800, "read": 14400})
    triggers: list[str] = []
    run_inline_trigger = dag_module._run_inline_trigger

    def run_trigger_recorded(trigger: Any, ti: Any) -> Any:
        """dag.test() runs a deferred task's trigger in process, storing no Trigger row: keep its serialized form."""
        triggers.append(json.dumps(trigger.serialize(), default=str))
        world.sandbox.control.advance_clock(4 * 3600)
        return run_inline_trigger(trigger, ti)

    monkeypatch.setattr(dag_module, "_run_inline_trigger", run_trigger_recorded)

    def run(dag: Any, conn_ids: dict[str, set[str]], credentials: str, graph: dict, twilio: dict) -> None:
        world.use(conn_ids, graph, twilio)
        dag_run = dag.test()
        states = {ti.task_id: ti.state for ti in dag_run.get_task_instances()}
        runs.append(Run(dag.dag_id, dag_run.run_id, credentials, states))

    twilio, wrong_twilio = world.twilio_connection(), world.twilio_connection(wrong=True)
    for dag in dags:
        conn_ids = conn_ids_of(dag)
        # A DAG without Outlook tasks runs once (its Graph connections still hold the fake refresh token).
        for mode in GRAPH_MODES if conn_ids["graph"] else GRAPH_MODES[:1]:
            run(dag, conn_ids, mode, world.graph_connection(mode), twilio)
            if conn_ids["graph"]:
                run(dag, conn_ids, f"wrong {GRAPH_BREAKS[mode]}", world.graph_connection(mode, wrong=True), twilio)
        if conn_ids["twilio"]:
            run(dag, conn_ids, "wrong Twilio auth token", world.graph_connection(GRAPH_MODES[0]), wrong_twilio)

    # The errors a refused sign-in raises, read whole (messages, causes, tracebacks) with no masker in the way.
    errors = []
    for mode in GRAPH_MODES:
        world.use({"graph": set(), "twilio": set()}, world.graph_connection(mode, wrong=True), wrong_twilio)
        with MSGraphHook() as hook:
            errors.append(exception_text(lambda hook=hook: hook.get_event("AAMkAGI2TG93AAA=")))
        errors.append(exception_text(MSGraphHook().test_connection))
    errors.append(exception_text(lambda: TwilioHook().get_template(seed.TEMPLATE_REMINDER)))
    errors.append(exception_text(TwilioHook().test_connection))
    errors.append(exception_text(lambda: TwilioHook().fetch_message_statuses(["SM" + "0" * 32])))

    journal = world.sandbox.control.journal()
    # The refresh tokens the sandbox issued in the runs are as secret as the given one; only the Variable that keeps
    # the newest (encrypted at rest) may hold one.
    seeded = {REFRESH_TOKEN, *(token["token"] for token in seed.default_seed().refresh_tokens)}
    issued_tokens = [
        t["token"] for t in world.sandbox.control.refresh_tokens(seed.ORGANIZER) if t["token"] not in seeded
    ]
    assert issued_tokens, "no refresh token was redeemed"
    issued = Pieces([token.removeprefix("sbx-rt-") for token in issued_tokens])

    captured = capfd.readouterr()
    log_dir = Path(conf.get("logging", "base_log_folder"))
    log_files = [path for path in log_dir.rglob("*") if path.is_file()] if log_dir.exists() else []
    tables = metadata_tables()
    variable = tables.pop("variable")
    places = {
        "task logs (stdout, stderr, log records)": "\n".join((captured.out, captured.err, caplog.text)),
        f"log files ({len(log_files)})": "\n".join(path.read_text(errors="replace") for path in log_files),
        "xcom": tables.pop("xcom"),
        "rendered_task_instance_fields": tables.pop("rendered_task_instance_fields"),
        f"trigger table and the {len(triggers)} serialized triggers": "\n".join([tables.pop("trigger"), *triggers]),
        f"the other {len(tables)} tables but variable": "\n".join(tables.values()),
        f"exception texts ({len(errors)})": "\n".join(errors),
        f"sandbox journal ({len(journal)} requests)": json.dumps(journal),
    }
    found = {place: GIVEN.count(text) + issued.count(text) for place, text in places.items()}
    found["variable, decrypted (given secrets only)"] = GIVEN.count(variable)
    print("secret pieces found per place:", json.dumps(found, indent=1))
    print("runs:", json.dumps([run.__dict__ for run in runs], indent=1))
    assert found == dict.fromkeys(found, 0)
    # ... and the places scanned did hold what the runs wrote.
    assert all(r.run_id in places["task logs (stdout, stderr, log records)"] for r in runs)
    assert places["xcom"] and places["rendered_task_instance_fields"] and triggers
    assert issued.count(variable) >= 1  # the scan does see a secret where one is kept on purpose

    # Not vacuous: each credential was presented, and only the fake ones were accepted.
    token_posts = [
        (dict(urllib.parse.parse_qsl(entry["body"])), entry["status"])
        for entry in journal
        if entry["service"] == "identity" and entry["method"] == "POST" and entry["path"].endswith("/token")
    ]

    def presented(grant: str, field: str) -> set[int]:
        return {
            status
            for form, status in token_posts
            if form.get("client_id") == APP_ID and form.get("grant_type") == grant and form.get(field) == "***"
        }

    assert {200, 400} <= presented("refresh_token", "refresh_token")  # the fake token redeemed, the wrong refused
    assert {200, 401} <= presented("client_credentials", "client_secret")
    assert 200 in presented("client_credentials", "client_assertion")  # signed with the decrypted key
    twilio_requests = [entry for entry in journal if entry["service"] == "twilio"]
    assert all(entry["headers"].get("authorization") == "Basic ***" for entry in twilio_requests)
    assert {200, 201, 401} <= {entry["status"] for entry in twilio_requests}  # only the fake token is the account's
    # The wrong certificate password fails before any request: the key cannot be decrypted.
    refused_locally = [r for r in runs if r.credentials == "wrong certificate password"]
    assert refused_locally and all("failed" in r.states.values() for r in refused_locally)
    for r in runs:
        if not r.credentials.startswith("wrong"):
            assert "failed" not in r.states.values(), r

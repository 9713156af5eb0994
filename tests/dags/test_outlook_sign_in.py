"""Sign-in and the newest refresh token in real task runs (dag.test()) with one metadata database: a token that
expires between two runs, the login writing the connection, and no token in a log or an XCom."""

from __future__ import annotations

import importlib.util
import json
import threading
import time
from pathlib import Path

import pytest
from airflow.models import Connection, Variable
from airflow.models.xcom import XComModel
from airflow.utils.session import create_session

from airflow_provider_qconn.hooks.msgraph.token_store import StoredToken, key_of, origin_of
from airflow_provider_qconn.sandbox import connections, seed

BUNDLE = Path(__file__).resolve().parent / "bundle"
SHORT_LIVED = "sbx-rt-signed-in-short-lived-00000000000000"


def load():
    spec = importlib.util.spec_from_file_location("outlook_sign_in", BUNDLE / "outlook_sign_in.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def dag_module(sandbox_env, monkeypatch):
    """The DAG, its connection absent from the database and its Variable record gone."""
    module = load()
    with create_session() as session:
        session.query(Variable).filter(Variable.key == key_of(module.CONN_ID)).delete()
        session.query(Connection).filter(Connection.conn_id == module.CONN_ID).delete()
    return module


def kept(conn_id: str) -> StoredToken | None:
    with create_session() as session:
        row = session.query(Variable).filter(Variable.key == key_of(conn_id)).one_or_none()
        return StoredToken.from_json(row.val) if row else None


def xcom_text(run) -> str:
    with create_session() as session:
        rows = session.query(XComModel).filter_by(dag_id=run.dag_id, run_id=run.run_id).all()
        return json.dumps([XComModel.deserialize_value(row) for row in rows], default=str)


def test_a_connection_whose_token_expires_between_two_runs_keeps_working_on_the_newest_token(
    dag_module, sandbox_env, monkeypatch, capfd, caplog
):
    sandbox_env.control.seed(
        refresh_tokens=[{"token": SHORT_LIVED, "client_id": seed.CLIENT_ID, "mailbox": seed.ORGANIZER, "lifetime": 600}]
    )
    connection = connections(sandbox_env.url)["qconn_msgraph_default"]
    connection["extra"]["refresh_token"] = SHORT_LIVED
    monkeypatch.setenv(f"AIRFLOW_CONN_{dag_module.CONN_ID.upper()}", json.dumps(connection))

    first = dag_module.schedule_weekly.test()
    assert first.state == "success"
    record = kept(dag_module.CONN_ID)
    assert record.origin == origin_of(SHORT_LIVED) and record.refresh_token != SHORT_LIVED

    sandbox_env.control.advance_clock(3600)  # the connection's token is now past its lifetime
    assert SHORT_LIVED not in {t["token"] for t in sandbox_env.control.refresh_tokens(seed.ORGANIZER)}
    second = dag_module.schedule_weekly.test()

    assert second.state == "success" and second.run_id != first.run_id
    assert len(sandbox_env.control.mailbox_events(seed.ORGANIZER)) == 2
    token_posts = [e for e in sandbox_env.control.journal(service="identity") if e["path"].endswith("/token")]
    assert [e["status"] for e in token_posts] == [200, 200]  # the second run redeemed the kept token at once
    every_token = {SHORT_LIVED, record.refresh_token} | {
        t["token"] for t in sandbox_env.control.refresh_tokens(seed.ORGANIZER)
    }
    captured = capfd.readouterr()
    logs = "\n".join((captured.out, captured.err, caplog.text))
    assert "Kept the newest refresh token" in logs  # the task logs are among what was captured
    for text in (logs, xcom_text(first), xcom_text(second)):
        assert not any(token in text for token in every_token)


def test_the_login_writes_the_connection_a_task_then_uses_and_a_new_login_starts_a_new_record(
    dag_module, sandbox_env, capsys
):
    from airflow.cli import cli_parser

    sandbox_env.control.settings(device_code_interval=1)
    parser = cli_parser.get_parser()
    login_args = parser.parse_args(
        [
            "qconn", "outlook-login", "--conn-id", dag_module.CONN_ID, "--client-id", seed.CLIENT_ID,
            "--authority", sandbox_env.authority, "--base-url", sandbox_env.graph_base_url,
        ]
    )  # fmt: skip

    def sign_in() -> str:
        thread = threading.Thread(target=login_args.func, args=(login_args,), daemon=True)
        thread.start()
        deadline = time.monotonic() + 60
        while not (pending := sandbox_env.control.sign_ins()["device_codes"]) and time.monotonic() < deadline:
            time.sleep(0.05)
        sandbox_env.control.answer_device_code(pending[0]["user_code"], seed.ORGANIZER)
        thread.join(60)
        return capsys.readouterr().out

    output = sign_in()
    assert f"Connection '{dag_module.CONN_ID}' created in the metadata database" in output
    with create_session() as session:
        stored = session.query(Connection).filter(Connection.conn_id == dag_module.CONN_ID).one()
        extra = stored.extra_dejson
    assert (stored.conn_type, stored.login, extra["tenant_id"], extra["auth_type"]) == (
        "qconn_msgraph",
        seed.CLIENT_ID,
        "common",
        "refresh_token",
    )
    assert extra["refresh_token"] not in output

    assert dag_module.schedule_weekly.test().state == "success"
    first_record = kept(dag_module.CONN_ID)
    assert first_record.origin == origin_of(extra["refresh_token"])

    assert f"Connection '{dag_module.CONN_ID}' updated in the metadata database" in sign_in()
    with create_session() as session:
        signed_in_again = session.query(Connection).filter(Connection.conn_id == dag_module.CONN_ID).one()
        newer = signed_in_again.extra_dejson["refresh_token"]
    assert newer != extra["refresh_token"]
    assert dag_module.schedule_weekly.test().state == "success"
    assert kept(dag_module.CONN_ID).origin == origin_of(newer)  # the record follows the new sign-in

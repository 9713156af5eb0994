"""Bad input, refused before any request: one table across every operator, the sensor, the notifier and both
connection types.

Each case runs the real operator (or sensor, or notifier) against the sandbox and asserts three things: the
error names the parameter (or the connection field), the sandbox journal is empty (nothing was sent, not even
a token request), and the message holds none of the connection's secrets.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from airflow_provider_qconn.exceptions import QconnError
from airflow_provider_qconn.notifications.whatsapp import WhatsAppNotifier
from airflow_provider_qconn.operators.outlook import (
    CancelMeetingOperator,
    ScheduleMeetingOperator,
    UpdateMeetingOperator,
)
from airflow_provider_qconn.operators.whatsapp import GetMessageStatusOperator, SendWhatsAppTemplateOperator
from airflow_provider_qconn.sandbox import seed
from airflow_provider_qconn.sensors.whatsapp import WhatsAppDeliverySensor

SID = "SM" + "a" * 32
MEETING = "AAMkAGI2TG93AAA="
START, END = "2030-03-01T10:00:00+00:00", "2030-03-01T11:00:00+00:00"
#: Distinctive secrets put into the broken connections: none may show in an error.
SECRETS = ("s3cret-client-QCONN", "rt-QCONN-refresh-token", "tok-QCONN-auth-token", "pem-QCONN-password")


class FakeTaskInstance:
    dag_id, task_id, run_id, map_index, try_number = "dag", "task", "manual__1", -1, 1

    def xcom_push(self, key: str, value: Any) -> None:
        json.dumps(value)


def context() -> dict[str, Any]:
    return {"ti": FakeTaskInstance(), "dag_run": None}


def schedule(**overrides: Any) -> Callable[[], Any]:
    kwargs = {"task_id": "t", "start": START, "end": END, "subject": "Review", **overrides}
    return lambda: ScheduleMeetingOperator(**kwargs).execute(context())


def update(**overrides: Any) -> Callable[[], Any]:
    kwargs = {"task_id": "t", "meeting_id": MEETING, "subject": "Moved", **overrides}
    return lambda: UpdateMeetingOperator(**kwargs).execute(context())


def cancel(**overrides: Any) -> Callable[[], Any]:
    kwargs = {"task_id": "t", "meeting_id": MEETING, **overrides}
    return lambda: CancelMeetingOperator(**kwargs).execute(context())


def send(**overrides: Any) -> Callable[[], Any]:
    kwargs = {"task_id": "t", "recipients": "+59899123456", "template_sid": seed.TEMPLATE_REMINDER, **overrides}
    return lambda: SendWhatsAppTemplateOperator(**kwargs).execute(context())


def statuses(**overrides: Any) -> Callable[[], Any]:
    kwargs = {"task_id": "t", "message_ids": [SID], **overrides}
    return lambda: GetMessageStatusOperator(**kwargs).execute(context())


def sensor(**overrides: Any) -> Callable[[], Any]:
    kwargs = {"task_id": "t", "message_ids": [SID], "deferrable": False, **overrides}
    return lambda: WhatsAppDeliverySensor(**kwargs).execute(context())


def notify(**overrides: Any) -> Callable[[], Any]:
    kwargs = {"recipients": "+59899123456", "template_sid": seed.TEMPLATE_REMINDER, **overrides}
    return lambda: WhatsAppNotifier(**kwargs).notify(context())


@dataclass(frozen=True)
class Connection:
    """A connection to break: its type, and what to change in (or drop from) the sandbox's working one."""

    conn_id: str
    base: str
    changes: dict[str, Any]


def graph_conn(**changes: Any) -> Connection:
    return Connection("qconn_msgraph_broken", "qconn_msgraph_app", changes)


def delegated_conn(**changes: Any) -> Connection:
    return Connection("qconn_msgraph_broken", "qconn_msgraph_default", changes)


def twilio_conn(**changes: Any) -> Connection:
    return Connection("qconn_twilio_broken", "qconn_twilio_default", changes)


DROP = object()

# (case id, action, expected parameter or field named in the message, broken connection or None)
CASES: list[tuple[str, Callable[[], Any], str, Connection | None]] = [
    # ScheduleMeetingOperator
    ("schedule: start not a date", schedule(start="next tuesday"), "start", None),
    ("schedule: start rendered to None", schedule(start="None"), "start", None),
    ("schedule: start empty", schedule(start=""), "start", None),
    ("schedule: start a number", schedule(start=12), "start", None),
    ("schedule: impossible date", schedule(start="2030-02-30T10:00:00"), "start", None),
    ("schedule: end before start", schedule(end="2030-03-01T09:00:00+00:00"), "end", None),
    ("schedule: end equals start", schedule(end=START), "end", None),
    ("schedule: unknown time zone", schedule(start="2030-03-01T10:00", time_zone="Mars/Olympus"), "time_zone", None),
    ("schedule: attendee not an e-mail", schedule(attendees="ana@, bob@example.com"), "attendees", None),
    ("schedule: attendee without domain", schedule(attendees=["ana"]), "attendees", None),
    ("schedule: attendees a dict", schedule(attendees={"a": 1}), "attendees", None),
    ("schedule: content_type unknown", schedule(content_type="markdown"), "content_type", None),
    ("schedule: teams_meeting not a bool", schedule(teams_meeting="perhaps"), "teams_meeting", None),
    ("schedule: subject a list", schedule(subject=["a"]), "subject", None),
    # UpdateMeetingOperator
    ("update: no meeting id", update(meeting_id=""), "meeting_id", None),
    ("update: meeting id rendered to None", update(meeting_id="None"), "meeting_id", None),
    ("update: meeting id a list", update(meeting_id=["a", "b"]), "meeting_id", None),
    ("update: start not a date", update(start="soon"), "start", None),
    ("update: end before start", update(start=END, end=START), "end", None),
    ("update: unknown time zone", update(start="2030-03-01T10:00", time_zone="Nowhere/City"), "time_zone", None),
    ("update: bad attendee", update(attendees="not-an-address"), "attendees", None),
    # CancelMeetingOperator
    ("cancel: no meeting id", cancel(meeting_id=None), "meeting_id", None),
    ("cancel: meeting id rendered to None", cancel(meeting_id="None"), "meeting_id", None),
    ("cancel: missing_ok not a bool", cancel(missing_ok="yes please"), "missing_ok", None),
    # SendWhatsAppTemplateOperator
    ("send: no recipients", send(recipients=""), "recipients", None),
    ("send: recipients rendered to None", send(recipients="None"), "recipients", None),
    ("send: no recipient is a number", send(recipients="call me; 12"), "recipients", None),
    ("send: recipients a dict", send(recipients={"a": 1}), "recipients", None),
    ("send: template sid malformed", send(template_sid="HX123"), "template_sid", None),
    ("send: template sid of a message", send(template_sid=SID), "template_sid", None),
    ("send: template sid empty", send(template_sid=""), "template_sid", None),
    ("send: variables not a mapping", send(template_variables=["a"]), "template_variables", None),
    ("send: variables not JSON", send(template_variables="{1: Ana"), "template_variables", None),
    ("send: variable value a dict", send(template_variables={"1": {"x": 1}}), "template_variables", None),
    ("send: empty variable value", send(template_variables={"1": ""}), "template_variables", None),
    ("send: newline in a value", send(template_variables={"1": "Ana\nPérez"}), "template_variables", None),
    ("send: tab in a value", send(template_variables={"1": "Ana\tPérez"}), "template_variables", None),
    ("send: five spaces in a value", send(template_variables={"1": "Ana     Pérez"}), "template_variables", None),
    ("send: value of 1,601 characters", send(template_variables={"1": "a" * 1601}), "template_variables", None),
    ("send: 101 variables", send(template_variables={str(i): "x" for i in range(101)}), "template_variables", None),
    ("send: placeholder with a space", send(template_variables={"first name": "Ana"}), "template_variables", None),
    ("send: placeholder of 17 characters", send(template_variables={"p" * 17: "Ana"}), "template_variables", None),
    ("send: recipient variables not a mapping", send(recipient_variables=["a"]), "recipient_variables", None),
    ("send: unknown default region", send(recipients="099 123 456", default_region="XX"), "default_region", None),
    ("send: fail_on unknown", send(fail_on="sometimes"), "fail_on", None),
    # GetMessageStatusOperator
    ("statuses: no valid SID", statuses(message_ids="SM1; nope"), "message_ids", None),
    ("statuses: ids rendered to None", statuses(message_ids="None"), "message_ids", None),
    ("statuses: empty", statuses(message_ids=""), "message_ids", None),
    ("statuses: fail_on unknown", statuses(fail_on="maybe"), "fail_on", None),
    # WhatsAppDeliverySensor
    ("sensor: malformed SID", sensor(message_ids=["SM1"]), "message_ids", None),
    ("sensor: ids rendered to None", sensor(message_ids="None"), "message_ids", None),
    ("sensor: a failure status as target", sensor(target_statuses=["failed"]), "target_statuses", None),
    ("sensor: no target status", sensor(target_statuses=[]), "target_statuses", None),
    # WhatsAppNotifier
    ("notifier: no recipient is a number", notify(recipients="nobody"), "recipients", None),
    ("notifier: template sid malformed", notify(template_sid="HXnope"), "template_sid", None),
    ("notifier: empty variable value", notify(template_variables={"1": ""}), "template_variables", None),
    ("notifier: newline in a value", notify(template_variables={"1": "a\nb"}), "template_variables", None),
    # qconn_msgraph connections
    ("graph conn: no client id", schedule(msgraph_conn_id="qconn_msgraph_broken"), "login", graph_conn(login=DROP)),
    (
        "graph conn: unknown auth type",
        schedule(msgraph_conn_id="qconn_msgraph_broken"),
        "auth_type",
        graph_conn(auth_type="password"),
    ),
    (
        "graph conn: app-only with tenant common",
        schedule(msgraph_conn_id="qconn_msgraph_broken"),
        "tenant_id",
        graph_conn(tenant_id="common"),
    ),
    (
        "graph conn: app-only without mailbox",
        schedule(msgraph_conn_id="qconn_msgraph_broken"),
        "user_id",
        graph_conn(user_id=DROP),
    ),
    (
        "graph conn: client secret mode without secret",
        schedule(msgraph_conn_id="qconn_msgraph_broken"),
        "password",
        graph_conn(password=DROP),
    ),
    (
        "graph conn: certificate mode without certificate",
        schedule(msgraph_conn_id="qconn_msgraph_broken"),
        "certificate",
        graph_conn(auth_type="certificate", password="pem-QCONN-password"),
    ),
    (
        "graph conn: delegated without refresh token",
        schedule(msgraph_conn_id="qconn_msgraph_broken"),
        "refresh_token",
        delegated_conn(refresh_token=DROP, auth_type="refresh_token"),
    ),
    (
        "graph conn: http base URL",
        cancel(msgraph_conn_id="qconn_msgraph_broken"),
        "base_url",
        delegated_conn(base_url="http://graph.example/v1.0", refresh_token="rt-QCONN-refresh-token"),
    ),
    (
        "graph conn: authority not a URL",
        update(msgraph_conn_id="qconn_msgraph_broken"),
        "authority",
        graph_conn(authority="login-host", password="s3cret-client-QCONN"),
    ),
    # qconn_twilio connections
    (
        "twilio conn: login not an Account SID",
        send(twilio_conn_id="qconn_twilio_broken"),
        "login",
        twilio_conn(login="US123"),
    ),
    (
        "twilio conn: no auth token",
        statuses(twilio_conn_id="qconn_twilio_broken"),
        "password",
        twilio_conn(password=DROP),
    ),
    (
        "twilio conn: sender not a number",
        send(twilio_conn_id="qconn_twilio_broken"),
        "from_number",
        twilio_conn(from_number="my phone", password="tok-QCONN-auth-token"),
    ),
    (
        "twilio conn: no sender",
        send(twilio_conn_id="qconn_twilio_broken"),
        "from_number",
        twilio_conn(from_number=DROP, password="tok-QCONN-auth-token"),
    ),
    (
        "twilio conn: malformed Messaging Service",
        send(twilio_conn_id="qconn_twilio_broken"),
        "messaging_service_sid",
        twilio_conn(messaging_service_sid="MG12", password="tok-QCONN-auth-token"),
    ),
    (
        "twilio conn: http base URL",
        sensor(twilio_conn_id="qconn_twilio_broken"),
        "base_url",
        twilio_conn(base_url="http://api.example", password="tok-QCONN-auth-token"),
    ),
    (
        "twilio conn: max_concurrency zero",
        send(twilio_conn_id="qconn_twilio_broken"),
        "max_concurrency",
        twilio_conn(max_concurrency=0, password="tok-QCONN-auth-token"),
    ),
    (
        "twilio conn: max_concurrency not a number",
        statuses(twilio_conn_id="qconn_twilio_broken"),
        "max_concurrency",
        twilio_conn(max_concurrency="many", password="tok-QCONN-auth-token"),
    ),
]


def install(connection: Connection, monkeypatch: pytest.MonkeyPatch) -> None:
    """Set ``connection`` as an environment connection: the working one with its changes applied."""
    conn = json.loads(os.environ[f"AIRFLOW_CONN_{connection.base.upper()}"])
    for field, value in connection.changes.items():
        target = conn if field in ("login", "password") else conn.setdefault("extra", {})
        if value is DROP:
            target.pop(field, None)
        else:
            target[field] = value
    monkeypatch.setenv(f"AIRFLOW_CONN_{connection.conn_id.upper()}", json.dumps(conn))


def test_the_table_covers_every_kind_of_input():
    assert len(CASES) >= 60
    assert len({case_id for case_id, *_ in CASES}) == len(CASES)


@pytest.mark.parametrize(("action", "parameter", "connection"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_refused_before_any_request_naming_the_parameter(
    sandbox_env, monkeypatch, action, parameter, connection
):
    if connection is not None:
        install(connection, monkeypatch)
    with pytest.raises((QconnError, ValueError)) as refused:
        action()
    message = str(refused.value)
    assert parameter in message, message
    assert not any(secret in message for secret in (*SECRETS, seed.CLIENT_SECRET, seed.AUTH_TOKEN)), message
    assert sandbox_env.control.journal() == []

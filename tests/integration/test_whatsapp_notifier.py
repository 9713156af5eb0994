"""WhatsAppNotifier as a callback: templated with the callback's context, sync and async, against the sandbox."""

from __future__ import annotations

import json

import pytest

from airflow_provider_qconn.exceptions import InvalidParameterError, QconnError
from airflow_provider_qconn.get_provider_info import get_provider_info
from airflow_provider_qconn.notifications.whatsapp import WhatsAppNotifier
from airflow_provider_qconn.sandbox import seed


def notifier(**kwargs) -> WhatsAppNotifier:
    defaults = {
        "recipients": "+598 99 123 456; +34 612 34 56 78",
        "template_sid": seed.TEMPLATE_REMINDER,
        "template_variables": {"1": "on-call", "2": "{{ dag_run_id }} failed"},
    }
    return WhatsAppNotifier(**{**defaults, **kwargs})


def sent_variables(sandbox) -> dict[str, dict]:
    return {m["to"]: json.loads(m["content_variables"]) for m in sandbox.control.messages()}


def test_callback_sends_the_template_rendered_with_the_context(sandbox_env):
    notifier(recipient_variables={"+59899123456": {"1": "Ana"}})({"dag_run_id": "manual__1"})
    assert sent_variables(sandbox_env) == {
        "whatsapp:+59899123456": {"1": "Ana", "2": "manual__1 failed"},
        "whatsapp:+34612345678": {"1": "on-call", "2": "manual__1 failed"},
    }


async def test_async_notify_for_the_triggerer(sandbox_env):
    callback = notifier()
    callback.context = {"dag_run_id": "scheduled__2"}
    await callback
    assert {v["2"] for v in sent_variables(sandbox_env).values()} == {"scheduled__2 failed"}


def test_a_notification_that_reaches_nobody_raises(sandbox_env):
    with pytest.raises(QconnError, match="reached none of its 1 recipients"):
        notifier(recipients=[seed.INVALID_NUMBER])({"dag_run_id": "r"})
    with pytest.raises(InvalidParameterError, match=r"^recipients:"):
        notifier(recipients="nobody")({"dag_run_id": "r"})
    assert sandbox_env.control.messages() == []


def test_the_notifier_is_registered_with_airflow():
    assert get_provider_info()["notifications"] == [f"{WhatsAppNotifier.__module__}.{WhatsAppNotifier.__name__}"]


def test_variables_twilio_would_refuse_are_caught_before_any_request(sandbox_env):
    notifier(recipient_variables={"+34612345678": {"2": "   "}, "+59899123456": {"1": ""}})({"dag_run_id": "r"})
    assert list(sent_variables(sandbox_env)) == ["whatsapp:+34612345678"]
    sandbox_env.control.clear_journal()
    with pytest.raises(InvalidParameterError, match=r"^template_variables: placeholder '2': the value is empty"):
        notifier(template_variables={"1": "on-call", "2": ""})({"dag_run_id": "r"})
    assert sandbox_env.control.journal() == []

"""WhatsAppDeliverySensor and its trigger against the sandbox (statuses advance with the sandbox clock)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import TaskDeferred

from airflow_provider_qconn.exceptions import InvalidParameterError, NonRetryableApiError
from airflow_provider_qconn.hooks.twilio import OutgoingMessage, TwilioHook
from airflow_provider_qconn.sandbox import seed
from airflow_provider_qconn.sensors.whatsapp import MessageNotDeliveredError, WhatsAppDeliverySensor
from airflow_provider_qconn.triggers.whatsapp import WhatsAppDeliveryTrigger

NUMBERS = ["+59899120101", "+59899120102"]


def send(numbers) -> list[str]:
    results = TwilioHook().send_whatsapp_templates([OutgoingMessage(n, {}) for n in numbers], seed.TEMPLATE_REMINDER)
    return [result.message_id for result in results]


def context() -> dict:
    return {"ti": SimpleNamespace(try_number=1, map_index=-1, task_id="wait", dag_id="d", run_id="r")}


def sensor(sids, **kwargs) -> WhatsAppDeliverySensor:
    return WhatsAppDeliverySensor(task_id="wait", message_ids=sids, poke_interval=0.05, **kwargs)


def test_poke_is_done_once_every_message_is_delivered(sandbox_env):
    sids = send(NUMBERS)
    assert sensor(sids).poke(context()).is_done is False
    sandbox_env.control.advance_clock(2.5)  # delivered at 2 s
    done = sensor([*sids, sids[0]]).poke(context())
    assert done.is_done
    assert done.xcom_value["statuses"] == ["delivered", "delivered"]
    assert [d["message_id"] for d in done.xcom_value["details"]] == sids


def test_a_failed_message_fails_the_sensor_with_twilios_code(sandbox_env):
    sids = send([NUMBERS[0], seed.FAILED_NUMBER])
    sandbox_env.control.advance_clock(3)
    with pytest.raises(MessageNotDeliveredError, match="63016") as caught:
        sensor(sids).poke(context())
    assert caught.value.code == 63016


def test_unknown_and_malformed_sids(sandbox_env):
    with pytest.raises(NonRetryableApiError, match="20404"):
        sensor(["SM" + "0" * 32]).poke(context())
    with pytest.raises(InvalidParameterError, match=r"^message_ids: not Message SIDs"):
        sensor(["nope"]).execute(context())
    with pytest.raises(InvalidParameterError, match=r"^target_statuses:"):
        sensor(["SM" + "0" * 32], target_statuses=["failed"]).execute(context())
    assert sandbox_env.control.journal(service="twilio")[0]["status"] == 404


def test_deferred_wait_runs_on_the_trigger_and_completes(sandbox_env):
    sids = send(NUMBERS)
    with pytest.raises(TaskDeferred) as deferred:
        sensor(sids, deferrable=True).execute(context())
    trigger = deferred.value.trigger
    assert isinstance(trigger, WhatsAppDeliveryTrigger)
    classpath, kwargs = trigger.serialize()
    assert WhatsAppDeliveryTrigger(**kwargs).serialize() == (classpath, kwargs)

    async def wait_for_event():
        run = trigger.run()
        waiter = asyncio.ensure_future(run.__anext__())
        await asyncio.sleep(0.2)
        assert not waiter.done()  # still queued: the trigger keeps polling
        await asyncio.to_thread(sandbox_env.control.advance_clock, 5)  # read at 4 s
        return await asyncio.wait_for(waiter, 10)

    event = asyncio.run(wait_for_event())
    assert event.payload["verdict"] == "done"
    result = sensor(sids, deferrable=True).execute_complete(context(), event.payload)
    assert result["statuses"] == ["read", "read"]


def test_deferrable_sensor_returns_at_once_when_already_delivered(sandbox_env):
    sids = send(NUMBERS[:1])
    sandbox_env.control.advance_clock(5)
    assert sensor(sids, deferrable=True).execute(context())["statuses"] == ["read"]


def test_poke_mode_execute_returns_the_statuses(sandbox_env):
    sids = send(NUMBERS[:1])
    sandbox_env.control.advance_clock(5)
    assert sensor(sids).execute(context())["statuses"] == ["read"]


def test_only_lasting_lookup_failures_end_the_wait():
    from airflow_provider_qconn.hooks.twilio import LookupResult
    from airflow_provider_qconn.triggers.whatsapp import lookup_errors

    lookups = {
        "SM1": LookupResult("SM1", code="throttled", message="429", transient=True),
        "SM2": LookupResult("SM2", code=20404, message="not found"),
        "SM3": LookupResult("SM3", details={"status": "sent"}),
    }
    assert lookup_errors(["SM1", "SM2", "SM3"], lookups) == [
        {"message_id": "SM2", "code": 20404, "message": "not found"}
    ]

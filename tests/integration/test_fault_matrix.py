"""The fault matrix: every action against every fault the sandbox injects, judged by the sandbox's own state.

Each case injects one fault, once (``times: 1``), into the request that carries the action (the meeting's
create, update or cancel; a message create; a status read), runs the action through the real operator, sensor
or trigger, hook and SDK over HTTPS, and then reads what the sandbox holds: no duplicate (one meeting, one
attendee copy, one cancel that took effect, one message per recipient, no message created by a read), nothing
lost (the meeting, the update, the cancel, every recipient and every status is there), and the outcome below.

Outcomes, per cell of ``MATRIX``:

- ``ok``: the action succeeds in the same call, with the right outputs (the hook's own replay was safe: Graph
  de-duplicates creates by ``transactionId``, a PATCH sets the same values again, the hooks look before they
  repeat a cancel or a message create, and reads are always safe to repeat).
- ``retry``: the call may fail, with a retryable error (``ApiError``, not ``AirflowFailException``) whose
  message names what happened (``RETRY_MESSAGES``); the next try of the same task instance then succeeds, still
  without a duplicate. Succeeding at once is accepted too. This is how MSGraphHook is built: it replays
  429/503/504 honouring ``Retry-After`` (``hooks/msgraph/retry.py``) and leaves every other failure to
  Airflow's task retry (a cancel's next try finds the meeting cancelled and counts that as done).
- ``n/a``: the fault cannot happen to that request (a cancel's ``202`` has no body to truncate).

``LASTING`` covers sends where no safe retry is possible within the try (the fault stays): the task fails,
each recipient in ``failed_recipients`` with a code and a message that say what happened, and its next try
reaches each recipient exactly once.

A replayed PATCH (the hook repeats one answered 503; a task retry repeats one whose answer was lost) leaves the
same event; the cases count such replays but do not call them duplicates. Graph may send attendees the update
again, which the sandbox does not model.

MSGraphHook has no setting for its HTTP timeout (100 s) or its backoff (``retry.BASE_DELAY``, 2 s doubling): the
cases shorten them where the hook reads them (the backoff's base; the hook's httpx client timeout, in the
timeout cells). TwilioHook takes ``timeout``, ``backoff_seconds`` and ``max_attempts``, but the operators, the
sensor and the trigger build it with the connection id only, so the cases hand them a TwilioHook with short
ones. The send ledger lives in memory between tries (the operator's ``_ledger_store`` seam). The figures (cases,
duplicates, losses, replays, failing cells) are written at the end of the module's run.
"""

from __future__ import annotations

import abc
import asyncio
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_qconn.exceptions import ApiError, QconnError
from airflow_provider_qconn.hooks.twilio import OutgoingMessage, TwilioHook
from airflow_provider_qconn.ledger import MemoryStore
from airflow_provider_qconn.sandbox import seed
from airflow_provider_qconn.sandbox.server import Sandbox

ACTIONS = ("schedule", "update", "cancel", "send", "statuses", "poke", "trigger")

# fmt: off
MATRIX: dict[str, tuple[str, ...]] = {
    # fault               schedule  update   cancel   send  statuses poke  trigger
    "429 Retry-After":   ("ok",    "ok",    "ok",    "ok", "ok",    "ok", "ok"),
    "429":               ("ok",    "ok",    "ok",    "ok", "ok",    "ok", "ok"),
    "500":               ("retry", "retry", "retry", "ok", "ok",   "ok", "ok"),
    "503":               ("ok",    "ok",    "ok",    "ok", "ok",    "ok", "ok"),
    "503 after":         ("ok",    "ok",    "ok",    "ok", "ok",    "ok", "ok"),
    "504":               ("ok",    "ok",    "ok",    "ok", "ok",    "ok", "ok"),
    "drop before":       ("retry", "retry", "retry", "ok", "ok",    "ok", "ok"),
    "drop after":        ("retry", "retry", "retry", "ok", "ok",    "ok", "ok"),
    "timeout after":     ("retry", "retry", "retry", "ok", "ok",    "ok", "ok"),
    "truncated after":   ("retry", "retry", "n/a",   "ok", "ok",    "ok", "ok"),
    "not JSON after":    ("retry", "retry", "retry", "ok", "ok",    "ok", "ok"),
}
# fmt: on

#: Seconds a client waits for an answer in these cases, and how late the slow answer comes.
CLIENT_TIMEOUT = 0.5
SLOW_ANSWER = 1.0

#: The fault rules (``POST /_sandbox/faults``), each applied once to the action's request.
FAULTS: dict[str, dict[str, Any]] = {
    "429 Retry-After": {"status": 429, "retry_after": 1},
    "429": {"status": 429},
    "500": {"status": 500},
    "503": {"status": 503},
    "503 after": {"status": 503, "phase": "after"},
    "504": {"status": 504},
    "drop before": {"drop": True},
    "drop after": {"drop": True, "phase": "after"},
    "timeout after": {"latency": SLOW_ANSWER, "phase": "after"},
    "truncated after": {"body": "truncated"},
    "not JSON after": {"body": "not_json"},
}
#: The faults after which the request has taken effect.
TOOK_EFFECT = {"503 after", "drop after", "timeout after", "truncated after", "not JSON after"}

#: What a retryable error must say in a ``retry`` cell, by fault.
_CONNECTION = r"(?i)connection|closed|disconnect"
_UNREADABLE = r"(?i)(answer|response)\b.*\b(read|JSON|pars)"
RETRY_MESSAGES = {
    "500": r"Microsoft Graph error 500",
    "drop before": _CONNECTION,
    "drop after": _CONNECTION,
    "timeout after": r"(?i)time(d)? ?out",
    "truncated after": _UNREADABLE,
    "not JSON after": _UNREADABLE,
}

#: Message create (POST) and list (GET, how the hook looks for what an ambiguous create did).
MESSAGES = r"/Messages\.json$"

#: Sends where no safe retry is possible within the try: the fault stays (no ``times``). The task must fail with
#: every recipient in ``failed_recipients`` under a code that says why, none lost and none sent twice; the next
#: try, once the fault has passed, reaches each recipient exactly once (finding, not resending, what the failed
#: try may have created).
_MAYBE_SENT = r"(?i)(may|might) have been (sent|created)|not known whether|unknown whether"
LASTING: dict[str, tuple[list[dict[str, Any]], str, str, int]] = {
    # case: (fault rules, each recipient's error code, what its message must say, messages each holds after it)
    "429 on every create": (
        [{"method": "POST", "path": MESSAGES, "status": 429}],
        "throttled",
        r"(?i)too many requests|throttl",
        0,
    ),
    "no answer to the create, the look-up refused": (
        [
            {"method": "POST", "path": MESSAGES, "latency": SLOW_ANSWER, "phase": "after"},
            {"method": "GET", "path": MESSAGES, "status": 503},
        ],
        "unknown_outcome",
        _MAYBE_SENT,
        1,
    ),
    "cut after the create, the look-up refused": (
        [
            {"method": "POST", "path": MESSAGES, "drop": True, "phase": "after"},
            {"method": "GET", "path": MESSAGES, "status": 503},
        ],
        "unknown_outcome",
        _MAYBE_SENT,
        1,
    ),
}

NUMBERS = ["+59899130001", "+59899130002", "+59899130003"]
SUBJECT = "Fault matrix review"

pytestmark = [
    pytest.mark.filterwarnings("ignore:This class is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:GetQueryParameters is deprecated:DeprecationWarning"),
]


class QuickTwilioHook(TwilioHook):
    """TwilioHook as the operators, the sensor and the trigger build it, with a short timeout and backoff."""

    def __init__(self, twilio_conn_id: str = TwilioHook.default_conn_name, **kwargs: Any) -> None:
        quick = {"timeout": CLIENT_TIMEOUT, "backoff_seconds": 0.01, "max_attempts": 3}
        super().__init__(twilio_conn_id, **{**quick, **kwargs})


class TaskInstance:
    """The parts of a task instance the operators use: identity, try number and xcom_push."""

    def __init__(self, task_id: str, try_number: int) -> None:
        self.dag_id, self.task_id, self.run_id, self.map_index = "fault_matrix", task_id, "manual__1", -1
        self.try_number = try_number
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


def context(task_id: str, try_number: int = 1) -> dict[str, Any]:
    return {"ti": TaskInstance(task_id, try_number), "dag_run": None}


@dataclass
class Try:
    """One task try: its outputs, or the exception it raised."""

    outputs: Any = None
    error: BaseException | None = None


@dataclass
class Tally:
    """What the sandbox holds after a case, against what the action was meant to leave there."""

    duplicates: int = 0
    lost: int = 0
    replays: int = 0
    problems: list[str] = field(default_factory=list)


# --- the actions ---------------------------------------------------------------------------------------------------


class Action(abc.ABC):
    """One action on the sandbox: what it needs first, one task try, and a reading of the sandbox afterwards."""

    service: str
    method: str
    path: str

    def __init__(self, sandbox: Sandbox, fault: str) -> None:
        self.sandbox = sandbox
        self.fault = fault

    def prepare(self) -> None:  # noqa: B027 - most actions need nothing first
        """Whatever must exist before the action (a meeting, messages); the journal is cleared afterwards."""

    @abc.abstractmethod
    def run(self, try_number: int) -> Any:
        """One task try of the action: its outputs, or its exception."""

    @abc.abstractmethod
    def tally(self, outputs: Any) -> Tally:
        """Duplicates and losses in the sandbox's state, and what is wrong with the (successful) outputs."""

    def requests(self) -> list[dict[str, Any]]:
        """The journaled requests this action's faults are aimed at."""
        return [
            entry
            for entry in self.sandbox.control.journal(service=self.service)
            if entry["method"] == self.method and re.search(self.path, entry["path"])
        ]

    def took_effect(self, entry: dict[str, Any], success: int) -> bool:
        """Whether the handler ran for a journaled request: a clean success, or a fault injected after it."""
        if entry["fault"] is None:
            return entry["status"] == success
        return self.fault in TOOK_EFFECT


class _MeetingAction(Action):
    service = "graph"

    def operator_hook(self, operator: Any) -> Any:
        """The operator, its hook's HTTP timeout cut to CLIENT_TIMEOUT in the timeout cells."""
        if self.fault == "timeout after":
            import httpx

            operator.hook.client  # noqa: B018 - builds the hook's httpx client
            operator.hook._http.timeout = httpx.Timeout(CLIENT_TIMEOUT)
        return operator

    def schedule(self, task_id: str = "schedule", try_number: int = 1) -> dict[str, Any]:
        from airflow_provider_qconn.operators.outlook import ScheduleMeetingOperator

        operator = ScheduleMeetingOperator(
            task_id=task_id,
            subject=SUBJECT,
            start="2030-06-03T10:00",
            end="2030-06-03T10:30",
            time_zone="Europe/Madrid",
            attendees=seed.COLLEAGUE,
        )
        return self.operator_hook(operator).execute(context(task_id, try_number))

    def meetings(self, mailbox: str) -> list[dict[str, Any]]:
        return [e for e in self.sandbox.control.mailbox_events(mailbox) if SUBJECT in (e["subject"] or "")]


class Schedule(_MeetingAction):
    method, path = "POST", r"/events$"

    def run(self, try_number: int) -> Any:
        return self.schedule(try_number=try_number)

    def tally(self, outputs: Any) -> Tally:
        organizer, copies = self.meetings(seed.ORGANIZER), self.meetings(seed.COLLEAGUE)
        tally = Tally(duplicates=max(0, len(organizer) - 1) + max(0, len(copies) - 1), lost=int(not organizer))
        if outputs is not None and organizer:
            event = organizer[0]
            if (outputs["meeting_id"], outputs["ical_uid"]) != (event["immutableId"], event["iCalUId"]):
                tally.problems.append(f"outputs name another meeting: {outputs}")
        return tally


class Update(_MeetingAction):
    method, path = "PATCH", r"/events/[^/]+$"

    def prepare(self) -> None:
        self.meeting_id = self.schedule(task_id="prepare")["meeting_id"]

    def run(self, try_number: int) -> Any:
        from airflow_provider_qconn.operators.outlook import UpdateMeetingOperator

        operator = UpdateMeetingOperator(
            task_id="update", meeting_id=self.meeting_id, subject=f"{SUBJECT} (moved)", end="2030-06-03T11:00"
        )
        return self.operator_hook(operator).execute(context("update", try_number))

    def tally(self, outputs: Any) -> Tally:
        organizer, copies = self.meetings(seed.ORGANIZER), self.meetings(seed.COLLEAGUE)
        updated = [
            e
            for e in organizer + copies
            if e["subject"].endswith("(moved)") and e["_endUtc"].startswith("2030-06-03T11:00")
        ]
        applied = sum(self.took_effect(entry, 200) for entry in self.requests())
        tally = Tally(
            duplicates=max(0, len(organizer) - 1) + max(0, len(copies) - 1),
            lost=int(len(updated) < 2),
            replays=max(0, applied - 1),
        )
        if outputs is not None and outputs["meeting_id"] != self.meeting_id:
            tally.problems.append(f"outputs name another meeting: {outputs}")
        return tally


class Cancel(_MeetingAction):
    method, path = "POST", r"/cancel$"

    def prepare(self) -> None:
        self.meeting_id = self.schedule(task_id="prepare")["meeting_id"]

    def run(self, try_number: int) -> Any:
        from airflow_provider_qconn.operators.outlook import CancelMeetingOperator

        operator = CancelMeetingOperator(task_id="cancel", meeting_id=self.meeting_id, comment="Called off")
        return self.operator_hook(operator).execute(context("cancel", try_number))

    def tally(self, outputs: Any) -> Tally:
        organizer, copies = self.meetings(seed.ORGANIZER), self.meetings(seed.COLLEAGUE)
        cancelled = [e for e in organizer if e["isCancelled"] and e["folder"] == "deleteditems"]
        applied = sum(self.took_effect(entry, 202) for entry in self.requests())
        tally = Tally(
            duplicates=max(0, applied - 1) + max(0, len(copies) - 1),
            lost=int(not (cancelled and len(copies) == 1 and copies[0]["isCancelled"])),
        )
        if outputs is not None and outputs != {"meeting_id": self.meeting_id, "cancelled": True}:
            tally.problems.append(f"outputs: {outputs}")
        return tally


class _MessageAction(Action):
    service = "twilio"

    def stored(self) -> dict[str, list[dict[str, Any]]]:
        """The sandbox's messages by recipient."""
        by_recipient: dict[str, list[dict[str, Any]]] = {number: [] for number in NUMBERS}
        for message in self.sandbox.control.messages():
            by_recipient.setdefault(message["to"].removeprefix("whatsapp:"), []).append(message)
        return by_recipient

    def creates(self) -> int:
        return sum(
            entry["method"] == "POST" and entry["path"].endswith("/Messages.json")
            for entry in self.sandbox.control.journal(service="twilio")
        )


def send_operator(fail_on: str, ledger: MemoryStore) -> Any:
    """The send operator with its ledger in ``ledger``, a store that outlives a try as Airflow Variables do."""
    from airflow_provider_qconn.operators.whatsapp import SendWhatsAppTemplateOperator

    class MemoryLedgerSend(SendWhatsAppTemplateOperator):
        def _ledger_store(self) -> MemoryStore:
            return ledger

    return MemoryLedgerSend(task_id="send", recipients=NUMBERS, template_sid=seed.TEMPLATE_REMINDER, fail_on=fail_on)


class Send(_MessageAction):
    method, path = "POST", MESSAGES

    def __init__(self, sandbox: Sandbox, fault: str) -> None:
        super().__init__(sandbox, fault)
        self.ledger = MemoryStore()

    def run(self, try_number: int) -> Any:
        return send_operator("never", self.ledger).execute(context("send", try_number))

    def tally(self, outputs: Any) -> Tally:
        stored = self.stored()
        failed = set(outputs["failed_recipients"]) if outputs is not None else set()
        tally = Tally(
            duplicates=sum(max(0, len(messages) - 1) for messages in stored.values()),
            lost=sum(1 for number in NUMBERS if not stored[number] and number not in failed),
        )
        if outputs is None:
            return tally
        sent = dict(zip(outputs["sent_recipients"], outputs["sent_message_ids"], strict=True))
        if outputs["result"] != "Sent" or outputs["errors"] or sorted(sent) != NUMBERS:
            tally.problems.append(
                f"result {outputs['result']}, failed {outputs['failed_recipients']}, errors {outputs['errors']}"
            )
        wrong = {n: sid for n, sid in sent.items() if [m["sid"] for m in stored.get(n, [])] != [sid]}
        if wrong:
            tally.problems.append(f"sent_message_ids that are not the recipient's one message: {wrong}")
        return tally


class _ReadAction(_MessageAction):
    method, path = "GET", r"/Messages/SM\w+\.json$"

    def prepare(self) -> None:
        results = QuickTwilioHook().send_whatsapp_templates(
            [OutgoingMessage(number, {}) for number in NUMBERS], seed.TEMPLATE_REMINDER
        )
        self.sids = [result.message_id for result in results]
        self.sandbox.control.advance_clock(5)  # every message is read by now
        self.statuses = {m["sid"]: m["status"] for m in self.sandbox.control.messages()}

    @abc.abstractmethod
    def statuses_of(self, outputs: Any) -> list[str | None]:
        """The status the action reported for each SID, None where it reported none."""

    def tally(self, outputs: Any) -> Tally:
        reported = self.statuses_of(outputs) if outputs is not None else [None] * len(self.sids)
        tally = Tally(duplicates=self.creates(), lost=sum(status is None for status in reported))
        if outputs is not None and reported != [self.statuses[sid] for sid in self.sids]:
            tally.problems.append(f"statuses {reported}, the sandbox says {[self.statuses[s] for s in self.sids]}")
        return tally


class Statuses(_ReadAction):
    def run(self, try_number: int) -> Any:
        from airflow_provider_qconn.operators.whatsapp import GetMessageStatusOperator

        return GetMessageStatusOperator(task_id="statuses", message_ids=self.sids).execute(
            context("statuses", try_number)
        )

    def statuses_of(self, outputs: Any) -> list[str | None]:
        return list(outputs["statuses"])


class Poke(_ReadAction):
    def run(self, try_number: int) -> Any:
        from airflow_provider_qconn.sensors.whatsapp import WhatsAppDeliverySensor

        sensor = WhatsAppDeliverySensor(task_id="wait", message_ids=self.sids, poke_interval=0.05)
        return sensor.poke(context("wait", try_number))

    def statuses_of(self, outputs: Any) -> list[str | None]:
        return outputs.xcom_value["statuses"] if outputs.is_done else [None] * len(self.sids)


class Trigger(_ReadAction):
    def run(self, try_number: int) -> Any:
        from airflow_provider_qconn.triggers.whatsapp import WhatsAppDeliveryTrigger

        trigger = WhatsAppDeliveryTrigger(self.sids, ["delivered", "read"], 0.05, TwilioHook.default_conn_name)

        async def first_event() -> Any:
            return await asyncio.wait_for(trigger.run().__anext__(), 10)

        return asyncio.run(first_event()).payload

    def statuses_of(self, outputs: Any) -> list[str | None]:
        if outputs["verdict"] != "done":
            return [None] * len(self.sids)
        return [detail and detail["status"] for detail in outputs["details"]]


ACTION_CLASSES: dict[str, type[Action]] = {
    "schedule": Schedule,
    "update": Update,
    "cancel": Cancel,
    "send": Send,
    "statuses": Statuses,
    "poke": Poke,
    "trigger": Trigger,
}

# --- the cases -----------------------------------------------------------------------------------------------------

#: One row per case run in this module: action, fault, expected outcome, duplicates, lost, replays, problems.
FIGURES: list[dict[str, Any]] = []


@pytest.fixture(scope="module", autouse=True)
def _report_figures(request: pytest.FixtureRequest) -> Iterator[None]:
    """Write the matrix's figures (for quoting) once its cases have run."""
    yield
    if not FIGURES:
        return
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    failing = [row for row in FIGURES if row["problems"]]
    lines = [
        f"fault matrix: {len(FIGURES)} cases, {sum(r['duplicates'] for r in FIGURES)} duplicates, "
        f"{sum(r['lost'] for r in FIGURES)} lost, {sum(r['replays'] for r in FIGURES)} idempotent replays, "
        f"{len(failing)} failing cells",
        *(f"  {row['action']} x {row['fault']}: {'; '.join(row['problems'])}" for row in failing),
    ]
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():  # not captured: shown whether the cases pass or fail
            reporter.write_line("")
            for line in lines:
                reporter.write_line(line)


@pytest.fixture
def quick_clients(monkeypatch: pytest.MonkeyPatch) -> None:
    """Short retry delays and timeouts for the SDK clients the operators, the sensor and the trigger build."""
    import airflow_provider_qconn.hooks.twilio
    from airflow_provider_qconn.hooks.msgraph import retry

    # Graph's backoff without Retry-After: up to 0.05 s, not 2 s, before the first replay.
    monkeypatch.setattr(retry, "BASE_DELAY", 0.05)
    # The operators, the sensor and the trigger import TwilioHook from here when they run.
    monkeypatch.setattr(airflow_provider_qconn.hooks.twilio, "TwilioHook", QuickTwilioHook)


def attempt_with(run: Callable[[], Any]) -> Try:
    try:
        return Try(outputs=run())
    except Exception as error:  # the outcome is judged afterwards, against the tables
        return Try(error=error)


def attempt(action: Action, try_number: int) -> Try:
    return attempt_with(lambda: action.run(try_number))


def journaled(sandbox: Sandbox, service: str, rule: int) -> bool:
    """Whether the faulted request has been journaled (a slow answer is journaled when it ends)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if any(entry["fault"] == rule for entry in sandbox.control.journal(service=service)):
            return True
        time.sleep(0.05)
    return False


def posted(sandbox: Sandbox, count: int) -> None:
    """Wait until ``count`` message creates have been journaled."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if sum(entry["method"] == "POST" for entry in sandbox.control.journal(service="twilio")) >= count:
            return
        time.sleep(0.05)


def describe(error: BaseException) -> str:
    return f"{type(error).__module__}.{type(error).__qualname__}: {error}"


def judge(expected: str, fault: str, first: Try, second: Try | None) -> tuple[Any, list[str]]:
    """The successful try's outputs, and what is wrong with the outcome against the matrix."""
    if first.error is None:
        return first.outputs, []
    if expected == "ok":
        return None, [f"failed instead of succeeding: {describe(first.error)}"]
    problems = []
    if not isinstance(first.error, ApiError) or isinstance(first.error, AirflowFailException):
        problems.append(f"not a retryable ApiError: {describe(first.error)}")
    elif not re.search(RETRY_MESSAGES[fault], str(first.error)):
        problems.append(f"the error does not say what happened ({RETRY_MESSAGES[fault]!r}): {first.error}")
    assert second is not None
    if second.error is not None:
        return None, [*problems, f"the next try failed too: {describe(second.error)}"]
    return second.outputs, problems


CASES = [
    pytest.param(action, fault, MATRIX[fault][index], id=f"{action}-{fault.replace(' ', '-')}")
    for index, action in enumerate(ACTIONS)
    for fault in FAULTS
    if MATRIX[fault][index] != "n/a"
]


@pytest.mark.parametrize(("action_name", "fault", "expected"), CASES)
def test_fault_once_leaves_no_duplicate_loses_nothing_and_ends_as_the_matrix_says(
    sandbox_env: Sandbox, quick_clients: None, action_name: str, fault: str, expected: str
) -> None:
    action = ACTION_CLASSES[action_name](sandbox_env, fault)
    action.prepare()
    sandbox_env.control.clear_journal()
    rule = sandbox_env.control.add_fault(
        service=action.service, method=action.method, path=action.path, times=1, **FAULTS[fault]
    )

    first = attempt(action, try_number=1)
    second = attempt(action, try_number=2) if first.error is not None and expected == "retry" else None
    hit = journaled(sandbox_env, action.service, rule)
    outputs, problems = judge(expected, fault, first, second)
    tally = action.tally(outputs)
    problems = [*problems, *tally.problems]
    if not hit:
        problems.append("the fault never hit the action's request")
    if tally.duplicates:
        problems.append(f"{tally.duplicates} duplicate(s) in the sandbox")
    if tally.lost:
        problems.append(f"{tally.lost} lost (not done and not reported)")
    FIGURES.append(
        {
            "action": action_name,
            "fault": fault,
            "expected": expected,
            "duplicates": tally.duplicates,
            "lost": tally.lost,
            "replays": tally.replays,
            "problems": problems,
        }
    )

    assert problems == []


@pytest.mark.parametrize("case", LASTING)
def test_a_lasting_fault_fails_the_send_naming_each_recipient_and_the_next_try_sends_each_once(
    sandbox_env: Sandbox, quick_clients: None, case: str
) -> None:
    rules, code, message, held = LASTING[case]
    for rule in rules:
        sandbox_env.control.add_fault(service="twilio", **rule)
    action = Send(sandbox_env, case)
    first_try = context("send", try_number=1)

    ledger = MemoryStore()
    first = attempt_with(lambda: send_operator("error", ledger).execute(first_try))
    posted(sandbox_env, len(NUMBERS))  # a slow answer is journaled when it ends
    held_after_first = {number: len(messages) for number, messages in action.stored().items()}
    sandbox_env.control.clear_faults()
    second = attempt_with(lambda: send_operator("error", ledger).execute(context("send", try_number=2)))
    after = action.stored()

    problems = []
    error, pushed = first.error, first_try["ti"].pushed
    if not isinstance(error, QconnError) or isinstance(error, AirflowFailException):
        problems.append(f"the try did not fail with a retryable QconnError: {first.error or first.outputs}")
    elif not all(f"{number}: {code}" in str(error) for number in NUMBERS):
        problems.append(f"the error does not name each recipient with {code!r}: {error}")
    if pushed.get("result") != "Error" or sorted(pushed.get("failed_recipients", [])) != NUMBERS:
        problems.append(f"outputs of the failed try: {pushed}")
    elif {e["code"] for e in pushed["errors"]} != {code}:
        problems.append(f"error codes of the failed try: {pushed['errors']}")
    elif not all(re.search(message, e["message"] or "") for e in pushed["errors"]):
        problems.append(f"error messages that do not say what happened ({message!r}): {pushed['errors']}")
    if held_after_first != dict.fromkeys(NUMBERS, held):
        problems.append(f"messages per recipient after the failed try: {held_after_first}, expected {held}")
    if second.error is not None:
        problems.append(f"the next try failed: {describe(second.error)}")
    else:
        problems.extend(Send(sandbox_env, case).tally(second.outputs).problems)
    duplicates = sum(max(0, len(messages) - 1) for messages in after.values())
    lost = sum(1 for number in NUMBERS if not after[number])
    if duplicates or lost:
        problems.append(f"{duplicates} duplicate(s) and {lost} recipient(s) lost in the sandbox")
    FIGURES.append(
        {
            "action": "send (lasting fault)",
            "fault": case,
            "expected": code,
            "duplicates": duplicates,
            "lost": lost,
            "replays": 0,
            "problems": problems,
        }
    )
    assert problems == []

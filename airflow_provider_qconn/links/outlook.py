"""Links from Outlook operator task instances to the meeting in Outlook on the web and to its Teams meeting.

Airflow 3 resolves extra links on the worker right after the task ran, from the operator that ran it; the
operators keep the last outputs for that (nothing is requested again).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator


def _output(operator: BaseOperator, key: str) -> str:
    outputs: dict[str, Any] = getattr(operator, "last_outputs", None) or {}
    return str(outputs.get(key) or "")


class OutlookEventLink(BaseOperatorLink):
    """The meeting in Outlook on the web (Graph's ``webLink``)."""

    name = "Outlook event"

    def get_link(self, operator: BaseOperator, *, ti_key: Any) -> str:
        return _output(operator, "web_link")


class TeamsMeetingLink(BaseOperatorLink):
    """The meeting's Microsoft Teams join URL (empty when it has none)."""

    name = "Teams meeting"

    def get_link(self, operator: BaseOperator, *, ti_key: Any) -> str:
        return _output(operator, "join_url")

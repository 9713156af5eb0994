"""What WhatsApp message statuses mean for a wait on their delivery: shared by the sensor and its trigger.

Kept apart from the trigger module, which imports Airflow's trigger machinery, so that parsing a DAG with the
sensor does not.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

#: Statuses after which a message will not be delivered.
FAILED_STATUSES = ("failed", "undelivered", "canceled")


def delivery_verdict(details: Sequence[dict[str, Any] | None], targets: Sequence[str]) -> str | None:
    """``"done"`` when every message reached a target status, ``"failed"`` when one never will, else None."""
    statuses = [detail and detail["status"] for detail in details]
    if any(status in FAILED_STATUSES for status in statuses):
        return "failed"
    if all(status in targets for status in statuses):
        return "done"
    return None


def lookup_errors(message_ids: Sequence[str], lookups: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The lookups that failed for good (an unknown SID, refused credentials); transient ones are asked again."""
    return [
        {"message_id": sid, "code": lookups[sid].code, "message": lookups[sid].message}
        for sid in message_ids
        if lookups[sid].details is None and not lookups[sid].transient
    ]

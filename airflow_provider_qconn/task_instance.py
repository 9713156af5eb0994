"""How a task instance is identified: one rule for every place that must recognise the same task across tries.

Graph's ``transactionId`` (a meeting is created once) and the WhatsApp send ledger's key (a message is sent
once) both derive from it, so a retry, a cleared task and a task killed mid-way all find the same identity.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TaskInstanceIdentity:
    """The parts of a task instance that stay the same across all its tries (and across clears)."""

    dag_id: str
    task_id: str
    run_id: str
    map_index: int
    #: When the DAG run was due; it tells a run apart from a deleted one re-created under the same run id.
    run_after: dt.datetime | None = None

    @classmethod
    def of(cls, context: Any) -> TaskInstanceIdentity:
        """The identity of the task instance a task context belongs to."""
        ti = context["ti"]
        dag_run = context.get("dag_run")
        run_after = getattr(dag_run, "run_after", None) or getattr(dag_run, "logical_date", None)
        return cls(str(ti.dag_id), str(ti.task_id), str(ti.run_id), int(ti.map_index), run_after)

    @property
    def text(self) -> str:
        """DAG, task, run and map index joined by a separator no id can hold (the input of Graph's transactionId)."""
        return "\x1f".join(str(part) for part in (self.dag_id, self.task_id, self.run_id, self.map_index))

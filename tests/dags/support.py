"""Helpers shared by the DAG tests: reading what a ``dag.test()`` run pushed."""

from __future__ import annotations

from typing import Any


def xcom(run: Any, task_id: str, key: str = "return_value", map_index: int = -1) -> Any:
    """The XCom ``key`` that ``task_id`` (at ``map_index``) pushed in ``run``."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = (
            session.query(XComModel)
            .filter_by(dag_id=run.dag_id, run_id=run.run_id, task_id=task_id, key=key, map_index=map_index)
            .one()
        )
        return XComModel.deserialize_value(row)

"""The WhatsApp operators render their templated fields exactly as Airflow does, without compiling plain strings."""

from __future__ import annotations

import datetime as dt

import jinja2
import pytest
from airflow.sdk import DAG, BaseOperator
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_qconn.operators.whatsapp import GetMessageStatusOperator, SendWhatsAppTemplateOperator

CONTEXT = {"ds": "2030-03-04", "params": {"name": "Ana"}}


def send_operator(dag: DAG | None = None) -> SendWhatsAppTemplateOperator:
    return SendWhatsAppTemplateOperator(
        task_id="send", recipients=["+59899100001"], template_sid="HX" + "0" * 32, dag=dag
    )


def airflow_rendering(operator: BaseOperator, value: object) -> object:
    """What Airflow's own rendering gives for ``value`` (BaseOperator's, bypassing the operator's)."""
    return BaseOperator.render_template(operator, value, CONTEXT, operator.get_template_env())


def rendering(operator: BaseOperator, value: object) -> object:
    """The operator's rendering, with the template environment Airflow passes it."""
    return operator.render_template(value, CONTEXT, operator.get_template_env())


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.recursive(
        st.text(alphabet=st.sampled_from(list("+0123 ab{}%#\r\n\t")), max_size=12),
        lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=3), children, max_size=4),
        max_leaves=12,
    )
)
def test_any_value_renders_as_airflow_renders_it(value):
    operator = send_operator()
    try:
        expected = airflow_rendering(operator, value)
    except jinja2.TemplateError:
        with pytest.raises(jinja2.TemplateError):
            rendering(operator, value)
        return
    assert rendering(operator, value) == expected


def test_a_thousand_plain_numbers_are_not_compiled_and_markup_still_renders(monkeypatch):
    compiled: list[str] = []
    original = jinja2.Environment.from_string

    def counting(self, source, *args, **kwargs):
        compiled.append(source)
        return original(self, source, *args, **kwargs)

    monkeypatch.setattr(jinja2.Environment, "from_string", counting)
    numbers = [f"+598991{index:05d}" for index in range(1000)]
    variables = {number: {"1": f"customer {index}"} for index, number in enumerate(numbers)}
    operator = send_operator()
    assert rendering(operator, numbers) == numbers
    assert rendering(operator, variables) == variables
    assert compiled == []
    assert rendering(operator, {"2": "{{ ds }} at 10:00", "1": "{{ params.name }}"}) == {
        "2": "2030-03-04 at 10:00",
        "1": "Ana",
    }
    assert compiled == ["{{ ds }} at 10:00", "{{ params.name }}"]
    status = GetMessageStatusOperator(task_id="status", message_ids=["SM" + "0" * 32])
    assert rendering(status, ["SM" + "1" * 32]) == ["SM" + "1" * 32]
    assert len(compiled) == 2


def test_native_rendering_is_left_to_airflow():
    with DAG("native", schedule=None, start_date=dt.datetime(2030, 1, 1), render_template_as_native_obj=True) as dag:
        operator = send_operator(dag)
    assert rendering(operator, "12") == airflow_rendering(operator, "12") == 12


@pytest.mark.parametrize(
    ("syntax", "value"),
    [
        ({"variable_start_string": "[[", "variable_end_string": "]]"}, "[[ ds ]]"),
        ({"line_comment_prefix": "##"}, "+59899100001 ## a note"),
        ({"newline_sequence": "\r\n"}, "a\nb"),
    ],
)
def test_a_dag_with_its_own_jinja_syntax_renders_as_airflow_renders_it(syntax, value):
    with DAG("custom", schedule=None, start_date=dt.datetime(2030, 1, 1), jinja_environment_kwargs=syntax) as dag:
        operator = send_operator(dag)
    assert rendering(operator, [value]) == airflow_rendering(operator, [value]) != [value]

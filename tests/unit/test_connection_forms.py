"""The connection forms as Airflow's UI receives them (the API server's hook metadata), for both types."""

from __future__ import annotations

import pytest

from airflow_provider_qconn.get_provider_info import MSGRAPH_CONN_FIELDS, TWILIO_CONN_FIELDS


@pytest.fixture(scope="module")
def forms() -> dict[str, dict]:
    from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService

    return {
        meta.connection_type: meta.model_dump(mode="json")
        for meta in HookMetaService.hook_meta_data()
        if meta.connection_type.startswith("qconn_")
    }


def test_both_connection_types_have_a_form(forms):
    assert set(forms) == {"qconn_msgraph", "qconn_twilio"}
    assert forms["qconn_msgraph"]["hook_name"] == "Outlook (Microsoft Graph)"
    assert forms["qconn_twilio"]["hook_name"] == "WhatsApp (Twilio)"


@pytest.mark.parametrize(
    ("conn_type", "login", "password"),
    [("qconn_msgraph", "Application (client) ID", "Client secret"), ("qconn_twilio", "Account SID", "Auth Token")],
)
def test_standard_fields_are_relabelled_and_the_unused_hidden(forms, conn_type, login, password):
    standard = forms[conn_type]["standard_fields"]
    assert standard["login"]["title"] == login and standard["password"]["title"] == password
    assert all(standard[name]["hidden"] for name in ("host", "port", "url_schema"))


@pytest.mark.parametrize(
    ("conn_type", "declared", "secret"),
    [
        ("qconn_msgraph", MSGRAPH_CONN_FIELDS, {"refresh_token", "certificate_data"}),
        ("qconn_twilio", TWILIO_CONN_FIELDS, set()),
    ],
)
def test_every_extra_field_is_on_the_form_and_secrets_are_masked(forms, conn_type, declared, secret):
    extra = forms[conn_type]["extra_fields"]
    assert set(extra) == set(declared)
    assert {name for name, field in extra.items() if field["schema"].get("format") == "password"} == secret
    assert all(field["description"] for field in extra.values())


def test_twilio_concurrency_is_a_positive_integer_field(forms):
    schema = forms["qconn_twilio"]["extra_fields"]["max_concurrency"]["schema"]
    assert schema["type"] == ["integer", "null"] and schema["minimum"] == 1

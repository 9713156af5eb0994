"""Both connection forms in a real browser: added through Airflow's connections page, saved, and tested with
the Test button against the sandbox, then tested again with a wrong secret. Screenshots go to the test's
tmp_path (``--basetemp`` keeps them where you want them)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("selenium")

from airflow_provider_qconn.get_provider_info import MSGRAPH_CONN_FIELDS, TWILIO_CONN_FIELDS
from airflow_provider_qconn.sandbox import seed
from tests.ui.connections_page import ConnectionsPage


@pytest.fixture
def page(browser, api_server, sandbox, tmp_path) -> ConnectionsPage:
    return ConnectionsPage(browser, api_server.url, tmp_path).open()


def _labels(fields: dict) -> dict[str, str]:
    return {name: field["label"] for name, field in fields.items()}


def test_an_outlook_app_only_connection_made_in_the_form_tests_ok_and_a_wrong_client_secret_fails_clearly(
    page, api_server, sandbox
):
    page.add("ui_outlook", "Outlook (Microsoft Graph)")
    assert page.standard_fields() == {
        "description": "Description",
        "login": "Application (client) ID",
        "password": "Client secret",
    }
    assert page.placeholder("login") == "00000000-0000-0000-0000-000000000000"
    page.fill("login", seed.CLIENT_ID)
    page.fill("password", seed.CLIENT_SECRET)
    page.open_extra_fields()
    shown = page.extra_fields()
    assert {name: label for name, (label, _) in shown.items()} == _labels(MSGRAPH_CONN_FIELDS)
    assert all(help_text == MSGRAPH_CONN_FIELDS[name]["description"] for name, (_, help_text) in shown.items())
    offered = page.choose_extra("auth_type", "client_secret: app-only")
    assert offered == list(MSGRAPH_CONN_FIELDS["auth_type"]["schema"]["values_display"].values())
    page.fill_extra("tenant_id", seed.TENANT_ID)
    page.fill_extra("user_id", seed.ORGANIZER)
    page.fill_extra("base_url", sandbox.graph_base_url)
    page.fill_extra("authority", sandbox.url)
    page.screenshot("outlook-1-form")
    page.save()

    stored = api_server.connection("ui_outlook")
    assert stored["conn_type"] == "qconn_msgraph" and stored["login"] == seed.CLIENT_ID
    extra = {key: value for key, value in json.loads(stored["extra"]).items() if value is not None}
    assert extra == {
        "auth_type": "client_secret",
        "tenant_id": seed.TENANT_ID,
        "user_id": seed.ORGANIZER,
        "base_url": sandbox.graph_base_url,
        "authority": sandbox.url,
    }

    ok = page.test("ui_outlook")
    page.screenshot("outlook-2-test-ok")
    assert (ok.kind, ok.description) == ("success", f"Connected: the calendar of {seed.ORGANIZER} can be read.")
    assert [entry["path"] for entry in sandbox.control.journal(service="graph")] == [
        f"/v1.0/users/{seed.ORGANIZER}/events"
    ]

    page.edit("ui_outlook")
    page.fill("password", "not-the-client-secret")
    page.save()
    refused = page.test("ui_outlook")
    page.screenshot("outlook-3-test-wrong-secret")
    assert refused.kind == "error"
    assert "AADSTS7000215" in refused.description and "client secret" in refused.description.lower()
    assert "not-the-client-secret" not in refused.description


def test_a_whatsapp_connection_made_in_the_form_tests_ok_and_a_wrong_auth_token_fails_clearly(
    page, api_server, sandbox
):
    page.add("ui_whatsapp", "WhatsApp (Twilio)")
    assert page.standard_fields() == {"description": "Description", "login": "Account SID", "password": "Auth Token"}
    page.fill("login", seed.ACCOUNT_SID)
    page.fill("password", seed.AUTH_TOKEN)
    page.open_extra_fields()
    shown = page.extra_fields()
    assert {name: label for name, (label, _) in shown.items()} == _labels(TWILIO_CONN_FIELDS)
    page.fill_extra("from_number", "+1 415 523 8886")
    page.fill_extra("base_url", sandbox.url)
    page.fill_extra("max_concurrency", "4")
    page.screenshot("whatsapp-1-form")
    page.save()

    extra = json.loads(api_server.connection("ui_whatsapp")["extra"])
    assert {key: value for key, value in extra.items() if value is not None} == {
        "from_number": "+1 415 523 8886",
        "base_url": sandbox.url,
        "max_concurrency": 4,
    }

    ok = page.test("ui_whatsapp")
    page.screenshot("whatsapp-2-test-ok")
    assert (ok.kind, ok.description) == (
        "success",
        f"Connected to Twilio account {seed.ACCOUNT_SID} (sender: whatsapp:{seed.WHATSAPP_SENDER})",
    )

    page.edit("ui_whatsapp")
    page.fill("password", "0" * 32)
    page.save()
    refused = page.test("ui_whatsapp")
    page.screenshot("whatsapp-3-test-wrong-token")
    assert refused.kind == "error"
    assert "20003" in refused.description and "0" * 32 not in refused.description

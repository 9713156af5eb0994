"""The sandbox's control plane (faults, journal, clock, seed, reset) and its identity endpoint, in process."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from airflow_provider_qconn.sandbox import seed
from airflow_provider_qconn.sandbox.app import create_app
from airflow_provider_qconn.sandbox.control import DroppedConnection, redact_form
from airflow_provider_qconn.sandbox.state import State
from tests.unit.sandbox_client import TestClient

AUTH = (seed.ACCOUNT_SID, seed.AUTH_TOKEN)
CONTENT = f"/v1/Content/{seed.TEMPLATE_REMINDER}"


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(create_app()) as test_client:
        yield test_client


def refresh(client: TestClient, token: str, tenant: str = "common", **extra) -> dict:
    return client.post(
        f"/{tenant}/oauth2/v2.0/token",
        data={
            "grant_type": "refresh_token",
            "client_id": seed.CLIENT_ID,
            "refresh_token": token,
            "scope": "Calendars.ReadWrite offline_access openid profile",
            **extra,
        },
    ).json()


def test_fault_for_the_next_n_requests_uses_the_provider_error_shape(client):
    client.post("/_sandbox/faults", json={"service": "twilio", "status": 429, "retry_after": 2, "times": 2})
    first, second, third = (client.get(CONTENT, auth=AUTH) for _ in range(3))
    assert (first.status_code, second.status_code, third.status_code) == (429, 429, 200)
    assert first.json()["code"] == 20429 and first.headers["retry-after"] == "2"
    [rule] = client.get("/_sandbox/faults").json()["faults"]
    assert rule["times"] == 0 and rule["hits"] == 2


def test_graph_fault_matches_method_and_path(client):
    client.post("/_sandbox/faults", json={"service": "graph", "method": "POST", "path": "/events$", "status": 503})
    response = client.post("/v1.0/me/events", json={})
    assert response.status_code == 503 and response.json()["error"]["code"] == "ServiceNotAvailable"
    assert client.get("/v1.0/me/events").status_code == 401  # not matched: a GET


def test_after_phase_fault_applies_the_request_then_fails(client):
    client.post("/_sandbox/faults", json={"service": "twilio", "method": "POST", "status": 500, "phase": "after"})
    response = client.post(
        f"/2010-04-01/Accounts/{seed.ACCOUNT_SID}/Messages.json",
        auth=AUTH,
        data={"To": "whatsapp:+59899123456", "From": f"whatsapp:{seed.WHATSAPP_SENDER}", "Body": "hi"},
    )
    assert response.status_code == 500
    assert len(client.get("/_sandbox/twilio/messages").json()["messages"]) == 1


def test_dropped_connection_fault_cuts_the_response(client):
    client.post("/_sandbox/faults", json={"service": "twilio", "drop": True, "times": 1})
    with pytest.raises(DroppedConnection):
        client.get(CONTENT, auth=AUTH)
    assert client.get(CONTENT, auth=AUTH).status_code == 200


@pytest.mark.parametrize("kind", ["truncated", "not_json"])
def test_spoiled_body_fault_keeps_the_effect_and_the_2xx_but_not_a_readable_answer(client, kind):
    client.post("/_sandbox/faults", json={"service": "twilio", "method": "POST", "body": kind, "times": 1})
    messages = f"/2010-04-01/Accounts/{seed.ACCOUNT_SID}/Messages.json"
    form = {"To": "whatsapp:+59899123456", "From": f"whatsapp:{seed.WHATSAPP_SENDER}", "Body": "hi"}

    spoiled, intact = (client.post(messages, auth=AUTH, data=form) for _ in range(2))

    assert spoiled.status_code == intact.status_code == 201
    assert int(spoiled.headers["content-length"]) == len(spoiled.content)
    with pytest.raises(ValueError):
        spoiled.json()
    if kind == "truncated":
        assert 0 < len(spoiled.content) < len(intact.content)
        assert intact.text.startswith(spoiled.text[:10])
    else:
        assert spoiled.headers["content-type"].startswith("text/html")
        assert spoiled.text.startswith("<html>")
    assert len(client.get("/_sandbox/twilio/messages").json()["messages"]) == 2  # both took effect
    first, second = client.get("/_sandbox/journal").json()["entries"]
    assert first["response_json"] is None and first["fault"] is not None and second["fault"] is None


def test_spoiled_body_fault_passes_errors_unchanged(client):
    client.post("/_sandbox/faults", json={"service": "twilio", "body": "not_json", "times": 1})
    response = client.get(f"/v1/Content/HX{'0' * 32}", auth=AUTH)
    assert response.status_code == 404 and response.json()["code"] == 20404


def test_ratio_faults_hit_a_share_of_requests(client):
    client.post("/_sandbox/faults", json={"service": "twilio", "status": 503, "ratio": 0.5})
    statuses = [client.get(CONTENT, auth=AUTH).status_code for _ in range(40)]
    assert 5 < statuses.count(503) < 35


def test_bad_fault_rules_are_refused(client):
    assert client.post("/_sandbox/faults", json={"stauts": 429}).status_code == 400
    assert client.post("/_sandbox/faults", json={"body": "empty"}).status_code == 400


def test_journal_records_requests_with_secrets_redacted(client):
    refresh(client, seed.REFRESH_TOKEN_ORGANIZER)
    client.get(CONTENT, auth=AUTH)
    client.get("/_sandbox/health")
    token_call, content_call = client.get("/_sandbox/journal").json()["entries"]
    assert token_call["service"] == "identity" and token_call["status"] == 200
    assert seed.REFRESH_TOKEN_ORGANIZER not in json.dumps(token_call)
    assert token_call["response_json"]["access_token"] == "***"
    assert content_call["headers"]["authorization"] == "Basic ***"
    assert content_call["response_json"]["sid"] == seed.TEMPLATE_REMINDER
    assert client.get("/_sandbox/journal", params={"service": "twilio"}).json()["entries"] == [content_call]
    client.delete("/_sandbox/journal")
    assert client.get("/_sandbox/journal").json()["entries"] == []


def test_redact_form_keeps_other_fields():
    assert redact_form("client_secret=s3cret&scope=a+b") == "client_secret=%2A%2A%2A&scope=a+b"


def test_redact_form_finds_a_secret_field_whose_name_is_percent_encoded_and_leaves_other_bodies_as_they_are():
    assert "s3cret" not in redact_form("client%5Fsecret=s3cret&scope=a")
    assert "d3vice" not in redact_form("grant_type=device&device_code=d3vice")
    body = "To=whatsapp%3A%2B59899100001&ContentVariables=%7B%221%22%3A%22Ana%22%7D"
    assert redact_form(body) is body


def test_reset_forgets_and_reseeds(client):
    client.post("/_sandbox/seed", json={"mailboxes": [{"id": "m-1", "upn": "new@contoso.example"}]})
    client.post("/_sandbox/faults", json={"status": 500})
    client.post("/_sandbox/reset")
    assert client.get("/_sandbox/faults").json()["faults"] == []
    assert client.get("/_sandbox/graph/mailboxes/new@contoso.example/events").status_code == 404
    assert client.get(f"/_sandbox/graph/mailboxes/{seed.ORGANIZER}/events").status_code == 200


def test_bad_seed_is_refused(client):
    assert client.post("/_sandbox/seed", json={"mailbox": []}).status_code == 400


def test_refresh_tokens_rotate_and_old_ones_stay_valid_until_expiry(client):
    client.post("/_sandbox/settings", json={"refresh_token_lifetime": 100})
    first = refresh(client, seed.REFRESH_TOKEN_ORGANIZER)
    second = refresh(client, first["refresh_token"])
    assert second["refresh_token"] != first["refresh_token"]
    assert "access_token" in refresh(client, first["refresh_token"])
    client.post("/_sandbox/clock", json={"advance": 101})
    expired = refresh(client, first["refresh_token"])
    assert expired["error"] == "invalid_grant" and expired["error_codes"] == [700082]
    valid = client.get("/_sandbox/identity/refresh_tokens", params={"mailbox": seed.ORGANIZER}).json()
    assert [t["token"] for t in valid["refresh_tokens"]] == [seed.REFRESH_TOKEN_ORGANIZER]


def test_delegated_response_carries_what_msal_reads(client):
    body = refresh(client, seed.REFRESH_TOKEN_ORGANIZER, client_info="1")
    assert {"access_token", "refresh_token", "id_token", "client_info", "expires_in", "scope"} <= set(body)
    assert body["scope"].split()[0] == "Calendars.ReadWrite"


@pytest.mark.parametrize(
    ("tenant", "token", "code"),
    [
        ("organizations", seed.REFRESH_TOKEN_PERSONAL, 50020),
        ("consumers", seed.REFRESH_TOKEN_ORGANIZER, 50020),
        ("common", "sbx-rt-unknown", 9002313),
    ],
)
def test_refresh_refusals(client, tenant, token, code):
    body = refresh(client, token, tenant=tenant)
    assert body["error"] == "invalid_grant" and body["error_codes"] == [code]
    assert body["error_description"].startswith(f"AADSTS{code}:")


def test_client_credentials_need_a_real_tenant_a_secret_and_default_scope(client):
    def grant(tenant: str, **fields) -> dict:
        data = {"grant_type": "client_credentials", "client_id": seed.CLIENT_ID, **fields}
        return client.post(f"/{tenant}/oauth2/v2.0/token", data=data).json()

    scope = {"scope": "https://graph.microsoft.com/.default"}
    assert grant("common", client_secret=seed.CLIENT_SECRET, **scope)["error_codes"] == [50059]
    assert grant(seed.TENANT_ID, client_secret="wrong", **scope)["error_codes"] == [7000215]
    assert grant(seed.TENANT_ID, **scope)["error_codes"] == [7000218]
    assert grant(seed.TENANT_ID, client_secret=seed.CLIENT_SECRET, scope="Calendars.ReadWrite")["error_codes"] == [
        1002012
    ]
    assert "access_token" in grant(seed.TENANT_DOMAIN, client_secret=seed.CLIENT_SECRET, **scope)
    assert grant("nowhere.example", client_secret=seed.CLIENT_SECRET, **scope)["error_codes"] == [90002]


def test_state_in_a_file_survives_a_restart(tmp_path):
    path = tmp_path / "state.db"
    with TestClient(create_app(State(str(path)))) as first:
        message = first.post(
            f"/2010-04-01/Accounts/{seed.ACCOUNT_SID}/Messages.json",
            auth=AUTH,
            data={"To": "whatsapp:+59899123456", "From": f"whatsapp:{seed.WHATSAPP_SENDER}", "Body": "hi"},
        ).json()
    with TestClient(create_app(State(str(path)))) as second:
        sids = [m["sid"] for m in second.get("/_sandbox/twilio/messages").json()["messages"]]
    assert sids == [message["sid"]]

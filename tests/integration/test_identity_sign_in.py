"""MSAL's own sign-in flows, unmodified, against the sandbox: the device-code flow and the authorization-code flow
with PKCE. The sign-ins are answered through the control API, as a person would answer them in a browser."""

from __future__ import annotations

import ssl
import urllib.parse
import warnings
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from airflow_provider_qconn.sandbox import seed
from airflow_provider_qconn.sandbox.server import Sandbox

SCOPES = ["Calendars.ReadWrite"]
REDIRECT_URI = "http://localhost:53117"


@pytest.fixture
def fast_polling(sandbox: Sandbox) -> None:
    sandbox.control.settings(device_code_interval=1)


def start_code_flow(app: Any) -> dict[str, Any]:
    """MSAL's authorization-code flow for a loopback redirect, answered in the query string (MSAL recommends
    form_post, which is for web apps that can receive a POST; a desktop's loopback listener reads the query)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "response_mode='form_post' is recommended")
        return app.initiate_auth_code_flow(SCOPES, redirect_uri=REDIRECT_URI, response_mode="query")


def poll_once(app: Any, flow: dict[str, Any]) -> dict[str, Any]:
    """One poll of the token endpoint (MSAL's loop, told to stop after its first answer)."""
    flow["latest_attempt_at"] = 0  # no "attempted too soon" warning: this test decides when to poll
    return app.client.obtain_token_by_device_flow(flow, exit_condition=lambda flow: True, data={"client_info": "1"})


def test_the_device_code_flow_is_pending_until_approved_then_signs_in_the_chosen_mailbox(
    sandbox: Sandbox, msal_app: Callable[[str], Any], fast_polling: None
) -> None:
    app = msal_app("common")
    flow = app.initiate_device_flow(scopes=SCOPES)
    assert flow["verification_uri"] == f"{sandbox.url}/devicelogin"
    assert flow["user_code"] in flow["message"] and flow["interval"] == 1
    assert [c["user_code"] for c in sandbox.control.sign_ins()["device_codes"]] == [flow["user_code"]]

    assert poll_once(app, flow)["error"] == "authorization_pending"
    sandbox.control.answer_device_code(flow["user_code"], seed.ORGANIZER)
    result = app.acquire_token_by_device_flow(flow)

    assert result["access_token"].startswith("sbx-at-") and result["refresh_token"].startswith("sbx-rt-")
    claims = result["id_token_claims"]
    assert (claims["preferred_username"], claims["name"], claims["tid"]) == (
        seed.ORGANIZER,
        "Adele Vance",
        seed.TENANT_ID,
    )
    assert [account["username"] for account in app.get_accounts()] == [seed.ORGANIZER]
    renewed = app.acquire_token_by_refresh_token(result["refresh_token"], scopes=SCOPES)
    assert "access_token" in renewed  # the sign-in's refresh token is one the hook can use
    assert poll_once(app, flow)["error"] == "bad_verification_code"  # a device code signs in once


def test_a_declined_an_expired_and_an_unknown_device_code_end_the_polling_with_microsofts_errors(
    sandbox: Sandbox, msal_app: Callable[[str], Any], fast_polling: None
) -> None:
    app = msal_app("organizations")
    declined = app.initiate_device_flow(scopes=SCOPES)
    sandbox.control.answer_device_code(declined["user_code"], approve=False)
    assert app.acquire_token_by_device_flow(declined)["error"] == "authorization_declined"

    expired = app.initiate_device_flow(scopes=SCOPES)
    sandbox.control.advance_clock(901)
    assert app.acquire_token_by_device_flow(expired)["error"] == "expired_token"

    unknown = {**app.initiate_device_flow(scopes=SCOPES), "device_code": "not-a-device-code"}
    assert app.acquire_token_by_device_flow(unknown)["error"] == "bad_verification_code"


def test_a_personal_account_cannot_approve_a_sign_in_on_the_organizations_authority(
    sandbox: Sandbox, msal_app: Callable[[str], Any]
) -> None:
    flow = msal_app("organizations").initiate_device_flow(scopes=SCOPES)
    with pytest.raises(httpx.HTTPStatusError) as refused:
        sandbox.control.answer_device_code(flow["user_code"], seed.PERSONAL)
    assert "AADSTS50020" in refused.value.response.json()["error"]


def open_in_browser(sandbox: Sandbox, ca: str, url: str) -> str:
    """What a browser would do with an authorize URL: open the page (the sandbox keeps the request pending);
    returns the pending request's id."""
    page = httpx.get(url, verify=ssl.create_default_context(cafile=ca))
    assert page.status_code == 200, page.text
    [pending] = sandbox.control.sign_ins()["authorizations"]
    assert pending["id"] in page.text
    return pending["id"]


def test_the_authorization_code_flow_with_pkce_signs_in_through_a_loopback_redirect(
    sandbox: Sandbox, ca: str, msal_app: Callable[[str], Any]
) -> None:
    app = msal_app("consumers")
    flow = start_code_flow(app)
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(flow["auth_uri"]).query)
    assert query["code_challenge_method"] == ["S256"] and "offline_access" in query["scope"][0]

    request_id = open_in_browser(sandbox, ca, flow["auth_uri"])
    redirect = urllib.parse.urlsplit(sandbox.control.answer_authorization(request_id, seed.PERSONAL))
    assert f"{redirect.scheme}://{redirect.netloc}" == REDIRECT_URI
    response = dict(urllib.parse.parse_qsl(redirect.query))
    result = app.acquire_token_by_auth_code_flow(flow, response)

    assert result["refresh_token"].startswith("sbx-rt-")
    assert result["id_token_claims"]["preferred_username"] == seed.PERSONAL
    assert result["id_token_claims"]["tid"] == seed.CONSUMER_TENANT_ID
    again = httpx.post(
        f"{sandbox.authority}/consumers/oauth2/v2.0/token",
        data={
            "grant_type": "authorization_code",
            "client_id": seed.CLIENT_ID,
            "code": response["code"],
            "redirect_uri": REDIRECT_URI,
            "code_verifier": flow["code_verifier"],
        },
        verify=ssl.create_default_context(cafile=ca),
    )
    assert again.json()["error_codes"] == [54005]  # a code is redeemed once


def test_a_code_redeemed_without_its_pkce_verifier_is_refused(
    sandbox: Sandbox, ca: str, msal_app: Callable[[str], Any]
) -> None:
    app = msal_app("common")
    flow = start_code_flow(app)
    redirect = sandbox.control.answer_authorization(open_in_browser(sandbox, ca, flow["auth_uri"]), seed.ORGANIZER)
    flow["code_verifier"] = "a-verifier-that-does-not-match-the-challenge-of-this-sign-in-000"
    result = app.acquire_token_by_auth_code_flow(
        flow, dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(redirect).query))
    )
    assert result["error"] == "invalid_grant" and "AADSTS501481" in result["error_description"]


def test_a_declined_consent_comes_back_to_the_redirect_uri_as_access_denied(
    sandbox: Sandbox, ca: str, msal_app: Callable[[str], Any]
) -> None:
    app = msal_app("common")
    flow = start_code_flow(app)
    redirect = sandbox.control.answer_authorization(open_in_browser(sandbox, ca, flow["auth_uri"]), approve=False)
    result = app.acquire_token_by_auth_code_flow(
        flow, dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(redirect).query))
    )
    assert result["error"] == "access_denied"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"redirect_uri": "https://evil.example/callback"}, "AADSTS50011"),
        ({"redirect_uri": "http://127.0.0.1:53117"}, "AADSTS50011"),  # registered as localhost only
        ({"code_challenge": None, "code_challenge_method": None}, "Proof Key for Code Exchange"),
        ({"client_id": "00000000-0000-0000-0000-000000000000"}, "AADSTS700016"),
    ],
)
def test_the_authorize_page_refuses_an_unregistered_redirect_a_missing_pkce_or_an_unknown_app(
    sandbox: Sandbox, ca: str, msal_app: Callable[[str], Any], change: dict[str, Any], message: str
) -> None:
    flow = start_code_flow(msal_app("common"))
    url = urllib.parse.urlsplit(flow["auth_uri"])
    query = {**dict(urllib.parse.parse_qsl(url.query)), **change}
    page = httpx.get(
        url._replace(query=urllib.parse.urlencode({k: v for k, v in query.items() if v})).geturl(),
        verify=ssl.create_default_context(cafile=ca),
    )
    assert page.status_code == 400 and message in page.text
    assert sandbox.control.sign_ins()["authorizations"] == []


def test_a_revoked_sign_in_refuses_every_refresh_token_of_the_mailbox(
    sandbox: Sandbox, msal_app: Callable[[str], Any]
) -> None:
    app = msal_app("common")
    newer = app.acquire_token_by_refresh_token(seed.REFRESH_TOKEN_ORGANIZER, scopes=SCOPES)["refresh_token"]
    assert sandbox.control.revoke_sign_ins(seed.ORGANIZER) == 2
    for token in (seed.REFRESH_TOKEN_ORGANIZER, newer):
        refused = app.acquire_token_by_refresh_token(token, scopes=SCOPES)
        assert refused["error"] == "invalid_grant" and refused["error_codes"] == [50173]

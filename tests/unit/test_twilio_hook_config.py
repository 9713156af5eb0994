"""TwilioHook's reading of its connection: every mistake named before any request."""

from __future__ import annotations

import json

import pytest

from airflow_provider_qconn.exceptions import ConnectionConfigError
from airflow_provider_qconn.get_provider_info import TWILIO_CONN_FIELDS, get_provider_info
from airflow_provider_qconn.hooks.twilio import DEFAULT_MAX_CONCURRENCY, TwilioHook

SID = "AC" + "a" * 32


def connect(monkeypatch, login=SID, password="token", **extra) -> TwilioHook:
    conn = {"conn_type": "qconn_twilio", "login": login, "password": password, "extra": extra}
    monkeypatch.setenv("AIRFLOW_CONN_QCONN_TWILIO_DEFAULT", json.dumps(conn))
    return TwilioHook()


def test_defaults_and_normalised_sender(monkeypatch):
    config = connect(monkeypatch, from_number="+1 (415) 523-8886").config
    assert config.sender == "whatsapp:+14155238886"
    assert config.base_url is None and config.max_concurrency == DEFAULT_MAX_CONCURRENCY
    assert "token" not in repr(config)


def test_hook_arguments_override_extras(monkeypatch):
    conn = {"conn_type": "qconn_twilio", "login": SID, "password": "t", "extra": {"max_concurrency": 3}}
    monkeypatch.setenv("AIRFLOW_CONN_QCONN_TWILIO_DEFAULT", json.dumps(conn))
    config = TwilioHook(max_concurrency=7, from_number="+14155238886").config
    assert config.max_concurrency == 7 and config.from_number == "+14155238886"


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"login": "nope"}, "login must be the Account SID"),
        ({"password": ""}, "password must be the Auth Token"),
        ({"from_number": "not a number"}, "extra 'from_number'"),
        ({"messaging_service_sid": "MG1"}, "messaging_service_sid"),
        ({"base_url": "ftp://example.com"}, "extra 'base_url' must be an https URL"),
        ({"max_concurrency": "0"}, "extra 'max_concurrency' must be a whole number >= 1"),
    ],
)
def test_bad_connections_are_named(monkeypatch, fields, match):
    hook = connect(monkeypatch, **fields)
    with pytest.raises(ConnectionConfigError, match=match):
        hook.config  # noqa: B018


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1@evil.example", "http://localhost.evil.example", "http://example.com", "https://"]
)
def test_only_https_or_loopback_http_base_urls(monkeypatch, url):
    with pytest.raises(ConnectionConfigError, match="base_url"):
        connect(monkeypatch, base_url=url).config  # noqa: B018


@pytest.mark.parametrize("url", ["http://127.0.0.1:8765", "http://localhost:8765/", "https://proxy.example/twilio"])
def test_loopback_http_and_https_base_urls_are_accepted(monkeypatch, url):
    assert connect(monkeypatch, base_url=url).config.base_url == url.rstrip("/")


def test_a_sender_is_required_to_send(monkeypatch):
    with pytest.raises(ConnectionConfigError, match="from_number"):
        connect(monkeypatch).config.require_sender()


def test_conn_fields_are_exactly_the_extras_the_hook_reads():
    [twilio] = [c for c in get_provider_info()["connection-types"] if c["connection-type"] == "qconn_twilio"]
    assert twilio["hook-class-name"] == f"{TwilioHook.__module__}.{TwilioHook.__name__}"
    assert TwilioHook.conn_type == "qconn_twilio" and TwilioHook.default_conn_name == "qconn_twilio_default"
    assert set(TWILIO_CONN_FIELDS) == {"from_number", "messaging_service_sid", "base_url", "max_concurrency"}


def test_the_proxy_variables_apply_unless_no_proxy_exempts_the_host(monkeypatch):
    from airflow_provider_qconn.hooks.twilio import env_proxy

    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert env_proxy("https://api.twilio.com") == "http://proxy.example:3128"
    assert env_proxy("https://127.0.0.1:8765") is None

"""A client for the sandbox's control API (reset, seed, faults, clock, journal, stored state)."""

from __future__ import annotations

import ssl
from typing import Any

import httpx


class SandboxControl:
    """Drive a running sandbox from tests, benchmarks and the demo."""

    def __init__(self, url: str, verify: str | bool | ssl.SSLContext = True) -> None:
        if isinstance(verify, str):
            verify = ssl.create_default_context(cafile=verify)
        self._http = httpx.Client(base_url=f"{url}/_sandbox", verify=verify, timeout=30)

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._http.request(method, path, **kwargs)
        response.raise_for_status()
        return response.json()

    def health(self) -> bool:
        return self._call("GET", "/health")["status"] == "ok"

    def reset(self, defaults: bool = True) -> None:
        """Forget everything and re-seed the default cast (mailboxes, app, Twilio account, templates)."""
        self._call("POST", "/reset", json={"defaults": defaults})

    def seed(self, **sections: list[dict[str, Any]]) -> None:
        """Add mailboxes, apps, refresh_tokens, accounts, templates, numbers or events (a create-event body as
        Graph takes it, recurrence included, with ``mailbox``: the organizer's UPN)."""
        self._call("POST", "/seed", json=sections)

    def settings(self, **values: Any) -> dict[str, Any]:
        """Read, or change, settings: status_delays ({status: seconds after the create} for queued, sending,
        sent, delivered, read), twilio_max_concurrency, twilio_unsent_placement ("first" or "last"),
        twilio_service_deferred_errors (create error codes a Messaging Service turns into failed messages),
        graph_mailbox_concurrency, latency ({service: seconds}), access_token_lifetime, refresh_token_lifetime,
        graph_deleted_transaction_ids ("released" or "kept")."""
        return self._call("POST", "/settings", json=values) if values else self._call("GET", "/settings")

    def advance_clock(self, seconds: float) -> float:
        """Move the sandbox clock forward (message statuses, token expiry) and return its time."""
        return float(self._call("POST", "/clock", json={"advance": seconds})["now"])

    def add_fault(self, **rule: Any) -> int:
        """Add a fault rule (see ``airflow_provider_qconn.sandbox.control``) and return its id."""
        return int(self._call("POST", "/faults", json=rule)["id"])

    def faults(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/faults")["faults"])

    def clear_faults(self) -> None:
        self._call("DELETE", "/faults")

    def journal(self, service: str | None = None, since: int = 0) -> list[dict[str, Any]]:
        """Every API request so far (secrets redacted), oldest first."""
        params: dict[str, Any] = {"since": since}
        if service:
            params["service"] = service
        return list(self._call("GET", "/journal", params=params)["entries"])

    def clear_journal(self) -> None:
        self._call("DELETE", "/journal")

    def mailbox_events(self, mailbox: str) -> list[dict[str, Any]]:
        """The events stored in a mailbox, Deleted Items included (each with its ``folder``)."""
        return list(self._call("GET", f"/graph/mailboxes/{mailbox}/events")["events"])

    def messages(self) -> list[dict[str, Any]]:
        """The Twilio messages created so far, with their status now and the content sent."""
        return list(self._call("GET", "/twilio/messages")["messages"])

    def refresh_tokens(self, mailbox: str) -> list[dict[str, Any]]:
        """The refresh tokens of a mailbox still valid now, newest first."""
        return list(self._call("GET", "/identity/refresh_tokens", params={"mailbox": mailbox})["refresh_tokens"])

    def sign_ins(self) -> dict[str, list[dict[str, Any]]]:
        """The sign-ins waiting for an answer: ``device_codes`` (by ``user_code``) and ``authorizations`` (by
        ``id``, made when a browser opened the authorize URL), newest first."""
        return dict(self._call("GET", "/identity/sign_ins"))

    def answer_device_code(self, user_code: str, mailbox: str | None = None, approve: bool = True) -> str:
        """Approve a device-code sign-in as ``mailbox`` (a UPN of the seed), or decline it; the new status."""
        body = {"mailbox": mailbox, "approve": approve}
        return str(self._call("POST", f"/identity/device_codes/{user_code}", json=body)["status"])

    def answer_authorization(self, request_id: str, mailbox: str | None = None, approve: bool = True) -> str:
        """Approve an authorization request as ``mailbox``, or decline it; the URL a browser would be sent to next
        (the app's redirect URI with the code, or with ``error=access_denied``)."""
        body = {"mailbox": mailbox, "approve": approve}
        return str(self._call("POST", f"/identity/authorizations/{request_id}", json=body)["redirect"])

    def revoke_sign_ins(self, mailbox: str) -> int:
        """Revoke every refresh token of a mailbox (as a password reset does); how many were revoked."""
        return int(self._call("POST", "/identity/revoke", json={"mailbox": mailbox})["revoked"])

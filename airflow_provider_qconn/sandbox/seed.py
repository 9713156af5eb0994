"""The sandbox's seed data: who exists in it (mailboxes, an app registration, a Twilio account, templates).

The default seed is deterministic, so the connection values the demo prints keep working across restarts.
Tests and DAG authors add to it through the control API (``POST /_sandbox/seed``).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from airflow_provider_qconn.sandbox.state import State

#: The tenant of the sandbox's work mailboxes, and Microsoft's own tenant id for personal accounts.
TENANT_ID = "7c2e4f1a-3b5d-4e6f-9a8b-1c2d3e4f5a6b"
TENANT_DOMAIN = "contoso.example"
CONSUMER_TENANT_ID = "9188040d-6c67-4c5b-b112-36a304b66dad"

CLIENT_ID = "3f9a6c1e-2b4d-4f8a-9c7e-5d1b2a3c4e5f"
CLIENT_SECRET = "sbx8Q~sandbox-client-secret-not-for-production"

ORGANIZER = "adele@contoso.example"
COLLEAGUE = "megan@contoso.example"
PERSONAL = "sam.personal@outlook.example"

ACCOUNT_SID = "AC0a1b2c3d4e5f60718293a4b5c6d7e8f9"
AUTH_TOKEN = "5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e"
WHATSAPP_SENDER = "+14155238886"
MESSAGING_SERVICE_SID = "MG1f2e3d4c5b6a79880716253443526170"

TEMPLATE_REMINDER = "HX1a2b3c4d5e6f708192a3b4c5d6e7f809"
TEMPLATE_ORDER = "HX9f8e7d6c5b4a30291807f6e5d4c3b2a1"
TEMPLATE_MEETING_REMINDER = "HX5e6f708192a3b4c5d6e7f8091a2b3c4d"
TEMPLATE_INTERVIEW = "HX4c8e2a6f0b3d5e7a9c1f3b5d7e9a0c2e"
TEMPLATE_ALERT = "HX6a0d4b8e2f5c7a9d1e3b5f7a9c0e2d4f"

#: Recipients with a chosen fate, like Twilio's magic test numbers.
INVALID_NUMBER = "+15005550001"  # refused at create: 21211 (through a Messaging Service: accepted, then failed)
FAILED_NUMBER = "+15005550010"  # accepted, then failed without being sent: 63016 (outside the 24 h window)
UNDELIVERED_NUMBER = "+15005550011"  # accepted, then undelivered: 30008 (unknown error)
STUCK_NUMBER = "+15005550012"  # accepted and sent, never delivered

REFRESH_TOKEN_ORGANIZER = "sbx-rt-adele-0000000000000000000000000000"
REFRESH_TOKEN_PERSONAL = "sbx-rt-sam-00000000000000000000000000000000"

NINETY_DAYS = 90 * 24 * 3600.0


@dataclass(frozen=True)
class Certificate:
    """An app-only certificate: its PEM certificate, its PEM private key, and their concatenation."""

    cert_pem: str
    key_pem: str

    @property
    def combined_pem(self) -> str:
        return self.key_pem + self.cert_pem


def self_signed_certificate(common_name: str, days: int, password: str | None = None) -> Certificate:
    """A self-signed RSA certificate valid for ``days``, its private key encrypted with ``password`` if given."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    encryption = serialization.BestAvailableEncryption(password.encode()) if password else serialization.NoEncryption()
    return Certificate(
        cert_pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
        key_pem=key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption).decode(),
    )


@lru_cache(maxsize=1)
def app_certificate() -> Certificate:
    """A self-signed RSA certificate for the seeded app (made once per process)."""
    return self_signed_certificate("qconn-sandbox-app", days=3650)


@dataclass
class Seed:
    """Everything the control API's ``seed`` accepts; each list is merged into the state."""

    mailboxes: list[dict[str, Any]] = field(default_factory=list)
    apps: list[dict[str, Any]] = field(default_factory=list)
    refresh_tokens: list[dict[str, Any]] = field(default_factory=list)
    accounts: list[dict[str, Any]] = field(default_factory=list)
    templates: list[dict[str, Any]] = field(default_factory=list)
    numbers: list[dict[str, Any]] = field(default_factory=list)
    #: Calendar events: a create-event request body as Graph takes it (``recurrence`` included), plus
    #: ``mailbox``, the organizer's UPN or id.
    events: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Seed:
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown seed sections: {sorted(unknown)}")
        return cls(**{key: list(value) for key, value in data.items()})


def default_seed() -> Seed:
    """The sandbox's standard cast: two work mailboxes, one personal, one app, one Twilio account."""
    return Seed(
        mailboxes=[
            {
                "id": "a1d2e3f4-0000-4000-8000-00000000ade1",
                "upn": ORGANIZER,
                "displayName": "Adele Vance",
                "kind": "work",
                "tenant_id": TENANT_ID,
            },
            {
                "id": "b2c3d4e5-0000-4000-8000-0000000be9a2",
                "upn": COLLEAGUE,
                "displayName": "Megan Bowen",
                "kind": "work",
                "tenant_id": TENANT_ID,
            },
            {
                "id": "c3d4e5f6-0000-4000-8000-000000005a3f",
                "upn": PERSONAL,
                "displayName": "Sam Personal",
                "kind": "personal",
                "tenant_id": CONSUMER_TENANT_ID,
            },
        ],
        apps=[
            {
                "client_id": CLIENT_ID,
                "tenant_id": TENANT_ID,
                "display_name": "qconn sandbox app",
                "secrets": [CLIENT_SECRET],
                "certificates": [app_certificate().cert_pem],
                "allow_public_client": True,
                "application_permissions": ["Calendars.ReadWrite"],
                # A desktop app's loopback redirect: any port at sign-in time.
                "redirect_uris": ["http://localhost"],
            }
        ],
        refresh_tokens=[
            {"token": REFRESH_TOKEN_ORGANIZER, "client_id": CLIENT_ID, "mailbox": ORGANIZER},
            {"token": REFRESH_TOKEN_PERSONAL, "client_id": CLIENT_ID, "mailbox": PERSONAL},
        ],
        accounts=[
            {
                "sid": ACCOUNT_SID,
                "auth_token": AUTH_TOKEN,
                "friendly_name": "qconn sandbox account",
                "senders": [f"whatsapp:{WHATSAPP_SENDER}"],
                "messaging_services": {MESSAGING_SERVICE_SID: [f"whatsapp:{WHATSAPP_SENDER}"]},
            }
        ],
        templates=[
            {
                "sid": TEMPLATE_REMINDER,
                "account_sid": ACCOUNT_SID,
                "friendly_name": "appointment_reminder",
                "language": "en",
                "body": "Hello {{1}}, your appointment is on {{2}}.",
                "variables": {"1": "Customer", "2": "tomorrow"},
            },
            {
                "sid": TEMPLATE_ORDER,
                "account_sid": ACCOUNT_SID,
                "friendly_name": "order_update",
                "language": "en",
                "body": "Hi {{name}}, your order {{order_id}} is {{status}}.",
                "variables": {"name": "Customer", "order_id": "1234", "status": "on its way"},
            },
            {
                "sid": TEMPLATE_MEETING_REMINDER,
                "account_sid": ACCOUNT_SID,
                "friendly_name": "meeting_reminder",
                "language": "en",
                "body": "Hi {{1}}, a reminder: {{2}} starts {{3}}. Join: {{4}}",
                "variables": {"1": "there", "2": "our meeting", "3": "soon", "4": "see your invitation"},
            },
            {
                "sid": TEMPLATE_INTERVIEW,
                "account_sid": ACCOUNT_SID,
                "friendly_name": "interview_invitation",
                "language": "en",
                "body": "Hi {{name}}, your interview is on {{time}}. Video call: {{link}}",
                "variables": {
                    "name": "Candidate",
                    "time": "Monday 09:00",
                    "link": "see the calendar invitation sent to your e-mail",
                },
            },
            {
                "sid": TEMPLATE_ALERT,
                "account_sid": ACCOUNT_SID,
                "friendly_name": "airflow_failure_alert",
                "language": "en",
                "body": "Airflow: {{dag}} failed at {{task}} (run {{run}}).",
                "variables": {"dag": "a DAG", "task": "a task", "run": "unknown"},
            },
        ],
        numbers=[
            {"number": INVALID_NUMBER, "create_error": 21211},
            {"number": FAILED_NUMBER, "final_status": "failed", "error_code": 63016},
            {"number": UNDELIVERED_NUMBER, "final_status": "undelivered", "error_code": 30008},
            {"number": STUCK_NUMBER, "final_status": "sent"},
        ],
    )


def apply_seed(state: State, seed: Seed) -> None:
    """Merge a seed into the state (insert or replace each item)."""
    now = state.now()
    with state.transaction() as db:
        for mailbox in seed.mailboxes:
            doc = {"kind": "work", "tenant_id": TENANT_ID, **mailbox}
            doc.setdefault("displayName", doc["upn"].split("@")[0])
            if doc["kind"] not in ("work", "personal"):
                raise ValueError("mailbox kind must be 'work' or 'personal'")
            db.execute(
                "INSERT OR REPLACE INTO mailboxes (id, upn, doc) VALUES (?, ?, ?)",
                (doc["id"], doc["upn"], json.dumps(doc)),
            )
        for app in seed.apps:
            doc = {
                "tenant_id": TENANT_ID,
                "secrets": [],
                "certificates": [],
                "allow_public_client": False,
                "application_permissions": [],
                "redirect_uris": [],
                **app,
            }
            db.execute(
                "INSERT OR REPLACE INTO apps (client_id, doc) VALUES (?, ?)",
                (doc["client_id"], json.dumps(doc)),
            )
        for token in seed.refresh_tokens:
            row = db.execute("SELECT id FROM mailboxes WHERE upn = ?", (token["mailbox"],)).fetchone()
            if row is None:
                raise ValueError(f"refresh token for unknown mailbox {token['mailbox']!r}")
            doc = {
                "client_id": token["client_id"],
                "mailbox_id": row[0],
                "scopes": token.get("scopes", ["Calendars.ReadWrite", "offline_access", "openid", "profile"]),
            }
            lifetime = float(token.get("lifetime", state.get_setting("refresh_token_lifetime", NINETY_DAYS)))
            db.execute(
                "INSERT OR REPLACE INTO tokens (token, kind, expires_at, doc) VALUES (?, 'refresh', ?, ?)",
                (token["token"], now + lifetime, json.dumps(doc)),
            )
        for account in seed.accounts:
            doc = {"senders": [], "messaging_services": {}, "friendly_name": account["sid"], **account}
            db.execute("INSERT OR REPLACE INTO accounts (sid, doc) VALUES (?, ?)", (doc["sid"], json.dumps(doc)))
        for template in seed.templates:
            seq = db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM contents").fetchone()[0]
            doc = {"language": "en", "variables": {}, "date_created": now, **template}
            db.execute(
                "INSERT OR REPLACE INTO contents (sid, account_sid, seq, doc) VALUES (?, ?, ?, ?)",
                (doc["sid"], doc["account_sid"], seq, json.dumps(doc)),
            )
        for number in seed.numbers:
            db.execute(
                "INSERT OR REPLACE INTO numbers (number, doc) VALUES (?, ?)",
                (number["number"], json.dumps(number)),
            )
    for event in seed.events:
        _seed_event(state, event)


def _seed_event(state: State, event: dict[str, Any]) -> None:
    """Create one seeded event as the events route would (attendee copies, Teams links, recurrence)."""
    from airflow_provider_qconn.sandbox.graph import GraphError, insert_event

    body = dict(event)
    owner = body.pop("mailbox", None)
    mailbox = state.doc("SELECT doc FROM mailboxes WHERE id = ? OR upn = ?", (owner, owner))
    if mailbox is None:
        raise ValueError(f"event for unknown mailbox {owner!r}")
    try:
        insert_event(state, mailbox, body)
    except GraphError as error:
        raise ValueError(f"event {body.get('subject')!r}: {error.code}: {error.message}") from error

"""The newest refresh token through the provider's credential and hook, against the sandbox's rotating tokens:
several workers refreshing at once, a revoked sign-in, a record the identity platform no longer knows."""

from __future__ import annotations

import concurrent.futures
import json

import pytest

from airflow_provider_qconn.exceptions import NonRetryableApiError
from airflow_provider_qconn.hooks.msgraph import MemoryTokenStore, MSGraphHook
from airflow_provider_qconn.hooks.msgraph.token_store import StoredToken, key_of, origin_of
from airflow_provider_qconn.sandbox import seed
from airflow_provider_qconn.sandbox.server import Sandbox

from .support import GRAPH_DELEGATED_SCOPES, delegated_credential

CONN = "qconn_msgraph_default"
KEY = key_of(CONN)


def valid_tokens(sandbox: Sandbox) -> set[str]:
    return {t["token"] for t in sandbox.control.refresh_tokens(seed.ORGANIZER)}


def test_workers_refreshing_at_once_all_succeed_and_the_record_keeps_a_valid_token(
    sandbox: Sandbox, sandbox_ca_variables: None
) -> None:
    store = MemoryTokenStore()  # shared, as the Variable is by every worker
    credentials = [delegated_credential(sandbox.url, CONN, store=store) for _ in range(6)]

    with concurrent.futures.ThreadPoolExecutor(len(credentials)) as pool:
        tokens = list(pool.map(lambda c: c.get_token(*GRAPH_DELEGATED_SCOPES).token, credentials))

    assert len(set(tokens)) == 6  # each worker redeemed the connection's token and got its own answer
    rotated = {credential.refresh_token for credential in credentials}
    assert len(rotated) == 6 and rotated <= valid_tokens(sandbox)  # none revoked the others
    kept = StoredToken.from_json(store.get(KEY))
    assert kept.refresh_token in rotated and kept.origin == origin_of(seed.REFRESH_TOKEN_ORGANIZER)
    later = delegated_credential(sandbox.url, CONN, store=store)
    assert later.refresh_token == kept.refresh_token
    assert later.get_token(*GRAPH_DELEGATED_SCOPES).token  # whichever write won, it works
    for credential in [*credentials, later]:
        credential.close()


def test_a_revoked_sign_in_fails_with_the_login_command_to_run(
    sandbox_env: Sandbox, sandbox_ca_variables: None
) -> None:
    store = MemoryTokenStore()
    first = delegated_credential(sandbox_env.url, CONN, store=store)
    first.get_token(*GRAPH_DELEGATED_SCOPES)
    first.close()
    sandbox_env.control.revoke_sign_ins(seed.ORGANIZER)  # a password reset: every refresh token of Adele

    with MSGraphHook(token_store=store) as hook, pytest.raises(NonRetryableApiError) as refused:
        hook.get_event("AAk=")  # any call: the token is refused before Graph is asked

    message = str(refused.value)
    assert refused.value.code == "AADSTS50173"
    assert "sign in again with `airflow qconn outlook-login`" in message
    assert "(from the connection)" in message  # the kept token was refused too, then the connection's
    assert not any(
        token in message for token in [seed.REFRESH_TOKEN_ORGANIZER, json.loads(store.get(KEY))["refresh_token"]]
    )


def test_a_kept_token_the_identity_platform_no_longer_knows_gives_way_to_the_connections(
    sandbox: Sandbox, sandbox_ca_variables: None
) -> None:
    store = MemoryTokenStore()
    store.set(KEY, StoredToken("sbx-rt-from-a-reset-sandbox", origin_of(seed.REFRESH_TOKEN_ORGANIZER), 0).to_json())
    credential = delegated_credential(sandbox.url, CONN, store=store)
    assert credential.get_token(*GRAPH_DELEGATED_SCOPES).token
    assert StoredToken.from_json(store.get(KEY)).refresh_token in valid_tokens(sandbox)
    credential.close()

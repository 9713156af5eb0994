"""Helpers shared by the integration tests: scopes, a CA-pinned requests session, a delegated credential."""

from __future__ import annotations

import asyncio
import time
from typing import Any

GRAPH_APP_SCOPES = ["https://graph.microsoft.com/.default"]
GRAPH_DELEGATED_SCOPES = ["Calendars.ReadWrite"]


def requests_session(ca_path: str) -> Any:
    """A requests session that trusts exactly the sandbox CA (``trust_env=False``: the environment cannot win)."""
    import requests

    session = requests.Session()
    session.trust_env = False
    session.verify = ca_path
    return session


class RefreshTokenCredential:
    """An async azure-core ``TokenCredential`` for delegated Graph access from a stored refresh token.

    It redeems the refresh token with MSAL (in a thread: MSAL is synchronous), keeps the rotated one, and
    caches the access token until shortly before it expires. This is the shape the MSGraphHook needs for
    ``auth_type=refresh_token``, since no azure-identity credential accepts a refresh token.
    """

    def __init__(self, app: Any, refresh_token: str) -> None:
        self.app = app
        self.refresh_token = refresh_token
        self.redemptions = 0
        self.closes = 0
        self._token: Any = None
        self._lock = asyncio.Lock()

    async def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken
        from azure.core.exceptions import ClientAuthenticationError

        async with self._lock:
            if self._token is not None and self._token.expires_on - 300 > time.time():
                return self._token
            result = await asyncio.to_thread(
                self.app.acquire_token_by_refresh_token, self.refresh_token, scopes=list(scopes)
            )
            if "access_token" not in result:
                raise ClientAuthenticationError(message=result.get("error_description") or result.get("error"))
            self.redemptions += 1
            self.refresh_token = result.get("refresh_token", self.refresh_token)
            self._token = AccessToken(result["access_token"], int(time.time()) + int(result["expires_in"]))
            return self._token

    async def close(self) -> None:
        self.closes += 1

    async def __aenter__(self) -> RefreshTokenCredential:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

"""What both hooks share: the CA bundle the standard variables name, and connection-extra parsing."""

from __future__ import annotations

import functools
import os
import ssl
import urllib.parse
from typing import Any

from airflow_provider_qconn.exceptions import ConnectionConfigError

#: The variables that name a CA bundle, in the order the HTTP libraries we use consult them.
CA_VARIABLES = ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE")


def ca_bundle() -> str | None:
    """The CA bundle named by ``REQUESTS_CA_BUNDLE``, ``SSL_CERT_FILE`` or ``CURL_CA_BUNDLE`` (first set wins).

    requests-based clients read the first, httpx and aiohttp the second; passing the result explicitly to every
    client makes either variable work for all of them.
    """
    for name in CA_VARIABLES:
        path = os.environ.get(name)
        if path and os.path.exists(path):
            return path
    return None


def ssl_context() -> ssl.SSLContext:
    """A verifying SSL context over :func:`ca_bundle` (or the system's CAs), shared (see :func:`bundle_context`)."""
    return bundle_context(ca_bundle())


def bundle_context(bundle: str | None) -> ssl.SSLContext:
    """The process's verifying SSL context over a CA bundle file (None: the system's CAs), built once per file and
    again when the file changes: a bundle of a system's CAs takes tens of milliseconds to load, and every client
    of a task (httpx for Graph, requests for the identity platform) can verify with the same context."""
    if bundle is None:
        return _verifying_context(None, None)
    stat = os.stat(bundle)
    return _verifying_context(bundle, (stat.st_mtime_ns, stat.st_size))


@functools.lru_cache(maxsize=8)
def _verifying_context(bundle: str | None, version: tuple[int, int] | None) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=bundle) if bundle else ssl.create_default_context()


def positive_int(extra: dict[str, Any], field: str, default: int, conn_id: str) -> int:
    """An integer connection extra that must be at least 1."""
    value = extra.get(field)
    if value in (None, ""):
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if number < 1:
        raise ConnectionConfigError(f"connection {conn_id!r}: extra {field!r} must be a whole number >= 1")
    return number


def https_url(extra: dict[str, Any], field: str, default: str, conn_id: str) -> str:
    """A base URL from a connection extra, without its trailing slash; it must be https (or loopback http)."""
    value = str(extra.get(field) or default).strip().rstrip("/")
    parts = urllib.parse.urlsplit(value)
    loopback = parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1") and not parts.username
    if not ((parts.scheme == "https" and parts.hostname) or loopback):
        raise ConnectionConfigError(f"connection {conn_id!r}: extra {field!r} must be an https URL, got {value!r}")
    return value

"""An in-process client for the sandbox app (Starlette's TestClient: no sockets, no TLS)."""

from __future__ import annotations

import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # Starlette suggests httpx2; httpx is what Airflow ships
    from starlette.testclient import TestClient

__all__ = ["TestClient"]

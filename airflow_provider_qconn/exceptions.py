"""The provider's exceptions: one hierarchy, each naming the parameter or the API's own code."""

from __future__ import annotations

from airflow.sdk.exceptions import AirflowException, AirflowFailException


class QconnError(AirflowException):
    """Base of every error this provider raises."""


class InvalidParameterError(QconnError, AirflowFailException, ValueError):
    """A parameter is unusable as given; raised before any request, and never retried by Airflow."""

    def __init__(self, parameter: str, problem: str) -> None:
        super().__init__(f"{parameter}: {problem}")
        self.parameter = parameter
        self.problem = problem


class ConnectionConfigError(QconnError, AirflowFailException):
    """The Airflow connection lacks a field or holds an unusable value (the message names the field)."""


class ApiError(QconnError):
    """A provider API refused a request: HTTP status, the API's own code, and its message."""

    def __init__(
        self,
        service: str,
        status: int | None,
        code: str | int | None,
        message: str,
        *,
        request_id: str | None = None,
    ) -> None:
        self.service, self.status, self.code, self.message = service, status, code, message
        self.request_id = request_id
        detail = f"{service} error"
        if status is not None:
            detail += f" {status}"
        if code is not None:
            detail += f" ({code})"
        suffix = f" [request-id {request_id}]" if request_id else ""
        super().__init__(f"{detail}: {message}{suffix}")


class NonRetryableApiError(ApiError, AirflowFailException):
    """An API refusal a retry cannot fix (bad credentials, forbidden, not found, invalid request)."""


class MeetingStateError(QconnError, AirflowFailException):
    """A meeting is not in a state the task can accept (cancelled, or without the Teams join URL it required)."""

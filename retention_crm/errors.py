"""The one error type services raise; interfaces turn it into a 4xx or a command error."""

from typing import Any


class ApplicationError(Exception):
    """A request the rules refuse: bad input, a conflict, something that does not exist.

    ``status`` is the HTTP status the API answers with; ``fields`` maps input fields to messages.
    """

    def __init__(
        self,
        message: str,
        *,
        code: str = "invalid",
        status: int = 400,
        fields: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.fields = fields or {}

    def as_dict(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "fields": self.fields}}


class NotFound(ApplicationError):
    def __init__(self, message: str, *, code: str = "not_found") -> None:
        super().__init__(message, code=code, status=404)


class Conflict(ApplicationError):
    def __init__(self, message: str, *, code: str = "conflict", fields: dict[str, Any] | None = None) -> None:
        super().__init__(message, code=code, status=409, fields=fields)

"""The one error type of the service: a client error with its HTTP status and a message that
names the problem (answered as ``{"error": "<message>"}``, TensorFlow Serving's shape)."""
from __future__ import annotations


class RequestError(Exception):
    """A client error: HTTP ``status`` with a message that names the problem."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message

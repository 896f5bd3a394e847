"""Provider errors, one class for each thing the send engine must do about them.

| class                 | engine does                                                  |
| RetryableError        | back off (honouring retry_after) and try again later         |
| RecipientError        | mark that one message failed; opted_out feeds suppression    |
| AccountError          | pause the campaign with the reason; mark nothing failed      |
| InDoubtError          | never resend blindly; reconcile through a status lookup      |
"""

from typing import Any


class ProviderError(Exception):
    """Something the provider (or the way to it) said no to, with its own words kept."""

    def __init__(
        self,
        message: str,
        *,
        code: str = "",
        status_code: int | None = None,
        raw: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status_code = status_code
        self.raw = raw

    def __str__(self) -> str:
        return f"{self.code}: {self.message}" if self.code else self.message


class RetryableError(ProviderError):
    """Transient: timeout before sending, connection refused, 429, 5xx."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class RecipientError(ProviderError):
    """Permanent for this recipient: invalid number, blacklisted, opted out at the provider."""

    def __init__(self, message: str, *, opted_out: bool = False, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.opted_out = opted_out


class AccountError(ProviderError):
    """The account cannot send at all: credentials, API access, balance, unapproved template."""


class InDoubtError(ProviderError):
    """The request may have reached the provider (e.g. a read timeout after sending)."""

    def __init__(self, message: str, *, request_ref: str = "", **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        #: Our reference for the request, if the provider keeps it (to look the send up).
        self.request_ref = request_ref

"""The mail backend of a production without EMAIL_URL: it sends nothing, and says so."""

import logging
from collections.abc import Sequence

from django.core.exceptions import ImproperlyConfigured
from django.core.mail import EmailMessage
from django.core.mail.backends.base import BaseEmailBackend

logger = logging.getLogger(__name__)


class UnconfiguredEmailBackend(BaseEmailBackend):
    """Refuses every mail: printing a reset link into the logs hands over the account, and
    dropping it leaves the user waiting for nothing. `check --deploy` reports it (herald.E020).
    """

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        if not email_messages:
            return 0
        # Neither the addresses nor the contents: a reset mail's contents are the link.
        logger.error("EMAIL_URL is not set: %d mail(s) not sent", len(email_messages))
        if self.fail_silently:
            return 0
        raise ImproperlyConfigured(
            "EMAIL_URL is not set, so no mail can be sent (see README.md, Configuration)"
        )

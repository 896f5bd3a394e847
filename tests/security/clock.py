"""Moving the sign-in records' clock: what the database remembers, as if time had passed."""

from datetime import timedelta

from axes.models import AccessAttempt, AccessAttemptExpiration
from django.db.models import F

from audit.models import AuditEvent, Lockout, PasswordResetRequest


def pass_time(minutes: float) -> None:
    """Every failure, lockout, reset request and audit record, `minutes` older."""
    ago = timedelta(minutes=minutes)
    AccessAttempt.objects.update(attempt_time=F("attempt_time") - ago)
    AccessAttemptExpiration.objects.update(expires_at=F("expires_at") - ago)
    Lockout.objects.update(at=F("at") - ago, until=F("until") - ago)
    PasswordResetRequest.objects.update(at=F("at") - ago)
    AuditEvent.objects.update(at=F("at") - ago)

from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "audit"
    verbose_name = "Audit log"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from audit import (
            checks,  # noqa: F401 - where password-reset mails go
            signals,  # noqa: F401 - records sign-ins, failures, sign-outs, lockouts
        )

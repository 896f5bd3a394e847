from django.apps import AppConfig


class MessagingConfig(AppConfig):
    name = "messaging"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from messaging import (
            checks,  # noqa: F401 - registers the system checks
            keywords,  # noqa: F401 - forgets its table when a keyword changes
            privacy,  # noqa: F401 - takes part in contact erasure
        )

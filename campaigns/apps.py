from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    name = "campaigns"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from campaigns import privacy  # noqa: F401 - takes part in contact erasure
        from campaigns.balance import pause_sending
        from messaging.balance import balance_low

        balance_low.connect(pause_sending, dispatch_uid="campaigns.balance")

from django.urls import path

from messaging.webhooks.bulksmsrates import BulkSMSRatesWebhookView

app_name = "messaging"

urlpatterns = [
    path(
        "webhooks/bulksmsrates/<slug:account>/",
        BulkSMSRatesWebhookView.as_view(),
        name="bulksmsrates-webhook",
    ),
]

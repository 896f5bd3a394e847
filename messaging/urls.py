from django.urls import path

from messaging.redirects import follow
from messaging.webhooks.bulksmsrates import BulkSMSRatesWebhookView

app_name = "messaging"

urlpatterns = [
    path("r/<str:code>", follow, name="follow-link"),
    path(
        "webhooks/bulksmsrates/<slug:account>/",
        BulkSMSRatesWebhookView.as_view(),
        name="bulksmsrates-webhook",
    ),
]

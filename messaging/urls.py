from django.urls import path

from messaging.redirects import follow_link
from messaging.webhooks.bulksmsrates import BulkSMSRatesWebhookView

app_name = "messaging"

urlpatterns = [
    path("r/<str:code>", follow_link, name="follow-link"),
    path(
        "webhooks/bulksmsrates/<slug:account>/",
        BulkSMSRatesWebhookView.as_view(),
        name="bulksmsrates-webhook",
    ),
]

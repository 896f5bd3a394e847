from django.urls import path

from messaging import webhooks

app_name = "messaging"

urlpatterns = [
    path(
        "webhooks/bulksmsrates/<slug:account>/",
        webhooks.bulksmsrates_webhook,
        name="bulksmsrates-webhook",
    ),
]

"""A webhook is applied once per body event id and per signed request, not only per X-Webhook-Id.

The signature does not cover X-Webhook-Id, so a signed request replayed under a new id
was applied again. Records from before keep both keys blank (the partial constraints
leave blanks out): what they were signed at is not stored, and a request signed then is
past the 5-minute window and refused anyway.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("messaging", "0013_message_is_test"),
    ]

    operations = [
        migrations.AddField(
            model_name="webhookevent",
            name="event_id",
            field=models.CharField(
                blank=True,
                help_text="The provider's id of the event, from its body.",
                max_length=150,
            ),
        ),
        migrations.AddField(
            model_name="webhookevent",
            name="request_hash",
            field=models.CharField(
                blank=True,
                help_text="SHA-256 of the signed timestamp and body (blank on records from "
                "before it).",
                max_length=64,
            ),
        ),
        migrations.AddConstraint(
            model_name="webhookevent",
            constraint=models.UniqueConstraint(
                condition=~models.Q(event_id=""),
                fields=("provider_account", "event_id"),
                name="webhookevent_event_once",
            ),
        ),
        migrations.AddConstraint(
            model_name="webhookevent",
            constraint=models.UniqueConstraint(
                condition=~models.Q(request_hash=""),
                fields=("provider_account", "request_hash"),
                name="webhookevent_request_once",
            ),
        ),
    ]

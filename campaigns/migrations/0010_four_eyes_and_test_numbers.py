"""Four eyes: who changed a campaign since its last approval may not approve it; tests go
only to each user's own test numbers.

Campaigns waiting for their first approval count their creator as an author (who else
edited them before this was recorded is not known).
"""

import contacts.models
import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def creators_are_authors(apps, schema_editor):
    Campaign = apps.get_model("campaigns", "Campaign")
    waiting = Campaign.objects.filter(
        status__in=("draft", "pending_approval"), created_by__isnull=False
    )
    for campaign in waiting.only("pk", "created_by_id").iterator():
        campaign.authors.add(campaign.created_by_id)


class Migration(migrations.Migration):
    dependencies = [
        ("campaigns", "0009_approval_binds_content"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="campaign",
            name="authors",
            field=models.ManyToManyField(
                blank=True,
                editable=False,
                help_text="Who changed what an approval binds since the last approval: none of them may approve it.",
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.CreateModel(
            name="TestNumber",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("phone", contacts.models.PhoneNumberField(max_length=16)),
                (
                    "label",
                    models.CharField(blank=True, help_text="e.g. work mobile", max_length=100),
                ),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                (
                    "added_by",
                    models.ForeignKey(
                        blank=True,
                        editable=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "user",
                    models.ForeignKey(
                        help_text="Whose phone it is: only they can send tests to it.",
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="test_numbers",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "ordering": ("user", "label", "pk"),
                "constraints": [
                    models.UniqueConstraint(
                        fields=("user", "phone"), name="testnumber_once_per_user"
                    )
                ],
            },
        ),
        migrations.RunPython(creators_are_authors, migrations.RunPython.noop),
    ]

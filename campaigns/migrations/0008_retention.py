"""Retention: when a campaign's messages were blanked, and the daily purge schedule."""

from django.db import migrations, models


def add_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.update_or_create(
        name="herald-retention-purge",
        defaults={
            "func": "campaigns.privacy.daily_purge",
            "schedule_type": "D",  # daily; does nothing while HERALD_RETENTION_DAYS is 0
            "repeats": -1,
        },
    )


def remove_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name="herald-retention-purge").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("campaigns", "0007_approvers_see_the_queue"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [
        migrations.AddField(
            model_name="campaign",
            name="content_purged_at",
            field=models.DateTimeField(
                blank=True,
                editable=False,
                help_text="When retention blanked its messages.",
                null=True,
            ),
        ),
        migrations.RunPython(add_schedule, remove_schedule),
    ]

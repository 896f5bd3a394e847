"""Delivery-status polling as its own schedule, so a slow provider never delays the engine tick."""

from django.db import migrations


def add_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.update_or_create(
        name="herald-status-poll",
        defaults={
            "func": "messaging.tasks.poll_statuses",
            "schedule_type": "I",  # every `minutes`
            "minutes": 1,
            "repeats": -1,
        },
    )


def remove_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name="herald-status-poll").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("messaging", "0002_provider_backends"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(add_schedule, remove_schedule)]

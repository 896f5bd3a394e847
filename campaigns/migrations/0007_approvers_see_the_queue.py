"""Approvers see the approval queue (a proxy model: its permissions are its own)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations


def grant(apps, schema_editor):
    # Permissions are normally created after all migrations ran; make them now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    approvers, _ = Group.objects.get_or_create(name="Approvers")
    approvers.permissions.add(
        Permission.objects.get(
            content_type__app_label="campaigns", codename="view_pendingapproval"
        )
    )


def revoke(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    view_queue = Permission.objects.filter(
        content_type__app_label="campaigns", codename="view_pendingapproval"
    )
    for group in Group.objects.filter(name="Approvers"):
        group.permissions.remove(*view_queue)


class Migration(migrations.Migration):
    dependencies = [
        ("campaigns", "0006_approval_queue"),
    ]

    operations = [migrations.RunPython(grant, revoke)]

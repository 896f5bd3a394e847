"""Marketers import contacts (and see their imports); approvers may look at them."""

from django.contrib.auth.management import create_permissions
from django.db import migrations


def grant(apps, schema_editor):
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    by_role = {
        "Marketers": ["add_importjob", "view_importjob", "delete_importjob"],
        "Approvers": ["view_importjob"],
    }
    for name, codenames in by_role.items():
        group = Group.objects.get(name=name)
        group.permissions.add(
            *Permission.objects.filter(content_type__app_label="contacts", codename__in=codenames)
        )


class Migration(migrations.Migration):
    dependencies = [
        ("campaigns", "0003_roles_and_engine_tick"),
        ("contacts", "0002_import_jobs"),
    ]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]

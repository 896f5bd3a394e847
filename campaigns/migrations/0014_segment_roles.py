"""Marketers build segments; approvers see them, and may give a campaign its own frequency
cap (or none)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

BY_ROLE = {
    "Marketers": ["add_segment", "change_segment", "delete_segment", "view_segment"],
    "Approvers": ["view_segment", "override_frequency_cap"],
}


def grant(apps, schema_editor):
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, codenames in BY_ROLE.items():
        for group in Group.objects.filter(name=name):
            group.permissions.add(
                *Permission.objects.filter(
                    content_type__app_label="campaigns", codename__in=codenames
                )
            )


class Migration(migrations.Migration):
    dependencies = [("campaigns", "0013_segments_exclusions_frequency_cap")]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]

"""Staff may decide on messages in doubt (mark sent / send again): marketers, who run campaigns."""

from django.contrib.auth.management import create_permissions
from django.db import migrations


def grant(apps, schema_editor):
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.get_or_create(name="Marketers")
    group.permissions.add(
        Permission.objects.get(content_type__app_label="messaging", codename="decide_in_doubt")
    )


class Migration(migrations.Migration):
    dependencies = [
        ("messaging", "0011_erased_skip_reason"),
        ("campaigns", "0003_roles_and_engine_tick"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="message",
            options={
                "ordering": ("pk",),
                "permissions": (
                    ("decide_in_doubt", "Can mark messages in doubt as sent or send them again"),
                ),
            },
        ),
        migrations.RunPython(grant, migrations.RunPython.noop),
    ]

"""Marketers and approvers answer replies in the inbox; approvers keep the keyword lists
(what opts a person out is a compliance matter), marketers may read them."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

BY_ROLE = {
    "Marketers": ["reply_inbound", "view_inboundmessage", "view_keyword"],
    "Approvers": [
        "reply_inbound",
        "view_inboundmessage",
        "view_keyword",
        "add_keyword",
        "change_keyword",
        "delete_keyword",
    ],
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
                    content_type__app_label="messaging", codename__in=codenames
                )
            )


class Migration(migrations.Migration):
    dependencies = [
        ("campaigns", "0014_segment_roles"),
        ("messaging", "0017_replies"),
    ]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]

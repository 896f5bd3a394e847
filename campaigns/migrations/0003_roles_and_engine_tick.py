"""Staff roles (Marketers, Approvers) and the engine's once-a-minute tick."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

MARKETER_PERMISSIONS = [
    "contacts.add_contact", "contacts.change_contact", "contacts.view_contact",
    "contacts.delete_contact",
    "contacts.add_group", "contacts.change_group", "contacts.view_group",
    "contacts.add_tag", "contacts.change_tag", "contacts.view_tag",
    "contacts.add_optout", "contacts.view_optout",
    "campaigns.add_messagetemplate", "campaigns.change_messagetemplate",
    "campaigns.view_messagetemplate", "campaigns.delete_messagetemplate",
    "campaigns.add_campaign", "campaigns.change_campaign", "campaigns.view_campaign",
    "campaigns.view_campaigntransition",
    "messaging.view_message", "messaging.view_statusevent", "messaging.view_provideraccount",
]  # fmt: skip

APPROVER_PERMISSIONS = [
    "contacts.view_contact", "contacts.view_group", "contacts.view_tag", "contacts.view_optout",
    "campaigns.view_messagetemplate", "campaigns.view_campaign",
    "campaigns.view_campaigntransition", "campaigns.approve_campaign",
    "messaging.view_message", "messaging.view_statusevent", "messaging.view_provideraccount",
]  # fmt: skip


def create_roles(apps, schema_editor):
    # Permissions are normally created after all migrations ran; make them now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, codenames in (("Marketers", MARKETER_PERMISSIONS), ("Approvers", APPROVER_PERMISSIONS)):
        group, _ = Group.objects.get_or_create(name=name)
        for dotted in codenames:
            app_label, codename = dotted.split(".")
            group.permissions.add(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )


def create_tick(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.update_or_create(
        name="herald-engine-tick",
        defaults={
            "func": "campaigns.tasks.tick",
            "schedule_type": "I",  # every `minutes`
            "minutes": 1,
            "repeats": -1,
        },
    )


def remove_tick(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name="herald-engine-tick").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("campaigns", "0002_initial"),
        ("contacts", "0001_initial"),
        ("messaging", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [
        migrations.RunPython(create_roles, migrations.RunPython.noop),
        migrations.RunPython(create_tick, remove_tick),
    ]

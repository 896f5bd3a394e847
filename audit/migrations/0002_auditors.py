"""The Auditors role: may read the audit log in the admin, nothing else."""

from django.contrib.auth.management import create_permissions
from django.db import migrations


def create_auditors(apps, schema_editor):
    # Permissions are normally created after all migrations ran; make this one now.
    app_config = apps.get_app_config("audit")
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    auditors, _ = Group.objects.get_or_create(name="Auditors")
    auditors.permissions.add(
        Permission.objects.get(content_type__app_label="audit", codename="view_auditevent")
    )


def remove_auditors(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name="Auditors").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0001_audit_event"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_auditors, remove_auditors)]

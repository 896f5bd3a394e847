"""Transactional sends (POST /api/v1/messages): their rows are marked and claimed by an
index of their own, say who asked, and a permission to send them, which marketers hold."""

import django.db.models.deletion
from django.conf import settings
from django.contrib.auth.management import create_permissions
from django.db import migrations, models


def grant_marketers(apps, schema_editor):
    # Permissions are normally created after all migrations ran; make them now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    send = Permission.objects.filter(
        content_type__app_label="messaging", codename="send_transactional"
    )
    for group in Group.objects.filter(name="Marketers"):
        group.permissions.add(*send)


class Migration(migrations.Migration):

    dependencies = [
        ('campaigns', '0017_ab_variants'),
        ('contacts', '0009_optout_source_reply'),
        ('messaging', '0021_ab_variants'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterModelOptions(
            name='message',
            options={'ordering': ('pk',), 'permissions': (('decide_in_doubt', 'Can mark messages in doubt as sent or send them again'), ('send_transactional', 'Can send transactional messages (API, messages:send)'))},
        ),
        migrations.AddField(
            model_name='message',
            name='is_transactional',
            field=models.BooleanField(db_default=False, default=False, help_text="One message an integration asked for (POST /api/v1/messages): no campaign's, no reply; sent by messaging.transactional."),
        ),
        migrations.AddField(
            model_name='message',
            name='requested_by',
            field=models.ForeignKey(blank=True, db_constraint=False, db_index=False, help_text='A transactional message: the user whose API token asked for it.', null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AddIndex(
            model_name='message',
            index=models.Index(condition=models.Q(('is_transactional', True), ('status', 'pending')), fields=['next_attempt_at'], name='message_transactional_due'),
        ),
        migrations.RunPython(grant_marketers, migrations.RunPython.noop),
    ]

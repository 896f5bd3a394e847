"""Lockouts remembered for the next one's length; password-reset requests counted for their limits."""

import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('audit', '0004_test_send'),
    ]

    operations = [
        migrations.CreateModel(
            name='Lockout',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('at', models.DateTimeField(default=django.utils.timezone.now)),
                ('until', models.DateTimeField(db_index=True)),
                ('username_digest', models.CharField(db_index=True, max_length=64)),
                ('ip', models.GenericIPAddressField(blank=True, db_index=True, null=True, unpack_ipv4=True)),
            ],
            options={
                'ordering': ('-at', '-pk'),
            },
        ),
        migrations.CreateModel(
            name='PasswordResetRequest',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('at', models.DateTimeField(db_index=True, default=django.utils.timezone.now)),
                ('email', models.CharField(blank=True, max_length=254)),
                ('email_digest', models.CharField(db_index=True, max_length=64)),
                ('ip', models.GenericIPAddressField(blank=True, db_index=True, null=True, unpack_ipv4=True)),
                ('answer', models.CharField(choices=[('queued', 'handed to the worker'), ('email_limited', 'too many for that address'), ('client_limited', 'too many from that client')], default='queued', max_length=20)),
            ],
            options={
                'ordering': ('-at', '-pk'),
            },
        ),
        migrations.AlterField(
            model_name='auditevent',
            name='action',
            field=models.CharField(choices=[('login', 'signed in'), ('login_failed', 'failed to sign in'), ('logout', 'signed out'), ('locked_out', 'locked out after failed sign-ins'), ('campaign_transition', 'moved a campaign'), ('export', 'exported data'), ('in_doubt_decided', 'decided on messages in doubt'), ('test_send', 'sent a test message'), ('password_reset_requested', 'asked for a password reset'), ('password_reset_sent', 'was sent a password reset link')], db_index=True, max_length=30),
        ),
    ]

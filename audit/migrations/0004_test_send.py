"""Test sends of a campaign are audited (and counted from here for their hourly limit)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0003_in_doubt_decided"),
    ]

    operations = [
        migrations.AlterField(
            model_name="auditevent",
            name="action",
            field=models.CharField(
                choices=[
                    ("login", "signed in"),
                    ("login_failed", "failed to sign in"),
                    ("logout", "signed out"),
                    ("locked_out", "locked out after failed sign-ins"),
                    ("campaign_transition", "moved a campaign"),
                    ("export", "exported data"),
                    ("in_doubt_decided", "decided on messages in doubt"),
                    ("test_send", "sent a test message"),
                ],
                db_index=True,
                max_length=30,
            ),
        ),
    ]

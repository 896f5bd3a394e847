"""Test sends are marked as tests, so every list and count can tell them apart."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("messaging", "0012_decide_in_doubt"),
    ]

    operations = [
        migrations.AddField(
            model_name="message",
            name="is_test",
            field=models.BooleanField(
                default=False,
                db_default=False,  # rows built by bulk insert, which names no such column
                help_text="A test send to a staff member's own number: no campaign's recipient, "
                "counts or cost.",
            ),
        ),
    ]

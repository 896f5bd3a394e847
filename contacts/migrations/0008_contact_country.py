"""Each contact's country, from its number, kept in a column of its own for segments."""

from collections import defaultdict

from django.db import migrations, models

from contacts.phones import country_of

CHUNK = 5000


def fill_countries(apps, schema_editor):
    """Every existing contact's country, 5,000 at a time, one UPDATE per country found."""
    Contact = apps.get_model("contacts", "Contact")
    after = 0
    while True:
        rows = list(
            Contact.objects.filter(pk__gt=after).order_by("pk").values_list("pk", "phone")[:CHUNK]
        )
        if not rows:
            return
        after = rows[-1][0]
        by_country = defaultdict(list)
        for pk, phone in rows:
            by_country[country_of(phone)].append(pk)
        for country, ids in by_country.items():
            if country:
                Contact.objects.filter(pk__in=ids).update(country=country)


class Migration(migrations.Migration):

    dependencies = [
        ('contacts', '0007_import_header'),
    ]

    operations = [
        migrations.AddField(
            model_name='contact',
            name='country',
            field=models.CharField(blank=True, db_default='', editable=False, help_text="ISO code of the number's country, kept with the number for segments.", max_length=2),
        ),
        migrations.RunPython(fill_countries, migrations.RunPython.noop),
        migrations.AddIndex(
            model_name='contact',
            index=models.Index(fields=['country'], name='contact_country'),
        ),
    ]

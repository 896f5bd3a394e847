"""PostgreSQL: the short link code's second index goes (Django makes a varchar_pattern_ops
index for every indexed CharField, for LIKE 'abc%' outside the C locale). Nothing looks
codes up by pattern, and each of a build's million links paid for an entry in it."""

from django.db import migrations

LIKE_INDEXES = """
    SELECT i.relname FROM pg_index x
    JOIN pg_class i ON i.oid = x.indexrelid
    JOIN pg_class t ON t.oid = x.indrelid
    JOIN pg_opclass o ON o.oid = x.indclass[0]
    WHERE t.relname = 'messaging_link' AND o.opcname = 'varchar_pattern_ops'
"""


def drop_like_index(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(LIKE_INDEXES)
        for (name,) in cursor.fetchall():
            schema_editor.execute(f"DROP INDEX IF EXISTS {schema_editor.quote_name(name)}")


def make_like_index(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(
        "CREATE INDEX IF NOT EXISTS messaging_link_code_24a8b9c1_like "
        "ON messaging_link (code varchar_pattern_ops)"
    )


class Migration(migrations.Migration):
    dependencies = [("messaging", "0022_transactional_sends")]

    operations = [migrations.RunPython(drop_like_index, make_like_index)]

"""PostgreSQL full text: split on punctuation first, and include payload keys.

PostgreSQL's parser reads "/api/checkout" or "sensors/kitchen/temperature" as one
file-path token, so "checkout" and "kitchen" were not found, while SQLite's unicode61
tokenizer splits them. The new document (recorder.search.PG_DOCUMENT) replaces runs
of punctuation and space with one space before to_tsvector, over the message and the
payload's JSON text: the same words SQLite's FTS5 table indexes, keys included. Only
the first 100,000 characters: a tsvector holds at most 1 MB, and a bigger one failed
the insert of the whole drain. Nothing to do on SQLite.
"""

from django.db import migrations

NEW = (
    "CREATE INDEX IF NOT EXISTS event_fulltext ON recorder_event USING gin (("
    "to_tsvector('simple'::regconfig, regexp_replace(left("
    "COALESCE(\"recorder_event\".\"message\", '') || ' ' || "
    "COALESCE(\"recorder_event\".\"payload\"::text, ''), 100000), "
    "'[[:punct:][:space:]]+', ' ', 'g'))))"
)
OLD = (
    "CREATE INDEX IF NOT EXISTS event_fulltext ON recorder_event USING gin (("
    "to_tsvector('simple'::regconfig, COALESCE(\"recorder_event\".\"message\", '')) || "
    "to_tsvector('simple'::regconfig, COALESCE(\"recorder_event\".\"payload\", '{}'::jsonb))))"
)


def _postgres(*statements):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            for sql in statements:
                schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [("recorder", "0005_security")]

    operations = [
        migrations.RunPython(
            _postgres("DROP INDEX IF EXISTS event_fulltext", NEW),
            _postgres("DROP INDEX IF EXISTS event_fulltext", OLD),
            hints={"model_name": None},
        ),
    ]

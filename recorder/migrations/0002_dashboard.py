"""Full-text index over event message and payload (see recorder/search.py).

SQLite: an FTS5 table with the event table as external content, filled by the drain,
plus a trigger that removes deleted events from it. PostgreSQL: a GIN index on the
same tsvector expression the queries use (recorder.search.PG_DOCUMENT).
"""

from django.db import migrations

SQLITE_FORWARD = [
    "CREATE VIRTUAL TABLE IF NOT EXISTS recorder_event_fts USING fts5("
    "message, payload, content='recorder_event', content_rowid='id', "
    # detail=none: no token positions. Queries are ANDed single tokens and prefixes
    # (recorder.search.sqlite_match), never phrases, and positions would triple the
    # index (81 against 28 bytes per demo event).
    "tokenize='unicode61 remove_diacritics 2', detail=none)",
    # External content: a delete must hand FTS5 the values the row was indexed with.
    "CREATE TRIGGER IF NOT EXISTS recorder_event_fts_delete AFTER DELETE ON recorder_event "
    "BEGIN INSERT INTO recorder_event_fts(recorder_event_fts, rowid, message, payload) "
    "VALUES ('delete', old.id, old.message, old.payload); END",
    # Events stored before this migration.
    "INSERT INTO recorder_event_fts(recorder_event_fts) VALUES ('rebuild')",
]
SQLITE_BACKWARD = [
    "DROP TRIGGER IF EXISTS recorder_event_fts_delete",
    "DROP TABLE IF EXISTS recorder_event_fts",
]
POSTGRES_FORWARD = [
    "CREATE INDEX IF NOT EXISTS event_fulltext ON recorder_event USING gin (("
    "to_tsvector('simple'::regconfig, COALESCE(\"recorder_event\".\"message\", '')) || "
    "to_tsvector('simple'::regconfig, COALESCE(\"recorder_event\".\"payload\", '{}'::jsonb))))",
]
POSTGRES_BACKWARD = ["DROP INDEX IF EXISTS event_fulltext"]


def _run(statements_by_vendor):
    def run(apps, schema_editor):
        for sql in statements_by_vendor.get(schema_editor.connection.vendor, []):
            schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [("recorder", "0001_initial")]

    operations = [
        migrations.RunPython(
            _run({"sqlite": SQLITE_FORWARD, "postgresql": POSTGRES_FORWARD}),
            _run({"sqlite": SQLITE_BACKWARD, "postgresql": POSTGRES_BACKWARD}),
            # The router keeps this off the inbox database (no model: not the inbox).
            hints={"model_name": None},
        ),
    ]

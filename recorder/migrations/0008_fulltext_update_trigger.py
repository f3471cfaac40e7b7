"""SQLite full text: keep the index right when an event's message or payload changes.

The FTS5 table has external content (the event table). Retention rewrites payloads
when it drops captured HTTP bodies; without this trigger the index kept the old words
(searches found text that is gone), and a later delete handed FTS5 the new values to
remove, which it cannot find — FTS5 then reports the index as corrupt. The trigger
removes the old values and indexes the new ones, the pattern FTS5's documentation gives
for external content tables. Nothing to do on PostgreSQL (its GIN index is an index).
"""

from django.db import migrations

CREATE = (
    "CREATE TRIGGER IF NOT EXISTS recorder_event_fts_update "
    "AFTER UPDATE OF message, payload ON recorder_event BEGIN "
    "INSERT INTO recorder_event_fts(recorder_event_fts, rowid, message, payload) "
    "VALUES ('delete', old.id, old.message, old.payload); "
    "INSERT INTO recorder_event_fts(rowid, message, payload) "
    "VALUES (new.id, new.message, new.payload); END"
)
DROP = "DROP TRIGGER IF EXISTS recorder_event_fts_update"


def _sqlite(sql):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "sqlite":
            schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [("recorder", "0007_column_db_defaults")]

    operations = [
        migrations.RunPython(_sqlite(CREATE), _sqlite(DROP), hints={"model_name": None}),
    ]

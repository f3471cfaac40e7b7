"""SQLite full text: drop FTS5's per-row column sizes (columnsize=0).

FTS5 keeps, for every indexed row, the token count of each column in a `docsize`
table. Only bm25() ranking reads it, and flightrec never ranks: the timeline is in
(ts, seq) order. It cost about 10 bytes and one more B-tree insert per event.

The index is rebuilt from the event table: on a large database this migration takes a
while (roughly a minute per few million events) and holds the write lock meanwhile;
acknowledgements go on into the inbox, and the drain catches up afterwards.
Nothing changes on PostgreSQL. The triggers of 0002 and 0008 name the table, not its
options, so they keep working on the new one.
"""

from django.db import migrations


def _table(columnsize: bool) -> list[str]:
    options = "" if columnsize else "columnsize=0, "
    return [
        "DROP TABLE IF EXISTS recorder_event_fts",
        "CREATE VIRTUAL TABLE recorder_event_fts USING fts5("
        "message, payload, content='recorder_event', content_rowid='id', "
        f"tokenize='unicode61 remove_diacritics 2', {options}detail=none)",
        "INSERT INTO recorder_event_fts(recorder_event_fts) VALUES ('rebuild')",
    ]


def _sqlite(statements):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "sqlite":
            for sql in statements:
                schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [("recorder", "0008_fulltext_update_trigger")]

    operations = [
        migrations.RunPython(
            _sqlite(_table(columnsize=False)),
            _sqlite(_table(columnsize=True)),
            hints={"model_name": None},
        ),
    ]

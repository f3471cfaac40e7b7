"""SQLite: store event payloads zstd-packed with a trained dictionary (recorder/payloads.py).

The payload column becomes a BLOB column without the JSON_VALID check, which SQLite can
only change by copying the event table; the full-text triggers, which belong to the
old table, are dropped first and created again reading payloads through fr_json().
Existing payloads are then packed with a dictionary trained on them, in chunks.

On a large database this takes a while (13 s for a million events on a 2-core machine)
and holds the write lock meanwhile; acknowledgements go on into the inbox and the drain catches
up afterwards. Nothing changes on PostgreSQL, which keeps jsonb.
"""

from django.db import migrations, models

import recorder.fields

TRIGGERS = ("recorder_event_fts_delete", "recorder_event_fts_update")
FTS_DELETE = (
    "CREATE TRIGGER IF NOT EXISTS recorder_event_fts_delete AFTER DELETE ON recorder_event "
    "BEGIN INSERT INTO recorder_event_fts(recorder_event_fts, rowid, message, payload) "
    "VALUES ('delete', old.id, old.message, {old}); END"
)
OLD_FTS_UPDATE = (
    "CREATE TRIGGER IF NOT EXISTS recorder_event_fts_update "
    "AFTER UPDATE OF message, payload ON recorder_event BEGIN "
    "INSERT INTO recorder_event_fts(recorder_event_fts, rowid, message, payload) "
    "VALUES ('delete', old.id, old.message, old.payload); "
    "INSERT INTO recorder_event_fts(rowid, message, payload) "
    "VALUES (new.id, new.message, new.payload); END"
)
# WHEN: rewriting a payload in another stored form (packing) leaves the index alone.
FTS_UPDATE = (
    "CREATE TRIGGER IF NOT EXISTS recorder_event_fts_update "
    "AFTER UPDATE OF message, payload ON recorder_event "
    "WHEN old.message IS NOT new.message OR {old} IS NOT {new} BEGIN "
    "INSERT INTO recorder_event_fts(recorder_event_fts, rowid, message, payload) "
    "VALUES ('delete', old.id, old.message, {old}); "
    "INSERT INTO recorder_event_fts(rowid, message, payload) "
    "VALUES (new.id, new.message, {new}); END"
)


def _drop_triggers(apps, schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        for name in TRIGGERS:
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {name}")


def _create_triggers(schema_editor, old: str, new: str):
    schema_editor.execute(FTS_DELETE.format(old=old))
    schema_editor.execute(FTS_UPDATE.format(old=old, new=new))


def forward(apps, schema_editor):
    if schema_editor.connection.vendor != "sqlite":
        return
    from recorder import payloads

    _create_triggers(schema_editor, "fr_json(old.payload)", "fr_json(new.payload)")
    using = schema_editor.connection.alias
    created = payloads.dictionary_train(using)  # None with too few payloads to learn from
    if created is not None:
        payloads.pack_stored(created.dict_id, chunk=10_000, using=using)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor != "sqlite":
        return
    _drop_triggers(apps, schema_editor)
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            "UPDATE recorder_event SET payload = fr_json(payload) WHERE typeof(payload) = 'blob'"
        )


def _old_triggers(apps, schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        schema_editor.execute(FTS_DELETE.format(old="old.payload"))
        schema_editor.execute(OLD_FTS_UPDATE)


class Migration(migrations.Migration):
    dependencies = [("recorder", "0009_fulltext_columnsize")]

    operations = [
        migrations.RunPython(_drop_triggers, _old_triggers, hints={"model_name": None}),
        migrations.CreateModel(
            name="PayloadDictionary",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),  # fmt: skip
                ("dict_id", models.BigIntegerField(unique=True)),
                ("data", models.BinaryField()),
                ("samples", models.IntegerField()),
                ("last_event_id", models.BigIntegerField()),
                ("created_at", models.DateTimeField(auto_now_add=True)),
            ],
        ),
        migrations.AlterField(
            model_name="event",
            name="payload",
            field=recorder.fields.PackedJSONField(blank=True, null=True),
        ),
        migrations.RunPython(forward, backward, hints={"model_name": None}),
    ]

"""Per-connection SQLite setup that cannot be a fixed list of pragmas in settings.

`PRAGMA auto_vacuum=INCREMENTAL` only takes effect on a file that has no pages yet, and
must come before `journal_mode=WAL` (which writes the file's first page). On a file that
already has tables it is not a no-op: it opens a write transaction and rewrites a header
field, so running it on every new connection made every request, reads included, queue
for the write lock and wait for an fsync. It therefore runs only on empty files; older
files are switched once by migration 0003.

Every connection also gets the SQL function fr_json(), which reads packed payloads
(recorder/payloads.py).
"""

from django.db.backends.signals import connection_created

from recorder import payloads


def sqlite_connection_prepare(sender, connection, **kwargs) -> None:
    if connection.vendor != "sqlite":
        return
    raw = connection.connection
    if raw.execute("PRAGMA page_count").fetchone()[0] == 0:
        # INCREMENTAL lets the purge hand freed pages back to the filesystem in steps.
        raw.execute("PRAGMA auto_vacuum=INCREMENTAL")
    raw.execute("PRAGMA journal_mode=WAL")
    # fr_json(): packed payloads read as JSON text in SQL.
    payloads.sqlite_register(raw, connection.settings_dict["NAME"])


def connect() -> None:
    connection_created.connect(sqlite_connection_prepare, dispatch_uid="flightrec-sqlite")

"""Loading big benchmark data sets fast: the event table's secondary indexes are dropped
for the bulk insert and built once afterwards (the uid constraint stays, so the data is
exactly what the product could hold)."""

import sqlite3


def raw_copy(template, sessions_from, name: str) -> sqlite3.Connection:
    """A raw baseline's database: a copy of the empty migrated schema `template` (a
    Path), named `name` beside it, with the sessions (and so the application ids) of the
    database `sessions_from`, so that the events' foreign keys hold. Autocommit, WAL,
    synchronous=FULL: what the product's own connections use."""
    import shutil

    db = template.parent / name
    shutil.copy(template, db)
    con = sqlite3.connect(db, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=FULL")
    con.execute("ATTACH DATABASE ? AS src", (str(sessions_from),))
    con.execute("INSERT OR IGNORE INTO recorder_session SELECT * FROM src.recorder_session")
    con.execute("DETACH DATABASE src")
    return con


def drop_event_indexes(db: sqlite3.Connection) -> list[str]:
    """Drop the secondary indexes of recorder_event; returns the SQL to build them again."""
    indexes = db.execute(
        "SELECT name, sql FROM sqlite_master WHERE type='index' AND tbl_name='recorder_event' "
        "AND sql IS NOT NULL AND name NOT LIKE '%uid%'"
    ).fetchall()
    for name, _ in indexes:
        db.execute(f'DROP INDEX "{name}"')
    return [sql for _, sql in indexes]


def build_indexes(db: sqlite3.Connection, statements: list[str]) -> None:
    for sql in statements:
        db.execute(sql)


def drop_event_indexes_postgres(conn) -> list[str]:
    """PostgreSQL: drop recorder_event's secondary indexes (the full-text GIN index
    among them) and its foreign keys; returns the SQL to build them again. The primary
    key and the uid constraint stay. `conn` is a psycopg connection."""
    indexes = conn.execute(
        "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.tablename = 'recorder_event'"
        " AND i.schemaname = current_schema() AND NOT EXISTS (SELECT 1 FROM pg_constraint c"
        " WHERE c.conname = i.indexname AND c.conrelid = 'recorder_event'::regclass)"
    ).fetchall()
    foreign = conn.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE conrelid = 'recorder_event'::regclass AND contype = 'f'"
    ).fetchall()
    for name, _ in indexes:
        conn.execute(f'DROP INDEX "{name}"')
    for name, _ in foreign:
        conn.execute(f'ALTER TABLE recorder_event DROP CONSTRAINT "{name}"')
    return [sql for _, sql in indexes] + [
        f'ALTER TABLE recorder_event ADD CONSTRAINT "{name}" {definition}'
        for name, definition in foreign
    ]


def build_indexes_postgres(conn, statements: list[str]) -> None:
    # Enough memory that each index is sorted in one pass (the GIN index above all).
    conn.execute("SET maintenance_work_mem = '256MB'")
    for sql in statements:
        conn.execute(sql)


def pack_payloads(db: sqlite3.Connection, path, *, chunk: int = 50_000) -> int:
    """Store the payloads of a bulk-loaded file as the product does once it holds a few
    thousand events: train a dictionary on a spread sample, then pack every row
    (recorder/payloads.py). Returns the dictionary id. `db` is a plain sqlite3
    connection to `path`; the caller commits."""
    from datetime import UTC, datetime

    from recorder import payloads

    payloads.sqlite_register(db, str(path))
    last = db.execute("SELECT COALESCE(MAX(id), 0) FROM recorder_event").fetchone()[0]
    stride = max(1, last // payloads.TRAIN_SAMPLES)
    samples = [
        row[0].encode()
        for row in db.execute(
            "SELECT fr_json(payload) FROM recorder_event WHERE payload IS NOT NULL AND id % ? = 0",
            (stride,),
        )
    ]
    trained = payloads.train(samples)
    if trained is None:
        raise RuntimeError(f"cannot train a payload dictionary on {len(samples)} payloads")
    dict_id, data = trained
    db.execute(
        "INSERT INTO recorder_payloaddictionary(dict_id, data, samples, last_event_id, created_at)"
        " VALUES (?, ?, ?, ?, ?)",
        (dict_id, data, len(samples), last, datetime.now(UTC).isoformat(" ")),
    )
    for start in range(0, last, chunk):
        rows = db.execute(
            "SELECT id, payload FROM recorder_event WHERE id > ? AND id <= ? "
            "AND typeof(payload) = 'text'",
            (start, start + chunk),
        ).fetchall()
        db.executemany(
            "UPDATE recorder_event SET payload = ? WHERE id = ?",
            [(payloads.pack(text, dict_id), pk) for pk, text in rows],
        )
    return dict_id

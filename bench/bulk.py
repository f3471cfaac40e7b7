"""Loading big benchmark data sets fast: the event table's secondary indexes are dropped
for the bulk insert and built once afterwards (the uid constraint stays, so the data is
exactly what the product could hold)."""

import sqlite3


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

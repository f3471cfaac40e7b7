"""bench/bulk.py: dropping the event table's indexes for a bulk load and building them
again leaves the schema the migrations made, on each database."""

import sqlite3

import pytest
from django.db import connection

from bench.bulk import (
    build_indexes,
    build_indexes_postgres,
    drop_event_indexes,
    drop_event_indexes_postgres,
)


def _postgres_schema(conn) -> tuple[set, set]:
    indexes = conn.execute(
        "SELECT indexdef FROM pg_indexes WHERE tablename = 'recorder_event'"
    ).fetchall()
    constraints = conn.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE conrelid = 'recorder_event'::regclass"
    ).fetchall()
    return set(indexes), set(constraints)


@pytest.mark.django_db
def test_postgres_indexes_and_foreign_keys_come_back_as_the_migrations_made_them():
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only")
    connection.ensure_connection()
    conn = connection.connection  # psycopg, inside the test's transaction (DDL rolls back)
    before = _postgres_schema(conn)

    statements = drop_event_indexes_postgres(conn)
    indexes, constraints = _postgres_schema(conn)
    assert {name for name, _ in constraints} == {"event_uid_per_app", "recorder_event_pkey"}
    assert not any("event_fulltext" in sql or "event_timeline" in sql for (sql,) in indexes)

    build_indexes_postgres(conn, statements)
    assert _postgres_schema(conn) == before


@pytest.mark.django_db
def test_sqlite_indexes_come_back_as_the_migrations_made_them(tmp_path):
    if connection.vendor != "sqlite":
        pytest.skip("SQLite only")
    # The event table as the migrations made it, in a file of its own.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT sql FROM sqlite_master WHERE tbl_name = 'recorder_event'"
            " AND type IN ('table', 'index') AND sql IS NOT NULL ORDER BY type DESC"
        )
        schema_sql = [sql for (sql,) in cursor.fetchall()]
    db = sqlite3.connect(tmp_path / "copy.sqlite3")
    for sql in schema_sql:
        db.execute(sql)

    def schema():
        return set(db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index'"))

    before = schema()
    statements = drop_event_indexes(db)
    assert "event_timeline" not in {name for name, _ in schema()}
    build_indexes(db, statements)
    assert schema() == before

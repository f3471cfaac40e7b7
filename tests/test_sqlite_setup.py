"""Per-connection SQLite setup: auto_vacuum on new files only, WAL everywhere."""

import sqlite3

import pytest
from django.conf import settings
from django.db import connection
from django.db.utils import ConnectionHandler

pytestmark = pytest.mark.skipif(
    connection.vendor != "sqlite", reason="SQLite file settings; PostgreSQL has none"
)


@pytest.fixture
def open_file(django_db_blocker):
    """Opens a Django connection to a path with the project's SQLite options."""

    def open_(path):
        options = {**settings.DATABASES["default"], "NAME": str(path), "TEST": {}}
        conn = ConnectionHandler({"default": options}).create_connection("default")
        with django_db_blocker.unblock():
            conn.ensure_connection()
        return conn

    return open_


def test_a_new_file_gets_incremental_auto_vacuum_and_wal(tmp_path, open_file):
    conn = open_file(tmp_path / "new.sqlite3")
    conn.connection.execute("CREATE TABLE t (x)")
    conn.close()
    raw = sqlite3.connect(tmp_path / "new.sqlite3")
    assert raw.execute("PRAGMA auto_vacuum").fetchone()[0] == 2
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_opening_a_populated_file_writes_nothing(tmp_path, open_file):
    path = tmp_path / "old.sqlite3"
    open_file(path).close()
    watcher = sqlite3.connect(path)
    watcher.execute("CREATE TABLE t (x)")
    watcher.commit()
    before = watcher.execute("PRAGMA data_version").fetchone()[0]
    for _ in range(3):
        open_file(path).close()
    # data_version changes when another connection commits: a read-only request
    # must not take the write lock just by connecting.
    assert watcher.execute("PRAGMA data_version").fetchone()[0] == before


def test_a_file_without_auto_vacuum_is_left_as_it_is(tmp_path, open_file):
    path = tmp_path / "plain.sqlite3"
    raw = sqlite3.connect(path)
    raw.execute("CREATE TABLE t (x)")
    raw.commit()
    raw.close()
    conn = open_file(path)
    raw = conn.connection
    assert raw.execute("PRAGMA auto_vacuum").fetchone()[0] == 0  # migration 0003 does it
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()

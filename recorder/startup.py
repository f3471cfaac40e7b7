"""Refuse to serve from a damaged database.

A SQLite file that is damaged (a torn disk, a copy taken mid-write, a stray `dd`) does
not fail at start-up: it fails later, request by request, with 500s, and the drain fails
every time it runs. Checking once before serving turns that into one clear message.

Cheap on purpose, because it runs at every start: opening each SQLite database and
reading its schema catches a damaged header or schema; `PRAGMA quick_check` (a pass
over every page, without the index cross-checks of integrity_check) runs only on files
up to FLIGHTREC_STARTUP_CHECK_MAX_BYTES (256 MiB by default; 0 turns it off), which
takes well under a second. `manage.py check_db` is the thorough check.
PostgreSQL checks its own pages; nothing is done there.
"""

import os
import sqlite3
from pathlib import Path

from django.conf import settings

DEFAULT_MAX_BYTES = 256 * 1024 * 1024


class DamagedDatabase(Exception):
    """One or more databases cannot be served from; the message says which and why."""


def sqlite_problems(path: Path, *, quick_check_max_bytes: int) -> list[str]:
    """What is wrong with one SQLite file ([] when nothing is). Read-only."""
    if not path.exists():
        return []  # not created yet: migrate makes it
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=20)
    except sqlite3.Error as exc:
        return [f"{path}: cannot be opened: {exc}"]
    try:
        con.execute("SELECT count(*) FROM sqlite_master").fetchone()
        if quick_check_max_bytes and path.stat().st_size <= quick_check_max_bytes:
            rows = con.execute("PRAGMA quick_check(5)").fetchall()
            found = [r[0] for r in rows if r[0] != "ok"]
            if found:
                return [f"{path}: {'; '.join(found)}"]
    except sqlite3.DatabaseError as exc:
        return [f"{path}: {exc}"]
    finally:
        con.close()
    return []


def database_problems() -> list[str]:
    """Problems of every SQLite database in settings.DATABASES."""
    limit = int(os.getenv("FLIGHTREC_STARTUP_CHECK_MAX_BYTES", DEFAULT_MAX_BYTES))
    problems = []
    for db in settings.DATABASES.values():
        if db["ENGINE"] == "django.db.backends.sqlite3" and str(db["NAME"]) != ":memory:":
            problems += sqlite_problems(Path(db["NAME"]), quick_check_max_bytes=limit)
    return problems


def refuse_damaged_databases() -> None:
    """Raise DamagedDatabase with a message for the operator when a database is damaged."""
    problems = database_problems()
    if problems:
        raise DamagedDatabase(
            "flightrec will not start: the database is damaged.\n  "
            + "\n  ".join(problems)
            + "\nStop here and restore from a backup (manage.py backup makes them), or "
            "inspect it with manage.py check_db. Serving from it would only answer errors."
        )

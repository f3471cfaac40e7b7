"""Moving an embedded (SQLite) flightrec into PostgreSQL.

The target is the default database (DATABASE_URL), freshly migrated and empty; the
source is the pair of SQLite files of a data directory, read in one snapshot each.
Rows are streamed with COPY in their stored form (SQLite's text datetimes, JSON text,
0/1 booleans are all valid PostgreSQL input), in one transaction: a move that fails
leaves the target as empty as it was. Afterwards every identity sequence is moved past
the copied ids, so new rows do not collide with moved ones.

What moves: users and groups, applications, memberships, API keys, sessions, events,
the inbox, and every other table of the recorder app (keyframes, metrics counters,
purge logs, …); SQLite's full-text table does not, PostgreSQL's GIN index replaces it. What does not: login sessions
(people sign in again), the admin log, and permissions, which `migrate` creates.
"""

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from django.apps import apps
from django.contrib.auth.models import Permission
from django.core.management.color import no_style
from django.db import connection, transaction
from django.db.models import Model

from recorder import payloads
from recorder.fields import PackedJSONField
from recorder.routers import INBOX_MODELS

CHUNK = 10_000


class MoveError(Exception):
    pass


@dataclass
class Source:
    main: Path
    inbox: Path


def source_in(data_dir: Path) -> Source:
    src = Source(main=data_dir / "flightrec.sqlite3", inbox=data_dir / "inbox.sqlite3")
    if not src.main.exists():
        raise MoveError(f"no SQLite database at {src.main}")
    return src


def moved_models() -> list[type[Model]]:
    """The models whose rows move, in foreign-key order (parents first)."""
    wanted = [
        m
        for label in ("auth", "recorder")
        for m in apps.get_app_config(label).get_models(include_auto_created=True)
        if m is not Permission
        and not any(f.related_model is Permission for f in m._meta.concrete_fields)
    ]
    ordered: list[type[Model]] = []

    def visit(model, path=()):
        if model in ordered or model in path:
            return
        for field in model._meta.concrete_fields:
            if field.related_model in wanted and field.related_model is not model:
                visit(field.related_model, (*path, model))
        ordered.append(model)

    for model in wanted:
        visit(model)
    return ordered


def _applied(cursor) -> set[tuple[str, str]]:
    return {(app, name) for app, name in cursor.execute("SELECT app, name FROM django_migrations")}


def check_target(models: list[type[Model]], source_migrations: set[tuple[str, str]]) -> None:
    if connection.vendor != "postgresql":
        raise MoveError("the target must be PostgreSQL: set DATABASE_URL=postgres://…")
    with connection.cursor() as cursor:
        cursor.execute("SELECT app, name FROM django_migrations")
        target = {(app, name) for app, name in cursor.fetchall()}
        ours = {m for m in source_migrations if m[0] in ("auth", "recorder")}
        if ours - target:
            missing = ", ".join(f"{a}.{n}" for a, n in sorted(ours - target))
            raise MoveError(f"the target is missing migrations the source has: {missing}; "
                            "run `manage.py migrate` first")  # fmt: skip
        for model in models:
            table = model._meta.db_table
            cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {connection.ops.quote_name(table)})")
            if cursor.fetchone()[0]:
                raise MoveError(
                    f"the target is not empty: {table} has rows. Move into a freshly migrated "
                    "database (`manage.py migrate`, not `bootstrap`)."
                )


def _copy_table(src: sqlite3.Connection, model: type[Model], progress: Callable[[int], None]):
    table = model._meta.db_table
    columns = [f.column for f in model._meta.concrete_fields]
    have = {row[1] for row in src.execute(f'PRAGMA table_info("{table}")')}
    if not have:
        return 0
    missing = [c for c in columns if c not in have]
    if missing:
        raise MoveError(f"{table} in the source lacks columns {missing}: migrate it first")
    quoted = ", ".join(connection.ops.quote_name(c) for c in columns)
    # Packed payloads (recorder/payloads.py) go over as the JSON text PostgreSQL stores.
    packed = {f.column for f in model._meta.concrete_fields if isinstance(f, PackedJSONField)}
    select = (
        "SELECT "
        + ", ".join(f'fr_json("{c}")' if c in packed else f'"{c}"' for c in columns)
        + f' FROM "{table}"'
    )
    copied = 0
    raw = connection.connection  # psycopg's own connection: Django's cursor has no COPY
    with raw.cursor() as cursor:
        with cursor.copy(f"COPY {connection.ops.quote_name(table)} ({quoted}) FROM STDIN") as copy:
            rows = src.execute(select)
            while chunk := rows.fetchmany(CHUNK):
                for row in chunk:
                    copy.write_row(row)
                copied += len(chunk)
                progress(len(chunk))
    return copied


def move_to_postgres(
    data_dir: Path, *, progress: Callable[[str, int], Callable[[int], None]] | None = None
) -> dict[str, int]:
    """Copy every moved table from the SQLite files in data_dir into the default database.

    Returns rows copied per table. progress(table, total) returns a per-chunk callback.
    """
    source = source_in(Path(data_dir))
    models = moved_models()
    main = sqlite3.connect(f"file:{source.main}?mode=ro", uri=True)
    payloads.sqlite_register(main, str(source.main))
    inbox = (
        sqlite3.connect(f"file:{source.inbox}?mode=ro", uri=True) if source.inbox.exists() else None
    )
    counts: dict[str, int] = {}
    try:
        # One read transaction per file: a consistent snapshot even if something writes.
        main.execute("BEGIN")
        if inbox:
            inbox.execute("BEGIN")
        check_target(models, _applied(main))
        connection.ensure_connection()
        with transaction.atomic():
            with connection.cursor() as cursor:
                # SQLite holds naive UTC datetimes as text; read them as UTC.
                cursor.execute("SET LOCAL TIME ZONE 'UTC'")
            for model in models:
                # The models the router keeps in the inbox file on SQLite.
                is_inbox = model._meta.label_lower in {f"recorder.{m}" for m in INBOX_MODELS}
                src = inbox if is_inbox else main
                if src is None:
                    continue
                table = model._meta.db_table
                total = _count(src, table)
                tick = progress(table, total) if progress else (lambda n: None)
                counts[table] = _copy_table(src, model, tick)
            with connection.cursor() as cursor:
                for sql in connection.ops.sequence_reset_sql(no_style(), models):
                    cursor.execute(sql)
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE")  # fresh statistics for the planner on the new data
    finally:
        main.close()
        if inbox:
            inbox.close()
    return counts


def _count(src: sqlite3.Connection, table: str) -> int:
    try:
        return src.execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0]
    except sqlite3.OperationalError:  # no such table
        return 0

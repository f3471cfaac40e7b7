"""Storage: how big the database is, where the bytes are, backups and integrity checks.

SQLite and PostgreSQL each get a branch where they differ: file sizes, space
reclaiming, backup (SQLite backup API; PostgreSQL: pg_dump) and integrity checks.
"""

import shutil
import sqlite3
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import connections
from django.db.models import Count, Min, Sum

from recorder.models import InboxBatch, PurgeLog, Session, StorageSample

# Pages handed back per incremental_vacuum step: 4 MiB with 4 KiB pages, a short write.
VACUUM_STEP_PAGES = 1024


# --- Sizes -----------------------------------------------------------------------------


def _sqlite_path(alias: str) -> Path | None:
    db = settings.DATABASES[alias]
    if db["ENGINE"] != "django.db.backends.sqlite3":
        return None
    conn = connections[alias]
    # Under tests the database may be in memory: no file to measure.
    name = str(conn.settings_dict["NAME"])
    if name == ":memory:" or "mode=memory" in name:
        return None
    return Path(name)


def _pragma(alias: str, name: str) -> int:
    with connections[alias].cursor() as cursor:
        cursor.execute(f"PRAGMA {name}")
        return int(cursor.fetchone()[0])


def database_used_bytes(alias: str = "default") -> int:
    """Bytes the data takes: on SQLite the pages in use (free pages excluded, so a purge
    shows at once); on PostgreSQL the size of the database."""
    conn = connections[alias]
    if conn.vendor == "sqlite":
        pages = _pragma(alias, "page_count") - _pragma(alias, "freelist_count")
        return pages * _pragma(alias, "page_size")
    with conn.cursor() as cursor:
        cursor.execute("SELECT pg_database_size(current_database())")
        return int(cursor.fetchone()[0])


def database_file_bytes(alias: str = "default") -> int:
    """Bytes the main file takes, including free pages."""
    conn = connections[alias]
    if conn.vendor == "sqlite":
        return _pragma(alias, "page_count") * _pragma(alias, "page_size")
    return database_used_bytes(alias)


@dataclass
class FileSize:
    name: str
    path: str
    bytes: int


def database_files() -> list[FileSize]:
    """The SQLite files and their WAL files (empty on PostgreSQL)."""
    out = []
    for alias in dict.fromkeys(["default", settings.INBOX_DB]):
        path = _sqlite_path(alias)
        if path is None:
            continue
        for suffix, label in (("", alias), ("-wal", f"{alias} WAL")):
            f = Path(str(path) + suffix)
            out.append(FileSize(label, str(f), f.stat().st_size if f.exists() else 0))
    huey = settings.HUEY.get("filename")
    if huey and Path(huey).exists():
        out.append(FileSize("queue", huey, Path(huey).stat().st_size))
    return out


def free_disk_bytes() -> int:
    return shutil.disk_usage(settings.DATA_DIR).free


def vacuum_incremental(alias: str = "default") -> int:
    """Give free pages back to the filesystem in short steps. Returns pages freed.

    Needs auto_vacuum=INCREMENTAL (set on new files by recorder.sqlite_setup, by migration 0003 on
    old ones). PostgreSQL: autovacuum makes the space reusable; see the README.
    """
    conn = connections[alias]
    if conn.vendor != "sqlite":
        return 0
    if _pragma(alias, "auto_vacuum") != 2:
        return 0
    freed = 0
    pause = settings.FLIGHTREC_PURGE_PAUSE_MS / 1000
    if conn.in_atomic_block:
        # Inside the caller's transaction (tests): one page per statement step.
        with conn.cursor() as cursor:
            while (free := _pragma(alias, "freelist_count")) > 0:
                cursor.execute("PRAGMA incremental_vacuum")
                freed += 1
        return freed
    while (free := _pragma(alias, "freelist_count")) > 0:
        step = min(free, VACUUM_STEP_PAGES)
        conn.ensure_connection()
        # executescript steps the statement to the end; Python's execute() stops after
        # the first step, and this pragma frees one page per step. Outside a transaction
        # it is its own short write transaction.
        conn.connection.executescript(f"PRAGMA incremental_vacuum({step});")
        freed += step
        time.sleep(pause)
    return freed


# --- Where the bytes are ---------------------------------------------------------------


def applications_usage(apps) -> list[dict]:
    """Events and envelope bytes per application, from the session counters (no scan)."""
    rows = (
        Session.objects.filter(application__in=apps)
        .values("application_id", "application__name")
        .annotate(sessions=Count("id"), events=Sum("event_count"), bytes=Sum("byte_count"))
        .order_by("-bytes")
    )
    return [
        {
            "name": r["application__name"],
            "sessions": r["sessions"],
            "events": r["events"] or 0,
            "bytes": r["bytes"] or 0,
        }  # fmt: skip
        for r in rows
    ]


def largest_sessions(apps, limit: int = 10) -> list[Session]:
    return list(
        Session.objects.filter(application__in=apps)
        .select_related("application")
        .order_by("-byte_count")[:limit]
    )


def inbox_status() -> dict:
    agg = InboxBatch.objects.aggregate(
        batches=Count("id"), events=Sum("event_count"), oldest=Min("received_at")
    )
    age = (datetime.now(UTC) - agg["oldest"]).total_seconds() if agg["oldest"] else 0.0
    return {"batches": agg["batches"], "events": agg["events"] or 0, "oldest_age": max(0.0, age)}


def storage_sample(today: date | None = None) -> StorageSample:
    """Record today's size (upsert): the growth chart reads one row per day."""
    today = today or datetime.now(UTC).date()
    totals = Session.objects.aggregate(events=Sum("event_count"), sessions=Count("id"))
    sample, _ = StorageSample.objects.update_or_create(
        day=today,
        defaults={
            "db_bytes": database_used_bytes(),
            "events": totals["events"] or 0,
            "sessions": totals["sessions"],
        },
    )
    return sample


def growth(days: int = 14) -> list[StorageSample]:
    since = datetime.now(UTC).date() - timedelta(days=days - 1)
    return list(StorageSample.objects.filter(day__gte=since).order_by("day"))


def growth_chart(samples: list[StorageSample], width: int = 480, height: int = 120) -> dict:
    """Bar geometry for a plain SVG chart of db bytes per day (rendered by the template)."""
    if not samples:
        return {"bars": [], "width": width, "height": height, "max": 0}
    top = max(s.db_bytes for s in samples) or 1
    step = width / len(samples)
    bars = []
    for i, s in enumerate(samples):
        h = max(1.0, (height - 20) * s.db_bytes / top)
        bars.append({"x": round(i * step + 2, 1), "y": round(height - 15 - h, 1),
                     "w": round(max(step - 4, 1), 1), "h": round(h, 1), "day": s.day,
                     "bytes": s.db_bytes, "events": s.events})  # fmt: skip
    return {"bars": bars, "width": width, "height": height, "max": top}


def last_purges(limit: int = 10) -> list[PurgeLog]:
    return list(PurgeLog.objects.select_related("application").order_by("-started_at")[:limit])


def ingestion_refusal() -> str | None:
    """Why ingestion answers 503 right now, or None. Same rule as ingest.check_admission."""
    free = free_disk_bytes()
    minimum = settings.FLIGHTREC_MIN_FREE_DISK_BYTES
    if free < minimum:
        return (
            f"Ingestion is paused: only {_human(free)} free in the data directory, "
            f"below the {_human(minimum)} minimum (FLIGHTREC_MIN_FREE_DISK_BYTES). Senders "
            "get 503 and retry; nothing already accepted is lost. It resumes by itself "
            "once space is freed (purge old data or grow the disk)."
        )
    return None


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


# --- Backup ----------------------------------------------------------------------------


@dataclass
class BackupFile:
    alias: str
    path: Path
    bytes: int
    seconds: float
    check: str


def pg_dump_command(target: Path) -> str:
    db = settings.DATABASES["default"]
    return (
        f"PGPASSWORD=... pg_dump --format=custom --no-owner "
        f"--host={db.get('HOST') or 'localhost'} --port={db.get('PORT') or 5432} "
        f"--username={db.get('USER')} --file={target / 'flightrec.dump'} {db.get('NAME')}"
    )


def backup_to(target: Path) -> list[BackupFile]:
    """Consistent online copies of the SQLite databases into the directory `target`.

    The inbox is copied BEFORE the main database: an event drained in between is then
    in both copies (the drain skips it as a duplicate after a restore), never in neither.
    Each copy is one backup step: in WAL mode that reads one snapshot while writers go
    on (a multi-step backup would restart every time a writer commits).
    """
    target.mkdir(parents=True, exist_ok=True)
    out = []
    for alias in dict.fromkeys([settings.INBOX_DB, "default"]):
        source = _sqlite_path(alias)
        if source is None:
            raise ValueError(f"database {alias!r} is not an SQLite file")
        dest = target / source.name
        partial = dest.with_name(dest.name + ".partial")
        partial.unlink(missing_ok=True)
        started = time.perf_counter()
        src = sqlite3.connect(source, timeout=20)
        dst = sqlite3.connect(partial)
        try:
            src.backup(dst)
            dst.execute("PRAGMA journal_mode=DELETE")  # a standalone file, no -wal beside it
            check = dst.execute("PRAGMA quick_check").fetchone()[0]
        finally:
            dst.close()
            src.close()
        partial.replace(dest)
        out.append(
            BackupFile(alias, dest, dest.stat().st_size, time.perf_counter() - started, check)
        )
    return out


# --- Integrity -------------------------------------------------------------------------


@dataclass
class CheckResult:
    path: str
    ok: bool
    problems: list[str]
    seconds: float


def check_file(path: Path, *, quick: bool = False) -> CheckResult:
    """PRAGMA integrity_check (or quick_check) on one SQLite file, read-only."""
    started = time.perf_counter()
    if not path.exists():
        return CheckResult(str(path), False, ["file does not exist"], 0.0)
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=20)
        try:
            pragma = "quick_check" if quick else "integrity_check"
            rows = [r[0] for r in conn.execute(f"PRAGMA {pragma}(100)").fetchall()]
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        rows = [f"cannot read the file: {exc}"]
    ok = rows == ["ok"]
    return CheckResult(str(path), ok, [] if ok else rows, time.perf_counter() - started)


def recovery_steps(path: str) -> list[str]:
    return [
        "Stop the server and the consumer (nothing may write while you repair).",
        f"Keep the damaged file aside: cp {path} {path}.damaged",
        "Best: restore the latest backup (python manage.py backup PATH wrote it): copy "
        f"PATH/{Path(path).name} over {path} and delete {path}-wal and {path}-shm.",
        "Without a backup, salvage what is readable: "
        f"sqlite3 {path} '.recover' | sqlite3 {path}.recovered, then "
        f"python manage.py check_db --path {path}.recovered, and move it into place.",
        "If only the inbox file is damaged, events it held that were not yet drained may "
        "be lost; everything already drained is in the main database.",
        "Start again and run python manage.py check_db.",
    ]


def databases_check(*, quick: bool = False) -> list[CheckResult]:
    out = []
    for alias in dict.fromkeys(["default", settings.INBOX_DB]):
        path = _sqlite_path(alias)
        if path is not None:
            out.append(check_file(path, quick=quick))
    return out

"""Retention on PostgreSQL: chunked deletes (what the product does) against dropping
time partitions (`python -m bench retention --stack postgres`).

The timeline data set (bench/timeline.py: 3,000,000 events, 1,000 sessions over 30
days) is loaded into a fresh database on DATABASE_URL's server. A child process
(DATABASE_URL pointed at that database, so recorder.retention runs unchanged) then:

1. copies the event table into a scratch schema `part`, partitioned by day on ts, with
   the same indexes (the primary key and the uid constraint must include ts there: a
   partitioned table only enforces uniqueness within a partition);
2. drops the partitions older than the cutoff (20 days before the newest events), one
   DROP TABLE per partition, while a writer COPYs batches of 500 events into the
   partitioned table; then drops the scratch schema;
3. removes the sessions older than the same cutoff with the product's max_age policy
   (recorder.retention.purge_max_age: chunks of FLIGHTREC_PURGE_CHUNK events, a pause of
   FLIGHTREC_PURGE_PAUSE_MS between chunks) while the writer COPYs into recorder_event,
   then VACUUMs the table (the space of deleted rows is reusable only after it).

Rows: seconds for each way, the writer's longest batch and its throughput
while each ran against its idle throughput just before.
"""

import json
import os
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DAY_US = 86_400 * 1_000_000
KEEP_DAYS = 20
BATCH = 500


def run(args) -> list[dict]:
    from bench.timeline import postgres_database
    from tests.stack import pg_execute, with_database

    events = args.events or (300_000 if args.quick else 3_000_000)
    admin = os.environ["DATABASE_URL"]
    name = f"flightrec_bench_retention_{os.getpid()}"
    try:
        loaded = postgres_database(name, events=events, sessions=max(1, events // 3000), seed=1)
        env = {**os.environ, "DATABASE_URL": with_database(admin, name)}
        done = subprocess.run(
            [sys.executable, "-m", "bench.retention_postgres", "--worker"],
            env=env, cwd=ROOT, capture_output=True, text=True, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"retention benchmark failed:\n{done.stderr[-3000:]}")
        rows = json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        pg_execute(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    rows.insert(0, {"name": "retention (PostgreSQL): load", "value": round(loaded or 0, 1),
                    "unit": "s", "note": f"{events} events, as bench timeline"})  # fmt: skip
    return rows


# --- Worker (child process) ------------------------------------------------------------


def _connect():
    import psycopg

    url = os.environ["DATABASE_URL"].replace("postgres://", "postgresql://", 1)
    return psycopg.connect(url, autocommit=True)


class Writer(threading.Thread):
    """COPYs batches of BATCH events into `table`, one transaction each, like the drain."""

    def __init__(self, table: str, app_id: int, session_id: int, tag: str):
        super().__init__(daemon=True)
        self.table, self.app_id, self.session_id, self.tag = table, app_id, session_id, tag
        self.stop = threading.Event()
        self.log: list[tuple[float, float]] = []  # (started, finished) per batch

    def run(self):
        from bench.timeline import EVENT_COLUMNS

        seq = 0
        with _connect() as conn:
            conn.autocommit = False
            while not self.stop.is_set():
                now = int(time.time() * 1e6)
                rows = []
                for _ in range(BATCH):
                    seq += 1
                    rows.append((
                        self.app_id, self.session_id, seq, now, now, "log", "live", 20, None,
                        None, None, f"live event {seq}", json.dumps({"n": seq}), None,
                        f"{self.tag}-{seq}", 120, None,
                    ))  # fmt: skip
                started = time.perf_counter()
                with conn.cursor().copy(f"COPY {self.table} ({EVENT_COLUMNS}) FROM STDIN") as c:
                    for row in rows:
                        c.write_row(row)
                conn.commit()
                self.log.append((started, time.perf_counter()))

    def rate(self, start: float, end: float) -> float:
        done = [b for b in self.log if start <= b[1] <= end]
        return len(done) * BATCH / (end - start) if end > start else 0.0

    def longest(self, start: float, end: float) -> float:
        """Longest batch that overlapped [start, end], in ms."""
        spans = [b[1] - b[0] for b in self.log if b[1] >= start and b[0] <= end]
        return max(spans, default=0.0) * 1000

    def p99(self, start: float, end: float) -> float:
        """99th percentile of the batches that overlapped [start, end], in ms."""
        spans = sorted(b[1] - b[0] for b in self.log if b[1] >= start and b[0] <= end)
        return spans[min(len(spans) - 1, int(0.99 * len(spans)))] * 1000 if spans else 0.0

    def median(self, start: float, end: float) -> float:
        spans = [b[1] - b[0] for b in self.log if start <= b[0] and b[1] <= end]
        return statistics.median(spans) * 1000 if spans else 0.0


def _timed_under_writer(writer: Writer, operation, idle: float = 12.0) -> dict:
    writer.start()
    time.sleep(idle)
    t0 = time.perf_counter()
    operation()
    t1 = time.perf_counter()
    time.sleep(1.0)
    writer.stop.set()
    writer.join()
    before = t0 - idle + 2  # the first seconds warm up the connection and the caches
    return {
        "seconds": t1 - t0,
        "idle_rate": writer.rate(before, t0),
        "idle_median_ms": writer.median(before, t0),
        "idle_p99_ms": writer.p99(before, t0),
        "rate": writer.rate(t0, t1) if t1 - t0 > 2 else None,
        "longest_ms": writer.longest(t0, t1),
        "p99_ms": writer.p99(t0, t1),
    }


def partitioned_copy(conn, cutoff_us: int) -> list[tuple[str, int]]:
    """part.event: recorder_event partitioned by day on ts, same indexes. Returns the
    partitions entirely before cutoff_us with their row counts."""
    lo, hi = conn.execute("SELECT MIN(ts), MAX(ts) FROM recorder_event").fetchone()
    first = cutoff_us - ((cutoff_us - lo) // DAY_US + 1) * DAY_US
    last = int(time.time() * 1e6) + 2 * DAY_US
    conn.execute("DROP SCHEMA IF EXISTS part CASCADE")
    conn.execute("CREATE SCHEMA part")
    conn.execute(
        "CREATE TABLE part.event (LIKE public.recorder_event INCLUDING DEFAULTS) "
        "PARTITION BY RANGE (ts)"
    )
    # Identity columns on partitioned tables need PostgreSQL 17: a sequence instead.
    conn.execute("CREATE SEQUENCE part.event_id_seq")
    conn.execute("ALTER TABLE part.event ALTER id SET DEFAULT nextval('part.event_id_seq')")
    old, start = [], first
    while start < last:
        name = f"part.event_{(start - first) // DAY_US:03d}"
        conn.execute(
            f"CREATE TABLE {name} PARTITION OF part.event FOR VALUES FROM ({start}) "
            f"TO ({start + DAY_US})"
        )
        if start + DAY_US <= cutoff_us:
            old.append(name)
        start += DAY_US
    conn.execute("INSERT INTO part.event SELECT * FROM public.recorder_event")
    conn.execute("SELECT setval('part.event_id_seq', (SELECT MAX(id) FROM part.event))")
    conn.execute("SET maintenance_work_mem = '256MB'")
    conn.execute("ALTER TABLE part.event ADD PRIMARY KEY (id, ts)")
    conn.execute("ALTER TABLE part.event ADD UNIQUE (application_id, uid, ts)")
    for (sql,) in conn.execute(
        "SELECT i.indexdef FROM pg_indexes i WHERE i.tablename = 'recorder_event' AND "
        "i.schemaname = 'public' AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE "
        "c.conname = i.indexname)"
    ).fetchall():
        conn.execute(
            sql.replace("CREATE INDEX ", "CREATE INDEX part_", 1).replace(
                " ON public.recorder_event ", " ON part.event ", 1
            )
        )
    conn.execute("VACUUM ANALYZE part.event")
    counts = []
    for name in old:
        counts.append((name, conn.execute(f"SELECT COUNT(*) FROM {name}").fetchone()[0]))
    return counts


def worker() -> list[dict]:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "flightrec_site.settings")
    sys.path.insert(0, ROOT)
    import django

    django.setup()
    from django.conf import settings

    from recorder import retention
    from recorder.models import Application, Event, Session

    conn = _connect()
    newest = conn.execute("SELECT MAX(ts) FROM recorder_event").fetchone()[0]
    # A day boundary, so that "older than the cutoff" is whole partitions.
    cutoff_us = (newest - KEEP_DAYS * DAY_US) // DAY_US * DAY_US
    cutoff = datetime.fromtimestamp(cutoff_us / 1e6, UTC)
    app = Application.objects.order_by("id").first()
    live = Session.objects.create(application=app, key="live", started_at=datetime.now(UTC))

    started = time.perf_counter()
    old = partitioned_copy(conn, cutoff_us)
    copy_s = time.perf_counter() - started
    dropped_rows = sum(n for _, n in old)

    def drop():
        for name, _ in old:
            conn.execute(f"DROP TABLE {name}")

    dropping = _timed_under_writer(Writer("part.event", app.id, live.id, "p"), drop)
    conn.execute("DROP SCHEMA part CASCADE")

    to_delete = Event.objects.filter(
        session__in=Session.objects.filter(last_event_at__lt=cutoff, pinned=False)
    ).count()
    removed = {"sessions": 0, "events": 0}
    # now - retention_days = cutoff: the product's max_age policy, with its own chunking.
    policy = retention.Policy(retention_days=KEEP_DAYS, max_sessions=0,
                              max_events_per_session=0, overflow="drop_oldest")  # fmt: skip

    def delete():
        for application in Application.objects.order_by("id"):
            result = retention.purge_max_age(
                application, policy, now=cutoff + timedelta(days=KEEP_DAYS), dry_run=False,
                planned=set(),
            )  # fmt: skip
            removed["sessions"] += result.sessions
            removed["events"] += result.events

    deleting = _timed_under_writer(Writer("recorder_event", app.id, live.id, "d"), delete)
    started = time.perf_counter()
    conn.execute("VACUUM recorder_event")
    vacuum_s = time.perf_counter() - started

    chunk, pause = settings.FLIGHTREC_PURGE_CHUNK, settings.FLIGHTREC_PURGE_PAUSE_MS
    chunks = -(-removed["events"] // chunk) + removed["sessions"]
    pauses_s = chunks * pause / 1000
    return [
        {"name": "retention (PostgreSQL): chunked delete", "value": round(deleting["seconds"], 1),
         "unit": "s", "baseline": round(dropping["seconds"], 3),
         "ratio": round(deleting["seconds"] / dropping["seconds"]),
         "note": f"{removed['events']} events of {removed['sessions']} sessions (expected "
                 f"{to_delete}) in chunks of {chunk}, about {pauses_s:.0f} s of it the "
                 f"{pause} ms pauses; baseline = DROP of {len(old)} day partitions holding "
                 f"{dropped_rows} events"},
        {"name": "retention (PostgreSQL): VACUUM after the delete", "value": round(vacuum_s, 1),
         "unit": "s", "note": "deleted rows' space is reusable only after it (autovacuum)"},
        {"name": "retention (PostgreSQL): writer's longest batch during the delete",
         "value": round(deleting["longest_ms"], 1), "unit": "ms",
         "baseline": round(deleting["idle_median_ms"], 1),
         "note": f"COPY of {BATCH} events per transaction; baseline = median batch before; "
                 f"p99 {deleting['p99_ms']:.0f} ms during, {deleting['idle_p99_ms']:.0f} ms "
                 "before"},
        {"name": "retention (PostgreSQL): writer's longest batch during the drops",
         "value": round(dropping["longest_ms"], 1), "unit": "ms",
         "baseline": round(dropping["idle_median_ms"], 1),
         "note": "DROP TABLE of a partition locks the parent table for an instant; "
                 f"p99 before {dropping['idle_p99_ms']:.0f} ms"},
        {"name": "retention (PostgreSQL): writer throughput during the delete",
         "value": round(deleting["rate"] or 0), "unit": "events/s",
         "baseline": round(deleting["idle_rate"]),
         "ratio": round((deleting["rate"] or 0) / deleting["idle_rate"], 2)
         if deleting["idle_rate"] else None,
         "note": "baseline = the same writer in the 10 s before the delete"},
        {"name": "retention (PostgreSQL): build the partitioned copy", "value": round(copy_s, 1),
         "unit": "s", "note": "setup only: INSERT … SELECT into day partitions, indexes after"},
    ]  # fmt: skip


if __name__ == "__main__":
    if "--worker" in sys.argv:
        print(json.dumps(worker()))
    else:
        from bench.__main__ import main

        sys.exit(main(["retention", "--stack", "postgres", *sys.argv[1:]]))

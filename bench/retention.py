"""Purge under load: a third of the events goes while ingestion runs.

    python -m bench.retention [--retention-events 300000]
    python -m bench retention --stack postgres   # deletes vs partition drops: bench/retention_postgres.py

Builds a fresh SQLite data directory (a child process, so the caller's database is never
touched): the demo mix (recorder.demo) for 30 days, cloned day by day with INSERT ...
SELECT, then a retention of 20 days removes 10 days = one third of the events while a
writer thread keeps ingesting (events_accept + drain, as the consumer does).

Rows: longest wait of the writer for the write lock during the purge (target <= 100 ms),
ingestion throughput during the purge vs. without it (target >= 0.5), total purge time,
and bytes per stored event of the demo mix including every index.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DAYS, KEEP_DAYS = 30, 20


def run(args) -> list[dict]:
    if getattr(args, "stack", "sqlite") == "postgres":
        from bench import retention_postgres

        return retention_postgres.run(args)
    total = getattr(args, "retention_events", None) or 300_000
    with tempfile.TemporaryDirectory(prefix="flightrec-bench-retention-") as data_dir:
        env = {**os.environ, "FLIGHTREC_DATA_DIR": data_dir, "FLIGHTREC_HUEY_IMMEDIATE": "0"}
        done = subprocess.run(
            [sys.executable, "-m", "bench.retention", "--worker", "--retention-events", str(total)],
            env=env, cwd=ROOT, capture_output=True, text=True, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"retention benchmark failed:\n{done.stderr[-3000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])


# --- Worker (child process) ------------------------------------------------------------


def _setup_django():
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "flightrec_site.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("migrate", database="inbox", verbosity=0)


def _build(total: int) -> int:
    """The demo mix for DAYS days: demo sessions once, then cloned per day in SQL."""
    from django.db import connection, transaction

    from recorder.demo import DEMOS, demo_load
    from recorder.models import Event, Session

    per_session = max(50, total // (DAYS * len(DEMOS)))
    demo_load(events_per_session=per_session, seed=3)
    base = list(Session.objects.all())
    day_us = 86_400 * 1_000_000
    cols = [f.column for f in Event._meta.concrete_fields if f.column not in ("id",)]
    table = Event._meta.db_table
    for day in range(1, DAYS):
        with transaction.atomic():
            for s in base:
                shift = day * 86_400
                clone = Session.objects.create(
                    application_id=s.application_id, key=f"{s.key}-d{day}", status=s.status,
                    started_at=s.started_at - timedelta(seconds=shift),
                    last_event_at=s.last_event_at - timedelta(seconds=shift),
                    metadata=s.metadata, event_count=s.event_count, error_count=s.error_count,
                    byte_count=s.byte_count, last_seq=s.last_seq,
                )  # fmt: skip
                select = ", ".join(
                    {
                        "session_id": "%s",
                        "ts": f"ts - {day * day_us}",
                        "received_at": f"received_at - {day * day_us}",
                        "uid": f"uid || '-d{day}'",
                    }.get(c, c)  # fmt: skip
                    for c in cols
                )
                with connection.cursor() as cursor:
                    cursor.execute(
                        f"INSERT INTO {table} ({', '.join(cols)}) SELECT {select} FROM {table} "
                        "WHERE session_id = %s",
                        [clone.id, s.id],
                    )
    # The clones went in by INSERT ... SELECT, around the drain: index them for full
    # text as the drain would have (the purge's delete trigger expects indexed rows).
    from recorder import search

    search.fts_rebuild()
    return Event.objects.count()


def _sizes() -> dict[str, int]:
    from django.db import connection

    with connection.cursor() as cursor:
        try:
            cursor.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name")
            return {name: int(n) for name, n in cursor.fetchall()}
        except Exception:  # dbstat is an optional SQLite build feature
            return {}


class Writer(threading.Thread):
    """Ingests batches of 200 events and drains them, like senders + the consumer."""

    def __init__(self):
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.log: list[tuple[float, int, float]] = []  # (time, events stored, lock wait)

    def run(self):
        from django.db import connection, transaction

        from recorder import drain, ingest
        from recorder.models import Application

        app = Application.objects.get(name="demo")
        i = 0
        try:
            while not self.stop.is_set():
                events = [{"session": f"live-{i // 20_000}", "type": "log", "ts": time.time(),
                           "message": f"live event {i + k}", "payload": {"n": i + k}}
                          for k in range(200)]  # fmt: skip
                body = json.dumps(events).encode()
                ingest.events_accept(application=app, batch=ingest.parse_batch(body), body=body)
                i += 200
                # BEGIN IMMEDIATE takes the write lock: its duration is the wait.
                t0 = time.perf_counter()
                with transaction.atomic():
                    waited = time.perf_counter() - t0
                stats = drain.drain_once()
                self.log.append((time.perf_counter(), stats.events, waited))
        finally:
            connection.close()

    def window(self, start: float, end: float) -> tuple[float, float]:
        rows = [r for r in self.log if start <= r[0] <= end]
        return sum(r[1] for r in rows) / max(end - start, 1e-9), max(
            (r[2] for r in rows), default=0.0
        )


def worker(total: int) -> list[dict]:
    _setup_django()
    from django.conf import settings

    from recorder import retention, storage

    t0 = time.perf_counter()
    events = _build(total)
    build_s = time.perf_counter() - t0
    used = storage.database_used_bytes()
    sizes = _sizes()
    event_bytes = sum(n for name, n in sizes.items() if "event" in name)

    writer = Writer()
    writer.start()
    time.sleep(1.0)  # warm up
    b0 = time.perf_counter()
    time.sleep(8.0)
    b1 = time.perf_counter()
    base_rate, base_wait = writer.window(b0, b1)

    settings.FLIGHTREC_RETENTION_DAYS = KEEP_DAYS
    p0 = time.perf_counter()
    results = retention.purge_run()
    p1 = time.perf_counter()
    writer.stop.set()
    writer.join()
    during_rate, during_wait = writer.window(p0, p1)
    purged = sum(r.events for r in results)
    scale = f"{events} events built ({build_s:.0f}s), {purged} purged"
    rows = [
        {"name": "retention.purge_longest_writer_wait", "value": round(during_wait * 1000, 1),
         "unit": "ms", "baseline": round(base_wait * 1000, 1),
         "ratio": round(during_wait / base_wait, 2) if base_wait else None,
         "note": f"target <= 100 ms; baseline = same writer without purge; {scale}"},
        {"name": "retention.ingest_throughput_during_purge", "value": round(during_rate),
         "unit": "events/s", "baseline": round(base_rate),
         "ratio": round(during_rate / base_rate, 2) if base_rate else None,
         "note": "target ratio >= 0.5; writer = events_accept + drain_once, batches of 200"},
        {"name": "retention.purge_total_time", "value": round(p1 - p0, 1), "unit": "s",
         "baseline": None, "ratio": None,
         "note": f"{purged} events in chunks of {settings.FLIGHTREC_PURGE_CHUNK}, "
                 f"pause {settings.FLIGHTREC_PURGE_PAUSE_MS} ms, incl. incremental vacuum; "
                 f"{purged / (p1 - p0):.0f} events/s"},
        {"name": "storage.bytes_per_event_demo_mix", "value": round(used / events, 1),
         "unit": "B/event", "baseline": 500_000_000 / 3_000_000,
         "ratio": round(used / events / (500_000_000 / 3_000_000), 2),
         "note": f"whole main DB incl. every index / {events} events; event table+indexes "
                 f"alone {event_bytes / events:.0f} B/event; baseline = 500 MB / 3M target; "
                 + ", ".join(f"{k}={v / events:.0f}" for k, v in sorted(sizes.items(), key=lambda kv: -kv[1])[:8])},
    ]  # fmt: skip
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", action="store_true")
    parser.add_argument("--retention-events", type=int, default=300_000)
    ns = parser.parse_args()
    if ns.worker:
        print(json.dumps(worker(ns.retention_events)))
    else:
        for row in run(ns):
            print(
                f"{row['name']:45} {row['value']:>10} {row['unit']:10} ratio {row['ratio']}  {row['note']}"
            )

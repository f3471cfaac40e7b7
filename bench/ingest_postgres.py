"""Ingestion on PostgreSQL + Redis (`python -m bench ingest --stack postgres`).

- flightrec: HTTP batches of 500 demo-mix events spread over 2 web processes (gunicorn)
  with 2 Huey consumers, timed until the last event is in the Event table.
- raw: the same rows into the same schema (a freshly migrated database on the same
  server), by psycopg executemany with the drain's own INSERT (batches of 1,000 per
  transaction), and by COPY.
- 1 vs 2 consumers: the inbox is filled with the consumers stopped, then 1 (or 2)
  consumers start and are timed until it is empty. On 2 shared cores this shows the
  shape of the scaling, not what more cores would give.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import orjson

from bench.ingest import BATCH, Poster, demo_mix, raw_rows
from tests.stack import ROOT, Stack, pg_execute, with_database

COLUMNS = (
    "application_id, session_id, seq, ts, received_at, type, source, severity, key,"
    " correlation_id, actor, message, payload, state, uid, size, redacted"
)


def _connect(url: str):
    import psycopg

    return psycopg.connect(url.replace("postgres://", "postgresql://", 1))


def _event_count(url: str) -> int:
    with _connect(url) as conn:
        return conn.execute("SELECT COUNT(*) FROM recorder_event").fetchone()[0]


def _wait_for_events(url: str, n: int, timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout
    with _connect(url) as conn:
        conn.autocommit = True
        while conn.execute("SELECT COUNT(*) FROM recorder_event").fetchone()[0] < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{n} events were not stored in {timeout}s")
            time.sleep(0.05)


def post_all(stack: Stack, key: str, bodies: list[bytes], senders: int = 4) -> float:
    """Post every body, round-robin over the stack's web processes; returns seconds."""
    queue = list(bodies)
    lock = threading.Lock()

    def send(i: int):
        poster = Poster(stack.ports[i % len(stack.ports)], key)
        while True:
            with lock:
                if not queue:
                    return
                body = queue.pop()
            poster.post(body)

    started = time.perf_counter()
    threads = [threading.Thread(target=send, args=(i,)) for i in range(senders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - started


def end_to_end(bodies: list[bytes], n: int) -> tuple[float, float, int]:
    """(seconds until acknowledged, seconds until stored, bytes of the event table with
    its TOAST and indexes) with 2 web + 2 consumers."""
    stack = Stack(Path(tempfile.mkdtemp(prefix="flightrec-bench-")), webs=2, consumers=2)
    try:
        stack.start()
        key = stack.manage("apikey", "bench").strip().splitlines()[-1]
        started = time.perf_counter()
        acked = post_all(stack, key, bodies)
        _wait_for_events(stack.env["DATABASE_URL"], n)
        stored = time.perf_counter() - started
        with _connect(stack.env["DATABASE_URL"]) as conn:
            size = conn.execute("SELECT pg_total_relation_size('recorder_event')").fetchone()[0]
        return acked, stored, size
    finally:
        stack.stop()
        shutil.rmtree(stack.data_dir, ignore_errors=True)


def drain_rate(bodies: list[bytes], n: int, consumers: int) -> float:
    """Seconds for `consumers` consumer processes to drain an inbox of n events."""
    stack = Stack(Path(tempfile.mkdtemp(prefix="flightrec-bench-")), webs=1, consumers=consumers)
    try:
        stack.manage("bootstrap", "--no-demo")
        stack.start_web(0)
        key = stack.manage("apikey", "bench").strip().splitlines()[-1]
        post_all(stack, key, bodies)
        stack.stop_web(0)  # only the consumers work while they are timed
        if _event_count(stack.env["DATABASE_URL"]):
            raise RuntimeError("events were drained before the consumers started")
        started = time.perf_counter()
        for i in range(consumers):
            stack.start_consumer(i)
        _wait_for_events(stack.env["DATABASE_URL"], n)
        return time.perf_counter() - started
    finally:
        stack.stop()
        shutil.rmtree(stack.data_dir, ignore_errors=True)


def raw_database(admin_url: str, session_keys: list[str]) -> tuple[str, int, dict[str, int]]:
    """A freshly migrated database on the same server: the schema the drain writes to,
    with an application and the sessions the rows point at, made through the ORM so
    every column gets its default. Returns (url, application id, session ids by key)."""
    name = f"flightrec_raw_{int(time.time())}"
    pg_execute(admin_url, f'CREATE DATABASE "{name}"')
    url = with_database(admin_url, name)
    env = {**os.environ, "DATABASE_URL": url}
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True
    )
    code = (
        "import json\nfrom datetime import UTC, datetime\n"
        "from recorder.models import Application, Session\n"
        "app = Application.objects.create(name='raw')\n"
        f"keys = {session_keys!r}\n"
        "Session.objects.bulk_create([Session(application=app, key=k, "
        "started_at=datetime.now(UTC)) for k in keys])\n"
        "ids = dict(Session.objects.values_list('key', 'id'))\n"
        "print('RESULT=' + json.dumps([app.id, ids]))"
    )
    out = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT, env=env, check=True, capture_output=True, text=True,
    )  # fmt: skip
    line = [x for x in out.stdout.splitlines() if x.startswith("RESULT=")][-1]
    app_id, ids = orjson.loads(line[len("RESULT=") :])
    return url, app_id, ids


def raw_insert(url: str, rows: list[tuple], *, copy: bool) -> float:
    """The same rows into the events table, 1,000 per transaction; returns seconds."""
    with _connect(url) as conn:
        conn.execute("TRUNCATE recorder_event")
        conn.commit()
        marks = ", ".join(["%s"] * 12 + ["%s::jsonb", "%s::jsonb", "%s", "%s", "%s::jsonb"])
        sql = f"INSERT INTO recorder_event ({COLUMNS}) VALUES ({marks}) ON CONFLICT DO NOTHING"
        started = time.perf_counter()
        for i in range(0, len(rows), 1000):
            chunk = rows[i : i + 1000]
            with conn.cursor() as cur:
                if copy:
                    with cur.copy(f"COPY recorder_event ({COLUMNS}) FROM STDIN") as c:
                        for row in chunk:
                            c.write_row(row)
                else:
                    cur.executemany(sql, chunk)
            conn.commit()
        return time.perf_counter() - started


def run(args) -> list[dict]:
    n = args.events or (40_000 if args.quick else 200_000)
    admin_url = os.environ["DATABASE_URL"]
    events = demo_mix(n)
    bodies = [orjson.dumps(events[i : i + BATCH]) for i in range(0, n, BATCH)]

    ndjson = sum(len(orjson.dumps(ev)) + 1 for ev in events) / n
    acked_s, stored_s, table_bytes = end_to_end(bodies, n)
    one_s = drain_rate(bodies, n, consumers=1)
    two_s = drain_rate(bodies, n, consumers=2)

    raw_url, app_id, session_ids = raw_database(admin_url, sorted({e["session"] for e in events}))
    rows = raw_rows(events, app_id, session_ids)
    try:
        many_s = raw_insert(raw_url, rows, copy=False)
        copy_s = raw_insert(raw_url, rows, copy=True)
    finally:
        pg_execute(admin_url, f'DROP DATABASE IF EXISTS "{raw_url.rsplit("/", 1)[1]}" WITH (FORCE)')

    ours, many, copied = n / stored_s, n / many_s, n / copy_s
    return [
        {"name": "ingest end-to-end, PostgreSQL (2 web + 2 consumers)", "value": ours,
         "unit": "events/s", "baseline": many, "ratio": ours / many,
         "note": f"raw psycopg executemany of the drain's INSERT, same schema; {n} events, "
                 f"batches of {BATCH}; all acknowledged after {acked_s:.1f}s; target ≥ 0.5"},
        {"name": "ingest end-to-end vs raw COPY", "value": ours, "unit": "events/s",
         "baseline": copied, "ratio": ours / copied, "note": "COPY in chunks of 1,000 rows"},
        {"name": "drain, 1 consumer (2 threads)", "value": n / one_s, "unit": "events/s",
         "note": "inbox filled first, then timed until empty"},
        {"name": "drain, 2 consumers (2 threads each)", "value": n / two_s, "unit": "events/s",
         "baseline": n / one_s, "ratio": one_s / two_s,
         "note": "ratio = speed-up over 1 consumer, on 2 shared cores"},
        {"name": "PostgreSQL bytes per event (TOAST and indexes included)",
         "value": table_bytes / n, "unit": "B", "baseline": ndjson, "ratio": table_bytes / n / ndjson,
         "note": "baseline = mean NDJSON size of the event"},
    ]  # fmt: skip

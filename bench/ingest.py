"""End-to-end ingestion vs the raw SQLite limit, acknowledgement latency, bytes per event.

- flightrec: HTTP batches of 500 demo-mix events into a real server (gunicorn) with a
  real Huey consumer, timed until the last event is in the Event table.
- raw: plain sqlite3 executemany of the same rows into the same schema (a copy of the
  migrated database: same indexes, WAL, same synchronous setting), batches of 1000.
- ack latency: 100-event batches posted one at a time while another sender keeps the
  consumer draining.
- bytes/event: database growth (indexes included) over the mean NDJSON size of an event.
"""

import http.client
import random
import shutil
import sqlite3
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from bench.bulk import raw_copy
from tests.stack import Stack

BATCH = 500


def demo_mix(n: int, seed: int = 3) -> list[dict]:
    """n envelopes in the proportions of the demo sessions, in sessions of ~3,000."""
    import django

    django.setup()
    from recorder import demo

    rng = random.Random(seed)
    events: list[dict] = []
    start = datetime(2026, 11, 1, tzinfo=UTC)
    generators = [g for _, _, g, _ in demo.DEMOS]
    s = 0
    while len(events) < n:
        clock = demo._Clock(rng, start + timedelta(hours=s))
        gen = generators[s % len(generators)]
        for i, ev in enumerate(gen(rng, clock, min(3000, n - len(events)))):
            ev["session"] = f"bench-{s}"
            ev["id"] = f"s{s}-{i}"
            events.append(ev)
        s += 1
    return events[:n]


class Poster:
    """A keep-alive HTTP connection, as a real sender would hold."""

    def __init__(self, port: int, key: str):
        self.port, self.key = port, key
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def post(self, body: bytes) -> float:
        started = time.perf_counter()
        self.conn.request(
            "POST", "/api/v1/events", body,
            {"Content-Type": "application/json", "X-API-Key": self.key},
        )  # fmt: skip
        resp = self.conn.getresponse()
        resp.read()
        if resp.status != 202:
            raise RuntimeError(f"POST answered {resp.status}")
        return time.perf_counter() - started


def event_count(db: Path) -> int:
    con = sqlite3.connect(db, timeout=30)
    try:
        return con.execute("SELECT COUNT(*) FROM recorder_event").fetchone()[0]
    finally:
        con.close()


def _db_bytes(db: Path) -> int:
    con = sqlite3.connect(db, timeout=30)
    try:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        pages = con.execute("PRAGMA page_count").fetchone()[0]
        free = con.execute("PRAGMA freelist_count").fetchone()[0]
        size = con.execute("PRAGMA page_size").fetchone()[0]
        return (pages - free) * size
    finally:
        con.close()


def flightrec_ingest(stack: Stack, key: str, bodies: list[bytes], n: int, senders: int = 3):
    db = stack.data_dir / "flightrec.sqlite3"
    queue = list(bodies)
    lock = threading.Lock()

    def send():
        poster = Poster(stack.ports[0], key)
        while True:
            with lock:
                if not queue:
                    return
                body = queue.pop(0)
            poster.post(body)

    started = time.perf_counter()
    threads = [threading.Thread(target=send) for _ in range(senders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    acked = time.perf_counter() - started
    while event_count(db) < n:
        time.sleep(0.02)
    return acked, time.perf_counter() - started


def raw_rows(events: list[dict], app_id: int, session_ids: dict[str, int]) -> list[tuple]:
    """The same rows the drain writes, built ahead so only the inserts are timed."""
    from recorder import ingest

    rows = []
    seqs: dict[str, int] = {}
    now = int(time.time() * 1e6)
    for ev in events:
        norm = ingest.normalize_event(ev, session_key=None, received_us=now)
        seqs[ev["session"]] = seqs.get(ev["session"], 0) + 1
        dumps = lambda v: None if v is None else orjson.dumps(v).decode()  # noqa: E731
        rows.append((
            app_id, session_ids[ev["session"]], seqs[ev["session"]], norm["ts"], now,
            norm["type"], norm.get("source"), norm["severity"], norm.get("key"),
            norm.get("correlation_id"), norm.get("actor"), norm.get("message"),
            dumps(norm.get("payload")), dumps(norm.get("state")), ev["id"],
            len(orjson.dumps(norm)), None,
        ))  # fmt: skip
    return rows


def raw_insert(template: Path, ingested: Path, events: list[dict]) -> float:
    """Insert the same events into a copy of the empty schema, with the sessions (and
    the application) copied from the ingested database so the foreign keys hold."""
    con = raw_copy(template, ingested, "raw.sqlite3")
    session_ids = dict(con.execute("SELECT key, id FROM recorder_session"))
    app_id = con.execute("SELECT application_id FROM recorder_session LIMIT 1").fetchone()[0]
    rows = raw_rows(events, app_id, session_ids)
    sql = (
        "INSERT INTO recorder_event (application_id, session_id, seq, ts, received_at, type,"
        " source, severity, key, correlation_id, actor, message, payload, state, uid, size,"
        " redacted) VALUES (" + ",".join("?" * 17) + ") ON CONFLICT DO NOTHING"
    )
    started = time.perf_counter()
    for i in range(0, len(rows), 1000):
        con.execute("BEGIN IMMEDIATE")
        con.executemany(sql, rows[i : i + 1000])
        con.execute("COMMIT")
    elapsed = time.perf_counter() - started
    con.close()
    return elapsed


def ack_latency(stack: Stack, key: str, samples: int, background: list[bytes]) -> list[float]:
    """p50/p99 of 100-event batches while a second sender keeps the drain busy."""
    stop = threading.Event()

    def load():
        poster = Poster(stack.ports[0], key)
        for body in background:
            if stop.is_set():
                return
            poster.post(body)

    loader = threading.Thread(target=load)
    loader.start()
    poster = Poster(stack.ports[0], key)
    times = []
    for i in range(samples):
        events = [{"session": "latency", "type": "log", "message": f"l{i}-{j}", "id": f"l{i}-{j}"}
                  for j in range(100)]  # fmt: skip
        times.append(poster.post(orjson.dumps(events)))
        time.sleep(0.01)
    stop.set()
    loader.join()
    return times


def visibility_latency(stack: Stack, key: str, batches: int, every: float = 0.05) -> list[float]:
    """Seconds from a 202 to the batch being in the Event table, at a moderate rate
    (100-event batches every 50 ms = 2,000 events/s) with the consumer running."""
    db = stack.data_dir / "flightrec.sqlite3"
    acked: dict[str, float] = {}
    seen: dict[str, float] = {}
    done = threading.Event()

    def watch():
        con = sqlite3.connect(db, timeout=30)
        while not done.is_set() or len(seen) < len(acked):
            for (k,) in con.execute("SELECT key FROM recorder_session WHERE key LIKE 'vis-%'"):
                seen.setdefault(k, time.perf_counter())
            time.sleep(0.005)
        con.close()

    watcher = threading.Thread(target=watch)
    watcher.start()
    poster = Poster(stack.ports[0], key)
    for i in range(batches):
        events = [{"session": f"vis-{i}", "type": "log", "message": f"v{j}"} for j in range(100)]
        poster.post(orjson.dumps(events))
        acked[f"vis-{i}"] = time.perf_counter()
        time.sleep(every)
    done.set()
    watcher.join(timeout=30)
    return [seen[k] - t for k, t in acked.items() if k in seen]


def run(args) -> list[dict]:
    if args.stack == "postgres":
        from bench import ingest_postgres

        return ingest_postgres.run(args)
    n = args.events or (40_000 if args.quick else 200_000)
    events = demo_mix(n)
    bodies = [orjson.dumps(events[i : i + BATCH]) for i in range(0, n, BATCH)]
    ndjson_bytes = sum(len(orjson.dumps(ev)) + 1 for ev in events)
    tmp = Path(tempfile.mkdtemp(prefix="flightrec-bench-"))
    stack = Stack(tmp, web_workers=2, threads=4)
    try:
        stack.start()
        key = stack.manage("apikey", "bench").strip().splitlines()[-1]
        template = tmp / "template.sqlite3"
        src = sqlite3.connect(tmp / "flightrec.sqlite3")
        dst = sqlite3.connect(template)
        src.backup(dst)  # the migrated, still empty schema
        src.close()
        dst.close()
        before = _db_bytes(tmp / "flightrec.sqlite3")

        acked_s, stored_s = flightrec_ingest(stack, key, bodies, n)
        after = _db_bytes(tmp / "flightrec.sqlite3")

        raw_s = raw_insert(template, tmp / "flightrec.sqlite3", events)

        background = [orjson.dumps([{**ev, "id": "bg" + ev["id"]} for ev in events[i : i + BATCH]])
                      for i in range(0, min(n, 60_000), BATCH)]  # fmt: skip
        latencies = ack_latency(stack, key, 150 if args.quick else 400, background)
        visible = visibility_latency(stack, key, 60 if args.quick else 200)
    finally:
        stack.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    ours, raw = n / stored_s, n / raw_s
    q = statistics.quantiles([t * 1000 for t in latencies], n=100)
    per_event = (after - before) / n
    ndjson = ndjson_bytes / n
    return [
        {"name": "ingest end-to-end (HTTP → Event rows)", "value": ours, "unit": "events/s",
         "baseline": raw, "ratio": ours / raw,
         "note": f"raw sqlite3 executemany, same schema; {n} events, batches of {BATCH}; "
                 f"all acknowledged after {acked_s:.1f}s"},
        {"name": "ack latency p50 (100-event batch, draining)", "value": q[49], "unit": "ms"},
        {"name": "ack latency p99 (100-event batch, draining)", "value": q[98], "unit": "ms",
         "note": "target ≤ 25 ms"},
        {"name": "202 → visible in Event table, p95 (2,000 events/s)",
         "value": statistics.quantiles(visible, n=20)[18] * 1000, "unit": "ms",
         "note": "target ≤ 1000 ms"},
        {"name": "database bytes per event (indexes included)", "value": per_event, "unit": "B",
         "baseline": ndjson, "ratio": per_event / ndjson,
         "note": "baseline = mean NDJSON size of the event; target ratio ≤ 1.2"},
    ]  # fmt: skip

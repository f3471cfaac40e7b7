"""Export and import throughput against raw sqlite3 in the same run.

- export: `recorder.export.session_export` (NDJSON, streamed to a file) of a
  1,000,000-event session, vs a raw sqlite3 SELECT of the same rows in timeline order
  + orjson.dumps of each row. Targets: ≥ 150,000 events/s and ratio ≥ 0.5.
- import: `recorder.importer.import_stream` of that export into an empty database, vs
  a raw sqlite3 executemany of the same rows into an empty copy of the same schema
  (the event table with its indexes, plus the full-text index the importer also
  fills), one transaction each. Target: ratio ≥ 0.35.

Each phase runs in a child process with its own FLIGHTREC_DATA_DIR, so the numbers
do not depend on what else the calling process has loaded, and nothing touches the
real data directory. `python -m bench.export [--events N]` runs it standalone;
`python -m bench.export memory --events N` is the peak-RSS check used by the tests.
"""

import argparse
import json
import os
import random
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.bulk import pack_payloads

DEFAULT_EVENTS = 1_000_000
ROOT = Path(__file__).resolve().parent.parent
GEN_CHUNK = 50_000
START_US = 1_763_700_000_000_000  # 2025-11-21, a fixed start so every run is the same

EVENT_COLUMNS = (
    "application_id", "session_id", "seq", "ts", "received_at", "type", "source", "severity",
    "key", "correlation_id", "actor", "message", "payload", "state", "uid", "size", "redacted",
)  # fmt: skip


def _setup_django(data_dir: Path) -> None:
    os.environ["FLIGHTREC_DATA_DIR"] = str(data_dir)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "flightrec_site.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def event_rows(app_id: int, session_id: int, n: int, seed: int = 1):
    """Realistic event rows in chunks: http (with a redacted header), logs, mqtt, state."""
    import orjson

    rng = random.Random(seed)
    ts = START_US
    chunk = []
    for seq in range(1, n + 1):
        ts += rng.randint(0, 40_000)  # ties happen: ts is not unique
        r = rng.random()
        payload = state = redacted = key = corr = None
        if r < 0.4:
            etype, source, severity = "http", "net", 20 if rng.random() < 0.95 else 40
            status = 200 if severity == 20 else 502
            url = f"https://api.example.com/items/{rng.randint(1, 9999)}"
            message = f"GET {url} -> {status}"
            corr = f"{rng.getrandbits(64):016x}"
            payload = orjson.dumps({"method": "GET", "url": url, "status": status,
                "duration_ms": round(rng.uniform(5, 400), 1),
                "request": {"headers": {"Authorization": "[Filtered]", "Accept": "application/json"}},
                "response": {"headers": {"Content-Type": "application/json"},
                             "size": rng.randint(100, 9000)}}).decode()  # fmt: skip
            redacted = '["payload.request.headers.Authorization"]'
        elif r < 0.7:
            etype, source = "log", rng.choice(["core", "db", "ui"])
            severity = rng.choice([10, 20, 20, 30])
            message = rng.choice(["cache warm", "retrying after timeout", "layout 18ms"])
        elif r < 0.9:
            etype, source, severity = "mqtt", "broker", 20
            room = rng.choice(["kitchen", "living", "garage"])
            key = f"temp::{room}"
            message = f"sensors/{room}/temperature"
            payload = orjson.dumps({"topic": message, "value": round(rng.uniform(18, 24), 2),
                                    "qos": 1}).decode()  # fmt: skip
        else:
            etype, source, severity, message = "state", "store", 20, None
            state = orjson.dumps({"op": "merge", "value": {"cart": rng.randint(0, 9)}}).decode()
        chunk.append((app_id, session_id, seq, ts, ts + 1000, etype, source, severity, key, corr,
                      None, message, payload, state, f"u{seq:08d}", 200, redacted))  # fmt: skip
        if len(chunk) >= GEN_CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _raw_connect(db_path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.executescript(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA cache_size=-32000;"
    )
    return conn


def _raw_insert(db_path: Path, app_id: int, session_id: int, n: int, *, fts: bool) -> float:
    """Seconds spent in executemany (+ the full-text insert), generation excluded."""
    conn = _raw_connect(db_path)
    cols = ", ".join(EVENT_COLUMNS)
    sql = f"INSERT INTO recorder_event ({cols}) VALUES ({', '.join('?' * len(EVENT_COLUMNS))})"
    spent = 0.0
    conn.execute("BEGIN IMMEDIATE")
    has_fts = (
        fts
        and conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'recorder_event_fts'").fetchone()
    )
    for chunk in event_rows(app_id, session_id, n):
        started = time.perf_counter()
        conn.executemany(sql, chunk)
        spent += time.perf_counter() - started
    started = time.perf_counter()
    if has_fts:  # the payloads are still JSON text here
        conn.execute(
            "INSERT INTO recorder_event_fts(rowid, message, payload) "
            "SELECT id, message, payload FROM recorder_event"
        )
    conn.execute("COMMIT")
    spent += time.perf_counter() - started
    conn.execute(
        "UPDATE recorder_session SET event_count = ?, last_seq = ? WHERE id = ?",
        (n, n, session_id),
    )
    conn.close()
    return spent


def _make_session(app_name: str):
    from recorder.fields import from_micros
    from recorder.models import Application, Session

    app = Application.objects.create(name=app_name)
    session = Session.objects.create(
        application=app, key="bench-run", started_at=from_micros(START_US)
    )
    return app, session


# --- child phases ----------------------------------------------------------------------


def phase_export(data_dir: Path, n: int, out_path: Path) -> dict:
    _setup_django(data_dir)
    import orjson
    from django.conf import settings

    from recorder import export

    app, session = _make_session("bench")
    db_path = Path(settings.DATABASES["default"]["NAME"])
    _raw_insert(db_path, app.id, session.id, n, fts=False)
    session.refresh_from_db()

    # Baseline: the same rows, same order, straight from sqlite3, one orjson.dumps each.
    conn = _raw_connect(db_path)
    cols = ", ".join(export.COLUMNS)
    started = time.perf_counter()
    cursor = conn.execute(
        f"SELECT {cols} FROM recorder_event WHERE session_id = ? ORDER BY ts, seq",
        (session.id,),
    )
    count = size = 0
    while rows := cursor.fetchmany(export.CHUNK_ROWS):
        for row in rows:
            size += len(orjson.dumps(row))
        count += len(rows)
    raw_seconds = time.perf_counter() - started
    # The baseline read JSON text; flightrec exports what it stores: packed payloads.
    conn.execute("BEGIN IMMEDIATE")
    pack_payloads(conn, db_path)
    conn.execute("COMMIT")
    conn.close()
    assert count == n

    started = time.perf_counter()
    with open(out_path, "wb") as out:
        for chunk in export.session_export(session):
            out.write(chunk)
    export_seconds = time.perf_counter() - started
    return {"events": n, "export_s": export_seconds, "raw_select_s": raw_seconds,
            "bytes": out_path.stat().st_size}  # fmt: skip


def phase_import(data_dir: Path, n: int, in_path: Path) -> dict:
    _setup_django(data_dir)
    from django.conf import settings
    from django.db import connections

    from recorder import importer

    db_path = Path(settings.DATABASES["default"]["NAME"])
    connections.close_all()
    # An empty copy of the migrated schema for the raw baseline.
    raw_dir = data_dir / "raw"
    raw_dir.mkdir()
    shutil.copy(db_path, raw_dir / "raw.sqlite3")
    raw_path = raw_dir / "raw.sqlite3"
    conn = _raw_connect(raw_path)
    conn.execute("INSERT INTO recorder_application (name, environment, created_at, redaction) "
                 "VALUES ('raw', 'bench', '2025-11-21', '{}')")  # fmt: skip
    conn.execute(
        "INSERT INTO recorder_session (application_id, key, status, status_reason, started_at, "
        "created_at, metadata, event_count, error_count, byte_count, last_seq, pinned) "
        "VALUES (1, 'bench-run', 'open', '', '2025-11-21', '2025-11-21', '{}', 0, 0, 0, 0, 0)"
    )
    conn.close()
    raw_seconds = _raw_insert(raw_path, 1, 1, n, fts=True)

    started = time.perf_counter()
    with open(in_path, "rb") as raw:
        result = importer.import_stream(raw)
    import_seconds = time.perf_counter() - started
    assert result.ok and result.imported == n, result.as_dict()
    return {"events": n, "import_s": import_seconds, "raw_insert_s": raw_seconds}


def phase_memory(data_dir: Path, n: int) -> dict:
    """Peak RSS growth of exporting an n-event session (data made in another process)."""
    _setup_django(data_dir)
    from recorder import export
    from recorder.models import Session

    session = Session.objects.select_related("application").get(key="bench-run")
    # Warm up: one small chunk through every code path, so imports and caches count
    # in the baseline and only per-event growth shows.
    for _ in zip(range(2), export.session_export(session), strict=False):
        pass
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    count = 0
    with open(os.devnull, "wb") as sink:
        for chunk in export.session_export(session):
            sink.write(chunk)
            count += chunk.count(b"\n")
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"lines": count, "rss_before_kb": before, "rss_after_kb": after,
            "growth_mb": (after - before) / 1024}  # fmt: skip


def phase_generate(data_dir: Path, n: int) -> dict:
    _setup_django(data_dir)
    from django.conf import settings

    app, session = _make_session("bench")
    db_path = Path(settings.DATABASES["default"]["NAME"])
    _raw_insert(db_path, app.id, session.id, n, fts=False)
    conn = _raw_connect(db_path)
    conn.execute("BEGIN IMMEDIATE")
    pack_payloads(conn, db_path)  # stored as the product stores them
    conn.execute("COMMIT")
    conn.close()
    return {"events": n}


def _child(phase: str, *args: str) -> dict:
    run = subprocess.run(
        [sys.executable, "-m", "bench.export", "_child", phase, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        env={k: v for k, v in os.environ.items() if k not in ("DATABASE_URL",)},
    )
    if run.returncode != 0:
        raise RuntimeError(f"bench.export {phase} failed:\n{run.stderr[-3000:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def measure_memory(n: int) -> dict:
    """For tests: make an n-event session, then export it in a fresh process."""
    with tempfile.TemporaryDirectory(prefix="flightrec-mem-") as tmp:
        _child("generate", tmp, str(n))
        return _child("memory", tmp, str(n))


# --- entry points ----------------------------------------------------------------------


def run(args=None) -> list[dict]:
    n = int(getattr(args, "export_events", None) or getattr(args, "events", None) or DEFAULT_EVENTS)
    with tempfile.TemporaryDirectory(prefix="flightrec-bench-") as tmp:
        tmp_path = Path(tmp)
        (tmp_path / "a").mkdir()
        (tmp_path / "b").mkdir()
        dump = tmp_path / "session.ndjson"
        exp = _child("export", str(tmp_path / "a"), str(n), str(dump))
        imp = _child("import", str(tmp_path / "b"), str(n), str(dump))
    export_rate = n / exp["export_s"]
    raw_select_rate = n / exp["raw_select_s"]
    import_rate = n / imp["import_s"]
    raw_insert_rate = n / imp["raw_insert_s"]
    return [
        {
            "name": "export.ndjson_events_per_s",
            "value": round(export_rate),
            "unit": "events/s",
            "baseline": round(raw_select_rate),
            "ratio": round(export_rate / raw_select_rate, 3),
            "note": f"{n:,}-event session streamed to a file ({exp['bytes'] / 1e6:.0f} MB); "
            "baseline: raw sqlite3 SELECT + orjson.dumps per row; targets ≥150k/s, ratio ≥0.5",
        },
        {
            "name": "import.ndjson_events_per_s",
            "value": round(import_rate),
            "unit": "events/s",
            "baseline": round(raw_insert_rate),
            "ratio": round(import_rate / raw_insert_rate, 3),
            "note": "that export imported into an empty database in one transaction; baseline: "
            "raw sqlite3 executemany of the same rows + full-text index; target ratio ≥0.35",
        },
    ]


def main(argv: list[str]) -> None:
    if argv[:1] == ["_child"]:
        phase, data_dir, n, *rest = argv[1:]
        fn = {"export": phase_export, "import": phase_import, "memory": phase_memory,
              "generate": phase_generate}[phase]  # fmt: skip
        print(json.dumps(fn(Path(data_dir), int(n), *map(Path, rest))))
        return
    parser = argparse.ArgumentParser(prog="python -m bench.export")
    parser.add_argument("mode", nargs="?", default="bench", choices=["bench", "memory"])
    parser.add_argument("--events", type=int, default=DEFAULT_EVENTS)
    args = parser.parse_args(argv)
    if args.mode == "memory":
        print(json.dumps(measure_memory(args.events)))
        return
    for row in run(args):
        print(f"{row['name']:32} {row['value']:>10,} {row['unit']:9} baseline "
              f"{row['baseline']:>10,}  ratio {row['ratio']:.3f}  {row['note']}")  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1:])

"""Time-travel benchmark: snapshot and diff cost against session length, replay drift.

Generates a migrated SQLite file holding one 1,000,000-event session with 200,000 state
ops and one 10,000-event session with the same mix (rows written directly with
executemany, secondary indexes dropped during the load), builds their keyframes with
recorder.timetravel.keyframes_build, then measures p95 of `snapshot_at` at random
instants in each, and of `diff_between` two random instants. The small session is the
baseline: a snapshot whose cost is independent of length has a ratio near 1.
Replay drift: a 60 s scaled replay through `replay_stream`, with the real clock.

    python -m bench.timetravel [--events 1000000] [--runs 100] [--replay-seconds 60] [--keep PATH]
"""

import argparse
import os
import random
import sqlite3
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson

from bench.bulk import build_indexes, drop_event_indexes

TYPES = ["http", "log", "ui", "mqtt", "row:update"]
DEVICES = 200
KEYS = 300


def parse_args(args) -> argparse.Namespace:
    if isinstance(args, argparse.Namespace):
        ns = args
        for k, v in vars(_parser().parse_args([])).items():
            if getattr(ns, k, None) is None:
                setattr(ns, k, v)
        return ns
    return _parser().parse_args(list(args or []))


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bench.timetravel")
    p.add_argument("--events", type=int, default=1_000_000, help="events in the big session")
    p.add_argument("--small", type=int, default=10_000, help="events in the baseline session")
    p.add_argument("--op-ratio", type=float, default=0.2, help="share of events with a state op")
    p.add_argument("--runs", type=int, default=100, help="samples per measurement")
    p.add_argument("--replay-seconds", type=float, default=60.0, help="0 skips the drift run")
    p.add_argument("--keep", default=None, help="reuse/keep the generated DB at this path")
    p.add_argument("--seed", type=int, default=4)
    return p


def _setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "flightrec_site.settings")
    import django
    from django.apps import apps

    if not apps.ready:
        django.setup()


def _op(rng: random.Random, items: list[int]) -> dict:
    r = rng.random()
    if r < 0.6:
        return {"op": "set", "path": f"/devices/d{rng.randrange(DEVICES)}/temp",
                "value": round(rng.uniform(15, 25), 2)}  # fmt: skip
    if r < 0.8:
        return {"op": "merge", "value": {"screen": rng.choice(["home", "cart", "pay"]),
                                         "filters": {"sort": rng.choice(["price", "name"])}}}  # fmt: skip
    if items and (r < 0.9 or len(items) >= 20):
        items.pop(0)
        return {"op": "patch", "patch": [{"op": "remove", "path": "/cart/items/0"}]}
    items.append(1)
    return {"op": "patch", "patch": [
        {"op": "add", "path": "/cart/items/-", "value": {"sku": rng.randrange(999), "qty": 1}}]}  # fmt: skip


def _load_session(db, rng, app: int, key: str, n: int, op_ratio: float, uid0: int) -> int:
    ts = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp() * 1_000_000)
    first = ts
    cur = db.execute(
        "INSERT INTO recorder_session(application_id, key, status, status_reason, started_at,"
        " ended_at, last_event_at, created_at, metadata, event_count, error_count, byte_count,"
        " last_seq, pinned) VALUES (?, ?, 'ended', '', ?, NULL, NULL, ?, '{}', ?, 0, 0, ?, 0)",
        (app, key, datetime.fromtimestamp(first / 1e6, UTC).isoformat(" "),
         datetime.now(UTC).isoformat(" "), n, n),
    )  # fmt: skip
    sid = cur.lastrowid
    init = {"op": "set", "path": "", "value": {
        "devices": {f"d{i}": {"temp": 20.0, "ok": True} for i in range(DEVICES)},
        "cart": {"items": []}, "screen": "home", "filters": {"sort": "price"}}}  # fmt: skip
    items: list[int] = []
    rows = []
    for seq in range(1, n + 1):
        ts += int(rng.expovariate(1 / 200_000)) + 1  # 0.2 s apart on average
        if seq == 1:
            state, typ = init, "state"
        elif rng.random() < op_ratio:
            state, typ = _op(rng, items), "state"
        else:
            state, typ = None, TYPES[rng.randrange(len(TYPES))]
        key = f"sensor::{rng.randrange(KEYS)}" if typ in ("mqtt", "row:update") else None
        payload = {"v": rng.randrange(100)} if key else None
        rows.append((
            app, sid, seq, ts, ts, typ, "core", 40 if rng.random() < 0.01 else 20, key, None,
            None, f"event {seq}", orjson.dumps(payload).decode() if payload else None,
            orjson.dumps(state).decode() if state else None, f"u{uid0 + seq}", 100, None,
        ))  # fmt: skip
        if len(rows) == 50_000:
            _insert(db, rows)
            rows = []
    _insert(db, rows)
    db.execute("UPDATE recorder_session SET last_event_at = ? WHERE id = ?",
               (datetime.fromtimestamp(ts / 1e6, UTC).isoformat(" "), sid))  # fmt: skip
    return sid


def _insert(db, rows) -> None:
    db.executemany(
        "INSERT INTO recorder_event(application_id, session_id, seq, ts, received_at, type,"
        " source, severity, key, correlation_id, actor, message, payload, state, uid, size,"
        " redacted) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        rows,
    )


def generate(path: Path, *, events: int, small: int, op_ratio: float, seed: int) -> dict:
    """Migrate, bulk-load both sessions, build keyframes. Returns timings."""
    from django.core.management import call_command

    from recorder.timetravel import keyframes_build

    started = time.perf_counter()
    call_command("migrate", verbosity=0)
    db = sqlite3.connect(path)
    db.execute("PRAGMA synchronous=OFF")
    indexes = drop_event_indexes(db)
    app = db.execute(
        "INSERT INTO recorder_application(name, environment, created_at, redaction) "
        "VALUES ('bench', 'production', ?, '{}')",
        (datetime.now(UTC).isoformat(),),
    ).lastrowid
    rng = random.Random(seed)
    big = _load_session(db, rng, app, "big", events, op_ratio, 0)
    little = _load_session(db, rng, app, "small", small, op_ratio, events)
    db.commit()
    build_indexes(db, indexes)
    db.execute("ANALYZE")
    db.commit()
    db.close()
    loaded = time.perf_counter()
    keyframes_build(session_id=big)
    keyframes_build(session_id=little)
    return {"load": loaded - started, "keyframes": time.perf_counter() - loaded}


def _p95(samples: list[float]) -> float:
    samples = sorted(samples)
    return samples[min(len(samples) - 1, int(round(0.95 * (len(samples) - 1))))] * 1000


def _row(name, value, unit, baseline, note) -> dict:
    return {
        "name": name,
        "value": round(value, 2),
        "unit": unit,
        "baseline": round(baseline, 2) if baseline is not None else None,
        "ratio": round(value / baseline, 2) if baseline else None,
        "note": note,
    }


def measure(path: Path, *, runs: int, seed: int, replay_seconds: float) -> list[dict]:
    from recorder import timetravel
    from recorder.models import Keyframe, Session

    rng = random.Random(seed + 1)
    raw = sqlite3.connect(path)
    positions = {}
    for key in ("big", "small"):
        session = Session.objects.get(key=key)
        rows = raw.execute(
            "SELECT id, ts, seq FROM recorder_event WHERE session_id = ? ORDER BY ts, seq",
            (session.id,),
        ).fetchall()
        positions[key] = (session, [timetravel.Position(ts, seq, i) for i, ts, seq in rows])
    raw.close()

    def timed(fn) -> float:
        t = time.perf_counter()
        fn()
        return time.perf_counter() - t

    snap, diff, folded = {}, {}, {}
    for key, (session, pos) in positions.items():
        timetravel.snapshot_at(session=session, at=pos[len(pos) // 2])  # warm caches
        snap[key], diff[key], folded[key] = [], [], []
        for _ in range(runs):
            at = rng.choice(pos)
            t = time.perf_counter()
            result = timetravel.snapshot_at(session=session, at=at)
            snap[key].append(time.perf_counter() - t)
            folded[key].append(result["cost"]["events_folded"])
            a, b = rng.choice(pos), rng.choice(pos)
            diff[key].append(
                timed(
                    lambda s=session, a=a, b=b: timetravel.diff_between(session=s, start=a, end=b)
                )
            )
    big_session = positions["big"][0]
    n_big, n_small = len(positions["big"][1]), len(positions["small"][1])
    rows = [
        _row(
            f"snapshot at random t, {n_big:,}-event session",
            _p95(snap["big"]),
            "ms p95",
            _p95(snap["small"]),
            f"baseline = same call on a {n_small:,}-event session; target <= 30 ms and ratio <= 2; "
            f"median {statistics.median(snap['big']) * 1000:.2f} ms; events folded p95 "
            f"{sorted(folded['big'])[int(0.95 * (runs - 1))]}",
        ),  # fmt: skip
        _row(
            f"diff between two random instants, {n_big:,}-event session",
            _p95(diff["big"]),
            "ms p95",
            _p95(diff["small"]),
            f"baseline = same call on a {n_small:,}-event session; target <= 50 ms; "
            f"median {statistics.median(diff['big']) * 1000:.2f} ms",
        ),  # fmt: skip
        _row(
            "keyframes stored for the big session",
            Keyframe.objects.filter(session=big_session).count(),
            "rows",
            None,
            f"every {timetravel.KEYFRAME_EVERY_OPS} state ops or "
            f"{timetravel.KEYFRAME_EVERY_EVENTS} events",
        ),  # fmt: skip
    ]
    if replay_seconds > 0:
        rows.append(_replay_drift(positions["small"], replay_seconds))
    return rows


def _replay_drift(session_positions, seconds: float) -> dict:
    """Replay the small session's first events scaled to `seconds` of wall time."""
    from recorder import timetravel

    session, pos = session_positions
    span = (pos[-1].ts - pos[0].ts) / 1e6
    speed = span / seconds
    late = []
    started = time.monotonic()
    last_offset = 0.0
    for message in timetravel.replay_stream(session_id=session.id, speed=speed):
        if message.startswith(b"id:"):
            data = orjson.loads(message.split(b"data: ", 1)[1])
            late.append(data["replay"]["late_ms"])
            last_offset = data["replay"]["offset"]
    wall = time.monotonic() - started
    # Drift = how far the last event landed from its scheduled instant; the baseline is
    # the median lateness of all events (what one sleep costs on this machine).
    return _row(
        f"replay drift over a {seconds:g} s scaled replay", abs(late[-1]), "ms",
        statistics.median(late),
        f"target <= 5 ms; {len(late)} events at {speed:.1f}x; max late {max(late):.2f} ms; "
        f"wall {wall:.2f} s for {last_offset:.2f} s scheduled",
    )  # fmt: skip


def run(args=None) -> list[dict]:
    ns = parse_args(args)
    tmp = None
    if ns.keep:
        path = Path(ns.keep).resolve()
    else:
        tmp = tempfile.TemporaryDirectory(prefix="bench-timetravel-")
        path = Path(tmp.name) / "timetravel.sqlite3"
    _setup_django()
    from django.db import connections

    # The code under test uses the default alias: point it at the bench file meanwhile.
    default = connections["default"]
    default.close()
    saved_name = default.settings_dict["NAME"]
    default.settings_dict["NAME"] = str(path)
    rows = []
    try:
        if not path.exists() or path.stat().st_size < 100_000:
            took = generate(path, events=ns.events, small=ns.small, op_ratio=ns.op_ratio,
                            seed=ns.seed)  # fmt: skip
            rows.append(_row("time travel: generate DB", took["load"], "s", None,
                             f"{ns.events:,} + {ns.small:,} events, {ns.op_ratio:.0%} state ops"))  # fmt: skip
            rows.append(_row("time travel: build keyframes", took["keyframes"], "s", None,
                             "both sessions, from scratch"))  # fmt: skip
        rows += measure(path, runs=ns.runs, seed=ns.seed, replay_seconds=ns.replay_seconds)
    finally:
        default.close()
        default.settings_dict["NAME"] = saved_name
        if tmp:
            tmp.cleanup()
    return rows


if __name__ == "__main__":
    import sys

    from bench.__main__ import print_table

    print_table(run(sys.argv[1:]))

"""The drain alone: µs per event per stage, against raw executemany of the same rows.

    python -m bench.drain_profile                 # 200 batches x 500 demo-mix events
    python -m bench.drain_profile --rounds 3      # three fills, each drained and timed
    python -m bench.drain_profile --profile 40    # plus cProfile, top 40 by cumulative time
    python -m bench drain_profile                 # one row for the suite's table (run())

Fills the inbox without draining (ingest.events_accept with the wake-up switched off,
as when no consumer runs), then times drain.inbox_drain() on real SQLite files in WAL
mode with the settings' pragmas (synchronous=FULL). Each stage is timed by wrapping the
function that does it; "executemany" is insert_events less what it calls, "event rows"
is _apply less what it calls (the per-event loop: dedupe set, counters, event_row).
The raw baseline replays the exact rows the drain inserted (payloads packed) with plain
sqlite3 into a copy of the database as it was before the drain, sessions added.
"""

import argparse
import cProfile
import gc
import json
import os
import pstats
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from bench.bulk import raw_copy

BATCH = 500


class Timers:
    def __init__(self):
        self.total: dict[str, float] = defaultdict(float)
        self.calls: dict[str, list[float]] = defaultdict(list)

    def wrap(self, owner, name: str, label: str) -> None:
        orig = getattr(owner, name)
        calls, total = self.calls, self.total

        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return orig(*args, **kwargs)
            finally:
                took = time.perf_counter() - started
                total[label] += took
                calls[label].append(took)

        setattr(owner, name, timed)

    def reset(self):
        self.total.clear()
        self.calls.clear()


def _setup(data_dir: Path):
    os.environ["FLIGHTREC_DATA_DIR"] = str(data_dir)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "flightrec_site.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    for alias in settings.DATABASES:
        call_command("migrate", database=alias, interactive=False, verbosity=0)
    import recorder.tasks

    recorder.tasks.wake_drain = lambda: None  # spool only: nothing drains behind our back


def _fill(app, events: list[dict], prefix: str) -> None:
    import orjson

    from recorder import ingest

    for i in range(0, len(events), BATCH):
        chunk = [
            {**ev, "id": prefix + ev["id"], "session": prefix + ev["session"]}
            for ev in events[i : i + BATCH]
        ]
        body = orjson.dumps(chunk)
        ingest.events_accept(application=app, batch=ingest.parse_batch(body), body=body)


def _instrument(timers: Timers, captured: list) -> None:
    from django.db import connections
    from django.db.models.query import QuerySet

    from recorder import drain, metrics, retention, search

    for owner, name, label in [
        (drain, "drain_once", "drain_once"),
        (drain, "_claim", "claim inbox"),
        (drain, "_load", "orjson parse"),
        (drain, "_wanted_sessions", "wanted sessions"),
        (drain, "_known_uids", "known uids"),
        (drain._Sessions, "load", "sessions load"),
        (drain._Sessions, "save", "sessions save"),
        (retention, "refuse_limits", "refuse limits"),
        (drain, "_apply", "apply"),
        (drain, "insert_events", "insert_events"),
        (search, "fts_last_event_id", "fts last id"),
        # The whole full-text step, whichever way it goes (ids check included).
        (drain, "_fts_index", "fts insert")
        if hasattr(drain, "_fts_index")
        else (search, "fts_index_new_events", "fts insert"),
        (drain, "keyframes_invalidate", "keyframes"),
        (metrics, "drain_observe", "metrics"),
    ]:
        timers.wrap(owner, name, label)

    orig_packed = drain._packed

    def packed(values):
        started = time.perf_counter()
        out = orig_packed(values)
        timers.total["pack"] += time.perf_counter() - started
        captured.extend(out)
        return out

    drain._packed = packed

    orig_delete = QuerySet.delete

    def delete(qs):
        if qs.model.__name__ != "InboxBatch":
            return orig_delete(qs)
        started = time.perf_counter()
        try:
            return orig_delete(qs)
        finally:
            took = time.perf_counter() - started
            timers.total["inbox delete"] += took

    QuerySet.delete = delete
    timers.wrap(connections["default"], "commit", "commit")


class GcTimer:
    """Seconds spent in the cyclic garbage collector, by generation."""

    def __init__(self):
        self.seconds: dict[int, float] = defaultdict(float)
        self.count: dict[int, int] = defaultdict(int)
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase, info):
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds[info["generation"]] += time.perf_counter() - self._started
            self.count[info["generation"]] += 1

    def reset(self):
        self.seconds.clear()
        self.count.clear()


def _stages(t: dict[str, float]) -> list[tuple[str, float]]:
    """Exclusive seconds per stage, in the order the drain runs them."""
    apply_inner = sum(t[k] for k in ("sessions load", "sessions save", "refuse limits",
                                     "insert_events"))  # fmt: skip
    insert_inner = sum(t[k] for k in ("fts last id", "fts insert", "pack", "keyframes"))
    named = [
        "claim inbox", "orjson parse", "wanted sessions", "known uids", "sessions load",
        "refuse limits",
    ]  # fmt: skip
    rows = [(k, t[k]) for k in named]
    rows.append(("event rows (loop)", t["apply"] - apply_inner))
    rows += [(k, t[k]) for k in ("fts last id", "pack")]
    rows.append(("executemany", t["insert_events"] - insert_inner))
    rows += [(k, t[k]) for k in ("fts insert", "keyframes", "sessions save", "metrics")]
    accounted = sum(v for _, v in rows) + t["commit"] + t["inbox delete"]
    rows.append(("other (savepoint, api key, ...)", t["drain_once"] - accounted))
    rows += [("commit (fsync)", t["commit"]), ("inbox delete (+fsync)", t["inbox delete"])]
    return rows


def raw_executemany(template: Path, drained: Path, rows: list[tuple], per_tx: int) -> float:
    """Plain sqlite3 executemany of the drain's rows into the pre-drain database copy."""
    con = raw_copy(template, drained, f"raw-{per_tx}.sqlite3")
    from recorder.drain import EVENT_COLUMNS

    columns = ", ".join('"' + c + '"' for c in EVENT_COLUMNS)
    marks = ",".join("?" * len(EVENT_COLUMNS))
    sql = f"INSERT INTO recorder_event ({columns}) VALUES ({marks}) ON CONFLICT DO NOTHING"
    started = time.perf_counter()
    for i in range(0, len(rows), per_tx):
        con.execute("BEGIN IMMEDIATE")
        con.executemany(sql, rows[i : i + per_tx])
        con.execute("COMMIT")
    elapsed = time.perf_counter() - started
    con.close()
    (template.parent / f"raw-{per_tx}.sqlite3").unlink()
    return elapsed


def run(args) -> list[dict]:
    """For `python -m bench`: the drain alone against raw executemany of its rows. In a
    process of its own: it points Django at a temporary data directory and wraps the
    drain's functions, neither of which may leak into other benchmarks."""
    events = args.events or (20_000 if args.quick else 100_000)
    cmd = [sys.executable, "-m", "bench.drain_profile", "--rounds", "3",
           "--batches", str(max(10, events // BATCH))]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    result = json.loads(out.rsplit("RESULT ", 1)[1])
    drain_us, raw_us = result["drain_us"], result["raw_us"]
    return [{"name": "drain alone (inbox rows → Event rows)", "value": drain_us,
             "unit": "µs/event", "baseline": raw_us, "ratio": raw_us / drain_us,
             "note": "baseline: plain sqlite3 executemany of the same rows, 1000 per "
                     "transaction; median of 3; python -m bench.drain_profile shows stages"}]  # fmt: skip


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.drain_profile")
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--profile", type=int, default=0, help="cProfile rows to print")
    parser.add_argument("--max-batches", type=int, default=None)
    parser.add_argument("--max-events", type=int, default=None)
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="flightrec-drain-"))
    try:
        _setup(tmp)
        drain_us, raw_us = _run(args, tmp)
        print("RESULT " + json.dumps({"drain_us": drain_us, "raw_us": raw_us}))
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _run(args, tmp: Path) -> tuple[float, float]:
    from bench.ingest import demo_mix
    from recorder import drain
    from recorder.models import Application

    app = Application.objects.create(name="bench")
    n = args.batches * BATCH
    events = demo_mix(n)
    # Warm-up: enough events for the first payload dictionary, as a real server has.
    _fill(app, events[:5000], "w")
    drain.inbox_drain()
    kwargs = {k: v for k, v in (("max_batches", args.max_batches),
                                ("max_events", args.max_events)) if v}  # fmt: skip
    timers, captured, gc_timer = Timers(), [], GcTimer()
    _instrument(timers, captured)
    db = tmp / "flightrec.sqlite3"
    results = []
    for r in range(args.rounds):
        _fill(app, events, f"r{r}-")
        template = tmp / "template.sqlite3"
        src, dst = sqlite3.connect(db), sqlite3.connect(template)
        src.backup(dst)
        src.close()
        dst.close()
        timers.reset()
        gc_timer.reset()
        captured.clear()
        profiler = cProfile.Profile() if args.profile and r == args.rounds - 1 else None
        started, cpu = time.perf_counter(), time.process_time()
        if profiler:
            profiler.enable()
        stats = drain.inbox_drain(**kwargs)
        if profiler:
            profiler.disable()
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        assert stats.events == n, (stats.events, n)
        # What the consumer does next (recorder/tasks.py), in its other worker thread.
        from recorder import timetravel

        kf_started = time.perf_counter()
        for session_id in sorted(stats.sessions):
            timetravel.keyframes_build(session_id=session_id)
        keyframes_s = time.perf_counter() - kf_started
        raw_1k = raw_executemany(template, db, captured, 1000)
        raw_tx = raw_executemany(template, db, captured, args.max_events or 20_000)
        holds = timers.calls["drain_once"]
        results.append((elapsed, raw_1k, raw_tx))
        us = 1e6 / n
        print(f"\nround {r + 1}{' (profiled)' if profiler else ''}: {n} events, "
              f"{len(holds)} transactions")  # fmt: skip
        for label, seconds in _stages(timers.total):
            print(f"  {label:34s} {seconds * us:7.2f} µs/event")
        print(f"  {'drain total':34s} {elapsed * us:7.2f} µs/event  ({n / elapsed:,.0f} ev/s)")
        print(f"  {'drain CPU time (this process)':34s} {cpu * us:7.2f} µs/event")
        gcs = ", ".join(f"gen{g} {gc_timer.count[g]}x {gc_timer.seconds[g] * us:.2f}"
                        for g in sorted(gc_timer.seconds))  # fmt: skip
        print(f"  {'of which garbage collector':34s} {sum(gc_timer.seconds.values()) * us:7.2f}"
              f" µs/event ({gcs})")  # fmt: skip
        print(f"  {'then keyframes_build (not drain)':34s} {keyframes_s * us:7.2f} µs/event")
        print(f"  {'raw executemany, 1000/tx':34s} {raw_1k * us:7.2f} µs/event")
        print(f"  {'raw executemany, same tx size':34s} {raw_tx * us:7.2f} µs/event")
        print(f"  drain_once (write lock held): max {max(holds) * 1000:.0f} ms, "
              f"median {statistics.median(holds) * 1000:.0f} ms")  # fmt: skip
        if profiler:
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(args.profile)
        template.unlink()
    med = [statistics.median(x[i] for x in results) * 1e6 / n for i in range(3)]
    if args.rounds > 1:
        print(f"\nmedian of {args.rounds}: drain {med[0]:.2f}, raw 1000/tx {med[1]:.2f}, "
              f"raw same tx {med[2]:.2f} µs/event; ratio raw/drain {med[1] / med[0]:.2f}")  # fmt: skip
    return med[0], med[1]


if __name__ == "__main__":
    sys.exit(main())

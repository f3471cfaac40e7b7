"""Sustained load: 80 % of the measured maximum ingestion rate, with concurrent readers.

Benchmark only (make bench), not CI. A real server (gunicorn, 2 workers) and a real Huey
consumer on a temp data dir; the load comes from other processes on loopback:

1. max rate: sender processes post 100-event batches as fast as they can for a while;
   the maximum is events stored (drained into the Event table) per second.
2. sustained: the senders pace themselves to 80 % of that for --load-seconds (300 s;
   30 s with --quick) while a reader process pages through session lists and timelines.

Reported: error rate (non-202 or failed requests), acknowledgement p50/p99, timeline
page p99, achieved rate, the inbox backlog left at the end, and the RSS of the web
processes and of the consumer at the start and at the end of the sustained phase.
Baseline for the achieved rate is the target rate (ratio 1.0 = kept up).
"""

import http.client
import multiprocessing as mp
import os
import shutil
import signal
import statistics
import tempfile
import threading
import time
from pathlib import Path

import orjson

from bench.ingest import event_count
from tests.stack import Stack

BATCH = 100
SENDERS = 4


def _rss_kib(pgid: int) -> int:
    """Resident memory of every process in a process group (a gunicorn master and its
    workers, or the consumer), from /proc."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.getpgid(int(entry)) != pgid:
                continue
            with open(f"/proc/{entry}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except (OSError, ProcessLookupError):
            continue
    return total


def _sender(port: int, key: str, worker: str, rate: float | None, seconds: float, out):
    """Post batches for `seconds`; at `rate` batches/s if given, else flat out."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Content-Type": "application/json", "X-API-Key": key}
    latencies, errors, sent = [], 0, 0
    failures: dict[str, int] = {}  # what went wrong, by status code or exception
    started = time.perf_counter()
    n = 0
    while (now := time.perf_counter()) - started < seconds:
        if rate:
            due = started + n / rate
            if due > now:
                time.sleep(due - now)
        events = [
            {"id": f"w{worker}-{n}-{i}", "type": "log", "severity": "info",
             "message": f"load {n} {i}", "payload": {"n": n, "i": i, "path": "/api/x"}}
            for i in range(BATCH)
        ]  # fmt: skip
        body = orjson.dumps({"session": f"load-{worker}-{n // 200}", "events": events})
        t0 = time.perf_counter()
        try:
            conn.request("POST", "/api/v1/events", body, headers)
            resp = conn.getresponse()
            resp.read()
            ok = resp.status == 202
            failure = None if ok else str(resp.status)
        except (OSError, http.client.HTTPException) as exc:
            ok = False
            failure = type(exc).__name__
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        latencies.append(time.perf_counter() - t0)
        if ok:
            sent += BATCH
        else:
            errors += 1
            failures[failure] = failures.get(failure, 0) + 1
        n += 1
    out.put({"latencies": latencies, "errors": errors, "events": sent, "requests": n,
             "failures": failures})  # fmt: skip


def _reader(port: int, key: str, seconds: float, out):
    """Page through the session list and the first sessions' timelines, over and over."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"X-API-Key": key}
    latencies, errors, pages = [], 0, 0
    failures: dict[str, int] = {}
    started = time.perf_counter()

    def get(path):
        nonlocal errors, pages
        t0 = time.perf_counter()
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        body = resp.read()
        latencies.append(time.perf_counter() - t0)
        pages += 1
        if resp.status != 200:
            errors += 1
            failures[str(resp.status)] = failures.get(str(resp.status), 0) + 1
            return None
        return orjson.loads(body)

    while time.perf_counter() - started < seconds:
        try:
            listing = get("/api/v1/sessions?limit=20")
            for session in (listing or {"items": []})["items"][:3]:
                after = ""
                for _ in range(5):
                    page = get(f"/api/v1/sessions/{session['id']}/events?limit=200&after={after}")
                    if not page or not page["next_cursor"]:
                        break
                    after = page["next_cursor"]
        except (OSError, http.client.HTTPException) as exc:
            errors += 1
            failures[type(exc).__name__] = failures.get(type(exc).__name__, 0) + 1
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        time.sleep(0.05)
    out.put({"latencies": latencies, "errors": errors, "pages": pages, "failures": failures})


def _run_senders(stack, key, rate_events, seconds: float, *, phase: str, reader_key=None):
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    per_sender = rate_events / BATCH / SENDERS if rate_events else None
    procs = [
        # Ids differ per phase: the same id twice is (rightly) stored once.
        ctx.Process(
            target=_sender, args=(stack.ports[0], key, f"{phase}{w}", per_sender, seconds, out)
        )
        for w in range(SENDERS)
    ]
    if reader_key:
        procs.append(ctx.Process(target=_reader, args=(stack.ports[0], reader_key, seconds, out)))
    for p in procs:
        p.start()
    results = [out.get(timeout=seconds + 120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    senders = [r for r in results if "events" in r]
    reader = next((r for r in results if "pages" in r), None)
    return senders, reader


def _q(values: list[float], pct: int) -> float:
    if len(values) < 2:
        return values[0] * 1000 if values else 0.0
    return statistics.quantiles([v * 1000 for v in values], n=100)[pct - 1]


def run(args) -> list[dict]:
    quick = getattr(args, "quick", False)
    seconds = getattr(args, "load_seconds", None) or (30 if quick else 300)
    probe = 8 if quick else 20
    tmp = Path(tempfile.mkdtemp(prefix="flightrec-load-"))
    stack = Stack(tmp, web_workers=2, threads=4)
    try:
        stack.start()
        key = stack.manage("apikey", "load").strip().splitlines()[-1]
        read_key = stack.manage("apikey", "load", "--read").strip().splitlines()[-1]
        db = tmp / "flightrec.sqlite3"

        # 1. The maximum: flat out, then wait until everything is in the Event table.
        t0 = time.perf_counter()
        senders, _ = _run_senders(stack, key, None, probe, phase="max")
        probe_events = sum(s["events"] for s in senders)
        while event_count(db) < probe_events:
            time.sleep(0.1)
        max_rate = probe_events / (time.perf_counter() - t0)
        target = 0.8 * max_rate

        # 2. Sustained at 80 %, with a reader.
        web_pg, consumer_pg = stack.webs[0].pid, stack.consumers[0].pid
        rss_web0, rss_consumer0 = _rss_kib(web_pg), _rss_kib(consumer_pg)
        # Half-time too: caches (SQLite's page cache is bounded by cache_size) fill in
        # the first minutes; a leak keeps growing in the second half.
        half: dict[str, int] = {}
        sampler = threading.Timer(
            seconds / 2,
            lambda: half.update(web=_rss_kib(web_pg), consumer=_rss_kib(consumer_pg)),
        )
        sampler.start()
        before = event_count(db)
        senders, reader = _run_senders(
            stack, key, target, seconds, phase="load", reader_key=read_key
        )
        sampler.cancel()
        rss_web1, rss_consumer1 = _rss_kib(web_pg), _rss_kib(consumer_pg)
        backlog = stack.inbox_depth()
        acked = sum(s["events"] for s in senders)
        deadline = time.monotonic() + 120
        while event_count(db) - before < acked and time.monotonic() < deadline:
            time.sleep(0.1)
        stored = event_count(db) - before
    finally:
        stack.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    acks = [lat for s in senders for lat in s["latencies"]]
    requests = sum(s["requests"] for s in senders)
    errors = sum(s["errors"] for s in senders)
    failures: dict[str, int] = {}
    for s in senders:
        for what, n in s["failures"].items():
            failures[what] = failures.get(what, 0) + n
    achieved = acked / seconds  # each sender times its own `seconds`
    mib = 1024
    return [
        {"name": "max ingestion rate (stored, flat out)", "value": max_rate, "unit": "events/s",
         "note": f"{SENDERS} sender processes, {BATCH}-event batches, {probe}s"},
        {"name": "sustained rate (acknowledged) at 80 % of max", "value": achieved,
         "unit": "events/s",
         "baseline": target, "ratio": achieved / target,
         "note": f"{seconds}s with a reader; baseline = target rate"},
        {"name": "error rate (ingestion)", "value": errors / max(requests, 1), "unit": "ratio",
         "note": f"{errors} of {requests} requests {failures or ''}; target 0"},
        {"name": "ack latency p50 (100-event batch, at 80 %)", "value": _q(acks, 50), "unit": "ms"},
        {"name": "ack latency p99 (100-event batch, at 80 %)", "value": _q(acks, 99), "unit": "ms"},
        {"name": "timeline/list page p99 under load", "value": _q(reader["latencies"], 99),
         "unit": "ms",
         "note": f"{reader['pages']} pages, {reader['errors']} errors {reader['failures'] or ''}"},
        {"name": "inbox backlog at the end", "value": backlog, "unit": "batches",
         "note": "0 = the drain kept up"},
        {"name": "acknowledged events missing afterwards", "value": acked - stored,
         "unit": "events", "note": f"{acked} acknowledged; target 0"},
        {"name": "RSS web (gunicorn, all processes) end", "value": rss_web1 / mib, "unit": "MiB",
         "baseline": rss_web0 / mib, "ratio": rss_web1 / max(rss_web0, 1),
         "note": "baseline = start of the sustained phase"},
        {"name": "RSS web, second half", "value": rss_web1 / mib, "unit": "MiB",
         "baseline": half.get("web", 0) / mib, "ratio": rss_web1 / max(half.get("web", 0), 1),
         "note": "baseline = half-time; flat is a ratio near 1"},
        {"name": "RSS consumer end", "value": rss_consumer1 / mib, "unit": "MiB",
         "baseline": rss_consumer0 / mib, "ratio": rss_consumer1 / max(rss_consumer0, 1),
         "note": "baseline = start of the sustained phase"},
        {"name": "RSS consumer, second half", "value": rss_consumer1 / mib, "unit": "MiB",
         "baseline": half.get("consumer", 0) / mib,
         "ratio": rss_consumer1 / max(half.get("consumer", 0), 1),
         "note": "baseline = half-time; flat is a ratio near 1"},
    ]  # fmt: skip


if __name__ == "__main__":  # python -m bench.load [--quick] [SECONDS]
    import argparse
    import sys

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "flightrec_site.settings")
    signal.signal(signal.SIGINT, signal.default_int_handler)
    parser = argparse.ArgumentParser(prog="python -m bench.load")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("load_seconds", nargs="?", type=int)
    for row in run(parser.parse_args()):
        print(row, file=sys.stdout)

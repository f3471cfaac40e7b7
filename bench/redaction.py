"""What redaction costs: end-to-end ingestion with the default rules vs with it switched off.

End to end = the whole request (middleware, key lookup, body parsing, validation,
redaction, spooling into the inbox with a durable commit) and the drain into the Event
table, on real SQLite files in WAL mode, with the demo mix of events (HTTP calls with
Authorization headers, logins with passwords, IoT telemetry, UI and audit events).
Both run in one process, one after the other, so the measurement does not depend on
how the machine shares its cores between web workers and the consumer: it is the
share of the total work that redaction is. "Off" replaces redact_event/redact_mapping
by no-ops inside this benchmark only; the product has no switch to turn redaction off.

Rounds run in pairs (on/off, then off/on, ...) so the growth of the tables favours
neither side, and the figure is the median of the pairs' ratios: a pair runs within
seconds, so a neighbour's burst of disk or CPU load shifts one pair, not the median.
Runs in a child process with its own data directory (`python -m bench.redaction`).

Target: redaction costs ≤ 15 % of end-to-end throughput (ratio on/off ≥ 0.85).

Reading the figures: "off" also keeps the HTTP bodies that the default rules drop,
so it writes more, and on a busy disk "on" can come out faster. The steadiest figure
is the last row: redact_event's own time per event as a share of the CPU time an
event costs end to end.
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BATCH = 500


def run(args) -> list[dict]:
    n = args.events or (20_000 if args.quick else 40_000)
    rounds = 2 if args.quick else 4
    with tempfile.TemporaryDirectory(prefix="flightrec-bench-redaction-") as tmp:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "flightrec_site.settings",
            "FLIGHTREC_DATA_DIR": tmp,
            # The drain runs inline after each inbox commit: end to end, in-process.
            "FLIGHTREC_HUEY_IMMEDIATE": "1",
            "FLIGHTREC_MIN_FREE_DISK_BYTES": "0",
        }
        out = subprocess.run(
            [sys.executable, "-m", "bench.redaction", str(n), str(rounds)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if out.returncode != 0:
            raise RuntimeError(f"bench.redaction child failed:\n{out.stderr[-3000:]}")
        result = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"   (on, off) events/s per pair: {result['pairs']}", file=sys.stderr)
    pairs = result["pairs"]
    ratio = statistics.median(on / off for on, off in pairs)
    on = statistics.median(p[0] for p in pairs)
    off = statistics.median(p[1] for p in pairs)
    cpu = statistics.median(on / off for on, off in result["cpu_pairs"])
    cpu_us = 1e6 / statistics.median(p[0] for p in result["cpu_pairs"])
    return [
        {"name": "ingest end-to-end, default redaction", "value": on, "unit": "events/s",
         "baseline": off, "ratio": ratio,
         "note": f"baseline = redaction off; cost {100 * (1 - ratio):.1f} % (target ≤ 15 %); "
                 f"median of {rounds} paired rounds of {n} demo-mix events, in-process, SQLite WAL"},
        {"name": "ingest end-to-end CPU, default redaction",
         "value": statistics.median(p[0] for p in result["cpu_pairs"]), "unit": "events/CPU-s",
         "baseline": statistics.median(p[1] for p in result["cpu_pairs"]), "ratio": cpu,
         "note": "same rounds in process CPU time: leaves out fsync waits and the "
                 "machine's other load, so it is the steadier of the two figures"},
        {"name": "redact_event per event (demo mix)", "value": result["us_per_event"],
         "unit": "µs", "baseline": cpu_us, "ratio": result["us_per_event"] / cpu_us,
         "note": f"baseline = end-to-end CPU µs per event with redaction; ratio = redaction's "
                 f"share of it; {result['scrubbed_share']:.0%} of events had something scrubbed"},
    ]  # fmt: skip


# --- the child process -------------------------------------------------------------------


def _child(n: int, rounds: int) -> dict:
    import django

    django.setup()
    import copy

    import orjson
    from django.core.management import call_command
    from django.test import Client

    from bench.ingest import demo_mix
    from recorder import redaction
    from recorder.models import ApiKey, Application, Event

    for alias in ("default", "inbox"):
        call_command("migrate", database=alias, verbosity=0)
    events = demo_mix(n)
    client = Client(HTTP_HOST="127.0.0.1")

    real = (redaction.redact_event, redaction.redact_mapping)

    def switch(on: bool) -> None:
        if on:
            redaction.redact_event, redaction.redact_mapping = real
        else:
            redaction.redact_event = lambda event, policy: []
            redaction.redact_mapping = lambda data, policy, prefix="metadata": []

    def one_round(i: int, on: bool) -> tuple[float, float]:
        app = Application.objects.create(name=f"bench-{i}-{'on' if on else 'off'}")
        key = ApiKey.generate(app)[1]
        bodies = [orjson.dumps(events[j : j + BATCH]) for j in range(0, n, BATCH)]
        switch(on)
        try:
            started, cpu_started = time.perf_counter(), time.process_time()
            for body in bodies:
                r = client.post("/api/v1/events", body, content_type="application/json",
                                HTTP_X_API_KEY=key)  # fmt: skip
                assert r.status_code == 202, r.content
            elapsed = time.perf_counter() - started
            cpu = time.process_time() - cpu_started
        finally:
            switch(True)
        stored = Event.objects.filter(application=app).count()
        assert stored == n, f"{stored} of {n} events stored"
        return n / elapsed, n / cpu

    client.post("/api/v1/events", b"[]", content_type="application/json")  # warm up imports
    one_round(-1, True)  # warm-up: caches, page cache, first-time table growth
    pairs, cpu_pairs = [], []
    for i in range(rounds):
        order = [True, False] if i % 2 == 0 else [False, True]
        measured = {on: one_round(2 * i + j, on) for j, on in enumerate(order)}
        pairs.append((measured[True][0], measured[False][0]))
        cpu_pairs.append((measured[True][1], measured[False][1]))

    # Redaction alone on the same events, copied first so only the scrubbing is timed.
    policy = redaction.compile_policy(None)
    copies = [copy.deepcopy(ev) for ev in events]
    started = time.perf_counter()
    scrubbed = sum(1 for ev in copies if redaction.redact_event(ev, policy))
    redact_s = time.perf_counter() - started
    return {
        "pairs": pairs,
        "cpu_pairs": cpu_pairs,
        "us_per_event": redact_s / n * 1e6,
        "scrubbed_share": scrubbed / n,
    }


if __name__ == "__main__":
    print(json.dumps(_child(int(sys.argv[1]), int(sys.argv[2]))))

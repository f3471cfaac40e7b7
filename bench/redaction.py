"""What redaction costs: end-to-end ingestion with the default rules vs with it switched off.

End to end = the whole request (middleware, key lookup, body parsing, validation,
redaction, spooling into the inbox with a durable commit) and the drain into the Event
table, on real SQLite files in WAL mode, with the demo mix of events (HTTP calls with
Authorization headers, logins with passwords, IoT telemetry, UI and audit events).
Both run in one process, one after the other, so the measurement does not depend on
how the machine shares its cores between web workers and the consumer: it is the
share of the total work that redaction is. "Off" replaces redact_event/redact_mapping
by no-ops inside this benchmark only; the product has no switch to turn redaction off.

Rounds alternate on/off/off/on... so the growth of the tables does not favour either.
Runs in a child process with its own data directory (`python -m bench.redaction`).

Target: redaction costs ≤ 15 % of end-to-end throughput (ratio on/off ≥ 0.85).
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
    n = args.events or (20_000 if args.quick else 60_000)
    rounds = 2 if args.quick else 3
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
    print(f"   rounds (events/s): {result['rates']}", file=sys.stderr)
    on, off = result["on"], result["off"]
    ratio = on / off
    return [
        {"name": "ingest end-to-end, default redaction", "value": on, "unit": "events/s",
         "baseline": off, "ratio": ratio,
         "note": f"baseline = redaction off; cost {100 * (1 - ratio):.1f} % (target ≤ 15 %); "
                 f"median of {rounds} rounds of {n} demo-mix events, in-process, SQLite WAL"},
        {"name": "ingest end-to-end CPU, default redaction", "value": result["cpu_on"],
         "unit": "events/CPU-s", "baseline": result["cpu_off"],
         "ratio": result["cpu_on"] / result["cpu_off"],
         "note": "same rounds in process CPU time: leaves out fsync waits and the "
                 "machine's other load, so it is the steadier of the two figures"},
        {"name": "redact_event per event (demo mix)", "value": result["us_per_event"],
         "unit": "µs", "note": f"{result['scrubbed_share']:.0%} of events had something scrubbed"},
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
    rates = {True: [], False: []}
    cpu_rates = {True: [], False: []}
    order = []
    for i in range(rounds):
        order += [True, False] if i % 2 == 0 else [False, True]
    for i, on in enumerate(order):
        wall, cpu = one_round(i, on)
        rates[on].append(wall)
        cpu_rates[on].append(cpu)

    # Redaction alone on the same events, copied first so only the scrubbing is timed.
    policy = redaction.compile_policy(None)
    copies = [copy.deepcopy(ev) for ev in events]
    started = time.perf_counter()
    scrubbed = sum(1 for ev in copies if redaction.redact_event(ev, policy))
    redact_s = time.perf_counter() - started
    return {
        "on": statistics.median(rates[True]),
        "off": statistics.median(rates[False]),
        "cpu_on": statistics.median(cpu_rates[True]),
        "cpu_off": statistics.median(cpu_rates[False]),
        "rates": {"on": rates[True], "off": rates[False]},
        "us_per_event": redact_s / n * 1e6,
        "scrubbed_share": scrubbed / n,
    }


if __name__ == "__main__":
    print(json.dumps(_child(int(sys.argv[1]), int(sys.argv[2]))))

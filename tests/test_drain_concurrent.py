"""Several consumer processes draining one inbox at once never lose or duplicate events.

An inbox is filled through the real ingestion path (with retried batches in it, as
senders produce) and committed at once, then four drains are queued for two running
consumer processes (two workers each), which race for it. On PostgreSQL they claim rows with SKIP LOCKED and take turns on shared
sessions; on SQLite the write lock serializes them. Either way every uid must be stored
exactly once, and every session's counters and seq numbers must match its rows.
"""

import os
import re

import pytest

from tests.stack import Stack

pytestmark = pytest.mark.e2e

BATCHES, PER_BATCH, SESSIONS, RETRIED = 600, 50, 6, 120

FILL = f"""
import orjson
from django.conf import settings
from django.db import transaction
from recorder import ingest, tasks
from recorder.models import Application
tasks.wake_drain = lambda: None  # fill first, race after
app = Application.objects.create(name="race")
bodies = []
for b in range({BATCHES}):
    events = [{{"type": "log", "ts": 1_700_000_000 + b + i / 100, "message": f"b{{b}}-{{i}}",
                "severity": "error" if i == 7 else "info", "payload": {{"b": b, "i": i}},
                **({{"id": f"b{{b}}-{{i}}"}} if b % 2 else {{}})}}
              for i in range({PER_BATCH})]
    bodies.append(orjson.dumps({{"session": f"s{{b % {SESSIONS}}}", "events": events}}))
# Retries of earlier batches: the same bytes again, so the same uids (given or derived).
with transaction.atomic(using=settings.INBOX_DB):  # all rows appear at once
    for body in bodies + bodies[:{RETRIED}]:
        ingest.events_accept(application=app, batch=ingest.parse_batch(body), body=body)
for _ in range(4):  # one drain per consumer worker
    tasks.drain_inbox()
result = InboxBatch.objects.count()
"""

CHECK = """
from collections import Counter
events = Event.objects.filter(application__name="race")
uids = Counter(events.values_list("uid", flat=True))
sessions = []
for s in Session.objects.filter(application__name="race"):
    seqs = sorted(s.events.values_list("seq", flat=True))
    sessions.append({
        "key": s.key, "event_count": s.event_count, "last_seq": s.last_seq,
        "error_count": s.error_count, "rows": len(seqs),
        "errors": s.events.filter(severity__gte=40).count(),
        "seqs_are_1_to_n": seqs == list(range(1, len(seqs) + 1)),
    })
result = {"uids": len(uids), "dupes": sum(1 for n in uids.values() if n > 1),
          "messages": events.values("message").distinct().count(), "sessions": sessions,
          "inbox": InboxBatch.objects.count()}
"""


def test_two_consumers_draining_one_inbox_store_every_event_once(tmp_path):
    stack = Stack(tmp_path, webs=0, consumers=2)
    try:
        stack.manage("bootstrap", "--no-demo")
        for i in range(2):
            stack.start_consumer(i)
        for i in range(2):  # both listening before there is anything to take
            log = stack.logs / f"consumer{i}.log"
            stack.wait_for(
                lambda log=log: log.exists() and "consumer started" in log.read_text(),
                what=f"consumer{i} to start",
            )
        assert stack.query(FILL) == BATCHES + RETRIED
        stack.wait_for(lambda: stack.inbox_depth() == 0, timeout=120, what="the inbox to drain")
        stored = stack.query(CHECK)
    finally:
        stack.stop()

    assert stored["inbox"] == 0
    assert stored["dupes"] == 0, "an event was stored twice"
    assert stored["uids"] == stored["messages"] == BATCHES * PER_BATCH, "events were lost"
    assert len(stored["sessions"]) == SESSIONS
    for s in stored["sessions"]:
        assert s["event_count"] == s["last_seq"] == s["rows"], s
        assert s["error_count"] == s["errors"] == s["rows"] // PER_BATCH, s
        assert s["seqs_are_1_to_n"], f"seq numbers of {s['key']} have gaps or repeats"
    if not os.getenv("FLIGHTREC_QUEUE_URL"):
        return  # SqliteHuey: whichever consumer polls first may take every drain task
    # Redis hands the four queued drains to the four blocked workers, two per consumer.
    drained = [
        re.findall(r"drained (\d+) batches", (stack.logs / f"consumer{i}.log").read_text())
        for i in range(2)
    ]
    assert all(drained), f"both consumers should have drained something: {drained}"


@pytest.mark.skipif(
    bool(os.getenv("DATABASE_URL")), reason="SQLite: one drain at a time per consumer process"
)
def test_the_two_threads_of_one_consumer_never_drain_the_same_rows_twice(tmp_path):
    # Each worker thread runs a drain. Side by side they used to claim rows that the
    # other had stored but not yet deleted from the inbox, and drain them again as
    # duplicates; only the retried batches may count as duplicates.
    stack = Stack(tmp_path, webs=0, consumers=1)
    try:
        stack.manage("bootstrap", "--no-demo")
        stack.start_consumer(0)
        log = stack.logs / "consumer0.log"
        stack.wait_for(lambda: log.exists() and "consumer started" in log.read_text(),
                       what="the consumer to start")  # fmt: skip
        assert stack.query(FILL) == BATCHES + RETRIED
        stack.wait_for(lambda: stack.inbox_depth() == 0, timeout=120, what="the inbox to drain")
        stored = stack.query(CHECK)
        counters = stack.query(
            "from recorder.models import Counter as C\n"
            "result = dict(C.objects.values_list('name', 'value'))"
        )
    finally:
        stack.stop()

    assert stored["dupes"] == 0 and stored["uids"] == BATCHES * PER_BATCH
    assert counters["events_stored"] == BATCHES * PER_BATCH
    assert counters["events_duplicate"] == RETRIED * PER_BATCH

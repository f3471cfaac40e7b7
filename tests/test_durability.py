"""The durability invariant, with real processes: an event acknowledged with 2xx is never
lost and never stored twice, whatever is SIGKILLed and however often a batch is retried.

Senders post batches (half with client ids, half without) and retry each batch until it
is acknowledged. Meanwhile the consumer and the web server are SIGKILLed at random
moments and restarted. At the end every acknowledged event must be in the Event table
exactly once, sessions' counters must match their rows, and the inbox must be empty.
"""

import os
import random
import threading
import time

import orjson
import pytest

from tests.stack import Stack

pytestmark = pytest.mark.e2e

ROUNDS = int(os.getenv("FLIGHTREC_CHAOS_ROUNDS", "6"))


class Sender(threading.Thread):
    def __init__(self, stack: Stack, key: str, name: str, stop: threading.Event):
        super().__init__(daemon=True)
        self.stack, self.key, self.name, self.stop = stack, key, name, stop
        self.acked: list[str] = []
        self.attempts = 0
        self.rng = random.Random(name)

    def batch(self, n: int) -> bytes:
        with_ids = n % 2 == 0
        events = []
        for i in range(50):
            tag = f"{self.name}-b{n}-{i}"
            ev = {"type": "log", "ts": time.time(), "message": tag, "payload": {"n": n}}
            if with_ids:
                ev["id"] = tag
            events.append(ev)
        return orjson.dumps({"session": f"{self.name}-s{n % 3}", "events": events})

    def run(self):
        n = 0
        while not self.stop.is_set():
            body = self.batch(n)
            while True:  # retry the SAME batch until it is acknowledged
                self.attempts += 1
                web = self.rng.randrange(len(self.stack.webs))
                try:
                    status, _ = self.stack.post("/api/v1/events", body, self.key, i=web, timeout=5)
                except OSError:
                    status = None
                if status == 202:
                    self.acked.extend(f"{self.name}-b{n}-{i}" for i in range(50))
                    break
                if self.stop.is_set() and status is None:
                    return  # never acknowledged: the sender still holds it, nothing owed
                time.sleep(0.05)
            n += 1


def run_chaos(stack: Stack, *, senders: int = 2, rounds: int = ROUNDS, seed: int = 1) -> None:
    rng = random.Random(seed)
    key = stack.manage("apikey", "chaos").strip().splitlines()[-1]
    stop = threading.Event()
    threads = [Sender(stack, key, f"t{i}", stop) for i in range(senders)]
    for t in threads:
        t.start()
    try:
        for n in range(rounds):
            time.sleep(rng.uniform(0.3, 1.5))
            # In turn rather than at random, so every kind of crash happens in every run
            # (FLIGHTREC_CHAOS_ROUNDS=30 for a longer soak).
            victim = ["consumer", "web", "both"][n % 3]
            if victim in ("consumer", "both"):
                i = rng.randrange(len(stack.consumers))
                stack.kill(stack.consumers[i])
            if victim in ("web", "both"):
                i = rng.randrange(len(stack.webs))
                stack.kill(stack.webs[i])
            time.sleep(rng.uniform(0.1, 1.0))
            for i, proc in enumerate(stack.consumers):
                if proc.poll() is not None:
                    stack.start_consumer(i, periodic=(i == 0))
            for i, proc in enumerate(stack.webs):
                if proc.poll() is not None:
                    stack.start_web(i)
        time.sleep(1.0)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)

    acked = [tag for t in threads for tag in t.acked]
    assert len(acked) > 500, "the senders should have got many batches through"

    deadline = time.monotonic() + 90
    while stack.inbox_depth() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert stack.inbox_depth() == 0, "the inbox must drain by itself after the kills"

    stored = stack.query(
        "from collections import Counter\n"
        "c = Counter(Event.objects.filter(application__name='chaos').values_list('message', flat=True))\n"
        "dupes = {m: n for m, n in c.items() if n > 1}\n"
        "bad_counters = [s.key for s in Session.objects.filter(application__name='chaos')\n"
        "                if s.event_count != s.events.count() or s.last_seq != s.events.count()]\n"
        "seq_dupes = Event.objects.values('session', 'seq').annotate(n=Count('id')).filter(n__gt=1).count()\n"
        "result = {'messages': list(c), 'dupes': dupes, 'bad_counters': bad_counters,\n"
        "          'seq_dupes': seq_dupes}"
    )
    assert stored["dupes"] == {}, "an event was stored twice"
    missing = set(acked) - set(stored["messages"])
    assert not missing, f"{len(missing)} acknowledged events were lost, e.g. {sorted(missing)[:5]}"
    assert stored["bad_counters"] == [], "session counters must match the stored events"
    assert stored["seq_dupes"] == 0


def test_acknowledged_events_survive_sigkill_of_consumer_and_web(tmp_path):
    stack = Stack(tmp_path, webs=int(os.getenv("FLIGHTREC_E2E_WEBS", "1")),
                  consumers=int(os.getenv("FLIGHTREC_E2E_CONSUMERS", "1")))  # fmt: skip
    try:
        stack.start()
        run_chaos(stack)
    finally:
        stack.stop()


def test_events_appear_within_a_second_with_the_consumer_running(tmp_path):
    stack = Stack(tmp_path).start()
    try:
        key = stack.manage("apikey", "latency").strip().splitlines()[-1]
        body = orjson.dumps([{"session": "s", "type": "log", "message": "hello"}])
        status, _ = stack.post("/api/v1/events", body, key)
        assert status == 202
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if stack.query("result = Event.objects.filter(message='hello').count()"):
                break
            time.sleep(0.1)
        else:
            pytest.fail("an acknowledged event did not reach the Event table in 5 s")
    finally:
        stack.stop()

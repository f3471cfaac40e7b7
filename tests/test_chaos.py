"""Faults with real processes and real files: a stopped consumer, a full disk, readers
during heavy writes, a damaged database file. (SIGKILL rounds: tests/test_durability.py.)

Every test checks the durability invariant at the end: each acknowledged event is
stored exactly once.
"""

import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import orjson
import pytest

from tests.stack import ROOT, Stack, free_port

pytestmark = pytest.mark.e2e


def post(stack: Stack, body: bytes, key: str, timeout: float = 10):
    """(status, json body, headers); status None when the server could not be reached."""
    req = urllib.request.Request(
        stack.url("/api/v1/events"), data=body, method="POST",
        headers={"Content-Type": "application/json", "X-API-Key": key},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read()), resp.headers
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null"), exc.headers
    except OSError:
        return None, None, {}


def get(stack: Stack, path: str, key: str, timeout: float = 10):
    req = urllib.request.Request(stack.url(path), headers={"X-API-Key": key})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def batch(tag: str, n: int = 50, session: str = "chaos") -> tuple[bytes, list[str]]:
    ids = [f"{tag}-{i}" for i in range(n)]
    events = [{"id": i, "type": "log", "ts": time.time(), "message": i} for i in ids]
    return orjson.dumps({"session": session, "events": events}), ids


def wait_drained(stack: Stack, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while stack.inbox_depth() and time.monotonic() < deadline:
        time.sleep(0.3)
    assert stack.inbox_depth() == 0, "the inbox must drain by itself"


def assert_stored_exactly_once(stack: Stack, acked: list[str], app: str) -> None:
    stored = stack.query(
        "from collections import Counter\n"
        f"c = Counter(Event.objects.filter(application__name={app!r})"
        ".values_list('uid', flat=True))\n"
        "result = {'uids': list(c), 'dupes': [u for u, n in c.items() if n > 1]}"
    )
    assert stored["dupes"] == [], "an event was stored twice"
    missing = set(acked) - set(stored["uids"])
    assert not missing, f"{len(missing)} acknowledged events lost, e.g. {sorted(missing)[:5]}"


def integrity(path: Path) -> str:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        return con.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        con.close()


# These damage or fill SQLite files; on PostgreSQL the data is not in them.
sqlite_files_only = pytest.mark.skipif(
    bool(os.getenv("DATABASE_URL")),
    reason="fills or damages the SQLite files; PostgreSQL keeps its data in its own server",
)


@pytest.fixture
def stack(tmp_path):
    s = Stack(tmp_path)
    try:
        yield s.start()
    finally:
        s.stop()


# --- Consumer stopped --------------------------------------------------------------------


def test_with_the_consumer_stopped_ingestion_is_acknowledged_and_drains_when_it_is_back(stack):
    key = stack.manage("apikey", "paused").strip().splitlines()[-1]
    stack.kill(stack.consumers[0])
    acked: list[str] = []
    depths = []
    for n in range(20):
        body, ids = batch(f"p{n}")
        started = time.perf_counter()
        status, _, _ = post(stack, body, key)
        assert status == 202
        # Acknowledgements do not wait for a consumer: only for the inbox commit.
        assert time.perf_counter() - started < 2
        acked += ids
        if n % 5 == 4:
            depths.append(stack.inbox_depth())
    assert depths == sorted(depths) and depths[-1] == 20, "the inbox grows while nobody drains"
    assert stack.query("result = Event.objects.count()") == 0

    stack.start_consumer(0)
    wait_drained(stack, timeout=30)
    assert_stored_exactly_once(stack, acked, "paused")
    assert stack.query("result = Session.objects.get(key='chaos').event_count") == len(acked)


# --- Disk full ------------------------------------------------------------------------------


@contextlib.contextmanager
def tiny_filesystem(where: Path, size: str = "16m"):
    where.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tiny tmpfs to fill up needs root")
    out = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                         capture_output=True, text=True)  # fmt: skip
    if out.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here: {out.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(path: Path, *, leave: int = 0) -> int:
    """Write zeros until the filesystem says no (or only `leave` bytes are free)."""
    written = 0
    with open(path, "wb", buffering=0) as f:
        if leave:
            f.write(b"\0" * (shutil.disk_usage(path.parent).free - leave))
            return written
        chunk = b"\0" * 65536
        while True:
            try:
                written += f.write(chunk)
            except OSError:
                break
        for size in (4096, 512, 1):  # the last scraps
            while True:
                try:
                    written += f.write(b"\0" * size)
                except OSError:
                    break
    return written


@sqlite_files_only
def test_a_full_disk_answers_503_loses_nothing_and_recovers_by_itself(tmp_path):
    with tiny_filesystem(tmp_path / "data") as data:
        # min free bytes 0: the admission check stays out of the way, so this is SQLite
        # itself meeting a full disk (the admission check is tested below).
        stack = Stack(data, logs=tmp_path / "logs")
        try:
            stack.start()
            key = stack.manage("apikey", "full").strip().splitlines()[-1]
            acked: list[str] = []
            for n in range(5):
                body, ids = batch(f"before{n}")
                assert post(stack, body, key)[0] == 202
                acked += ids
            wait_drained(stack)

            filler = data / "filler"
            fill(filler)
            refused, pending = None, []
            for n in range(400):  # until SQLite can no longer grow a file
                body, ids = batch(f"full{n}", n=200)
                status, doc, headers = post(stack, body, key)
                if status == 202:
                    acked += ids
                    continue
                assert status == 503, (status, doc)
                refused = (doc, headers)
                pending.append((body, ids))
                break
            assert refused, "a full disk must end in 503s"
            doc, headers = refused
            assert "full" in doc["detail"] or "disk" in doc["detail"]
            assert int(headers["Retry-After"]) > 0
            # Still refusing, still up: a second try is a clean 503 too.
            status, _, _ = post(stack, pending[0][0], key)
            assert status == 503
            assert stack.webs[0].poll() is None and stack.consumers[0].poll() is None

            filler.unlink()  # space returns; nothing is restarted
            deadline = time.monotonic() + 30
            for body, ids in pending:
                while True:  # the sender retries the refused batch, as told
                    status, _, _ = post(stack, body, key)
                    if status == 202:
                        acked += ids
                        break
                    assert time.monotonic() < deadline, "ingestion did not recover"
                    time.sleep(0.5)
            for n in range(3):
                body, ids = batch(f"after{n}")
                assert post(stack, body, key)[0] == 202
                acked += ids
            wait_drained(stack)
            assert_stored_exactly_once(stack, acked, "full")
            assert stack.consumers[0].poll() is None, "the consumer survived the full disk"
        finally:
            stack.stop()
        for name in ("flightrec.sqlite3", "inbox.sqlite3"):
            assert integrity(data / name) == "ok", f"{name} is damaged"


@sqlite_files_only
def test_the_drain_keeps_inbox_rows_when_the_event_database_cannot_grow(tmp_path):
    """The drain's transaction fails on a full disk: its inbox rows stay for later."""
    with tiny_filesystem(tmp_path / "data") as data:
        stack = Stack(data, logs=tmp_path / "logs")
        try:
            stack.start()
            key = stack.manage("apikey", "drainfull").strip().splitlines()[-1]
            stack.kill(stack.consumers[0])
            acked: list[str] = []
            for n in range(30):  # inbox rows waiting, while the disk is still free
                body, ids = batch(f"q{n}", n=200)
                assert post(stack, body, key)[0] == 202
                acked += ids
            filler = data / "filler"
            # Room for the queue's and the inbox's small writes, not for 6,000 events.
            fill(filler, leave=192 * 1024)
            stack.start_consumer(0)
            time.sleep(4)  # it tries to drain into a database that cannot grow
            assert stack.consumers[0].poll() is None, "the consumer survived"
            stack.kill(stack.consumers[0])  # look before space returns and it drains
            filler.unlink()
            waiting = stack.inbox_depth()
            stored = stack.query("result = Event.objects.count()")
            assert waiting > 0, "the disk filled too late to stop the drain"
            # Whatever could not be stored is still in the inbox, never dropped.
            assert stored + waiting * 200 >= len(acked)
            log = (stack.logs / "consumer0.log").read_text()
            assert "database or disk is full" in log, "the drain never met the full disk"
            stack.start_consumer(0)
            # The periodic sweep (every minute) or the next wake-up drains the rest.
            body, ids = batch("wake")
            assert post(stack, body, key)[0] == 202
            acked += ids
            wait_drained(stack)
            assert_stored_exactly_once(stack, acked, "drainfull")
        finally:
            stack.stop()
        for name in ("flightrec.sqlite3", "inbox.sqlite3"):
            assert integrity(data / name) == "ok", f"{name} is damaged"


# --- Readers during heavy writes ------------------------------------------------------------


HISTORY = 2000  # events of the session the readers walk, before the writers start


def read_session(stack: Stack, write_key: str, base: int) -> int:
    """The session the readers walk: HISTORY events r0.. one second apart from base."""
    events = [{"id": f"r{i}", "type": "log", "ts": base + i, "message": f"r{i}"}
              for i in range(HISTORY)]  # fmt: skip
    for i in range(0, HISTORY, 500):
        body = orjson.dumps({"session": "read-me", "events": events[i : i + 500]})
        assert post(stack, body, write_key)[0] == 202
    wait_drained(stack)
    return stack.query("result = Session.objects.get(key='read-me').id")


class Writers:
    """Threads posting batches to other sessions and appending to the one being read
    (later timestamps, after its history), until stopped. Each acknowledged id is in
    `acked`; every answer's status is in `statuses` (None: no answer)."""

    def __init__(self, stack: Stack, key: str, *, tail_ts: int, threads: int = 2):
        self.stack, self.key, self.tail_ts = stack, key, tail_ts
        self.acked: list[str] = []
        self.statuses: list[int | None] = []
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._write, args=(w,), daemon=True) for w in range(threads)
        ]

    def _write(self, w: int) -> None:
        n = 0
        while not self._stop.is_set():
            body, ids = batch(f"w{w}-{n}", n=200, session=f"other-{n % 4}")
            status = post(self.stack, body, self.key)[0]
            self.statuses.append(status)
            if status == 202:
                self.acked.extend(ids)
            uid = f"t{w}-{n}"
            tail = [{"id": uid, "type": "log", "ts": self.tail_ts + n, "message": uid}]
            status = post(self.stack, orjson.dumps({"session": "read-me", "events": tail}),
                          self.key)[0]  # fmt: skip
            self.statuses.append(status)
            if status == 202:
                self.acked.append(uid)
            n += 1

    def __enter__(self) -> "Writers":
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)


def walk_timeline(stack: Stack, session_id: int, read_key: str, latencies: list[float]) -> None:
    """Page through the whole session, as the timeline does, and check what came back:
    every page answered, in (ts, seq) order without repeats, the history unchanged."""
    seen, after = [], ""
    while True:
        started = time.perf_counter()
        status, page = get(
            stack, f"/api/v1/sessions/{session_id}/events?limit=250&after={after}", read_key
        )
        latencies.append(time.perf_counter() - started)
        assert status == 200, page
        seen += page["items"]
        after = page["next_cursor"]
        if not after:
            break
    order = [(e["ts"], e["seq"]) for e in seen]
    assert order == sorted(order) and len(set(order)) == len(order)
    messages = [e["message"] for e in seen]
    assert messages[:HISTORY] == [f"r{i}" for i in range(HISTORY)], "the history changed"


def p99(latencies: list[float]) -> float:
    latencies = sorted(latencies)
    return latencies[int(len(latencies) * 0.99) - 1]


def test_timeline_pages_stay_complete_and_ordered_while_ingestion_runs(stack):
    write_key = stack.manage("apikey", "busy").strip().splitlines()[-1]
    read_key = stack.manage("apikey", "busy", "--read").strip().splitlines()[-1]
    base = int(time.time()) - 86_400  # recent: the hourly purge must not take them
    session_id = read_session(stack, write_key, base)

    walks, latencies = 0, []
    with Writers(stack, write_key, tail_ts=base + 5000) as writers:
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            walk_timeline(stack, session_id, read_key, latencies)
            walks += 1
    assert walks >= 2 and len(writers.acked) > 1000, (walks, len(writers.acked))
    assert p99(latencies) < 2.0, (
        f"timeline pages took {p99(latencies):.2f}s at p99 under write load"
    )
    wait_drained(stack)
    assert_stored_exactly_once(stack, writers.acked, "busy")


@pytest.fixture
def stack_without_periodic_tasks(tmp_path):
    """The test runs the purge itself: the hourly one must not take the old sessions
    first (at minute 17). Wake-ups still drain the inbox right away."""
    s = Stack(tmp_path)
    try:
        s.manage("bootstrap", "--no-demo")
        s.start_web(0)
        s.start_consumer(0, periodic=False)
        yield s
    finally:
        s.stop()


def test_timeline_pages_stay_complete_while_a_purge_removes_other_sessions(
    stack_without_periodic_tasks,
):
    """Issue #10: ingestion, readers and a purge of many old sessions, all at once."""
    stack = stack_without_periodic_tasks
    write_key = stack.manage("apikey", "busy").strip().splitlines()[-1]
    read_key = stack.manage("apikey", "busy", "--read").strip().splitlines()[-1]
    now = int(time.time())
    base = now - 86_400  # well inside the 30-day default retention
    session_id = read_session(stack, write_key, base)
    # Sessions of the same application whose last event is 100 days old: the max-age
    # policy removes them, chunk by chunk, while the readers walk "read-me".
    old_sessions, per_session = 40, 150
    old = [{"id": f"old{k}-{i}", "session": f"old-{k}", "type": "log",
            "ts": now - 100 * 86_400 + i, "message": f"old {k} {i}"}
           for k in range(old_sessions) for i in range(per_session)]  # fmt: skip
    for i in range(0, len(old), 2000):
        assert post(stack, orjson.dumps(old[i : i + 2000]), write_key)[0] == 202
    wait_drained(stack)
    assert (
        stack.query("result = Event.objects.filter(session__key__startswith='old-').count()")
        == old_sessions * per_session
    )

    purge: dict = {}

    def run_purge():
        try:
            purge["out"] = stack.manage("purge", "--app", "busy")
        except Exception as exc:  # reported by the main thread
            purge["error"] = exc

    purger = threading.Thread(target=run_purge, daemon=True)
    walks_during_purge, walks, latencies = 0, 0, []
    with Writers(stack, write_key, tail_ts=base + 5000) as writers:
        purger.start()
        # Until the purge is done, and a little after, so reads also meet its vacuum.
        deadline = time.monotonic() + 25
        settle = None
        while time.monotonic() < deadline:
            purging = purger.is_alive()
            walk_timeline(stack, session_id, read_key, latencies)
            walks += 1
            walks_during_purge += purging
            if not purging:
                settle = settle or time.monotonic() + 1
                if time.monotonic() > settle:
                    break
    purger.join(timeout=60)
    assert "error" not in purge, purge.get("error")
    assert f"max_age (older than 30 days) removed {old_sessions} sessions" in purge["out"], purge
    assert walks_during_purge >= 2, f"the purge was over before the readers met it ({walks})"
    assert len(writers.acked) > 1000, len(writers.acked)
    failed = [s for s in writers.statuses if s is None or s >= 500]
    assert not failed, f"{len(failed)} writes failed during the purge: {failed[:5]}"
    assert p99(latencies) < 2.0, f"timeline pages took {p99(latencies):.2f}s at p99 during a purge"
    wait_drained(stack)
    assert_stored_exactly_once(stack, writers.acked, "busy")
    tails = {u for u in writers.acked if u.startswith("t")}
    old_left, read_me = stack.query(
        "s = Session.objects.get(key='read-me')\n"
        "result = [[Session.objects.filter(key__startswith='old-').count(),"
        " Event.objects.filter(message__startswith='old ').count()],"
        " [s.event_count, Event.objects.filter(session=s).count(), s.trimmed_count]]"
    )
    assert old_left == [0, 0], "the purged sessions are not all gone"
    expected = HISTORY + len(tails)
    assert read_me == [expected, expected, 0], "the session being read was touched"


# --- A damaged database file ----------------------------------------------------------------


def damage(path: Path) -> None:
    """Garbage over the event table's root page, as a torn write would leave."""
    con = sqlite3.connect(path)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page_size = con.execute("PRAGMA page_size").fetchone()[0]
    root = con.execute(
        "SELECT rootpage FROM sqlite_master WHERE name = 'recorder_event'"
    ).fetchone()[0]
    con.close()
    with open(path, "r+b") as f:
        f.seek((root - 1) * page_size + 16)
        f.write(b"\xde\xad\xbe\xef" * 256)


@sqlite_files_only
def test_the_server_refuses_to_start_on_a_damaged_database(tmp_path):
    stack = Stack(tmp_path)
    stack.start()
    key = stack.manage("apikey", "damaged").strip().splitlines()[-1]
    for n in range(10):
        assert post(stack, batch(f"d{n}")[0], key)[0] == 202
    wait_drained(stack)
    stack.stop()  # the last connection checkpoints the WAL into the file
    damage(tmp_path / "flightrec.sqlite3")

    serve = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--port", str(free_port())],
        cwd=ROOT, env=stack.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        _, stderr = serve.communicate(timeout=60)
    finally:  # if it did start, take its web server and consumer down with it
        with contextlib.suppress(ProcessLookupError):
            os.killpg(serve.pid, signal.SIGKILL)
    assert serve.returncode != 0
    assert "flightrec will not start: the database is damaged" in stderr
    assert "flightrec.sqlite3:" in stderr

    # gunicorn started on its own (not through serve) refuses too.
    with pytest.raises(RuntimeError, match="web0 exited"):
        stack.start_web(0)
    stack.webs[0].wait(timeout=30)
    assert "the database is damaged" in (stack.logs / "web0.log").read_text()

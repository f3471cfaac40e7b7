"""recorder.client against a real flightrec server (pytest-django's live_server).

Huey runs inline under pytest, so an acknowledged batch is already in the Event table
when the client's flush() returns.
"""

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from recorder import client
from recorder.client import DisabledRecorder, Recorder, RecorderHandler
from recorder.models import Event, Session
from tests.support.proxy import Forwarder, free_port

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")
ROOT = Path(__file__).resolve().parent.parent
CHILD = ROOT / "tests" / "support" / "client_child.py"


@pytest.fixture
def recorders(tmp_path):
    """Builds Recorders with a private spill dir and no global hooks; closes them after."""
    made = []

    def make(url, key, **options):
        options.setdefault("spill_dir", tmp_path / "spill")
        options.setdefault("install_hooks", False)
        options.setdefault("timeout", 2.0)
        rec = Recorder(url, key, **options)
        made.append(rec)
        return rec

    yield make
    for rec in made:
        rec.close(timeout=2)


def messages(prefix="m"):
    return list(Event.objects.filter(message__startswith=prefix).values_list("message", flat=True))


def dead_url():
    return f"http://127.0.0.1:{free_port()}"


def spill_bytes(directory: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(Path(directory).glob("spill-*.ndjson")))


def test_recorded_events_reach_the_server_with_session_metadata(live_server, shop_key, recorders):
    rec = recorders(live_server.url, shop_key, app_version="2.1.0", metadata={"tier": "gold"})
    rec.record("http", {"method": "GET", "url": "/cart", "status": 200}, message="GET /cart")
    rec.record("log", message="hello", severity="warn", source="checkout", key="last-log")
    assert rec.flush(timeout=10) is True
    session = Session.objects.get(key=rec.session_key)
    assert session.metadata["app_version"] == "2.1.0"
    assert session.metadata["tier"] == "gold"
    assert session.metadata["pid"] == os.getpid()
    assert {"host", "python", "platform", "argv"} <= set(session.metadata)
    http, log = Event.objects.filter(session=session).order_by("seq")
    assert (http.type, http.payload["status"], http.message) == ("http", 200, "GET /cart")
    assert (log.type, log.severity, log.source, log.key) == ("log", 30, "checkout", "last-log")
    assert http.uid.startswith(rec._id_prefix)


def test_state_helpers_record_state_ops(live_server, shop_key, recorders):
    rec = recorders(live_server.url, shop_key)
    rec.state_set("/cart", {"items": 1})
    rec.state_merge({"cart": {"items": 2}, "user": "ann"})
    rec.state_patch([{"op": "remove", "path": "/user"}])
    assert rec.flush(timeout=10)
    ops = [e.state for e in Event.objects.order_by("seq")]
    assert [op["op"] for op in ops] == ["set", "merge", "patch"]
    assert ops[0] == {"op": "set", "path": "/cart", "value": {"items": 1}}


def test_close_flushes_and_ends_the_session(live_server, shop_key, recorders):
    rec = recorders(live_server.url, shop_key)
    rec.record("log", message="bye")
    rec.close()
    session = Session.objects.get(key=rec.session_key)
    assert session.status == Session.Status.ENDED
    assert messages("bye") == ["bye"]


def test_context_manager_records_the_exception_and_leaves_the_session_crashed(
    live_server, shop_key, tmp_path
):
    with pytest.raises(RuntimeError):
        with Recorder(live_server.url, shop_key, spill_dir=tmp_path, install_hooks=False) as rec:
            raise RuntimeError("boom")
    session = Session.objects.get(key=rec.session_key)
    assert session.status == Session.Status.CRASHED
    crash = Event.objects.get(type="crash")
    assert crash.message == "RuntimeError: boom"
    assert "Traceback" in crash.payload["traceback"]


def test_unreachable_server_spills_redacted_events_and_flush_says_so(shop_key, recorders, tmp_path):
    rec = recorders(dead_url(), shop_key, spill_dir=tmp_path)
    rec.record("http", {"headers": {"Authorization": "Bearer sk_live_abcdef123456"}})
    rec.record("log", {"password": "hunter2-very-secret"}, message="token=tok_0123456789abcdef")
    assert rec.flush(timeout=10) is False
    spilled = spill_bytes(tmp_path)
    assert spilled.count(b"\n") == 3  # session header line + 2 events
    for secret in (b"sk_live_abcdef123456", b"hunter2-very-secret", b"tok_0123456789abcdef"):
        assert secret not in spilled
    assert b"[Filtered]" in spilled


def test_server_down_then_up_loses_nothing_and_stores_nothing_twice(
    live_server, shop_key, recorders, tmp_path
):
    port = free_port()
    rec = recorders(f"http://127.0.0.1:{port}", shop_key, spill_dir=tmp_path)
    for i in range(300):
        rec.record("log", message=f"m{i}")
    assert rec.flush(timeout=10) is False  # nothing listens yet: all of it spilled
    target = urlsplit(live_server.url)
    forwarder = Forwarder(port, (target.hostname, target.port))
    forwarder.start()
    try:
        for i in range(300, 400):
            rec.record("log", message=f"m{i}")
        deadline = time.monotonic() + 60
        while not rec.flush(timeout=10) and time.monotonic() < deadline:
            time.sleep(0.2)  # the sender is still in its backoff
        got = messages()
        assert sorted(got) == sorted(f"m{i}" for i in range(400))
        assert not list(tmp_path.glob("spill-*"))  # sent, then removed
    finally:
        forwarder.stop()


def test_buffer_overflow_spills_instead_of_dropping(shop_key, recorders, tmp_path):
    rec = recorders(dead_url(), shop_key, spill_dir=tmp_path, capacity=100, batch_size=50)
    for i in range(5000):
        rec.record("log", message=f"m{i}")
    assert rec.flush(timeout=20) is False
    assert rec.lost == 0
    lines = spill_bytes(tmp_path).splitlines()
    assert len(lines) == 5001  # header + every event


def test_a_burst_over_capacity_reaches_a_live_server_in_batches_not_one_refused_request(
    live_server, shop_key, recorders, settings
):
    # One request for the whole burst would be over the server's body limit (413) and
    # lost; batch_size batches are not.
    settings.FLIGHTREC_MAX_BODY_BYTES = 64 * 1024
    gate = threading.Event()

    def hold_the_sender(event):
        gate.wait(10)  # the burst piles up in the buffer meanwhile
        return event

    rec = recorders(
        live_server.url, shop_key, capacity=100, batch_size=50, before_send=hold_the_sender
    )
    for i in range(3000):
        rec.record("log", {"filler": "x" * 200}, message=f"burst{i}")
    gate.set()
    assert rec.flush(timeout=60) is True
    assert rec.lost == 0
    assert len(messages("burst")) == 3000


def test_a_batch_over_the_server_body_limit_goes_in_smaller_parts_and_loses_only_a_giant(
    live_server, shop_key, recorders, settings
):
    # 50 events of ~3 KB fit batch_size but not the server's 64 KiB limit: the 413 is
    # answered by sending halves. One event over the limit on its own is all that is lost.
    settings.FLIGHTREC_MAX_BODY_BYTES = 64 * 1024
    rec = recorders(live_server.url, shop_key, batch_size=50)
    for i in range(200):
        rec.record("log", {"filler": os.urandom(1500).hex()}, message=f"big{i}")
    rec.record("log", {"filler": os.urandom(40_000).hex()}, message="giant")
    assert rec.flush(timeout=60) is True
    assert len(messages("big")) == 200
    assert messages("giant") == []
    assert rec.lost == 1


def test_spill_of_a_previous_run_is_sent_first_then_removed(
    live_server, shop_key, recorders, tmp_path
):
    first = Recorder(dead_url(), shop_key, spill_dir=tmp_path, install_hooks=False, timeout=1)
    for i in range(50):
        first.record("log", message=f"m{i}")
    assert first.flush(timeout=10) is False
    first._stopping = True  # die without ending the session, as a crash would
    first._closed = True
    first._wake.set()
    first._thread.join(5)
    first._spill_file.close()  # releases the lock, as the kernel does for a dead process

    second = recorders(live_server.url, shop_key, spill_dir=tmp_path)
    second.record("log", message="m-after")
    assert second.flush(timeout=10)
    assert sorted(messages()) == sorted([*(f"m{i}" for i in range(50)), "m-after"])
    assert Session.objects.get(key=first.session_key).event_count == 50
    assert not list(tmp_path.glob("spill-*"))


def test_type_allow_and_deny_lists_and_before_send(live_server, shop_key, recorders):
    def before_send(event):
        if event.get("message") == "drop me":
            return None
        event.setdefault("payload", {})["edited"] = True
        return event

    rec = recorders(
        live_server.url,
        shop_key,
        types={"log", "http"},
        exclude_types={"http"},
        before_send=before_send,
    )
    rec.record("log", message="kept")
    rec.record("log", message="drop me")
    rec.record("http", message="denied")
    rec.record("ui", message="not allowed")
    assert rec.flush(timeout=10)
    (event,) = Event.objects.all()
    assert event.message == "kept" and event.payload == {"edited": True}


def test_payload_changed_after_record_is_sent_as_recorded_at_send_time_without_error(
    live_server, shop_key, recorders
):
    # Odd values (datetime, set) become text instead of sinking the batch.
    import datetime

    rec = recorders(live_server.url, shop_key)
    rec.record("log", {"at": datetime.datetime(2026, 1, 2), "tags": {1}}, message="odd")
    assert rec.flush(timeout=10)
    assert Event.objects.get().payload == {"at": "2026-01-02 00:00:00", "tags": "{1}"}


def test_disabled_recorder_keeps_the_api_and_starts_nothing(monkeypatch, tmp_path):
    before = threading.active_count()
    rec = Recorder("http://127.0.0.1:9", "k", enabled=False, spill_dir=tmp_path)
    assert isinstance(rec, DisabledRecorder)
    monkeypatch.setenv("FLIGHTREC_DISABLED", "1")
    rec2 = Recorder("http://127.0.0.1:9", "k", spill_dir=tmp_path)
    for r in (rec, rec2):
        r.record("log", {"a": 1}, message="x")
        r.state_set("/a", 1)
        r.state_merge({"a": 1})
        r.state_patch([])
        assert r.flush() is True
        with r:
            pass
        r.close()
    assert threading.active_count() == before
    assert list(tmp_path.iterdir()) == []


def test_logging_handler_records_structured_records(live_server, shop_key, recorders):
    rec = recorders(live_server.url, shop_key)
    logger = logging.getLogger("shop.checkout")
    handler = RecorderHandler(rec)
    logger.addHandler(handler)
    try:
        logger.warning("paid %s", 42, extra={"order": "A-17"})
        try:
            int("not a number")
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    assert rec.flush(timeout=10)
    paid, failed = Event.objects.order_by("seq")
    assert (paid.type, paid.message, paid.severity, paid.source) == (
        "log",
        "paid 42",
        30,
        "shop.checkout",
    )
    assert paid.payload["extra"] == {"order": "A-17"}
    assert paid.payload["func"] == "test_logging_handler_records_structured_records"
    assert failed.severity == 40 and "ValueError" in failed.payload["exception"]


def test_init_sets_the_process_wide_recorder(live_server, shop_key, tmp_path):
    rec = client.init(live_server.url, shop_key, spill_dir=tmp_path, install_hooks=False)
    try:
        assert client.get() is rec
    finally:
        rec.close()
        client._default = None


# --- Real processes -------------------------------------------------------------------


def child(url, key, spill_dir, start, count, *extra):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("FLIGHTREC_DISABLED", None)
    return subprocess.Popen(
        [sys.executable, str(CHILD), url, key, str(spill_dir), str(start), str(count), *extra],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )


def kill_after_flushes(proc, flushes: int) -> int:
    """SIGKILL the child after it reported `flushes` completed flushes; returns the number
    of events it had recorded before its last completed flush."""
    last = 0
    for _ in range(flushes):
        line = proc.stdout.readline()
        assert line.startswith("flushed"), line
        last = int(line.split()[1])
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    return last


@pytest.mark.e2e
def test_sigkilled_client_loses_no_flushed_event_and_duplicates_none(
    live_server, shop_key, tmp_path
):
    proc = child(live_server.url, shop_key, tmp_path, 0, 0, "--loop")
    flushed = kill_after_flushes(proc, 6)
    # A new run with the same spill dir sends whatever the dead one left behind.
    restart = child(live_server.url, shop_key, tmp_path, 100_000, 50)
    assert restart.wait(30) == 0
    got = messages()
    assert len(got) == len(set(got)), "an event was stored twice"
    missing = {f"m{i}" for i in range(flushed)} - set(got)
    assert not missing
    assert not list(tmp_path.glob("spill-*"))


@pytest.mark.e2e
def test_sigkilled_client_with_the_server_down_delivers_its_spill_on_restart(
    live_server, shop_key, tmp_path
):
    proc = child(dead_url(), shop_key, tmp_path, 0, 0, "--loop")
    flushed = kill_after_flushes(proc, 4)
    assert flushed == 200 and list(tmp_path.glob("spill-*"))
    restart = child(live_server.url, shop_key, tmp_path, 100_000, 50)
    assert restart.wait(30) == 0
    got = messages()
    assert len(got) == len(set(got))
    # Everything spilled before the kill arrives, not only what was flushed.
    spilled_and_flushed = {f"m{i}" for i in range(flushed)}
    assert spilled_and_flushed <= set(got)
    (dead_session,) = [s for s in Session.objects.all() if "100000" not in s.metadata["argv"]]
    assert dead_session.status == Session.Status.OPEN  # left open: the server decides
    assert not list(tmp_path.glob("spill-*"))


@pytest.mark.e2e
def test_uncaught_exception_records_a_fatal_event_and_marks_the_session_crashed(
    live_server, shop_key, tmp_path
):
    script = (
        "import sys\n"
        "from recorder.client import Recorder\n"
        f"rec = Recorder({live_server.url!r}, {shop_key!r}, spill_dir={str(tmp_path)!r})\n"
        "rec.record('log', message='before the crash')\n"
        "raise ValueError('the disk is on fire')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, timeout=30
    )
    assert result.returncode == 1 and b"the disk is on fire" in result.stderr
    session = Session.objects.get()
    assert session.status == Session.Status.CRASHED
    crash = Event.objects.get(type="crash")
    assert crash.severity == 50 and "ValueError" in crash.payload["traceback"]
    assert messages("before") == ["before the crash"]


@pytest.mark.e2e
def test_clean_exit_flushes_at_exit_and_ends_the_session(live_server, shop_key, tmp_path):
    script = (
        "from recorder.client import Recorder\n"
        f"rec = Recorder({live_server.url!r}, {shop_key!r}, spill_dir={str(tmp_path)!r})\n"
        "for i in range(1234):\n"
        "    rec.record('log', message=f'm{i}')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=30)
    assert len(messages()) == 1234
    assert Session.objects.get().status == Session.Status.ENDED


def test_events_that_cannot_be_spilled_are_counted_and_reported(live_server, shop_key, tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")  # the spill dir cannot be created under a file: like a full disk
    port = free_port()
    rec = Recorder(f"http://127.0.0.1:{port}", shop_key, spill_dir=blocker / "spill",
                   install_hooks=False, timeout=1)  # fmt: skip
    try:
        for i in range(10):
            rec.record("log", message=f"m{i}")
        assert rec.flush(timeout=10) is False
        assert rec.lost == 10
        target = urlsplit(live_server.url)
        forwarder = Forwarder(port, (target.hostname, target.port))
        forwarder.start()
        try:
            deadline = time.monotonic() + 60
            while not Event.objects.filter(type="flightrec:loss").exists():
                assert time.monotonic() < deadline, "the loss was never reported"
                rec.flush(timeout=5)
                time.sleep(0.2)
        finally:
            rec.close(timeout=2)
            forwarder.stop()
    finally:
        rec.close(timeout=1)
    loss = Event.objects.get(type="flightrec:loss")
    assert loss.payload == {"lost": 10, "total_lost": 10} and loss.severity == 30


@pytest.mark.e2e
def test_uncaught_exception_in_a_thread_records_a_fatal_event(live_server, shop_key, tmp_path):
    script = (
        "import threading\n"
        "from recorder.client import Recorder\n"
        f"rec = Recorder({live_server.url!r}, {shop_key!r}, spill_dir={str(tmp_path)!r})\n"
        "def work():\n"
        "    raise KeyError('sku')\n"
        "t = threading.Thread(target=work, name='worker-1')\n"
        "t.start(); t.join()\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, timeout=30)
    crash = Event.objects.get(type="crash")
    assert crash.payload["where"] == "thread worker-1" and "KeyError" in crash.payload["traceback"]
    # The process itself exited normally, but the session keeps its crash.
    assert Session.objects.get().status == Session.Status.CRASHED


def test_backpressure_429_is_retried_after_the_servers_retry_after(
    live_server, shop_key, recorders, tmp_path, settings, monkeypatch
):
    from recorder import ingest

    settings.FLIGHTREC_INBOX_MAX_EVENTS = 0  # every batch gets 429, Retry-After: 5
    monkeypatch.setattr(ingest, "_checks", {})
    rec = recorders(live_server.url, shop_key, spill_dir=tmp_path)
    rec.record("log", message="m-held")
    assert rec.flush(timeout=10) is False
    assert rec._retry_at - time.monotonic() > 3  # waits as told, not its own 0.5 s backoff
    assert messages() == []
    settings.FLIGHTREC_INBOX_MAX_EVENTS = 1_000_000
    ingest._checks.clear()
    deadline = time.monotonic() + 20
    while not rec.flush(timeout=5):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert messages() == ["m-held"]

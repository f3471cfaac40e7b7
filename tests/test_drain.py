"""The drain on its own: re-draining after a crash, duplicates inside one drain,
session ops in order, abandoned sessions."""

import os
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from django.db import transaction

from recorder import drain, ingest
from recorder.models import Counter, Event, InboxBatch, Session

pytestmark = pytest.mark.django_db(databases="__all__")


def spool_events(app, events, settings):
    """Spool without draining, as when no consumer runs."""
    body = orjson.dumps(events)
    return ingest.events_accept(application=app, batch=ingest.parse_batch(body), body=body)


@pytest.fixture
def no_wake(monkeypatch):
    monkeypatch.setattr("recorder.tasks.wake_drain", lambda: None)


def evs(n, prefix="e"):
    return [{"session": "s", "type": "log", "ts": 1_700_000_000 + i, "id": f"{prefix}{i}"}
            for i in range(n)]  # fmt: skip


def test_a_drain_that_crashed_before_deleting_the_inbox_rows_stores_nothing_twice(
    shop, no_wake, settings
):
    spool_events(shop, evs(10), settings)
    rows = list(InboxBatch.objects.all())
    with transaction.atomic():
        drain.apply_batches(rows)  # committed, but the inbox rows were never deleted
    assert InboxBatch.objects.count() == 1
    stats = drain.inbox_drain()
    assert stats.duplicates == 10 and stats.events == 0
    session = Session.objects.get(key="s")
    assert session.event_count == 10 and session.last_seq == 10
    assert Event.objects.count() == 10
    assert InboxBatch.objects.count() == 0


def test_the_same_uid_twice_in_one_drain_is_stored_once(shop, no_wake, settings):
    spool_events(shop, evs(5), settings)
    spool_events(shop, evs(8), settings)  # a retry that grew: 5 old + 3 new
    stats = drain.inbox_drain()
    assert (stats.events, stats.duplicates) == (8, 5)
    assert Session.objects.get(key="s").event_count == 8
    assert sorted(Event.objects.values_list("seq", flat=True)) == list(range(1, 9))


def test_a_partly_stored_batch_gets_seq_only_for_new_events(shop, no_wake, settings):
    spool_events(shop, evs(3), settings)
    drain.inbox_drain()
    spool_events(shop, evs(6), settings)
    drain.inbox_drain()
    assert sorted(Event.objects.values_list("seq", flat=True)) == [1, 2, 3, 4, 5, 6]


def test_end_marker_after_events_in_the_same_drain_ends_the_session(shop, no_wake, settings):
    spool_events(shop, evs(3), settings)
    ingest.session_accept(application=shop, key="s", metadata={}, kind=InboxBatch.Kind.END)
    drain.inbox_drain()
    session = Session.objects.get(key="s")
    assert session.status == "ended"
    assert session.ended_at == session.last_event_at


def test_quiet_open_sessions_are_marked_abandoned_and_reopen_on_new_events(shop, ingest):
    ingest.post(evs(1))
    session = Session.objects.get(key="s")
    later = session.last_event_at + timedelta(days=1)
    assert drain.sessions_mark_abandoned(now=later) == 1
    session.refresh_from_db()
    assert session.status == "abandoned"
    assert "no end marker" in session.status_reason
    ingest.post([{"session": "s", "type": "log", "ts": datetime.now(UTC).isoformat()}])
    session.refresh_from_db()
    assert session.status == "open"


def test_executemany_rowcount_is_the_number_of_rows_inserted_on_this_backend(shop):
    # The careful path's check relies on it: psycopg 3 and sqlite3 both sum the
    # affected rows over every execution, and ON CONFLICT DO NOTHING rows count 0.
    from django.db import connection

    session = Session.objects.create(application=shop, key="s", started_at=datetime.now(UTC))

    def rows(uids):
        return [(shop.id, session.id, i, 0, 0, "log", None, 20, None, None, None, None,
                 '{"a": 1}', None, f"u{i}", 0, None) for i in uids]  # fmt: skip

    with connection.cursor() as cursor:
        cursor.executemany(drain._insert_sql(), rows(range(10)))
        assert cursor.rowcount == 10
        cursor.executemany(drain._insert_sql(), rows(range(5, 15)))
        assert cursor.rowcount == 5
    assert Event.objects.get(uid="u3").payload == {"a": 1}


def test_nul_characters_become_replacement_characters_only_on_postgresql(shop, ingest):
    from django.db import connection

    nul = "\u0000"
    ingest.post([{"session": "s", "type": "log", "message": f"a{nul}b",
                  "payload": {f"k{nul}": [f"v{nul}"]}}])  # fmt: skip
    event = Event.objects.get()
    if connection.vendor == "postgresql":  # text and jsonb cannot hold NUL
        assert event.message == "a\ufffdb"
        assert event.payload == {"k\ufffd": ["v\ufffd"]}
    else:
        assert event.message == f"a{nul}b"
        assert event.payload == {f"k{nul}": [f"v{nul}"]}


# --- What the drain's per-event loop and its full-text step must keep exact ---------------

sqlite_only = pytest.mark.skipif(
    bool(os.getenv("DATABASE_URL")), reason="the FTS5 index is SQLite's; PostgreSQL keeps GIN"
)


def fts_ids(word: str) -> list[int]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT rowid FROM recorder_event_fts WHERE recorder_event_fts MATCH %s ORDER BY rowid",
            [word],
        )
        return [r[0] for r in cursor.fetchall()]


def fts_check() -> None:
    """FTS5's own check: the index holds exactly the words of the stored rows."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO recorder_event_fts(recorder_event_fts, rank) VALUES ('integrity-check', 0)"
        )


def worded(n, prefix="w", session="s"):
    """Events whose message and payload hold words no other event has."""
    return [{"session": f"{session}{i % 3}", "type": "mqtt", "ts": 1_700_000_000 + i,
             "id": f"{prefix}{i}", "message": f"msg{prefix}{i}",
             "payload": {"topic": f"topic{prefix}{i}", "value": i}}
            for i in range(n)]  # fmt: skip


@sqlite_only
def test_every_drained_event_is_found_by_its_own_words_and_no_other(shop, no_wake, settings):
    for start in range(0, 60, 20):  # three batches, several sessions, one drain
        spool_events(shop, worded(60)[start : start + 20], settings)
    drain.inbox_drain()
    by_uid = dict(Event.objects.values_list("uid", "id"))
    for i in (0, 1, 29, 58, 59):
        assert fts_ids(f"msgw{i}") == [by_uid[f"w{i}"]]
        assert fts_ids(f"topicw{i}") == [by_uid[f"w{i}"]]
    fts_check()


@sqlite_only
def test_events_drained_after_the_newest_ones_were_deleted_are_indexed_under_their_ids(
    shop, no_wake, settings
):
    # Deleting the newest events leaves MAX(id) below the AUTOINCREMENT counter: new ids
    # start past a gap, and the index must still follow the ids the rows really got.
    spool_events(shop, worded(10, "a"), settings)
    drain.inbox_drain()
    Event.objects.filter(id__gt=Event.objects.order_by("id")[4].id).delete()
    spool_events(shop, worded(10, "b"), settings)
    drain.inbox_drain()
    for i in range(10):
        assert fts_ids(f"msgb{i}") == [Event.objects.get(uid=f"b{i}").id]
    assert fts_ids("msga9") == []
    fts_check()


@sqlite_only
def test_a_batch_mixing_stored_and_new_uids_indexes_and_counts_only_the_new_ones(
    shop, no_wake, settings
):
    spool_events(shop, worded(6, session="x"), settings)
    drain.inbox_drain()
    spool_events(shop, worded(9, session="x"), settings)  # a retry that grew: 6 old + 3 new
    stats = drain.inbox_drain()
    assert (stats.events, stats.duplicates) == (3, 6)
    assert Event.objects.count() == 9
    for i in range(9):
        assert fts_ids(f"msgw{i}") == [Event.objects.get(uid=f"w{i}").id]
    sessions = Session.objects.filter(key__startswith="x")
    assert sum(s.event_count for s in sessions) == 9
    for s in sessions:
        assert s.last_seq == s.event_count == s.events.count()
        assert sorted(s.events.values_list("seq", flat=True)) == list(range(1, s.event_count + 1))
    fts_check()


def test_a_uid_stored_by_an_earlier_drain_is_never_stored_or_counted_again(shop, no_wake, settings):
    spool_events(shop, evs(3), settings)
    drain.inbox_drain()
    # The same uids again, in the middle of new ones and in two batches of one drain.
    spool_events(shop, evs(2, "n") + evs(3) + evs(4, "m"), settings)
    spool_events(shop, evs(3, "n") + evs(1), settings)
    stats = drain.inbox_drain()
    assert (stats.events, stats.duplicates) == (7, 6)
    session = Session.objects.get(key="s")
    assert session.event_count == session.last_seq == Event.objects.count() == 10
    assert sorted(Event.objects.values_list("seq", flat=True)) == list(range(1, 11))
    assert Counter.objects.get(name="events_stored").value == 10
    assert Counter.objects.get(name="events_duplicate").value == 6


def test_out_of_order_events_of_one_batch_move_the_session_range_both_ways(shop, no_wake, settings):
    spool_events(shop, [{"session": "s", "type": "log", "ts": 1_700_000_050, "id": "mid"}],
                 settings)  # fmt: skip
    drain.inbox_drain()
    times = [1_700_000_070, 1_700_000_020, 1_700_000_090, 1_700_000_010, 1_700_000_060]
    spool_events(shop, [{"session": "s", "type": "log", "ts": t, "id": f"t{t}"} for t in times],
                 settings)  # fmt: skip
    drain.inbox_drain()
    session = Session.objects.get(key="s")
    assert session.started_at == datetime.fromtimestamp(1_700_000_010, UTC)
    assert session.last_event_at == datetime.fromtimestamp(1_700_000_090, UTC)


def test_a_session_start_spooled_after_its_events_wins_in_the_same_drain(shop, no_wake, settings):
    spool_events(shop, evs(3), settings)  # ts 1_700_000_000 .. 002
    ingest.session_accept(application=shop, key="s", metadata={"started_at": 1_600_000_000})
    drain.inbox_drain()
    session = Session.objects.get(key="s")
    assert session.started_at == datetime.fromtimestamp(1_600_000_000, UTC)
    assert session.last_event_at == datetime.fromtimestamp(1_700_000_002, UTC)


def test_a_fatal_event_crashes_the_session_and_counts_bytes_and_errors(shop, no_wake, settings):
    spool_events(shop, [
        {"session": "s", "type": "log", "severity": "error", "message": "e", "id": "1"},
        {"session": "s", "type": "log", "severity": "fatal", "message": "out of memory",
         "id": "2"},
        {"session": "s", "type": "log", "message": "after", "id": "3"},
    ], settings)  # fmt: skip
    drain.inbox_drain()
    session = Session.objects.get(key="s")
    assert (session.status, session.status_reason) == ("crashed", "fatal event: out of memory")
    assert (session.event_count, session.error_count) == (3, 2)
    assert session.byte_count == sum(Event.objects.values_list("size", flat=True)) > 0


def test_session_metadata_and_counters_are_saved_for_every_session_of_a_drain(
    shop, no_wake, settings
):
    body = orjson.dumps({"session": {"key": "m", "app_version": "4.2", "nested": {"a": [1]}},
                         "events": evs(4, "k")})  # fmt: skip
    ingest.events_accept(application=shop, batch=ingest.parse_batch(body), body=body)
    spool_events(shop, worded(6), settings)
    drain.inbox_drain()
    m = Session.objects.get(key="m")
    assert m.metadata == {"app_version": "4.2", "nested": {"a": [1]}}
    assert (m.event_count, m.last_seq) == (0, 0)  # each event names its own session "s"
    counts = dict(Session.objects.values_list("key", "event_count"))
    assert counts == {"m": 0, "s": 4, "s0": 2, "s1": 2, "s2": 2}


@pytest.mark.django_db(transaction=True, databases="__all__")
@pytest.mark.skipif(bool(os.getenv("DATABASE_URL")), reason="SQLite: one drain per process")
def test_a_drain_started_while_another_runs_waits_for_it_and_then_drains_what_is_left(
    shop, no_wake, settings, monkeypatch
):
    import threading

    inside, release = threading.Event(), threading.Event()
    real = drain._drain_until_empty
    passes = []

    def first_pass_waits(*args):
        stats = real(*args)
        passes.append(stats.events)
        if len(passes) == 1:  # the running drain, between its last claim and its return
            inside.set()
            release.wait(10)
        return stats

    monkeypatch.setattr(drain, "_drain_until_empty", first_pass_waits)
    results = {}
    first = threading.Thread(target=lambda: results.update(first=drain.inbox_drain()))
    first.start()
    assert inside.wait(10)
    spool_events(shop, evs(5), settings)
    second = threading.Thread(target=lambda: results.update(second=drain.inbox_drain()))
    second.start()
    second.join(0.5)
    # Beside the running drain it would claim rows the first may have stored already.
    assert second.is_alive() and passes == [0]
    release.set()
    first.join(10)
    second.join(10)
    assert passes == [0, 5] and results["second"].events == 5
    assert Event.objects.count() == 5 and InboxBatch.objects.count() == 0

"""The drain on its own: re-draining after a crash, duplicates inside one drain,
session ops in order, abandoned sessions."""

from datetime import UTC, datetime, timedelta

import orjson
import pytest
from django.db import transaction

from recorder import drain, ingest
from recorder.models import Event, InboxBatch, Session

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

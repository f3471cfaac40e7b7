"""Retention policies (recorder/retention.py) and `manage.py purge`.

Data goes in through the ingestion API (drained inline under pytest), so sessions carry
the counters the drain really keeps.
"""

import os
import random
import time
from collections import Counter
from datetime import UTC, datetime
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from recorder import retention, state, storage, timetravel
from recorder.fields import to_micros
from recorder.models import Event, Keyframe, PurgeLog, Session
from recorder.timetravel import Position

pytestmark = pytest.mark.django_db(databases="__all__")

NOW = time.time()
DAY = 86_400


@pytest.fixture(autouse=True)
def fast_purge(settings):
    settings.FLIGHTREC_PURGE_PAUSE_MS = 0
    settings.FLIGHTREC_PURGE_CHUNK = 7  # several chunks even for small sessions
    settings.FLIGHTREC_RETENTION_DAYS = 30


def send(ingest, session, n, *, age_days=0.0, type="log", payload=None, start=0):
    events = [
        {
            "id": f"{session}-{start + i}",
            "session": session,
            "type": type,
            "ts": NOW - age_days * DAY + i,
            "message": f"{session} {start + i}",
            **(
                {"payload": payload(i) if callable(payload) else payload}
                if payload is not None
                else {}
            ),
        }
        for i in range(n)
    ]
    r = ingest.post(events)
    assert r.status_code == 202, r.content
    return Session.objects.get(key=session)


def noise(n: int) -> str:
    return "".join(random.choices("!#$%&()*+,-./:;<=>?@[]^{|}~", k=n))


def keys():
    return set(Session.objects.values_list("key", flat=True))


def test_max_age_removes_old_sessions_whole_and_keeps_recent_ones(ingest):
    send(ingest, "old", 20, age_days=40)
    send(ingest, "recent", 20, age_days=2)

    results = retention.purge_run()

    assert keys() == {"recent"}
    assert Event.objects.count() == 20
    age = next(r for r in results if r.policy == "max_age")
    assert (age.sessions, age.events) == (1, 20)


def test_an_application_override_beats_the_global_default(ingest, shop):
    send(ingest, "ten-days", 5, age_days=10)
    shop.retention_days = 7
    shop.save()
    retention.purge_run()
    assert keys() == set()


def test_retention_days_zero_keeps_sessions_forever(ingest, shop):
    send(ingest, "ancient", 5, age_days=400)
    shop.retention_days = 0
    shop.save()
    retention.purge_run()
    assert keys() == {"ancient"}


def test_pinned_sessions_survive_every_policy(ingest, shop, settings):
    pinned = send(ingest, "pinned", 30, age_days=90)
    pinned.pinned = True
    pinned.save()
    send(ingest, "a", 30, age_days=1)
    send(ingest, "b", 30, age_days=0.5)
    shop.max_sessions = 1
    shop.max_events_per_session = 10
    shop.save()
    settings.FLIGHTREC_MAX_DB_BYTES = 1  # everything is over budget

    retention.purge_run()

    assert "pinned" in keys()
    assert Event.objects.filter(session__key="pinned").count() == 30


def test_max_sessions_keeps_the_newest_sessions(ingest, shop):
    for i, key in enumerate(["s1", "s2", "s3", "s4"]):
        send(ingest, key, 3, age_days=4 - i)  # s4 is the newest
    shop.max_sessions = 2
    shop.save()
    retention.purge_run()
    assert keys() == {"s3", "s4"}


def test_max_events_drop_oldest_trims_the_oldest_events_and_says_so(ingest, shop):
    send(ingest, "long", 50)
    shop.max_events_per_session = 20
    shop.session_overflow = "drop_oldest"
    shop.save()

    retention.purge_run()

    session = Session.objects.get(key="long")
    seqs = list(Event.objects.filter(session=session).order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(31, 51))
    assert session.event_count == 20
    assert session.trimmed_count == 30
    assert session.byte_count == sum(
        Event.objects.filter(session=session).values_list("size", flat=True)
    )


def test_max_events_refuse_stores_no_more_and_counts_what_it_refused(ingest, shop, client, alice):
    shop.max_events_per_session = 10
    shop.session_overflow = "refuse"
    shop.save()

    send(ingest, "full", 8)
    send(ingest, "full", 5, start=8)  # 2 fit, 3 refused

    session = Session.objects.get(key="full")
    assert session.event_count == 10
    assert session.refused_count == 3
    assert Event.objects.filter(session=session).count() == 10
    retention.purge_run()  # refuse mode: the purge leaves the session alone
    assert Event.objects.filter(session=session).count() == 10

    client.force_login(alice)
    assert "3 refused" in client.get("/").content.decode()


def test_a_dry_run_deletes_nothing_and_reports_what_a_real_run_removes(ingest, shop):
    send(ingest, "old", 12, age_days=40)
    send(ingest, "long", 30)
    shop.max_events_per_session = 10
    shop.save()

    dry = retention.purge_run(dry_run=True)
    assert Event.objects.count() == 42
    assert PurgeLog.objects.count() == 0

    real = retention.purge_run()
    summary = [(r.policy, r.sessions, r.events) for r in dry if r.removed_anything]
    assert summary == [(r.policy, r.sessions, r.events) for r in real if r.removed_anything]
    assert summary == [("max_age", 1, 12), ("max_events", 0, 20)]


def test_a_session_that_receives_events_while_planned_for_deletion_keeps_them(ingest):
    planned = send(ingest, "busy", 10, age_days=1)
    send(ingest, "busy", 5, start=10)  # arrives after the plan was made

    removed, events, _ = retention.sessions_delete([planned])

    assert removed == 0
    assert events == 10
    session = Session.objects.get(key="busy")
    assert session.event_count == 5
    assert list(Event.objects.values_list("seq", flat=True).order_by("seq")) == [11, 12, 13, 14, 15]


def send_ops(ingest, session, n, *, age_days=0.0, start=0):
    """Events that each set their own key of the state and the last value seen."""
    events = [
        {
            "id": f"{session}-{i}",
            "session": session,
            "type": "state",
            "ts": NOW - age_days * DAY + i,
            "key": f"k{i % 3}",
            "severity": "error" if i % 7 == 0 else "info",
            "state": {"op": "merge", "value": {"seen": {str(i): True}, "last": i}},
        }
        for i in range(start, start + n)
    ]
    r = ingest.post(events)
    assert r.status_code == 202, r.content
    return Session.objects.get(key=session)


@pytest.fixture
def small_keyframes(monkeypatch):
    # A keyframe every 5 ops, so a few dozen events already have several.
    monkeypatch.setattr(timetravel, "KEYFRAME_EVERY_OPS", 5)
    monkeypatch.setattr(timetravel, "KEYFRAME_EVERY_EVENTS", 1000)


def assert_snapshots_fold_what_remains(session):
    """Every snapshot and every keyframe equals a plain fold of the stored events."""
    remaining = list(Event.objects.filter(session=session).order_by("ts", "seq"))
    positions = [Position(to_micros(e.ts), e.seq, e.id) for e in remaining]
    positions.append(Position(positions[-1].ts + 1, timetravel.SEQ_MAX))  # after the end
    for pos in positions:
        upto = [e for e in remaining if (to_micros(e.ts), e.seq) <= (pos.ts, pos.seq)]
        snapshot = timetravel.snapshot_at(session=session, at=pos)
        assert snapshot["state"] == state.fold((e.id, e.state) for e in upto).doc
        assert snapshot["counts"]["events"] == len(upto)
        assert snapshot["counts"]["severity"] == dict(
            Counter(e.get_severity_display() for e in upto)
        )
        assert {k: v["id"] for k, v in snapshot["latest"].items()} == {e.key: e.id for e in upto}
    for kf in Keyframe.objects.filter(session=session):
        upto = [e for e in remaining if (to_micros(e.ts), e.seq) <= (kf.ts, kf.seq)]
        assert kf.state == state.fold((e.id, e.state) for e in upto).doc
        assert kf.events == len(upto)


def test_after_trimming_the_oldest_events_snapshots_fold_only_what_remains(
    ingest, shop, small_keyframes
):
    session = send_ops(ingest, "long", 50)
    assert Keyframe.objects.filter(session=session).count() == 10  # built by the drain
    shop.max_events_per_session = 20
    shop.session_overflow = "drop_oldest"
    shop.save()

    retention.purge_run()

    session.refresh_from_db()
    assert session.event_count == 20
    last = timetravel.snapshot_at(
        session=session, at=Position(to_micros(session.last_event_at), timetravel.SEQ_MAX)
    )
    assert sorted(last["state"]["seen"], key=int) == [str(i) for i in range(30, 50)]
    assert_snapshots_fold_what_remains(session)
    # Rebuilt for the events that remain: snapshots stay cheap after a trim.
    assert sorted(Keyframe.objects.filter(session=session).values_list("ops", flat=True)) == [
        5,
        10,
        15,
        20,
    ]


def test_a_session_the_age_purge_keeps_for_its_new_events_snapshots_only_those(
    ingest, small_keyframes
):
    planned = send_ops(ingest, "busy", 12, age_days=40)
    send_ops(ingest, "busy", 11, start=12)  # arrives after the plan was made

    removed, events, _ = retention.sessions_delete([planned])

    assert (removed, events) == (0, 12)
    session = Session.objects.get(key="busy")
    assert_snapshots_fold_what_remains(session)
    assert sorted(Keyframe.objects.filter(session=session).values_list("ops", flat=True)) == [5, 10]


def test_sessions_removed_whole_take_their_keyframes_with_them(ingest, small_keyframes):
    old = send_ops(ingest, "old", 20, age_days=40)
    recent = send_ops(ingest, "recent", 20)
    assert Keyframe.objects.filter(session=old).count() == 4

    retention.purge_run()

    assert keys() == {"recent"}
    assert not Keyframe.objects.filter(session_id=old.id).exists()
    assert Keyframe.objects.filter(session=recent).count() == 4


def test_dropping_http_bodies_leaves_snapshots_equal_to_a_fold(ingest, shop, small_keyframes):
    # State ops live in their own column, not in the payload: dropping bodies must not
    # change any state, and the events a snapshot shows come without their bodies.
    shop.redaction = {"capture_bodies": True}
    shop.save()
    events = [
        {"id": f"h{i}", "session": "calls", "type": "http", "ts": NOW + i, "key": "call",
         "payload": _http("top"), "state": {"op": "set", "path": f"/calls/{i}", "value": i}}
        for i in range(12)
    ]  # fmt: skip
    events[0]["state"] = {"op": "set", "path": "/calls", "value": {}}
    assert ingest.post(events).status_code == 202
    session = Session.objects.get(key="calls")
    before = timetravel.snapshot_at(
        session=session, at=Position(to_micros(session.last_event_at), timetravel.SEQ_MAX)
    )

    drop = retention.bodies_drop(target_bytes=10**9, app=None, dry_run=False)

    assert drop.bodies == 12
    after = timetravel.snapshot_at(
        session=session, at=Position(to_micros(session.last_event_at), timetravel.SEQ_MAX)
    )
    assert after["state"] == before["state"]
    assert "request_body" not in after["latest"]["call"]["payload"]
    assert_snapshots_fold_what_remains(session)


def _http(body_kind):
    payload = {"method": "POST", "url": "https://x.example/api", "status": 200}
    big = "x" * 3000
    if body_kind == "top":
        payload["request_body"] = big
        payload["response_body"] = big
    else:
        payload["request"] = {"headers": {"Accept": "*/*"}, "body": big}
        payload["response"] = {"status": 200, "body": big}
    return payload


def test_over_the_soft_budget_http_bodies_go_first_oldest_first_keeping_metadata(
    ingest, shop, settings
):
    shop.redaction = {"capture_bodies": True}
    shop.save()
    send(ingest, "older", 10, age_days=2, type="http", payload=_http("nested"))
    send(ingest, "newer", 10, age_days=1, type="http", payload=_http("top"))
    used = storage.database_used_bytes()
    settings.FLIGHTREC_MAX_DB_BYTES = used * 3  # well under the budget...
    settings.FLIGHTREC_BODY_DROP_RATIO = 0.7
    # ...but ask for about 12 bodies' worth (6000 bytes each) above the soft limit.
    settings.FLIGHTREC_MAX_DB_BYTES = int((used - 12 * 6000) / 0.7)

    results = retention.purge_run()

    assert keys() == {"older", "newer"}  # no session deleted: bodies were enough
    drop = next(r for r in results if r.policy == "http_bodies")
    assert 12 <= drop.bodies < 20
    older = list(Event.objects.filter(session__key="older").order_by("seq"))
    assert all("body" not in e.payload["request"] for e in older)  # oldest went first
    assert older[0].payload["request"]["headers"] == {"Accept": "*/*"}  # metadata kept
    assert older[0].payload["status"] == 200
    assert "payload.request.body (dropped by retention)" in older[0].redacted
    newer = list(Event.objects.filter(session__key="newer").order_by("seq"))
    assert "request_body" in newer[-1].payload  # the newest still has its body
    assert "request_body" not in newer[0].payload


def test_dropped_bodies_leave_the_search_index_and_their_events_can_still_be_deleted(ingest, shop):
    from recorder import queries

    shop.redaction = {"capture_bodies": True}
    shop.save()
    payload = {"method": "POST", "url": "https://x.example/api", "status": 200,
               "request_body": "zanzibar " + "x" * 6000}  # fmt: skip
    send(ingest, "bodies", 5, age_days=40, type="http", payload=payload)

    def found():
        filters = queries.parse_event_filters({"q": "zanzibar"})
        return queries.filter_events(Event.objects.all(), filters).count()

    assert found() == 5
    drop = retention.bodies_drop(target_bytes=10**9, app=None, dry_run=False)
    assert drop.bodies == 5
    assert found() == 0, "the index still held words of a dropped body"
    retention.purge_run()  # max age: the session goes, and its rewritten rows with it
    assert "bodies" not in keys()


@pytest.mark.skipif(
    bool(os.getenv("DATABASE_URL")),
    reason="SQLite gives freed pages back to the file (auto_vacuum=INCREMENTAL); PostgreSQL "
    "keeps the space for reuse and pg_database_size only falls after VACUUM FULL",
)
def test_the_byte_budget_is_honoured_after_purge_and_vacuum(ingest, shop, settings):
    assert storage._pragma("default", "auto_vacuum") == 2
    for day in range(10, 0, -1):
        # Random, as payloads are stored packed and a repeated pad would pack to nothing;
        # punctuation, which the full-text index does not keep as words.
        send(ingest, f"day-{day}", 200, age_days=day, payload=lambda i: {"pad": noise(400)})
    before = storage.database_file_bytes()
    budget = int(before * 0.6)
    settings.FLIGHTREC_MAX_DB_BYTES = budget

    retention.purge_run()

    assert storage.database_file_bytes() <= budget  # the file shrank, not only the data
    assert "day-1" in keys()  # newest kept
    assert "day-10" not in keys()  # oldest gone
    logs = PurgeLog.objects.filter(policy="max_db_bytes")
    assert sum(log.sessions_removed for log in logs) >= 1


def test_every_run_is_recorded_even_when_nothing_goes(ingest):
    retention.purge_run()
    log = PurgeLog.objects.get()
    assert log.policy == "none"


def test_the_purge_command_prints_what_it_would_delete_and_then_deletes(ingest):
    send(ingest, "old", 12, age_days=40)
    out = StringIO()
    call_command("purge", "--dry-run", stdout=out)
    text = out.getvalue()
    assert "max_age (older than 30 days) would remove 1 sessions, 12 events" in text
    assert "'old'" in text
    assert Event.objects.count() == 12

    out = StringIO()
    call_command("purge", "--app", "shop", stdout=out)
    assert "removed 1 sessions, 12 events" in out.getvalue()
    assert Event.objects.count() == 0


def test_the_purge_command_refuses_an_unknown_application(db):
    with pytest.raises(CommandError, match="no application named 'nope'"):
        call_command("purge", "--app", "nope", stdout=StringIO())


def test_the_purge_command_limited_to_one_app_leaves_others_alone(ingest, other_app, client):
    from recorder.models import ApiKey
    from tests.conftest import Ingest

    other = Ingest(client, ApiKey.generate(other_app)[1])
    send(other, "other-old", 4, age_days=40)
    send(ingest, "shop-old", 4, age_days=40)
    call_command("purge", "--app", "warehouse", stdout=StringIO())
    assert keys() == {"shop-old"}


def test_the_periodic_task_purges_and_samples_the_size(ingest):
    from recorder import tasks
    from recorder.models import StorageSample

    send(ingest, "old", 3, age_days=40)
    tasks.purge.call_local()
    assert keys() == set()
    assert StorageSample.objects.get(day=datetime.now(UTC).date()).db_bytes > 0


def test_policy_for_falls_back_to_settings(shop, settings):
    settings.FLIGHTREC_MAX_EVENTS_PER_SESSION = 1000
    settings.FLIGHTREC_SESSION_OVERFLOW = "refuse"
    p = retention.policy_for(shop)
    assert (p.retention_days, p.max_events_per_session, p.overflow) == (30, 1000, "refuse")
    shop.max_events_per_session = 0
    assert retention.policy_for(shop).max_events_per_session == 0

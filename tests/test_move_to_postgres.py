"""`manage.py move_to_postgres`: a populated SQLite flightrec, copied into an empty
migrated PostgreSQL database, reads back the same through the ORM on both sides:
people, applications, keys, memberships, sessions, events (by uid, with payloads),
the undrained inbox, keyframes and metrics counters, and every session's state folded
from its events."""

import os

import pytest

from tests.stack import Stack

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not os.getenv("DATABASE_URL"),
        reason="needs a PostgreSQL server (DATABASE_URL); runs in CI's PostgreSQL pass",
    ),
]

POPULATE = """
from django.contrib.auth.models import Group, User
from recorder import ingest, tasks
from recorder.demo import demo_load
counts = demo_load(events_per_session=500)
app = Application.objects.get(name="demo")
user = User.objects.create_user("dora", password="password")
user.groups.add(Group.objects.create(name="oncall"))
Membership.objects.create(user=user, application=app, role="viewer")
ApiKey.generate(app, name="reader", can_read=True)
IngestCounter.objects.create(name="rejected:test", value=3)  # in the inbox file on SQLite
from recorder import timetravel
for s in Session.objects.all():
    timetravel.keyframes_build(session_id=s.id, every_ops=50, every_events=200)
tasks.wake_drain = lambda: None  # leave these in the inbox, as a stopped consumer would
body = b'[{"session": "late", "type": "log", "message": "not drained yet", "id": "late-1"}]'
ingest.events_accept(application=app, batch=ingest.parse_batch(body), body=body)
ingest.session_accept(application=app, key="late", metadata={}, kind="end")
from django.db import connection
with connection.cursor() as cursor:  # payloads are stored packed in the source
    cursor.execute("SELECT COUNT(*) FROM recorder_event WHERE typeof(payload) = 'blob'")
    packed = cursor.fetchone()[0]
result = {"events": Event.objects.count(), "inbox": InboxBatch.objects.count(), "packed": packed}
"""

DUMP = """
from django.contrib.auth.models import User
from recorder.state import fold
def iso(d):
    return d.isoformat() if d else None
result = {
    "users": sorted([u.username, u.password, u.is_superuser, iso(u.date_joined),
                     sorted(g.name for g in u.groups.all())] for u in User.objects.all()),
    "apps": sorted([a.id, a.name, a.environment, iso(a.created_at), a.redaction]
                   for a in Application.objects.all()),
    "members": sorted([m.user.username, m.application.name, m.role]
                      for m in Membership.objects.all()),
    "keys": sorted([k.id, k.prefix, k.hashed, k.can_read, iso(k.last_used_at)]
                   for k in ApiKey.objects.all()),
    "sessions": {s.key: [s.id, s.status, s.status_reason, iso(s.started_at), iso(s.ended_at),
                         iso(s.last_event_at), s.metadata, s.event_count, s.error_count,
                         s.byte_count, s.last_seq, s.pinned]
                 for s in Session.objects.all()},
    "events": {e.uid: [e.session.key, e.seq, iso(e.ts), iso(e.received_at), e.type, e.source,
                       e.severity, e.key, e.correlation_id, e.actor, e.message, e.payload,
                       e.state, e.size, e.redacted]
               for e in Event.objects.select_related("session")},
    "inbox": [[b.id, b.kind, b.application_id, b.api_key_id, iso(b.received_at), b.event_count,
               bytes(b.body).hex()] for b in InboxBatch.objects.order_by("id")],
    "counters": sorted(Counter.objects.values_list("name", "value")),
    "ingest_counters": sorted(IngestCounter.objects.values_list("name", "value")),
    "keyframes": sorted([k.session.key, k.ts, k.seq, k.ops, k.events, k.state, k.counts]
                        for k in Keyframe.objects.select_related("session")),
    "states": {s.key: fold(s.events.exclude(state=None).order_by("ts", "seq")
                           .values_list("uid", "state")).doc
               for s in Session.objects.all()},
}
"""


def test_a_populated_sqlite_database_moves_to_postgres_unchanged(tmp_path):
    src = Stack(tmp_path / "sqlite", env={"DATABASE_URL": None, "FLIGHTREC_QUEUE_URL": None})
    dst = Stack(tmp_path / "pg")  # a fresh PostgreSQL database of its own
    try:
        src.manage("bootstrap", "--no-demo")
        filled = src.query(POPULATE)
        assert filled["inbox"] == 2 and filled["events"] >= 2000
        assert filled["packed"] > 1000  # they arrive as jsonb: compared below, event by event
        dst.manage("migrate")
        out = dst.manage("move_to_postgres", "--from", str(src.data_dir))
        assert f"recorder_event: {filled['events']} rows" in out

        before, after = src.query(DUMP), dst.query(DUMP)
        assert len(after["events"]) == filled["events"]
        assert any(doc for doc in after["states"].values()), "the demo has stateful sessions"
        assert after["keyframes"] and after["counters"] and after["ingest_counters"]
        for part in before:
            assert after[part] == before[part], f"{part} differ after the move"

        # Identity sequences moved past the copied ids: new rows get fresh ones.
        created = dst.query(
            "app = Application.objects.create(name='after-the-move')\n"
            "s = Session.objects.create(application=app, key='new', started_at=app.created_at)\n"
            "result = [app.id, s.id]"
        )
        assert created[0] > max(a[0] for a in before["apps"])
        assert created[1] > max(s[0] for s in before["sessions"].values())

        again = dst.manage("move_to_postgres", "--from", str(src.data_dir), check=False)
        assert "the target is not empty" in again
    finally:
        src.stop()
        dst.stop()

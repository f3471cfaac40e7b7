"""Packed payload storage on SQLite (recorder/payloads.py, recorder/fields.PackedJSONField).

The test database starts with a dictionary trained on the demo mix (tests/conftest.py),
so events ingested here are stored packed, as in any database past its first minutes.
"""

import os
import sqlite3
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

import orjson
import pytest
from django.db import connection
from django.utils import timezone

from recorder import drain, export, payloads, queries, retention
from recorder.models import Event, PayloadDictionary
from recorder.queries import parse_filter_bar
from tests.conftest import demo_payload_dictionary

pytestmark = [
    pytest.mark.skipif(
        bool(os.getenv("DATABASE_URL")), reason="payloads are packed on SQLite only"
    ),
    pytest.mark.django_db(databases="__all__"),
]

ROOT = Path(__file__).resolve().parent.parent
HTTP = {
    "method": "GET",
    "url": "https://shop.example.com/api/cart",
    "status": 503,
    "duration_ms": 126.2,
    "request": {"headers": {"Accept": "application/json", "User-Agent": "ShopApp/4.2.1"}},
    "response": {"headers": {"Content-Type": "application/json"}, "size": 20761},
}
MQTT = {"topic": "sensors/kitchen/temperature", "qos": 1, "value": 21.5, "unit": "C"}


def forget(dict_id: int) -> None:
    payloads._dictionaries.pop(dict_id, None)
    getattr(payloads._local, "codecs", {}).pop(dict_id, None)


def stored(event_id: int) -> tuple[str, int]:
    """How the payload column holds an event: (SQLite type, bytes)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT typeof(payload), length(payload) FROM recorder_event WHERE id = %s",
            [event_id],
        )
        return cursor.fetchone()


def send(ingest, events: list[dict], session: str = "s1") -> list[Event]:
    body = [{"session": session, "ts": 1_790_000_000 + i, **ev} for i, ev in enumerate(events)]
    assert ingest.post(body).status_code == 202
    return list(Event.objects.filter(session__key=session).order_by("seq"))


# --- The format --------------------------------------------------------------------


def test_pack_then_unpack_gives_the_same_json_text():
    dict_id, data = demo_payload_dictionary()
    payloads.dictionary_add(dict_id, data)
    text = orjson.dumps(HTTP).decode()
    packed = payloads.pack(text, dict_id)
    assert isinstance(packed, bytes) and len(packed) < len(text) / 2
    assert packed.startswith(payloads.ZSTD_MAGIC)
    assert payloads.unpack(packed) == text


def test_without_a_dictionary_or_a_saving_the_json_text_is_kept():
    dict_id, data = demo_payload_dictionary()
    payloads.dictionary_add(dict_id, data)
    assert payloads.pack('{"a":1}', None) == '{"a":1}'
    assert payloads.pack("{}", dict_id) == "{}"  # a frame header is longer than this
    assert payloads.unpack('{"a":1}') == '{"a":1}'
    assert payloads.unpack(None) is None


def test_a_frame_from_an_unknown_dictionary_is_loaded_or_refused():
    import zstandard

    zdict = zstandard.train_dictionary(
        16 * 1024, [orjson.dumps({**MQTT, "value": i}) for i in range(500)], dict_id=1_234_567
    )
    frame = zstandard.ZstdCompressor(dict_data=zdict).compress(orjson.dumps(MQTT))
    forget(1_234_567)
    with pytest.raises(payloads.UnknownDictionary):
        payloads.unpack(frame)
    assert payloads.unpack(frame, lambda i: zdict.as_bytes()) == orjson.dumps(MQTT).decode()


def test_each_thread_packs_and_unpacks_with_codecs_of_its_own():
    # zstd's compressor and decompressor objects must not be shared by threads that run
    # at once (they release the GIL), and gunicorn serves requests on threads.
    dict_id, data = demo_payload_dictionary()
    payloads.dictionary_add(dict_id, data)
    text = orjson.dumps(HTTP).decode()
    frame = payloads.pack(text, dict_id)
    seen, results = [], []

    def work():
        seen.append(payloads._codec(dict_id))
        results.extend(payloads.unpack(frame) for _ in range(200))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(codec[1]) for codec in seen}) == 4
    assert results == [text] * 800


# --- Through the product --------------------------------------------------------------


def test_ingested_payloads_are_stored_packed_and_read_back_unchanged(ingest):
    http, mqtt = send(
        ingest, [{"type": "http", "payload": HTTP}, {"type": "mqtt", "payload": MQTT}]
    )
    kind, size = stored(http.id)
    assert kind == "blob" and size < len(orjson.dumps(HTTP)) / 2
    assert stored(mqtt.id)[0] == "blob"
    assert http.payload == HTTP and mqtt.payload == MQTT
    assert Event.objects.filter(id=http.id).values_list("payload", flat=True).get() == HTTP


def test_payload_filters_read_packed_payloads(ingest):
    ok = {**HTTP, "status": 200}
    events = send(ingest, [{"type": "http", "payload": p} for p in (HTTP, ok)] + [
        {"type": "mqtt", "payload": MQTT}])  # fmt: skip
    assert {stored(e.id)[0] for e in events} == {"blob"}
    session = events[0].session

    def matching(text):
        qs = Event.objects.filter(session=session)
        qs = queries.filter_events(qs, parse_filter_bar(text), session_id=session.id)
        return [e.id for e in qs.order_by("seq")]

    assert matching("status>=500") == [events[0].id]
    assert matching("method=GET status<500") == [events[1].id]
    assert matching("topic~sensors/*") == [events[2].id]
    assert matching("kitchen") == [events[2].id]  # full text over the unpacked JSON
    assert matching("shop") == [events[0].id, events[1].id]


def test_json_lookups_of_the_orm_read_packed_payloads(ingest):
    http, mqtt = send(
        ingest, [{"type": "http", "payload": HTTP}, {"type": "mqtt", "payload": MQTT}]
    )
    assert Event.objects.filter(payload__has_key="topic").get().id == mqtt.id
    assert Event.objects.filter(payload__response__has_key="size").get().id == http.id
    assert Event.objects.filter(payload__status=503).get().id == http.id


def test_dropping_bodies_rewrites_a_packed_payload_and_the_index_follows(ingest, shop):
    shop.redaction = {"capture_bodies": True}
    shop.save()
    body = {**HTTP, "response": {**HTTP["response"], "body": "zebra " * 100}}
    (event,) = send(ingest, [{"type": "http", "payload": body}])
    session = event.session
    assert stored(event.id)[0] == "blob"

    result = retention.bodies_drop(target_bytes=10**9, app=None, dry_run=False)

    assert result.bodies == 1
    assert stored(event.id)[0] == "blob"
    assert Event.objects.get(id=event.id).payload == HTTP

    def found(word):
        qs = queries.filter_events(
            Event.objects.filter(session=session), parse_filter_bar(word), session_id=session.id
        )
        return qs.count()

    assert found("zebra") == 0
    assert found("shop") == 1


def test_deleting_packed_events_takes_them_out_of_the_full_text_index(ingest):
    events = send(ingest, [{"type": "mqtt", "payload": MQTT}] * 3)
    assert {stored(e.id)[0] for e in events} == {"blob"}
    Event.objects.filter(id=events[0].id).delete()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT rowid FROM recorder_event_fts WHERE recorder_event_fts MATCH 'kitchen' "
            "ORDER BY rowid"
        )
        assert [r[0] for r in cursor.fetchall()] == [events[1].id, events[2].id]
        # FTS5's own check: the index holds exactly the words of what is stored.
        cursor.execute(
            "INSERT INTO recorder_event_fts(recorder_event_fts, rank) VALUES ('integrity-check', 0)"
        )


def test_exports_write_the_json_not_the_stored_bytes(ingest):
    (event,) = send(ingest, [{"type": "http", "payload": HTTP}])
    lines = b"".join(export.session_export(event.session)).splitlines()
    exported = [orjson.loads(line) for line in lines[1:]]
    assert exported[0]["payload"] == HTTP


# --- Dictionaries ---------------------------------------------------------------------


def test_a_dictionary_is_due_first_after_some_events_then_on_growth_and_age():
    assert not payloads.dictionary_due(None, payloads.FIRST_AFTER - 1)
    assert payloads.dictionary_due(None, payloads.FIRST_AFTER)
    latest = PayloadDictionary(last_event_id=10_000, created_at=timezone.now())
    assert not payloads.dictionary_due(latest, 99_999)
    assert payloads.dictionary_due(latest, 100_000)
    latest.created_at = timezone.now() - timedelta(days=payloads.RETRAIN_DAYS)
    assert payloads.dictionary_due(latest, 10_001)


def test_the_first_dictionary_packs_what_was_stored_before_it(ingest, settings, monkeypatch):
    PayloadDictionary.objects.all().delete()
    monkeypatch.setattr(payloads, "FIRST_AFTER", 300)
    mix = [{"type": "http", "payload": {**HTTP, "duration_ms": i / 10}} for i in range(150)]
    mix += [{"type": "mqtt", "payload": {**MQTT, "value": i / 4}} for i in range(150)]
    events = send(ingest, mix[:299])
    assert not PayloadDictionary.objects.exists()
    assert {stored(e.id)[0] for e in events} == {"text"}

    events = send(ingest, mix[299:], session="s2")  # the 300th event: one is due
    created = PayloadDictionary.objects.get()
    assert created.samples >= payloads.MIN_SAMPLES and created.last_event_id == events[-1].id
    everything = Event.objects.order_by("id")
    assert {stored(e.id)[0] for e in everything} == {"blob"}
    assert [e.payload for e in everything] == [m["payload"] for m in mix]


def test_a_steady_stream_gets_its_first_dictionary_while_it_flows(ingest, monkeypatch):
    PayloadDictionary.objects.all().delete()
    monkeypatch.setattr(payloads, "FIRST_AFTER", 300)
    monkeypatch.setattr("recorder.tasks.wake_drain", lambda: None)  # the inbox fills up
    for n in range(3):
        mix = [
            {"type": "http", "payload": {**HTTP, "duration_ms": n * 300 + i}} for i in range(300)
        ]
        send_undrained = [
            {"session": "s", "ts": 1_790_000_000 + i, **ev} for i, ev in enumerate(mix)
        ]
        assert ingest.post(send_undrained).status_code == 202
    assert not Event.objects.exists()

    drain.inbox_drain(max_batches=1)  # three transactions, as a busy consumer would run them

    created = PayloadDictionary.objects.get()
    first_batch_end = Event.objects.order_by("id").values_list("id", flat=True)[299]
    assert created.last_event_id == first_batch_end  # trained between transactions
    assert {stored(e.id)[0] for e in Event.objects.all()} == {"blob"}


def test_a_new_dictionary_becomes_current_and_old_rows_keep_theirs(ingest):
    (first,) = send(ingest, [{"type": "mqtt", "payload": MQTT}])
    old_id = payloads.current_dict_id()
    dict_id, data = demo_payload_dictionary()
    newer = 2_000_000_011
    PayloadDictionary.objects.create(dict_id=newer, data=_renumbered(data, dict_id, newer),
                                     samples=1, last_event_id=first.id)  # fmt: skip
    assert payloads.current_dict_id() == newer
    (second,) = send(ingest, [{"type": "mqtt", "payload": MQTT}], session="s2")
    with connection.cursor() as cursor:
        cursor.execute("SELECT id, payload FROM recorder_event ORDER BY id")
        frames = {pk: bytes(blob) for pk, blob in cursor.fetchall()}
    import zstandard

    assert zstandard.get_frame_parameters(frames[first.id]).dict_id == old_id
    assert zstandard.get_frame_parameters(frames[second.id]).dict_id == newer
    assert Event.objects.get(id=first.id).payload == Event.objects.get(id=second.id).payload


def _renumbered(data: bytes, old: int, new: int) -> bytes:
    """The same dictionary content under another id (bytes 4-8 of a zstd dictionary)."""
    assert int.from_bytes(data[4:8], "little") == old
    return data[:4] + new.to_bytes(4, "little") + data[8:]


# --- Other processes and old files --------------------------------------------------


@pytest.mark.e2e
def test_migrating_an_older_file_packs_its_payloads_and_back(tmp_path):
    env = {**os.environ, "FLIGHTREC_DATA_DIR": str(tmp_path), "DATABASE_URL": ""}
    env.pop("DATABASE_URL")

    def manage(*args):
        subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True,
                       capture_output=True)  # fmt: skip

    manage("migrate", "recorder", "0009", "-v0")
    db = sqlite3.connect(tmp_path / "flightrec.sqlite3")
    db.execute("INSERT INTO recorder_application(name, environment, created_at, redaction) "
               "VALUES ('old', 'production', '2026-01-01', '{}')")  # fmt: skip
    db.execute(
        "INSERT INTO recorder_session(application_id, key, status, status_reason, started_at, "
        "created_at, metadata, event_count, error_count, byte_count, last_seq, pinned) "
        "VALUES (1, 'old', 'open', '', '2026-01-01', '2026-01-01', '{}', 0, 0, 0, 0, 0)"
    )
    rows = [
        (1, 1, i, 1_790_000_000_000_000 + i, 1_790_000_000_000_000, "mqtt", 20, f"m{i}",
         orjson.dumps({**MQTT, "value": i}).decode(), f"u{i}", 80)
        for i in range(400)
    ]  # fmt: skip
    db.executemany(
        "INSERT INTO recorder_event(application_id, session_id, seq, ts, received_at, type, "
        "severity, message, payload, uid, size) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        rows,
    )
    db.execute("INSERT INTO recorder_event_fts(recorder_event_fts) VALUES ('rebuild')")
    db.commit()
    db.close()

    manage("migrate", "-v0")
    db = sqlite3.connect(tmp_path / "flightrec.sqlite3")
    payloads.sqlite_register(db, str(tmp_path / "flightrec.sqlite3"))
    assert dict(db.execute("SELECT typeof(payload), COUNT(*) FROM recorder_event GROUP BY 1")) == {
        "blob": 400}  # fmt: skip
    assert db.execute("SELECT fr_json(payload) FROM recorder_event WHERE seq = 7").fetchone()[0] \
        == rows[7][8]  # fmt: skip
    hits = db.execute("SELECT COUNT(*) FROM recorder_event_fts WHERE recorder_event_fts MATCH "
                      "'kitchen'").fetchone()[0]  # fmt: skip
    assert hits == 400
    db.execute("DELETE FROM recorder_event WHERE seq < 100")  # the trigger unpacks to delete
    db.commit()
    assert db.execute("SELECT COUNT(*) FROM recorder_event_fts WHERE recorder_event_fts MATCH "
                      "'kitchen'").fetchone()[0] == 300  # fmt: skip
    db.close()

    manage("migrate", "recorder", "0009", "-v0")
    db = sqlite3.connect(tmp_path / "flightrec.sqlite3")
    assert dict(db.execute("SELECT typeof(payload), COUNT(*) FROM recorder_event GROUP BY 1")) == {
        "text": 300}  # fmt: skip
    db.close()


@pytest.mark.django_db(transaction=True)
def test_a_connection_reads_a_dictionary_another_process_trained_after_it_opened(tmp_path):
    dict_id, data = demo_payload_dictionary()
    path = tmp_path / "other.sqlite3"
    other = sqlite3.connect(path)  # stands for the database file another process writes
    other.execute("CREATE TABLE recorder_payloaddictionary (dict_id INTEGER, data BLOB)")
    other.execute("CREATE TABLE t (payload BLOB)")
    other.commit()
    reader = sqlite3.connect(path)
    payloads.sqlite_register(reader, str(path))  # nothing to preload yet

    other.execute("INSERT INTO recorder_payloaddictionary VALUES (?, ?)", (2_000_000_033,
                  _renumbered(data, dict_id, 2_000_000_033)))  # fmt: skip
    payloads.dictionary_add(2_000_000_033, _renumbered(data, dict_id, 2_000_000_033))
    other.execute("INSERT INTO t VALUES (?)", (payloads.pack(orjson.dumps(HTTP).decode(),
                  2_000_000_033),))  # fmt: skip
    other.commit()
    forget(2_000_000_033)  # as if this process never saw it: the reader loads it

    (text,) = reader.execute("SELECT fr_json(payload) FROM t").fetchone()
    assert orjson.loads(text) == HTTP

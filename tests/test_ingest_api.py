"""POST /api/v1/events, /sessions and /sessions/{key}/end through the Django test client.

Huey runs tasks inline under pytest, so an accepted batch is drained before the
response returns and the Event table can be checked right away.
"""

import gzip
from datetime import UTC, datetime

import orjson
import pytest
from django.utils import timezone

from recorder.models import ApiKey, Event, InboxBatch, Session

pytestmark = pytest.mark.django_db(databases="__all__")


def ev(i=0, **fields):
    return {
        "session": "run-1",
        "type": "log",
        "ts": 1_700_000_000 + i,
        "message": f"m{i}",
        **fields,
    }


def test_it_accepts_a_json_array(ingest):
    r = ingest.post([ev(0), ev(1)])
    assert r.status_code == 202, r.content
    assert r.json() == {"accepted": 2, "rejected": []}
    assert list(Event.objects.order_by("seq").values_list("message", flat=True)) == ["m0", "m1"]
    assert InboxBatch.objects.count() == 0  # drained


def test_it_accepts_a_session_object_with_metadata(ingest, shop):
    body = {"session": {"key": "run-9", "app_version": "1.2", "device": "pixel"},
            "events": [{"type": "log", "ts": "2026-11-21T10:00:00Z"}]}  # fmt: skip
    assert ingest.post(body).status_code == 202
    session = Session.objects.get(application=shop, key="run-9")
    assert session.metadata == {"app_version": "1.2", "device": "pixel"}
    assert session.started_at == datetime(2026, 11, 21, 10, tzinfo=UTC)
    assert session.event_count == 1


def test_it_accepts_a_single_event_object(ingest):
    assert ingest.post(ev(0)).status_code == 202
    assert Event.objects.count() == 1


def test_it_accepts_ndjson_and_reports_bad_lines_by_index(ingest):
    lines = [orjson.dumps(ev(0)).decode(), "{not json", orjson.dumps(ev(2)).decode()]
    r = ingest.post("\n".join(lines) + "\n", content_type="application/x-ndjson")
    assert r.status_code == 202
    body = r.json()
    assert body["accepted"] == 2
    assert [x["index"] for x in body["rejected"]] == [1]
    assert "not valid JSON" in body["rejected"][0]["error"]


def test_ndjson_session_header_line_sets_the_session(ingest, shop):
    lines = [{"session": {"key": "hdr", "app_version": "3"}}, {"type": "log", "ts": 1}]
    body = "\n".join(orjson.dumps(x).decode() for x in lines)
    assert ingest.post(body, content_type="application/x-ndjson").status_code == 202
    assert Session.objects.get(key="hdr").metadata == {"app_version": "3"}


@pytest.mark.parametrize("content_type", ["application/json", "application/x-ndjson"])
def test_it_accepts_gzip(ingest, content_type):
    if content_type == "application/json":
        body = orjson.dumps([ev(0), ev(1)])
    else:
        body = b"\n".join(orjson.dumps(ev(i)) for i in range(2))
    assert ingest.post(body, content_type=content_type, gzipped=True).status_code == 202
    assert Event.objects.count() == 2


def test_it_keeps_valid_items_and_lists_the_rejected_ones(ingest):
    batch = [ev(0), {"session": "run-1", "ts": 1}, ev(2, ts="yesterday"), "nope", ev(4),
             ev(5, payload=[1]), ev(6, severity="loud"), ev(7, id="x" * 65)]  # fmt: skip
    r = ingest.post(batch)
    assert r.status_code == 202
    body = r.json()
    assert body["accepted"] == 2
    reasons = {x["index"]: x["error"] for x in body["rejected"]}
    assert set(reasons) == {1, 2, 3, 5, 6, 7}
    assert "type" in reasons[1]
    assert "RFC 3339" in reasons[2]
    assert "JSON object" in reasons[3]
    assert "payload" in reasons[5]
    assert "severity" in reasons[6]
    assert "id" in reasons[7]
    assert Event.objects.count() == 2


def test_a_batch_with_no_valid_item_is_400_with_reasons(ingest):
    r = ingest.post([{"type": "log"}])  # no session anywhere
    assert r.status_code == 400
    assert "session" in r.json()["rejected"][0]["error"]


@pytest.mark.parametrize(
    "body, content_type, status, words",
    [
        (b"{nope", "application/json", 400, "not valid JSON"),
        (b'"a string"', "application/json", 400, "JSON array"),
        (b'{"events": 3}', "application/json", 400, "events must be"),
        (b"[]", "text/plain", 415, "Content-Type"),
    ],
)
def test_unparseable_bodies_get_a_clear_error(ingest, body, content_type, status, words):
    r = ingest.post(body, content_type=content_type)
    assert r.status_code == status
    assert words in r.json()["detail"]


def test_truncated_gzip_is_400(ingest):
    data = gzip.compress(orjson.dumps([ev(0)]))[:-8]
    r = ingest.client.generic("POST", "/api/v1/events", data, content_type="application/json",
                              HTTP_X_API_KEY=ingest.key, HTTP_CONTENT_ENCODING="gzip")  # fmt: skip
    assert r.status_code == 400
    assert "truncated" in r.json()["detail"]


def test_missing_or_wrong_key_is_401(ingest):
    assert ingest.post([ev(0)], key="").status_code == 401
    r = ingest.post([ev(0)], key="fr_wrong")
    assert r.status_code == 401
    assert "API key" in r.json()["detail"]
    assert Event.objects.count() == 0


def test_bearer_auth_works(client, shop_key):
    r = client.post("/api/v1/events", orjson.dumps([ev(0)]), content_type="application/json",
                    HTTP_AUTHORIZATION=f"Bearer {shop_key}")  # fmt: skip
    assert r.status_code == 202


def test_a_revoked_key_is_refused_at_once(ingest, shop):
    assert ingest.post([ev(0)]).status_code == 202
    ApiKey.objects.filter(application=shop).update(revoked_at=timezone.now())
    assert ingest.post([ev(1)]).status_code == 401


def test_the_key_is_stored_hashed_and_last_use_recorded(ingest, shop):
    key = ApiKey.objects.get(application=shop)
    assert ingest.key not in (key.hashed, key.prefix)
    assert key.last_used_at is None
    ingest.post([ev(0)])
    key.refresh_from_db()
    assert key.last_used_at is not None


def test_bodies_over_the_limit_are_413(ingest, settings):
    settings.FLIGHTREC_MAX_BODY_BYTES = 1000
    r = ingest.post([ev(i) for i in range(50)])
    assert r.status_code == 413


def test_gzip_that_inflates_past_the_limit_is_413(ingest, settings):
    settings.FLIGHTREC_MAX_BODY_BYTES = 10_000
    bomb = orjson.dumps([ev(0, message="a" * 1_000_000)])
    r = ingest.post(bomb, gzipped=True)
    assert r.status_code == 413
    assert "inflates" in r.json()["detail"]


def test_retrying_the_same_batch_stores_each_event_once(ingest):
    batch = [ev(i, id=f"e{i}") for i in range(5)]
    for _ in range(3):
        assert ingest.post(batch).status_code == 202
    assert Event.objects.count() == 5
    assert Session.objects.get(key="run-1").event_count == 5


def test_retrying_a_batch_without_ids_is_idempotent_too(ingest):
    batch = [ev(i) for i in range(5)]
    ingest.post(batch)
    ingest.post(batch)
    assert Event.objects.count() == 5
    # ...but the same events in another batch are new events.
    ingest.post(batch[:2])
    assert Event.objects.count() == 7


def test_seq_follows_arrival_and_timeline_is_ts_then_seq(ingest):
    ingest.post([ev(5, message="late"), ev(1, message="early"), ev(5, message="late2")])
    events = list(Event.objects.order_by("ts", "seq").values_list("message", "seq"))
    assert events == [("early", 2), ("late", 1), ("late2", 3)]


def test_timestamps_in_rfc3339_and_epoch_seconds(ingest):
    ingest.post([ev(0, ts="2026-01-02T03:04:05.123456+01:00"), ev(1, ts=1767319445.5)])
    stamps = sorted(Event.objects.values_list("ts", flat=True))
    assert stamps[0] == datetime(2026, 1, 2, 2, 4, 5, 123456, tzinfo=UTC)
    assert stamps[1] == datetime(2026, 1, 2, 2, 4, 5, 500000, tzinfo=UTC)


def test_milliseconds_by_mistake_are_rejected(ingest):
    r = ingest.post([ev(0, ts=1_700_000_000_000)])
    assert r.status_code == 400
    assert "milliseconds" in r.json()["rejected"][0]["error"]


@pytest.mark.parametrize(
    "given, stored",
    [("warning", 30), ("CRITICAL", 50), ("err", 40), (9, 20), (17, 40), (21, 50), (None, 20)],
)
def test_severity_names_aliases_and_otel_numbers(ingest, given, stored):
    ingest.post([ev(0, severity=given)])
    assert Event.objects.get().severity == stored


def test_a_fatal_event_marks_the_session_crashed_and_counts_errors(ingest):
    ingest.post([ev(0, severity="error"), ev(1, severity="fatal", message="boom")])
    session = Session.objects.get(key="run-1")
    assert session.status == "crashed"
    assert "boom" in session.status_reason
    assert session.error_count == 2


def test_sessions_endpoint_creates_and_end_marks_ended(ingest, shop):
    r = ingest.post({"key": "s1", "app_version": "2.0", "metadata": {"os": "linux"}},
                    path="/api/v1/sessions")  # fmt: skip
    assert r.status_code == 202
    session = Session.objects.get(application=shop, key="s1")
    assert session.status == "open"
    assert session.metadata == {"app_version": "2.0", "os": "linux"}
    r = ingest.post({"ts": "2026-11-21T12:00:00Z"}, path="/api/v1/sessions/s1/end")
    assert r.status_code == 202
    session.refresh_from_db()
    assert session.status == "ended"
    assert session.ended_at == datetime(2026, 11, 21, 12, tzinfo=UTC)


def test_end_without_body_works_and_bad_status_is_400(ingest):
    ingest.post([ev(0)])
    assert ingest.post(b"", path="/api/v1/sessions/run-1/end").status_code == 202
    assert Session.objects.get(key="run-1").status == "ended"
    r = ingest.post({"status": "exploded"}, path="/api/v1/sessions/run-1/end")
    assert r.status_code == 400


def test_sessions_of_two_applications_are_apart(ingest, other_app):
    other_key = ApiKey.generate(other_app)[1]
    ingest.post([ev(0, id="same")])
    ingest.post([ev(0, id="same")], key=other_key)
    assert Event.objects.count() == 2
    assert Session.objects.filter(key="run-1").count() == 2


def test_low_disk_space_is_503_with_retry_after(ingest, settings):
    from recorder import ingest as ingest_module

    ingest_module._checks.clear()
    settings.FLIGHTREC_MIN_FREE_DISK_BYTES = 1 << 62
    r = ingest.post([ev(0)])
    ingest_module._checks.clear()
    assert r.status_code == 503
    assert r["Retry-After"] == "30"
    assert "disk" in r.json()["detail"]


def test_a_full_inbox_is_429_with_retry_after(ingest, settings):
    from recorder import ingest as ingest_module

    ingest_module._checks.clear()
    settings.FLIGHTREC_INBOX_MAX_EVENTS = 0
    r = ingest.post([ev(0)])
    ingest_module._checks.clear()
    assert r.status_code == 429
    assert r["Retry-After"] == "5"


def test_it_keeps_the_redacted_paths_an_exported_event_carries(ingest):
    body = ev(0, redacted=["payload.token"], payload={"password": "x"})
    assert ingest.post([body]).status_code == 202
    assert Event.objects.get().redacted == ["payload.password", "payload.token"]


def test_it_rejects_a_redacted_field_that_is_not_a_list_of_paths(ingest):
    r = ingest.post([ev(0, redacted="payload.token"), ev(1)])
    assert r.status_code == 202
    assert r.json()["rejected"] == [
        {"index": 0, "error": "redacted must be a list of at most 200 path strings"}
    ]

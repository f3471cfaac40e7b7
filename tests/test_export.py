"""recorder.export: NDJSON / JSON / HAR encodings, keyset streaming, the round trip."""

import gzip
import io
from datetime import UTC, datetime

import orjson
import pytest

from recorder import demo, export, importer, state
from recorder.fields import to_micros
from recorder.models import Application, Event, Session

pytestmark = pytest.mark.django_db(databases="__all__")

FIXED = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def ndjson(session, **kwargs) -> bytes:
    return b"".join(export.session_export(session, exported_at=FIXED, **kwargs))


def lines(body: bytes) -> list[dict]:
    return [orjson.loads(line) for line in body.splitlines() if line.strip()]


def without_export_time(body: bytes) -> bytes:
    first, rest = body.split(b"\n", 1)
    header = orjson.loads(first)
    header.pop("exported_at")
    return orjson.dumps(header) + b"\n" + rest


def fold_of(session: Session):
    ops = Event.objects.filter(session=session, state__isnull=False).order_by("ts", "seq")
    return state.fold((e.uid, e.state) for e in ops.iterator())


@pytest.fixture
def demo_sessions(db):
    demo.demo_load(events_per_session=500)
    return {s.key: s for s in Session.objects.select_related("application")}


def test_format_ts_has_six_fraction_digits_and_parses_back_to_the_same_microsecond():
    from recorder.ingest import parse_ts

    for micros in (0, 1_700_000_000_000_001, 1_700_000_000_123_456, 4_000_000_000_999_999):
        text = export.format_ts(micros)
        assert text.endswith("Z") and len(text.split(".")[1]) == 7
        assert parse_ts(text) == micros


def test_ndjson_starts_with_a_session_header_then_envelopes_in_timeline_order(demo_sessions):
    session = demo_sessions["mobile-run"]
    rows = lines(ndjson(session))
    header, events = rows[0], rows[1:]
    assert header["session"]["key"] == "mobile-run"
    assert header["session"]["device"] == "Pixel 7"
    assert header["application"] == "demo"
    assert header["status"] == "crashed"
    assert header["export_version"] == export.EXPORT_VERSION
    assert header["exported_at"] == "2026-11-21T12:00:00.000000Z"
    assert len(events) == session.event_count >= 500
    stored = list(Event.objects.filter(session=session).order_by("ts", "seq"))
    assert [e["id"] for e in events] == [e.uid for e in stored]
    first = events[0]
    assert set(first) <= {"id", "session", "ts", "type", "source", "severity", "message", "key",
                          "correlation_id", "actor", "payload", "state", "redacted"}  # fmt: skip
    assert first["severity"] in {"debug", "info", "warn", "error", "fatal"}
    # Only present fields: a log line has no payload, key or state.
    log = next(e for e in events if e["type"] == "log")
    assert "payload" not in log and "state" not in log and "key" not in log


def test_secrets_scrubbed_at_ingestion_stay_scrubbed_and_their_paths_are_listed(demo_sessions):
    body = ndjson(demo_sessions["mobile-run"])
    assert b"Bearer eyJ" not in body
    http = next(e for e in lines(body)[1:] if e["type"] == "http")
    assert http["payload"]["request"]["headers"]["Authorization"] == "[Filtered]"
    assert "payload.request.headers.Authorization" in http["redacted"]


def test_json_is_the_header_with_an_events_array_holding_the_same_envelopes(demo_sessions):
    session = demo_sessions["web-checkout"]
    doc = orjson.loads(ndjson(session, fmt="json"))
    rows = lines(ndjson(session))
    assert doc.pop("events") == rows[1:]
    assert doc == rows[0]


def test_an_empty_session_exports_a_header_and_an_empty_array(shop):
    session = Session.objects.create(application=shop, key="quiet", started_at=FIXED)
    assert len(lines(ndjson(session))) == 1
    assert orjson.loads(ndjson(session, fmt="json"))["events"] == []


def test_keyset_chunks_cover_every_event_once_even_with_ts_ties(shop):
    session = Session.objects.create(application=shop, key="ties", started_at=FIXED)
    ts = to_micros(FIXED)
    Event.objects.bulk_create(
        Event(application=shop, session=session, seq=i + 1, ts=ts + (i // 7), received_at=ts,
              type="log", uid=f"u{i}")
        for i in range(103)
    )  # fmt: skip
    chunks = list(export.session_event_rows(session, chunk=10))
    assert len(chunks) == 11
    seqs = [row[1] for chunk in chunks for row in chunk]
    assert seqs == list(range(1, 104))


def test_gzip_chunks_decompress_to_the_plain_export(demo_sessions):
    session = demo_sessions["iot-gateway"]
    plain = ndjson(session)
    packed = b"".join(export.gzip_chunks(export.session_export(session, exported_at=FIXED)))
    assert gzip.decompress(packed) == plain


def test_filename_names_application_session_and_time(demo_sessions):
    session = demo_sessions["audit-trail"]
    name = export.export_filename(session.application, session=session, fmt="ndjson", gzipped=True)
    stamp = session.started_at.strftime("%Y%m%dT%H%M%SZ")
    assert name == f"demo_audit-trail_{stamp}.ndjson.gz"
    odd = Session(key='a/b "c"', started_at=FIXED)
    assert export.export_filename(session.application, session=odd) == (
        "demo_a-b-c_20261121T120000Z.ndjson"
    )


def test_round_trip_into_an_empty_database_gives_the_same_bytes_and_state(demo_sessions):
    originals = {}
    for key, session in demo_sessions.items():
        originals[key] = (ndjson(session), fold_of(session).doc, _counters(session))
    assert originals["web-checkout"][1]["cart"]["items"]  # there is state to compare
    Application.objects.all().delete()
    assert Event.objects.count() == 0

    for body, _, _ in originals.values():
        result = importer.import_bytes(body)
        assert result.ok, result.errors
        assert result.imported == len(body.splitlines()) - 1

    for key, (body, doc, counters) in originals.items():
        again = Session.objects.select_related("application").get(key=key)
        assert without_export_time(ndjson(again)) == without_export_time(body), key
        assert fold_of(again).doc == doc
        assert _counters(again) == counters


def _counters(session: Session) -> dict:
    session.refresh_from_db()
    return {
        f: getattr(session, f)
        for f in ("status", "status_reason", "started_at", "ended_at", "last_event_at",
                  "metadata", "event_count", "error_count", "byte_count")
    }  # fmt: skip


def test_the_ndjson_export_can_be_posted_back_to_ingestion(demo_sessions, client):
    from recorder.models import ApiKey

    body = ndjson(demo_sessions["web-checkout"])
    target = Application.objects.create(name="copy")
    raw = ApiKey.generate(target)[1]
    r = client.generic("POST", "/api/v1/events", body, content_type="application/x-ndjson",
                       HTTP_X_API_KEY=raw)  # fmt: skip
    assert r.status_code == 202, r.content
    assert r.json() == {"accepted": len(body.splitlines()) - 1, "rejected": []}
    copy = Session.objects.select_related("application").get(application=target)
    assert copy.key == "web-checkout"
    assert copy.metadata == demo_sessions["web-checkout"].metadata
    original = lines(body)[1:]
    assert lines(ndjson(copy))[1:] == original


def test_application_export_covers_a_time_range_across_sessions(demo_sessions):
    app = Application.objects.get(name="demo")
    mobile, iot = demo_sessions["mobile-run"], demo_sessions["iot-gateway"]
    start, end = mobile.started_at, iot.last_event_at
    body = b"".join(export.application_export(app, start=start, end=end, exported_at=FIXED))
    rows = lines(body)
    headers = [r for r in rows if "type" not in r]
    events = [r for r in rows if "type" in r]
    assert [h["session"]["key"] for h in headers] == ["mobile-run", "iot-gateway"]
    expected = Event.objects.filter(application=app, ts__gte=start, ts__lt=end).count()
    assert len(events) == expected > 900
    assert [e["ts"] for e in events] == sorted(e["ts"] for e in events)
    assert {e["session"] for e in events} == {"mobile-run", "iot-gateway"}

    doc = orjson.loads(b"".join(export.application_export(app, start=start, end=end, fmt="json")))
    assert doc["events"] == events
    assert [s["session"]["key"] for s in doc["sessions"]] == ["mobile-run", "iot-gateway"]


def test_har_holds_the_http_events_with_the_har_1_2_required_fields(demo_sessions):
    session = demo_sessions["mobile-run"]
    har = orjson.loads(b"".join(export.session_export(session, fmt="har")))
    http_count = Event.objects.filter(session=session, type="http").count()
    assert_valid_har(har)
    assert len(har["log"]["entries"]) == http_count > 0
    entry = har["log"]["entries"][0]
    assert entry["request"]["method"] in {"GET", "POST"}
    assert entry["request"]["url"].startswith("https://shop.example.com/")
    assert {"name": "Authorization", "value": "[Filtered]"} in entry["request"]["headers"]
    assert entry["response"]["content"]["mimeType"] == "application/json"
    assert entry["time"] == entry["timings"]["wait"] > 0


def test_har_maps_header_lists_bodies_and_timings():
    entry = export.har_entry(
        1_700_000_000_000_000,
        {
            "method": "post",
            "url": "https://x.test/a?q=1&r=",
            "status": 201,
            "request": {"headers": [{"name": "Content-Type", "value": "application/json"}],
                        "body": {"sku": "lamp"}},
            "response": {"headers": [["Content-Type", "text/plain"], ["Location", "/a/1"]],
                         "body": "created"},
            "timings": {"dns": 1.5, "connect": 3, "send": 1, "wait": 20, "receive": 2},
        },
    )  # fmt: skip
    assert_valid_har({"log": {"version": "1.2", "creator": export.HAR_CREATOR, "entries": [entry]}})
    assert entry["request"]["method"] == "POST"
    assert entry["request"]["queryString"] == [{"name": "q", "value": "1"},
                                               {"name": "r", "value": ""}]  # fmt: skip
    assert entry["request"]["postData"] == {"mimeType": "application/json",
                                            "text": '{"sku":"lamp"}'}  # fmt: skip
    assert entry["response"]["content"] == {"size": 7, "mimeType": "text/plain", "text": "created"}
    assert entry["response"]["redirectURL"] == "/a/1"
    assert entry["time"] == 1.5 + 3 + 1 + 20 + 2
    assert entry["startedDateTime"] == "2023-11-14T22:13:20.000000Z"


def assert_valid_har(har: dict) -> None:
    """The required members and types of HAR 1.2 (http://www.softwareishard.com/blog/har-12-spec/)."""
    log = har["log"]
    assert log["version"] == "1.2"
    assert isinstance(log["creator"]["name"], str) and isinstance(log["creator"]["version"], str)
    assert isinstance(log["entries"], list)
    for entry in log["entries"]:
        assert isinstance(entry["startedDateTime"], str)
        datetime.fromisoformat(entry["startedDateTime"].replace("Z", "+00:00"))
        assert isinstance(entry["time"], (int, float)) and entry["time"] >= 0
        req, res = entry["request"], entry["response"]
        for name in ("method", "url", "httpVersion"):
            assert isinstance(req[name], str)
        for name in ("cookies", "headers", "queryString"):
            assert isinstance(req[name], list)
        for pair in req["headers"] + req["queryString"] + res["headers"]:
            assert isinstance(pair["name"], str) and isinstance(pair["value"], str)
        assert isinstance(req["headersSize"], int) and isinstance(req["bodySize"], int)
        if "postData" in req:
            assert isinstance(req["postData"]["mimeType"], str)
        assert isinstance(res["status"], int) and isinstance(res["statusText"], str)
        assert isinstance(res["httpVersion"], str)
        assert isinstance(res["cookies"], list) and isinstance(res["headers"], list)
        assert isinstance(res["content"]["size"], int)
        assert isinstance(res["content"]["mimeType"], str)
        assert isinstance(res["redirectURL"], str)
        assert isinstance(res["headersSize"], int) and isinstance(res["bodySize"], int)
        assert isinstance(entry["cache"], dict)
        for name in ("send", "wait", "receive"):
            assert isinstance(entry["timings"][name], (int, float))
            assert entry["timings"][name] >= 0


def test_export_command_writes_a_gzip_file_and_import_command_reads_it(demo_sessions, tmp_path):
    from django.core.management import call_command

    session = demo_sessions["iot-gateway"]
    path = tmp_path / "out.ndjson.gz"
    call_command("export", str(session.id), "-o", str(path))
    body = gzip.decompress(path.read_bytes())
    assert without_export_time(body) == without_export_time(ndjson(session))

    out = io.StringIO()
    call_command("import", str(path), "--app", "restored", stdout=out)
    assert f"imported {session.event_count} events into restored" in out.getvalue()
    copy = Session.objects.get(application__name="restored")
    assert copy.event_count == session.event_count and copy.key == "iot-gateway"


def test_export_command_finds_a_session_by_key_and_writes_har(demo_sessions, tmp_path):
    from django.core.management import call_command

    path = tmp_path / "run.har"
    call_command("export", "mobile-run", "--app", "demo", "--format", "har", "-o", str(path))
    assert_valid_har(orjson.loads(path.read_bytes()))


@pytest.mark.e2e
def test_exporting_a_million_event_session_keeps_peak_rss_growth_under_50_mb():
    """In a fresh process (bench.export's memory phase): the session is written with raw
    executemany by another process, then exported to /dev/null while ru_maxrss is read
    before and after."""
    from bench.export import measure_memory

    measured = measure_memory(1_000_000)
    assert measured["lines"] == 1_000_001
    assert measured["growth_mb"] < 50, measured


def test_export_command_applies_filter_bar_filters(demo_sessions, tmp_path):
    from django.core.management import call_command

    session = demo_sessions["mobile-run"]
    path = tmp_path / "errors.ndjson"
    call_command("export", str(session.id), "--filter", "severity:>=error", "-o", str(path))
    rows = lines(path.read_bytes())
    expected = Event.objects.filter(session=session, severity__gte=40).count()
    assert len(rows) - 1 == expected > 0
    assert {r["severity"] for r in rows[1:]} <= {"error", "fatal"}
    assert rows[0]["filters"] == {"severity": ["error"]}

"""recorder.importer and `manage.py import`: formats, duplicates, bad lines, atomicity."""

import gzip
import io
import subprocess
import sys
from datetime import UTC, datetime

import orjson
import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError

from recorder import drain, export, importer
from recorder.models import Application, Event, Session

pytestmark = pytest.mark.django_db(databases="__all__")

HEADER = {
    "session": {"key": "run-7", "app_version": "1.0", "device": "pixel"},
    "application": "shop",
    "environment": "production",
    "status": "ended",
    "status_reason": "end marker received",
    "started_at": "2026-11-21T09:59:00.000000Z",
    "ended_at": "2026-11-21T10:05:00.000000Z",
    "export_version": 1,
    "exported_at": "2026-11-21T12:00:00.000000Z",
}


def event(i: int, **fields) -> dict:
    return {"id": f"ev-{i}", "ts": f"2026-11-21T10:00:{i:02d}.000123Z", "type": "log",
            "severity": "info", "message": f"line {i}", **fields}  # fmt: skip


def ndjson(*objs) -> bytes:
    return b"".join(orjson.dumps(o) + b"\n" for o in objs)


def test_it_imports_a_session_with_its_header_times_status_and_ids(shop):
    result = importer.import_bytes(ndjson(HEADER, event(1), event(2, severity="error")))
    assert result.ok and result.imported == 2 and result.sessions == ["run-7"]
    session = Session.objects.get(application=shop, key="run-7")
    assert session.status == "ended"
    assert session.started_at == datetime(2026, 11, 21, 9, 59, tzinfo=UTC)
    assert session.ended_at == datetime(2026, 11, 21, 10, 5, tzinfo=UTC)
    assert session.metadata == {"app_version": "1.0", "device": "pixel"}
    assert (session.event_count, session.error_count, session.last_seq) == (2, 1, 2)
    events = list(Event.objects.filter(session=session).order_by("seq"))
    assert [e.uid for e in events] == ["ev-1", "ev-2"]
    assert events[0].ts == datetime(2026, 11, 21, 10, 0, 1, 123, tzinfo=UTC)


def test_the_file_names_its_application_which_is_created_if_missing(db):
    importer.import_bytes(ndjson({**HEADER, "application": "fresh"}, event(1)))
    assert Session.objects.get(key="run-7").application.name == "fresh"


def test_app_option_overrides_the_files_application(shop, other_app):
    result = importer.import_bytes(ndjson(HEADER, event(1)), app_name="warehouse")
    assert result.application == "warehouse"
    assert Session.objects.get(key="run-7").application == other_app


def test_a_file_without_header_or_app_is_refused_and_nothing_is_written(db):
    with pytest.raises(importer.ImportFailed, match="no application"):
        importer.import_bytes(ndjson({**event(1), "session": "s"}))
    assert Event.objects.count() == 0


def test_importing_the_same_file_twice_does_not_duplicate(shop):
    body = ndjson(HEADER, *(event(i) for i in range(20)))
    first = importer.import_bytes(body)
    second = importer.import_bytes(body)
    assert (first.imported, first.duplicates) == (20, 0)
    assert (second.imported, second.duplicates) == (0, 20)
    session = Session.objects.get(key="run-7")
    assert Event.objects.filter(session=session).count() == session.event_count == 20


def test_events_without_ids_get_the_same_uids_on_a_second_import(shop):
    body = ndjson(HEADER, {"type": "log", "ts": 1_700_000_000, "message": "no id"})
    importer.import_bytes(body)
    again = importer.import_bytes(body)
    assert again.duplicates == 1 and Event.objects.count() == 1


def test_uids_already_ingested_are_skipped(shop, ingest):
    assert ingest.post({"session": "run-7", "events": [event(1), event(2)]}).status_code == 202
    result = importer.import_bytes(ndjson(HEADER, event(1), event(2), event(3)))
    assert (result.imported, result.duplicates) == (1, 2)
    session = Session.objects.get(key="run-7")
    assert session.event_count == 3
    assert sorted(Event.objects.values_list("seq", flat=True)) == [1, 2, 3]


def test_bad_lines_are_reported_by_number_and_the_valid_ones_imported(shop):
    body = (
        ndjson(HEADER, event(1))
        + b"{not json\n"
        + ndjson({**event(3), "type": "bad type!"}, event(4), {**event(5), "ts": "yesterday"})
        + orjson.dumps(event(6))[:25]  # truncated last line
    )
    result = importer.import_bytes(body)
    assert not result.ok
    assert [(e.line, e.error.split(":")[0]) for e in result.errors] == [
        (3, "line is not valid JSON"),
        (4, "type must be 1-64 characters of letters, digits and _ . "),
        (6, "ts 'yesterday' is not an RFC 3339 timestamp"),
        (7, "line is not valid JSON (truncated file?)"),
    ]
    assert result.imported == 2
    assert sorted(Event.objects.values_list("uid", flat=True)) == ["ev-1", "ev-4"]


def test_a_truncated_gzip_file_imports_what_was_complete_and_reports_the_cut(shop):
    body = ndjson(HEADER, *(event(i) for i in range(50)))
    packed = gzip.compress(body)
    result = importer.import_bytes(packed[: len(packed) - 40])
    assert not result.ok
    assert "gzip data is corrupt or truncated" in result.errors[-1].error
    assert 0 < result.imported < 50


def test_gzip_and_json_documents_are_detected(shop):
    doc = {**HEADER, "events": [event(1), event(2)]}
    assert importer.import_bytes(gzip.compress(orjson.dumps(doc))).imported == 2
    Application.objects.all().delete()
    pretty = orjson.dumps(doc, option=orjson.OPT_INDENT_2)
    assert importer.import_bytes(pretty, app_name="shop").imported == 2
    Application.objects.all().delete()
    batch = {"session": "plain", "events": [event(1)]}
    assert importer.import_bytes(orjson.dumps(batch), app_name="shop").sessions == ["plain"]


def test_a_session_is_all_there_or_not_at_all_when_the_write_fails(shop, monkeypatch):
    calls = {"n": 0}
    original = drain.insert_events

    def failing(values):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("disk full")
        original(values)

    monkeypatch.setattr(drain, "insert_events", failing)
    body = ndjson(HEADER, *(event(i) for i in range(30)))
    with pytest.raises(RuntimeError):
        importer.import_bytes(body, chunk=10)
    assert not Session.objects.filter(key="run-7").exists()
    assert Event.objects.count() == 0


def test_imported_events_are_found_by_full_text_search(shop):
    from recorder import queries

    importer.import_bytes(ndjson(HEADER, event(1, message="zebra crossing"), event(2)))
    filters = queries.parse_event_filters({"q": "zebra"})
    found = queries.filter_events(Event.objects.all(), filters)
    assert [e.uid for e in found] == ["ev-1"]


def test_redaction_of_the_target_application_applies_and_claims_are_kept(shop):
    item = event(1, type="http", payload={"headers": {"Authorization": "Bearer abc.def"}},
                 redacted=["payload.earlier"])  # fmt: skip
    importer.import_bytes(ndjson(HEADER, item))
    stored = Event.objects.get()
    assert stored.payload == {"headers": {"Authorization": "[Filtered]"}}
    assert stored.redacted == ["payload.earlier", "payload.headers.Authorization"]


def test_import_command_reports_bad_lines_and_fails(shop, tmp_path):
    path = tmp_path / "broken.ndjson"
    path.write_bytes(ndjson(HEADER, event(1)) + b"garbage\n")
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError) as exc:
        call_command("import", str(path), stdout=out, stderr=err)
    assert exc.value.returncode == 1
    assert "line 3: line is not valid JSON" in err.getvalue()
    assert "imported 1 events into shop" in out.getvalue()
    assert Event.objects.count() == 1


@pytest.mark.e2e
def test_import_command_exits_non_zero_as_a_real_process(tmp_path):
    """manage.py import is a module named import.py: check Django's loader finds it."""
    env_dir = tmp_path / "data"
    env = {"FLIGHTREC_DATA_DIR": str(env_dir), "PATH": "/usr/bin:/bin"}
    manage = [sys.executable, str(settings.BASE_DIR / "manage.py")]
    subprocess.run([*manage, "migrate", "-v0"], env=env, check=True, timeout=120)
    path = tmp_path / "broken.ndjson"
    path.write_bytes(ndjson(HEADER, event(1)) + b"garbage\n")
    run = subprocess.run([*manage, "import", str(path)], env=env, capture_output=True,
                         text=True, timeout=120)  # fmt: skip
    assert run.returncode == 1, run.stderr
    assert "line 3: line is not valid JSON" in run.stderr
    assert "imported 1 events into shop" in run.stdout


def test_export_of_an_import_keeps_microseconds_and_severity_names(shop):
    items = [event(1, severity="warning"), event(2, severity=17), event(3, ts=1_700_000_000.5)]
    importer.import_bytes(ndjson(HEADER, *items))
    session = Session.objects.select_related("application").get(key="run-7")
    rows = [orjson.loads(x) for x in b"".join(export.session_export(session)).splitlines()[1:]]
    by_id = {r["id"]: r for r in rows}
    assert by_id["ev-1"]["severity"] == "warn"
    assert by_id["ev-2"]["severity"] == "error"
    assert by_id["ev-3"]["ts"] == "2023-11-14T22:13:20.500000Z"
    assert by_id["ev-1"]["ts"] == "2026-11-21T10:00:01.000123Z"


def test_importing_older_events_into_a_session_with_keyframes_keeps_snapshots_right(shop):
    from recorder import state, timetravel
    from recorder.models import Keyframe

    def op(i, n):
        return event(i, type="state", state={"op": "set", "path": f"/v{i}", "value": n})

    # Later half first: keyframes get built over it (every 2 events here).
    importer.import_bytes(ndjson(HEADER, *(op(i, i) for i in range(30, 40))))
    run = Session.objects.get(application=shop, key="run-7")
    timetravel.keyframes_build(session_id=run.id, every_ops=2, every_events=2)
    assert Keyframe.objects.filter(session=run).exists()
    # Then the earlier half arrives: every keyframe now misses events before it.
    importer.import_bytes(ndjson(HEADER, *(op(i, i) for i in range(0, 10))))
    last = Event.objects.filter(session=run).order_by("-ts", "-seq").first()
    snapshot = timetravel.snapshot_at(session=run, at=timetravel.position_parse(run, str(last.id)))
    ops = Event.objects.filter(session=run, state__isnull=False).order_by("ts", "seq")
    full = state.fold((e.id, e.state) for e in ops).doc
    assert snapshot["state"] == full
    assert set(full) == {f"v{i}" for i in [*range(0, 10), *range(30, 40)]}

"""GET /api/v1/sessions/{id}/export, GET /api/v1/export and POST /api/v1/import."""

import gzip

import orjson
import pytest

from recorder.models import Event, Session

pytestmark = pytest.mark.django_db(databases="__all__")


def events(n: int, **fields) -> list[dict]:
    return [
        {"id": f"e{i}", "type": "http" if i % 3 == 0 else "log", "ts": 1_700_000_000 + i,
         "severity": "error" if i % 5 == 0 else "info", "message": f"event {i}",
         "payload": {"method": "GET", "url": f"https://x.test/{i}", "status": 200}, **fields}
        for i in range(n)
    ]  # fmt: skip


@pytest.fixture
def run(ingest, shop):
    body = {"session": {"key": "run-1", "app_version": "2.0"}, "events": events(30)}
    assert ingest.post(body).status_code == 202
    return Session.objects.get(application=shop, key="run-1")


def body_of(response) -> bytes:
    return b"".join(response.streaming_content)


def ndjson_lines(response) -> list[dict]:
    return [orjson.loads(x) for x in body_of(response).splitlines()]


def test_a_member_downloads_a_session_as_ndjson_with_a_filename(client, bob, run):
    client.force_login(bob)
    r = client.get(f"/api/v1/sessions/{run.id}/export")
    assert r.status_code == 200
    assert r["Content-Type"] == "application/x-ndjson"
    stamp = run.started_at.strftime("%Y%m%dT%H%M%SZ")
    assert r["Content-Disposition"] == f'attachment; filename="shop_run-1_{stamp}.ndjson"'
    rows = ndjson_lines(r)
    assert rows[0]["session"] == {"key": "run-1", "app_version": "2.0"}
    assert [x["id"] for x in rows[1:]] == [f"e{i}" for i in range(30)]


def test_a_read_key_downloads_json_and_gzip(client, read_key, run):
    r = client.get(f"/api/v1/sessions/{run.id}/export?format=json", HTTP_X_API_KEY=read_key)
    assert r.status_code == 200 and r["Content-Type"] == "application/json"
    doc = orjson.loads(body_of(r))
    assert len(doc["events"]) == 30

    r = client.get(f"/api/v1/sessions/{run.id}/export?gzip=1", HTTP_X_API_KEY=read_key)
    assert r["Content-Type"] == "application/gzip"
    assert r["Content-Disposition"].endswith('.ndjson.gz"')
    assert len(gzip.decompress(body_of(r)).splitlines()) == 31


def test_timeline_filters_apply_to_the_export(client, alice, run):
    client.force_login(alice)
    r = client.get(f"/api/v1/sessions/{run.id}/export?type=log&severity=error")
    rows = ndjson_lines(r)
    assert [x["id"] for x in rows[1:]] == ["e5", "e10", "e20", "e25"]
    assert rows[0]["filters"] == {"type": ["log"], "severity": ["error"]}
    r = client.get(f"/api/v1/sessions/{run.id}/export?q=event+12")
    assert [x["id"] for x in ndjson_lines(r)[1:]] == ["e12"]


def test_a_bad_filter_or_format_is_a_400_that_says_what_was_wrong(client, alice, run):
    client.force_login(alice)
    r = client.get(f"/api/v1/sessions/{run.id}/export?severity=loud")
    assert r.status_code == 400 and "severity" in r.json()["detail"]
    r = client.get(f"/api/v1/sessions/{run.id}/export?format=xml")
    assert r.status_code == 400 and "format must be one of" in r.json()["detail"]


def test_har_download_holds_the_http_events(client, alice, run):
    client.force_login(alice)
    r = client.get(f"/api/v1/sessions/{run.id}/export?format=har")
    har = orjson.loads(body_of(r))
    assert r["Content-Disposition"].endswith('.har"')
    assert har["log"]["version"] == "1.2"
    assert [e["request"]["url"] for e in har["log"]["entries"]] == [
        f"https://x.test/{i}" for i in range(0, 30, 3)
    ]


def test_another_applications_session_is_a_404(client, charlie, run, shop_key):
    client.force_login(charlie)
    assert client.get(f"/api/v1/sessions/{run.id}/export").status_code == 404
    client.logout()
    # A write-only key cannot read.
    r = client.get(f"/api/v1/sessions/{run.id}/export", HTTP_X_API_KEY=shop_key)
    assert r.status_code == 401


def test_audit_export_spans_sessions_in_a_time_range(client, ingest, alice, run):
    other = {"session": "run-2", "events": events(10, id=None)}
    for i, ev in enumerate(other["events"]):
        ev["id"] = f"o{i}"
    assert ingest.post(other).status_code == 202
    client.force_login(alice)
    r = client.get(
        "/api/v1/export?application=shop&since=2023-11-14T22:13:25Z&until=2023-11-14T22:13:28Z"
    )
    assert r.status_code == 200
    assert "shop_audit_20231114T221325Z.ndjson" in r["Content-Disposition"]
    rows = ndjson_lines(r)
    headers = [x for x in rows if "type" not in x]
    assert sorted(h["session"]["key"] for h in headers) == ["run-1", "run-2"]
    assert sorted(x["id"] for x in rows if "type" in x) == ["e5", "e6", "e7", "o5", "o6", "o7"]
    assert client.get("/api/v1/export?application=warehouse").status_code == 404


def test_import_endpoint_takes_an_upload_and_is_idempotent(client, alice, run, other_app):
    from recorder.models import ApiKey

    client.force_login(alice)
    exported = body_of(client.get(f"/api/v1/sessions/{run.id}/export?gzip=1"))
    client.logout()
    key = ApiKey.generate(other_app)[1]
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile("run.ndjson.gz", exported)
    r = client.post("/api/v1/import", {"file": upload}, HTTP_X_API_KEY=key)
    assert r.status_code == 200, r.content
    assert r.json() == {"application": "warehouse", "sessions": ["run-1"], "imported": 30,
                        "duplicates": 0, "error_count": 0, "errors": []}  # fmt: skip
    r = client.generic("POST", "/api/v1/import", exported, HTTP_X_API_KEY=key,
                       content_type="application/gzip")  # fmt: skip
    assert r.json()["duplicates"] == 30 and r.json()["imported"] == 0
    assert Event.objects.filter(application=other_app).count() == 30


def test_import_endpoint_lists_bad_lines_with_a_422(client, shop_key):
    body = b'{"session": "s", "type": "log", "id": "a"}\n{oops\n'
    r = client.generic("POST", "/api/v1/import", body, HTTP_X_API_KEY=shop_key,
                       content_type="application/x-ndjson")  # fmt: skip
    assert r.status_code == 422
    data = r.json()
    assert data["imported"] == 1
    assert data["errors"][0]["line"] == 2
    assert "1 bad lines were skipped" in data["detail"]


def test_import_needs_a_write_key(client):
    assert (
        client.post("/api/v1/import", b"", content_type="application/x-ndjson").status_code == 401
    )


def test_the_timeline_links_to_exports_with_its_current_filters(client, alice, run):
    import html
    import re

    from django.urls import reverse

    client.force_login(alice)
    page = client.get(reverse("timeline", args=[run.id]), {"filter": "type:log severity:>=error"})
    href = html.unescape(
        re.search(r'<a href="([^"]+)" id="export-ndjson"', page.content.decode())[1]
    )
    r = client.get(href)
    assert r.status_code == 200
    assert [x["id"] for x in ndjson_lines(r)[1:]] == ["e5", "e10", "e20", "e25"]


def test_a_multipart_upload_without_a_file_part_is_a_clear_400(client, shop_key):
    r = client.post("/api/v1/import", {"file": "not a file part"}, HTTP_X_API_KEY=shop_key)
    assert r.status_code == 400
    assert 'named "file"' in r.json()["detail"]

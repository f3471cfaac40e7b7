"""Read API: /api/v1/sessions, /sessions/{id}, /sessions/{id}/events (+histogram),
/events/{id}, /events, /correlation/{cid}, /latest. Who may read what, and 4xx details."""

import pytest

from recorder.models import Session

pytestmark = pytest.mark.django_db(databases="__all__")

T0 = 1_700_000_000


def ev(i, session="run-1", **fields):
    return {"session": session, "type": "log", "ts": T0 + i, "message": f"m{i}", **fields}


@pytest.fixture
def data(ingest, shop):
    ingest.post({"session": {"key": "run-1", "app_version": "4.2.1", "device": "Pixel 7"},
                 "events": [ev(i) for i in range(5)] + [
        ev(5, type="http", correlation_id="req-1", payload={"method": "POST", "status": 503},
           severity="error", message="POST /checkout failed with timeout"),
        ev(6, type="mqtt", key="accuracy::vienna", payload={"topic": "gps/vienna", "accuracy_m": 3}),
        ev(7, type="mqtt", key="accuracy::vienna", payload={"topic": "gps/vienna", "accuracy_m": 5}),
        ev(8, type="mqtt", key="accuracy::graz", payload={"topic": "gps/graz", "accuracy_m": 9}),
    ]})  # fmt: skip
    ingest.post([ev(100, session="run-2", type="http", correlation_id="req-1", message="retry")])
    return {
        "run1": Session.objects.get(application=shop, key="run-1"),
        "run2": Session.objects.get(application=shop, key="run-2"),
    }


@pytest.fixture
def api(client, alice):
    client.force_login(alice)
    return client


def test_sessions_list_filters_by_text_and_status(api, data):
    r = api.get("/api/v1/sessions", {"q": "pixel"})
    assert r.status_code == 200
    assert [s["key"] for s in r.json()["items"]] == ["run-1"]
    assert r.json()["items"][0]["duration_seconds"] == 8.0
    r = api.get("/api/v1/sessions", {"status": "zombie"})
    assert r.status_code == 400 and "status" in r.json()["detail"]


def test_sessions_list_pages_with_a_cursor(api, data):
    first = api.get("/api/v1/sessions", {"limit": 1}).json()
    second = api.get("/api/v1/sessions", {"limit": 1, "cursor": first["next_cursor"]}).json()
    assert [first["items"][0]["key"], second["items"][0]["key"]] == ["run-2", "run-1"]
    assert second["next_cursor"] is None


def test_a_session_by_id(api, data):
    r = api.get(f"/api/v1/sessions/{data['run1'].id}")
    assert r.status_code == 200 and r.json()["metadata"]["app_version"] == "4.2.1"


def test_timeline_filters_by_type_payload_condition_and_full_text(api, data):
    url = f"/api/v1/sessions/{data['run1'].id}/events"
    assert [e["seq"] for e in api.get(url, {"type": "mqtt"}).json()["items"]] == [7, 8, 9]
    assert [e["seq"] for e in api.get(url, {"where": "accuracy_m>4"}).json()["items"]] == [8, 9]
    assert [e["seq"] for e in api.get(url, {"q": "timeout"}).json()["items"]] == [6]
    assert [
        e["seq"]
        for e in api.get(url, {"key": "accuracy::*", "where": "accuracy_m<9"}).json()["items"]
    ] == [7, 8]
    assert [
        e["seq"] for e in api.get(url, {"filter": "type:http status>=500"}).json()["items"]
    ] == [6]


def test_timeline_pages_forward_and_back(api, data):
    url = f"/api/v1/sessions/{data['run1'].id}/events"
    first = api.get(url, {"limit": 4}).json()
    assert [e["seq"] for e in first["items"]] == [1, 2, 3, 4] and first["prev_cursor"] is None
    second = api.get(url, {"limit": 4, "after": first["next_cursor"]}).json()
    assert [e["seq"] for e in second["items"]] == [5, 6, 7, 8]
    back = api.get(url, {"limit": 4, "before": second["prev_cursor"]}).json()
    assert [e["seq"] for e in back["items"]] == [1, 2, 3, 4]
    last = api.get(url, {"limit": 4, "last": "true"}).json()
    assert [e["seq"] for e in last["items"]] == [6, 7, 8, 9] and last["next_cursor"] is None
    assert last["last_cursor"]
    # A live tail polls with last_cursor: nothing new yet.
    assert api.get(url, {"after": last["last_cursor"]}).json()["items"] == []


def test_timeline_around_an_event_and_from_a_time(api, data):
    url = f"/api/v1/sessions/{data['run1'].id}/events"
    event_id = api.get(url, {"type": "http"}).json()["items"][0]["id"]
    around = api.get(url, {"at": event_id, "limit": 3}).json()
    assert event_id in [e["id"] for e in around["items"]]
    start = api.get(url, {"start": str(T0 + 7), "limit": 2}).json()
    assert [e["seq"] for e in start["items"]] == [8, 9]


def test_timeline_errors_name_the_parameter(api, data):
    url = f"/api/v1/sessions/{data['run1'].id}/events"
    r = api.get(url, {"where": "status>=lots"})
    assert r.status_code == 400 and "status>=lots" in r.json()["detail"]
    r = api.get(url, {"after": "garbage"})
    assert r.status_code == 400 and "cursor" in r.json()["detail"]
    r = api.get(url, {"severity": "loud"})
    assert r.status_code == 400 and "severity" in r.json()["detail"]


def test_histogram_returns_buckets_by_severity(api, data):
    r = api.get(f"/api/v1/sessions/{data['run1'].id}/histogram", {"buckets": 3})
    assert r.status_code == 200
    body = r.json()
    assert len(body["buckets"]) == 3
    assert sum(sum(b["counts"].values()) for b in body["buckets"]) == 9
    assert sum(b["counts"]["error"] for b in body["buckets"]) == 1


def test_one_event_with_its_session(api, data):
    event_id = api.get(f"/api/v1/sessions/{data['run1'].id}/events", {"type": "http"}).json()[
        "items"
    ][0]["id"]
    r = api.get(f"/api/v1/events/{event_id}")
    assert r.status_code == 200
    assert r.json()["session_key"] == "run-1" and r.json()["payload"]["status"] == 503


def test_events_across_sessions(api, data):
    r = api.get("/api/v1/events", {"type": "http"})
    assert [(e["session_key"], e["message"]) for e in r.json()["items"]] == [
        ("run-1", "POST /checkout failed with timeout"), ("run-2", "retry")]  # fmt: skip
    r = api.get("/api/v1/events", {"since": str(T0 + 50)})
    assert [e["session_key"] for e in r.json()["items"]] == ["run-2"]


def test_correlation_chain_spans_sessions(api, data):
    r = api.get("/api/v1/correlation/req-1")
    assert [e["session_key"] for e in r.json()["items"]] == ["run-1", "run-2"]


def test_latest_per_key(api, data):
    r = api.get("/api/v1/latest", {"pattern": "accuracy::*", "n": 1})
    items = r.json()["items"]
    assert [(g["key"], [e["payload"]["accuracy_m"] for e in g["events"]]) for g in items] == [
        ("accuracy::graz", [9]), ("accuracy::vienna", [5])]  # fmt: skip
    r = api.get(
        "/api/v1/latest", {"pattern": "accuracy::vienna", "n": 2, "session": data["run1"].id}
    )
    assert [e["payload"]["accuracy_m"] for e in r.json()["items"][0]["events"]] == [5, 3]


def test_a_read_key_works_and_a_write_key_does_not(client, data, read_key, shop_key):
    assert client.get("/api/v1/sessions", HTTP_X_API_KEY=read_key).status_code == 200
    assert client.get("/api/v1/sessions", HTTP_X_API_KEY=shop_key).status_code == 401


def test_other_applications_data_is_invisible(client, data, charlie):
    client.force_login(charlie)
    assert client.get("/api/v1/sessions").json()["items"] == []
    assert client.get(f"/api/v1/sessions/{data['run1'].id}").status_code == 404
    assert client.get(f"/api/v1/sessions/{data['run1'].id}/events").status_code == 404
    assert client.get("/api/v1/correlation/req-1").json()["items"] == []
    assert client.get("/api/v1/events").json()["items"] == []
    assert client.get("/api/v1/latest", {"pattern": "*"}).json()["items"] == []


def test_a_query_number_past_64_bits_is_a_400_not_a_crash(client, read_key):
    r = client.get(
        "/api/v1/latest?pattern=a&session=99999999999999999999999", HTTP_X_API_KEY=read_key
    )
    assert r.status_code == 400
    assert "out of range" in r.json()["detail"]


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/sessions/99999999999999999999999",
        "/api/v1/sessions/99999999999999999999999/events",
        "/api/v1/events/99999999999999999999999",
    ],
)
def test_an_id_past_64_bits_is_simply_not_found(client, read_key, url):
    assert client.get(url, HTTP_X_API_KEY=read_key).status_code == 404

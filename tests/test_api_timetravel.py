"""GET /api/v1/sessions/{id}/snapshot, /diff and /replay (Server-Sent Events)."""

import threading
import time

import orjson
import pytest
from django.db import connection

from recorder import timetravel
from recorder.models import Event, Session

pytestmark = pytest.mark.django_db(databases="__all__")

T0 = 1_700_000_000


@pytest.fixture
def cart(ingest, shop):
    events = [
        {"ts": T0, "type": "state", "key": "cart",
         "state": {"op": "set", "path": "", "value": {"items": []}}},
        {"ts": T0 + 0.4, "type": "state", "key": "cart",
         "state": {"op": "patch", "patch": [{"op": "add", "path": "/items/-", "value": "tea"}]}},
        {"ts": T0 + 0.8, "type": "http", "severity": "error", "message": "payment failed"},
        {"ts": T0 + 1.6, "type": "state", "key": "user",
         "state": {"op": "merge", "value": {"user": "ada"}}},
    ]  # fmt: skip
    assert ingest.post({"session": "cart-1", "events": events}).status_code == 202
    session = Session.objects.get(application=shop, key="cart-1")
    return session, list(Event.objects.filter(session=session).order_by("ts", "seq"))


def test_a_member_gets_the_snapshot_at_an_event(client, alice, cart):
    session, events = cart
    client.force_login(alice)
    r = client.get(f"/api/v1/sessions/{session.id}/snapshot?at={events[2].id}")
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["state"] == {"items": ["tea"]}
    assert body["event"]["message"] == "payment failed"
    assert set(body["latest"]) == {"cart"}
    assert body["counts"]["severity"] == {"info": 2, "error": 1}
    assert [e["id"] for e in body["recent"]] == [events[0].id, events[1].id]
    assert body["errors"] == [] and body["error_count"] == 0


def test_a_read_key_gets_the_snapshot_at_a_time(client, read_key, cart):
    session, _ = cart
    r = client.get(
        f"/api/v1/sessions/{session.id}/snapshot",
        {"at": "2023-11-14T22:13:21Z"},  # T0 + 1 s: after the error, before the merge
        HTTP_X_API_KEY=read_key,
    )
    assert r.status_code == 200, r.content
    assert r.json()["state"] == {"items": ["tea"]}
    assert r.json()["counts"]["events"] == 3


def test_another_applications_session_is_not_found(
    client, charlie, other_app, cart, django_user_model
):
    session, events = cart
    client.force_login(charlie)
    assert (
        client.get(f"/api/v1/sessions/{session.id}/snapshot?at={events[0].id}").status_code == 404
    )
    assert client.get(f"/api/v1/sessions/{session.id}/replay").status_code == 404
    r = client.get(f"/api/v1/sessions/{session.id}/diff?from={events[0].id}&to={events[1].id}")
    assert r.status_code == 404


def test_anonymous_callers_are_refused(client, cart):
    session, events = cart
    assert (
        client.get(f"/api/v1/sessions/{session.id}/snapshot?at={events[0].id}").status_code == 401
    )


def test_a_bad_instant_is_a_400_that_says_which_parameter(client, alice, cart):
    session, _ = cart
    client.force_login(alice)
    r = client.get(f"/api/v1/sessions/{session.id}/snapshot?at=soon")
    assert r.status_code == 400
    assert "at 'soon' is neither an event id nor a time" in r.json()["detail"]
    r = client.get(f"/api/v1/sessions/{session.id}/diff?from=999999&to=soon")
    assert r.status_code == 404 and "from: there is no event 999999" in r.json()["detail"]


def test_diff_returns_a_json_patch_and_changed_latest_keys(client, alice, cart):
    session, events = cart
    client.force_login(alice)
    r = client.get(f"/api/v1/sessions/{session.id}/diff?from={events[0].id}&to={events[3].id}")
    assert r.status_code == 200, r.content
    body = r.json()
    assert {(op["op"], op["path"]) for op in body["state"]} == {
        ("add", "/items/0"),
        ("add", "/user"),
    }
    assert body["latest"]["cart"]["from"]["id"] == events[0].id
    assert body["latest"]["cart"]["to"]["id"] == events[1].id
    assert body["latest"]["user"]["from"] is None
    assert body["counts"]["events"] == 3


def read_sse(response):
    """(arrival monotonic time, event name, data) for each SSE message."""
    out, buffer = [], b""
    for chunk in response.streaming_content:
        arrived = time.monotonic()
        buffer += chunk
        while b"\n\n" in buffer:
            message, buffer = buffer.split(b"\n\n", 1)
            fields = dict(
                line.split(": ", 1) for line in message.decode().splitlines() if ": " in line
            )
            if "event" in fields:
                out.append((arrived, fields["event"], orjson.loads(fields["data"])))
    return out


def test_replay_sends_each_event_at_its_real_gap_divided_by_speed(client, alice, cart):
    session, events = cart
    client.force_login(alice)
    r = client.get(f"/api/v1/sessions/{session.id}/replay?speed=4")
    assert r.status_code == 200
    assert r["Content-Type"] == "text/event-stream"
    messages = read_sse(r)
    r.close()
    sent = [(at, data) for at, kind, data in messages if kind == "event"]
    assert [data["id"] for _, data in sent] == [e.id for e in events]
    first = sent[0][0]
    gaps = [round(at - first, 3) for at, _ in sent]
    for measured, expected in zip(gaps, [0.0, 0.1, 0.2, 0.4], strict=True):
        assert abs(measured - expected) < 0.03, gaps
    assert messages[-1][1] == "end" and messages[-1][2]["sent"] == 4


def test_replay_can_skip_idle_gaps_and_play_a_range_as_fast_as_possible(client, alice, cart):
    session, events = cart
    client.force_login(alice)
    r = client.get(
        f"/api/v1/sessions/{session.id}/replay?speed=max&from={events[1].id}&to={events[2].id}"
    )
    started = time.monotonic()
    sent = [data["id"] for _, kind, data in read_sse(r) if kind == "event"]
    assert sent == [events[1].id, events[2].id]
    assert time.monotonic() - started < 0.2
    r = client.get(f"/api/v1/sessions/{session.id}/replay?speed=1&skip_idle=0.1")
    offsets = [data["replay"]["offset"] for _, kind, data in read_sse(r) if kind == "event"]
    assert offsets == [0.0, 0.1, 0.2, 0.3]


def test_replay_refuses_a_bad_speed(client, alice, cart):
    session, _ = cart
    client.force_login(alice)
    r = client.get(f"/api/v1/sessions/{session.id}/replay?speed=-2")
    assert r.status_code == 400 and "speed must be" in r.json()["detail"]


def test_replays_beyond_the_per_process_limit_get_429_and_closing_frees_a_slot(
    client, alice, cart, monkeypatch
):
    session, _ = cart
    client.force_login(alice)
    monkeypatch.setattr(timetravel, "_streams", threading.BoundedSemaphore(1))
    # Closing a streamed response the test client never read fires request_finished,
    # whose close_old_connections would close the test's PostgreSQL connection (and
    # its transaction) under it; servers close after the request, when it is harmless.
    monkeypatch.setattr(connection, "close_if_unusable_or_obsolete", lambda: None)
    first = client.get(f"/api/v1/sessions/{session.id}/replay?speed=max")
    assert first.status_code == 200
    busy = client.get(f"/api/v1/sessions/{session.id}/replay?speed=max")
    assert busy.status_code == 429 and busy["Retry-After"] == "5"
    first.close()  # never read: the slot must come back all the same
    again = client.get(f"/api/v1/sessions/{session.id}/replay?speed=max")
    assert again.status_code == 200
    again.close()


def test_the_replay_index_lists_every_event_compactly_in_timeline_order(client, alice, cart):
    session, events = cart
    client.force_login(alice)
    r = client.get(f"/api/v1/sessions/{session.id}/replay/index")
    assert r.status_code == 200, r.content
    assert r.json() == {
        "events": [
            [e.id, int(e.ts.timestamp() * 1_000_000), e.seq, e.get_severity_display()]
            for e in events
        ],
        "truncated": False,
    }

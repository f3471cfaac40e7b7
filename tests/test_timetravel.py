"""recorder.timetravel: snapshots, diffs, keyframes and replay pacing.

Events go in through the real ingestion path (spool, drain with its keyframe hook);
the oracle for every snapshot is a plain fold of the whole timeline.
"""

import itertools
from collections import Counter

import orjson
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from recorder import ingest, state, timetravel
from recorder.fields import to_micros
from recorder.models import Event, Keyframe, Session
from recorder.timetravel import Position, position_parse

pytestmark = pytest.mark.django_db(databases="__all__")

T0 = 1_700_000_000
_uids = itertools.count()


def send(app, key, events):
    """Ingest events into session `key` of `app`; drains inline under pytest."""
    for ev in events:
        ev.setdefault("id", f"u{next(_uids)}")
        ev.setdefault("type", "state" if "state" in ev else "log")
    body = orjson.dumps({"session": {"key": key}, "events": events})
    result = ingest.events_accept(application=app, batch=ingest.parse_batch(body), body=body)
    assert not result.rejected, result.rejected
    return Session.objects.get(application=app, key=key)


def timeline(session):
    return list(Event.objects.filter(session=session).order_by("ts", "seq"))


def oracle(session, pos: Position):
    """Everything a snapshot at pos must say, computed the slow obvious way."""
    upto = [e for e in timeline(session) if (to_micros(e.ts), e.seq) <= (pos.ts, pos.seq)]
    folded = state.fold((e.id, e.state) for e in upto)
    latest = {}
    for e in upto:
        if e.key is not None:
            latest[e.key] = e.id
    counts = {
        "events": len(upto),
        "type": dict(Counter(e.type for e in upto)),
        "severity": dict(Counter(e.get_severity_display() for e in upto)),
    }
    return folded, latest, counts


def at_event(event):
    return Position(to_micros(event.ts), event.seq, event.id)


def snap(session, event):
    return timetravel.snapshot_at(session=session, at=at_event(event))


def test_snapshot_at_an_event_includes_that_event_and_everything_before(shop):
    s = send(shop, "run", [
        {"ts": T0, "state": {"op": "set", "path": "", "value": {"cart": []}}},
        {"ts": T0 + 1, "state": {"op": "patch", "patch": [{"op": "add", "path": "/cart/-", "value": "tea"}]}},
        {"ts": T0 + 2, "state": {"op": "merge", "value": {"user": "ada"}}},
    ])  # fmt: skip
    events = timeline(s)
    assert snap(s, events[0])["state"] == {"cart": []}
    middle = snap(s, events[1])
    assert middle["state"] == {"cart": ["tea"]}
    assert middle["event"]["id"] == events[1].id
    assert [e["id"] for e in middle["recent"]] == [events[0].id]
    assert snap(s, events[2])["state"] == {"cart": ["tea"], "user": "ada"}


def test_snapshot_at_a_time_includes_every_event_with_that_ts(shop):
    s = send(shop, "run", [
        {"ts": T0, "state": {"op": "set", "path": "/a", "value": 1}},
        {"ts": T0 + 5, "state": {"op": "set", "path": "/b", "value": 2}},
        {"ts": T0 + 5, "state": {"op": "set", "path": "/c", "value": 3}},
        {"ts": T0 + 9, "state": {"op": "set", "path": "/d", "value": 4}},
    ])  # fmt: skip
    at = position_parse(s, f"{T0 + 5}.0")
    result = timetravel.snapshot_at(session=s, at=at)
    assert result["state"] == {"a": 1, "b": 2, "c": 3}
    assert result["event"]["state"]["path"] == "/c"  # the last event at or before t
    before = timetravel.snapshot_at(session=s, at=position_parse(s, f"{T0 - 1}.0"))
    assert before["state"] == {} and before["event"] is None and before["recent"] == []


def test_latest_keeps_the_last_event_per_key_and_counts_by_type_and_severity(shop):
    s = send(shop, "run", [
        {"ts": T0, "key": "temp::kitchen", "type": "mqtt", "payload": {"c": 20}},
        {"ts": T0 + 1, "key": "temp::hall", "type": "mqtt", "payload": {"c": 18}},
        {"ts": T0 + 2, "key": "temp::kitchen", "type": "mqtt", "payload": {"c": 21}},
        {"ts": T0 + 3, "type": "log", "severity": "error", "message": "boom"},
        {"ts": T0 + 4, "key": "temp::kitchen", "type": "mqtt", "payload": {"c": 22}},
    ])  # fmt: skip
    events = timeline(s)
    result = snap(s, events[3])
    assert {k: v["payload"] for k, v in result["latest"].items()} == {
        "temp::kitchen": {"c": 21},
        "temp::hall": {"c": 18},
    }
    assert result["counts"] == {
        "events": 4,
        "type": {"mqtt": 3, "log": 1},
        "severity": {"info": 3, "error": 1},
    }


def test_recent_is_the_last_20_events_before_t_oldest_first(shop):
    s = send(shop, "run", [{"ts": T0 + i, "message": f"m{i}"} for i in range(30)])
    events = timeline(s)
    result = snap(s, events[25])
    assert [e["message"] for e in result["recent"]] == [f"m{i}" for i in range(5, 25)]
    assert result["event"]["message"] == "m25"


def test_malformed_ops_are_reported_at_their_event_and_skipped(shop):
    s = send(shop, "run", [
        {"ts": T0, "state": {"op": "set", "path": "", "value": {"n": 1, "list": [1]}}},
        {"ts": T0 + 1, "state": {"op": "patch", "patch": [{"op": "test", "path": "/n", "value": 2}]}},
        {"ts": T0 + 2, "state": {"op": "set", "path": "/n/deeper", "value": 3}},
        {"ts": T0 + 3, "state": {"op": "patch", "patch": [{"op": "remove", "path": "/missing"}]}},
        {"ts": T0 + 4, "state": {"op": "merge", "value": {"ok": True}}},
    ])  # fmt: skip
    events = timeline(s)
    # Ingestion refuses structurally broken ops; an old row may still hold one.
    Event.objects.filter(id=events[4].id).update(state={"op": "explode"})
    result = snap(s, events[4])
    assert result["state"] == {"n": 1, "list": [1]}
    assert [e["event"] for e in result["errors"]] == [e.id for e in events[1:5]]
    assert "patch[0] (test /n) failed" in result["errors"][0]["error"]
    assert "/n is a number" in result["errors"][1]["error"]
    assert result["error_count"] == 4
    assert snap(s, events[1])["error_count"] == 1


def test_keyframes_bound_the_ops_a_snapshot_folds(shop):
    s = send(shop, "run", [
        {"ts": T0 + i, "state": {"op": "set", "path": f"/k{i % 7}", "value": i}} for i in range(100)
    ])  # fmt: skip
    created = timetravel.keyframes_build(session_id=s.id, every_ops=10, every_events=1000)
    assert created == 10
    assert list(
        Keyframe.objects.filter(session=s).order_by("ts").values_list("ops", flat=True)
    ) == [10 * i for i in range(1, 11)]
    events = timeline(s)
    for event in events:
        result = snap(s, event)
        assert result["cost"]["events_folded"] < 10
        assert result["state"] == oracle(s, at_event(event))[0].doc


def test_keyframes_also_cut_on_events_when_state_ops_are_rare(shop):
    s = send(shop, "run", [{"ts": T0 + i, "key": f"k{i % 3}"} for i in range(50)])
    assert timetravel.keyframes_build(session_id=s.id, every_ops=500, every_events=20) == 2
    assert snap(s, timeline(s)[-1])["cost"]["events_folded"] == 10


def test_a_late_event_removes_the_keyframes_after_it_and_rebuilding_restores_them(shop):
    ops = [
        {"ts": T0 + 10 * i, "state": {"op": "set", "path": "/last", "value": i}} for i in range(40)
    ]
    s = send(shop, "run", ops)
    timetravel.keyframes_build(session_id=s.id, every_ops=5, every_events=1000)
    assert Keyframe.objects.filter(session=s).count() == 8
    # Arrives last, belongs between the 12th and 13th op: keyframes at ops 15.. are stale.
    s = send(
        shop, "run", [{"ts": T0 + 115, "state": {"op": "set", "path": "/late", "value": True}}]
    )
    assert sorted(Keyframe.objects.filter(session=s).values_list("ops", flat=True)) == [5, 10]
    for event in timeline(s):
        assert snap(s, event)["state"] == oracle(s, at_event(event))[0].doc
    timetravel.keyframes_build(session_id=s.id, every_ops=5, every_events=1000)
    assert Keyframe.objects.filter(session=s).count() == 8
    assert snap(s, timeline(s)[-1])["state"] == {"last": 39, "late": True}


def test_the_drain_builds_keyframes_once_a_session_has_enough_events(shop, monkeypatch):
    monkeypatch.setattr(timetravel, "KEYFRAME_EVERY_OPS", 10)
    s = send(shop, "run", [
        {"ts": T0 + i, "state": {"op": "set", "path": "/i", "value": i}} for i in range(25)
    ])  # fmt: skip
    assert list(Keyframe.objects.filter(session=s).values_list("ops", flat=True)) == [10, 20]


def test_diff_is_a_patch_from_one_state_to_the_other_plus_changed_latest_keys(shop):
    s = send(shop, "run", [
        {"ts": T0, "key": "a", "state": {"op": "set", "path": "", "value": {"x": 1, "y": [1]}}},
        {"ts": T0 + 1, "key": "b", "state": {"op": "merge", "value": {"x": None, "z": 3}}},
        {"ts": T0 + 2, "key": "a", "severity": "warn", "state": {"op": "set", "path": "/y/1", "value": 2}},
    ])  # fmt: skip
    events = timeline(s)
    d = timetravel.diff_between(session=s, start=at_event(events[0]), end=at_event(events[2]))
    assert state.apply_op({"x": 1, "y": [1]}, {"op": "patch", "patch": d["state"]}) == {
        "y": [1, 2],
        "z": 3,
    }
    assert d["latest"]["a"]["from"]["id"] == events[0].id
    assert d["latest"]["a"]["to"]["id"] == events[2].id
    assert d["latest"]["b"]["from"] is None and d["latest"]["b"]["to"]["id"] == events[1].id
    assert d["counts"] == {"events": 2, "type": {"state": 2}, "severity": {"info": 1, "warn": 1}}
    back = timetravel.diff_between(session=s, start=at_event(events[2]), end=at_event(events[0]))
    assert state.apply_op({"y": [1, 2], "z": 3}, {"op": "patch", "patch": back["state"]}) == {
        "x": 1,
        "y": [1],
    }


def test_positions_are_event_ids_or_times(shop, other_app):
    s = send(shop, "run", [{"ts": T0}, {"ts": T0 + 1}])
    first = timeline(s)[0]
    assert position_parse(s, str(first.id)) == Position(T0 * 1_000_000, first.seq)
    assert position_parse(s, "2023-11-14T22:13:21Z").ts == (T0 + 1) * 1_000_000
    assert position_parse(s, f"{T0}.5").ts == T0 * 1_000_000 + 500_000
    with pytest.raises(timetravel.PositionError, match="neither an event id nor a time"):
        position_parse(s, "yesterday")
    elsewhere = send(other_app, "run", [{"ts": T0}])
    with pytest.raises(timetravel.PositionError, match="no event") as caught:
        position_parse(s, str(timeline(elsewhere)[0].id))
    assert caught.value.status == 404


def test_replay_schedules_events_at_scaled_gaps_and_shortens_idle_ones(shop):
    s = send(shop, "run", [{"ts": T0}, {"ts": T0 + 2}, {"ts": T0 + 3}, {"ts": T0 + 103}])
    now = [0.0]
    sent_at = []

    def sleep(seconds):
        now[0] += seconds

    stream = timetravel.replay_stream(
        session_id=s.id, speed=2.0, skip_idle=5.0, clock=lambda: now[0], sleep=sleep
    )
    for message in stream:
        if message.startswith(b"id:"):
            sent_at.append(now[0])
    assert sent_at == [0.0, 1.0, 1.5, 4.0]  # the 100 s gap counts as 5 s, all halved


# --------------------------------------------------------------------------
# Property: keyframes never change an answer, whatever order events arrive in
# --------------------------------------------------------------------------

KEYS = ["a", "b", "c"]
values = st.one_of(st.integers(-3, 3), st.sampled_from(["x", "y"]), st.none())
pointers = st.sampled_from(["/a", "/b", "/a/b", "/list/0", "/list/-", "/c/d"])
ops = st.one_of(
    st.builds(lambda p, v: {"op": "set", "path": p, "value": v}, pointers, values),
    st.builds(
        lambda v: {"op": "merge", "value": v},
        st.dictionaries(st.sampled_from(KEYS), values, max_size=2),
    ),
    st.builds(lambda: {"op": "set", "path": "/list", "value": []}),
    st.builds(
        lambda op, p, v: {"op": "patch", "patch": [{"op": op, "path": p, "value": v}]},
        st.sampled_from(["add", "replace", "test"]),
        pointers,
        values,
    ),
    st.builds(lambda p: {"op": "patch", "patch": [{"op": "remove", "path": p}]}, pointers),
)
events_st = st.lists(
    st.fixed_dictionaries(
        {"ts": st.integers(0, 30), "state": ops},
        optional={"key": st.sampled_from(KEYS), "severity": st.sampled_from(["info", "error"])},
    ),
    min_size=1,
    max_size=40,
)
_runs = itertools.count()


@hsettings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    batches=st.lists(events_st, min_size=1, max_size=4),
    build_between=st.lists(st.booleans(), min_size=4, max_size=4),
    picks=st.lists(st.integers(0, 10_000), min_size=1, max_size=6),
    times=st.lists(st.integers(-1, 31), max_size=3),
    every=st.integers(1, 6),
)
def test_snapshots_with_keyframes_equal_a_full_fold_even_with_late_events(
    shop, batches, build_between, picks, times, every
):
    key = f"prop-{next(_runs)}"
    for batch, build in zip(batches, build_between, strict=False):
        # ts from 0..30 in every batch: later batches land in the middle of the timeline.
        session = send(shop, key, [dict(e, ts=T0 + e["ts"]) for e in batch])
        if build:
            timetravel.keyframes_build(
                session_id=session.id, every_ops=every, every_events=every * 3
            )
    events = timeline(session)
    positions = [at_event(events[p % len(events)]) for p in picks]
    positions += [Position((T0 + t) * 1_000_000, timetravel.SEQ_MAX) for t in times]
    for pos in positions:
        result = timetravel.snapshot_at(session=session, at=pos)
        folded, latest, counts = oracle(session, pos)
        assert result["state"] == folded.doc
        assert result["errors"] == folded.errors[-timetravel.MAX_ERRORS :]
        assert {k: v["id"] for k, v in result["latest"].items()} == latest
        assert result["counts"] == counts
    # No keyframe left behind by a late event: each equals the fold at its position.
    for kf in Keyframe.objects.filter(session=session):
        assert kf.state == oracle(session, Position(kf.ts, kf.seq))[0].doc

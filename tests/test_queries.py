"""Selectors in recorder.queries: every filter, the filter bar, keyset pages, full text.

Events go in through the ingestion API (drained inline under pytest), so full-text
search is tested against the index the drain fills, not a LIKE fallback.
"""

from datetime import UTC, datetime

import pytest
from django.db import connection

from recorder import queries
from recorder.models import Event, Session, Severity
from recorder.queries import EventFilters, FilterError, parse_event_filters, parse_filter_bar

pytestmark = pytest.mark.django_db(databases="__all__")

T0 = 1_700_000_000


def ev(i, **fields):
    return {"session": "run-1", "type": "log", "ts": T0 + i, "message": f"m{i}", **fields}


@pytest.fixture
def timeline(ingest, shop):
    events = [
        ev(0, type="http", severity="info", source="net", correlation_id="c1",
           message="GET /api/cart -> 200", payload={"method": "GET", "status": 200, "url": "/api/cart"}),
        ev(1, type="http", severity="error", source="net", correlation_id="c1",
           message="POST /api/checkout -> 503", payload={"method": "POST", "status": 503}),
        ev(2, type="mqtt", source="broker", key="temp::kitchen",
           payload={"topic": "sensors/kitchen/temperature", "value": 21.5}),
        ev(3, type="mqtt", source="gps", key="accuracy::vienna",
           payload={"topic": "gps/vienna/fix", "accuracy_m": 4.5}),
        ev(4, type="ui", actor="ada", source="ui", message="tap checkout",
           payload={"target": "checkout", "status": "600"}),
        ev(5, type="log", severity="warn", source="core", message="retrying request after timeout"),
        ev(6, type="log", severity="fatal", source="core", message="IndexError in CheckoutViewModel",
           payload={"exception": "IndexError", "flag": True}),
        ev(7, type="mqtt", source="broker", key="temp::garage",
           payload={"topic": "sensors/garage/temperature", "value": 17}),
    ]  # fmt: skip
    assert ingest.post(events).status_code == 202
    return Session.objects.get(application=shop, key="run-1")


def run(session, **kwargs) -> list[int]:
    """Seconds offsets (ts - T0) of the session's events matching EventFilters(**kwargs)."""
    qs = queries.filter_events(
        Event.objects.filter(session=session), EventFilters(**kwargs), session_id=session.id
    )
    return [int(e.ts.timestamp()) - T0 for e in qs.order_by("ts", "seq")]


def bar(session, text) -> list[int]:
    qs = queries.filter_events(
        Event.objects.filter(session=session), parse_filter_bar(text), session_id=session.id
    )
    return [int(e.ts.timestamp()) - T0 for e in qs.order_by("ts", "seq")]


# --- single filters ----------------------------------------------------------------------


def test_no_filter_returns_the_whole_timeline_in_order(timeline):
    assert run(timeline) == list(range(8))


def test_type_filter_takes_several_types(timeline):
    assert run(timeline, types=["http"]) == [0, 1]
    assert run(timeline, types=["http", "ui"]) == [0, 1, 4]


def test_min_severity_keeps_that_level_and_above(timeline):
    assert run(timeline, min_severity=Severity.WARN) == [1, 5, 6]
    assert run(timeline, min_severity=Severity.FATAL) == [6]


def test_source_filter_matches_exactly_or_by_wildcard(timeline):
    assert run(timeline, sources=["core"]) == [5, 6]
    assert run(timeline, sources=["b*"]) == [2, 7]


def test_key_wildcard_matches_prefixes_and_inner_stars(timeline):
    assert run(timeline, key="temp::*") == [2, 7]
    assert run(timeline, key="*::vienna") == [3]
    assert run(timeline, key="temp::kitchen") == [2]
    assert run(timeline, key="TEMP::*") == []  # keys are case-sensitive


def test_key_wildcard_treats_other_pattern_characters_literally(timeline):
    assert run(timeline, key="temp::?itchen") == []
    assert run(timeline, key="temp::%") == []


def test_correlation_and_actor_filters(timeline):
    assert run(timeline, correlation_id="c1") == [0, 1]
    assert run(timeline, actor="ada") == [4]


def test_time_range_is_since_inclusive_until_exclusive(timeline):
    since = datetime.fromtimestamp(T0 + 2, UTC)
    until = datetime.fromtimestamp(T0 + 5, UTC)
    assert run(timeline, since=since, until=until) == [2, 3, 4]


# --- payload conditions ------------------------------------------------------------------


def cond(text):
    return [queries.parse_condition(text)]


def test_numeric_payload_comparison_is_numeric_and_ignores_strings(timeline):
    assert run(timeline, where=cond("status>=500")) == [1]  # "600" is a string: no match
    assert run(timeline, where=cond("status<300")) == [0]
    assert run(timeline, where=cond("value>20")) == [2]
    assert run(timeline, where=cond("accuracy_m<=4.5")) == [3]


def test_payload_equality_matches_strings_numbers_and_booleans(timeline):
    assert run(timeline, where=cond("method=POST")) == [1]
    assert run(timeline, where=cond("status=503")) == [1]
    assert run(timeline, where=cond("status=600")) == [4]  # the string "600"
    assert run(timeline, where=cond("value=17")) == [7]
    assert run(timeline, where=cond("flag=true")) == [6]


def test_payload_not_equal_needs_the_field_to_exist(timeline):
    assert run(timeline, where=cond("method!=GET")) == [1]


def test_payload_wildcard_condition(timeline):
    assert run(timeline, where=cond("topic~sensors/*")) == [2, 7]
    assert run(timeline, where=cond("topic~*/fix")) == [3]


def test_payload_conditions_combine_with_and(timeline):
    assert run(timeline, where=cond("method=POST") + cond("status>=500")) == [1]
    assert run(timeline, where=cond("method=GET") + cond("status>=500")) == []


def test_bad_payload_conditions_name_the_token():
    with pytest.raises(FilterError, match="status>=abc"):
        queries.parse_condition("status>=abc")
    with pytest.raises(FilterError, match="where"):
        queries.parse_condition("no operator here")
    with pytest.raises(FilterError, match="a.b c"):
        queries.parse_condition("a.b c=1")


# --- full text ---------------------------------------------------------------------------


def test_full_text_finds_words_in_message_and_payload(timeline):
    assert run(timeline, q="checkout") == [1, 4]  # message "POST /api/checkout", "tap checkout"
    assert run(timeline, q="IndexError") == [6]  # message and payload
    assert run(timeline, q="kitchen") == [2]  # only in the payload
    assert run(timeline, q="retrying timeout") == [5]  # every word must occur
    assert run(timeline, q="retry*") == [5]  # prefix
    assert run(timeline, q="nothing-like-this") == []


def test_full_text_is_not_confused_by_search_syntax(timeline):
    assert run(timeline, q='NEAR("a" OR) message:') == []
    assert run(timeline, q="   ") == list(range(8))


def test_full_text_words_joined_by_underscores_or_dashes_are_separate_words(timeline, ingest, shop):
    # The index keeps no positions (no phrase queries), so "index_error" must become
    # two ANDed words rather than a phrase.
    ingest.post([{"session": "run-3", "type": "log", "ts": T0, "message": "low_memory warning"}])
    other = Session.objects.get(application=shop, key="run-3")
    assert run(other, q="low_memory") == [0]
    assert run(other, q="memory-low") == [0]
    assert run(other, q="low_disk") == []


def test_full_text_uses_the_index(timeline):
    qs = queries.filter_events(Event.objects.all(), EventFilters(q="kitchen"))
    sql = str(qs.query)
    if connection.vendor == "sqlite":
        assert "recorder_event_fts MATCH" in sql
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM recorder_event_fts WHERE recorder_event_fts MATCH 'kitchen'"
            )
            assert cursor.fetchone()[0] == 1
    else:
        assert "to_tsquery" in sql


def test_full_text_keeps_no_per_row_sizes(timeline):
    # Nothing ranks by bm25(), so FTS5's docsize table (a row per event) is not kept.
    if connection.vendor != "sqlite":
        pytest.skip("SQLite FTS5 option")
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM sqlite_master WHERE name LIKE 'recorder_event_fts%'")
        tables = {row[0] for row in cursor.fetchall()}
    assert "recorder_event_fts" in tables
    assert "recorder_event_fts_docsize" not in tables


def test_full_text_stays_inside_the_session(timeline, ingest, shop):
    ingest.post([{"session": "run-2", "type": "log", "ts": T0, "message": "kitchen sink"}])
    other = Session.objects.get(application=shop, key="run-2")
    assert run(timeline, q="kitchen") == [2]
    assert run(other, q="kitchen") == [0]


def test_deleted_events_leave_the_full_text_index(timeline):
    Event.objects.filter(session=timeline, seq=3).delete()  # the "kitchen" event
    assert queries.filter_events(Event.objects.all(), EventFilters(q="kitchen")).count() == 0


# --- parameters and the filter bar --------------------------------------------------------


def test_query_parameters_parse_into_filters():
    f = parse_event_filters(
        {"type": ["http", "log,ui"], "severity": "warn", "source": "net", "key": "a::*",
         "correlation_id": "c", "actor": "ada", "since": "2026-01-01T00:00:00Z",
         "until": "1767312000", "q": "timeout", "where": ["status>=500", "method=POST"]}
    )  # fmt: skip
    assert f.types == ["http", "log", "ui"]
    assert f.min_severity == Severity.WARN
    assert f.sources == ["net"] and f.key == "a::*" and f.correlation_id == "c"
    assert f.since == datetime(2026, 1, 1, tzinfo=UTC)
    assert f.until == datetime(2026, 1, 2, tzinfo=UTC)
    assert [str(c) for c in f.where] == ["status>=500", "method=POST"]
    assert parse_event_filters(f.to_params()) == f


def test_query_parameters_work_with_a_querydict():
    from django.http import QueryDict

    f = parse_event_filters(QueryDict("type=http&type=log&where=status%3E%3D500"))
    assert f.types == ["http", "log"] and str(f.where[0]) == "status>=500"


@pytest.mark.parametrize(
    ("params", "named"),
    [({"severity": "loud"}, "severity"), ({"since": "yesterday"}, "since"),
     ({"where": "status>>5"}, "where"), ({"filter": "colour:red"}, "colour")],
)  # fmt: skip
def test_bad_parameters_raise_filter_error_naming_them(params, named):
    with pytest.raises(FilterError, match=named):
        parse_event_filters(params)


def test_filter_bar_reads_fields_conditions_and_free_text():
    f = parse_filter_bar(
        "type:http type:log severity:>=warn status>=500 topic~sensors/* key:temp::* "
        'actor:ada correlation:c1 source:net "two words" free'
    )
    assert f.types == ["http", "log"]
    assert f.min_severity == Severity.WARN
    assert [str(c) for c in f.where] == ["status>=500", "topic~sensors/*"]
    assert f.key == "temp::*" and f.actor == "ada" and f.correlation_id == "c1"
    assert f.sources == ["net"]
    assert f.q == "two words free"


def test_filter_bar_relative_time_and_urls_as_free_text():
    f = parse_filter_bar("since:-15m https://shop.example.com/x")
    assert f.since is not None and (datetime.now(UTC) - f.since).total_seconds() > 800
    assert f.q == "https://shop.example.com/x"


def test_filter_bar_errors_name_the_token():
    with pytest.raises(FilterError, match="severity:>=loud"):
        parse_filter_bar("severity:>=loud")
    with pytest.raises(FilterError, match="type:"):
        parse_filter_bar("type:")
    with pytest.raises(FilterError, match="quotes"):
        parse_filter_bar('"open')


def test_filter_bar_runs_against_the_database(timeline):
    assert bar(timeline, "type:http status>=500") == [1]
    assert bar(timeline, "type:mqtt topic~sensors/*") == [2, 7]
    assert bar(timeline, "severity:>=error indexerror") == [6]


# --- keyset pages --------------------------------------------------------------------------


@pytest.fixture
def long_session(ingest, shop):
    # Three events share each timestamp, so seq must break the ties.
    events = [ev(i // 3, message=f"m{i}", type="http" if i % 2 else "log") for i in range(25)]
    ingest.post(events)
    return Session.objects.get(application=shop, key="run-1")


def msgs(page):
    return [e.message for e in page.items]


def test_pages_walk_forward_across_equal_timestamps(long_session):
    qs = Event.objects.filter(session=long_session)
    seen, cursor = [], None
    while True:
        page = queries.events_page(qs, after=cursor, limit=7)
        seen += msgs(page)
        if not page.next_cursor:
            break
        cursor = page.next_cursor
    assert seen == [f"m{i}" for i in range(25)]


def test_pages_walk_backward_from_the_last_page(long_session):
    qs = Event.objects.filter(session=long_session)
    page = queries.events_page(qs, last=True, limit=7)
    assert msgs(page) == [f"m{i}" for i in range(18, 25)]
    assert page.next_cursor is None and page.prev_cursor
    seen = msgs(page)
    while page.prev_cursor:
        page = queries.events_page(qs, before=page.prev_cursor, limit=7)
        seen = msgs(page) + seen
    assert seen == [f"m{i}" for i in range(25)]
    assert page.next_cursor  # the first page still knows there is more after it


def test_first_page_has_no_previous_and_exact_fit_has_no_next(long_session):
    qs = Event.objects.filter(session=long_session)
    page = queries.events_page(qs, limit=25)
    assert len(page.items) == 25 and page.next_cursor is None and page.prev_cursor is None
    assert queries.events_page(qs, limit=24).next_cursor


def test_an_empty_page_has_no_cursors(long_session):
    qs = Event.objects.filter(session=long_session, type="nope")
    page = queries.events_page(qs, limit=10)
    assert page.items == [] and page.next_cursor is None and page.prev_cursor is None


def test_jump_to_a_time_starts_at_the_first_event_at_or_after_it(long_session):
    qs = Event.objects.filter(session=long_session)
    page = queries.events_page(qs, start=datetime.fromtimestamp(T0 + 5, UTC), limit=4)
    assert msgs(page) == ["m15", "m16", "m17", "m18"]
    assert page.prev_cursor and page.next_cursor


def test_pages_with_a_filter_follow_the_filter(long_session):
    qs = queries.filter_events(
        Event.objects.filter(session=long_session), EventFilters(types=["http"])
    )
    first = queries.events_page(qs, limit=5)
    second = queries.events_page(qs, after=first.next_cursor, limit=5)
    assert msgs(first) + msgs(second) == [f"m{i}" for i in range(1, 21, 2)]


def test_around_an_event_puts_it_on_the_page_with_both_cursors(long_session):
    qs = Event.objects.filter(session=long_session)
    target = qs.get(message="m12")
    page = queries.events_around(qs, target, limit=9)
    assert "m12" in msgs(page) and msgs(page)[3] == "m12"
    assert page.prev_cursor and page.next_cursor


def test_a_bad_cursor_is_a_400():
    from ninja.errors import HttpError

    with pytest.raises(HttpError):
        queries.events_page(Event.objects.all(), after="not-a-cursor")


def test_iter_events_yields_everything_in_order(long_session):
    qs = Event.objects.filter(session=long_session)
    assert [e.message for e in queries.iter_events(qs, chunk=4)] == [f"m{i}" for i in range(25)]


def test_histogram_counts_by_bucket_and_severity(timeline):
    qs = Event.objects.filter(session=timeline)
    start = datetime.fromtimestamp(T0, UTC)
    end = datetime.fromtimestamp(T0 + 7, UTC)
    h = queries.histogram(qs, start=start, end=end, buckets=4)
    assert len(h["buckets"]) == 4
    assert sum(sum(b["counts"].values()) for b in h["buckets"]) == 8
    assert h["buckets"][0]["counts"]["error"] == 1  # ev 1 in the first two seconds
    assert h["buckets"][3]["counts"]["fatal"] == 1  # ev 6


# --- sessions -------------------------------------------------------------------------------


@pytest.fixture
def sessions(ingest, shop, other_app):
    ingest.post({"session": {"key": "a", "app_version": "1.0", "device": "Pixel 7"},
                 "events": [{"type": "log", "ts": T0, "message": "x"}]})  # fmt: skip
    ingest.post({"session": {"key": "b", "app_version": "2.0", "host": "gw17"},
                 "events": [{"type": "log", "ts": T0 + 60, "severity": "fatal"},
                            {"type": "log", "ts": T0 + 61}]})  # fmt: skip
    Session.objects.create(
        application=other_app, key="c", started_at=datetime.fromtimestamp(T0 + 120, UTC)
    )
    return Session.objects.all()


def keys(qs, **params):
    f = queries.parse_session_filters(params)
    return [s.key for s in queries.filter_sessions(qs, f).order_by("started_at")]


def test_session_filters(sessions):
    assert keys(sessions, app="shop") == ["a", "b"]
    assert keys(sessions, environment="staging") == ["c"]
    assert keys(sessions, version="2.0") == ["b"]
    assert keys(sessions, version="1.*") == ["a"]
    assert keys(sessions, status="crashed") == ["b"]
    assert keys(sessions, status="open,ended") == ["a", "c"]
    assert keys(sessions, since=str(T0 + 30)) == ["b", "c"]
    assert keys(sessions, until=str(T0 + 30)) == ["a"]
    assert keys(sessions, q="pixel") == ["a"]
    assert keys(sessions, q="gw17") == ["b"]
    with pytest.raises(FilterError, match="status"):
        queries.parse_session_filters({"status": "zombie"})


def test_session_pages_sort_and_continue(sessions):
    items, cursor = queries.sessions_page(sessions, limit=2)
    assert [s.key for s in items] == ["c", "b"]
    items, cursor = queries.sessions_page(sessions, limit=2, cursor=cursor)
    assert [s.key for s in items] == ["a"] and cursor is None
    items, cursor = queries.sessions_page(sessions, limit=1, sort="-events")
    assert [s.key for s in items] == ["b"]
    items, _ = queries.sessions_page(sessions, limit=5, sort="-events", cursor=cursor)
    assert [s.key for s in items] == ["a", "c"]

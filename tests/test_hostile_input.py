"""Hostile and malformed bodies against POST /api/v1/events (Django test client).

Every case must be answered with a clear 4xx (a `detail` that says what was wrong) or be
accepted as documented in docs/reliability.md; valid items in the same batch are kept;
and the server still ingests afterwards. The test client re-raises exceptions from the
view, so a 500 fails the test with its traceback instead of hiding behind a status.

CASES is a table so other ingestion endpoints (OTLP /v1/logs, /v1/traces, the logging
handler at /ingest/logging) can get their own rows: each row names a path, a body, a
content type and the status expected.
"""

import gzip
import resource
import time
import zlib

import orjson
import pytest
from django.test import override_settings

from recorder.models import Event, InboxBatch, Session

pytestmark = pytest.mark.django_db(databases="__all__")

EVENTS = "/api/v1/events"
GOOD = {"session": "s", "type": "log", "ts": 1_700_000_000, "message": "good"}


def nested(depth: int, leaf: bytes = b"1") -> bytes:
    return b"[" * depth + leaf + b"]" * depth


def nested_obj(depth: int) -> bytes:
    """An object `depth` levels deep, as JSON text (orjson will not serialize past 254)."""
    return b'{"a":' * (depth - 1) + b'{"leaf":1}' + b"}" * (depth - 1)


DEEP = "__deep__"


def with_deep(doc, deep: bytes) -> bytes:
    """doc as JSON with the string DEEP replaced by the raw deep JSON text."""
    return orjson.dumps(doc).replace(b'"' + DEEP.encode() + b'"', deep)


def assert_still_serving(ingest):
    r = ingest.post([{**GOOD, "message": "after"}])
    assert r.status_code == 202, r.content
    assert Event.objects.filter(message="after").exists()


def detail(r) -> str:
    body = r.json()
    assert isinstance(body.get("detail"), str) and body["detail"], body
    return body["detail"]


# --- Whole-body refusals: (id, path, body, content type, headers, status, words in detail)
CASES = [
    ("invalid-utf8-in-json-string", EVENTS, b'[{"session": "s", "type": "log", "message": "\xff\xfe"}]',
     "application/json", {}, 400, "UTF-8"),
    ("lone-surrogate-escape", EVENTS, b'[{"session": "s", "type": "log", "message": "\\ud800"}]',
     "application/json", {}, 400, "not valid JSON"),
    ("truncated-gzip", EVENTS, gzip.compress(orjson.dumps([GOOD] * 50))[:-20],
     "application/json", {"HTTP_CONTENT_ENCODING": "gzip"}, 400, "truncated"),
    ("garbage-declared-gzip", EVENTS, b"this is not gzip at all",
     "application/json", {"HTTP_CONTENT_ENCODING": "gzip"}, 400, "not valid gzip"),
    ("unsupported-encoding", EVENTS, orjson.dumps([GOOD]),
     "application/json", {"HTTP_CONTENT_ENCODING": "br"}, 415, "Content-Encoding"),
    ("nesting-10000-levels", EVENTS, nested(10_000), "application/json", {}, 400, "depth"),
    ("nan", EVENTS, b'[{"session": "s", "type": "log", "payload": {"x": NaN}}]',
     "application/json", {}, 400, "not valid JSON"),
    ("infinity", EVENTS, b'[{"session": "s", "type": "log", "payload": {"x": Infinity}}]',
     "application/json", {}, 400, "not valid JSON"),
    ("number-overflowing-double", EVENTS, b'[{"session": "s", "type": "log", "payload": {"x": 1e400}}]',
     "application/json", {}, 400, "infinity"),
    ("empty-body", EVENTS, b"", "application/json", {}, 400, "not valid JSON"),
    ("json-string-body", EVENTS, b'"hello"', "application/json", {}, 400, "JSON array"),
    ("json-number-body", EVENTS, b"42", "application/json", {}, 400, "JSON array"),
    ("object-without-events", EVENTS, b'{"hello": 1}', "application/json", {}, 400, "events"),
    ("events-not-an-array", EVENTS, b'{"events": {"type": "log"}}', "application/json", {}, 400,
     "array"),
    ("session-header-wrong-type", EVENTS, b'{"session": 5, "events": []}', "application/json", {},
     400, "session"),
    ("text-plain", EVENTS, orjson.dumps([GOOD]), "text/plain", {}, 415, "Content-Type"),
    ("form-urlencoded", EVENTS, b"a=1&b=2", "application/x-www-form-urlencoded", {}, 415,
     "Content-Type"),
    ("xml", EVENTS, b"<events/>", "application/xml", {}, 415, "Content-Type"),
    ("no-valid-item", EVENTS, b'[{"type": "log"}, 5, "x"]', "application/json", {}, 400,
     "no valid events"),
]  # fmt: skip


@pytest.mark.parametrize(
    "path, body, content_type, headers, status, words",
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_malformed_bodies_get_a_clear_4xx_and_the_server_keeps_going(
    ingest, path, body, content_type, headers, status, words
):
    r = ingest.post(body, content_type=content_type, path=path, headers=headers)
    assert r.status_code == status, r.content
    assert words.lower() in detail(r).lower()
    assert Event.objects.count() == 0
    assert InboxBatch.objects.count() == 0
    assert_still_serving(ingest)


# GET /api/v1/events is the cross-session read (write keys get 401 there).
@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
def test_wrong_methods_are_405(client, shop_key, method):
    r = client.generic(method, EVENTS, b"[]", HTTP_X_API_KEY=shop_key)
    assert r.status_code == 405


def test_a_missing_key_is_401_before_the_body_is_looked_at(ingest):
    r = ingest.post(nested(10_000), key="")
    assert r.status_code == 401
    assert "API key" in detail(r)


# --- gzip --------------------------------------------------------------------------------


def test_a_gzip_bomb_is_refused_with_413_without_inflating_it_all(ingest, settings):
    settings.FLIGHTREC_MAX_BODY_BYTES = 1024 * 1024
    body = zlib.compress(b"[" + b" " * (200 * 1024 * 1024) + b"]", 9)  # 200 MB of spaces
    assert len(body) < 300_000  # a ratio above 600:1
    started = time.perf_counter()
    r = ingest.post(body, headers={"HTTP_CONTENT_ENCODING": "deflate"})
    assert r.status_code == 413
    assert "inflates past the limit" in detail(r)
    # Bounded inflation: stopping at the limit takes milliseconds, not the whole 200 MB.
    assert time.perf_counter() - started < 2
    assert_still_serving(ingest)


def test_a_high_ratio_body_within_the_limit_is_accepted(ingest):
    # 5 MB of whitespace around one event: legal JSON, ratio ~1000:1, under 10 MB inflated.
    raw = b"[" + b" " * (5 * 1024 * 1024) + orjson.dumps(GOOD) + b"]"
    r = ingest.post(raw, gzipped=True)
    assert r.status_code == 202, r.content
    assert r.json()["accepted"] == 1


def test_a_body_over_the_limit_is_413(ingest, settings):
    settings.FLIGHTREC_MAX_BODY_BYTES = 64 * 1024
    r = ingest.post(orjson.dumps([{**GOOD, "message": "x" * 70_000}]))
    assert r.status_code == 413
    assert "limit" in detail(r)


# --- NDJSON: a bad line is one rejected item, not a failed batch ----------------------


@pytest.mark.parametrize(
    "bad_line, words",
    [
        (b'{"session": "s", "type": "log", "message": "\xff"}', "UTF-8"),
        (nested(10_000), "depth"),
        (b'{"session": "s", "type": "log", "payload": {"x": NaN}}', "not valid JSON"),
        (b'{"session": "s", "type": "log"', "not valid JSON"),
    ],
    ids=["invalid-utf8", "nesting-10000-levels", "nan", "truncated-line"],
)
def test_a_hostile_ndjson_line_is_rejected_alone(ingest, bad_line, words):
    lines = [orjson.dumps({**GOOD, "message": "first"}), bad_line,
             orjson.dumps({**GOOD, "message": "third"})]  # fmt: skip
    r = ingest.post(b"\n".join(lines), content_type="application/x-ndjson")
    assert r.status_code == 202, r.content
    body = r.json()
    assert body["accepted"] == 2
    assert [x["index"] for x in body["rejected"]] == [1]
    assert words.lower() in body["rejected"][0]["error"].lower()
    assert set(Event.objects.values_list("message", flat=True)) == {"first", "third"}


# --- Deep but allowed nesting (orjson parses up to 1024 levels) ---------------------------


@pytest.mark.parametrize(
    "field, value",
    [
        ("payload", DEEP),
        ("state", {"op": "set", "path": "/x", "value": DEEP}),
        ("state", {"op": "merge", "value": DEEP}),
        ("state", {"op": "patch", "patch": [{"op": "add", "path": "/x", "value": DEEP}]}),
    ],
    ids=["payload", "state-set", "state-merge", "state-patch"],
)
@pytest.mark.parametrize("depth", [200, 1000])
def test_deep_but_parseable_fields_are_accepted_and_cut_at_a_documented_depth(
    ingest, field, value, depth
):
    body = with_deep([{**GOOD, field: value}, {**GOOD, "message": "sibling"}], nested_obj(depth))
    r = ingest.post(body)
    assert r.status_code == 202, r.content
    assert r.json()["accepted"] == 2
    stored = Event.objects.exclude(message="sibling").get()
    assert Event.objects.filter(message="sibling").exists()
    if field == "payload":  # cut at the redaction's depth limit, and said so
        assert any("(too deep)" in path for path in stored.redacted)
        assert "[Filtered]" in orjson.dumps(stored.payload).decode()
    # What is stored stays serializable and readable through the API.
    assert orjson.dumps(
        {"payload": stored.payload, "state": stored.state, "message": stored.message}
    )


def test_a_json_message_is_kept_as_text_up_to_254_levels_and_rejected_alone_past_that(ingest):
    body = with_deep([{**GOOD, "message": DEEP}], nested_obj(200))
    assert ingest.post(body).json() == {"accepted": 1, "rejected": []}
    assert Event.objects.get().message.startswith('{"a":{"a":')
    body = with_deep([{**GOOD, "message": DEEP}, {**GOOD, "message": "kept"}], nested_obj(1000))
    r = ingest.post(body)
    assert r.status_code == 202, r.content
    assert r.json()["rejected"] == [
        {"index": 0, "error": "message is nested too deeply: send it as a string"}
    ]
    assert Event.objects.filter(message="kept").exists()


def test_a_deep_json_http_body_given_as_text_is_accepted(ingest, shop):
    # With body capture on, the redaction parses bodies that look like JSON: a body of
    # 100,000 nested arrays must not exhaust the interpreter stack.
    shop.redaction = {"capture_bodies": True}
    shop.save()
    text = nested(100_000).decode()
    event = {**GOOD, "type": "http", "payload": {"request_body": text}}
    r = ingest.post([event])
    assert r.status_code == 202, r.content


def test_a_batch_session_that_no_event_belongs_to_is_created_and_does_not_block_the_drain(
    ingest,
):
    r = ingest.post({"session": {"key": "header", "device": "x"},
                     "events": [{**GOOD, "session": "own"}]})  # fmt: skip
    assert r.status_code == 202, r.content
    assert InboxBatch.objects.count() == 0  # drained, not stuck
    assert Session.objects.get(key="header").metadata == {"device": "x"}
    assert Session.objects.get(key="own").event_count == 1


def test_deep_session_metadata_is_accepted(ingest):
    body = {"session": {"key": "deep", "meta": DEEP}, "events": [{"type": "log"}]}
    r = ingest.post(with_deep(body, nested_obj(900)))
    assert r.status_code == 202, r.content
    assert orjson.dumps(Session.objects.get(key="deep").metadata)


# --- Sizes ---------------------------------------------------------------------------------


def test_a_huge_message_within_the_body_limit_is_stored_whole(ingest):
    big = "x" * (8 * 1024 * 1024)
    r = ingest.post([{**GOOD, "message": big}])
    assert r.status_code == 202, r.content
    assert len(Event.objects.get().message) == len(big)


def test_a_huge_array_payload_is_accepted(ingest):
    values = list(range(1_000_000))
    r = ingest.post([{**GOOD, "payload": {"values": values}}])
    assert r.status_code == 202, r.content
    assert Event.objects.get().payload["values"][-1] == 999_999


def test_over_long_identifiers_are_rejected_per_item(ingest):
    batch = [
        {**GOOD, "session": "s" * 129},
        {**GOOD, "type": "t" * 65},
        {**GOOD, "id": "i" * 65},
        {**GOOD, "source": "x" * 129},
        {**GOOD, "message": "kept"},
    ]
    r = ingest.post(batch)
    assert r.status_code == 202, r.content
    assert [x["index"] for x in r.json()["rejected"]] == [0, 1, 2, 3]
    assert list(Event.objects.values_list("message", flat=True)) == ["kept"]


def test_a_100000_event_batch_is_accepted_in_bounded_time_and_memory(ingest, settings):
    assert settings.FLIGHTREC_MAX_BATCH_EVENTS == 100_000
    events = [{"type": "log", "id": str(i), "message": f"m{i}"} for i in range(100_000)]
    body = orjson.dumps({"session": "big", "events": events})
    assert len(body) < settings.FLIGHTREC_MAX_BODY_BYTES
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB, a peak
    started = time.perf_counter()
    r = ingest.post(body)
    elapsed = time.perf_counter() - started
    assert r.status_code == 202, r.content[:300]
    assert r.json() == {"accepted": 100_000, "rejected": []}
    assert Session.objects.get(key="big").event_count == 100_000
    # Generous bounds (the drain runs inline here): a regression to per-event queries or
    # to copies of the whole batch per item would blow through them.
    assert elapsed < 60
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    assert grown_mib < 600


def test_one_event_over_the_batch_limit_is_413(ingest):
    with override_settings(FLIGHTREC_MAX_BATCH_EVENTS=10):
        r = ingest.post([GOOD] * 11)
    assert r.status_code == 413
    assert "limit is 10" in detail(r)


# --- Values --------------------------------------------------------------------------------


def test_empty_batches_are_accepted_as_nothing(ingest):
    for body, ctype in [
        (b"[]", "application/json"),
        (b'{"session": "s", "events": []}', "application/json"),
        (b"\n\n  \n", "application/x-ndjson"),
    ]:
        r = ingest.post(body, content_type=ctype)
        assert r.status_code == 202, (body, r.content)
        assert r.json() == {"accepted": 0, "rejected": []}
    assert InboxBatch.objects.count() == 0
    assert Session.objects.count() == 0


@pytest.mark.parametrize(
    "ts",
    ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "2100-01-01T00:00:00Z", -1, 1e300,
     1.7976931348623157e308, -1.7976931348623157e308,
     1_700_000_000_000, "2026-13-45T00:00:00Z", "yesterday", True, [], {}],
    ids=["year-1", "year-9999", "year-2100", "negative", "1e300", "max-double", "min-double",
         "milliseconds",
         "month-13", "words", "bool", "list", "object"],
)  # fmt: skip
def test_timestamps_out_of_range_or_malformed_are_rejected_per_item(ingest, ts):
    r = ingest.post([{**GOOD, "ts": ts}, {**GOOD, "message": "kept"}])
    assert r.status_code == 202, r.content
    assert [x["index"] for x in r.json()["rejected"]] == [0]
    assert "ts" in r.json()["rejected"][0]["error"]
    assert list(Event.objects.values_list("message", flat=True)) == ["kept"]


def test_timestamps_at_the_edges_of_the_range_are_kept(ingest):
    r = ingest.post([{**GOOD, "ts": 0}, {**GOOD, "ts": "2099-12-31T23:59:59.999999Z"}])
    assert r.json() == {"accepted": 2, "rejected": []}


def test_integers_beyond_64_bits_are_kept_as_doubles(ingest):
    # Documented: like JavaScript clients would read them, integers outside
    # [-2**63, 2**64) become IEEE doubles; within it they are exact.
    body = (
        b'[{"session": "s", "type": "log", "payload": {"big": 123456789012345678901234567890,'
        b' "u64": 18446744073709551615, "i64": -9223372036854775808}}]'
    )
    r = ingest.post(body)
    assert r.status_code == 202, r.content
    payload = Event.objects.get().payload
    assert payload["u64"] == 2**64 - 1
    assert payload["i64"] == -(2**63)
    assert payload["big"] == pytest.approx(1.2345678901234568e29)


@pytest.mark.parametrize("field", ["ts", "severity", "id"])
def test_integers_beyond_64_bits_in_envelope_fields_are_rejected_per_item(ingest, field):
    body = (
        b'[{"session": "s", "type": "log", "' + field.encode() + b'": 1' + b"0" * 30 + b"},"
        b' {"session": "s", "type": "log", "message": "kept"}]'
    )
    r = ingest.post(body)
    assert r.status_code == 202, r.content
    assert [x["index"] for x in r.json()["rejected"]] == [0]


def test_duplicate_keys_keep_the_last_value(ingest):
    r = ingest.post(b'[{"session": "a", "type": "log", "message": "one", "message": "two",'
                    b' "session": "b"}]')  # fmt: skip
    assert r.status_code == 202, r.content
    event = Event.objects.select_related("session").get()
    assert (event.message, event.session.key) == ("two", "b")


def test_unknown_fields_are_ignored_and_the_event_is_kept(ingest):
    r = ingest.post([{**GOOD, "colour": "blue", "__proto__": {"x": 1}, "seq": 99, "uid": "x"}])
    assert r.json() == {"accepted": 1, "rejected": []}
    event = Event.objects.get()
    assert event.seq == 1  # server-assigned, not the client's
    assert event.uid != "x"


def test_nul_characters_and_control_bytes_are_stored_without_breaking_the_batch(ingest):
    r = ingest.post([{**GOOD, "message": "a\u0000b\u0007c", "payload": {"k\u0000": "v\u0000"}}])
    assert r.status_code == 202, r.content
    assert Event.objects.count() == 1
    assert_still_serving(ingest)


def test_wrong_types_in_envelope_fields_are_rejected_per_item(ingest):
    batch = [
        {**GOOD, "type": 5},
        {**GOOD, "type": ["log"]},  # unhashable: must not escape as a 500
        {**GOOD, "type": "log\n"},  # a trailing newline is not part of a type name
        {**GOOD, "payload": [1, 2]},
        {**GOOD, "severity": "loud"},
        {**GOOD, "severity": True},
        {**GOOD, "session": ["s"]},
        {**GOOD, "source": {"a": 1}},
        {**GOOD, "state": {"op": "explode"}},
        {**GOOD, "message": "kept"},
    ]
    r = ingest.post(batch)
    assert r.status_code == 202, r.content
    assert [x["index"] for x in r.json()["rejected"]] == list(range(9))
    assert all(x["error"] for x in r.json()["rejected"])
    assert list(Event.objects.values_list("message", flat=True)) == ["kept"]

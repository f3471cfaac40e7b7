"""recorder/ingest.py below the view: the shortcuts of the request path give exactly what
the plain functions they stand in for give."""

import copy
import hashlib

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from recorder import ingest
from recorder.models import Event

# JSON as orjson reads it: text with quotes, backslashes, control characters and
# non-ASCII, nested lists and objects.
json_text = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=30)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | json_text,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(json_text, children, max_size=4),
    max_leaves=20,
)  # fmt: skip


@given(
    payload=st.none() | st.dictionaries(json_text, json_values, max_size=5),
    state=st.none() | st.dictionaries(json_text, json_values, max_size=3),
    redacted=st.none() | st.lists(json_text.filter(bool), min_size=1, max_size=3),
    message=st.none() | json_text,
)
def test_a_spooled_event_is_byte_for_byte_what_event_spool_form_encodes(
    payload, state, redacted, message
):
    event = {"session": 's"\\1', "ts": 1, "type": "log", "severity": 20, "uid": "u"}
    for name, value in (("message", message), ("payload", payload), ("state", state)):
        if value is not None:
            event[name] = value
    if redacted is not None:
        event["redacted"] = redacted
    slow = orjson.dumps(ingest.event_spool_form(copy.deepcopy(event)))
    assert ingest._spool_event(copy.deepcopy(event)) == slow
    assert orjson.loads(slow)["size"] == len(orjson.dumps(event))


ts_values = (
    st.floats()
    | st.integers(-10, 2**40)
    | st.sampled_from([0.0, -0.0, 4102444799.9999995, 4102444799.9999998, 4102444800.0, 1e308])
)


def _outcome(fn, *args):
    try:
        return ("ok", fn(*args))
    except ingest.ItemError as exc:
        return ("error", str(exc))


@given(ts=ts_values)
def test_the_inline_ts_check_answers_as_parse_ts_does(ts):
    def inline(value):
        item = {"session": "s", "type": "log", "ts": value}
        return ingest.normalize_event(item, session_key=None, received_us=7)["ts"]

    assert _outcome(inline, ts) == _outcome(ingest.parse_ts, ts)


@given(
    severity=st.sampled_from(sorted(ingest.SEVERITY_NAMES))
    | st.sampled_from(["INFO", " warn ", "Error", "bogus", "", "x" * 30])
    | st.integers(-3, 30)
    | st.booleans()
    | st.floats()
)
def test_the_inline_severity_lookup_answers_as_parse_severity_does(severity):
    def inline(value):
        item = {"session": "s", "type": "log", "severity": value}
        return ingest.normalize_event(item, session_key=None, received_us=7)["severity"]

    got, expected = _outcome(inline, severity), _outcome(ingest.parse_severity, severity)
    assert got == expected
    assert type(got[1]) is type(expected[1])


@given(value=st.none() | json_text | st.integers() | st.floats() | st.booleans())
def test_the_inline_string_field_check_answers_as_the_general_one(value):
    def inline(name):
        item = {"session": "s", "type": "log", name: value}
        return ingest.normalize_event(item, session_key=None, received_us=7).get(name)

    for name, limit in ingest.STRING_LIMITS.items():
        assert _outcome(inline, name) == _outcome(ingest._text, {name: value}, name, limit)


@pytest.mark.django_db(databases="__all__")
def test_events_without_an_id_get_uids_from_the_body_digest_even_beside_events_with_one(shop):
    items = [
        {"session": "s", "type": "log", "id": "given"},
        {"session": "s", "type": "log"},
    ]
    body = orjson.dumps(items)
    result = ingest.events_accept(
        application=shop, batch=ingest.parse_batch(body), body=body, api_key_id=None
    )
    assert result.accepted == 2
    digest = hashlib.blake2b(body, digest_size=16).digest()
    uids = set(Event.objects.values_list("uid", flat=True))  # drained inline under pytest
    assert uids == {"given", ingest._derived_uid(digest, 1)}

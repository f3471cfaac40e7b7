"""How the client turns buffered events into the NDJSON lines it sends and spills.

Events that redaction would leave alone skip the JSON copy that redaction edits (the
fast path). These tests hold the fast path to the slow one: for any event, under the
default rules and under a policy with every option set, the line is byte for byte the
line the slow path (encode, decode a copy, redact it, encode again if it changed) gives.
"""

import copy
import datetime
import decimal
import enum
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recorder import client, redaction
from recorder.client import Recorder

POLICIES = {
    "defaults": None,
    "every option": {
        "extra_keys": ["pin", "customer-ref"],
        "patterns": [r"ACME-\d{4}"],
        "keep_keys": ["auth_method"],
        "capture_bodies": True,
        "body_limit": 40,
        "mask_emails": True,
        "mask_ips": True,
    },
}

# Keys for every default key word (in the spellings the rules must catch), their
# look-alikes that must be kept, and the structural keys of HAR entries, bodies, state.
KEYS = [
    "password", "passwords", "passwd", "passphrase", "secret", "secrets", "client_secret",
    "token", "access_token", "X-CSRFToken", "api_key", "apiKey", "X-API-Key", "apikeys",
    "auth", "oauth", "authorization", "Proxy-Authorization", "cookie", "cookies",
    "set-cookie", "credential", "credentials", "private_key", "privateKeys", "session_id",
    "sessionId", "JSESSIONID", "sessid", "mysql_pwd", "session", "author", "tokenizer",
    "max_tokens", "sessions_count", "session_start", "auth_method", "pin", "customer_ref",
    "name", "key", "value", "body", "request_body", "response_body", "request", "response",
    "headers", "url", "message", "method", "status",
]  # fmt: skip
# A value for every value rule, values already scrubbed, and plain ones.
TEXTS = [
    "Bearer sk_live_abcdef1234567890", "bearer of bad news", "Basic dXNlcjpwYXNzd29yZA==",
    "Basic setup done", "card 4111 1111 1111 1111 on file", "4111-1111-1111-1111",
    "1700000000000", "https://ann:hunter2@db.example.com/x", "/cb?token=abc123&page=2",
    "https://s3/x?X-Amz-Signature=deadbeef&X-Amz-Date=1", "a=1; sessionid=abc; theme=dark",
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEabc\n-----END RSA PRIVATE KEY-----",
    '{"password": "hunter2", "user": "ann"}', "{'api_key': 'abc'}",
    "Authorization: Bearer xyz\nAccept: */*", "john.doe@example.com", "10.1.2.3",
    "2001:db8:85a3::8a2e:370:7334", "ACME-1234", "[Filtered]", "", "GET", "/api/items/1",
    '{"user": "ann", "items": [1, 2]}', '[["authorization", "Bearer abcdefghijklmnop"]]',
    "x" * 60,
]  # fmt: skip
POINTERS = ["", "/cart", "/user/password", "/a~1token", "/db/settings", "/token/0", "/x~0y"]


class Colour(enum.IntEnum):
    RED = 1


class Tag(str):
    """A str subclass: encodes as a string, is not exactly a str."""


texts = st.one_of(st.sampled_from(TEXTS), st.text(max_size=20))
keys = st.one_of(st.sampled_from(KEYS), st.text(max_size=8))
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), texts,
)  # fmt: skip
# Values a JSON round trip changes: they must go the slow path and still come out right.
odd = st.one_of(
    st.just(datetime.datetime(2026, 1, 2, 3, 4, 5)),
    st.just(decimal.Decimal("1.50")),
    st.just(Colour.RED),
    texts.map(Tag),
    st.frozensets(st.integers(0, 3), max_size=1),
)


def _values(children):
    header_pairs = st.builds(lambda n, v: [n, v], st.sampled_from(KEYS), children)
    har_entries = st.fixed_dictionaries({"name": st.sampled_from(KEYS), "value": children})
    return st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(keys, children, max_size=5),
        st.tuples(children, children),
        st.dictionaries(st.one_of(st.integers(), st.none(), st.booleans()), children, max_size=2),
        st.lists(header_pairs, min_size=1, max_size=3),  # WSGI/ASGI headers
        st.lists(har_entries, min_size=1, max_size=3),
        st.fixed_dictionaries({"key": keys, "value": children}),  # Postman
    )


values = st.recursive(st.one_of(scalars, odd), _values, max_leaves=25)
headers = st.one_of(
    st.lists(st.builds(lambda n, v: [n, v], st.sampled_from(KEYS), values), max_size=3),
    st.lists(st.fixed_dictionaries({"name": st.sampled_from(KEYS), "value": values}), max_size=3),
    st.dictionaries(st.sampled_from(KEYS), values, max_size=3),
)
payloads = st.one_of(
    st.dictionaries(keys, values, max_size=6),
    st.fixed_dictionaries({"headers": headers}, optional={"url": texts, "status": st.integers()}),
    st.fixed_dictionaries(
        {"method": st.just("GET"), "url": texts},
        optional={
            "body": values,
            "request_body": values,
            "response_body": values,
            "request": st.dictionaries(keys, values, max_size=3),
            "response": st.fixed_dictionaries({"body": values}),
        },
    ),  # fmt: skip
    values,
)
pointers = st.one_of(st.sampled_from(POINTERS), st.text(max_size=8), st.integers())
states = st.one_of(
    st.fixed_dictionaries({"op": st.just("set"), "path": pointers, "value": values}),
    st.fixed_dictionaries({"op": st.just("merge"), "value": values}),
    st.fixed_dictionaries(
        {
            "op": st.just("patch"),
            "patch": st.lists(
                st.fixed_dictionaries(
                    {"op": st.just("add"), "path": pointers}, optional={"value": values}
                ),
                max_size=3,
            ),
        }
    ),
    values,
)
events = st.fixed_dictionaries(
    {"ts": st.floats(0, 2e9), "type": st.sampled_from(["http", "log", "state", "ui"])},
    optional={
        "payload": payloads,
        "message": st.one_of(texts, st.integers(), odd),
        "state": states,
        "key": texts,
    },
)


def slow_line(event: dict, policy: redaction.CompiledPolicy) -> bytes:
    """The line as the client built it for every event before the fast path."""
    line = client._encode(event)
    copied = json.loads(line)
    if redaction.redact_event(copied, policy):
        line = client._encode(copied)
    return line.encode()


@pytest.fixture(scope="module", params=list(POLICIES), ids=list(POLICIES))
def rec(request, tmp_path_factory):
    # Nothing listens on port 9; the sender thread is only ever woken by the close.
    made = Recorder(
        "http://127.0.0.1:9",
        "k",
        spill_dir=tmp_path_factory.mktemp("spill"),
        install_hooks=False,
        flush_interval=3600,
        redact=POLICIES[request.param] or None,
    )
    yield made
    made.close(timeout=2)


def prepare_one(rec: Recorder, event: dict) -> bytes:
    event = {**event, "id": "e1", "session": "s1"}
    expected = slow_line(copy.deepcopy(event), rec._policy)
    before = copy.deepcopy(event)
    (line,) = rec._prepare([event])
    assert line == expected
    assert event == before  # the caller's objects are never edited
    return line


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event=events)
def test_every_event_gets_the_line_the_slow_path_gives(rec, event):
    prepare_one(rec, event)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event=events)
def test_the_fast_path_is_taken_only_when_redaction_would_change_nothing(rec, event):
    event = {**event, "id": "e1", "session": "s1"}
    if redaction.event_untouched(event, rec._policy):
        copied = json.loads(client._encode(event))
        assert redaction.redact_event(copied, rec._policy) == []
        assert copied == json.loads(client._encode(event))


@pytest.mark.parametrize(
    "key", [k for k in KEYS if redaction.compile_policy(None).is_secret_key(k)]
)
def test_every_default_key_word_is_scrubbed_at_any_depth_unless_the_policy_keeps_it(rec, key):
    secret = rec._policy.is_secret_key(key)  # keep_keys keeps auth_method in one policy
    for payload in (
        {key: "hunter2-value"},
        {"outer": [{"inner": {key: "hunter2-value"}}]},
        {"headers": [[key, "hunter2-value"]]},
        {"headers": [{"name": key, "value": "hunter2-value"}]},
    ):
        event = {"ts": 1.0, "type": "log", "payload": payload}
        assert (
            redaction.event_untouched({**event, "id": "e1", "session": "s1"}, rec._policy) != secret
        )
        assert (b"hunter2-value" in prepare_one(rec, event)) != secret


@pytest.mark.parametrize("text", [t for t in TEXTS if t.startswith(("Bearer sk", "card", "http"))])
def test_value_rules_apply_in_messages_payloads_and_state(rec, text):
    for event in (
        {"ts": 1.0, "type": "log", "message": text},
        {"ts": 1.0, "type": "log", "payload": {"note": [text]}},
        {"ts": 1.0, "type": "state", "state": {"op": "merge", "value": {"a": {"b": text}}}},
    ):
        line = prepare_one(rec, event)
        assert b"[Filtered]" in line


def test_a_secret_state_pointer_scrubs_the_value_it_sets(rec):
    line = prepare_one(
        rec, {"ts": 1.0, "type": "state", "state": {"op": "set", "path": "/db/password", "value": "pw1"}}
    )  # fmt: skip
    assert b"pw1" not in line


def test_everyday_events_take_the_fast_path(rec):
    everyday = [
        {"type": "http", "payload": {"method": "GET", "url": "/api/items/7", "status": 200,
                                     "duration_ms": 12.5, "headers": {"accept": "*/*"}},
         "message": "GET /api/items/7"},
        {"type": "log", "payload": {"logger": "shop.cart", "lineno": 42, "extra": {"n": 3}},
         "message": "cart updated", "severity": "info"},
        {"type": "state", "state": {"op": "merge", "value": {"cart": {"items": 3}}}},
        {"type": "state", "state": {"op": "set", "path": "/user/name", "value": "ann"}},
        {"type": "state", "state": {"op": "patch", "patch": [{"op": "add", "path": "/n", "value": 1}]}},
        {"type": "ui", "message": "clicked checkout", "actor": "ann"},
    ]  # fmt: skip
    for event in everyday:
        event = {"ts": 1.0, "id": "e1", "session": "s1", **event}
        assert redaction.event_untouched(event, rec._policy), event
        prepare_one(rec, event)


def test_before_send_still_gets_a_copy_it_may_edit(tmp_path):
    seen = []

    def hook(event):
        event["payload"]["tag"] = "added"
        seen.append(event)
        return event

    rec = Recorder(
        "http://127.0.0.1:9", "k", spill_dir=tmp_path, install_hooks=False,
        flush_interval=3600, before_send=hook,
    )  # fmt: skip
    try:
        payload = {"n": 1}
        (line,) = rec._prepare([{"ts": 1.0, "type": "log", "payload": payload}])
        assert payload == {"n": 1}
        assert json.loads(line)["payload"] == {"n": 1, "tag": "added"}
        assert seen[0]["payload"] is not payload
    finally:
        rec.close(timeout=2)


def test_an_event_that_cannot_be_encoded_is_counted_lost_and_the_rest_are_sent(rec):
    cyclic: dict = {}
    cyclic["self"] = cyclic
    lost = rec.lost
    lines = rec._prepare(
        [{"ts": 1.0, "type": "log", "payload": cyclic}, {"ts": 2.0, "type": "log"}]
    )
    assert len(lines) == 1 and json.loads(lines[0])["ts"] == 2.0
    assert rec.lost == lost + 1

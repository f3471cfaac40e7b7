"""Tests for recorder/redaction.py: standard library + pytest only, no Django."""

import base64
import copy
import json

import pytest

from recorder.redaction import (
    DEFAULT_POLICY,
    FILTERED,
    compile_policy,
    preview,
    redact_event,
    redact_mapping,
)

SECRET = "s3cr3t-Value-9f8e7d"
DEFAULT = compile_policy(None)


def event(payload=None, **fields):
    ev = {"id": "e1", "session": "sess-1", "ts": 1700000000, "type": "log"}
    if payload is not None:
        ev["payload"] = payload
    ev.update(fields)
    return ev


def assert_gone(ev, secret=SECRET):
    assert secret not in json.dumps(ev)


# --- key rules -------------------------------------------------------------

DEFAULT_KEYS = [
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "auth",
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "session",
    "sessionid",
    "csrftoken",
    "x-csrf-token",
    "x-xsrf-token",
    "x-api-key",
    "credentials",
    "private_key",
    "privatekey",
    "mysql_pwd",
]


@pytest.mark.parametrize("key", DEFAULT_KEYS)
def test_default_key_rule(key):
    ev = event({key: SECRET})
    assert redact_event(ev, DEFAULT) == [f"payload.{key}"]
    assert ev["payload"][key] == FILTERED


@pytest.mark.parametrize(
    "key", [k.upper() for k in DEFAULT_KEYS] + [k.title() for k in DEFAULT_KEYS]
)
def test_default_key_rule_is_case_insensitive(key):
    ev = event({"headers": {key: SECRET}})
    assert redact_event(ev, DEFAULT) == [f"payload.headers.{key}"]
    assert_gone(ev)


@pytest.mark.parametrize(
    "key",
    [
        "access_token",
        "refresh_token",
        "client_secret",
        "db_password",
        "accessToken",
        "clientSecret",
        "X-CSRFToken",
        "JSESSIONID",
        "PHPSESSID",
        "session_id",
        "sessionId",
        "oauth",
        "basic_auth",
        "x-auth-token",
        "aws_secret_access_key",
        "SECRET_KEY",
        "user.password",
        "form[password]",
        "cookies",
        "passwords",
        "mypassword",
        "apiKeys",
        "password_hash",
        "MYSQL_PWD",
    ],
)
def test_compound_keys_are_scrubbed(key):
    ev = event({key: SECRET})
    assert redact_event(ev, DEFAULT) == [f"payload.{key}"]
    assert_gone(ev)


@pytest.mark.parametrize(
    "key",
    [
        "author",
        "authors",
        "sessions_count",
        "session_count",
        "session_start",
        "tokenizer",
        "max_tokens",
        "prompt_tokens",
        "secretary",
        "key",
        "pwd",
        "PWD",
        "signature",
        "keyboard",
        "passage",
        "cookbook",
    ],
)
def test_key_false_positives_are_kept(key):
    ev = event({key: "visible"})
    assert redact_event(ev, DEFAULT) == []
    assert ev["payload"][key] == "visible"


def test_envelope_identifiers_are_never_scrubbed():
    ev = event(
        {"n": 1},
        session="token-like-session-key",
        key="auth::vienna",
        actor="password-admin",
        correlation_id="secret-corr",
    )
    before = copy.deepcopy(ev)
    assert redact_event(ev, DEFAULT) == []
    assert ev == before


def test_container_under_secret_key_is_replaced_whole():
    ev = event({"credentials": {"user": "bob", "pass": SECRET}, "cookies": [SECRET]})
    assert redact_event(ev, DEFAULT) == ["payload.cookies", "payload.credentials"]
    assert ev["payload"] == {"credentials": FILTERED, "cookies": FILTERED}


@pytest.mark.parametrize("value", [None, True, False, "", [], {}])
def test_values_that_hold_nothing_stay_readable(value):
    ev = event({"password": value})
    assert redact_event(ev, DEFAULT) == []
    assert ev["payload"]["password"] == value


def test_non_string_secret_is_scrubbed():
    ev = event({"mysql_pwd": 123456789})
    assert redact_event(ev, DEFAULT) == ["payload.mysql_pwd"]
    assert ev["payload"]["mysql_pwd"] == FILTERED


def test_nested_dicts_and_lists_any_depth():
    ev = event(
        {"a": [{"b": {"c": [{"token": SECRET}, {"ok": 1}]}}], "list": [[{"password": SECRET}]]}
    )
    assert redact_event(ev, DEFAULT) == ["payload.a[0].b.c[0].token", "payload.list[0][0].password"]
    assert_gone(ev)
    assert ev["payload"]["a"][0]["b"]["c"][1] == {"ok": 1}


def test_har_header_list():
    headers = [
        {"name": "Accept", "value": "application/json"},
        {"name": "Authorization", "value": f"Token {SECRET}"},
        {"name": "Cookie", "value": f"sessionid={SECRET}"},
    ]
    ev = event({"request": {"headers": headers}})
    assert redact_event(ev, DEFAULT) == [
        "payload.request.headers[1].value",
        "payload.request.headers[2].value",
    ]
    assert headers[0]["value"] == "application/json"
    assert headers[1] == {"name": "Authorization", "value": FILTERED}
    assert_gone(ev)


def test_name_value_pairs_list():
    ev = event({"headers": [["content-type", "text/plain"], ["X-Api-Key", SECRET]]})
    assert redact_event(ev, DEFAULT) == ["payload.headers[1][1]"]
    assert ev["payload"]["headers"] == [["content-type", "text/plain"], ["X-Api-Key", FILTERED]]


def test_postman_key_value_dict():
    ev = event({"params": [{"key": "api_key", "value": SECRET}, {"key": "page", "value": "2"}]})
    assert redact_event(ev, DEFAULT) == ["payload.params[0].value"]
    assert_gone(ev)


# --- value rules -----------------------------------------------------------

VALUE_CASES = [
    # (input, expected output)
    (f"Authorization: Bearer {SECRET}", "Authorization: [Filtered]"),
    (f"call failed with bearer {SECRET} attached", "call failed with bearer [Filtered] attached"),
    ("sent Basic " + base64.b64encode(b"bob:" + SECRET.encode()).decode(), "sent Basic [Filtered]"),
    ("card 4111 1111 1111 1111 charged", "card [Filtered] charged"),
    ("card 4111-1111-1111-1111", "card [Filtered]"),
    ("amex 378282246310005 ok", "amex [Filtered] ok"),
    ("5555555555554444", "[Filtered]"),
    (
        f"key -----BEGIN RSA PRIVATE KEY-----\nMIIE{SECRET}\n-----END RSA PRIVATE KEY----- end",
        "key -----BEGIN RSA PRIVATE KEY-----[Filtered]-----END RSA PRIVATE KEY----- end",
    ),
    (f"-----BEGIN PRIVATE KEY-----\n{SECRET} (truncated", "-----BEGIN PRIVATE KEY-----[Filtered]"),
    (
        f"postgres://app:{SECRET}@db.internal:5432/app",
        "postgres://app:[Filtered]@db.internal:5432/app",
    ),
    (f"redis://:{SECRET}@cache:6379", "redis://:[Filtered]@cache:6379"),
    (
        f"https://b.s3.amazonaws.com/k?X-Amz-Credential={SECRET}&X-Amz-Signature={SECRET}&X-Amz-Expires=60",
        "https://b.s3.amazonaws.com/k?X-Amz-Credential=[Filtered]&X-Amz-Signature=[Filtered]&X-Amz-Expires=60",
    ),
    (
        f"https://x.blob.core.windows.net/c/f?sv=2020&sig={SECRET}",
        "https://x.blob.core.windows.net/c/f?sv=2020&sig=[Filtered]",
    ),
    (
        f"https://storage.googleapis.com/b/o?X-Goog-Signature={SECRET}",
        "https://storage.googleapis.com/b/o?X-Goog-Signature=[Filtered]",
    ),
    (
        f"https://x/?X-Amz-Security-Token={SECRET}#frag",
        "https://x/?X-Amz-Security-Token=[Filtered]#frag",
    ),
    (
        f"https://api.example.com/v1?token={SECRET}&api_key={SECRET}&page=2",
        "https://api.example.com/v1?token=[Filtered]&api_key=[Filtered]&page=2",
    ),
    (f"/callback?code=1&access_token={SECRET}", "/callback?code=1&access_token=[Filtered]"),
    (f"a=1&token={SECRET}", "a=1&token=[Filtered]"),
    (f"password={SECRET}&user=bob", "password=[Filtered]&user=bob"),
    (
        f"login ok user=bob password={SECRET} took=3ms",
        "login ok user=bob password=[Filtered] took=3ms",
    ),
    (f'retry password="{SECRET} with space" now', 'retry password="[Filtered]" now'),
    (
        f"sessionid={SECRET}; csrftoken={SECRET}; theme=dark",
        "sessionid=[Filtered]; csrftoken=[Filtered]; theme=dark",
    ),
    (
        f'body {{"user": "bob", "password": "{SECRET}"}}',
        'body {"user": "bob", "password": "[Filtered]"}',
    ),
    (f"got {{'client_secret': '{SECRET}', 'n': 1}}", "got {'client_secret': '[Filtered]', 'n': 1}"),
    (f'{{"pin":"x","api_key":{12345678}}}', '{"pin":"x","api_key":[Filtered]}'),
    (
        f"Host: example.com\r\nX-Api-Key: {SECRET}\r\nAccept: */*",
        "Host: example.com\r\nX-Api-Key: [Filtered]\r\nAccept: */*",
    ),
    (f"next=https://x/cb?token={SECRET}", "next=https://x/cb?token=[Filtered]"),
]


@pytest.mark.parametrize("text,expected", VALUE_CASES)
def test_value_rule_in_payload_string(text, expected):
    ev = event({"field": text})
    assert redact_event(ev, DEFAULT) == ["payload.field"]
    assert ev["payload"]["field"] == expected
    assert_gone(ev)
    assert "4111 1111 1111 1111" not in json.dumps(ev)


@pytest.mark.parametrize("text,expected", VALUE_CASES)
def test_value_rule_in_message(text, expected):
    ev = event(message=text)
    assert redact_event(ev, DEFAULT) == ["message"]
    assert ev["message"] == expected


@pytest.mark.parametrize(
    "text",
    [
        "order 4111111111111112 shipped",  # 16 digits, Luhn fails
        "id 1234567890123456",  # Luhn fails
        "ts 1700000000000 ok",  # epoch ms, starts with 1
        "sha a4111111111111111b",  # digits inside a hash-like token
        "https://example.com/search?q=flight&page=2",
        "https://user@example.com/path",  # no password in userinfo
        "Basic setup complete",  # prose, not base64 user:pass
        "the bearer of bad news",
        "error: connection refused",
        "tokens=42 sessions=3 author=ann",
        "2024-01-15 12:30:45.123",
        "mailto:ann@example.com 10.1.2.3",  # masking is off by default
    ],
)
def test_value_false_positives_are_kept(text):
    ev = event({"field": text}, message=text)
    assert redact_event(ev, DEFAULT) == []
    assert ev["payload"]["field"] == text and ev["message"] == text


def test_query_string_value_in_metadata():
    meta = {"qs": f"a=1&token={SECRET}", "env": {"DB_PASSWORD": SECRET, "HOME": "/root"}}
    assert redact_mapping(meta, DEFAULT) == ["metadata.env.DB_PASSWORD", "metadata.qs"]
    assert meta == {"qs": "a=1&token=[Filtered]", "env": {"DB_PASSWORD": FILTERED, "HOME": "/root"}}


def test_redact_mapping_prefix():
    meta = {"auth": SECRET}
    assert redact_mapping(meta, DEFAULT, "session") == ["session.auth"]


# --- state -----------------------------------------------------------------


def test_state_values_are_scrubbed():
    ev = event(state={"op": "merge", "value": {"db": {"password": SECRET}, "n": 2}})
    assert redact_event(ev, DEFAULT) == ["state.value.db.password"]
    assert_gone(ev)


def test_state_pointer_to_secret_scrubs_value():
    ev = event(state={"op": "set", "path": "/config/api_key", "value": SECRET})
    assert redact_event(ev, DEFAULT) == ["state.value"]
    ev = event(
        state={
            "op": "patch",
            "patch": [
                {"op": "add", "path": "/user/password", "value": SECRET},
                {"op": "add", "path": "/user/name", "value": "bob"},
            ],
        }
    )
    assert redact_event(ev, DEFAULT) == ["state.patch[0].value"]
    assert_gone(ev)
    assert ev["state"]["patch"][1]["value"] == "bob"


# --- HTTP bodies -----------------------------------------------------------


def http_event(**payload):
    base = {"url": "https://api.example.com/x", "method": "POST", "status": 200}
    base.update(payload)
    return {"id": "h1", "session": "s", "ts": 1, "type": "http", "payload": base}


def test_bodies_dropped_by_default():
    ev = http_event(
        request_body={"password": SECRET},
        response_body="ok",
        body="x",
        request={"body": "b", "headers": {}},
        response={"body": "r", "status": 200},
    )
    scrubbed = redact_event(ev, DEFAULT)
    assert scrubbed == [
        "payload.body (dropped)",
        "payload.request.body (dropped)",
        "payload.request_body (dropped)",
        "payload.response.body (dropped)",
        "payload.response_body (dropped)",
    ]
    assert set(ev["payload"]) == {"url", "method", "status", "request", "response"}
    assert ev["payload"]["request"] == {"headers": {}}
    assert_gone(ev)


def test_bodies_only_dropped_for_http_events():
    ev = event({"body": "kept for a log event"})
    assert redact_event(ev, DEFAULT) == []
    assert ev["payload"]["body"] == "kept for a log event"


def test_bodies_kept_and_scrubbed_when_enabled():
    policy = compile_policy({"capture_bodies": True})
    ev = http_event(
        request_body={"user": "bob", "password": SECRET},
        response_body=json.dumps({"access_token": SECRET, "ok": True}),
        request={"body": f"user=bob&password={SECRET}"},
    )
    scrubbed = redact_event(ev, policy)
    assert scrubbed == [
        "payload.request.body",
        "payload.request_body.password",
        "payload.response_body.access_token",
    ]
    assert ev["payload"]["request_body"] == {"user": "bob", "password": FILTERED}
    assert json.loads(ev["payload"]["response_body"]) == {"access_token": FILTERED, "ok": True}
    assert ev["payload"]["request"]["body"] == "user=bob&password=[Filtered]"
    assert_gone(ev)


def test_body_cap_truncates_and_marks():
    policy = compile_policy({"capture_bodies": True, "body_limit": 100})
    ev = http_event(response_body="é" * 200, request_body={"items": list(range(100))}, body="short")
    scrubbed = redact_event(ev, policy)
    assert scrubbed == ["payload.request_body (truncated)", "payload.response_body (truncated)"]
    body = ev["payload"]["response_body"]
    assert body.startswith("é" * 50) and not body.startswith("é" * 51)
    assert body.endswith("[truncated: 400 bytes]")
    assert ev["payload"]["request_body"].startswith('{"items":[0,1,2')
    assert ev["payload"]["body"] == "short"


def test_default_body_limit():
    policy = compile_policy({"capture_bodies": True})
    assert policy.body_limit == DEFAULT_POLICY["body_limit"] == 65536
    ev = http_event(body="x" * 65536)
    assert redact_event(ev, policy) == []
    ev = http_event(body="x" * 65537)
    assert redact_event(ev, policy) == ["payload.body (truncated)"]


# --- policy ----------------------------------------------------------------


def test_extra_keys():
    policy = compile_policy({"extra_keys": ["ssn", "X-Tenant-Secret-Id"]})
    ev = event({"ssn": SECRET, "user_ssn": SECRET, "x_tenant_secret_id": SECRET, "ok": "x"})
    assert redact_event(ev, policy) == [
        "payload.ssn",
        "payload.user_ssn",
        "payload.x_tenant_secret_id",
    ]
    assert redact_event(event({"ssn": "1"}), DEFAULT) == []


def test_extra_keys_apply_to_query_parameters():
    policy = compile_policy({"extra_keys": ["ssn"]})
    ev = event(message=f"lookup?ssn={SECRET}&x=1")
    assert redact_event(ev, policy) == ["message"]
    assert ev["message"] == "lookup?ssn=[Filtered]&x=1"


def test_keep_keys():
    policy = compile_policy({"keep_keys": ["auth_method", "token_count"]})
    ev = event({"authMethod": "basic", "TOKEN-COUNT": 5, "token": SECRET})
    assert redact_event(ev, policy) == ["payload.token"]
    assert ev["payload"]["authMethod"] == "basic" and ev["payload"]["TOKEN-COUNT"] == 5


def test_patterns():
    policy = compile_policy({"patterns": [r"\bEMP-\d{6}\b", r"(?i)ghp_[a-z0-9]{10,}"]})
    ev = event({"note": "employee EMP-123456 used ghp_ABCdef1234567890"}, message="EMP-000001")
    assert redact_event(ev, policy) == ["message", "payload.note"]
    assert ev["payload"]["note"] == "employee [Filtered] used [Filtered]"
    assert ev["message"] == "[Filtered]"


@pytest.mark.parametrize(
    "bad,needle",
    [
        ({"patterns": ["("]}, "patterns[0]"),
        ({"patterns": ["ok", "[z-a]"]}, "patterns[1]"),
        ({"patterns": [""]}, "empty"),
        ({"nope": 1}, "unknown"),
        ({"extra_keys": "password"}, "extra_keys"),
        ({"extra_keys": [""]}, "empty key"),
        ({"keep_keys": [1]}, "keep_keys"),
        ({"capture_bodies": "yes"}, "capture_bodies"),
        ({"body_limit": -1}, "body_limit"),
        ({"body_limit": True}, "body_limit"),
        ({"mask_ips": 1}, "mask_ips"),
        (["not", "a", "dict"], "JSON object"),
    ],
)
def test_bad_policy_raises_value_error(bad, needle):
    with pytest.raises(ValueError, match=r".*") as exc:
        compile_policy(bad)
    assert needle in str(exc.value)


def test_compile_policy_defaults_and_cache():
    assert compile_policy(None).policy == DEFAULT_POLICY
    assert compile_policy({}).policy == DEFAULT_POLICY
    assert compile_policy({"mask_ips": True}) is compile_policy({"mask_ips": True})
    assert compile_policy({"mask_ips": True}).mask_ips is True


def test_default_policy_is_not_mutated_by_compiled_policies():
    compile_policy({"extra_keys": ["abc"]}).policy["extra_keys"].append("zzz")
    assert DEFAULT_POLICY["extra_keys"] == []
    assert compile_policy(None).policy["extra_keys"] == []


# --- masking ---------------------------------------------------------------


def test_mask_emails():
    policy = compile_policy({"mask_emails": True})
    ev = event({"email": "john.doe@example.com", "note": "cc ann+x@mail.example.org please"})
    assert redact_event(ev, policy) == ["payload.email", "payload.note"]
    assert ev["payload"] == {"email": "j***@example.com", "note": "cc a***@mail.example.org please"}
    assert redact_event(ev, policy) == []  # idempotent


def test_mask_ips():
    policy = compile_policy({"mask_ips": True})
    ev = event(
        {
            "ip": "203.0.113.77",
            "v6": "2001:db8:85a3:8d3:1319:8a2e:370:7348",
            "msg": "from 10.1.2.3 via ::ffff:192.168.1.20",
            "time": "12:30:45",
            "ver": "1.2.3",
        }
    )
    assert redact_event(ev, policy) == ["payload.ip", "payload.msg", "payload.v6"]
    assert ev["payload"]["ip"] == "203.0.113.0"
    assert ev["payload"]["v6"] == "2001:db8:85a3::"
    assert ev["payload"]["msg"] == "from 10.1.2.0 via ::ffff:192.168.1.0"
    assert ev["payload"]["time"] == "12:30:45" and ev["payload"]["ver"] == "1.2.3"


# --- contract: in place, paths, idempotence, preview ----------------------


def test_in_place_paths_and_value_never_survives():
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {SECRET}"}
    ev = {
        "id": "x",
        "session": "sess-9",
        "ts": 2,
        "type": "http",
        "message": f"GET https://api.example.com/items?api_key={SECRET} 200",
        "payload": {
            "url": f"https://bob:{SECRET}@api.example.com/items?api_key={SECRET}",
            "headers": headers,
            "response_body": SECRET,
            "status": 200,
        },
    }
    payload = ev["payload"]
    scrubbed = redact_event(ev, DEFAULT)
    assert scrubbed == [
        "message",
        "payload.headers.Authorization",
        "payload.response_body (dropped)",
        "payload.url",
    ]
    assert scrubbed == sorted(scrubbed)
    assert ev["payload"] is payload and payload["headers"] is headers  # mutated in place
    assert payload["url"] == "https://bob:[Filtered]@api.example.com/items?api_key=[Filtered]"
    assert_gone(ev)
    assert SECRET not in json.dumps(scrubbed)


def test_redaction_is_idempotent():
    ev = event({"token": SECRET, "url": f"https://x/?sig={SECRET}"}, message=f"Bearer {SECRET}")
    assert redact_event(ev, DEFAULT)
    snapshot = copy.deepcopy(ev)
    assert redact_event(ev, DEFAULT) == []
    assert ev == snapshot


def test_unchanged_event_is_untouched():
    ev = event(
        {"rows": 48, "module": "grid", "tags": ["a", "b"]}, message="grid refresh took 12 ms"
    )
    snapshot = copy.deepcopy(ev)
    assert redact_event(ev, DEFAULT) == []
    assert ev == snapshot


def test_too_deep_nesting_is_replaced():
    deep = leaf = {}
    for _ in range(100):
        leaf["n"] = {}
        leaf = leaf["n"]
    leaf["password"] = SECRET
    ev = event({"deep": deep})
    scrubbed = redact_event(ev, DEFAULT)
    assert len(scrubbed) == 1 and scrubbed[0].endswith("(too deep)")
    assert_gone(ev)


def test_preview_returns_copy_and_paths():
    sample = event({"password": SECRET, "email": "ann@example.com"})
    original = copy.deepcopy(sample)
    result = preview(sample, {"mask_emails": True})
    assert sample == original
    assert result["scrubbed"] == ["payload.email", "payload.password"]
    assert result["event"]["payload"] == {"password": FILTERED, "email": "a***@example.com"}


def test_preview_bad_policy_raises():
    with pytest.raises(ValueError, match="patterns"):
        preview(event({}), {"patterns": ["("]})

"""Nothing secret reaches the disk: every default redaction rule, through every ingestion
path, against the raw bytes of a real server's files.

A real flightrec (bootstrap, gunicorn, run_huey: tests/stack.py) runs on a temporary
data directory. For each path, events and session metadata carrying one unique marker
per (rule, place) are sent; once the drain has stored them, the main database, the
inbox, their WAL/SHM files and the Huey queue are read as bytes and no marker may be
there. Harmless canary values sent alongside must be there, which proves the events
were stored and that the search would have found a marker.

Adding a path (OTLP, the logging handler, `manage.py import`): append a `Path` row to
PATHS with a `send(stack, key, carriers)` that delivers the carriers it can carry.
Adding a rule: append to KEY_RULES or VALUE_RULES.
"""

import base64
import gzip
import os
import random
import sqlite3
import string
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path as FsPath

import orjson
import pytest

from recorder import payloads
from tests.stack import Stack

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        bool(os.getenv("DATABASE_URL")),
        reason="reads the SQLite and Huey files as bytes; on PostgreSQL + Redis the data is "
        "in the servers' own directories (the redaction before the spool is the same code)",
    ),
]

# --- the rules (the defaults of recorder/redaction.py, as the issue lists them) ----------

KEY_RULES = [
    "password", "passwd", "secret", "token", "api_key", "apikey", "auth", "authorization",
    "proxy-authorization", "cookie", "set-cookie", "session", "sessionid", "csrftoken",
    "x-csrf-token", "x-xsrf-token", "x-api-key", "credentials", "private_key", "privatekey",
    "mysql_pwd",
]  # fmt: skip
SIGNED_URL_PARAMS = [
    "X-Amz-Signature", "X-Amz-Credential", "X-Amz-Security-Token", "Signature", "sig",
    "X-Goog-Signature",
]  # fmt: skip

_rng = random.Random()


def marker(n: int = 14) -> str:
    """A value that can only be on disk if it was stored unscrubbed."""
    return "Zq" + "".join(_rng.choice(string.ascii_letters + string.digits) for _ in range(n))


def luhn_card() -> str:
    digits = [4] + [_rng.randrange(10) for _ in range(14)]
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 0:  # these are doubled once the check digit is appended
            d *= 2
            d -= 9 if d > 9 else 0
        total += d
    return "".join(map(str, digits)) + str((10 - total % 10) % 10)


@dataclass
class Carrier:
    """One secret in one place. `event`, `meta` or `text` says how it can travel."""

    rule: str
    place: str
    secrets: list[str]  # byte strings that must not be on disk
    event: dict | None = None  # a whole event carrying it
    meta: dict | None = None  # a session-metadata fragment carrying it
    text: str | None = None  # free text carrying it (e.g. an end marker's reason)
    canary: str = field(default_factory=lambda: "cn" + marker(10))

    @property
    def name(self) -> str:
        return f"{self.rule} in {self.place}"


def _event(c_payload: dict | None = None, **fields) -> dict:
    ev = {"type": "log", "ts": time.time(), **fields}
    if c_payload is not None:
        ev["payload"] = c_payload
    return ev


def key_rule_carriers(name: str) -> list[Carrier]:
    header = "-".join(p.capitalize() for p in name.replace("_", "-").split("-"))
    out = []
    s = marker()
    out.append(Carrier(name, "payload key", [s], event=_event({name: s})))
    s = marker()
    out.append(Carrier(name, "header", [s], event=_event({"headers": {header: s}})))
    s = marker()
    out.append(Carrier(name, "nested list of dicts", [s],
                       event=_event({"items": [{"config": {name.upper(): s}}]})))  # fmt: skip
    s = marker()
    out.append(Carrier(name, "query string in message", [s],
                       event=_event(message=f"GET /cart?{name}={s}&page=2 200")))  # fmt: skip
    s = marker()
    out.append(Carrier(name, "URL in payload", [s],
                       event=_event({"url": f"https://api.example.com/v1?a=1&{name}={s}"})))  # fmt: skip
    s = marker()
    out.append(Carrier(name, "state merge", [s],
                       event=_event(state={"op": "merge", "value": {"db": {name: s}}})))  # fmt: skip
    s = marker()
    out.append(Carrier(name, "state set at its path", [s],
                       event=_event(state={"op": "set", "path": f"/conn/{name}", "value": s})))  # fmt: skip
    s = marker()
    out.append(Carrier(name, "session metadata", [s], meta={name: s}))
    return out


def value_rule_carriers() -> list[Carrier]:
    """Secrets recognised by their value, wherever they are."""
    out = []

    def everywhere(rule: str, make: Callable[[], tuple[str, list[str]]]):
        text, secrets = make()
        out.append(Carrier(rule, "message", secrets, event=_event(message=f"note: {text}")))
        text, secrets = make()
        out.append(Carrier(rule, "payload value", secrets, event=_event({"note": text})))
        text, secrets = make()
        out.append(Carrier(rule, "session metadata", secrets, meta={"note": text}))
        text, secrets = make()
        out.append(Carrier(rule, "free text", secrets, text=f"crashed: {text}"))

    def bearer():
        s = marker(24)
        return f"Authorization: Bearer {s}", [s]

    def basic():
        s = marker()
        encoded = base64.b64encode(f"deploy:{s}".encode()).decode()
        return f"sent Basic {encoded} upstream", [s, encoded]

    def card():
        number = luhn_card()
        spaced = " ".join(number[i : i + 4] for i in range(0, 16, 4))
        return f"paid with {spaced} ok", [number, spaced]

    def card_plain():
        number = luhn_card()
        return f"card={number};", [number]

    def pem():
        s = marker(40)
        return (f"-----BEGIN RSA PRIVATE KEY-----\nMIIEow{s}\n-----END RSA PRIVATE KEY-----",
                [s])  # fmt: skip

    def userinfo():
        s = marker()
        return f"connecting to postgres://app:{s}@db.internal:5432/shop", [s]

    everywhere("Bearer token", bearer)
    everywhere("Basic credentials", basic)
    everywhere("card number (spaced)", card)
    everywhere("card number", card_plain)
    everywhere("PEM private key", pem)
    everywhere("user:password@ in a URL", userinfo)
    for param in SIGNED_URL_PARAMS:

        def signed(param=param):
            s = marker()
            return f"https://bucket.s3.amazonaws.com/o.pdf?X-Amz-Date=20261122&{param}={s}", [s]

        everywhere(f"signed URL {param}", signed)

    # Bodies are off by default: an http event's body goes, whatever it holds.
    s = marker()
    out.append(Carrier("HTTP body dropped by default", "request body", [s],
                       event=_event({"method": "POST", "request": {"body": f"free text {s}"}},
                                    type="http")))  # fmt: skip
    s = marker()
    out.append(Carrier("HTTP body dropped by default", "response_body", [s],
                       event=_event({"status": 200, "response_body": {"note": s}}, type="http")))  # fmt: skip
    return out


def all_carriers() -> list[Carrier]:
    carriers = value_rule_carriers()
    for name in KEY_RULES:
        carriers.extend(key_rule_carriers(name))
    return carriers


# --- the paths ----------------------------------------------------------------------------


def _with_canary(c: Carrier, session: str) -> dict:
    ev = orjson.loads(orjson.dumps(c.event))
    ev["session"] = session
    ev["actor"] = c.canary  # a field redaction leaves alone: proves the event was stored
    return ev


def _meta(carriers: list[Carrier]) -> dict:
    meta = {}
    for i, c in enumerate(carriers):
        if c.meta is not None:
            # Each fragment under its own harmless parent so equal keys do not collide.
            meta[f"part{i}"] = {**c.meta, "canary": c.canary}
    return meta


def _post(stack: Stack, key: str, path: str, body: bytes, ctype: str, gzipped: bool = False):
    headers = {"Content-Type": ctype}
    if gzipped:
        body = gzip.compress(body)
        headers["Content-Encoding"] = "gzip"
    status, answer = stack.post(path, body, key, headers=headers)
    assert status in (200, 202), (path, status, answer)
    assert not (answer or {}).get("rejected"), answer


def send_json_array(stack, key, carriers, session):
    events = [_with_canary(c, session) for c in carriers if c.event]
    _post(stack, key, "/api/v1/events", orjson.dumps(events), "application/json")


def _json_object(carriers, session) -> bytes:
    return orjson.dumps({
        "session": {"key": session, **_meta(carriers)},
        "events": [_with_canary(c, session) for c in carriers if c.event],
    })  # fmt: skip


def send_json_object(stack, key, carriers, session):
    _post(stack, key, "/api/v1/events", _json_object(carriers, session), "application/json")


def send_gzip_json(stack, key, carriers, session):
    body = _json_object(carriers, session)
    _post(stack, key, "/api/v1/events", body, "application/json", gzipped=True)


def _ndjson(carriers, session) -> bytes:
    lines = [orjson.dumps({"session": {"key": session, **_meta(carriers)}})]
    lines += [orjson.dumps(_with_canary(c, session)) for c in carriers if c.event]
    return b"\n".join(lines) + b"\n"


def send_ndjson(stack, key, carriers, session):
    _post(stack, key, "/api/v1/events", _ndjson(carriers, session), "application/x-ndjson")


def send_gzip_ndjson(stack, key, carriers, session):
    body = _ndjson(carriers, session)
    _post(stack, key, "/api/v1/events", body, "application/x-ndjson", gzipped=True)


def send_session_api(stack, key, carriers, session):
    meta = _meta(carriers)
    half = len(meta) // 2
    items = list(meta.items())
    # Top-level fields and the nested "metadata" object both become metadata.
    body = {"key": session, **dict(items[:half]), "metadata": dict(items[half:])}
    _post(stack, key, "/api/v1/sessions", orjson.dumps(body), "application/json")


def send_session_end(stack, key, carriers, session):
    for c in carriers:
        if c.text is not None:
            sess = f"{session}-{c.canary}"  # one session per reason; the key is the canary
            body = orjson.dumps({"status": "crashed", "reason": c.text})
            _post(stack, key, f"/api/v1/sessions/{sess}/end", body, "application/json")


# OTLP, the logging handler: what a log record can carry (no state ops, no http type).
def _plain_log(c: Carrier) -> bool:
    return c.event is not None and c.event["type"] == "log" and "state" not in c.event


def _any_value(v) -> dict:
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}
    if isinstance(v, float):
        return {"doubleValue": v}
    if isinstance(v, dict):
        return {"kvlistValue": {"values": [_kv(k, x) for k, x in v.items()]}}
    if isinstance(v, list):
        return {"arrayValue": {"values": [_any_value(x) for x in v]}}
    return {"stringValue": str(v)}


def _kv(key: str, value) -> dict:
    return {"key": key, "value": _any_value(value)}


def _otlp_logs(carriers, session) -> dict:
    records = []
    for c in carriers:
        if not _plain_log(c):
            continue
        attrs = {**c.event.get("payload", {}), "canary": c.canary}
        record = {"timeUnixNano": str(time.time_ns()), "severityNumber": 9,
                  "attributes": [_kv(k, v) for k, v in attrs.items()]}  # fmt: skip
        if "message" in c.event:
            record["body"] = {"stringValue": c.event["message"]}
        records.append(record)
    resource = {"session.id": session, **_meta(carriers)}
    return {"resourceLogs": [{
        "resource": {"attributes": [_kv(k, v) for k, v in resource.items()]},
        "scopeLogs": [{"scope": {"name": "checkout"}, "logRecords": records}],
    }]}  # fmt: skip


def send_otlp_json_logs(stack, key, carriers, session):
    _post(stack, key, "/v1/logs", orjson.dumps(_otlp_logs(carriers, session)), "application/json")


def send_otlp_protobuf_logs(stack, key, carriers, session):
    from google.protobuf import json_format
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    message = json_format.ParseDict(_otlp_logs(carriers, session), ExportLogsServiceRequest())
    _post(stack, key, "/v1/logs", message.SerializeToString(), "application/x-protobuf")


def send_otlp_json_traces(stack, key, carriers, session):
    spans = []
    for i, c in enumerate(carriers):
        if not _plain_log(c):
            continue
        attrs = {**c.event.get("payload", {}), "canary": c.canary}
        if "message" in c.event:
            attrs["db.statement"] = c.event["message"]
        now = time.time_ns()
        spans.append({
            "traceId": f"{i + 1:032x}", "spanId": f"{i + 1:016x}", "name": "GET /cart",
            "startTimeUnixNano": str(now), "endTimeUnixNano": str(now + 1_000_000),
            "attributes": [_kv(k, v) for k, v in attrs.items()],
        })  # fmt: skip
    resource = {"session.id": session, **_meta(carriers)}
    body = {"resourceSpans": [{
        "resource": {"attributes": [_kv(k, v) for k, v in resource.items()]},
        "scopeSpans": [{"scope": {"name": "checkout"}, "spans": spans}],
    }]}  # fmt: skip
    _post(stack, key, "/v1/traces", orjson.dumps(body), "application/json")


def _log_records(carriers) -> list[dict]:
    """LogRecord.__dict__ as HTTPHandler sends it: every value str()-ed."""
    records = []
    for c in carriers:
        if not (_plain_log(c) or c.text is not None):
            continue
        extra = {k: str(v) for k, v in (c.event or {}).get("payload", {}).items()}
        msg = c.text if c.text is not None else (c.event.get("message") or "payload record")
        records.append({
            "name": "shop.checkout", "msg": msg, "args": "()", "levelname": "INFO",
            "levelno": "20", "created": str(time.time()), "relativeCreated": "1500.0",
            "process": "4242", "canary": c.canary, **extra,
        })  # fmt: skip
    return records


def send_logging_post(stack, key, carriers, session):
    from urllib.parse import urlencode

    for record in _log_records(carriers):
        body = urlencode(record).encode()
        _post(stack, key, "/ingest/logging", body, "application/x-www-form-urlencoded")


def send_logging_get(stack, key, carriers, session):
    import urllib.request
    from urllib.parse import urlencode

    for record in _log_records(carriers):
        url = stack.url("/ingest/logging?" + urlencode({**record, "key": key}))
        with urllib.request.urlopen(url, timeout=10) as resp:
            assert resp.status == 202


def _import_file(carriers, session) -> bytes:
    lines = [orjson.dumps({"session": {"key": session, **_meta(carriers)}})]
    lines += [orjson.dumps(_with_canary(c, session)) for c in carriers if c.event]
    return b"\n".join(lines) + b"\n"


def send_import_api(stack, key, carriers, session):
    _post(stack, key, "/api/v1/import", _import_file(carriers, session), "application/x-ndjson")


def send_import_command(stack, key, carriers, session):
    path = stack.data_dir.parent / f"{session}.ndjson"  # outside the data directory
    path.write_bytes(_import_file(carriers, session))
    stack.manage("import", str(path), "--app", "shop")
    path.unlink()


def _events_or_meta(c: Carrier) -> bool:
    return c.event is not None or c.meta is not None


@dataclass(frozen=True)
class Path:
    name: str
    send: Callable
    accepts: Callable[[Carrier], bool]  # the carriers this path can deliver


PATHS = [
    Path("JSON array", send_json_array, lambda c: c.event is not None),
    Path("JSON object with session metadata", send_json_object, _events_or_meta),
    Path("gzip JSON", send_gzip_json, _events_or_meta),
    Path("NDJSON with a session header line", send_ndjson, _events_or_meta),
    Path("gzip NDJSON", send_gzip_ndjson, _events_or_meta),
    Path("POST /api/v1/sessions metadata", send_session_api, lambda c: c.meta is not None),
    Path("POST /api/v1/sessions/{key}/end reason", send_session_end, lambda c: c.text is not None),
    Path("OTLP/JSON logs", send_otlp_json_logs, lambda c: _plain_log(c) or c.meta is not None),
    Path("OTLP protobuf logs", send_otlp_protobuf_logs,
         lambda c: _plain_log(c) or c.meta is not None),
    Path("OTLP/JSON traces", send_otlp_json_traces, lambda c: _plain_log(c) or c.meta is not None),
    Path("logging handler POST", send_logging_post, lambda c: _plain_log(c) or c.text is not None),
    Path("logging handler GET", send_logging_get, lambda c: _plain_log(c) or c.text is not None),
    Path("import API", send_import_api, _events_or_meta),
    Path("manage.py import", send_import_command, _events_or_meta),
]  # fmt: skip


# --- the server and its files -------------------------------------------------------------


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    # The first payload dictionary as soon as there are samples enough: most events of
    # this module are then stored packed, as in any database past its first minutes.
    s = Stack(
        tmp_path_factory.mktemp("secrets"),
        web_workers=1,
        threads=4,
        env={"FLIGHTREC_PAYLOAD_DICT_FIRST_AFTER": "1"},
    )
    s.start()
    s.key = s.manage("apikey", "shop").strip().splitlines()[-1]
    yield s
    s.stop()


def disk_files(data_dir: FsPath) -> dict[str, bytes]:
    """Every database, WAL, SHM and queue file in the data directory, and the stored
    payloads unpacked: they are zstd-packed on disk (recorder/payloads.py), where a
    plain byte search could not see a secret in them."""
    files = {}
    for f in sorted(data_dir.iterdir()):
        if f.is_file() and ".sqlite3" in f.name:
            files[f.name] = f.read_bytes()
    files["payloads, unpacked"] = unpacked_payloads(data_dir / "flightrec.sqlite3")
    return files


def unpacked_payloads(db: FsPath) -> bytes:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        payloads.sqlite_register(con, str(db))
        rows = con.execute("SELECT fr_json(payload) FROM recorder_event").fetchall()
    finally:
        con.close()
    return "\n".join(text for (text,) in rows if text).encode()


def _count(db: FsPath, sql: str) -> int:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return con.execute(sql).fetchone()[0]
    finally:
        con.close()


def wait_drained(stack: Stack, canaries: list[str], timeout: float = 60) -> None:
    """Until the inbox is empty and every canary is in the main database."""
    main, inbox = stack.data_dir / "flightrec.sqlite3", stack.data_dir / "inbox.sqlite3"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _count(inbox, "SELECT COUNT(*) FROM recorder_inboxbatch") == 0:
            con = sqlite3.connect(f"file:{main}?mode=ro", uri=True, timeout=30)
            try:
                payloads.sqlite_register(con, str(main))
                rows = con.execute("SELECT actor, fr_json(payload) FROM recorder_event").fetchall()
                rows += con.execute("SELECT metadata, key FROM recorder_session").fetchall()
            finally:
                con.close()
            text = repr(rows)
            if all(c in text for c in canaries):
                return
        time.sleep(0.2)
    raise TimeoutError("the drain did not store every event in time")


def _leaks(files: dict[str, bytes], carriers: list[Carrier]) -> list[str]:
    leaks = []
    for c in carriers:
        for secret in c.secrets:
            for name, data in files.items():
                if secret.encode() in data:
                    leaks.append(f"{c.name}: {secret!r} found in {name}")
    return leaks


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.name)
def test_no_default_rule_lets_a_secret_reach_the_disk(stack, path):
    carriers = [c for c in all_carriers() if path.accepts(c)]
    assert carriers
    session = "run-" + marker(6)
    path.send(stack, stack.key, carriers, session)
    wait_drained(stack, [c.canary for c in carriers])

    files = disk_files(stack.data_dir)
    # The files this test is about are all there (WAL files exist while the server runs).
    assert {"flightrec.sqlite3", "inbox.sqlite3", "huey.sqlite3"} <= set(files)
    assert any(name.endswith("-wal") for name in files)
    everything = b"".join(files.values())
    assert all(c.canary.encode() in everything for c in carriers)
    assert _leaks(files, carriers) == []


def test_the_payloads_searched_above_were_stored_packed(stack):
    con = sqlite3.connect(f"file:{stack.data_dir / 'flightrec.sqlite3'}?mode=ro", uri=True)
    try:
        kinds = dict(con.execute("SELECT typeof(payload), COUNT(*) FROM recorder_event GROUP BY 1"))
    finally:
        con.close()
    assert kinds.get("blob", 0) > kinds.get("text", 0)


def test_the_api_key_is_not_on_disk_either(stack):
    files = disk_files(stack.data_dir)
    secret_part = stack.key[len("fr_") + 6 :]
    assert [name for name, data in files.items() if secret_part.encode() in data] == []


def test_secrets_stay_off_disk_after_a_clean_shutdown(tmp_path):
    # WAL content is folded into the database files on shutdown; check those too.
    s = Stack(tmp_path / "data", web_workers=1, threads=2)
    s.start()
    try:
        key = s.manage("apikey", "shop").strip().splitlines()[-1]
        carriers = [c for c in all_carriers() if c.event is not None or c.meta is not None]
        send_json_object(s, key, carriers, "shutdown-run")
        wait_drained(s, [c.canary for c in carriers])
    finally:
        s.stop()
    files = disk_files(s.data_dir)
    assert b"".join(files.values()).count(carriers[0].canary.encode()) >= 1
    assert _leaks(files, carriers) == []

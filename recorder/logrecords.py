"""Python's stdlib `logging.handlers.HTTPHandler` records in, flightrec envelopes out.

HTTPHandler sends `record.__dict__` form-encoded, every value str()-ed: `msg` is the raw
format string and `args` the repr of the arguments. Nothing here evaluates `args`
(it is a string from the network); `message` is used when a formatter already set it.

The session is the sending process: host (the record's `hostname` field if a handler
adds one, else the peer address) + pid + process start. A LogRecord does not carry the
process start, but `created - relativeCreated / 1000` is the time the logging module
was imported, which is the same for every record of one process.
"""

import base64
import hashlib
from datetime import UTC, datetime
from typing import Any

from recorder import ingest

# Fields every LogRecord has; anything else came from `extra=` and is kept as such.
STANDARD = frozenset({
    "name", "msg", "args", "levelname", "levelno", "pathname", "filename", "module",
    "exc_info", "exc_text", "stack_info", "lineno", "funcName", "created", "msecs",
    "relativeCreated", "thread", "threadName", "processName", "process", "taskName",
    "message", "asctime",
})  # fmt: skip
# Query parameters of our own, never record fields.
OURS = frozenset({"key", "api_key"})


def _number(value: str | None, cast=float) -> Any:
    if value in (None, "", "None"):
        return None
    try:
        return cast(value)
    except ValueError:
        return None


def _level(levelno: int | None, levelname: str) -> str:
    if levelno is None:
        return levelname.lower() if levelname.lower() in ingest.SEVERITY_NAMES else "info"
    for number, name in ((50, "fatal"), (40, "error"), (30, "warn"), (20, "info")):
        if levelno >= number:
            return name
    return "debug"


def session_key(fields: dict[str, str], peer: str) -> tuple[str, dict]:
    host = fields.get("hostname") or fields.get("host") or peer or "unknown"
    pid = fields.get("process") or "0"
    created = _number(fields.get("created"))
    relative = _number(fields.get("relativeCreated"))
    meta: dict[str, Any] = {"host": host, "pid": _number(pid, int), "sender": "logging.HTTPHandler"}
    if fields.get("processName"):
        meta["process_name"] = fields["processName"]
    started = ""
    if created is not None and relative is not None:
        start = datetime.fromtimestamp(round(created - relative / 1000), UTC)
        started = start.strftime("%Y%m%dT%H%M%SZ")
        meta["process_started_at"] = start.isoformat().replace("+00:00", "Z")
    return f"{host[:60]}-{pid[:12]}-{started or 'unknown'}"[:128], meta


def logrecord_batch(fields: dict[str, str], *, peer: str) -> ingest.Batch:
    """One form-decoded LogRecord as a one-event batch."""
    fields = {k: v for k, v in fields.items() if k not in OURS}
    key, meta = session_key(fields, peer)
    levelno = _number(fields.get("levelno"), int)
    message = fields.get("message") or fields.get("msg") or ""
    payload: dict[str, Any] = {
        "logger": fields.get("name"),
        "level": fields.get("levelname"),
        "pathname": fields.get("pathname"),
        "lineno": _number(fields.get("lineno"), int),
        "func": fields.get("funcName"),
        "module": fields.get("module"),
        "thread": fields.get("threadName"),
        "thread_id": _number(fields.get("thread"), int),
    }
    if fields.get("args") not in (None, "", "None", "()"):
        payload["args"] = fields["args"]  # the repr, as text: never evaluated
    if fields.get("message") and fields.get("msg") and fields["msg"] != fields["message"]:
        payload["format"] = fields["msg"]
    for name in ("exc_text", "stack_info"):
        if fields.get(name) not in (None, "", "None"):
            payload[name] = fields[name]
    extra = {k: v for k, v in fields.items() if k not in STANDARD and k not in ("hostname", "host")}
    if extra:
        payload["extra"] = extra
    item: dict[str, Any] = {
        # The record itself is the identity: the same record sent twice is stored once.
        "id": "log-"
        + base64.urlsafe_b64encode(
            hashlib.blake2b(repr(sorted(fields.items())).encode(), digest_size=15).digest()
        ).decode(),
        "type": "log",
        "severity": _level(levelno, fields.get("levelname", "")),
        "message": message,
        "payload": {k: v for k, v in payload.items() if v is not None},
    }
    if (created := _number(fields.get("created"))) is not None:
        item["ts"] = created
    if fields.get("name"):
        item["source"] = fields["name"][:128]
    return ingest.Batch(session_key=key, session_meta=meta, items=[item])

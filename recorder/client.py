"""The flightrec Python client: standard library only, importable without Django.

    from recorder.client import Recorder

    rec = Recorder("http://127.0.0.1:8000", "fr_…", app_version="1.4.2")
    rec.record("http", {"method": "GET", "url": "/cart", "status": 200}, message="GET /cart")
    rec.state_merge({"cart": {"items": 3}})
    rec.flush()          # True once everything recorded so far is acknowledged

How an event travels, and why it survives a crash:

1. `record()` stamps the time and appends a dict to an in-memory buffer. Nothing else
   happens on the caller's thread (no I/O, no lock, no serialisation), so it costs a
   couple of microseconds.
2. A background thread wakes every 250 ms (or at 500 buffered events), takes a batch,
   gives each event a client-generated id (the server dedupes on it, so a retried batch
   is never stored twice), applies the type filters, redaction and `before_send`, and
   POSTs it gzipped to /api/v1/events.
3. A batch that is not acknowledged (network error, 429, 503, timeout) is appended to a
   spill file (NDJSON, fsync'd once per batch) and the sender backs off exponentially
   with jitter, honouring Retry-After. While the server is unreachable every batch goes
   to the spill, so the buffer never overflows into a drop. The spill is sent first
   when the server answers again, and removed once fully acknowledged.
4. A spill file left by a process that died (SIGKILL, power cut) is found by the next
   Recorder that uses the same spill directory and sent before its own events.

Redaction uses the server's default rules (recorder.redaction, stdlib only) and runs
before an event is sent or written to the spill, so secrets never reach the disk.

`flush()` returns once every event recorded before it is acknowledged (True) or, if
the server is unreachable, durably in the spill (False). An uncaught exception records
a `fatal` event with the traceback and flushes; a clean exit flushes and ends the
session; a crash leaves it open so the server marks it crashed or abandoned.

`enabled=False` (or FLIGHTREC_DISABLED=1) returns a recorder with the same API that
does nothing: no thread, no file, no socket.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import fcntl
import gzip
import http.client
import itertools
import json
import logging
import os
import platform
import random
import socket
import sys
import threading
import time
import traceback
import urllib.parse
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from recorder import redaction

__all__ = ["Recorder", "DisabledRecorder", "RecorderHandler", "init", "get", "LEVELS"]

log = logging.getLogger("flightrec.client")

DEFAULT_CAPACITY = 10_000
BATCH_SIZE = 500
FLUSH_INTERVAL = 0.25
BACKOFF_START = 0.5
BACKOFF_MAX = 30.0
SPILL_PREFIX = "spill-"
SPILL_SUFFIX = ".ndjson"
# Envelope fields a caller may pass to record() as keyword arguments.
FIELDS = frozenset(
    {"ts", "source", "severity", "message", "key", "correlation_id", "actor", "state", "id"}
)
LEVELS = {
    logging.DEBUG: "debug",
    logging.INFO: "info",
    logging.WARNING: "warn",
    logging.ERROR: "error",
    logging.CRITICAL: "fatal",
}


# One encoder for every event: json.dumps() with options builds a new one per call,
# about a microsecond a time on the sender's hot path.
_encode = json.JSONEncoder(separators=(",", ":"), default=str).encode


def _c_encoder() -> Callable[[Any], str] | None:
    """The C encoder behind _encode, built once instead of once per call (JSONEncoder
    builds it on every encode(): ~0.4 µs an event). Without the circular-reference
    check: a cyclic payload then fails with RecursionError instead of ValueError, and
    is counted as lost either way. None where the C accelerator is missing."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return None
    try:
        # json's own internal constructor: on a Python where its arguments differ, or
        # where it encodes differently, the documented encoder is used instead.
        chunks = make(
            None, str, json.encoder.encode_basestring_ascii, None, ":", ",", False, False, True
        )
        probe = {"a": [1, 2.5, None, True, "é"], "b": {}}
        if "".join(chunks(probe, 0)) != _encode(probe):
            return None
    except Exception:
        return None
    join = "".join

    def encode(obj: Any) -> str:
        return join(chunks(obj, 0))

    return encode


_encode_event = _c_encoder() or _encode


class _Flush:
    """A marker put in the buffer by flush(): the sender sets it once every event
    before it is acknowledged or durably spilled."""

    __slots__ = ("done", "acked")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.acked = True


class _Flight:
    """A batch whose request is sent and whose answer is not read yet."""

    __slots__ = ("lines", "conn")

    def __init__(self, lines: list[bytes], conn) -> None:
        self.lines = lines
        self.conn = conn


class _Retry(Exception):
    """The server did not take the batch but may later (network, 429, 503, 5xx)."""

    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.retry_after = retry_after


class _Refused(Exception):
    """The server will never take this batch as it is (400, 413...)."""


class _TooLarge(_Refused):
    """413: the batch is over the server's body limit; smaller parts may go through."""


def _env_disabled() -> bool:
    return os.environ.get("FLIGHTREC_DISABLED", "").lower() in ("1", "true", "yes", "on")


def _default_spill_dir() -> Path:
    base = os.environ.get("FLIGHTREC_SPILL_DIR")
    if base:
        return Path(base)
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "flightrec"


def _process_metadata(app_meta: dict) -> dict:
    meta = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "argv": list(sys.argv),
    }
    meta.update({k: v for k, v in app_meta.items() if v is not None})
    return meta


class DisabledRecorder:
    """Same API as Recorder, does nothing. What `Recorder(enabled=False)` returns."""

    enabled = False
    session_key = None
    lost = 0

    def record(self, type, payload=None, **fields):  # noqa: A002 - mirrors the envelope
        return None

    def state_set(self, path, value, **fields):
        return None

    def state_merge(self, value, **fields):
        return None

    def state_patch(self, ops, **fields):
        return None

    def flush(self, timeout: float | None = None) -> bool:
        return True

    def close(self, timeout: float | None = None) -> None:
        return None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None


class Recorder:
    """Records events for one session and sends them to a flightrec server.

    url: the server root (http://host:port) or its /api/v1/events endpoint.
    session: the session key; default: a new one per process launch.
    app_version, build, device, metadata…: session metadata (host, pid, python,
    platform and argv are added).
    types / exclude_types: only record these types / never record these.
    before_send(event) -> event or None: edit or drop an event (after redaction).
    redact: a redaction policy dict (see recorder.redaction), None for the defaults,
    False to send as is (the server still redacts).
    """

    def __new__(cls, *args, enabled: bool | None = None, **kwargs):
        if enabled is False or (enabled is None and _env_disabled()):
            return DisabledRecorder()
        return super().__new__(cls)

    def __init__(
        self,
        url: str,
        api_key: str,
        *,
        session: str | None = None,
        app_version: str | None = None,
        build: str | None = None,
        device: str | None = None,
        metadata: dict | None = None,
        enabled: bool | None = None,
        capacity: int = DEFAULT_CAPACITY,
        batch_size: int = BATCH_SIZE,
        flush_interval: float = FLUSH_INTERVAL,
        spill_dir: str | os.PathLike | None = None,
        types: Iterable[str] | None = None,
        exclude_types: Iterable[str] | None = None,
        before_send: Callable[[dict], dict | None] | None = None,
        redact: dict | bool | None = None,
        install_hooks: bool = True,
        timeout: float = 10.0,
        exit_timeout: float = 5.0,
    ):
        self.enabled = True
        self.url = url.rstrip("/")
        parsed = urllib.parse.urlsplit(self.url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError(f"url must be http(s)://host[:port], not {url!r}")
        root = parsed.path
        for suffix in ("/api/v1/events", "/api/v1"):
            if root.endswith(suffix):
                root = root[: -len(suffix)]
        self._scheme, self._host, self._port = parsed.scheme, parsed.hostname, parsed.port
        self._root = root.rstrip("/")
        self._api_key = api_key
        self.session_key = session or self._new_session_key()
        self.metadata = _process_metadata(
            {"app_version": app_version, "build": build, "device": device, **(metadata or {})}
        )
        self.capacity = capacity
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.timeout = timeout
        self.exit_timeout = exit_timeout
        self._allow = frozenset(types) if types is not None else None
        self._deny = frozenset(exclude_types or ())
        self._before_send = before_send
        self._policy = None if redact is False else redaction.compile_policy(redact or None)
        # Client ids: a random per-run prefix and a counter. 96 random bits make a
        # collision with another run of the same application negligible.
        self._id_prefix = base64.urlsafe_b64encode(os.urandom(12)).decode()
        self._ids = itertools.count(1)

        self._buf: deque = deque()
        self._wake = threading.Event()
        self._stopping = False
        self._closed = False
        self._crashed = False
        self.lost = 0  # events that could be neither sent nor spilled (disk full)
        self._lost_reported = 0
        self.sent = 0
        self._backoff = 0.0
        self._retry_at = 0.0  # monotonic time before which the server is not tried
        self._conn: http.client.HTTPConnection | None = None

        self.spill_dir = Path(spill_dir) if spill_dir is not None else _default_spill_dir()
        # One file per run, even when runs share an explicit session key.
        run = f"{self._safe(self.session_key)}-{os.getpid()}-{os.urandom(4).hex()}"
        self.spill_path = self.spill_dir / f"{SPILL_PREFIX}{run}{SPILL_SUFFIX}"
        self._header_line: bytes | None = None
        self._spill_file = None  # opened (and locked) on first spill
        self._spill_sent = 0  # bytes of our spill already acknowledged
        self._spill_unsynced = False
        self._orphans = self._find_orphans()

        self._thread = threading.Thread(target=self._run, name="flightrec-sender", daemon=True)
        self._thread.start()
        atexit.register(self._atexit)
        if install_hooks:
            self._install_hooks()

    # --- Public API ---------------------------------------------------------------------

    def record(self, type: str, payload: dict | None = None, **fields: Any) -> None:  # noqa: A002
        """Record one event. Returns at once; the sender thread does the rest."""
        if self._allow is not None and type not in self._allow:
            return
        if type in self._deny:
            return
        event = {"ts": time.time(), "type": type}
        if payload is not None:
            event["payload"] = payload
        if fields:
            event.update(fields)
        buf = self._buf
        buf.append(event)
        n = len(buf)
        if n == self.batch_size or n == self.capacity:
            self._wake.set()

    def state_set(self, path: str, value: Any, **fields: Any) -> None:
        """Set the value at a JSON pointer in the session state ("" = whole document)."""
        self.record("state", state={"op": "set", "path": path, "value": value}, **fields)

    def state_merge(self, value: dict, **fields: Any) -> None:
        """RFC 7386 merge patch into the session state."""
        self.record("state", state={"op": "merge", "value": value}, **fields)

    def state_patch(self, ops: list, **fields: Any) -> None:
        """RFC 6902 JSON Patch on the session state."""
        self.record("state", state={"op": "patch", "patch": ops}, **fields)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything recorded so far is acknowledged (True) or, if the server
        cannot be reached, durably spilled to disk (False; also on timeout)."""
        if self._closed or not self._thread.is_alive():
            return False
        if threading.current_thread() is self._thread:
            return False  # called from before_send: waiting on ourselves would hang
        marker = _Flush()
        self._buf.append(marker)
        self._wake.set()
        if not marker.done.wait(self.timeout * 3 if timeout is None else timeout):
            return False
        return marker.acked

    def close(self, timeout: float | None = None) -> None:
        """Flush, end the session (unless it crashed) and stop the sender."""
        if self._closed:
            return
        timeout = self.exit_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        acked = self.flush(timeout)
        if acked and not self._crashed:
            with contextlib.suppress(_Retry, _Refused, OSError):
                self._post(
                    f"/api/v1/sessions/{urllib.parse.quote(self.session_key, safe='')}/end",
                    json.dumps({"ts": time.time()}).encode(),
                    timeout=max(0.1, deadline - time.monotonic()),
                )
        self._closed = True
        self._stopping = True
        self._wake.set()
        self._thread.join(max(0.1, deadline - time.monotonic()))
        if self._spill_file is not None and not self._thread.is_alive():
            self._spill_file.close()
            self._spill_file = None
        with contextlib.suppress(Exception):
            atexit.unregister(self._atexit)

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc is not None:
            self._record_fatal(exc_type, exc, tb, where="with block")
        self.close()

    # --- Session, ids, hooks ------------------------------------------------------------

    @staticmethod
    def _new_session_key() -> str:
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        return f"{socket.gethostname()[:60]}-{os.getpid()}-{stamp}-{os.urandom(3).hex()}"

    @staticmethod
    def _safe(key: str) -> str:
        return "".join(c if c.isalnum() or c in "-_." else "_" for c in key)[:150]

    def _install_hooks(self) -> None:
        previous_sys = sys.excepthook
        previous_thread = threading.excepthook

        def sys_hook(exc_type, exc, tb):
            if not self._closed and not issubclass(exc_type, KeyboardInterrupt):
                self._record_fatal(exc_type, exc, tb, where="main thread")
                self.flush(self.exit_timeout)
            previous_sys(exc_type, exc, tb)

        def thread_hook(args):
            if not self._closed and args.exc_type is not SystemExit:
                name = args.thread.name if args.thread else "?"
                self._record_fatal(
                    args.exc_type, args.exc_value, args.exc_traceback, where=f"thread {name}"
                )
                self.flush(self.exit_timeout)
            previous_thread(args)

        sys.excepthook = sys_hook
        threading.excepthook = thread_hook

    def _record_fatal(self, exc_type, exc, tb, *, where: str) -> None:
        self._crashed = True
        self.record(
            "crash",
            {
                "exception": exc_type.__name__,
                "where": where,
                "traceback": "".join(traceback.format_exception(exc_type, exc, tb)),
            },
            severity="fatal",
            message=f"{exc_type.__name__}: {exc}",
        )

    def _atexit(self) -> None:
        self.close(self.exit_timeout)

    # --- Sender thread ------------------------------------------------------------------

    def _run(self) -> None:
        try:
            for path in self._orphans:
                self._send_orphan(path)
            while True:
                self._wake.wait(self.flush_interval)
                self._wake.clear()
                self._tick()
                if self._stopping and not self._buf:
                    break
        except Exception:  # the sender must never take the app down
            log.exception("flightrec sender stopped")
        finally:
            self._close_conn()

    def _tick(self) -> None:
        """Move everything buffered out: to the server when it answers, else to the spill.

        Batches are pipelined: a batch's request goes out, the next batch is prepared
        (ids, redaction, JSON) while the server handles it, and only then is the answer
        read. Without this the client and the server took turns, each idle half the time.
        """
        self._report_loss()
        flight: _Flight | None = None
        try:
            while self._buf:
                events, markers = self._take()
                lines = self._prepare(events) if events else []
                if flight is not None:
                    self._land(flight)
                    flight = None
                online = self._online()
                if online and self._spill_pending():
                    online = self._send_spill()
                if lines:
                    if online:
                        flight = self._launch(lines)
                    else:
                        self._spill(lines)
                if markers:
                    if flight is not None:
                        self._land(flight)
                        flight = None
                    self._sync_spill()
                    acked = self._online() and not self._spill_pending()
                    for marker in markers:
                        marker.acked = acked
                        marker.done.set()
                if not events and not markers:
                    break
                if len(self._buf) < self.batch_size and not markers and not self._stopping:
                    break  # a partial batch waits for the next tick
        finally:
            if flight is not None:
                self._land(flight)
        if self._online() and self._spill_pending():
            self._send_spill()
        self._sync_spill()

    def _take(self) -> tuple[list, list]:
        """Up to batch_size events from the buffer, stopping after a flush marker."""
        events, markers = [], []
        buf = self._buf
        limit = self.batch_size
        # Over capacity while the server is not answering: take it all, it goes to the
        # spill in one write instead of growing in memory. While the server answers,
        # batches stay batch_size: one oversized request would be refused (413) whole.
        if len(buf) > self.capacity and not self._online():
            limit = len(buf)
        while buf and len(events) < limit:
            item = buf.popleft()
            if type(item) is _Flush:
                markers.append(item)
                break
            events.append(item)
        return events, markers

    def _prepare(self, events: list[dict]) -> list[bytes]:
        """Ids, redaction and before_send; one NDJSON line per event that is kept."""
        lines = []
        session = self.session_key
        prefix = self._id_prefix
        ids = self._ids
        policy = self._policy
        hook = self._before_send
        encode = _encode_event
        for event in events:
            try:
                # The dict is record()'s own, never the caller's: completed in place.
                if "id" not in event:
                    event["id"] = f"{prefix}{next(ids):x}"
                if "session" not in event:
                    event["session"] = session
                # Serialised first: a copy through JSON means redaction never edits the
                # caller's objects, and odd values (datetime, Decimal, sets) become text
                # instead of failing the batch. Most events have nothing to scrub, and
                # then this first encoding is the line that is sent: when the event is
                # plain JSON that redaction would leave alone (checked without copying
                # it), the copy is skipped too.
                line = encode(event)
                if hook is None and (policy is None or redaction.event_untouched(event, policy)):
                    lines.append(line.encode())
                    continue
                copy = json.loads(line)
                changed = policy is not None and redaction.redact_event(copy, policy)
                if hook is not None:
                    copy = hook(copy)
                    if copy is None:
                        continue
                    changed = True
                if changed:
                    line = encode(copy)
                lines.append(line.encode())
            except Exception as exc:  # one bad event must not sink the batch
                self._count_lost(1, f"event could not be prepared: {exc!r}")
        return lines

    def _header(self) -> bytes:
        """The NDJSON session header line: key and (redacted) metadata, built once."""
        if self._header_line is None:
            meta = json.loads(json.dumps(self.metadata, default=str))
            if self._policy is not None:
                redaction.redact_mapping(meta, self._policy)
            doc = {"session": {"key": self.session_key, **meta}}
            self._header_line = json.dumps(doc, separators=(",", ":")).encode()
        return self._header_line

    def _events_body(self, lines: list[bytes], header: bytes | None = None) -> bytes:
        return b"\n".join([header or self._header(), *lines, b""])  # one copy, not two

    def _send_lines(self, lines: list[bytes], header: bytes | None = None) -> None:
        body = self._events_body(lines, header)
        try:
            self._post("/api/v1/events", body, content_type="application/x-ndjson")
        except _TooLarge as exc:
            # Over the server's body limit, which the client cannot know (big captured
            # bodies): halves until each part fits, so that only an event too large on
            # its own is lost. On _Retry the caller sends every line again; the parts
            # that went through are not stored twice (event ids are idempotent).
            if len(lines) == 1:
                self._count_lost(1, f"server refused an event as too large: {exc}")
                return
            middle = len(lines) // 2
            self._send_lines(lines[:middle], header)
            self._send_lines(lines[middle:], header)
            return
        self.sent += len(lines)
        self._backoff = 0.0

    def _launch(self, lines: list[bytes]) -> _Flight:
        """Send a batch's request without waiting for the answer (see _tick)."""
        data = gzip.compress(self._events_body(lines), compresslevel=1)
        conn: http.client.HTTPConnection | None = self._connection(self.timeout)
        try:
            conn.request(
                "POST", self._root + "/api/v1/events", data,
                self._headers("application/x-ndjson"),
            )  # fmt: skip
        except (OSError, http.client.HTTPException):
            self._close_conn()
            conn = None  # _land sends it again the plain way, on a new connection
        return _Flight(lines, conn)

    def _land(self, flight: _Flight) -> None:
        """Read a launched batch's answer: counted as sent, spilled, or counted as lost."""
        try:
            try:
                answered = self._answered(flight)
            except _TooLarge:
                answered = False  # sent again below, which halves it until it fits
            if answered:
                self.sent += len(flight.lines)
                self._backoff = 0.0
            else:
                # The kept-alive connection was gone: once more on a fresh one. A batch
                # the server did take is not stored twice (event ids are idempotent).
                self._send_lines(flight.lines)
        except _Retry as exc:
            self._fail(exc)
            self._spill(flight.lines)
        except _Refused as exc:
            self._count_lost(len(flight.lines), f"server refused a batch: {exc}")

    def _answered(self, flight: _Flight) -> bool:
        """False when the answer could not be read; raises _Retry/_Refused on an error."""
        if flight.conn is None:
            return False
        try:
            answer = self._read_answer(flight.conn.getresponse())
        except (OSError, http.client.HTTPException):
            self._close_conn()
            return False
        self._check(*answer)
        return True

    # --- HTTP ---------------------------------------------------------------------------

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        if self._conn is None:
            cls = (
                http.client.HTTPSConnection
                if self._scheme == "https"
                else http.client.HTTPConnection
            )
            self._conn = cls(self._host, self._port, timeout=timeout)
        self._conn.timeout = timeout
        if self._conn.sock is not None:
            self._conn.sock.settimeout(timeout)
        return self._conn

    def _close_conn(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None

    def _post(self, path: str, body: bytes, *, content_type: str = "application/json",
              timeout: float | None = None) -> None:  # fmt: skip
        # A fresh connection per call from close() so it never races the sender's one.
        own = threading.current_thread() is self._thread
        data = gzip.compress(body, compresslevel=1)
        headers = self._headers(content_type)
        timeout = self.timeout if timeout is None else timeout
        for attempt in (1, 2):  # a kept-alive connection the server closed: reconnect once
            if own:
                conn = self._connection(timeout)
            else:
                cls = (
                    http.client.HTTPSConnection
                    if self._scheme == "https"
                    else http.client.HTTPConnection
                )
                conn = cls(self._host, self._port, timeout=timeout)
            try:
                conn.request("POST", self._root + path, data, headers)
                answer = self._read_answer(conn.getresponse())
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                if own:
                    self._close_conn()
                else:
                    conn.close()
                if attempt == 2:
                    raise _Retry(f"connection lost: {exc}") from None
            except (OSError, http.client.HTTPException) as exc:
                if own:
                    self._close_conn()
                else:
                    conn.close()
                raise _Retry(f"cannot reach {self._host}:{self._port}: {exc}") from None
            finally:
                if not own:
                    conn.close()
        self._check(*answer)

    @staticmethod
    def _read_answer(response: http.client.HTTPResponse) -> tuple[int, str, str | None]:
        """Status, the start of the body (for messages) and Retry-After. Reads the whole
        body so that the kept-alive connection can carry the next request."""
        text = response.read()[:500].decode("utf-8", "replace")
        return response.status, text, response.getheader("Retry-After")

    def _headers(self, content_type: str) -> dict[str, str]:
        return {
            "Content-Type": content_type,
            "Content-Encoding": "gzip",
            "X-API-Key": self._api_key,
            "User-Agent": "flightrec-python",
        }

    @staticmethod
    def _check(status: int, text: str, retry_after: str | None) -> None:
        """Nothing for a 2xx; _Retry for what a later attempt can fix, else _Refused."""
        if 200 <= status < 300:
            return
        if status in (401, 403, 408, 429) or status >= 500:
            # 401/403 too: a key being rotated must not cost the events recorded meanwhile.
            wait = None
            with contextlib.suppress(TypeError, ValueError):
                wait = float(retry_after)
            raise _Retry(f"HTTP {status}: {text}", wait)
        if status == 413:
            raise _TooLarge(f"HTTP {status}: {text}")
        raise _Refused(f"HTTP {status}: {text}")

    def _online(self) -> bool:
        return time.monotonic() >= self._retry_at

    def _fail(self, exc: _Retry) -> None:
        """Exponential backoff with full jitter; Retry-After wins when the server gives one."""
        self._backoff = min(BACKOFF_MAX, max(BACKOFF_START, self._backoff * 2))
        wait = random.uniform(self._backoff / 2, self._backoff)
        if exc.retry_after is not None:
            wait = max(0.0, min(exc.retry_after, 3600.0))
        self._retry_at = time.monotonic() + wait
        log.debug("flightrec: %s; retrying in %.1fs", exc, wait)

    # --- Spill --------------------------------------------------------------------------

    def _open_spill(self):
        if self._spill_file is None:
            self.spill_dir.mkdir(parents=True, exist_ok=True)
            f = open(self.spill_path, "ab")  # noqa: SIM115 - kept open for the run
            # The lock tells a Recorder starting later that this spill is still owned.
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            if f.tell() == 0:
                f.write(self._header() + b"\n")
            self._spill_file = f
        return self._spill_file

    def _spill(self, lines: list[bytes]) -> None:
        try:
            f = self._open_spill()
            f.write(b"\n".join(lines) + b"\n")
            f.flush()
            self._spill_unsynced = True
        except OSError as exc:
            self._count_lost(len(lines), f"spill failed: {exc}")

    def _sync_spill(self) -> None:
        # fsync once per tick, not per batch: the batches of one tick share the cost.
        if self._spill_unsynced and self._spill_file is not None:
            try:
                os.fsync(self._spill_file.fileno())
            except OSError as exc:
                log.warning("flightrec: fsync of the spill failed: %s", exc)
            self._spill_unsynced = False

    def _spill_pending(self) -> bool:
        return self._spill_file is not None and self._spill_file.tell() > self._spill_sent

    def _send_spill(self) -> bool:
        """Send our own spill from where the last acknowledged chunk ended. True when all
        of it is acknowledged (the file is then removed)."""
        f = self._spill_file
        self._sync_spill()
        with open(self.spill_path, "rb") as reader:
            reader.seek(self._spill_sent)
            if self._spill_sent == 0:
                reader.readline()  # the header line
            while True:
                start = reader.tell()
                lines = [reader.readline() for _ in range(self.batch_size)]
                lines = [line.rstrip(b"\n") for line in lines if line.endswith(b"\n")]
                if not lines:
                    break
                try:
                    self._send_lines(lines)
                except _Retry as exc:
                    self._spill_sent = start
                    self._fail(exc)
                    return False
                except _Refused as exc:
                    self._count_lost(len(lines), f"server refused spilled events: {exc}")
                self._spill_sent = reader.tell()
        if self._spill_sent >= f.tell():
            f.close()
            self._spill_file = None
            self._spill_sent = 0
            with contextlib.suppress(FileNotFoundError):
                self.spill_path.unlink()
        return True

    def _find_orphans(self) -> list[Path]:
        """Spill files of runs that died. A file still locked belongs to a live process."""
        if not self.spill_dir.is_dir():
            return []
        return sorted(self.spill_dir.glob(f"{SPILL_PREFIX}*{SPILL_SUFFIX}"))

    def _send_orphan(self, path: Path) -> None:
        """Send a dead run's spill under its own session, then remove it. Retries until the
        server takes it; our own events go to our spill meanwhile."""
        try:
            f = open(path, "rb")  # noqa: SIM115
        except FileNotFoundError:
            return
        with f:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return  # another live process owns it, or is already sending it
            header = f.readline().rstrip(b"\n")
            if not header.startswith(b'{"session"'):
                f.seek(0)  # no header: the events carry their session themselves
                header = b"{}"
            while True:
                chunk = [f.readline() for _ in range(self.batch_size)]
                # A line cut short by the crash has no newline: it was never complete.
                lines = [line.rstrip(b"\n") for line in chunk if line.endswith(b"\n")]
                if not lines:
                    break
                while True:
                    try:
                        self._send_lines(lines, header=header)
                        break
                    except _Retry as exc:
                        self._fail(exc)
                        self._drain_to_spill_while_waiting()
                        if self._stopping:
                            return  # left in place for the next run
                    except _Refused as exc:
                        self._count_lost(len(lines), f"server refused spilled events: {exc}")
                        break
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def _drain_to_spill_while_waiting(self) -> None:
        """While an orphan spill waits for the server, our own buffer goes to our spill."""
        while not self._online() and not self._stopping:
            self._wake.wait(min(self.flush_interval, max(0.0, self._retry_at - time.monotonic())))
            self._wake.clear()
            while self._buf:
                events, markers = self._take()
                if events:
                    self._spill(self._prepare(events))
                self._sync_spill()
                for marker in markers:
                    marker.acked = False
                    marker.done.set()

    # --- Loss accounting ----------------------------------------------------------------

    def _count_lost(self, n: int, reason: str) -> None:
        self.lost += n
        log.warning("flightrec: %d event(s) lost: %s", n, reason)

    def _report_loss(self) -> None:
        """Tell the server, as an event, how many events could not be kept. Sent on its
        own and never spilled: when the spill is what failed, spilling the report would
        only lose it too. Its id is fixed by the running total, so a retry is stored once."""
        if self.lost <= self._lost_reported or not self._online():
            return
        total = self.lost
        n = total - self._lost_reported
        event = {
            "id": f"{self._id_prefix}loss{total}",
            "ts": time.time(),
            "type": "flightrec:loss",
            "severity": "warn",
            "message": f"{n} event(s) could not be sent or spilled",
            "payload": {"lost": n, "total_lost": total},
        }
        try:
            self._send_lines(self._prepare([event]))
        except _Retry as exc:
            self._fail(exc)
            return
        except _Refused:
            pass
        self._lost_reported = total


# --- Module-level default recorder -------------------------------------------------------

_default: Recorder | DisabledRecorder | None = None


def init(url: str | None = None, api_key: str | None = None, **options: Any):
    """Create the process-wide recorder (used by RecorderHandler and the Django
    middleware when they are given none). url and key default to FLIGHTREC_URL and
    FLIGHTREC_API_KEY."""
    global _default
    url = url or os.environ.get("FLIGHTREC_URL")
    api_key = api_key or os.environ.get("FLIGHTREC_API_KEY")
    if not url or not api_key:
        _default = DisabledRecorder()
    else:
        _default = Recorder(url, api_key, **options)
    return _default


def get() -> Recorder | DisabledRecorder:
    """The process-wide recorder (a disabled one until init() is called)."""
    return _default if _default is not None else DisabledRecorder()


# --- logging ---------------------------------------------------------------------------

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_RECORD_ATTRS = frozenset(logging.LogRecord("x", 0, "x", 0, "x", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}


def level_name(levelno: int) -> str:
    """A logging level number as a flightrec severity (custom levels round down)."""
    for number in (logging.CRITICAL, logging.ERROR, logging.WARNING, logging.INFO):
        if levelno >= number:
            return LEVELS[number]
    return "debug"


class RecorderHandler(logging.Handler):
    """A logging handler that records structured `log` events through a Recorder.

        logging.getLogger().addHandler(RecorderHandler(rec))

    Keeps the formatted message, level, logger, location, thread, exception traceback
    and `extra=` fields; batching, retries and the spill are the Recorder's.
    """

    def __init__(self, recorder: Recorder | DisabledRecorder | None = None, level=logging.NOTSET):
        super().__init__(level)
        self.recorder = recorder

    def emit(self, record: logging.LogRecord) -> None:
        rec = self.recorder or get()
        if not rec.enabled:
            return
        try:
            # Our own warnings about the sender must not feed back into it.
            if record.name.startswith("flightrec.client"):
                return
            payload = {
                "logger": record.name,
                "level": record.levelname,
                "pathname": record.pathname,
                "lineno": record.lineno,
                "func": record.funcName,
                "thread": record.threadName,
                "process": record.process,
            }
            extra = {k: v for k, v in record.__dict__.items() if k not in _RECORD_ATTRS}
            if extra:
                payload["extra"] = extra
            if record.exc_info and record.exc_info[0] is not None:
                payload["exception"] = "".join(traceback.format_exception(*record.exc_info))
            elif record.exc_text:
                payload["exception"] = record.exc_text
            if record.stack_info:
                payload["stack"] = record.stack_info
            rec.record(
                "log",
                payload,
                ts=record.created,
                severity=level_name(record.levelno),
                source=record.name,
                message=record.getMessage(),
            )
        except Exception:
            self.handleError(record)

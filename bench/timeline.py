"""Timeline benchmark: the queries behind the dashboard on a large generated database.

Generates a migrated SQLite file with N events (default 3,000,000: 1,000 sessions x
3,000 events, 8 types, over 30 days) by writing rows directly with executemany (with
the secondary indexes dropped during the load and rebuilt after, then the full-text
index rebuilt), then measures p95 server time of the selectors the pages and the API
run (ORM query + model instances, as the views get them), each next to the same query
in hand-written SQL on the same file.

With `--stack postgres` (DATABASE_URL set) the same data set goes into a fresh database
on that server (COPY, indexes and foreign keys built after the load, then VACUUM
ANALYZE), and the same queries run there, the raw baselines through psycopg.

    python -m bench.timeline --events 300000 [--keep PATH] [--runs 40]
    python -m bench timeline --stack postgres [--keep DBNAME]
"""

import argparse
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from bench.bulk import build_indexes, drop_event_indexes, pack_payloads

ALIAS = "bench_timeline"
TYPES = ["http", "log", "mqtt", "ble", "ui", "state", "audit", "metric"]
WORDS = ("cache refresh token timeout retry layout render checkout cart sync upload "
         "download battery network socket handshake firmware scan reading gateway "
         "login logout invoice approve export").split()  # fmt: skip
RARE = ["zeppelin", "quokka", "xylophone"]
SEV = [10, 20, 20, 20, 20, 20, 30, 30, 40, 50]  # fatal is rare per event below


def parse_args(args) -> argparse.Namespace:
    if isinstance(args, argparse.Namespace):
        ns = args
        defaults = vars(_parser().parse_args([]))
        for k, v in defaults.items():
            if not hasattr(ns, k) or getattr(ns, k) is None:
                setattr(ns, k, v)
        return ns
    return _parser().parse_args(list(args or []))


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bench.timeline")
    p.add_argument("--events", type=int, default=3_000_000)
    p.add_argument("--sessions", type=int, default=None, help="default: events / 3000")
    p.add_argument("--runs", type=int, default=40, help="samples per query")
    p.add_argument(
        "--keep", default=None, help="reuse/keep the generated DB at this path (PostgreSQL: name)"
    )
    p.add_argument("--stack", choices=["sqlite", "postgres"], default="sqlite")
    p.add_argument("--seed", type=int, default=1)
    return p


def _setup_django(path: Path | None, *, postgres_name: str | None = None) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "flightrec_site.settings")
    import django
    from django.conf import settings

    if not settings.configured or not django.apps.apps.ready:
        django.setup()
    from django.db import connections

    if postgres_name:
        connections.settings[ALIAS] = {**connections.settings["default"], "NAME": postgres_name}
        return
    connections.settings[ALIAS] = {
        **connections.settings["default"],
        "NAME": str(path),
        "OPTIONS": {"init_command": "PRAGMA journal_mode=WAL;PRAGMA mmap_size=268435456;"},
    }


APP_NAMES = [(f"app{i}", ["production", "staging"][i % 2]) for i in range(4)]
SESSION_COLUMNS = (
    "application_id, key, status, status_reason, started_at, ended_at, last_event_at,"
    " created_at, metadata, event_count, error_count, byte_count, last_seq, pinned"
)
EVENT_COLUMNS = (
    "application_id, session_id, seq, ts, received_at, type, source, severity, key,"
    " correlation_id, actor, message, payload, state, uid, size, redacted"
)


def sessions_and_events(*, events: int, sessions: int, seed: int, apps: list[int], now: datetime):
    """The data set, one session at a time: (session row, its event rows without the
    session id). Session rows follow SESSION_COLUMNS (times as datetimes, metadata as
    JSON text); event rows follow EVENT_COLUMNS from seq on."""
    rng = random.Random(seed)
    per_session = max(1, events // sessions)
    t_start = now - timedelta(days=30)
    uid = 0
    for s in range(sessions):
        app = apps[s % len(apps)]
        start = t_start + timedelta(seconds=rng.uniform(0, 30 * 86400 - per_session * 1.2))
        ts = int(start.timestamp() * 1_000_000)
        rows, errors, corr = [], 0, None
        for seq in range(1, per_session + 1):
            ts += int(rng.expovariate(1.0) * 1_000_000) + 1
            typ = TYPES[rng.randrange(8)]
            sev = SEV[rng.randrange(10)]
            if sev == 50 and rng.random() > 0.02:
                sev = 40
            errors += sev >= 40
            if seq % 7 == 1:
                corr = f"c{s}-{seq}"
            words = " ".join(rng.choice(WORDS) for _ in range(4))
            if rng.random() < 0.001:
                words += " " + rng.choice(RARE)
            key = payload = None
            if typ == "http":
                status = rng.choice([200, 200, 200, 201, 404, 500, 503])
                payload = {"method": rng.choice(["GET", "POST"]), "status": status,
                           "url": f"/api/{rng.choice(WORDS)}/{rng.randint(1, 99)}"}  # fmt: skip
            elif typ == "mqtt":
                room = rng.choice(["kitchen", "garage", "attic"])
                key = f"temp::{room}"
                payload = {"topic": f"sensors/{room}/temperature", "value": rng.uniform(15, 25)}
            elif typ == "ble":
                key = f"rssi::tag-{rng.randint(1, 9)}"
                payload = {"rssi": rng.randint(-95, -40)}
            elif typ == "metric":
                key = f"accuracy::{rng.choice(['vienna', 'graz', 'linz'])}"
                payload = {"accuracy_m": rng.uniform(2, 30)}
            uid += 1
            rows.append((
                seq, ts, ts, typ, rng.choice(["core", "net", "ui", "db"]), sev, key,
                corr if typ in ("http", "audit") else None,
                "user" if typ == "ui" else None, words,
                orjson.dumps(payload).decode() if payload is not None else None,
                None, f"u{uid}", 200, None,
            ))  # fmt: skip
        session = (
            app, f"s{s}", "ended" if rng.random() < 0.9 else "open", "", start, None,
            datetime.fromtimestamp(ts / 1e6, UTC), now,
            orjson.dumps({"app_version": f"{rng.randint(1, 5)}.{rng.randint(0, 9)}",
                          "device": rng.choice(["Pixel 7", "iPhone 15", "rpi-gw"])}).decode(),
            per_session, errors, per_session * 200, per_session, False,
        )  # fmt: skip
        yield session, app, rows


def generate(path: Path, *, events: int, sessions: int, seed: int) -> float:
    """Migrate an empty file, then bulk-load it. Returns seconds taken."""
    from django.core.management import call_command

    started = time.perf_counter()
    call_command("migrate", database=ALIAS, verbosity=0)
    db = sqlite3.connect(path)
    db.execute("PRAGMA synchronous=OFF")
    db.execute("PRAGMA journal_mode=WAL")
    indexes = drop_event_indexes(db)
    db.execute("DROP TRIGGER IF EXISTS recorder_event_fts_delete")
    now = datetime.now(UTC)
    apps = []
    for name, environment in APP_NAMES:
        cur = db.execute(
            "INSERT INTO recorder_application(name, environment, created_at, redaction) "
            "VALUES (?, ?, ?, '{}')",
            (name, environment, now.isoformat()),
        )
        apps.append(cur.lastrowid)
    data = sessions_and_events(events=events, sessions=sessions, seed=seed, apps=apps, now=now)
    for s, (session, app, rows) in enumerate(data):
        row = [v.isoformat(" ") if isinstance(v, datetime) else v for v in session]
        marks = ", ".join("?" * len(row))
        cur = db.execute(f"INSERT INTO recorder_session({SESSION_COLUMNS}) VALUES ({marks})", row)
        sid = cur.lastrowid
        db.executemany(
            f"INSERT INTO recorder_event({EVENT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [(app, sid, *r) for r in rows],
        )
        if s % 50 == 49:
            db.commit()
    db.commit()
    build_indexes(db, indexes)
    # FTS5's own rebuild is right while the payloads are still JSON text; then they are
    # packed, as the product stores them.
    db.execute("INSERT INTO recorder_event_fts(recorder_event_fts) VALUES ('rebuild')")
    pack_payloads(db, path)
    db.execute(
        "CREATE TRIGGER IF NOT EXISTS recorder_event_fts_delete AFTER DELETE ON recorder_event "
        "BEGIN INSERT INTO recorder_event_fts(recorder_event_fts, rowid, message, payload) "
        "VALUES ('delete', old.id, old.message, fr_json(old.payload)); END"
    )
    db.commit()
    db.execute("ANALYZE")
    db.close()
    return time.perf_counter() - started


def generate_postgres(url: str, *, events: int, sessions: int, seed: int) -> float:
    """Load a freshly migrated PostgreSQL database with COPY. Returns seconds taken."""
    import psycopg

    from bench.bulk import build_indexes_postgres, drop_event_indexes_postgres

    started = time.perf_counter()
    now = datetime.now(UTC)
    with psycopg.connect(url.replace("postgres://", "postgresql://", 1)) as conn:
        indexes = drop_event_indexes_postgres(conn)
        apps = [
            conn.execute(
                "INSERT INTO recorder_application(name, environment, created_at, redaction) "
                "VALUES (%s, %s, %s, '{}') RETURNING id",
                (name, environment, now),
            ).fetchone()[0]
            for name, environment in APP_NAMES
        ]
        conn.commit()
        data = sessions_and_events(events=events, sessions=sessions, seed=seed, apps=apps, now=now)
        marks = ", ".join(["%s"] * 14)
        pending: list[tuple] = []
        for s, (session, app, rows) in enumerate(data):
            sid = conn.execute(
                f"INSERT INTO recorder_session({SESSION_COLUMNS}) VALUES ({marks}) RETURNING id",
                session,
            ).fetchone()[0]
            pending += [(app, sid, *r) for r in rows]
            if s % 50 == 49 or s == sessions - 1:
                with conn.cursor().copy(f"COPY recorder_event ({EVENT_COLUMNS}) FROM STDIN") as c:
                    for row in pending:
                        c.write_row(row)
                conn.commit()
                pending = []
        build_indexes_postgres(conn, indexes)
        conn.commit()
        conn.autocommit = True
        # What autovacuum would have done by the time anyone reads: statistics, and the
        # visibility map that index-only scans need.
        conn.execute("VACUUM ANALYZE")
    return time.perf_counter() - started


def _p95(samples: list[float]) -> float:
    samples = sorted(samples)
    return samples[min(len(samples) - 1, int(round(0.95 * (len(samples) - 1))))] * 1000


class Raw:
    """The hand-written baseline: sqlite3 on the file, or psycopg on the database. SQL is
    written with ? placeholders."""

    def __init__(self, target: Path | str):
        self.postgres = isinstance(target, str)
        if self.postgres:
            import psycopg

            # Never prepared: a prepared statement may switch to a generic plan after a few
            # runs, and the ORM (Django's psycopg backend) gets a plan for its values.
            self.db = psycopg.connect(
                target.replace("postgres://", "postgresql://", 1), prepare_threshold=None
            )
            self.db.autocommit = True
        else:
            from recorder import payloads

            self.db = sqlite3.connect(target)
            self.db.execute("PRAGMA mmap_size=268435456")
            payloads.sqlite_register(self.db, str(target))  # fr_json(): packed payloads

    def execute(self, sql: str, params=()) -> "Raw":
        self._cursor = (
            self.db.execute(sql.replace("?", "%s"), params or None)
            if self.postgres
            else self.db.execute(sql, params)
        )
        return self

    def fetchall(self) -> list:
        return self._cursor.fetchall()

    def close(self) -> None:
        self.db.close()


def measure(target: Path | str, *, runs: int, seed: int) -> list[dict]:
    from recorder import queries, search
    from recorder.fields import from_micros
    from recorder.models import Event, Session

    rng = random.Random(seed + 1)
    raw = Raw(target)
    pg = raw.postgres
    sessions = raw.execute(
        "SELECT id, application_id, (SELECT MIN(ts) FROM recorder_event e WHERE e.session_id = s.id),"
        " (SELECT MAX(ts) FROM recorder_event e WHERE e.session_id = s.id) FROM recorder_session s"
    ).fetchall()
    events = Event.objects.using(ALIAS)
    payload = "payload" if pg else "fr_json(payload)"  # stored packed on SQLite
    cols = ("id, application_id, session_id, seq, ts, received_at, type, source, severity, key, "
            f"correlation_id, actor, message, {payload}, state, uid, size, redacted")  # fmt: skip

    def pick():
        return sessions[rng.randrange(len(sessions))]

    def position(s, where):
        sid, _, lo, hi = s
        return {"first": None, "middle": lo + (hi - lo) // 2, "last": "last"}[where]

    def orm_page(s, f, where):
        qs = queries.filter_events(events.filter(session_id=s[0]), f, session_id=s[0])
        pos = position(s, where)
        if pos == "last":
            return queries.events_page(qs, last=True, limit=100).items
        start = from_micros(pos) if pos else None
        return queries.events_page(qs, start=start, limit=100).items

    def raw_page(s, sql_where, params, where):
        pos = position(s, where)
        base = f"SELECT {cols} FROM recorder_event WHERE session_id = ? {sql_where}"
        if pos == "last":
            q = base + " ORDER BY ts DESC, seq DESC LIMIT 101"
            return raw.execute(q, [s[0], *params]).fetchall()
        if pos:
            q = base + " AND ts >= ? ORDER BY ts, seq LIMIT 101"
            return raw.execute(q, [s[0], *params, pos]).fetchall()
        return raw.execute(base + " ORDER BY ts, seq LIMIT 101", [s[0], *params]).fetchall()

    E = queries.EventFilters
    cond = queries.parse_condition
    fts = queries.parse_filter_bar
    status_sql = (
        "AND (CASE WHEN jsonb_typeof(payload #> '{status}') = 'number' "
        "THEN (payload #>> '{status}')::numeric END) >= ?"
        if pg
        else "AND json_type(fr_json(payload), '$.status') IN ('integer','real') "
        "AND json_extract(fr_json(payload), '$.status') >= ?"
    )
    cases = [
        ("no filter", E(), "", []),
        ("type", E(types=["http"]), "AND type = ?", ["http"]),
        ("severity>=error", E(min_severity=40), "AND severity >= ?", [40]),
        ("key wildcard", E(key="temp::*"), "AND key LIKE ?" if pg else "AND key GLOB ?",
         ["temp::%" if pg else "temp::*"]),
        ("payload status>=500", E(where=[cond("status>=500")]), status_sql, [500]),
        ("source", E(sources=["net"]), "AND source = ?", ["net"]),
    ]  # fmt: skip
    results = []

    def timed(fn) -> float:
        t = time.perf_counter()
        fn()
        return time.perf_counter() - t

    for name, f, sql_where, params in cases:
        for where in ("first", "middle", "last"):
            orm, base = [], []
            for _ in range(runs):
                s = pick()
                orm.append(timed(lambda s=s, f=f, w=where: orm_page(s, f, w)))
                base.append(
                    timed(lambda s=s, sw=sql_where, p=params, w=where: raw_page(s, sw, p, w))
                )
            results.append(_row(f"timeline page, {name}, {where} page", orm, base, 20))

    # Full text in one session: a common word and a rare one.
    def raw_fulltext(s, word):
        if pg:
            doc = search.PG_DOCUMENT.format(t='"recorder_event"')
            return raw.execute(
                f"SELECT {cols} FROM recorder_event WHERE session_id = ? AND {doc} @@ "
                "to_tsquery('simple'::regconfig, ?) ORDER BY ts, seq LIMIT 101", (s[0], word)
            ).fetchall()  # fmt: skip
        return raw.execute(
            f"SELECT {cols} FROM recorder_event WHERE session_id = ? AND id IN (SELECT rowid "
            "FROM recorder_event_fts WHERE recorder_event_fts MATCH ? AND rowid >= (SELECT "
            "MIN(id) FROM recorder_event WHERE session_id = ?) AND rowid <= (SELECT MAX(id) "
            "FROM recorder_event WHERE session_id = ?)) ORDER BY ts, seq LIMIT 101",
            (s[0], f'"{word}"', s[0], s[0])).fetchall()  # fmt: skip

    for label, word in (("common word", "timeout"), ("rare word", "zeppelin")):
        orm, base = [], []
        for _ in range(runs):
            s = pick()
            orm.append(timed(lambda s=s, word=word: orm_page(s, fts(word), "first")))
            base.append(timed(lambda s=s, word=word: raw_fulltext(s, word)))
        results.append(_row(f"full text in one session, {label}", orm, base, 50))

    # Cross-session: one application, a one-hour window anywhere in the 30 days.
    lo = min(s[2] for s in sessions)
    hi = max(s[3] for s in sessions)
    orm, base = [], []
    for _ in range(runs):
        app = rng.choice(sorted({s[1] for s in sessions}))
        t0 = rng.randint(lo, hi - 3600 * 10**6)
        f = E(since=from_micros(t0), until=from_micros(t0 + 3600 * 10**6))
        orm.append(timed(lambda app=app, f=f: queries.events_page(
            queries.filter_events(events.filter(application_id=app), f), limit=100,
            order=queries.GLOBAL_ORDER).items))  # fmt: skip
        base.append(timed(lambda app=app, t0=t0: raw.execute(
            f"SELECT {cols} FROM recorder_event WHERE application_id = ? AND ts >= ? AND ts < ? "
            "ORDER BY ts, id LIMIT 101", (app, t0, t0 + 3600 * 10**6)).fetchall()))  # fmt: skip
    results.append(_row("cross-session time range page (1 app, 1 h)", orm, base, 50))

    # Session list: first page, and a filtered later page.
    sess = Session.objects.using(ALIAS).select_related("application")
    orm, base = [], []
    for _ in range(runs):
        orm.append(timed(lambda: queries.sessions_page(sess, limit=50)))
        base.append(timed(lambda: raw.execute(
            "SELECT s.*, a.* FROM recorder_session s JOIN recorder_application a ON "
            "a.id = s.application_id ORDER BY s.started_at DESC, s.id DESC LIMIT 51").fetchall()))  # fmt: skip
    results.append(_row("session list, first page", orm, base, 50))
    orm, base = [], []
    _, cursor = queries.sessions_page(sess, limit=50)
    f = queries.parse_session_filters({"status": "ended", "q": "pixel"})
    like, text = ("ILIKE", "::text") if pg else ("LIKE", "")
    for _ in range(runs):
        orm.append(timed(lambda: queries.sessions_page(
            queries.filter_sessions(sess, f), cursor=cursor, limit=50)))  # fmt: skip
        base.append(timed(lambda: raw.execute(
            "SELECT s.*, a.* FROM recorder_session s JOIN recorder_application a ON "
            f"a.id = s.application_id WHERE s.status = 'ended' AND (s.key {like} '%pixel%' OR "
            f"s.metadata{text} {like} '%pixel%') ORDER BY s.started_at DESC, s.id DESC LIMIT 51"
        ).fetchall()))  # fmt: skip
    results.append(_row("session list, status + text filter, second page", orm, base, 50))
    raw.close()
    return results


def _row(name: str, orm: list[float], base: list[float], target_ms: float) -> dict:
    value, baseline = _p95(orm), _p95(base)
    return {
        "name": name,
        "value": round(value, 2),
        "unit": "ms p95",
        "baseline": round(baseline, 2),
        "ratio": round(value / baseline, 2) if baseline else None,
        "note": f"target <= {target_ms} ms; median {statistics.median(orm) * 1000:.2f} ms",
    }


def postgres_database(name: str, *, events: int, sessions: int, seed: int) -> float | None:
    """Create, migrate and load database `name` on DATABASE_URL's server unless it holds
    events already (--keep). Returns the seconds the load took, None if reused."""
    import psycopg

    from tests.stack import ROOT, pg_execute, with_database

    admin = os.environ["DATABASE_URL"]
    url = with_database(admin, name)
    with psycopg.connect(admin.replace("postgres://", "postgresql://", 1)) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
    if exists:
        with psycopg.connect(url.replace("postgres://", "postgresql://", 1)) as conn:
            if conn.execute("SELECT EXISTS (SELECT 1 FROM recorder_event)").fetchone()[0]:
                return None
        pg_execute(admin, f'DROP DATABASE "{name}" WITH (FORCE)')
    pg_execute(admin, f'CREATE DATABASE "{name}"')
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v", "0"],
        cwd=ROOT, env={**os.environ, "DATABASE_URL": url}, check=True,
    )  # fmt: skip
    return generate_postgres(url, events=events, sessions=sessions, seed=seed)


def run_postgres(ns, sessions: int) -> list[dict]:
    from tests.stack import pg_execute, with_database

    admin = os.environ["DATABASE_URL"]
    name = ns.keep or f"flightrec_bench_timeline_{os.getpid()}"
    rows = []
    try:
        seconds = postgres_database(name, events=ns.events, sessions=sessions, seed=ns.seed)
        if seconds is not None:
            rows.append({
                "name": "timeline: load PostgreSQL", "value": round(seconds, 1), "unit": "s",
                "baseline": None, "ratio": None,
                "note": f"{ns.events} events in {sessions} sessions by COPY, indexes built "
                        "after, VACUUM ANALYZE",
            })  # fmt: skip
        _setup_django(None, postgres_name=name)
        rows += [
            {**row, "name": f"PostgreSQL: {row['name']}"}
            for row in measure(with_database(admin, name), runs=ns.runs, seed=ns.seed)
        ]
    finally:
        from django.db import connections

        if ALIAS in connections.settings:
            connections[ALIAS].close()
        if not ns.keep:
            pg_execute(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return rows


def run(args=None) -> list[dict]:
    ns = parse_args(args)
    sessions = ns.sessions or max(1, ns.events // 3000)
    if ns.stack == "postgres":
        return run_postgres(ns, sessions)
    tmp = None
    if ns.keep:
        path = Path(ns.keep)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="bench-timeline-")
        path = Path(tmp.name) / "timeline.sqlite3"
    _setup_django(path)
    rows = []
    try:
        if not path.exists() or path.stat().st_size < 100_000:
            seconds = generate(path, events=ns.events, sessions=sessions, seed=ns.seed)
            rows.append({
                "name": "timeline: generate DB", "value": round(seconds, 1), "unit": "s",
                "baseline": None, "ratio": None,
                "note": f"{ns.events} events in {sessions} sessions, indexes and FTS included",
            })  # fmt: skip
        rows += measure(path, runs=ns.runs, seed=ns.seed)
    finally:
        from django.db import connections

        connections[ALIAS].close()
        if tmp:
            tmp.cleanup()
    return rows


if __name__ == "__main__":
    from bench.__main__ import print_table

    print_table(run(sys.argv[1:]))

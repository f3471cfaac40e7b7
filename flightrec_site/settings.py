"""flightrec settings.

One file, configured from environment variables with defaults that work with no setup:
check out the code, install requirements.txt, run `manage.py migrate` and it runs on
SQLite files in ./var. PostgreSQL and Redis are chosen by `DATABASE_URL` and
`FLIGHTREC_QUEUE_URL` alone (see README, "Running at scale").
"""

import os
import secrets
import sys
import tempfile
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent

# pytest imports settings inside its own process; test-only choices key off this.
TESTING = "pytest" in sys.modules


def envbool(name: str, default: str = "False") -> bool:
    return os.getenv(name, default).lower() in ("1", "true", "yes", "on")


def envint(name: str, default: int) -> int:
    return int(os.getenv(name, str(default)))


DATA_DIR = Path(os.getenv("FLIGHTREC_DATA_DIR", BASE_DIR / "var")).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)


def _secret_key() -> str:
    """DJANGO_SECRET_KEY, else a random key kept in the data dir so logins survive restarts."""
    if key := os.getenv("DJANGO_SECRET_KEY"):
        return key
    path = DATA_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = envbool("DJANGO_DEBUG")
ALLOWED_HOSTS = os.getenv("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]").split(",")
CSRF_TRUSTED_ORIGINS = [o for o in os.getenv("DJANGO_CSRF_TRUSTED_ORIGINS", "").split(",") if o]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "huey.contrib.djhuey",
    "recorder",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Early, so redirects and errors from later middleware carry the policy too.
    "recorder.middleware.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "flightrec_site.urls"
WSGI_APPLICATION = "flightrec_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "recorder.context_processors.ingestion_status",
            ],
        },
    },
]

# --- Databases -------------------------------------------------------------------------
# Embedded default: two SQLite files in WAL mode. The inbox (the durable spool that an
# acknowledgement waits for) has its own file so that a 202 never waits behind the big
# event-insert transactions of the drain. IMMEDIATE transactions take the write lock at
# BEGIN, so two writers queue on the busy timeout instead of failing with "database is
# locked" when a read transaction tries to upgrade.
# WAL mode and auto_vacuum=INCREMENTAL are set per connection in recorder/sqlite_setup.py:
# auto_vacuum only on empty files, because on a populated file it is a write.
# journal_size_limit: the WAL file shrinks back after a big purge or drain.
# No mmap_size: with memory-mapped reads, new connections opened while another process
# commits sometimes read the schema as "database disk image is malformed" (SQLite 3.40;
# tests/test_chaos.py's timeline readers hit it in about one run in four).
SQLITE_PRAGMAS = (
    "PRAGMA journal_size_limit=67108864;"
    "PRAGMA synchronous={sync};"
    "PRAGMA foreign_keys=ON;"
    "PRAGMA temp_store=MEMORY;"
    "PRAGMA cache_size=-32000;"
)


def _sqlite(name: str, sync: str) -> dict:
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": DATA_DIR / name,
        "OPTIONS": {
            "init_command": SQLITE_PRAGMAS.format(sync=sync),
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        },
    }


DATABASE_URL = os.getenv("DATABASE_URL", "")
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
    # On PostgreSQL the inbox lives in the main database: the drain then deletes inbox
    # rows in the same transaction that inserts their events.
    INBOX_DB = "default"
else:
    DATABASES = {
        # FULL: a commit is on disk before it returns. The drain deletes inbox rows only
        # after the events' commit, so that commit must survive a power cut too.
        "default": _sqlite("flightrec.sqlite3", "FULL"),
        "inbox": _sqlite("inbox.sqlite3", "FULL"),
    }
    INBOX_DB = "inbox"
    if TESTING:
        # A file, not Django's default in-memory test database: with an in-memory one,
        # the live server's threads share one connection, and SQL that calls a Python
        # function (fr_json, recorder/payloads.py) can deadlock there (one thread in
        # SQLite waits for the GIL, another holds it and waits for SQLite). Production
        # never shares a connection between threads.
        DATABASES["default"]["TEST"] = {
            "NAME": str(Path(tempfile.gettempdir()) / f"flightrec-test-{os.getpid()}.sqlite3")
        }

DATABASE_ROUTERS = ["recorder.routers.InboxRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Queue -----------------------------------------------------------------------------
QUEUE_URL = os.getenv("FLIGHTREC_QUEUE_URL", "")
HUEY = {
    "name": "flightrec",
    # Tests run tasks inline; everything else goes through a real consumer process.
    "immediate": TESTING or envbool("FLIGHTREC_HUEY_IMMEDIATE"),
    "utc": True,
    "consumer": {
        "workers": 2,
        "worker_type": "thread",
        "check_worker_health": True,
        # Poll the SQLite queue at least 4 times a second even when idle, so a woken
        # drain starts within 250 ms (Huey's default backs off to 10 s). Redis blocks
        # on the queue instead of polling.
        "initial_delay": 0.05,
        "backoff": 1.15,
        "max_delay": 0.25,
    },
}
if QUEUE_URL:
    HUEY.update({"huey_class": "huey.RedisHuey", "url": QUEUE_URL})
else:
    HUEY.update({"huey_class": "huey.SqliteHuey", "filename": str(DATA_DIR / "huey.sqlite3")})

# --- Ingestion -------------------------------------------------------------------------
# Request bodies larger than this (before or after gzip) get 413.
FLIGHTREC_MAX_BODY_BYTES = envint("FLIGHTREC_MAX_BODY_BYTES", 10 * 1024 * 1024)
FLIGHTREC_MAX_BATCH_EVENTS = envint("FLIGHTREC_MAX_BATCH_EVENTS", 100_000)
# Backpressure: when this many events wait in the inbox, ingestion answers 429.
FLIGHTREC_INBOX_MAX_EVENTS = envint("FLIGHTREC_INBOX_MAX_EVENTS", 2_000_000)
# Below this much free disk in DATA_DIR ingestion answers 503 (nothing accepted is lost).
FLIGHTREC_MIN_FREE_DISK_BYTES = envint("FLIGHTREC_MIN_FREE_DISK_BYTES", 1024**3)
# SQLite packs payloads with a dictionary trained on the database's own events, the first
# one after this many events (recorder/payloads.py).
FLIGHTREC_PAYLOAD_DICT_FIRST_AFTER = envint("FLIGHTREC_PAYLOAD_DICT_FIRST_AFTER", 2000)
# --- Retention (recorder/retention.py) ---------------------------------------------------
# Global defaults; each Application may override them (0 or empty = no limit).
FLIGHTREC_RETENTION_DAYS = envint("FLIGHTREC_RETENTION_DAYS", 30)
FLIGHTREC_MAX_SESSIONS_PER_APP = envint("FLIGHTREC_MAX_SESSIONS_PER_APP", 0)
FLIGHTREC_MAX_EVENTS_PER_SESSION = envint("FLIGHTREC_MAX_EVENTS_PER_SESSION", 0)
# What a session over its event limit does: "drop_oldest" (the purge trims it) or
# "refuse" (the drain stores no more events for it and counts the refused ones).
FLIGHTREC_SESSION_OVERFLOW = os.getenv("FLIGHTREC_SESSION_OVERFLOW", "drop_oldest")
# Budget for the whole database in bytes (0 = none). Above 70 % of it captured HTTP
# bodies are dropped, oldest first; above 100 % the oldest unpinned sessions go.
FLIGHTREC_MAX_DB_BYTES = envint("FLIGHTREC_MAX_DB_BYTES", 0)
FLIGHTREC_BODY_DROP_RATIO = float(os.getenv("FLIGHTREC_BODY_DROP_RATIO", "0.7"))
# Deletes go in chunks of this many rows, each its own short transaction, with a pause
# in between so that a waiting writer (the drain) gets the lock: SQLite's busy handler
# is not fair, it polls, and a purge that re-takes the lock at once would starve it.
FLIGHTREC_PURGE_CHUNK = envint("FLIGHTREC_PURGE_CHUNK", 500)
FLIGHTREC_PURGE_PAUSE_MS = envint("FLIGHTREC_PURGE_PAUSE_MS", 30)
# An open session with no event for this long is marked abandoned.
FLIGHTREC_ABANDON_AFTER_SECONDS = envint("FLIGHTREC_ABANDON_AFTER_SECONDS", 6 * 3600)
DATA_UPLOAD_MAX_MEMORY_SIZE = FLIGHTREC_MAX_BODY_BYTES

# --- Serving -----------------------------------------------------------------------------
# Threads per gunicorn worker (`manage.py serve`). A replay stream holds a thread while
# it plays, so each process lets at most half of them stream: with 2 workers x 24
# threads, 24 concurrent replays still leave 24 threads for pages and ingestion.
FLIGHTREC_WEB_THREADS = envint("FLIGHTREC_WEB_THREADS", 24)

# --- Auth and static -------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
if TESTING:
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Failed log-ins are throttled per (username, client address) in every login path,
# the admin's included: the backend refuses while locked (recorder/login_throttle.py).
AUTHENTICATION_BACKENDS = ["recorder.login_throttle.ThrottledModelBackend"]
FLIGHTREC_LOGIN_MAX_FAILURES = envint("FLIGHTREC_LOGIN_MAX_FAILURES", 5)
# A password sprayer tries many usernames from one address: cap those too.
FLIGHTREC_LOGIN_MAX_FAILURES_PER_IP = envint("FLIGHTREC_LOGIN_MAX_FAILURES_PER_IP", 50)
FLIGHTREC_LOGIN_LOCKOUT_SECONDS = envint("FLIGHTREC_LOGIN_LOCKOUT_SECONDS", 15 * 60)
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "sessions"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
if DEBUG or TESTING:
    STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
if TESTING:
    # Tests never run collectstatic, so whitenoise would find no STATIC_ROOT and warn
    # each time a test client builds its middleware; nor should a checkout's old
    # collected files answer in tests. live_server serves /static/ from the finders.
    STATIC_ROOT = None

# --- Security headers and HTTPS --------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = True  # pages read the token from the form, never the cookie
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
# Sent on every response by recorder.middleware. No inline script anywhere: every page
# loads its own file from static/. Inline *styles* stay allowed because server-rendered
# markup sets widths and colours with style="" (bars, badges); with script-src and
# img-src locked to 'self' an injected style can neither run code nor send data out.
FLIGHTREC_CSP = os.getenv(
    "FLIGHTREC_CSP",
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
)
# Served over HTTPS: directly (FLIGHTREC_HTTPS=1) or behind a proxy that terminates
# TLS and says so in a header (FLIGHTREC_PROXY_SSL_HEADER=X-Forwarded-Proto; only set
# this when the proxy overwrites that header, or clients could forge "https").
if proxy_header := os.getenv("FLIGHTREC_PROXY_SSL_HEADER", ""):
    SECURE_PROXY_SSL_HEADER = ("HTTP_" + proxy_header.upper().replace("-", "_"), "https")
HTTPS = envbool("FLIGHTREC_HTTPS") or bool(proxy_header)
if HTTPS:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    # SecurityMiddleware only sends HSTS on requests it sees as secure.
    SECURE_HSTS_SECONDS = envint("FLIGHTREC_HSTS_SECONDS", 365 * 24 * 3600)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("FLIGHTREC_HSTS_INCLUDE_SUBDOMAINS")
    SECURE_SSL_REDIRECT = envbool("FLIGHTREC_SSL_REDIRECT")
    # Monitors poll /healthz over plain HTTP inside the network.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
# Which client address the login throttle counts: REMOTE_ADDR, unless a proxy we run
# appends the real one to X-Forwarded-For (then the last entry is the one it saw).
FLIGHTREC_TRUST_X_FORWARDED_FOR = envbool("FLIGHTREC_TRUST_X_FORWARDED_FOR")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.getenv("FLIGHTREC_LOG_LEVEL", "INFO")},
    # run_huey installs its own handler on the "huey" logger: don't print twice.
    "loggers": {"huey": {"level": "WARNING", "propagate": False}},
}

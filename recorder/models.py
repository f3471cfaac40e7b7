"""Applications, their API keys, sessions and events, and the ingestion inbox.

`Session.key` and `Event.uid` are relied on by operators' scripts: keep those names.
Timeline order is always (ts, seq).
"""

import hashlib
import secrets

from django.conf import settings
from django.db import models
from django.db.models import Q

from recorder.fields import EpochMicrosField, PackedJSONField


class Severity(models.IntegerChoices):
    # Same numbers as Python's logging levels, so log records map without a table.
    DEBUG = 10, "debug"
    INFO = 20, "info"
    WARN = 30, "warn"
    ERROR = 40, "error"
    FATAL = 50, "fatal"


class Application(models.Model):
    name = models.CharField(max_length=100, unique=True)
    environment = models.CharField(max_length=50, default="production")
    created_at = models.DateTimeField(auto_now_add=True)
    # Per-application redaction rules on top of the defaults (see recorder/redaction.py).
    redaction = models.JSONField(default=dict, blank=True)
    # Retention overrides (recorder/retention.py). None = the global default from
    # settings; 0 = no limit for this application.
    retention_days = models.PositiveIntegerField(null=True, blank=True)
    max_sessions = models.PositiveIntegerField(null=True, blank=True)
    max_events_per_session = models.PositiveIntegerField(null=True, blank=True)
    # db_default on columns added after the first release: rows written by plain SQL
    # (operators' scripts, bulk loaders) that do not name them still insert.
    session_overflow = models.CharField(
        max_length=12,
        blank=True,
        default="",
        db_default="",
        choices=[("drop_oldest", "drop the oldest events"), ("refuse", "refuse new events")],
    )
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="Membership", related_name="applications"
    )

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    class Role(models.TextChoices):
        ADMIN = "admin"
        VIEWER = "viewer"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    application = models.ForeignKey(Application, on_delete=models.CASCADE)
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.VIEWER)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "application"], name="membership_unique")
        ]

    def __str__(self) -> str:
        return f"{self.user} ({self.role} of {self.application})"


def hash_key(raw: str) -> str:
    # Keys are 256 random bits, so a fast hash is enough: there is nothing to brute-force.
    return hashlib.sha256(raw.encode()).hexdigest()


class ApiKey(models.Model):
    KEY_PREFIX = "fr_"

    application = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="keys")
    name = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(max_length=12)  # shown in lists so a key can be recognised
    hashed = models.CharField(max_length=64, unique=True)
    can_read = models.BooleanField(default=False)  # write-only unless granted
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.application})"

    @classmethod
    def generate(cls, application: Application, *, name: str = "", can_read: bool = False):
        """Create a key; returns (ApiKey, raw_key). The raw key is never stored."""
        raw = cls.KEY_PREFIX + secrets.token_urlsafe(32)
        key = cls.objects.create(
            application=application,
            name=name,
            prefix=raw[: len(cls.KEY_PREFIX) + 6],
            hashed=hash_key(raw),
            can_read=can_read,
        )
        return key, raw


class Session(models.Model):
    class Status(models.TextChoices):
        OPEN = "open"
        ENDED = "ended"
        CRASHED = "crashed"
        ABANDONED = "abandoned"

    application = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="sessions")
    key = models.CharField(max_length=128)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    status_reason = models.CharField(max_length=200, blank=True)
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    last_event_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    metadata = models.JSONField(default=dict, blank=True)
    event_count = models.BigIntegerField(default=0)
    error_count = models.BigIntegerField(default=0)
    byte_count = models.BigIntegerField(default=0)
    # Highest seq handed out; the drain continues from here.
    last_seq = models.BigIntegerField(default=0)
    pinned = models.BooleanField(default=False)
    # Events the drain refused because the session reached its event limit ("refuse"),
    # and the oldest events the purge removed to keep it under the limit ("drop_oldest").
    refused_count = models.BigIntegerField(default=0, db_default=0)
    trimmed_count = models.BigIntegerField(default=0, db_default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["application", "key"], name="session_key_per_app")
        ]
        indexes = [
            models.Index(fields=["application", "-started_at"], name="session_app_started"),
            models.Index(fields=["-started_at"], name="session_started"),
            models.Index(fields=["status", "last_event_at"], name="session_status_last"),
        ]

    def __str__(self) -> str:
        return f"{self.application}/{self.key}"


class Event(models.Model):
    id = models.BigAutoField(primary_key=True)
    # Denormalised from the session: the uid is unique per application, and
    # cross-session queries (by time, by correlation id) are per application.
    # No single-column FK indexes: the composite indexes below start with these columns
    # and serve the same lookups, and every index costs bytes and insert time per event.
    application = models.ForeignKey(
        Application, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    session = models.ForeignKey(
        Session, on_delete=models.CASCADE, related_name="events", db_index=False
    )
    seq = models.BigIntegerField()
    ts = EpochMicrosField()
    received_at = EpochMicrosField()
    type = models.CharField(max_length=64)
    source = models.CharField(max_length=128, null=True, blank=True)
    severity = models.SmallIntegerField(choices=Severity.choices, default=Severity.INFO)
    key = models.CharField(max_length=200, null=True, blank=True)
    correlation_id = models.CharField(max_length=128, null=True, blank=True)
    actor = models.CharField(max_length=128, null=True, blank=True)
    message = models.TextField(null=True, blank=True)
    payload = PackedJSONField(null=True, blank=True)  # zstd-packed on SQLite: recorder/payloads.py
    state = models.JSONField(null=True, blank=True)
    uid = models.CharField(max_length=64)
    size = models.IntegerField(default=0)  # bytes of the accepted envelope, for quotas
    redacted = models.JSONField(null=True, blank=True)  # paths scrubbed, never the values

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["application", "uid"], name="event_uid_per_app")
        ]
        # Every timeline query is "one session, in (ts, seq) order, narrowed by one
        # thing": these are the narrowings that are selective enough to need an index.
        indexes = [
            models.Index(fields=["session", "ts", "seq"], name="event_timeline"),
            models.Index(fields=["session", "type", "ts", "seq"], name="event_type"),
            models.Index(
                fields=["session", "key", "ts", "seq"],
                name="event_key",
                condition=Q(key__isnull=False),
            ),
            models.Index(
                fields=["application", "correlation_id"],
                name="event_correlation",
                condition=Q(correlation_id__isnull=False),
            ),
            models.Index(fields=["application", "ts"], name="event_app_ts"),
        ]

    def __str__(self) -> str:
        return f"{self.type} #{self.seq} in {self.session_id}"


class InboxBatch(models.Model):
    """One accepted request, durably spooled before the 202 goes out.

    Lives in its own database file on SQLite (see recorder.routers). The drain turns
    these into Session and Event rows and then deletes them.
    """

    class Kind(models.TextChoices):
        EVENTS = "events"
        SESSION = "session"  # start or update a session's metadata
        END = "end"  # end marker for a session

    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.EVENTS)
    application_id = models.IntegerField()
    api_key_id = models.IntegerField(null=True)
    received_at = models.DateTimeField(auto_now_add=True)
    event_count = models.IntegerField(default=0)
    body = models.BinaryField()  # orjson document, see "Spool format" in recorder/ingest.py

    def __str__(self) -> str:
        return f"inbox #{self.id}: {self.kind}, {self.event_count} events"


# --- Retention and storage (recorder/retention.py, recorder/storage.py) -------------------


class PurgeLog(models.Model):
    """One policy applied by one purge run: what it removed. Shown on /storage."""

    started_at = models.DateTimeField()
    finished_at = models.DateTimeField()
    policy = models.CharField(max_length=40)  # max_age, max_sessions, max_events, ...
    application = models.ForeignKey(Application, null=True, on_delete=models.SET_NULL)
    detail = models.CharField(max_length=200, blank=True)
    sessions_removed = models.BigIntegerField(default=0)
    events_removed = models.BigIntegerField(default=0)
    bodies_dropped = models.BigIntegerField(default=0)
    bytes_removed = models.BigIntegerField(default=0)

    class Meta:
        indexes = [models.Index(fields=["-started_at"], name="purgelog_started")]

    def __str__(self) -> str:
        return f"{self.policy} at {self.started_at:%Y-%m-%d %H:%M}"


class StorageSample(models.Model):
    """Size of the database once a day (updated by the periodic purge), for the growth chart."""

    day = models.DateField(unique=True)
    db_bytes = models.BigIntegerField()
    events = models.BigIntegerField()
    sessions = models.BigIntegerField()

    def __str__(self) -> str:
        return f"{self.day}: {self.db_bytes} bytes"


class Counter(models.Model):
    """Monotonic counters for /metrics, moved by the drain inside its own transaction.

    In the database, not in process memory: gunicorn runs several web processes and the
    consumer is another one, so only a shared store gives one true value per scrape.
    """

    name = models.CharField(max_length=80, primary_key=True)
    value = models.FloatField(default=0)

    def __str__(self) -> str:
        return f"{self.name}={self.value}"


class IngestCounter(models.Model):
    """Counters moved by the request side (rejections); lives in the inbox database so
    that counting never waits behind the drain's transactions."""

    name = models.CharField(max_length=80, primary_key=True)
    value = models.FloatField(default=0)

    def __str__(self) -> str:
        return f"{self.name}={self.value}"


class Keyframe(models.Model):
    """What a snapshot needs, materialized at one point of a session's timeline.

    A keyframe at position (ts, seq) holds the fold of every event at or before it:
    the state document, the latest event id per key, counts by type and severity and
    the last malformed-op errors. A snapshot at t reads the last keyframe at or before
    t and adds the events after it, so its cost does not grow with the session.
    Keyframes after a late (out-of-order) event are deleted by the drain and rebuilt
    (see recorder/timetravel.py).
    """

    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="+")
    ts = models.BigIntegerField()  # µs since the epoch, like Event.ts; position of the last event
    seq = models.BigIntegerField()
    event_id = models.BigIntegerField()  # the last event folded in (no FK: purges stay simple)
    ops = models.BigIntegerField()  # state ops folded up to here
    events = models.BigIntegerField()  # events up to here
    state = models.JSONField()
    latest = models.JSONField()  # key -> event id
    counts = models.JSONField()  # {"type": {...}, "severity": {...}}
    errors = models.JSONField()  # the last malformed ops: [{"event": id, "error": "..."}]
    error_total = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["session", "ts", "seq"], name="keyframe_position")
        ]

    def __str__(self) -> str:
        return f"keyframe at #{self.seq} ({self.ops} ops) of {self.session_id}"


class LoginFailure(models.Model):
    """One failed log-in, kept for the throttle window (see recorder/login_throttle.py).

    In the database, not the cache: the default cache is per process, and gunicorn
    runs several, each of which would otherwise grant its own quota of guesses.
    """

    username = models.CharField(max_length=150)  # as typed, lower-cased
    ip = models.CharField(max_length=45)
    at = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["username", "ip", "at"], name="loginfailure_user_ip"),
            models.Index(fields=["ip", "at"], name="loginfailure_ip"),
        ]

    def __str__(self) -> str:
        return f"failed log-in for {self.username} from {self.ip} at {self.at}"


class PayloadDictionary(models.Model):
    """A zstd dictionary payloads are packed with on SQLite (recorder/payloads.py).

    The newest is current; older ones stay for the rows packed with them. `dict_id` is
    the id written in each packed frame's header.
    """

    dict_id = models.BigIntegerField(unique=True)
    data = models.BinaryField()
    samples = models.IntegerField()  # payloads it was trained on
    last_event_id = models.BigIntegerField()  # the newest event when it was trained
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"payload dictionary {self.dict_id} ({self.created_at:%Y-%m-%d})"

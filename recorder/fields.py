"""Model fields of our own.

Event timestamps are stored as integer microseconds since the Unix epoch: 8 bytes
instead of a 26-character text in SQLite, exact (no float rounding, so (ts, seq) order
is stable), and compared as integers by the timeline indexes. In Python they are
timezone-aware datetimes, so ORM queries read naturally:
`Event.objects.filter(ts__gte=some_datetime)`.
"""

from datetime import UTC, datetime, timedelta

from django.db import models
from django.db.models.expressions import Col
from django.utils.functional import cached_property

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_micros(value: datetime) -> int:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = value - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(value: int) -> datetime:
    return EPOCH + timedelta(microseconds=value)


class EpochMicrosField(models.BigIntegerField):
    description = "Timestamp stored as microseconds since the Unix epoch"

    def from_db_value(self, value, expression, connection):
        return None if value is None else from_micros(value)

    def to_python(self, value):
        if value is None or isinstance(value, datetime):
            return value
        return from_micros(int(value))

    def get_prep_value(self, value):
        if isinstance(value, datetime):
            return to_micros(value)
        return super().get_prep_value(value)


class _PackedCol(Col):
    """The payload column as SQL sees it: JSON text on every database (see below)."""

    def as_sql(self, compiler, connection):
        sql, params = super().as_sql(compiler, connection)
        if connection.vendor == "sqlite":
            return f"fr_json({sql})", params
        return sql, params


class PackedJSONField(models.JSONField):
    """A JSONField stored packed on SQLite (recorder.payloads), plain jsonb elsewhere.

    Every read of the column in SQL is wrapped in fr_json(), so to the ORM, its JSON
    lookups and hand-written filters it is an ordinary JSON text column; writes pack
    the JSON with the current dictionary.
    """

    description = "JSON, stored zstd-packed with a trained dictionary on SQLite"

    def db_type(self, connection):
        return "blob" if connection.vendor == "sqlite" else super().db_type(connection)

    def db_check(self, connection):
        # JSON_VALID cannot read a packed BLOB; fr_json() is the check on the way out.
        return None if connection.vendor == "sqlite" else super().db_check(connection)

    def get_db_prep_value(self, value, connection, prepared=False):
        value = super().get_db_prep_value(value, connection, prepared)
        if connection.vendor != "sqlite" or not isinstance(value, str):
            return value
        from recorder import payloads

        return payloads.pack(value, payloads.current_dict_id(connection.alias))

    def get_col(self, alias, output_field=None):
        if output_field is None:
            output_field = self
        return _PackedCol(alias, self, output_field)

    @cached_property
    def cached_col(self):
        return _PackedCol(self.model._meta.db_table, self)

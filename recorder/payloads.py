"""How event payloads are stored on SQLite: zstd frames made with a trained dictionary.

Payloads are most of an event's bytes and repeat the same keys and values across
events (`"method":"GET","url":"https://…`), so a dictionary trained on the database's
own payloads shrinks each one about 3.5× (demo mix: 83 → 24 bytes per event) at about
0.6 µs to pack and 0.5 µs to unpack. PostgreSQL keeps `jsonb`, which its GIN full-text
index and operators' SQL read directly; this module is the SQLite storage format only.

A stored payload is one of:
- NULL;
- TEXT: the JSON itself (rows written before a dictionary existed, rows where packing
  would not save a byte, and every row written before this format);
- BLOB: a zstd frame whose header names its dictionary (`dict_id`, random, so ids never
  collide between databases and a process-wide cache keyed by id is safe).

SQL sees JSON text either way through `fr_json(payload)`, a function registered on
every SQLite connection (recorder.sqlite_setup): the ORM wraps the column in it
(recorder.fields.PackedJSONField), so filters, JSON lookups, exports and the full-text
index read plain JSON. A plain `sqlite3` shell has no such function: it can read the
other columns, and deleting events there fails (the full-text trigger calls it).

Dictionaries are rows of PayloadDictionary, kept for as long as rows may use them (16
KiB each). The first is trained after FIRST_AFTER events and packs the rows stored
before it; a new one becomes current each time the database has grown tenfold, and
every RETRAIN_DAYS, so packing follows what applications send (dictionary_due).
"""

import random
import sqlite3
import threading
from collections.abc import Callable
from datetime import timedelta

import zstandard
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.utils import timezone

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
DICT_SIZE = 16 * 1024
LEVEL = 3
FIRST_AFTER = getattr(settings, "FLIGHTREC_PAYLOAD_DICT_FIRST_AFTER", 2000)  # events
MIN_SAMPLES = 200  # payloads; zstd cannot learn from fewer
TRAIN_SAMPLES = 5000
TRAIN_WINDOW = 50_000  # latest events the samples are spread over
GROWTH = 10
RETRAIN_DAYS = getattr(settings, "FLIGHTREC_PAYLOAD_DICT_DAYS", 7)
# Frames hold at most what the ingest limits let through; this bounds a damaged frame.
MAX_PAYLOAD_BYTES = 64 * 1024 * 1024

# dict_id -> dictionary bytes. Ids are random 31-bit numbers, so an id seen in any
# database of this process names the same dictionary.
_dictionaries: dict[int, bytes] = {}
# zstd compressor and decompressor objects must not be used by two threads at once
# (they release the GIL while they work), and gunicorn serves with threads: each
# thread builds its own from the shared bytes.
_local = threading.local()


class UnknownDictionary(LookupError):
    pass


def dictionary_add(dict_id: int, data: bytes) -> None:
    _dictionaries.setdefault(dict_id, bytes(data))


def _codec(dict_id: int) -> tuple[zstandard.ZstdCompressor, zstandard.ZstdDecompressor]:
    codecs = getattr(_local, "codecs", None)
    if codecs is None:
        codecs = _local.codecs = {}
    codec = codecs.get(dict_id)
    if codec is None:
        data = _dictionaries.get(dict_id)
        if data is None:
            raise UnknownDictionary(dict_id)
        zdict = zstandard.ZstdCompressionDict(data)
        codec = codecs[dict_id] = (
            zstandard.ZstdCompressor(
                dict_data=zdict, level=LEVEL, write_checksum=False, write_dict_id=True
            ),
            zstandard.ZstdDecompressor(dict_data=zdict),
        )
    return codec


def pack(text: str | None, dict_id: int | None) -> str | bytes | None:
    """JSON text -> its stored form with dictionary dict_id (None: no dictionary yet)."""
    if text is None or dict_id is None:
        return text
    return packer(dict_id)(text)


def packer(dict_id: int) -> Callable[[str], str | bytes]:
    """pack() with dictionary dict_id bound, for packing many payloads (the drain):
    JSON text in, the stored form out."""
    compress = _codec(dict_id)[0].compress

    def pack_one(text: str) -> str | bytes:
        raw = text.encode()
        packed = compress(raw)
        return packed if len(packed) < len(raw) else text

    return pack_one


def unpack(stored, load: Callable[[int], bytes | None] | None = None) -> str | None:
    """Stored form -> JSON text. `load(dict_id)` fetches a dictionary this process has
    not seen yet (another process trained it)."""
    if stored is None or isinstance(stored, str):
        return stored
    stored = bytes(stored)
    if not stored.startswith(ZSTD_MAGIC):  # a BLOB that is not ours: JSON bytes
        return stored.decode()
    dict_id = zstandard.get_frame_parameters(stored).dict_id
    _known(dict_id, load)
    return _codec(dict_id)[1].decompress(stored, max_output_size=MAX_PAYLOAD_BYTES).decode()


def _known(dict_id: int, fetch: Callable[[int], bytes | None] | None) -> None:
    """Make sure this process has dictionary dict_id: fetch(dict_id) gives its bytes when
    it has not been seen yet (None: there is no such dictionary)."""
    if dict_id not in _dictionaries:
        data = fetch(dict_id) if fetch else None
        if data is None:
            raise UnknownDictionary(dict_id)
        dictionary_add(dict_id, data)


# --- SQLite connections ------------------------------------------------------------


def _loader_for(path: str) -> Callable[[int], bytes | None]:
    """Fetch a dictionary through a separate read-only connection: SQL functions must
    not run queries on the connection that is calling them."""

    def load(dict_id: int) -> bytes | None:
        if not path or path == ":memory:" or "mode=memory" in path:
            return None
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        try:
            row = con.execute(
                "SELECT data FROM recorder_payloaddictionary WHERE dict_id = ?", (dict_id,)
            ).fetchone()
        except sqlite3.OperationalError:  # not migrated that far
            return None
        finally:
            con.close()
        return bytes(row[0]) if row else None

    return load


def sqlite_register(raw: sqlite3.Connection, path: str) -> None:
    """Give one SQLite connection fr_json(), and load the dictionaries it already has."""

    def fetch(dict_id: int) -> bytes:
        return raw.execute(
            "SELECT data FROM recorder_payloaddictionary WHERE dict_id = ?", (dict_id,)
        ).fetchone()[0]

    try:
        # Ids first: a connection is opened per request, and the dictionaries' bytes
        # (16 KiB each) only need reading once per process.
        for (dict_id,) in raw.execute("SELECT dict_id FROM recorder_payloaddictionary"):
            _known(dict_id, fetch)
    except sqlite3.OperationalError:  # a new file, or the inbox database: no such table
        pass
    raw.create_function("fr_json", 1, _fr_json(_loader_for(str(path))), deterministic=True)


def _fr_json(load: Callable[[int], bytes | None]) -> Callable:
    """fr_json() for one connection: unpack(), with the connection's own decompressors
    and its last answer kept. It runs once or more per row a filter scans, so it skips
    unpack()'s per-call lookups (a fifth of its cost); SQLite runs one statement at a
    time per connection, so neither is ever used by two threads at once.

    A payload condition calls it two to four times per row on the same value
    (`json_type(fr_json(p), …) … json_extract(fr_json(p), …)`): keeping the last answer
    halves the cost of scanning for `status>=500`."""
    decoders: dict[int, Callable] = {}
    last: list = [None, None]
    frame_dict_id = zstandard.get_frame_parameters

    def fr_json(stored):
        if stored is None or stored.__class__ is str:
            return stored
        if stored == last[0]:
            return last[1]
        if not stored.startswith(ZSTD_MAGIC):  # a BLOB that is not ours: JSON bytes
            text = stored.decode()
        else:
            dict_id = frame_dict_id(stored).dict_id
            decode = decoders.get(dict_id)
            if decode is None:
                _known(dict_id, load)
                zdict = zstandard.ZstdCompressionDict(_dictionaries[dict_id])
                decode = decoders[dict_id] = zstandard.ZstdDecompressor(dict_data=zdict).decompress
            text = decode(stored, max_output_size=MAX_PAYLOAD_BYTES).decode()
        last[0], last[1] = stored, text
        return text

    return fr_json


def column_sql(name: str) -> str:
    """An event column for a hand-written SELECT: the payload as JSON text everywhere."""
    quoted = connection.ops.quote_name(name)
    if name == "payload" and connection.vendor == "sqlite":
        return f"fr_json({quoted})"
    return quoted


# --- Dictionaries ----------------------------------------------------------------


def current_dict_id(using: str = DEFAULT_DB_ALIAS) -> int | None:
    """The dictionary new payloads are packed with (the newest), or None. On PostgreSQL
    payloads are not packed: always None."""
    if connections[using].vendor != "sqlite":
        return None
    from recorder.models import PayloadDictionary

    dictionaries = PayloadDictionary.objects.using(using)
    # The id only: this runs for every drain transaction, and the bytes (16 KiB) are
    # read once per process.
    dict_id = dictionaries.order_by("-id").values_list("dict_id", flat=True).first()
    if dict_id is not None:
        _known(dict_id, lambda i: dictionaries.values_list("data", flat=True).get(dict_id=i))
    return dict_id


def _last_event_id(using: str) -> int:
    from recorder.models import Event

    return Event.objects.using(using).order_by("-id").values_list("id", flat=True).first() or 0


def dictionary_due(latest, last_event_id: int) -> bool:
    """A new dictionary is due when there is none and FIRST_AFTER events exist, when
    the database has grown GROWTH times since the current one (early dictionaries learnt
    from the first minutes only), or when the current one is RETRAIN_DAYS old."""
    if latest is None:
        return last_event_id >= FIRST_AFTER
    if last_event_id >= latest.last_event_id * GROWTH:
        return True
    return latest.created_at <= timezone.now() - timedelta(days=RETRAIN_DAYS)


def dictionary_train(using: str = DEFAULT_DB_ALIAS):
    """Train a dictionary on recent payloads and make it current (no check whether one is
    due). Returns the new PayloadDictionary, or None with too little to learn from."""
    if connections[using].vendor != "sqlite":
        return None
    from recorder.models import Event, PayloadDictionary

    last_id = _last_event_id(using)
    # Evenly spread over the latest TRAIN_WINDOW events: what arrived lately from every
    # sender, not only the last seconds of one busy session.
    stride = max(1, min(last_id, TRAIN_WINDOW) // TRAIN_SAMPLES)
    with connections[using].cursor() as cursor:
        cursor.execute(
            f"SELECT fr_json(payload) FROM {Event._meta.db_table} "
            "WHERE id > %s AND payload IS NOT NULL AND id %% %s = 0",
            [last_id - TRAIN_WINDOW, stride],
        )
        samples = [row[0].encode() for row in cursor.fetchall()]
    trained = train(samples)
    if trained is None:
        return None
    dict_id, data = trained
    with transaction.atomic(using=using):
        return PayloadDictionary.objects.using(using).create(
            dict_id=dict_id, data=data, samples=len(samples), last_event_id=last_id
        )


def train(samples: list[bytes]) -> tuple[int, bytes] | None:
    """A new dictionary from sample payloads (JSON bytes), known to this process:
    (dict_id, its bytes), or None with too little to learn from."""
    if len(samples) < MIN_SAMPLES:
        return None
    dict_id = random.randint(32_768, 2**31 - 1)  # below 32768 is reserved by zstd
    try:
        zdict = zstandard.train_dictionary(DICT_SIZE, samples, dict_id=dict_id, level=LEVEL)
    except zstandard.ZstdError:  # too little variety to learn from
        return None
    dictionary_add(dict_id, zdict.as_bytes())
    return dict_id, zdict.as_bytes()


def dictionary_maybe_train(using: str = DEFAULT_DB_ALIAS):
    """Train when one is due (dictionary_due). Cheap enough to call after every drain:
    two indexed lookups. The first dictionary also packs what was stored before it."""
    if connections[using].vendor != "sqlite":
        return None
    from recorder.models import PayloadDictionary

    latest = PayloadDictionary.objects.using(using).order_by("-id").first()
    if not dictionary_due(latest, _last_event_id(using)):
        return None
    created = dictionary_train(using)
    if created is not None and latest is None:
        pack_stored(created.dict_id, using=using)  # the first FIRST_AFTER or so rows, once
    return created


def pack_stored(dict_id: int, *, chunk: int = 2000, using: str = DEFAULT_DB_ALIAS) -> int:
    """Pack the payloads still stored as JSON text, in short transactions (on SQLite each
    holds the write lock). The full-text index is untouched: its update trigger only
    fires when the JSON text changes. Returns how many rows were rewritten."""
    from recorder.models import Event

    table, done, last = Event._meta.db_table, 0, 0
    while True:
        with transaction.atomic(using=using), connections[using].cursor() as cursor:
            cursor.execute(
                f"SELECT id, payload FROM {table} WHERE id > %s AND typeof(payload) = 'text' "
                "ORDER BY id LIMIT %s",
                [last, chunk],
            )
            rows = cursor.fetchall()
            if not rows:
                return done
            changed = [
                (packed, pk)
                for pk, text in rows
                if not isinstance(packed := pack(text, dict_id), str)
            ]
            cursor.executemany(f"UPDATE {table} SET payload = %s WHERE id = %s", changed)
        done += len(changed)
        last = rows[-1][0]

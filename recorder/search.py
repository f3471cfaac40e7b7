"""Full-text search over event message and payload, backed by an index on each database.

SQLite: an FTS5 table with external content (the event table itself), columns message
and payload, without token positions (detail=none: words and prefixes, no phrases). The unicode61 tokenizer splits the payload's JSON text on punctuation, so
keys and string values become words: a flattened payload at no extra storage. The drain
adds new rows (`fts_index_new_events`); a trigger removes rows that retention deletes,
with the exact values they were indexed with (what external content requires). Payloads
are stored packed (recorder/payloads.py), so everything that feeds the index reads them
through fr_json(), FTS5's own 'rebuild' included: it is never used.

PostgreSQL: a GIN index over to_tsvector('simple', …) of the message and the payload's
JSON text with every run of punctuation and space replaced by one space. Without that
PostgreSQL's parser keeps "/api/checkout" as one file-path token; with it the words are
those FTS5 indexes, payload keys included. Queries must repeat the indexed expression
exactly (PG_DOCUMENT).

The "simple" configuration (no stemming, no stop words) matches the FTS5 tokenizer
closely enough that the same query finds the same events on both databases.
"""

import re

from django.db import connection

FTS_TABLE = "recorder_event_fts"
# A tsvector holds at most 1 MB: only the first PG_DOCUMENT_CHARS characters of message
# and payload are indexed (and searched), so a huge payload cannot fail its insert.
PG_DOCUMENT_CHARS = 100_000
PG_DOCUMENT = (
    "to_tsvector('simple'::regconfig, regexp_replace(left("
    "COALESCE({t}.\"message\", '') || ' ' || COALESCE({t}.\"payload\"::text, ''), "
    f"{PG_DOCUMENT_CHARS}), '[[:punct:][:space:]]+', ' ', 'g'))"
)
# Letters and digits only, as FTS5's unicode61 tokenizer reads them (an underscore
# separates words there too): each term is then one token, never a phrase, which the
# position-less index (detail=none) could not answer.
_WORD = re.compile(r"[^\W_]+\*?", re.UNICODE)


def fts_terms(text: str) -> list[str]:
    """Words of a free-text query; a trailing * keeps prefix search."""
    return [w for w in _WORD.findall(text) if w.strip("*")]


def sqlite_match(text: str) -> str:
    """An FTS5 MATCH expression: every word must occur (AND), each quoted so that user
    text can never be read as FTS5 syntax (NEAR, column filters, parentheses)."""
    parts = []
    for term in fts_terms(text):
        if term.endswith("*"):
            parts.append('"' + term[:-1] + '"*')
        else:
            parts.append('"' + term + '"')
    return " ".join(parts)


def postgres_tsquery(text: str) -> str:
    """A to_tsquery('simple', …) expression: words ANDed, prefix with :*."""
    parts = []
    for term in fts_terms(text):
        word = term.rstrip("*").lower()
        parts.append(word + ":*" if term.endswith("*") else word)
    return " & ".join(parts)


def fts_last_event_id() -> int:
    """Highest event id now stored; the drain indexes everything above it after its insert."""
    if connection.vendor != "sqlite":
        return 0
    with connection.cursor() as cursor:
        cursor.execute("SELECT COALESCE(MAX(id), 0) FROM recorder_event")
        return cursor.fetchone()[0]


def fts_index_new_events(after_id: int) -> None:
    """Index events with id > after_id (SQLite; PostgreSQL maintains its GIN index itself).

    Runs inside the drain's transaction, which on SQLite holds the write lock, so no
    other writer can slip rows in between the insert and this statement.
    """
    if connection.vendor != "sqlite":
        return
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {FTS_TABLE}(rowid, message, payload) "
            "SELECT id, message, fr_json(payload) FROM recorder_event WHERE id > %s",
            [after_id],
        )


def fts_index_rows(rows) -> None:
    """Index (event id, message, payload JSON text) rows the caller has in hand (SQLite).

    The drain's way after an insert where every row went in: the same words as
    fts_index_new_events, without reading the rows back and unpacking each payload.
    The values must be exactly what the event row holds (the payload as JSON text), or
    the delete trigger would later remove words that were never indexed.
    """
    if connection.vendor != "sqlite":
        return
    with connection.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {FTS_TABLE}(rowid, message, payload) VALUES (%s, %s, %s)", rows
        )


def fts_rebuild() -> None:
    """Rebuild the whole SQLite index from the event table (after a bulk load or import)."""
    if connection.vendor != "sqlite":
        return
    # Not FTS5's 'rebuild': that reads the content table's payload column as stored,
    # packed (recorder/payloads.py); the index must see the JSON text.
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {FTS_TABLE}({FTS_TABLE}) VALUES ('delete-all')")
        cursor.execute(
            f"INSERT INTO {FTS_TABLE}(rowid, message, payload) "
            "SELECT id, message, fr_json(payload) FROM recorder_event"
        )

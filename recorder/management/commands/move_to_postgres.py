"""Copy an embedded (SQLite) flightrec into the PostgreSQL database of DATABASE_URL."""

import sys
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from recorder.move import MoveError, move_to_postgres


class Command(BaseCommand):
    help = (
        "Copy users, applications, keys, members, sessions, events and the inbox from the "
        "SQLite files of a data directory into the empty, migrated PostgreSQL database "
        "named by DATABASE_URL. Stop flightrec on the SQLite files first."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--from",
            dest="source",
            type=Path,
            default=settings.DATA_DIR,
            help="data directory holding flightrec.sqlite3 and inbox.sqlite3 "
            "(default: FLIGHTREC_DATA_DIR)",
        )

    def handle(self, source, **options):
        bars = []

        def progress(table, total):
            if not sys.stderr.isatty() or total < 10_000:
                return lambda n: None
            bar = tqdm(total=total, desc=table, unit="rows", unit_scale=True, leave=False)
            bars.append(bar)
            return bar.update

        started = time.perf_counter()
        try:
            counts = move_to_postgres(source, progress=progress)
        except MoveError as exc:
            raise CommandError(str(exc)) from None
        finally:
            for bar in bars:
                bar.close()
        for table, n in counts.items():
            if n:
                self.stdout.write(f"{table}: {n} rows")
        elapsed = time.perf_counter() - started
        self.stdout.write(
            self.style.SUCCESS(f"moved {sum(counts.values())} rows in {elapsed:.1f}s from {source}")
        )

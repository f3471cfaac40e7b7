from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from recorder import storage


class Command(BaseCommand):
    help = "Consistent online copy of the databases into the directory PATH (ingestion goes on)."

    def add_arguments(self, parser):
        parser.add_argument("path", help="directory to write the copies into")

    def handle(self, path, **options):
        target = Path(path)
        if connection.vendor == "postgresql":
            self.stdout.write("PostgreSQL: take the backup with pg_dump (online, consistent):")
            self.stdout.write(storage.pg_dump_command(target))
            return
        for f in storage.backup_to(target):
            verdict = "ok" if f.check == "ok" else f"CHECK FAILED: {f.check}"
            self.stdout.write(
                f"{f.alias}: {f.path} ({f.bytes} bytes, {f.seconds:.2f}s) integrity {verdict}"
            )
            if f.check != "ok":
                raise CommandError("the copy did not pass its integrity check")
        self.stdout.write(
            "restore: stop the server and consumer, copy these files into FLIGHTREC_DATA_DIR, "
            "delete any -wal/-shm files next to them, start again"
        )

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from recorder import storage


class Command(BaseCommand):
    help = "Integrity check of the SQLite databases, with a verdict and recovery steps."

    def add_arguments(self, parser):
        parser.add_argument("--quick", action="store_true", help="PRAGMA quick_check (faster)")
        parser.add_argument("--path", action="append", help="check this file instead")

    def handle(self, quick, path, **options):
        if connection.vendor == "postgresql" and not path:
            self.stdout.write(
                "PostgreSQL keeps page checksums if the cluster was initialised with "
                "--data-checksums; verify with pg_amcheck, and restore a pg_dump if it fails."
            )
            return
        results = (
            [storage.check_file(Path(p), quick=quick) for p in path]
            if path
            else storage.databases_check(quick=quick)
        )
        damaged = []
        for r in results:
            if r.ok:
                self.stdout.write(f"OK       {r.path} ({r.seconds:.2f}s)")
                continue
            damaged.append(r)
            self.stdout.write(f"DAMAGED  {r.path}")
            for problem in r.problems[:20]:
                self.stdout.write(f"    {problem}")
        if damaged:
            self.stdout.write("\nRecovery steps:")
            for r in damaged:
                for i, step in enumerate(storage.recovery_steps(r.path), 1):
                    self.stdout.write(f"  {i}. {step}")
            raise CommandError(f"{len(damaged)} database file(s) damaged")
        self.stdout.write("verdict: every database file is intact")

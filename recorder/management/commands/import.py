"""python manage.py import FILE [--app APP_NAME]   (NDJSON or JSON, gzip detected; - = stdin)"""

import sys

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from recorder import importer


class Command(BaseCommand):
    help = (
        "Import an export file (NDJSON or JSON, gzip detected) in one transaction. Bad "
        "lines are reported by number and skipped; the exit status is then 1."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="path, or - for stdin")
        parser.add_argument(
            "--app", help="target application (created if missing); default: the file's"
        )

    def handle(self, file, app, **options):
        bar = tqdm(unit="ev", unit_scale=True, disable=not sys.stderr.isatty())
        try:
            raw = sys.stdin.buffer if file == "-" else open(file, "rb")  # noqa: SIM115
        except OSError as exc:
            raise CommandError(f"cannot read {file}: {exc}") from None
        try:
            result = importer.import_stream(raw, app_name=app, progress=bar.update)
        except importer.ImportFailed as exc:
            raise CommandError(str(exc)) from None
        finally:
            bar.close()
            if raw is not sys.stdin.buffer:
                raw.close()
        self.stdout.write(
            f"imported {result.imported} events into {result.application} "
            f"({len(result.sessions)} sessions: {', '.join(result.sessions[:5])}"
            f"{', …' if len(result.sessions) > 5 else ''}); "
            f"{result.duplicates} already present"
        )
        if not result.ok:
            for error in result.errors:
                self.stderr.write(str(error))
            if result.error_count > len(result.errors):
                self.stderr.write(f"… and {result.error_count - len(result.errors)} more")
            raise CommandError(f"{result.error_count} bad lines were skipped", returncode=1)

from django.core.management.base import BaseCommand, CommandError

from recorder import retention, storage
from recorder.models import Application


class Command(BaseCommand):
    help = "Apply the retention policies now: print what is (or would be) deleted."

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="only print what would go")
        parser.add_argument("--app", help="only this application (by name)")
        parser.add_argument("--verbose-sessions", action="store_true",
                            help="list every session removed")  # fmt: skip

    def handle(self, dry_run, app, verbose_sessions, **options):
        application = None
        if app:
            application = Application.objects.filter(name=app).first()
            if application is None:
                raise CommandError(f"no application named {app!r}")

        def progress(result):
            self.stdout.write(result.summary(dry_run))
            if verbose_sessions or dry_run:
                for line in result.lines[:50]:
                    self.stdout.write(line)
                if len(result.lines) > 50:
                    self.stdout.write(f"  ... and {len(result.lines) - 50} more")

        results = retention.purge_run(app=application, dry_run=dry_run, progress=progress)
        if not any(r.removed_anything for r in results):
            self.stdout.write("nothing to remove")
        if not dry_run:
            storage.storage_sample()
            self.stdout.write(f"database now uses {storage.database_used_bytes()} bytes")

"""Run the web server and the Huey consumer together, as `make run` does.

`--consumers N` starts N consumers, of which only the first schedules periodic tasks
(the others run with --no-periodic), the one rule of running several (docs/scaling.md).

Both are child processes; Ctrl-C (or SIGTERM) stops both, and if either dies the other
is stopped too, so a half-running recorder is never left behind.
"""

import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from recorder import startup


class Command(BaseCommand):
    help = "Serve the dashboard and API (gunicorn) and run the Huey consumer."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=os.getenv("FLIGHTREC_HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.getenv("FLIGHTREC_PORT", "8000")))
        parser.add_argument(
            "--web-workers", type=int, default=int(os.getenv("FLIGHTREC_WEB_WORKERS", "2"))
        )
        parser.add_argument("--threads", type=int, default=settings.FLIGHTREC_WEB_THREADS)
        parser.add_argument("--consumer-workers", type=int, default=2)
        parser.add_argument(
            "--consumers",
            type=int,
            default=int(os.getenv("FLIGHTREC_CONSUMERS", "1")),
            help="Huey consumer processes; only the first schedules periodic tasks",
        )

    def handle(self, host, port, web_workers, threads, consumer_workers, consumers, **options):
        if consumers > 1 and settings.INBOX_DB != "default":
            # SQLite takes one writer at a time: more consumers only wait for each
            # other and claim the same inbox rows.
            raise CommandError(
                "several consumers need PostgreSQL (DATABASE_URL); see docs/scaling.md"
            )
        try:
            startup.refuse_damaged_databases()
        except startup.DamagedDatabase as exc:
            raise CommandError(str(exc)) from None
        if not settings.DEBUG:
            call_command("collectstatic", interactive=False, verbosity=0)
        web = [
            sys.executable, "-m", "gunicorn", "flightrec_site.wsgi:application",
            "--bind", f"{host}:{port}", "--workers", str(web_workers),
            "--worker-class", "gthread", "--threads", str(threads),
            "--access-logfile", "-", "--graceful-timeout", "5",
        ]  # fmt: skip
        # --quiet: one log line per drain wake-up is noise; warnings and errors still show.
        consumer = [
            sys.executable, "manage.py", "run_huey", "--workers", str(consumer_workers), "--quiet",
        ]  # fmt: skip
        children = [subprocess.Popen(web, cwd=settings.BASE_DIR)]
        for i in range(max(1, consumers)):
            # Exactly one scheduler: every consumer that schedules periodic tasks would
            # enqueue each of them once more per tick.
            extra = ["--no-periodic"] if i > 0 else []
            children.append(subprocess.Popen(consumer + extra, cwd=settings.BASE_DIR))
        self.stdout.write(self.style.SUCCESS(f"flightrec is running at http://{host}:{port}/"))
        stopping = False

        def stop(signum, frame):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        try:
            while not stopping and all(p.poll() is None for p in children):
                time.sleep(0.2)
        finally:
            for p in children:
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 10
            for p in children:
                try:
                    p.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    p.kill()
        if not stopping:
            raise SystemExit(
                "stopped: the web server or the consumer exited (see its output above)"
            )
        self.stdout.write("flightrec stopped")

"""python manage.py export SESSION_ID [--format ndjson|json|har] [-o FILE] [--gzip]
python manage.py export --app APP [--from T] [--to T] [-o FILE]   (audit export)"""

import sys

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from recorder import export, queries
from recorder.models import Application, Event, Session


class Command(BaseCommand):
    help = (
        "Export a session (by id, or by key with --app) as NDJSON, JSON or HAR; or, with "
        "--app and no session, an application's events in a time range (audit export)."
    )

    def add_arguments(self, parser):
        parser.add_argument("session", nargs="?", help="session id, or session key with --app")
        parser.add_argument("--format", choices=export.FORMATS, default="ndjson")
        parser.add_argument("-o", "--output", help="file to write (default: stdout)")
        parser.add_argument("--gzip", action="store_true", help="gzip (implied by -o *.gz)")
        parser.add_argument("--app", help="application name")
        parser.add_argument("--from", dest="start", help="audit export: from (RFC 3339)")
        parser.add_argument("--to", dest="end", help="audit export: until, exclusive")
        parser.add_argument(
            "--filter", dest="filter_bar", default="",
            help='timeline filters, as in the filter bar: "type:http severity:>=warn status>=500"',
        )  # fmt: skip

    def handle(self, session, format, output, gzip, app, start, end, filter_bar, **options):
        gzipped = gzip or bool(output and output.endswith(".gz"))
        application = None
        if app:
            application = Application.objects.filter(name=app).first()
            if application is None:
                raise CommandError(f"no application named {app!r}")
        try:
            filters = queries.parse_event_filters({"filter": filter_bar})
        except queries.FilterError as exc:
            raise CommandError(str(exc)) from None
        events = queries.filter_events(Event.objects.all(), filters)
        extra = {} if filters.is_empty() else {"filters": filters.to_params()}
        bar = tqdm(unit="ev", unit_scale=True, disable=not sys.stderr.isatty())
        if session is not None:
            found = self._session(session, application)
            bar.total = found.event_count
            chunks = export.session_export(
                found, fmt=format, events=events, extra=extra, progress=bar.update
            )
        elif application is not None:
            try:
                window = export.parse_time(start), export.parse_time(end)
            except ValueError as exc:
                raise CommandError(str(exc)) from None
            if format == "har":
                raise CommandError("an audit export is ndjson or json")
            chunks = export.application_export(
                application, start=window[0], end=window[1], fmt=format, events=events,
                progress=bar.update,
            )  # fmt: skip
        else:
            raise CommandError("give a SESSION_ID, or --app for an audit export")
        if gzipped:
            chunks = export.gzip_chunks(chunks)
        out = open(output, "wb") if output else sys.stdout.buffer  # noqa: SIM115
        try:
            for chunk in chunks:
                out.write(chunk)
        finally:
            bar.close()
            if output:
                out.close()
            else:
                out.flush()
        if output:
            self.stderr.write(f"wrote {output}")

    def _session(self, value: str, application: Application | None) -> Session:
        sessions = Session.objects.select_related("application")
        if application is not None:
            sessions = sessions.filter(application=application)
        found = None
        if value.isdigit():
            found = sessions.filter(id=int(value)).first()
        if found is None:
            matches = list(sessions.filter(key=value)[:2])
            if len(matches) > 1:
                raise CommandError(f"session key {value!r} exists in several applications: --app")
            found = matches[0] if matches else None
        if found is None:
            raise CommandError(f"no session {value!r}")
        return found

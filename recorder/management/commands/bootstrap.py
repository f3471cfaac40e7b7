import os
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand

from recorder.demo import demo_load
from recorder.models import Session


class Command(BaseCommand):
    help = (
        "First-start setup used by `make run`: migrate every database, create the admin "
        "account and load demo sessions if there are none. Safe to run on every start."
    )

    def add_arguments(self, parser):
        parser.add_argument("--no-demo", action="store_true")

    def handle(self, no_demo, **options):
        for alias in settings.DATABASES:
            call_command("migrate", database=alias, interactive=False, verbosity=0)
        User = get_user_model()
        if not User.objects.filter(username="admin").exists():
            password = os.getenv("FLIGHTREC_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
            User.objects.create_superuser("admin", "", password)
            if os.getenv("FLIGHTREC_ADMIN_PASSWORD"):
                self.stdout.write("created user admin (password from FLIGHTREC_ADMIN_PASSWORD)")
            else:
                self.stdout.write(
                    self.style.WARNING(f"created user admin with password: {password}")
                    + "\n(shown only now; change it with `python manage.py changepassword admin`)"
                )
        if not no_demo and not Session.objects.exists():
            counts = demo_load()
            self.stdout.write(f"loaded {len(counts)} demo sessions ({sum(counts.values())} events)")

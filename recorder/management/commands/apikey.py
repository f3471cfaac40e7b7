from django.core.management.base import BaseCommand

from recorder.models import ApiKey, Application


class Command(BaseCommand):
    help = "Create an API key for APP_NAME (creating the application if needed). The key is shown once."

    def add_arguments(self, parser):
        parser.add_argument("app_name")
        parser.add_argument("--environment", default="production")
        parser.add_argument("--name", default="", help="a label for the key")
        parser.add_argument("--read", action="store_true", help="also allow reading via the API")

    def handle(self, app_name, environment, name, read, **options):
        app, created = Application.objects.get_or_create(
            name=app_name, defaults={"environment": environment}
        )
        if created:
            self.stdout.write(f"created application {app.name} ({app.environment})")
        key, raw = ApiKey.generate(app, name=name, can_read=read)
        scope = "read+write" if read else "write"
        self.stdout.write(f"new {scope} key {key.prefix}… for {app.name}; it is not shown again:")
        self.stdout.write(raw)

from django.apps import AppConfig


class RecorderConfig(AppConfig):
    name = "recorder"
    verbose_name = "flightrec"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # Connects the login-throttle signal receivers.
        from recorder import login_throttle  # noqa: F401
        from recorder.sqlite_setup import connect

        connect()

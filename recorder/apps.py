from django.apps import AppConfig


class RecorderConfig(AppConfig):
    name = "recorder"
    verbose_name = "flightrec"
    default_auto_field = "django.db.models.BigAutoField"

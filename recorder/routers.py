"""Database routing: the inbox lives in its own SQLite file (settings.INBOX_DB).

On PostgreSQL INBOX_DB is "default", so everything is in one database and the drain can
delete inbox rows in the same transaction that inserts their events.
"""

from django.conf import settings

INBOX_MODELS = {"inboxbatch", "ingestcounter"}


class InboxRouter:
    def _is_inbox(self, model) -> bool:
        return model._meta.app_label == "recorder" and model._meta.model_name in INBOX_MODELS

    def db_for_read(self, model, **hints):
        return settings.INBOX_DB if self._is_inbox(model) else None

    def db_for_write(self, model, **hints):
        return settings.INBOX_DB if self._is_inbox(model) else None

    def allow_relation(self, obj1, obj2, **hints):
        return None

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        if settings.INBOX_DB == "default":
            return None
        is_inbox = app_label == "recorder" and model_name in INBOX_MODELS
        if db == settings.INBOX_DB:
            return is_inbox
        if is_inbox:
            return False
        return None

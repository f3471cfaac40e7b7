"""Who is calling the API: an API key (X-API-Key or Bearer) or a logged-in user."""

from django.http import HttpRequest
from ninja.security import APIKeyHeader, HttpBearer, django_auth

from recorder.models import ApiKey, hash_key


def key_lookup(raw: str | None) -> ApiKey | None:
    """The live key for a raw key string, or None. Revocation is checked on every call."""
    if not raw or len(raw) > 200:
        return None
    return (
        ApiKey.objects.select_related("application")
        .filter(hashed=hash_key(raw), revoked_at__isnull=True)
        .first()
    )


class KeyHeader(APIKeyHeader):
    param_name = "X-API-Key"

    def authenticate(self, request: HttpRequest, key: str | None) -> ApiKey | None:
        return key_lookup(key)


class KeyBearer(HttpBearer):
    def authenticate(self, request: HttpRequest, token: str) -> ApiKey | None:
        return key_lookup(token)


class ReadKeyHeader(KeyHeader):
    """A key with the read scope (keys are write-only unless granted)."""

    def authenticate(self, request, key):
        found = super().authenticate(request, key)
        return found if found and found.can_read else None


class ReadKeyBearer(KeyBearer):
    def authenticate(self, request, token):
        found = super().authenticate(request, token)
        return found if found and found.can_read else None


# Ingestion takes a key; reads take a logged-in user or a key with the read scope.
write_auth = [KeyHeader(), KeyBearer()]
read_auth = [ReadKeyHeader(), ReadKeyBearer(), django_auth]

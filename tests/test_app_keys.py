"""The API keys page: a new key is shown once, listed by prefix, revocable."""

import re

import orjson
import pytest

from recorder.models import ApiKey

pytestmark = pytest.mark.django_db(databases="__all__")


def _shown_key(html: str) -> str | None:
    m = re.search(r'id="new-key-value">([^<]+)<', html)
    return m.group(1) if m else None


def test_a_created_key_is_shown_once_and_works(client, alice, shop):
    client.force_login(alice)
    response = client.post(f"/apps/{shop.id}/keys", {"name": "android"})
    assert "no-store" in response["Cache-Control"]
    raw = _shown_key(response.content.decode())
    key = ApiKey.objects.get(application=shop, name="android")
    assert raw.startswith(key.prefix)
    assert key.can_read is False
    # The next view of the page lists the key by its prefix only.
    again = client.get(f"/apps/{shop.id}/keys").content.decode()
    assert _shown_key(again) is None
    assert raw not in again
    assert f"{key.prefix}…" in again
    # And it is a working ingestion key.
    r = client.post("/api/v1/events", orjson.dumps([{"session": "s", "type": "log"}]),
                    content_type="application/json", HTTP_X_API_KEY=raw)  # fmt: skip
    assert r.status_code == 202


def test_the_read_scope_is_granted_only_when_asked(client, alice, shop):
    client.force_login(alice)
    client.post(f"/apps/{shop.id}/keys", {"name": "reader", "can_read": "on"})
    assert ApiKey.objects.get(name="reader").can_read is True
    page = client.get(f"/apps/{shop.id}/keys").content.decode()
    assert "write + read" in page


def test_the_list_shows_last_use(client, alice, shop, ingest):
    ingest.post([{"session": "s", "type": "log"}])
    client.force_login(alice)
    page = client.get(f"/apps/{shop.id}/keys").content.decode()
    row = re.search(r'<tr data-key-prefix="fr_[^"]+">.*?</tr>', page, re.S).group(0)
    assert "ago" in row and "never" not in row


def test_revoking_a_key_refuses_it_at_once(client, alice, shop, ingest):
    key = ApiKey.objects.get(application=shop)
    client.force_login(alice)
    response = client.post(f"/apps/{shop.id}/keys/{key.id}/revoke")
    assert response.status_code == 302
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert ingest.post([{"session": "s", "type": "log"}]).status_code == 401
    page = client.get(f"/apps/{shop.id}/keys").content.decode()
    assert "revoked" in page and "401" in page  # the message says what it means


def test_a_key_of_another_application_cannot_be_revoked_from_this_one(
    client, alice, shop, other_app
):
    other = ApiKey.generate(other_app)[0]
    client.force_login(alice)
    assert client.post(f"/apps/{shop.id}/keys/{other.id}/revoke").status_code == 404
    other.refresh_from_db()
    assert other.revoked_at is None


def test_revoke_needs_post(client, alice, shop, shop_key):
    client.force_login(alice)
    key = ApiKey.objects.get(application=shop)
    assert client.get(f"/apps/{shop.id}/keys/{key.id}/revoke").status_code == 405

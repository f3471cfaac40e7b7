"""API keys as credentials: hashed at rest, bound to one application, revocable at once,
write-only unless granted the read scope."""

import orjson
import pytest
from django.db import connection
from django.utils import timezone

from recorder.models import ApiKey, Event, Session

pytestmark = pytest.mark.django_db(databases="__all__")


def ev(**fields):
    return {"session": "run-1", "type": "log", "ts": 1_700_000_000, "message": "hi", **fields}


def _read(client, path, key):
    return client.get(path, HTTP_X_API_KEY=key)


@pytest.fixture
def stored(ingest):
    assert ingest.post([ev()]).status_code == 202
    return Session.objects.get(key="run-1")


def test_the_raw_key_is_in_no_row_of_any_table(client, shop, alice):
    # Create the key the way an admin does, then look at every row of every table.
    # (tests/test_secrets_on_disk.py greps the real database files of a running server.)
    client.force_login(alice)
    page = client.post(f"/apps/{shop.id}/keys", {"name": "grep me"}).content.decode()
    key = ApiKey.objects.get(name="grep me")
    raw = page.split('id="new-key-value">')[1].split("<")[0]
    assert raw.startswith(key.prefix)
    secret_part = raw[len(key.prefix) :]
    found_row = False
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            for row in cursor.fetchall():
                text = repr(row)
                assert secret_part not in text, f"raw key stored in {table}"
                found_row = found_row or key.hashed in text
    assert found_row  # the scan did see the key's row


def test_a_key_is_shown_with_its_prefix_and_only_its_hash_is_kept(shop):
    key, raw = ApiKey.generate(shop)
    assert raw.startswith(key.prefix) and raw.startswith("fr_")
    assert len(raw) > 40
    assert raw not in {key.hashed, key.prefix, key.name}


def test_a_key_writes_only_to_its_own_application(ingest, shop, other_app):
    assert ingest.post([ev()]).status_code == 202
    assert Event.objects.get().application == shop
    assert not Event.objects.filter(application=other_app).exists()


def test_a_read_key_of_another_application_gets_404_for_this_ones_session(
    client, stored, other_app
):
    other_read = ApiKey.generate(other_app, can_read=True)[1]
    assert _read(client, f"/api/v1/sessions/{stored.id}", other_read).status_code == 404
    assert _read(client, f"/api/v1/sessions/{stored.id}/events", other_read).status_code == 404
    listed = _read(client, "/api/v1/sessions", other_read).json()["items"]
    assert listed == []


def test_a_revoked_key_gets_401_on_the_next_request(client, ingest, shop, read_key, stored):
    assert _read(client, "/api/v1/sessions", read_key).status_code == 200
    ApiKey.objects.filter(application=shop).update(revoked_at=timezone.now())
    assert _read(client, "/api/v1/sessions", read_key).status_code == 401
    assert ingest.post([ev(message="after")]).status_code == 401
    assert ingest.post([ev()], key=read_key).status_code == 401


def test_a_write_only_key_cannot_read(client, shop_key, stored):
    for path in ["/api/v1/sessions", f"/api/v1/sessions/{stored.id}",
                 f"/api/v1/sessions/{stored.id}/events"]:  # fmt: skip
        response = _read(client, path, shop_key)
        assert response.status_code == 401, path
        assert "API key" in response.json()["detail"]


def test_a_read_key_reads_its_applications_sessions(client, read_key, stored):
    assert _read(client, "/api/v1/sessions", read_key).json()["items"][0]["key"] == "run-1"
    assert _read(client, f"/api/v1/sessions/{stored.id}", read_key).status_code == 200
    events = _read(client, f"/api/v1/sessions/{stored.id}/events", read_key).json()["items"]
    assert [e["message"] for e in events] == ["hi"]


def test_a_read_key_also_writes_and_bearer_works_for_reads(client, read_key, stored):
    r = client.post("/api/v1/events", orjson.dumps([ev(message="via read key")]),
                    content_type="application/json", HTTP_X_API_KEY=read_key)  # fmt: skip
    assert r.status_code == 202
    r = client.get("/api/v1/sessions", HTTP_AUTHORIZATION=f"Bearer {read_key}")
    assert r.status_code == 200

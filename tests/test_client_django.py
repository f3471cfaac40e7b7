"""recorder.client_django.RecorderMiddleware: each request becomes an `http` event."""

import pytest

from recorder import client
from recorder.models import Event

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


@pytest.fixture
def recording(settings, live_server, shop_key, tmp_path):
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "recorder.client_django.RecorderMiddleware"]
    settings.FLIGHTREC_CLIENT = {
        "url": live_server.url,
        "api_key": shop_key,
        "spill_dir": tmp_path,
        "install_hooks": False,
    }
    yield
    rec = client.get()
    rec.close()
    client._default = None


def test_each_request_is_recorded_as_an_http_event(recording, client, alice):
    client.force_login(alice)
    client.get("/login/?next=/&token=abc123secret", HTTP_X_REQUEST_ID="req-1")
    client.get(
        "/no/such/page", HTTP_TRACEPARENT="00-5b8efff798038103d269b633813fc60c-eee19b7ec3c1b174-01"
    )
    client.post("/api/v1/events", b"[]", content_type="application/json")  # ignored path
    from recorder.client import get

    assert get().flush(timeout=10)
    login, missing = Event.objects.filter(type="http").order_by("seq")
    assert login.payload["method"] == "GET" and login.payload["path"] == "/login/"
    assert login.payload["status"] == 200 and login.payload["duration_ms"] > 0
    assert "abc123secret" not in login.payload["query"]
    assert login.correlation_id == "req-1" and login.actor == "alice"
    assert missing.payload["status"] == 404 and missing.severity == 30
    assert missing.correlation_id == "5b8efff798038103d269b633813fc60c"
    assert Event.objects.count() == 2

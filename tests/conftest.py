"""Shared fixtures: people, applications and keys built with plain ORM calls.

alice is admin of the "shop" application, bob a viewer of it, charlie belongs to none.
"""

import gzip

import orjson
import pytest

from recorder.models import ApiKey, Application, Membership


@pytest.fixture
def shop(db):
    return Application.objects.create(name="shop", environment="production")


@pytest.fixture
def other_app(db):
    return Application.objects.create(name="warehouse", environment="staging")


@pytest.fixture
def shop_key(shop):
    """A raw write key for shop."""
    return ApiKey.generate(shop, name="test")[1]


@pytest.fixture
def read_key(shop):
    return ApiKey.generate(shop, name="reader", can_read=True)[1]


@pytest.fixture
def alice(shop, django_user_model):
    user = django_user_model.objects.create_user("alice", password="password")
    Membership.objects.create(user=user, application=shop, role=Membership.Role.ADMIN)
    return user


@pytest.fixture
def bob(shop, django_user_model):
    user = django_user_model.objects.create_user("bob", password="password")
    Membership.objects.create(user=user, application=shop, role=Membership.Role.VIEWER)
    return user


@pytest.fixture
def charlie(db, django_user_model):
    return django_user_model.objects.create_user("charlie", password="password")


class Ingest:
    """Posts bodies to the ingestion API the way senders do."""

    def __init__(self, client, key):
        self.client = client
        self.key = key

    def post(self, body, *, content_type="application/json", gzipped=False, key=None,
             path="/api/v1/events", headers=None):  # fmt: skip
        if not isinstance(body, (bytes, str)):
            body = orjson.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        extra = {"HTTP_X_API_KEY": key if key is not None else self.key}
        if gzipped:
            body = gzip.compress(body)
            extra["HTTP_CONTENT_ENCODING"] = "gzip"
        extra.update(headers or {})
        return self.client.generic("POST", path, body, content_type=content_type, **extra)


@pytest.fixture
def ingest(client, shop_key):
    return Ingest(client, shop_key)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    # Debian's chromium: Playwright cannot download its own browser here.
    return {
        **browser_type_launch_args,
        "executable_path": "/usr/bin/chromium",
        "args": ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update"],
    }  # fmt: skip


@pytest.fixture(scope="session")
def base_url(pytestconfig):
    # The same value as pytest-playwright's own base_url (used when pytest-base-url is not
    # installed), defined here as a plain function: theirs is an instance method of a
    # plugin class, which pytest deprecates for session-scoped fixtures.
    return pytestconfig.getoption("--base-url") or pytestconfig.getini("base_url") or None


def demo_payload_dictionary() -> tuple[int, bytes]:
    """A packing dictionary trained on payloads of the demo mix: (dict_id, data)."""
    import random
    from datetime import UTC, datetime

    import zstandard

    from recorder import demo

    rng = random.Random(3)
    samples = [
        orjson.dumps(ev["payload"])
        for _key, _meta, generate, _ended in demo.DEMOS
        for ev in generate(rng, demo._Clock(rng, datetime.now(UTC)), 600)
        if ev.get("payload") is not None
    ]
    zdict = zstandard.train_dictionary(16 * 1024, samples, dict_id=1_000_003)
    return zdict.dict_id(), zdict.as_bytes()


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """The test database starts with a payload dictionary, as every database has once it
    holds a few thousand events: tests then store payloads packed, the format production
    reads and filters (recorder/payloads.py). Transactional tests flush it away; tests
    that need it present request `packed`."""
    from django.db import connection

    from recorder.models import PayloadDictionary

    with django_db_blocker.unblock():
        if connection.vendor == "sqlite":
            dict_id, data = demo_payload_dictionary()
            PayloadDictionary.objects.create(dict_id=dict_id, data=data, samples=0, last_event_id=0)

"""/ingest/logging with the stdlib logging.handlers.HTTPHandler, unchanged, against a
live server, by GET and POST."""

import logging
import logging.handlers
import os
import time
from urllib.parse import urlsplit

import pytest

from recorder.models import Event, Session

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


def http_logger(live_server, name, **handler_options):
    netloc = urlsplit(live_server.url).netloc
    options = {"url": "/ingest/logging", "method": "POST", **handler_options}
    handler = logging.handlers.HTTPHandler(netloc, **options)
    logger = logging.getLogger(name)
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    return logger, handler


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_http_handler_records_land_with_level_logger_location_and_extra(
    live_server, shop_key, method
):
    logger, handler = http_logger(
        live_server, f"shop.{method}", method=method, credentials=("flightrec", shop_key)
    )
    try:
        logger.warning("stock low for %s", "sku-9", extra={"warehouse": "vie"})
        try:
            {}["missing"]
        except KeyError:
            logger.exception("lookup failed")
    finally:
        logger.removeHandler(handler)
    warn, error = Event.objects.order_by("seq")
    # HTTPHandler sends the raw format string; its args stay text and are never evaluated.
    assert (warn.type, warn.message, warn.severity, warn.source) == (
        "log",
        "stock low for %s",
        30,
        f"shop.{method}",
    )
    assert warn.payload["args"] == "('sku-9',)"
    assert warn.payload["extra"] == {"warehouse": "vie"}
    assert (
        warn.payload["func"]
        == "test_http_handler_records_land_with_level_logger_location_and_extra"
    )
    assert warn.payload["pathname"] == __file__
    assert warn.payload["lineno"] > 0
    assert abs(warn.ts.timestamp() - time.time()) < 60
    assert error.severity == 40
    session = Session.objects.get()
    assert session.key.startswith(f"127.0.0.1-{os.getpid()}-")
    assert session.metadata["pid"] == os.getpid()
    assert session.metadata["process_started_at"].endswith("Z")


def test_key_in_the_url_query_authenticates(live_server, shop_key):
    logger, handler = http_logger(live_server, "shop.q", url=f"/ingest/logging?key={shop_key}")
    try:
        logger.info("hello")
    finally:
        logger.removeHandler(handler)
    event = Event.objects.get()
    assert event.message == "hello" and "key" not in event.payload.get("extra", {})


def test_every_record_of_one_process_shares_a_session(live_server, shop_key):
    logger, handler = http_logger(live_server, "shop.s", method="GET", credentials=("x", shop_key))
    try:
        for i in range(5):
            logger.info("n=%d", i)
    finally:
        logger.removeHandler(handler)
    assert Session.objects.count() == 1
    assert Session.objects.get().event_count == 5


def test_secrets_in_records_are_redacted(live_server, shop_key):
    logger, handler = http_logger(live_server, "shop.r", credentials=("flightrec", shop_key))
    try:
        logger.info("login with password=hunter2secret", extra={"api_token": "tok-123456"})
    finally:
        logger.removeHandler(handler)
    event = Event.objects.get()
    assert "hunter2secret" not in event.message
    assert event.payload["extra"]["api_token"] == "[Filtered]"


def test_without_a_valid_key_it_answers_401(client, shop_key):
    r = client.post("/ingest/logging", {"msg": "x", "name": "a"})
    assert r.status_code == 401
    r = client.get("/ingest/logging", {"msg": "x", "key": "fr_nope"})
    assert r.status_code == 401
    r = client.get("/ingest/logging", {"name": "a", "key": shop_key})
    assert r.status_code == 400  # not a log record

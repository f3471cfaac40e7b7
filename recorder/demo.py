"""Realistic demo sessions, sent through the real ingestion path (validation, redaction,
inbox, drain) so that what the dashboard shows is what a real sender would get.

Four runs of different apps, each a few thousand events with bursts and idle gaps:
- a mobile app: HTTP-heavy, screen navigation as state, ends in a crash (no end marker);
- an IoT gateway: MQTT and BLE messages with keyed readings (temp::kitchen, …);
- a web UI: clicks and `state` ops (set / merge / patch) on a shopping cart;
- an audit trail: actors and correlation ids spanning several records.
"""

import random
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import orjson

from recorder import drain, ingest
from recorder.models import Application, InboxBatch

DEMO_APP = "demo"


class _Clock:
    """Event times like a real run: mostly short gaps, bursts, now and then an idle stretch."""

    def __init__(self, rng: random.Random, start: datetime):
        self.rng = rng
        self.now = start

    def tick(self) -> float:
        r = self.rng.random()
        if r < 0.002:
            gap = self.rng.uniform(20, 120)  # the user put the phone down
        elif r < 0.2:
            gap = self.rng.uniform(0.5, 4)
        else:
            gap = self.rng.expovariate(1 / 0.15)
        self.now += timedelta(seconds=gap)
        return self.now.timestamp()


def _mobile(rng: random.Random, clock: _Clock, n: int) -> Iterator[dict]:
    screens = ["home", "search", "product", "cart", "checkout", "profile", "orders"]
    endpoints = [
        ("GET", "/api/products?page={}", 200), ("GET", "/api/products/{}", 200),
        ("POST", "/api/cart/items", 201), ("GET", "/api/cart", 200),
        ("POST", "/api/checkout", 200), ("GET", "/api/orders/{}", 404),
        ("GET", "/api/recommendations?user={}", 500),
    ]  # fmt: skip
    screen = "home"
    yield {
        "type": "state",
        "ts": clock.tick(),
        "source": "navigation",
        "message": "app start",
        "state": {"op": "set", "path": "", "value": {"screen": screen, "user": None, "cart": 0}},
    }
    for _ in range(n - 2):
        ts = clock.tick()
        r = rng.random()
        if r < 0.55:
            method, path, status = rng.choice(endpoints)
            if rng.random() < 0.9 and status >= 400:
                status = 200
            url = "https://shop.example.com" + path.format(rng.randint(1, 500))
            corr = uuid.UUID(int=rng.getrandbits(128)).hex[:16]
            yield {
                "type": "http", "ts": ts, "source": "net", "correlation_id": corr,
                "severity": "error" if status >= 500 else "warn" if status >= 400 else "info",
                "message": f"{method} {url} -> {status}",
                "payload": {
                    "method": method, "url": url, "status": status,
                    "duration_ms": round(rng.lognormvariate(4.2, 0.6), 1),
                    "request": {"headers": {"Authorization": f"Bearer eyJhbGciOi.{rng.getrandbits(64):x}",
                                            "Accept": "application/json", "User-Agent": "ShopApp/4.2.1"}},
                    "response": {"headers": {"Content-Type": "application/json"},
                                 "size": rng.randint(200, 40_000)},
                },
            }  # fmt: skip
        elif r < 0.7:
            new = rng.choice(screens)
            yield {
                "type": "ui",
                "ts": ts,
                "source": "ui",
                "actor": "user",
                "message": f"tap {new}",
                "payload": {"action": "tap", "target": new},
            }
            if new != screen:
                screen = new
                yield {
                    "type": "state",
                    "ts": clock.tick(),
                    "source": "navigation",
                    "state": {"op": "set", "path": "/screen", "value": screen},
                }
        elif r < 0.75:
            yield {
                "type": "state",
                "ts": ts,
                "source": "cart",
                "state": {"op": "merge", "value": {"cart": rng.randint(0, 9)}},
            }
        else:
            level = rng.choices(["debug", "info", "warn", "error"], [40, 45, 10, 5])[0]
            yield {"type": "log", "ts": ts, "source": rng.choice(["core", "net", "db", "ui"]),
                   "severity": level, "message": rng.choice([
                       f"image cache hit ratio {rng.random():.2f}",
                       "token refresh scheduled", "low memory warning received",
                       "retrying request after timeout", "layout pass took 18ms",
                   ])}  # fmt: skip
    yield {
        "type": "crash", "ts": clock.tick(), "severity": "fatal", "source": "core",
        "message": "IndexError: list index out of range in CheckoutViewModel.total()",
        "payload": {"exception": "IndexError", "thread": "main", "stack": [
            "CheckoutViewModel.total (checkout.py:88)", "CartView.render (cart.py:41)"]},
    }  # fmt: skip


def _iot(rng: random.Random, clock: _Clock, n: int) -> Iterator[dict]:
    rooms = ["kitchen", "living", "bedroom", "garage"]
    cities = ["vienna", "graz", "linz"]
    temps = {room: rng.uniform(18, 23) for room in rooms}
    for _ in range(n):
        ts = clock.tick()
        r = rng.random()
        if r < 0.5:
            room = rng.choice(rooms)
            temps[room] += rng.uniform(-0.3, 0.3)
            value = round(temps[room], 2)
            yield {"type": "mqtt", "ts": ts, "source": "broker", "key": f"temp::{room}",
                   "message": f"sensors/{room}/temperature {value}",
                   "payload": {"topic": f"sensors/{room}/temperature", "qos": 1, "value": value,
                               "unit": "C", "retain": False}}  # fmt: skip
        elif r < 0.75:
            city = rng.choice(cities)
            accuracy = round(rng.uniform(2, 30), 1)
            yield {
                "type": "mqtt",
                "ts": ts,
                "source": "gps",
                "key": f"accuracy::{city}",
                "payload": {
                    "topic": f"gps/{city}/fix",
                    "accuracy_m": accuracy,
                    "lat": 48.2 + rng.random() / 10,
                    "lon": 16.37 + rng.random() / 10,
                },
            }
        elif r < 0.93:
            device = rng.choice(["tag-01", "tag-02", "thermo-7", "lock-3"])
            rssi = rng.randint(-95, -40)
            yield {"type": "ble", "ts": ts, "source": "ble", "key": f"rssi::{device}",
                   "severity": "warn" if rssi < -90 else "info",
                   "payload": {"device": device, "rssi": rssi, "event": rng.choice(
                       ["advertisement", "connect", "notify", "disconnect"])}}  # fmt: skip
        else:
            yield {"type": "log", "ts": ts, "source": "gateway",
                   "severity": rng.choice(["info", "warn", "error"]),
                   "message": rng.choice(["reconnecting to broker", "firmware check: up to date",
                                          "queue depth 12", "BLE scan restarted"])}  # fmt: skip


def _webui(rng: random.Random, clock: _Clock, n: int) -> Iterator[dict]:
    products = ["lamp", "chair", "desk", "rug", "shelf", "plant"]
    yield {"type": "state", "ts": clock.tick(), "source": "store",
           "state": {"op": "set", "path": "", "value": {"cart": {"items": []}, "user": {"name": "Ada"},
                                                        "filters": {"sort": "price"}}}}  # fmt: skip
    count = 0
    for _ in range(n - 1):
        ts = clock.tick()
        r = rng.random()
        if r < 0.3 and count < 20:
            item = {"sku": rng.choice(products), "qty": rng.randint(1, 3)}
            count += 1
            yield {
                "type": "state",
                "ts": ts,
                "source": "store",
                "message": f"add {item['sku']}",
                "state": {
                    "op": "patch",
                    "patch": [{"op": "add", "path": "/cart/items/-", "value": item}],
                },
            }
        elif r < 0.4 and count > 0:
            count -= 1
            yield {
                "type": "state",
                "ts": ts,
                "source": "store",
                "message": "remove first item",
                "state": {"op": "patch", "patch": [{"op": "remove", "path": "/cart/items/0"}]},
            }
        elif r < 0.5:
            yield {"type": "state", "ts": ts, "source": "store",
                   "state": {"op": "merge", "value": {"filters": {
                       "sort": rng.choice(["price", "name", "rating"]),
                       "in_stock": rng.random() < 0.5}}}}  # fmt: skip
        elif r < 0.8:
            target = rng.choice(["#buy", "#filter", ".product-card", "#search", "#checkout"])
            yield {
                "type": "ui",
                "ts": ts,
                "source": "ui",
                "actor": "ada",
                "message": f"click {target}",
                "payload": {
                    "event": "click",
                    "target": target,
                    "x": rng.randint(0, 1200),
                    "y": rng.randint(0, 800),
                },
            }
        elif r < 0.9:
            row = rng.randint(1, 40)
            yield {
                "type": "row:update",
                "ts": ts,
                "source": "plugin:grid",
                "key": f"row::{row}",
                "payload": {
                    "row": row,
                    "column": rng.choice(["qty", "price", "note"]),
                    "value": rng.randint(1, 99),
                },
            }
        else:
            yield {"type": "log", "ts": ts, "source": "console", "severity": rng.choice(["info", "warn"]),
                   "message": rng.choice(["hydration complete", "slow render: ProductList 42ms",
                                          "service worker updated"])}  # fmt: skip


def _audit(rng: random.Random, clock: _Clock, n: int) -> Iterator[dict]:
    actors = ["alice@example.com", "bob@example.com", "svc-billing", "carol@example.com"]
    actions = ["login", "invoice.create", "invoice.approve", "user.role_change", "export.download",
               "settings.update", "logout"]  # fmt: skip
    produced = 0
    while produced < n:
        corr = f"req-{rng.getrandbits(40):010x}"
        actor = rng.choice(actors)
        for step in range(rng.randint(1, 4)):
            if produced >= n:
                break
            action = rng.choice(actions)
            denied = rng.random() < 0.04
            yield {
                "type": "audit",
                "ts": clock.tick(),
                "source": "api",
                "actor": actor,
                "correlation_id": corr,
                "severity": "warn" if denied else "info",
                "key": f"audit::{action}",
                "message": f"{actor} {action}{' DENIED' if denied else ''}",
                "payload": {
                    "action": action,
                    "result": "denied" if denied else "ok",
                    "ip": f"10.0.{rng.randint(0, 9)}.{rng.randint(1, 254)}",
                    "step": step,
                    "password": "hunter2" if action == "login" else None,
                },
            }
            produced += 1


DEMOS: list[tuple[str, dict, Callable, bool]] = [
    ("mobile-run", {"app_version": "4.2.1", "build": "4210", "device": "Pixel 7", "os": "Android 14"},
     _mobile, False),
    ("iot-gateway", {"app_version": "1.9.0", "device": "rpi-gw-17", "os": "Debian 12", "host": "gw17"},
     _iot, True),
    ("web-checkout", {"app_version": "2026.11.3", "device": "Firefox 132", "os": "macOS 15"}, _webui, True),
    ("audit-trail", {"app_version": "3.0.0", "host": "api-2", "pid": 4121}, _audit, True),
]  # fmt: skip


def demo_load(*, events_per_session: int = 3000, seed: int = 7) -> dict[str, int]:
    """Send the demo sessions through ingestion and drain them. Returns events per session."""
    rng = random.Random(seed)
    app, _ = Application.objects.get_or_create(name=DEMO_APP, defaults={"environment": "demo"})
    start = datetime.now(UTC) - timedelta(hours=len(DEMOS) * 3)
    counts = {}
    for i, (key, meta, generate, ended) in enumerate(DEMOS):
        clock = _Clock(rng, start + timedelta(hours=3 * i))
        events = list(generate(rng, clock, events_per_session))
        for j in range(0, len(events), 500):
            chunk = events[j : j + 500]
            body = orjson.dumps({"session": {"key": key, **meta}, "events": chunk})
            batch = ingest.parse_batch(body)
            ingest.events_accept(application=app, batch=batch, body=body)
        if ended:
            ingest.session_accept(application=app, key=key, metadata={}, kind=InboxBatch.Kind.END)
        counts[key] = len(events)
    drain.inbox_drain()
    return counts

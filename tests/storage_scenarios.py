"""Scenarios that need real SQLite files, run in a child process by tests/test_storage.py.

    python tests/storage_scenarios.py low_disk|ingest_forever DATA_DIR

The child gets FLIGHTREC_DATA_DIR pointing at a temporary directory (a tiny tmpfs for
the low-disk scenario), migrates it, and goes through the full request stack with
django.test.Client. It prints one JSON document with what it saw.
"""

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "flightrec_site.settings")
os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "testserver")

import django  # noqa: E402

django.setup()

import orjson  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402

from recorder import drain  # noqa: E402
from recorder import ingest as ingest_module  # noqa: E402
from recorder.models import ApiKey, Application, Event  # noqa: E402


def setup() -> tuple[Client, str]:
    call_command("migrate", verbosity=0)
    call_command("migrate", database="inbox", verbosity=0)
    app, _ = Application.objects.get_or_create(name="shop")
    return Client(), ApiKey.generate(app)[1]


def post(client, key, session, start, n=200):
    events = [
        {
            "id": f"{session}-{i}",
            "session": session,
            "type": "log",
            "ts": 1.7e9 + i,
            "message": f"event {i} " + "m" * 200,
        }  # fmt: skip
        for i in range(start, start + n)
    ]
    r = client.post("/api/v1/events", orjson.dumps(events), content_type="application/json",
                    HTTP_X_API_KEY=key)  # fmt: skip
    return r, [e["id"] for e in events]


def low_disk(data_dir: Path) -> dict:
    client, key = setup()
    out = {"acked": [], "statuses": []}
    filler = data_dir / "filler"
    # Leave a little more than the threshold free, then ingest until refused.
    free = os.statvfs(data_dir).f_bavail * os.statvfs(data_dir).f_frsize
    with open(filler, "wb") as f:
        f.write(b"\0" * max(0, free - settings.FLIGHTREC_MIN_FREE_DISK_BYTES - 1_500_000))
    i = 0
    for _ in range(200):
        # Admission caches free space for a second; a fast writer could fill the last
        # megabytes inside that second and hit the real "disk is full" first.
        ingest_module._checks.clear()
        r, ids = post(client, key, "s", i)
        i += 200
        out["statuses"].append(r.status_code)
        if r.status_code == 202:
            out["acked"] += ids
        else:
            out["refusal"] = {"status": r.status_code, "retry_after": r.get("Retry-After"),
                              "detail": r.json()["detail"]}  # fmt: skip
            break
        # The admission check caches free space for a second: post slowly enough that
        # a second's worth of batches (~115 KB each with the drain's writes) stays well
        # inside the 1.5 MB margin, or a fast machine fills the disk before it looks.
        time.sleep(0.25)
    # Now the disk itself runs full: no threshold, SQLite must say "disk is full".
    settings.FLIGHTREC_MIN_FREE_DISK_BYTES = 0
    with open(filler, "ab") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    for _ in range(20):
        r, ids = post(client, key, "s", i)
        i += 200
        if r.status_code == 202:
            out["acked"] += ids
        else:
            out["full"] = {"status": r.status_code, "detail": r.json()["detail"]}
            break
    # Space comes back: ingestion resumes by itself, and everything acknowledged is there.
    filler.unlink()
    settings.FLIGHTREC_MIN_FREE_DISK_BYTES = 4 * 1024 * 1024
    time.sleep(1.1)  # the admission check caches free space for a second
    r, ids = post(client, key, "s", i)
    out["after"] = r.status_code
    if r.status_code == 202:
        out["acked"] += ids
    drain.inbox_drain()
    stored = list(Event.objects.values_list("uid", flat=True))
    out["stored"] = len(stored)
    out["stored_unique"] = len(set(stored))
    out["missing"] = sorted(set(out["acked"]) - set(stored))[:10]
    out["acked"] = len(out["acked"])
    return out


def ingest_forever(data_dir: Path) -> dict:
    """Ingest (and drain) until killed, appending acknowledged ids to data_dir/acked."""
    client, key = setup()
    with open(data_dir / "acked", "a") as log:
        print("ready", flush=True)
        i = 0
        while True:
            r, ids = post(client, key, f"s{i // 2000}", i)
            i += 200
            if r.status_code == 202:
                log.write("\n".join(ids) + "\n")
                log.flush()
            drain.drain_once()


def restored(data_dir: Path) -> dict:
    """Open a restored copy: drain what its inbox held, report uids and counters."""
    from django.db.models import Count

    from recorder.models import Session

    drain.inbox_drain()
    uids = list(Event.objects.values_list("uid", flat=True))
    counts = dict(
        Event.objects.values("session_id").annotate(n=Count("id")).values_list("session_id", "n")
    )
    wrong = [s.key for s in Session.objects.all() if s.event_count != counts.get(s.id, 0)]
    return {"uids": uids, "duplicates": len(uids) - len(set(uids)), "wrong_counters": wrong}


if __name__ == "__main__":
    scenario, directory = sys.argv[1], Path(sys.argv[2])
    result = {"low_disk": low_disk, "ingest_forever": ingest_forever, "restored": restored}[
        scenario
    ](directory)
    print(orjson.dumps(result).decode())

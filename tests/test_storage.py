"""recorder/storage.py, /storage, the retention form, the low-disk banner, backup and check_db.

Backup and disk-full behaviour need real SQLite files (the test database is in memory),
so those tests run tests/storage_scenarios.py in a child process on a temporary
directory; the low-disk one on a real 24 MiB tmpfs when the tests run as root.
"""

import os
import shutil
import subprocess
import sys
import time
from io import StringIO
from pathlib import Path

import orjson
import pytest
from django.core.management import CommandError, call_command

from recorder import retention, storage
from recorder.models import Session

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "tests" / "storage_scenarios.py"


def child_env(data_dir: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.update(FLIGHTREC_DATA_DIR=str(data_dir), FLIGHTREC_HUEY_IMMEDIATE="1",
               DJANGO_ALLOWED_HOSTS="testserver", **extra)  # fmt: skip
    return env


def scenario(name: str, data_dir: Path, **extra) -> dict:
    done = subprocess.run(
        [sys.executable, str(SCENARIOS), name, str(data_dir)], env=child_env(data_dir, **extra),
        capture_output=True, text=True, timeout=300, check=True, cwd=ROOT,
    )  # fmt: skip
    return orjson.loads(done.stdout.strip().splitlines()[-1])


# --- Pages -----------------------------------------------------------------------------


@pytest.mark.django_db(databases="__all__")
def test_the_storage_page_shows_usage_largest_sessions_inbox_and_last_purges(client, alice, ingest):
    ingest.post([{"session": "big", "type": "log", "message": "x" * 500, "ts": time.time()}])
    retention.purge_run()
    storage.storage_sample()
    client.force_login(alice)
    html = client.get("/storage").content.decode()
    assert 'id="usage"' in html and "<td>shop</td>" in html
    assert "big" in html  # largest sessions
    assert 'id="inbox-depth">0 events' in html
    assert "nothing to remove" in html  # last purge
    assert "<svg" in html and "<rect" in html  # growth chart
    assert "/storage/apps/" in html  # alice administers shop: she may edit


@pytest.mark.django_db(databases="__all__")
def test_a_viewer_sees_the_policy_but_cannot_edit_it(client, bob, shop):
    client.force_login(bob)
    assert f"/storage/apps/{shop.id}/retention" not in client.get("/storage").content.decode()
    r = client.post(f"/storage/apps/{shop.id}/retention", {"retention_days": "1"})
    assert r.status_code == 403
    shop.refresh_from_db()
    assert shop.retention_days is None


@pytest.mark.django_db(databases="__all__")
def test_someone_outside_the_application_sees_none_of_its_data(client, charlie, shop, ingest):
    ingest.post([{"session": "secret-session", "type": "log", "ts": 1.7e9}])
    client.force_login(charlie)
    assert "secret-session" not in client.get("/storage").content.decode()
    assert client.get(f"/storage/apps/{shop.id}/retention").status_code == 404


@pytest.mark.django_db(databases="__all__")
def test_an_admin_saves_retention_overrides(client, alice, shop):
    client.force_login(alice)
    assert client.get(f"/storage/apps/{shop.id}/retention").status_code == 200
    r = client.post(
        f"/storage/apps/{shop.id}/retention",
        {"retention_days": "7", "max_sessions": "", "max_events_per_session": "5000",
         "session_overflow": "refuse"},
    )  # fmt: skip
    assert r.status_code == 302
    shop.refresh_from_db()
    assert (shop.retention_days, shop.max_sessions, shop.max_events_per_session) == (7, None, 5000)
    assert retention.policy_for(shop).overflow == "refuse"


@pytest.mark.django_db(databases="__all__")
def test_the_dashboard_says_why_ingestion_is_refused_when_disk_is_low(
    client, alice, ingest, settings
):
    from recorder import ingest as ingest_module

    client.force_login(alice)
    assert "Ingestion is paused" not in client.get("/storage").content.decode()
    settings.FLIGHTREC_MIN_FREE_DISK_BYTES = 1 << 60
    ingest_module._checks.clear()
    r = ingest.post([{"session": "s", "type": "log", "ts": 1.7e9}])
    assert r.status_code == 503 and r["Retry-After"]
    html = client.get("/").content.decode()
    assert 'id="ingestion-refusal"' in html and "below the" in html and "resumes by itself" in html


# --- Real files ------------------------------------------------------------------------


@pytest.fixture
def tiny_fs(tmp_path):
    """A real 24 MiB filesystem (tmpfs) when we may mount one, else a plain directory."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    mounted = False
    if os.geteuid() == 0 and shutil.which("mount"):
        mounted = (
            subprocess.run(
                ["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)], capture_output=True
            ).returncode
            == 0
        )
    if not mounted:
        pytest.skip("needs root to mount a tiny tmpfs")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


# The scenarios fill and copy SQLite files; on PostgreSQL the data is not in them.
sqlite_files_only = pytest.mark.skipif(
    bool(os.getenv("DATABASE_URL")),
    reason="exercises SQLite files (a full tmpfs, the SQLite backup API); PostgreSQL "
    "keeps its data elsewhere and is backed up with pg_dump",
)


@pytest.mark.e2e
@sqlite_files_only
def test_low_disk_refuses_with_503_loses_nothing_acknowledged_and_recovers(tiny_fs):
    out = scenario("low_disk", tiny_fs, FLIGHTREC_MIN_FREE_DISK_BYTES=str(4 * 1024 * 1024))
    assert out["refusal"]["status"] == 503
    assert out["refusal"]["retry_after"]
    assert "low disk space" in out["refusal"]["detail"]
    assert out["full"]["status"] == 503  # the disk itself ran full during the spool
    # Refused by the inbox write or by whichever earlier query hit the full disk first.
    assert "disk is full" in out["full"]["detail"]
    assert out["after"] == 202  # recovered by itself once space came back
    assert out["missing"] == []
    assert out["stored"] == out["stored_unique"] == out["acked"]


@pytest.mark.e2e
@sqlite_files_only
def test_a_backup_taken_during_ingestion_restores_to_a_consistent_database(tmp_path):
    live = tmp_path / "live"
    live.mkdir()
    writer = subprocess.Popen(
        [sys.executable, str(SCENARIOS), "ingest_forever", str(live)], env=child_env(live),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    try:
        assert writer.stdout.readline().strip() == "ready"
        time.sleep(2)
        acked_before = set((live / "acked").read_text().split())
        backup = subprocess.run(
            [sys.executable, "manage.py", "backup", str(tmp_path / "backup")],
            env=child_env(live), capture_output=True, text=True, timeout=120, cwd=ROOT,
        )  # fmt: skip
        time.sleep(0.5)
        assert writer.poll() is None, writer.stderr.read()  # ingestion went on throughout
    finally:
        writer.terminate()
        writer.wait(timeout=10)
    assert backup.returncode == 0, backup.stderr
    assert backup.stdout.count("integrity ok") == 2
    assert len(acked_before) > 0

    restored = tmp_path / "restored"
    shutil.copytree(tmp_path / "backup", restored)
    out = scenario("restored", restored)
    assert out["duplicates"] == 0
    assert out["wrong_counters"] == []
    assert acked_before <= set(out["uids"])  # acknowledged before the backup: all there


def test_check_db_says_ok_for_a_sound_file_and_gives_recovery_steps_for_a_damaged_one(tmp_path):
    import sqlite3

    good = tmp_path / "good.sqlite3"
    conn = sqlite3.connect(good)
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    conn.execute("CREATE INDEX t_v ON t (v)")
    conn.executemany("INSERT INTO t (v) VALUES (?)", [(f"value {i} " * 20,) for i in range(3000)])
    conn.commit()
    conn.close()
    damaged = tmp_path / "damaged.sqlite3"
    shutil.copy(good, damaged)
    with open(damaged, "r+b") as f:  # scribble over pages in the middle of the file
        f.seek(4096 * 20)
        f.write(os.urandom(4096 * 5))

    out = StringIO()
    call_command("check_db", "--path", str(good), stdout=out)
    assert f"OK       {good}" in out.getvalue()
    assert "every database file is intact" in out.getvalue()

    out = StringIO()
    with pytest.raises(CommandError, match="1 database file"):
        call_command("check_db", "--path", str(good), "--path", str(damaged), stdout=out)
    text = out.getvalue()
    assert f"DAMAGED  {damaged}" in text
    assert "restore the latest backup" in text
    assert ".recover" in text


def test_check_db_reports_a_missing_file_as_damaged(tmp_path):
    result = storage.check_file(tmp_path / "nope.sqlite3")
    assert not result.ok and result.problems == ["file does not exist"]


@pytest.mark.django_db(databases="__all__")
def test_applications_usage_comes_from_session_counters(shop, ingest):
    ingest.post([{"session": "a", "type": "log", "ts": 1.7e9, "message": "hello"}] * 1)
    usage = storage.applications_usage([shop])
    assert usage[0]["name"] == "shop" and usage[0]["events"] == 1
    assert usage[0]["bytes"] == Session.objects.get(key="a").byte_count > 0

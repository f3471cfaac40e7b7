"""`manage.py serve`: the web server and the consumers as one command, with exactly one
scheduler of periodic tasks however many consumers run."""

import os
import re
import signal
import subprocess
import sys

import pytest

from tests.stack import ROOT, Stack, free_port

pytestmark = pytest.mark.e2e


@pytest.mark.skipif(not os.getenv("DATABASE_URL"), reason="several consumers need PostgreSQL")
def test_serve_with_two_consumers_schedules_periodic_tasks_in_exactly_one(tmp_path):
    stack = Stack(tmp_path, webs=0, consumers=0)
    log = tmp_path / "serve.log"
    serve = None
    try:
        stack.manage("bootstrap", "--no-demo")
        with open(log, "wb") as out:
            serve = subprocess.Popen(
                [sys.executable, "manage.py", "serve", "--port", str(free_port()),
                 "--web-workers", "1", "--consumers", "2"],
                cwd=ROOT, env=stack.env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        stack.wait_for(
            lambda: log.read_text().count("INFO huey.consumer: Huey consumer started") == 2,
            timeout=60,
            what="two consumers to start",
        )
        said = re.findall(r"INFO huey.consumer: Periodic tasks are (\w+)", log.read_text())
        assert sorted(said) == ["disabled", "enabled"]
    finally:
        if serve and serve.poll() is None:
            os.killpg(serve.pid, signal.SIGTERM)
            serve.wait(timeout=20)
        stack.stop()


@pytest.mark.skipif(bool(os.getenv("DATABASE_URL")), reason="the SQLite refusal")
def test_serve_refuses_several_consumers_on_sqlite(tmp_path):
    stack = Stack(tmp_path, webs=0, consumers=0)
    out = stack.manage("serve", "--port", str(free_port()), "--consumers", "2", check=False)
    assert "several consumers need PostgreSQL" in out

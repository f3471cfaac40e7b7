"""`manage.py serve`: the web server and the consumers as one command, with exactly one
scheduler of periodic tasks however many consumers run."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.stack import ROOT, Stack, free_port

pytestmark = pytest.mark.e2e


def consumers_of(parent: int) -> list[list[str]]:
    """Command lines of the Huey consumers that `parent` started."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            args = (proc / "cmdline").read_bytes().decode().split("\0")
        except (OSError, ValueError, IndexError):
            continue  # not a process, or gone meanwhile
        if ppid == parent and "run_huey" in args:
            found.append(args)
    return found


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
        stack.wait_for(lambda: len(consumers_of(serve.pid)) == 2, what="two consumers to start")
        periodic = ["--no-periodic" not in args for args in consumers_of(serve.pid)]
        assert sorted(periodic) == [False, True], "exactly one consumer schedules periodic tasks"
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

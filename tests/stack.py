"""A real flightrec as separate processes, for end-to-end tests.

Starts `manage.py bootstrap`, gunicorn web servers and Huey consumers on a temporary
data directory (or on DATABASE_URL / FLIGHTREC_QUEUE_URL when those are set in the
environment, so the same tests run on PostgreSQL + Redis), and can SIGKILL and restart
any of them. Nothing here fakes a part: these are the processes `make run` starts.
"""

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def with_database(url: str, name: str) -> str:
    """The same PostgreSQL URL with another database name."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


def pg_execute(url: str, sql: str) -> None:
    """One statement outside a transaction (CREATE/DROP DATABASE need that)."""
    import psycopg

    conninfo = url.replace("postgres://", "postgresql://", 1)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(sql)


class Stack:
    def __init__(
        self,
        data_dir: Path,
        *,
        webs: int = 1,
        consumers: int = 1,
        env: dict | None = None,
        web_workers: int = 1,
        threads: int = 4,
        logs: Path | None = None,
    ):
        self.data_dir = Path(data_dir)
        self.web_workers, self.threads = web_workers, threads
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "flightrec_site.settings",
            "FLIGHTREC_DATA_DIR": str(self.data_dir),
            "FLIGHTREC_MIN_FREE_DISK_BYTES": "0",
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        self.env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        for name in [k for k, v in self.env.items() if v is None]:  # env={"X": None} unsets X
            del self.env[name]
        # On PostgreSQL every stack gets a database of its own, as it gets a fresh data
        # directory on SQLite; stop() drops it.
        self.pg_admin_url = self.env.get("DATABASE_URL") or None
        self.pg_database = None
        if self.pg_admin_url:
            self.pg_database = f"flightrec_stack_{secrets.token_hex(4)}"
            pg_execute(self.pg_admin_url, f'CREATE DATABASE "{self.pg_database}"')
            self.env["DATABASE_URL"] = with_database(self.pg_admin_url, self.pg_database)
        self.ports = [free_port() for _ in range(webs)]
        self.webs: list[subprocess.Popen | None] = [None] * webs
        self.consumers: list[subprocess.Popen | None] = [None] * consumers
        # Elsewhere when the data dir is a tiny filesystem that tests fill up.
        self.logs = Path(logs) if logs else self.data_dir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)

    # --- processes -------------------------------------------------------------------
    def manage(self, *args: str, check: bool = True) -> str:
        out = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if check and out.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")
        # check=False: the caller looks at how it failed, so stderr too.
        return out.stdout if check else out.stdout + out.stderr

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "ab")
        # A process group of its own: SIGKILL must take gunicorn's workers down with the
        # master, as a crash of the whole server would.
        return subprocess.Popen(
            args,
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def start_web(self, i: int = 0) -> None:
        args = [
            sys.executable, "-m", "gunicorn", "flightrec_site.wsgi:application",
            "--bind", f"127.0.0.1:{self.ports[i]}", "--workers", str(self.web_workers),
            "--worker-class", "gthread", "--threads", str(self.threads),
        ]  # fmt: skip
        self.webs[i] = self._spawn(f"web{i}", args)
        self.wait_ready(i)

    def start_consumer(self, i: int = 0, *, periodic: bool | None = None) -> None:
        args = [sys.executable, "manage.py", "run_huey", "--workers", "2"]
        # Exactly one consumer schedules periodic tasks.
        if periodic is False or (periodic is None and i > 0):
            args.append("--no-periodic")
        self.consumers[i] = self._spawn(f"consumer{i}", args)

    def stop_web(self, i: int = 0) -> None:
        proc = self.webs[i]
        if proc and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)

    def kill(self, proc: subprocess.Popen | None) -> None:
        if proc and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def start(self) -> "Stack":
        self.manage("bootstrap", "--no-demo")
        for i in range(len(self.webs)):
            self.start_web(i)
        for i in range(len(self.consumers)):
            self.start_consumer(i)
        return self

    def stop(self) -> None:
        for proc in [*self.webs, *self.consumers]:
            if proc and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in [*self.webs, *self.consumers]:
            if proc:
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
        if self.pg_database:
            pg_execute(
                self.pg_admin_url, f'DROP DATABASE IF EXISTS "{self.pg_database}" WITH (FORCE)'
            )
            self.pg_database = None

    def wait_ready(self, i: int = 0, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.webs[i].poll() is not None:
                raise RuntimeError(f"web{i} exited:\n{(self.logs / f'web{i}.log').read_text()}")
            try:
                urllib.request.urlopen(self.url("/healthz", i), timeout=1).read()
                return
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.1)
        raise TimeoutError(f"web{i} did not answer /healthz in {timeout}s")

    # --- HTTP --------------------------------------------------------------------------
    def url(self, path: str, i: int = 0) -> str:
        return f"http://127.0.0.1:{self.ports[i]}{path}"

    def post(self, path: str, body: bytes, key: str, *, i: int = 0, headers=None, timeout=10):
        """Returns (status, json body or None). Raises OSError when the server is down."""
        req = urllib.request.Request(
            self.url(path, i),
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "X-API-Key": key, **(headers or {})},
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    # --- looking inside ----------------------------------------------------------------
    def query(self, code: str) -> object:
        """Run ORM code in a fresh process on this stack's databases; it sets `result`."""
        script = (
            "import json\nfrom recorder.models import *\nfrom django.db.models import *\n"
            + code
            + "\nprint('RESULT=' + json.dumps(result))"
        )
        out = self.manage("shell", "-c", script)
        line = [x for x in out.splitlines() if x.startswith("RESULT=")][-1]
        return json.loads(line[len("RESULT=") :])

    def wait_for(self, condition, *, timeout: float = 60, what: str = "the condition") -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError(f"waited {timeout}s for {what}")
            time.sleep(0.5)

    def inbox_depth(self) -> int:
        return self.query("result = InboxBatch.objects.count()")

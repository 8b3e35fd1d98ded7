"""The local stack: the very functions that run on Knative, as processes on loopback ports.

An embedded PostgreSQL with pgvector (pgserver) unless DATABASE_URL is set, blobs on local disk, the
local broker routing by the Triggers in knative/base, one functions-framework process per folder in
functions/, and the API. `mindspace run` (and `make run`) starts it; Ctrl-C stops it all.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from events import routes
from shared import db
from shared.config import Settings

log = logging.getLogger("mindspace.stack")
ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS = ROOT / "functions"


def function_names() -> list[str]:
    return sorted(p.name for p in FUNCTIONS.iterdir() if (p / "main.py").exists())


def serve_argv(function: str, host: str, port: int) -> list[str]:
    """How a function is served: the same servers and arguments as its container's CMD (Dockerfile)."""
    bin_dir = Path(sys.executable).parent
    if function == "api":
        return [sys.executable, "-m", "uvicorn", "api.app:app", "--host", host, "--port", str(port),
                "--log-level", "warning"]
    source = FUNCTIONS / function / "main.py"
    if not source.exists():
        raise SystemExit(f"no function {function!r}; there are: api, {', '.join(function_names())}")
    return [str(bin_dir / "functions-framework"), "--source", str(source), "--target", "handle",
            "--signature-type", "http", "--host", host, "--port", str(port)]


class Stack:
    def __init__(self, cfg: Settings, port: int = 8080, env: dict[str, str] | None = None):
        self.cfg = cfg
        self.port = port
        self.data_dir = cfg.data_dir.resolve()
        self.extra_env = env or {}
        self.procs: dict[str, subprocess.Popen] = {}
        self._pg = None
        self.database_url = cfg.database_url
        self.broker_port = port + 1
        self.function_ports = {name: port + 10 + i for i, name in enumerate(function_names())}
        self.sink_bound = routes.sink_bound()

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start_database(self) -> None:
        if self.database_url:
            return
        import pgserver

        self.data_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.data_dir, 0o755)  # pgserver's own user must reach its data folder
        self._pg = pgserver.get_server(self.data_dir / "pg", cleanup_mode="stop")
        self.database_url = self._pg.get_uri()
        log.info("embedded PostgreSQL (pgvector) with its data in %s", self.data_dir / "pg")

    @property
    def broker_url(self) -> str:
        return f"http://127.0.0.1:{self.broker_port}/default"

    def env(self, name: str | None = None) -> dict[str, str]:
        """A process's environment. K_SINK only where a SinkBinding gives it on a cluster, so a function
        that posts to the broker without one fails here as it would there."""
        env = {k: v for k, v in os.environ.items() if k != "K_SINK"}
        env |= {"DATABASE_URL": self.database_url, "DATA_DIR": str(self.data_dir), "AUTH_MODE": "dev",
                "PYTHONPATH": str(ROOT), **self.extra_env}
        if name in self.sink_bound:
            env["K_SINK"] = self.broker_url
        return env

    def _spawn(self, name: str, argv: list[str]) -> None:
        self.procs[name] = subprocess.Popen(argv, env=self.env(name), cwd=ROOT, start_new_session=True)

    def start_processes(self) -> None:
        for name, port in self.function_ports.items():
            self._spawn(name, serve_argv(name, "127.0.0.1", port))
        services = [f"--service={n}=http://127.0.0.1:{p}" for n, p in self.function_ports.items()]
        self._spawn("broker", [sys.executable, "-m", "local.cli", "broker", "--port", str(self.broker_port), *services])
        self._spawn("api", serve_argv("api", "127.0.0.1", self.port))

    def wait_ready(self, timeout: float = 90) -> None:
        urls = {"api": f"{self.api_url}/readyz", "broker": f"http://127.0.0.1:{self.broker_port}/"}
        urls |= {n: f"http://127.0.0.1:{p}/readyz" for n, p in self.function_ports.items()}
        deadline = time.monotonic() + timeout
        for name, url in urls.items():
            while True:
                if self.procs[name].poll() is not None:
                    raise RuntimeError(f"{name} exited with {self.procs[name].returncode}; see its log above")
                try:
                    if httpx.get(url, timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{name} was not ready at {url} after {timeout}s")
                time.sleep(0.2)

    def start(self) -> Stack:
        self.start_database()
        for v in db.migrate(self.database_url):
            log.info("migrated the database to %s", v)
        self.start_processes()
        try:
            self.wait_ready()
        except Exception:
            self.stop()
            raise
        # Where operator tools (mindspace dead-letters) find the running stack.
        self.info_file.write_text(json.dumps({"database_url": self.database_url, "api": self.api_url,
                                              "broker": self.broker_url}))
        return self

    @property
    def info_file(self) -> Path:
        return self.data_dir / "stack.json"

    def stop(self, database: bool = True) -> None:
        if database:
            self.info_file.unlink(missing_ok=True)
        for p in self.procs.values():
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for name, p in self.procs.items():
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in 15s; killing it", name)
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        self.procs.clear()
        if database and self._pg is not None:
            self._pg.cleanup()
            self._pg = None

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def watch(self) -> None:
        """Block until Ctrl-C, SIGTERM or a process dies, then stop everything."""
        stopping = []
        signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
        try:
            while not stopping:
                dead = [n for n, p in self.procs.items() if p.poll() is not None]
                if dead:
                    log.error("%s exited; stopping the stack", ", ".join(dead))
                    break
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        # A second Ctrl-C must not cut the shutdown short and leave processes behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        log.info("stopping the local stack")
        self.stop()

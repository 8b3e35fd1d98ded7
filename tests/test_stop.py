"""A stop signal at any moment of `mindspace run` (issue 26): SIGTERM, SIGINT or SIGHUP while PostgreSQL
starts, once it is up, once the broker answers, right after the API first answers ready (before the stack's
start has returned) and while the stack runs, sent to `mindspace run` alone or to the whole process group of
a `make run` (make, mindspace run and whatever runs in that group at that moment; the stack's processes run
in sessions of their own and get nothing). Each time the command exits saying it was stopped (128 + the
signal; make dies of the signal itself, after it), and nothing of its data folder is left: no process whose
environment names the folder, no PostgreSQL whose command line does, no container labelled with it, and
every port of the stack free. Each case starts a fresh stack in a fresh data folder.
"""
from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import pytest

from local import containers as oci
from local.stack import ROOT, free_port_block, function_names

pytestmark = pytest.mark.stack
REACH_S = 240  # for a start-up point; a start on two busy cores takes a minute at worst
STOP_S = 120  # for the whole stop: 15 s per process group, PostgreSQL's fast shutdown, exit


class Run:
    """`mindspace run --no-reload` in a fresh data folder on free ports, in a session of its own as a terminal
    or a process manager starts it: alone, or as the command of a make target. Its output is kept."""

    def __init__(self, tmp_path: Path, parent: str, containers: bool = False):
        self.parent, self.containers = parent, containers
        self.data = Path(tempfile.mkdtemp(prefix="mindspace-stop-", dir="/tmp"))
        self.port = free_port_block()
        argv = [sys.executable, "-m", "local.cli", "run", "--no-reload", "--port", str(self.port),
                *(["--containers"] if containers else [])]
        if parent == "make":  # one command: make runs it without a shell, as it runs `make run`'s
            (tmp_path / "Makefile").write_text(f"run:\n\t{shlex.join(argv)}\n")
            argv = ["make", "-s", "-f", str(tmp_path / "Makefile"), "run"]
        env = {k: v for k, v in os.environ.items()
               if k not in {"DATABASE_URL", "FORCE_COLOR", "PORT", "MAKEFLAGS", "MFLAGS", "MAKELEVEL"}}
        env |= {"DATA_DIR": str(self.data), "NO_COLOR": "1", "PYTHONUNBUFFERED": "1"}
        self.lines: list[str] = []
        self.proc = subprocess.Popen(argv, cwd=ROOT, env=env, start_new_session=True, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, errors="replace")
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)

    def said(self, text: str) -> bool:
        return any(text in line for line in list(self.lines))

    def answers(self, port: int, path: str) -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def until(self, reached, what: str, timeout: float = REACH_S) -> None:
        deadline = time.monotonic() + timeout
        while not reached(self):
            assert self.proc.poll() is None, f"exited with {self.proc.returncode} before {what}:\n{self.tail()}"
            assert time.monotonic() < deadline, f"not {what} after {timeout}s:\n{self.tail()}"
            time.sleep(0.02)

    def signal(self, sig: int) -> None:
        if self.parent == "make":
            os.killpg(self.proc.pid, sig)  # make's group: make, mindspace run, its children of the moment
        else:
            os.kill(self.proc.pid, sig)

    def tail(self, n: int = 60) -> str:
        return "".join(self.lines[-n:])

    def ports(self) -> list[int]:
        """The stack's: the API's, the broker's (port + 1), the functions' (from port + 10)."""
        return [self.port, self.port + 1, *range(self.port + 10, self.port + 10 + len(function_names()))]

    def leftovers(self) -> dict[int, str]:
        return leftovers(self.data)

    def containers_left(self) -> list[str]:
        found = subprocess.run([oci.engine(), "ps", "-aq", "--filter", f"label={oci.LABEL}={self.data}"],
                               capture_output=True, text=True, check=True)
        return found.stdout.split()

    def close(self) -> None:
        """Whatever a failed case left, ended, so the next case and the next test start clean."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        for pid in self.leftovers():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self.containers:
            oci.remove(self.data)
        shutil.rmtree(self.data, ignore_errors=True)


def leftovers(data: Path) -> dict[int, str]:
    """pid -> command line of each live process of the data folder: its environment names the folder (every
    process the stack starts, PostgreSQL included, inherits DATA_DIR), or it is the folder's PostgreSQL."""
    mine, pgdata = f"DATA_DIR={data}".encode(), os.fsencode(data / "pg")
    found = {}
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if (proc / "stat").read_text().rpartition(")")[2].split()[0] == "Z":
                continue  # exited; this machine's init does not collect orphans
            environ = (proc / "environ").read_bytes().split(b"\0")
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError):
            continue
        if mine in environ or (argv[0].endswith(b"postgres") and pgdata in argv):
            found[int(proc.name)] = b" ".join(argv).decode(errors="replace")
    return found


def busy(ports: list[int]) -> list[int]:
    held = []
    for port in ports:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                held.append(port)
    return held


# The start-up points, each read from what the stack shows (its log, its folder, its ports), never slept for.
POINTS = {
    "initdb": lambda r: (r.data / "pg" / "PG_VERSION").exists(),  # written as the folder is made
    "postgres starting": lambda r: (r.data / "pg" / "log").exists(),  # pg_ctl start's: it waits for the server
    "postgres up": lambda r: r.said("embedded PostgreSQL"),
    "broker up": lambda r: r.answers(r.port + 1, "/"),
    "api ready": lambda r: r.answers(r.port, "/readyz"),  # the functions may still be starting
    "running": lambda r: r.said("Mindspace is running"),
}


def stop_and_check(run: Run, sig: signal.Signals, twice: bool = False) -> None:
    sent = time.monotonic()
    run.signal(sig)
    if twice:  # Ctrl-C again while it stops
        run.until(lambda r: r.said("stopping the local stack"), "stopping")
        run.signal(sig)
    try:
        code = run.proc.wait(timeout=STOP_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running {STOP_S}s after {sig.name}:\n{run.tail()}")
    run._reader.join(timeout=10)
    print(f"{run.parent}: stopped {time.monotonic() - sent:.1f}s after {sig.name}")
    assert run.said(f"exiting with {128 + sig}"), run.tail()
    assert code == (-sig if run.parent == "make" else 128 + sig), run.tail()
    deadline = time.monotonic() + 5  # a process SIGKILLed by the stop may take a moment to be gone
    while (left := run.leftovers()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not left, f"left running after {sig.name}: {left}\n{run.tail()}"
    assert not busy(run.ports()), f"ports still held: {busy(run.ports())}\n{run.tail()}"


@pytest.mark.parametrize("point, parent, sig, twice", [
    ("initdb", "make", signal.SIGINT, False),  # Ctrl-C: initdb, in the group, dies with it
    ("postgres starting", "make", signal.SIGTERM, False),  # pg_ctl dies; the server it started goes on
    ("postgres up", "alone", signal.SIGTERM, False),
    ("broker up", "make", signal.SIGHUP, False),  # the terminal closed
    ("api ready", "make", signal.SIGTERM, False),  # issue 26's case; make forwards a second SIGTERM
    ("api ready", "alone", signal.SIGHUP, False),
    ("running", "alone", signal.SIGINT, True),
], ids=lambda v: v.name if isinstance(v, signal.Signals) else {True: "twice", False: "once"}.get(v, v))
def test_a_signal_at_any_moment_stops_everything_started(tmp_path, point, parent, sig, twice):
    run = Run(tmp_path, parent)
    try:
        run.until(POINTS[point], point)
        stop_and_check(run, sig, twice)
    finally:
        run.close()


@pytest.mark.containers
def test_a_signal_to_make_run_containers_leaves_no_container(tmp_path):
    run = Run(tmp_path, "make", containers=True)
    try:
        run.until(POINTS["api ready"], "api ready")
        stop_and_check(run, signal.SIGTERM)
        assert run.containers_left() == []
    finally:
        run.close()

"""Each image as Knative runs it (`make images` first; `make test` runs this with MINDSPACE_TEST_CONTAINERS=1).

Started with Knative's runtime contract (local/containers.py: PORT, K_SERVICE, K_CONFIGURATION, K_REVISION,
a read-only root filesystem with a writable /tmp, uid 65532, no capabilities, the Service's memory limit), a
container must be ready within its cold-start budget, hold only its dependency group, and on SIGTERM finish
what it is doing and exit 0. The pipeline itself runs on the container stack in the tests marked
on_containers (test_extractors, test_pipeline, test_reminders: every function takes a real event there).
"""
from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from events import catalogue, wire
from events.catalogue import FileUploaded
from local import containers as oci
from local.stack import ROOT, free_port_block, function_names

import media

pytestmark = pytest.mark.containers
FUNCTIONS = ["api", *function_names()]
# Cold start from the container's start to /readyz answering 200 (README, "Benchmarks": every function is
# ready within 1.5 s as a process; the budget holds in its container too).
READY_BUDGET_S = 1.5


def engine(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([oci.engine(), *args], capture_output=True, text=True, **kw)


@pytest.fixture(scope="module", autouse=True)
def images_built():
    if missing := oci.missing_images(FUNCTIONS):
        pytest.fail(f"no image for {', '.join(missing)}: run make images first")


class Container:
    """One function's container beside the stack, on a port of its own, started as the stack starts it."""

    def __init__(self, stack, function: str, port: int):
        self.function, self.port = function, port
        argv = oci.run_argv(function, port, stack.settings_env(function), stack.data_dir, stack.database_url)
        self.name = argv[argv.index("--name") + 1] + "-alone"
        argv[argv.index("--name") + 1] = self.name
        argv.remove("--rm")  # its exit code is read after it stops
        argv.insert(2, "--detach")
        engine("rm", "-f", self.name)
        assert (r := engine(*argv[1:])).returncode == 0, r.stderr
        self.url = f"http://127.0.0.1:{port}"

    def ready_after(self, timeout: float = 30) -> float:
        """Seconds from the container's start to the first 200 of /readyz."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    ready = time.time()
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.01)
        else:
            raise AssertionError(f"{self.function} not ready after {timeout}s:\n{self.logs()}")
        started = engine("inspect", "--format", "{{.State.StartedAt.UnixNano}}", self.name).stdout
        return ready - int(started) / 1e9

    def exec(self, *argv: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        return engine("exec", "-i", self.name, *argv, input=stdin)

    def stop(self, grace: int) -> int:
        """SIGTERM, then wait up to `grace` seconds (as the kubelet would, then SIGKILL): its exit code."""
        engine("stop", "-t", str(grace), self.name)
        return int(engine("inspect", "--format", "{{.State.ExitCode}}", self.name).stdout.strip())

    def logs(self) -> str:
        return engine("logs", self.name).stdout[-3000:]

    def remove(self) -> None:
        engine("rm", "-f", "-t", "0", self.name)


# What the image holds against what its group asks for, read inside the image: the project's Requires-Dist
# for the group (its markers name the extra), followed through every installed distribution (pip's own
# packaging library evaluates the markers).
CLOSURE = """
import json, sys
from importlib import metadata
from pip._vendor.packaging.requirements import Requirement
from pip._vendor.packaging.utils import canonicalize_name as name

groups, bare = sys.argv[1].split(","), {name(n) for n in sys.argv[2].split(",") if n}
installed = {name(d.metadata["Name"]): d for d in metadata.distributions()}
needed, todo = {}, [("mindspace", set(groups))]
while todo:
    n, extras = todo.pop()
    if n in needed and extras <= needed[n]:
        continue
    needed[n] = needed.get(n, set()) | extras
    for r in map(Requirement, installed[n].requires or [] if n in installed else []):
        if r.marker is None or any(r.marker.evaluate({"extra": e}) for e in needed[n] | {""}):
            todo.append((name(r.name), set(r.extras)))
print(json.dumps({"extra": sorted(set(installed) - set(needed) - bare - {"pip", "setuptools"}),
                  "missing": sorted((set(needed) | bare) - set(installed))}))
"""


@pytest.mark.parametrize("function", FUNCTIONS)
def test_each_image_keeps_knatives_runtime_contract(stack, function, record_property):
    container = Container(stack, function, free_port_block(1))
    try:
        ready = container.ready_after()
        record_property("ready_s", ready)
        print(f"{function}: ready {ready:.2f} s after its container started")
        assert ready < READY_BUDGET_S, f"{function} took {ready:.2f}s to be ready in its container"
        env = dict(line.split("=", 1) for line in container.exec("env").stdout.splitlines() if "=" in line)
        assert env["K_SERVICE"] == function and env["K_CONFIGURATION"] == function and env["K_REVISION"]
        assert env["PORT"] == str(container.port)
        status = container.exec("cat", "/proc/1/status").stdout
        assert "\nUid:\t65532\t65532\t65532\t65532" in status, status
        assert "CapEff:\t0000000000000000" in status and "CapBnd:\t0000000000000000" in status
        assert "NoNewPrivs:\t1" in status
        assert container.exec("touch", "/app/x").returncode != 0, "the root filesystem is writable"
        assert container.exec("touch", "/tmp/x").returncode == 0, "/tmp is not writable"
        limit = container.exec("cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes").stdout.strip() or \
            container.exec("cat", "/sys/fs/cgroup/memory.max").stdout.strip()
        expected = oci.memory_limit(function)
        assert int(limit) == int(expected[:-1]) * {"g": 2**30, "m": 2**20}[expected[-1]], (limit, expected)
        bare = ",".join(_bare(function))
        found = json.loads(container.exec("python", "-", function, bare, stdin=CLOSURE).stdout)
        assert not found["extra"], f"{function}'s image holds packages its group does not ask for: {found['extra']}"
        assert not found["missing"], f"{function}'s image lacks {found['missing']}"
        assert container.stop(grace=30) == 0, container.logs()
    finally:
        container.remove()


def _bare(function: str) -> list[str]:
    from local.images import pyproject

    return [r.split(">")[0].split("=")[0].split("<")[0] for r in
            pyproject()["tool"]["mindspace"]["no-deps"].get(function, [])]


def test_sigterm_lets_a_transcription_in_flight_finish(stack, user, sql):
    """Scale-down while a recording is being transcribed: the reply still comes, then the process exits 0."""
    sentence = "The committee will meet again next spring to review the harbour renovation budget. " * 10
    f = user.upload("long-memo.ogg", media.speech_ogg(sentence)).json()
    user.wait(f["id"], timeout=300)
    row = sql("SELECT * FROM files WHERE id = %s", f["id"])[0]
    container = Container(stack, "transcribe", free_port_block(1))
    try:
        container.ready_after(timeout=60)
        event = FileUploaded(file_id=f["id"], user_id=user.name, blob_uri=row["blob_uri"], filename="long-memo.ogg",
                             media_type=row["media_type"], category="audio", size=row["size"], sha256=row["sha256"])
        headers, body = wire.binary(wire.make(event, "api", id=catalogue.reply_id("api", "again", f["id"])))
        answer: dict = {}

        def post():
            answer["response"] = httpx.post(container.url, headers=headers, content=body, timeout=300)
            answer["at"] = time.monotonic()

        worker = threading.Thread(target=post)
        worker.start()
        time.sleep(1.0)  # the transcription is under way (tens of seconds of speech)
        signalled = time.monotonic()
        exit_code = container.stop(grace=600)
        worker.join()
        assert answer["response"].status_code == 200, answer["response"].text
        assert answer["at"] > signalled, "the transcription finished before SIGTERM: the test proves nothing"
        assert exit_code == 0, container.logs()
    finally:
        container.remove()


def test_the_dev_image_reloads_a_file_synced_into_it(stack, user, sql, tmp_path):
    """skaffold dev's sync (tar over exec, as podman cp does) into the dev target: the next event runs the new code."""
    build = subprocess.run([str(ROOT / "local" / "build-images.sh"), "--dev", "extract"], capture_output=True,
                           text=True, cwd=ROOT)
    assert build.returncode == 0, build.stdout + build.stderr
    f = user.upload("archive.zip", _zip()).json()
    assert user.wait(f["id"])["status"] == "unsupported"
    row = sql("SELECT * FROM files WHERE id = %s", f["id"])[0]
    port = free_port_block(1)
    argv = oci.run_argv("extract", port, stack.settings_env("extract"), stack.data_dir, stack.database_url, tag="dev")
    name = f"mindspace-{port}-extract-dev"
    argv[argv.index("--name") + 1] = name
    argv.remove("--read-only")  # as the dev overlay runs it: skaffold's sync writes into /app
    argv.insert(2, "--detach")
    assert (r := engine(*argv[1:])).returncode == 0, r.stderr
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_ready(url)
        changed = tmp_path / "main.py"
        changed.write_text((ROOT / "functions/extract/main.py").read_text()
                           .replace('f"no extractor reads {kind} files"', 'f"reloaded: nothing reads {kind} files"'))
        assert engine("cp", str(changed), f"{name}:/app/functions/extract/main.py").returncode == 0
        deadline = time.monotonic() + 30
        while True:  # watchfiles restarts the server; the old one may answer once more meanwhile
            event = FileUploaded(file_id=f["id"], user_id=user.name, blob_uri=row["blob_uri"], filename="archive.zip",
                                 media_type=row["media_type"], category=row["category"], size=row["size"],
                                 sha256=row["sha256"])
            headers, body = wire.binary(wire.make(event, "api"))
            try:
                httpx.post(url, headers=headers, content=body, timeout=30)
            except httpx.HTTPError:
                pass
            if "reloaded: nothing reads" in json.dumps(user.file(f["id"])):
                break
            assert time.monotonic() < deadline, engine("logs", name).stdout[-2000:]
            time.sleep(0.5)
    finally:
        engine("rm", "-f", "-t", "0", name)


def _wait_ready(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} not ready after {timeout}s")


def _zip() -> bytes:
    import io
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("a.bin", bytes(range(256)) * 8)
    return out.getvalue()


def test_the_stack_runs_every_function_from_its_image(stack):
    running = engine("ps", "--format", "{{.Names}} {{.Image}}", "--filter", f"label={oci.LABEL}={stack.data_dir}")
    images = dict(line.split() for line in running.stdout.splitlines())
    assert {oci.name(f, stack.port if f == "api" else stack.function_ports[f]) for f in FUNCTIONS} <= images.keys()
    assert Path(stack.data_dir).exists()

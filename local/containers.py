"""The local stack on containers (`mindspace run --containers`): each function runs from its image as Knative
runs it, the rest (PostgreSQL, blobs on disk, the local broker) as on the plain local stack.

What a Knative Service gives its container, the container gets here: the ConfigMap's environment
(knative/base/config.yaml) under the local stack's own values, PORT, K_SERVICE, K_CONFIGURATION and
K_REVISION, a read-only root filesystem with a writable /tmp, uid 65532 with no capabilities and no privilege
escalation, and its Service's memory limit. The host's network stands in for the cluster's: functions listen
on loopback ports, reach the broker and PostgreSQL on loopback, and the broker reaches them there.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from functools import cache
from pathlib import Path

import yaml

from events import routes

UID = 65532  # the images' USER
# Where the embedded PostgreSQL's socket appears inside a container: its data folder is its own user's alone
# (0700), so the socket file itself is mounted, not the folder.
SOCKET_DIR = "/run/postgresql"
LABEL = "mindspace.data-dir"


def engine() -> str:
    """podman: its rootless user namespaces (keep-id) and local image names are what this module uses."""
    if found := shutil.which("podman"):
        return found
    raise SystemExit("--containers needs podman: make container-debs installs it, make images builds the images")


@cache
def manifests(base: Path = routes.KNATIVE_BASE) -> dict[str, dict]:
    """Every object of knative/base by kind/name: the ConfigMap and the Services."""
    out = {}
    for path in sorted(base.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and (name := (doc.get("metadata") or {}).get("name")):  # not patches
                out.setdefault(f"{doc.get('kind')}/{name}", doc)
    return out


def config_map_env(base: Path = routes.KNATIVE_BASE) -> dict[str, str]:
    return {k: str(v) for k, v in manifests(base)["ConfigMap/mindspace-config"]["data"].items()}


def memory_limit(function: str, base: Path = routes.KNATIVE_BASE) -> str:
    """The Service's limits.memory in podman's notation (2Gi -> 2g)."""
    container = manifests(base)[f"Service/{function}"]["spec"]["template"]["spec"]["containers"][0]
    value = container["resources"]["limits"]["memory"]
    return value.replace("Gi", "g").replace("Mi", "m")


def image(function: str, tag: str = "latest") -> str:
    return f"localhost/mindspace-{function}:{tag}"


def missing_images(functions: list[str], tag: str = "latest") -> list[str]:
    run = [engine(), "image", "inspect"]
    return [f for f in functions if subprocess.run([*run, image(f, tag)], capture_output=True).returncode != 0]


def name(function: str, port: int) -> str:
    return f"mindspace-{port}-{function}"


def socket_mount(database_url: str) -> tuple[list[str], str]:
    """The volume arguments and the URL that reach the embedded PostgreSQL from inside a container."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    info = conninfo_to_dict(database_url)
    host = info.get("host", "")
    if not host.startswith("/"):
        return [], database_url  # a server on the network (DATABASE_URL): the host's network reaches it
    socket = f".s.PGSQL.{info.get('port') or 5432}"
    inner = make_conninfo(database_url, host=SOCKET_DIR)
    return ["-v", f"{Path(host) / socket}:{SOCKET_DIR}/{socket}"], inner


def prepare_blobs(blob_dir: Path) -> None:
    """The functions (uid 65532) write blobs: as root the folder is given to that uid; a rootless podman maps
    the developer's own uid to it instead (run_argv)."""
    blob_dir.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        for path in [blob_dir, *blob_dir.rglob("*")]:
            os.chown(path, UID, UID, follow_symlinks=False)


def run_argv(function: str, port: int, env: dict[str, str], data_dir: Path, database_url: str,
             tag: str = "latest") -> list[str]:
    """`podman run` of one function, as Knative would start its container (see the module's docstring).
    `env` is what the stack sets (Stack.settings_env); the image's own PYTHONPATH is kept."""
    env = {k: v for k, v in env.items() if k != "PYTHONPATH"}
    volumes, url = socket_mount(database_url)
    blob_dir = Path(env.get("DATA_DIR", data_dir)) / "blobs"
    volumes += ["-v", f"{blob_dir}:{blob_dir}"]
    # Settings that name a file on this machine (a service account's JSON) are mounted where they name it,
    # read-only, as a Secret's file would be.
    for value in env.values():
        if value.startswith("/") and Path(value).is_file():
            volumes += ["-v", f"{value}:{value}:ro"]
    knative = {"PORT": str(port), "K_SERVICE": function, "K_CONFIGURATION": function,
               "K_REVISION": f"{function}-00001", "HOST": "127.0.0.1"}
    full_env = config_map_env() | env | {"DATABASE_URL": url} | knative
    rootless = os.geteuid() != 0
    return [engine(), "run", "--rm", "--name", name(function, port), "--label", f"{LABEL}={data_dir}",
            "--network=host", "--read-only", "--tmpfs", "/tmp:rw,mode=1777",  # nosec B108: the pod's emptyDir
            "--user", f"{UID}:{UID}",
            *(["--userns", f"keep-id:uid={UID},gid={UID}"] if rootless else []),
            "--cap-drop=ALL", "--security-opt=no-new-privileges", "--memory", memory_limit(function),
            *volumes, *(a for k, v in sorted(full_env.items()) for a in ("-e", f"{k}={v}")), image(function, tag)]


def remove(data_dir: Path) -> None:
    """Every container of this data folder's stack, whatever became of the `podman run` that started it. In
    sessions of their own: a second signal to the stack's process group must not cut a stop's removal short."""
    ids = subprocess.run([engine(), "ps", "-aq", "--filter", f"label={LABEL}={data_dir}"],
                         capture_output=True, text=True, start_new_session=True).stdout.split()
    if ids:
        subprocess.run([engine(), "rm", "-f", "-t", "0", *ids], capture_output=True, start_new_session=True)

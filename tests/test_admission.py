"""Every rendered object of every overlay, and of knative/monitoring, against what Knative's admission webhooks
accept (serving 1.23, eventing 1.22) and what then runs right, as ../shared/reference/knative-validation.md
records it from their sources. Each rule is one named check below that quotes the lines of that file it
encodes (a test fails when the reference stops saying so) and cites the Knative source beside it; each has an
object it must refuse. Paths: `S/` = serving pkg/apis/serving/, `ev:` eventing, `pkg:` knative.dev/pkg.

Feature flags come from knative/cluster-features.yaml alone, what the README's install steps apply: a field
behind a flag it does not switch on fails, even where Knative's default is on (an operator may have turned it
off), and a flag it names that no overlay uses fails too.

Not modelled, as in the reference's own checker: CESQL parsing, the server-side dry run, Kubernetes' Pod
validation of the Revision's Deployment (tests/test_manifests.py holds the CRD and core schemas)."""
from __future__ import annotations

import base64
import json
import re
import zoneinfo
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
import yaml
from test_manifests import OVERLAYS, ROOT, kustomize, render

from conftest import REFERENCE

RULES = REFERENCE / "knative-validation.md"
CLUSTER_FEATURES = ROOT / "knative" / "cluster-features.yaml"
# The rules are encoded here, so they run anywhere; only their quotes are checked against the reference.
needs_rules = pytest.mark.skipif(not RULES.exists(), reason=f"Knative's admission rules not found at {RULES} "
                                 "(../shared/reference beside the repository): the quotes cannot be checked")

SERVICE, TRIGGER, BROKER = "serving.knative.dev/Service", "eventing.knative.dev/Trigger", "eventing.knative.dev/Broker"
PING, BINDING, POD_MONITOR = "sources.knative.dev/PingSource", "sources.knative.dev/SinkBinding", \
    "monitoring.coreos.com/PodMonitor"
PUBLIC = {"api"}  # the one Service with a route on the cluster's external domain
DNS1035 = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def kind(obj: dict) -> str:
    return f"{obj['apiVersion'].split('/')[0]}/{obj['kind']}"


@dataclass
class Cluster:
    """What a check knows besides its object: the ConfigMaps of knative/cluster-features.yaml, the objects
    rendered with it, and the flags the checks found in use."""

    config: dict[tuple[str, str], dict[str, str]]
    objects: list[dict] = field(default_factory=list)
    used: set[tuple[str, str]] = field(default_factory=set)

    @classmethod
    def load(cls, objects: list[dict] = ()) -> Cluster:
        docs = [d for d in yaml.safe_load_all(CLUSTER_FEATURES.read_text()) if d]
        return cls({(d["metadata"]["namespace"], d["metadata"]["name"]): {k: str(v) for k, v in d["data"].items()}
                    for d in docs}, list(objects))

    def needs(self, flag: str, where: str, *, eventing: bool = False, exact: bool = False) -> list[str]:
        """Serving's field masks pass any value but "disabled" (`flag != Disabled`); Eventing's IsEnabled and a
        few Serving checks need "enabled" (ev: pkg/apis/feature/features.go:97-99)."""
        ns = "knative-eventing" if eventing else "knative-serving"
        self.used.add((ns, flag))
        value = self.config.get((ns, "config-features"), {}).get(flag, "disabled").lower()
        if value == "enabled" or (value != "disabled" and not (eventing or exact)):
            return []
        return [f"{where} needs {ns}/config-features {flag}: enabled (knative/cluster-features.yaml: {value})"]

    def default(self, key: str, fallback: int) -> int:
        return int(self.config.get(("knative-serving", "config-defaults"), {}).get(key, fallback))

    def find(self, key: str, name: str, namespace: str | None) -> dict | None:
        return next((o for o in self.objects if kind(o) == key and o["metadata"]["name"] == name
                     and o["metadata"].get("namespace") == namespace), None)


@dataclass(frozen=True)
class Rule:
    kinds: tuple[str, ...]
    quotes: tuple[str, ...]  # what knative-validation.md says, word for word
    check: Callable[[dict, Cluster], Iterator[str]]


CHECKS: dict[str, Rule] = {}


def rule(*kinds: str, quotes: tuple[str, ...]):
    def register(fn):
        CHECKS[fn.__name__] = Rule(kinds, quotes, fn)
        return fn
    return register


def violations(obj: dict, cluster: Cluster) -> list[str]:
    return [f"{obj['kind']} {obj['metadata']['name']}: {name}: {msg}" for name, r in CHECKS.items()
            if kind(obj) in r.kinds for msg in r.check(obj, cluster)]


# ---- value grammars, as the webhooks parse them ----

def go_duration(text: str) -> float | None:
    """Go's time.ParseDuration, in seconds."""
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
    parts = re.findall(r"(\d+(?:\.\d*)?)(ns|us|µs|ms|s|m|h)", text)
    if text == "0":
        return 0.0
    if not parts or "".join(a + b for a, b in parts) != text.lstrip("+"):
        return None
    return sum(float(a) * units[b] for a, b in parts)


ISO_PERIOD = re.compile(r"^[-+]?P(?=.)(?:(\d+(?:[.,]\d+)?)Y)?(?:(\d+(?:[.,]\d+)?)M)?(?:(\d+(?:[.,]\d+)?)W)?"
                        r"(?:(\d+(?:[.,]\d+)?)D)?(?:T(?=.)(?:(\d+(?:[.,]\d+)?)H)?(?:(\d+(?:[.,]\d+)?)M)?"
                        r"(?:(\d+(?:[.,]\d+)?)S)?)?$")


def iso_period(text: str) -> tuple[float, list[str]] | None:
    """rickb777/date v1.13.0 period.Parse (period/parse.go:53-180): seconds (months and years as 30 and 365
    days) and the components whose fraction it cuts to one digit."""
    m = ISO_PERIOD.match(text)
    if not m:
        return None
    sizes = (365 * 86400, 30 * 86400, 7 * 86400, 86400, 3600, 60, 1)
    nums = [(g or "0").replace(",", ".") for g in m.groups()]
    cut = [n for n in nums if "." in n and len(n.split(".")[1]) > 1]
    return sum(float(n) * s for n, s in zip(nums, sizes, strict=True)) * (-1 if text[0] == "-" else 1), cut


CRON_FIELDS = [(0, 59, {}), (0, 59, {}), (0, 23, {}), (1, 31, {}),
               (1, 12, {m: i + 1 for i, m in enumerate("JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split())}),
               (0, 6, {d: i for i, d in enumerate("SUN MON TUE WED THU FRI SAT".split())})]
CRON_DESCRIPTORS = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}


def cron_errors(schedule: str) -> list[str]:
    """robfig/cron v3.0.1 with SecondOptional|Descriptor, as ev: pkg/apis/sources/v1/ping_validation.go uses it."""
    if schedule.startswith("@"):
        return [] if schedule in CRON_DESCRIPTORS else [f"{schedule!r}: unknown or refused descriptor (@every is)"]
    fields = schedule.split()
    if len(fields) not in (5, 6):
        return [f"{schedule!r}: {len(fields)} fields, not 5 or 6"]
    errors = []
    for text, (lo, hi, names) in zip(fields, CRON_FIELDS[6 - len(fields):], strict=True):
        def value(s: str, names=names) -> int | None:
            return names.get(s.upper(), int(s) if s.isdigit() else None)

        for term in text.split(","):
            m = re.fullmatch(r"(\*|\?|\w+)(?:-(\w+))?(?:/(\d+))?", term)
            start = None if not m or m[1] in "*?" else value(m[1])
            end = value(m[2]) if m and m[2] else start
            if not m or (m[1] not in "*?" and (start is None or end is None or not lo <= start <= end <= hi)) \
                    or (m[3] is not None and int(m[3]) == 0):
                errors.append(f"{schedule!r}: {term!r} is outside {lo}..{hi} or not a term")
    return errors


IMAGE = re.compile(r"^(?:[a-zA-Z0-9.-]+(?::\d+)?/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
                   r"(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::\w[\w.-]{0,127})?(?:@sha256:[0-9a-f]{64})?$")


# ---- Serving: the Service and its revision template ----

def template(svc: dict) -> dict:
    return svc["spec"].get("template", {})


def pod(svc: dict) -> dict:
    return template(svc).get("spec", {})


def serving_port(svc: dict) -> dict:
    return next((c["ports"][0] for c in pod(svc).get("containers", []) if c.get("ports")), {})


def timeout_seconds(svc: dict, cluster: Cluster) -> int:
    return pod(svc).get("timeoutSeconds") or cluster.default("revision-timeout-seconds", 300)


def response_start(svc: dict, cluster: Cluster) -> int:
    """When queue-proxy gives up waiting for the first byte: the defaulting of S/v1/revision_defaults.go:58-72
    (a default not below timeoutSeconds, or 0, sets no timer, and then timeoutSeconds cuts)."""
    timeout = timeout_seconds(svc, cluster)
    given = pod(svc).get("responseStartTimeoutSeconds")
    if given is None:
        fallback = cluster.default("revision-response-start-timeout-seconds",
                                   cluster.default("revision-timeout-seconds", 300))
        given = fallback if 0 < fallback < timeout else 0
    return min(given, timeout) if given else timeout


@rule(SERVICE, quotes=("Service/Configuration/Route name: DNS-1035 label",))
def service_name(svc, cluster):  # pkg: apis/metadata_validation.go:39-73
    if not DNS1035.match(svc["metadata"]["name"]):
        yield f"name {svc['metadata']['name']!r} is not a DNS-1035 label"


@rule(SERVICE, quotes=("`autoscaling.knative.dev/*` only on `spec.template.metadata.annotations`; on the Service's "
                       "own metadata it is rejected",))
def autoscaling_on_the_template(svc, cluster):  # S/metadata_validation.go:81-89
    for key in svc["metadata"].get("annotations", {}):
        if key.startswith("autoscaling.knative.dev/"):
            yield f"{key} on the Service's metadata: it belongs on spec.template.metadata.annotations"


@rule(SERVICE, quotes=("`min-scale`/`max-scale` (alt minScale/maxScale): ints 0..2^31-1, max ≥ min unless max=0",
                       "`initial-scale`: int ≥0; 0 only if config-autoscaler `allow-zero-initial-scale`",
                       "`window` Go duration 6s..1h, whole seconds",
                       "`target` ≥ 0.01; `target-utilization-percentage` 1..100"))
def autoscaling_values(svc, cluster):  # pkg/apis/autoscaling/annotation_validation.go
    ann = {k.removeprefix("autoscaling.knative.dev/"): v for k, v in template(svc).get("metadata", {})
           .get("annotations", {}).items() if k.startswith("autoscaling.knative.dev/")}
    ann = {{"minScale": "min-scale", "maxScale": "max-scale", "initialScale": "initial-scale"}.get(k, k): v
           for k, v in ann.items()}

    def number(key, lo, hi=2**31 - 1, kind=int):
        try:
            ok = lo <= kind(ann[key]) <= hi
        except ValueError:
            ok = False
        return [] if ok else [f"{key} {ann[key]!r} is not {kind.__name__} in {lo}..{hi}"]

    bounds = {"min-scale": (0,), "max-scale": (0,), "initial-scale": (1,), "activation-scale": (2,),
              "target-utilization-percentage": (1, 100, float), "panic-window-percentage": (1, 100, float),
              "panic-threshold-percentage": (110, 1000, float), "target": (0.01, float("inf"), float)}
    durations = {"window": (6, 3600), "scale-down-delay": (0, 3600), "scale-to-zero-pod-retention-period": (0, 3600)}
    for key, value in ann.items():
        if key in bounds:
            lo, *rest = bounds[key]
            yield from number(key, lo, *rest)
        elif key in durations:
            secs, (lo, hi) = go_duration(value), durations[key]
            if secs is None or not lo <= secs <= hi or secs != int(secs):
                yield f"{key} {value!r} is not a Go duration of whole seconds in {lo}s..{hi}s"
        elif key == "class":
            if value.endswith(".knative.dev") and value not in ("kpa.autoscaling.knative.dev",
                                                                 "hpa.autoscaling.knative.dev"):
                yield f"class {value!r}"
        elif key == "metric":
            kpa = ann.get("class", "kpa.autoscaling.knative.dev").startswith("kpa.")
            if kpa and value not in ("concurrency", "rps"):
                yield f"metric {value!r}: the KPA scales on concurrency or rps"
        elif key == "target-burst-capacity":
            if float(value) < 0 and float(value) != -1:
                yield f"target-burst-capacity {value!r}"
        elif key != "metric-aggregation-algorithm":
            yield f"{key}: an annotation this test does not model (add its rule from annotation_validation.go)"
    low, high = ann.get("min-scale", "0"), ann.get("max-scale", "0")
    if low.isdigit() and high.isdigit() and high != "0" and int(high) < int(low):
        yield f"max-scale {ann['max-scale']} is below min-scale {ann['min-scale']}"


NETWORKING_ALLOWED = {"ingress.class", "ingress-class", "certificate.class", "certificate-class", "disableAutoTLS",
                      "disable-auto-tls", "disable-external-domain-tls", "httpOption", "http-protocol"}


@rule(SERVICE, quotes=("Template annotations `networking.knative.dev/*` only from the allow-list",))
def networking_annotations(svc, cluster):  # net: pkg/apis/networking/metadata_validation.go:27-49
    for key in template(svc).get("metadata", {}).get("annotations", {}):
        if key.startswith("networking.knative.dev/") and key.split("/", 1)[1] not in NETWORKING_ALLOWED:
            yield f"template annotation {key} is not in networking's allow-list"


@rule(SERVICE, quotes=("Visibility: label (not annotation) `networking.knative.dev/visibility: cluster-local` on the "
                       "Service/Route makes the route cluster-local",
                       "Without it every Service gets the external domain through the ingress."))
def cluster_local_but_the_api(svc, cluster):  # net: register.go:125-129, pkg/reconciler/route/config/domain.go:126-130
    key, name = "networking.knative.dev/visibility", svc["metadata"]["name"]
    label = svc["metadata"].get("labels", {}).get(key)
    if any(key in m.get("annotations", {}) for m in (svc["metadata"], template(svc).get("metadata", {}))):
        yield f"{key} is an annotation here: Knative reads it only as a label"
    if name in PUBLIC and label is not None:
        yield f"{name} is the public API, yet labelled {key}: {label}"
    if name not in PUBLIC and label != "cluster-local":
        yield f"{name} gets a public URL through the ingress: label it {key}: cluster-local"


# Always allowed (S/fieldmask.go:222-305); the revision's own fields beside the PodSpec (S/v1/revision_types.go).
POD_ALWAYS = {"serviceAccountName", "containers", "volumes", "imagePullSecrets", "enableServiceLinks",
              "automountServiceAccountToken", "containerConcurrency", "timeoutSeconds",
              "responseStartTimeoutSeconds", "idleTimeoutSeconds"}
POD_FLAGS = {"nodeSelector": "kubernetes.podspec-nodeselector", "tolerations": "kubernetes.podspec-tolerations",
             "affinity": "kubernetes.podspec-affinity", "hostAliases": "kubernetes.podspec-hostaliases",
             "topologySpreadConstraints": "kubernetes.podspec-topologyspreadconstraints",
             "runtimeClassName": "kubernetes.podspec-runtimeclassname",
             "securityContext": "kubernetes.podspec-securitycontext",
             "shareProcessNamespace": "kubernetes.podspec-shareprocessnamespace",
             "priorityClassName": "kubernetes.podspec-priorityclassname",
             "schedulerName": "kubernetes.podspec-schedulername",
             "initContainers": "kubernetes.podspec-init-containers",
             "dnsPolicy": "kubernetes.podspec-dnspolicy", "dnsConfig": "kubernetes.podspec-dnsconfig",
             "hostIPC": "kubernetes.podspec-hostipc", "hostPID": "kubernetes.podspec-hostpid",
             "hostNetwork": "kubernetes.podspec-hostnetwork"}
POD_SECURITY = {"runAsUser", "runAsGroup", "runAsNonRoot", "fsGroup", "supplementalGroups", "seccompProfile"}


@rule(SERVICE, quotes=("Always allowed: `serviceAccountName`", "Behind flags: `nodeSelector` (:251-253), `tolerations`",
                       "Never: `restartPolicy`, `terminationGracePeriodSeconds`",
                       "and validation needs `== enabled`, k8s_validation:453-457"))
def pod_fields(svc, cluster):  # S/fieldmask.go:222-305, S/k8s_validation.go:402-457
    spec = pod(svc)
    for key in spec:
        if key in POD_FLAGS:
            yield from cluster.needs(POD_FLAGS[key], f"spec.template.spec.{key}", exact=key == "initContainers")
        elif key not in POD_ALWAYS:
            yield f"spec.template.spec.{key} is never allowed in a Knative Service"
    for key in set(spec.get("securityContext", {})) - POD_SECURITY:
        yield f"spec.template.spec.securityContext.{key} is never allowed"


@rule(SERVICE, quotes=("`automountServiceAccountToken` **only `false`**",))
def automount_token(svc, cluster):  # S/fieldmask.go:237-239
    if pod(svc).get("automountServiceAccountToken", False) is not False:
        yield "automountServiceAccountToken may only be false"


@rule(SERVICE, quotes=("`serviceAccountName` (DNS-1123 subdomain, :441-445)",))
def service_account_name(svc, cluster):
    name = pod(svc).get("serviceAccountName")
    if name is not None and not DNS1123_SUBDOMAIN.match(name):
        yield f"serviceAccountName {name!r} is not a DNS-1123 subdomain"


@rule(SERVICE, quotes=("`timeoutSeconds` 0..`max-revision-timeout-seconds` (default **600**",))
def timeout_within_the_maximum(svc, cluster):  # S/v1/revision_validation.go:173-184, pkg/apis/config/defaults.go:41-45
    limit, timeout = cluster.default("max-revision-timeout-seconds", 600), pod(svc).get("timeoutSeconds", 0)
    if not 0 <= timeout <= limit:
        yield f"timeoutSeconds {timeout} is outside 0..{limit} (config-defaults max-revision-timeout-seconds)"


@rule(SERVICE, quotes=("`containerConcurrency` 0..`container-concurrency-max-limit` (default 1000",))
def container_concurrency(svc, cluster):  # S/metadata_validation.go:91-107
    limit, cc = cluster.default("container-concurrency-max-limit", 1000), pod(svc).get("containerConcurrency", 0)
    if not 0 <= cc <= limit:
        yield f"containerConcurrency {cc} is outside 0..{limit}"


CONTAINER_FIELDS = {"name", "args", "command", "env", "workingDir", "envFrom", "image", "imagePullPolicy",
                    "livenessProbe", "readinessProbe", "startupProbe", "ports", "resources", "securityContext",
                    "terminationMessagePath", "terminationMessagePolicy", "volumeMounts"}


@rule(SERVICE, quotes=("Allowed: name, args, command, env, workingDir, envFrom, image",
                       "Never: `lifecycle` (no preStop!)", "Name `queue-proxy` reserved",
                       "Several containers need `multi-container`"))
def container_fields(svc, cluster):  # S/fieldmask.go:310-345, S/k8s_validation.go:50-52, 476, 606-665
    containers = pod(svc).get("containers", [])
    if len(containers) > 1:
        yield from cluster.needs("multi-container", "a second container")
    for c in containers:
        for key in set(c) - CONTAINER_FIELDS:
            yield f"container {c.get('name')}: {key} is never allowed"
        if c.get("name") == "queue-proxy":
            yield "container name queue-proxy is Knative's own"
        if c.get("terminationMessagePolicy", "File") not in ("File", "FallbackToLogsOnError"):
            yield f"terminationMessagePolicy {c['terminationMessagePolicy']!r}"


@rule(SERVICE, quotes=("Image must parse as a go-containerregistry reference",))
def image_reference(svc, cluster):  # S/k8s_validation.go:635-644
    for c in pod(svc).get("containers", []):
        if not IMAGE.match(c.get("image", "")):
            yield f"container {c.get('name')}: image {c.get('image')!r} is not an image reference"


QUEUE_PROXY_PORTS = (8012, 8013, 8022, 9090, 9091, 8008)


@rule(SERVICE, quotes=("the one with `ports` serves; exactly one port across all containers",
                       "`containerPort` 0..65535 and not 8012/8013/8022/9090/9091/8008",
                       "`name` only \"\", `h2c`, `http1`"))
def one_serving_port(svc, cluster):  # S/k8s_validation.go:61-79, 512-545, 772-824; S/fieldmask.go:484-502
    containers = pod(svc).get("containers", [])
    ports = [p for c in containers for p in c.get("ports", [])]
    if len(ports) > 1 or (not ports and len(containers) > 1):  # one container alone may leave it to Knative
        yield f"{len(ports)} ports across the containers: exactly one serves"
    for p in ports[:1]:
        if not 0 <= p.get("containerPort", 0) <= 65535 or p.get("containerPort") in QUEUE_PROXY_PORTS:
            yield f"containerPort {p.get('containerPort')} is out of range or one queue-proxy holds"
        if p.get("name", "") not in ("", "h2c", "http1"):
            yield f"port name {p['name']!r}: only h2c or http1"
        if p.get("protocol", "TCP") != "TCP" or "hostPort" in p or "hostIP" in p:
            yield "the port must be TCP, without hostPort or hostIP"


@rule(SERVICE, quotes=("`PORT`, `K_SERVICE`, `K_CONFIGURATION`, `K_REVISION` reserved",
                       "`fieldRef`/`resourceFieldRef` need `kubernetes.podspec-fieldref`", "`fileKeyRef` never"))
def env(svc, cluster):  # S/k8s_validation.go:54-59, 350-371; S/fieldmask.go:525-542
    for c in pod(svc).get("containers", []):
        for var in c.get("env", []):
            if var["name"] in ("PORT", "K_SERVICE", "K_CONFIGURATION", "K_REVISION"):
                yield f"env {var['name']} is Knative's to set"
            for source in var.get("valueFrom", {}):
                if source in ("fieldRef", "resourceFieldRef"):
                    yield from cluster.needs("kubernetes.podspec-fieldref", f"env {var['name']} {source}")
                elif source not in ("configMapKeyRef", "secretKeyRef"):
                    yield f"env {var['name']}: valueFrom.{source} is never allowed"


@rule(SERVICE, quotes=("envFrom (:373-399): prefix + exactly one of configMapRef/secretRef",))
def env_from(svc, cluster):
    for c in pod(svc).get("containers", []):
        for source in c.get("envFrom", []):
            refs = set(source) - {"prefix"}
            if len(refs) != 1 or not refs <= {"configMapRef", "secretRef"}:
                yield f"container {c.get('name')}: envFrom {source} needs exactly one configMapRef or secretRef"


@rule(SERVICE, quotes=("resources: only `limits`/`requests`",))
def resources(svc, cluster):  # S/fieldmask.go:650-662
    for c in pod(svc).get("containers", []):
        for key in set(c.get("resources", {})) - {"limits", "requests"}:
            yield f"container {c.get('name')}: resources.{key} is never allowed"


CONTAINER_SECURITY = {"capabilities", "readOnlyRootFilesystem", "runAsUser", "runAsGroup", "runAsNonRoot",
                      "allowPrivilegeEscalation", "seccompProfile", "privileged"}


@rule(SERVICE, quotes=("securityContext (fieldmask:711-742): capabilities, readOnlyRootFilesystem, runAsUser",
                       "`privileged` only `false`",
                       "`capabilities.add` needs `kubernetes.containerspec-addcapabilities` **== enabled**"))
def container_security(svc, cluster):
    for c in pod(svc).get("containers", []):
        sc = c.get("securityContext", {})
        for key in set(sc) - CONTAINER_SECURITY:
            yield f"container {c.get('name')}: securityContext.{key} is never allowed"
        if sc.get("privileged", False) is not False:
            yield f"container {c.get('name')}: privileged may only be false"
        if sc.get("capabilities", {}).get("add"):
            yield from cluster.needs("kubernetes.containerspec-addcapabilities", "capabilities.add", exact=True)


@rule(SERVICE, quotes=("One handler of httpGet/tcpSocket/exec/grpc",
                       "a *string* port must equal the serving port's name (`http` when unnamed)",
                       "periodSeconds=0 (the default) means Knative's aggressive probing and then "
                       "failureThreshold/timeoutSeconds must stay 0",
                       "any probe field is rejected unless `multi-container-probing`"))
def probes(svc, cluster):  # S/k8s_validation.go:828-929
    port_name, containers = serving_port(svc).get("name") or "http", pod(svc).get("containers", [])
    for c in containers:
        for kind_ in ("livenessProbe", "readinessProbe", "startupProbe"):
            probe = c.get(kind_)
            if probe is None:
                continue
            where = f"container {c.get('name')} {kind_}"
            if len(containers) > 1 and not c.get("ports"):
                yield from cluster.needs("multi-container-probing", f"{where} of a non-serving container")
            handlers = [h for h in ("httpGet", "tcpSocket", "exec", "grpc") if h in probe]
            if len(handlers) != 1:
                yield f"{where}: {len(handlers)} handlers, not one"
            port = next((probe[h].get("port") for h in handlers if h in ("httpGet", "tcpSocket")), None)
            if isinstance(port, str) and port != port_name:
                yield f"{where}: port {port!r} names no serving port ({port_name!r})"
            if kind_ == "readinessProbe" and not probe.get("periodSeconds") and \
                    (probe.get("failureThreshold") or probe.get("timeoutSeconds")):
                yield f"{where}: failureThreshold/timeoutSeconds with periodSeconds 0 (Knative's own probing)"


VOLUME_FLAGS = {"emptyDir": "kubernetes.podspec-volumes-emptydir",
                "persistentVolumeClaim": "kubernetes.podspec-persistent-volume-claim",
                "hostPath": "kubernetes.podspec-volumes-hostpath", "csi": "kubernetes.podspec-volumes-csi",
                "ephemeral": "kubernetes.podspec-volumes-ephemeral", "image": "kubernetes.podspec-volumes-image"}


@rule(SERVICE, quotes=("Sources: secret, configMap, projected always; emptyDir (flag on by default",
                       "Every volume must be mounted by some container (:93-98); names DNS-1123 labels, unique.",
                       "Exactly one source per volume."))
def volumes(svc, cluster):  # S/k8s_validation.go:83-225; S/fieldmask.go:51-90
    spec = pod(svc)
    mounted = {m["name"] for c in spec.get("containers", []) + spec.get("initContainers", [])
               for m in c.get("volumeMounts", [])}
    names = [v.get("name", "") for v in spec.get("volumes", [])]
    for v in spec.get("volumes", []):
        sources = set(v) - {"name"}
        if len(sources) != 1:
            yield f"volume {v.get('name')}: {len(sources)} sources, not one"
        for source in sources:
            if source in VOLUME_FLAGS:
                yield from cluster.needs(VOLUME_FLAGS[source], f"volume {v.get('name')} ({source})")
            elif source not in ("secret", "configMap", "projected"):
                yield f"volume {v.get('name')}: {source} is never allowed"
        if v.get("emptyDir", {}).get("medium", "") not in ("", "Memory"):
            yield f"volume {v['name']}: emptyDir medium {v['emptyDir']['medium']!r}"
        if not DNS1123_LABEL.match(v.get("name", "")) or names.count(v.get("name")) > 1:
            yield f"volume name {v.get('name')!r} is not a unique DNS-1123 label"
        if v.get("name") not in mounted:
            yield f"volume {v.get('name')} is mounted by no container"


@rule(SERVICE, quotes=("mountPath absolute, unique, not `/`, `/dev`, `/dev/log`",
                       "Mounts of non-emptyDir/PVC/ephemeral volumes must be readOnly",
                       "subPathExpr, recursiveReadOnly never"))
def volume_mounts(svc, cluster):  # S/k8s_validation.go:705-770
    spec = pod(svc)
    volumes_ = {v.get("name"): v for v in spec.get("volumes", [])}
    for init in (False, True):
        for c in spec.get("initContainers" if init else "containers", []):
            paths = [m.get("mountPath", "") for m in c.get("volumeMounts", [])]
            for m in c.get("volumeMounts", []):
                where, path = f"container {c.get('name')} mount {m.get('name')}", m.get("mountPath", "")
                if m.get("name") not in volumes_:
                    yield f"{where}: no such volume"
                if not path.startswith("/") or path in ("/", "/dev", "/dev/log") or paths.count(path) > 1:
                    yield f"{where}: mountPath {path!r} is relative, reserved or repeated"
                for key in set(m) - {"name", "readOnly", "mountPath", "subPath", "mountPropagation"}:
                    yield f"{where}: {key} is never allowed"
                if "mountPropagation" in m:
                    yield from cluster.needs("kubernetes.podspec-volumes-mount-propagation", where)
                # Defaulting makes a container's mounts readOnly (S/v1/revision_defaults.go:146-157); not an init's.
                writable = set(volumes_.get(m.get("name"), {})) & {"emptyDir", "persistentVolumeClaim", "ephemeral"}
                if init and not writable and not m.get("readOnly"):
                    yield f"{where}: must be readOnly"


@rule(SERVICE, quotes=("Template `metadata.name` (optional): DNS-1035 and prefixed `<service>-`",))
def template_name(svc, cluster):  # S/v1/revision_validation.go:138-171
    name = template(svc).get("metadata", {}).get("name")
    if name is not None and (not DNS1035.match(name) or not name.startswith(svc["metadata"]["name"] + "-")):
        yield f"revision name {name!r} is not DNS-1035 or lacks the prefix {svc['metadata']['name']}-"


@rule(SERVICE, quotes=("percents sum to 100", "`configurationName` not allowed inside a Service",
                       "revisionName xor latestRevision:true; tags DNS-1035 and unique; no `url` in spec."))
def traffic(svc, cluster):  # S/v1/route_validation.go:48-192
    targets = svc["spec"].get("traffic")
    if targets is None:
        return  # defaulted to 100% of the latest revision (route_defaults.go:40-47)
    if sum(t.get("percent", 0) for t in targets) != 100:
        yield "traffic percents do not sum to 100"
    tags = [t["tag"] for t in targets if "tag" in t]
    for t in targets:
        if "configurationName" in t or "url" in t or bool(t.get("revisionName")) == bool(t.get("latestRevision")):
            yield f"traffic target {t}: revisionName xor latestRevision, no configurationName or url"
    if len(set(tags)) != len(tags) or not all(DNS1035.match(tag) for tag in tags):
        yield f"traffic tags {tags} are not unique DNS-1035 labels"


@rule(SERVICE, quotes=("`serving.knative.dev/rollout-duration` (Service/Route) and "
                       "`serving.knative.dev/progress-deadline` (template): Go duration, ≥0, whole seconds",))
def rollout_annotations(svc, cluster):  # S/v1/revision_validation.go:186-247
    for meta, key in ((svc["metadata"], "rollout-duration"), (template(svc).get("metadata", {}), "progress-deadline")):
        value = meta.get("annotations", {}).get(f"serving.knative.dev/{key}")
        secs = None if value is None else go_duration(value)
        if value is not None and (secs is None or secs < 0 or secs != int(secs)):
            yield f"{key} {value!r} is not a Go duration of whole seconds"


@rule(SERVICE, quotes=("`responseStartTimeoutSeconds` unset and `timeoutSeconds` > "
                       "`revision-response-start-timeout-seconds`",
                       "queue-proxy and activator answer **504** if no response byte was written by then"))
def response_start_covers_the_work(svc, cluster):  # S/v1/revision_defaults.go:66-72, pkg/queue/sharedmain/handlers.go
    # Every function answers when its work is done, so nothing may cut before timeoutSeconds.
    start, timeout = response_start(svc, cluster), timeout_seconds(svc, cluster)
    if start < timeout:
        yield (f"timeoutSeconds {timeout}, but queue-proxy answers 504 after {start} s without a first byte: "
               f"set responseStartTimeoutSeconds: {timeout}")


# ---- Eventing ----

def destination(dest: dict | None, where: str, cluster: Cluster) -> Iterator[str]:
    """pkg: apis/duck/v1/destination.go:63-85, knative_reference.go:58-108."""
    if not dest or not (dest.get("ref") or dest.get("uri")):
        yield f"{where}: needs a ref or a uri"
        return
    ref = dest.get("ref")
    if ref is not None and not all(ref.get(k) for k in ("apiVersion", "kind", "name")):
        yield f"{where}: ref needs apiVersion, kind and name"
    if ref is not None and "group" in ref:
        yield from cluster.needs("kreference-group", f"{where}.ref.group", eventing=True)
    if ref is None and not re.match(r"^[a-z][a-z0-9+.-]*://", dest["uri"]):
        yield f"{where}: a uri alone must be absolute"


@rule(TRIGGER, quotes=("Exactly one of `broker` / `brokerRef`; `brokerRef.namespace` needs "
                       "cross-namespace-event-links",))
def trigger_broker(trigger, cluster):  # ev: pkg/apis/eventing/v1/trigger_validation.go:60-73
    spec = trigger["spec"]
    if ("broker" in spec) == ("brokerRef" in spec):
        yield "needs exactly one of broker and brokerRef"
    if spec.get("brokerRef", {}).get("namespace") not in (None, trigger["metadata"].get("namespace")):
        yield from cluster.needs("cross-namespace-event-links", "brokerRef.namespace", eventing=True)


ATTRIBUTE = re.compile(r"^[a-z][a-z0-9]*$")


def filter_errors(expr: dict, where: str) -> Iterator[str]:
    """ev: trigger_validation.go:172-186, 242-293; ev: pkg/eventfilter/subscriptionsapi/exact_filter.go:38-45."""
    if len(expr) != 1 or next(iter(expr)) not in ("exact", "prefix", "suffix", "all", "any", "not", "cesql"):
        yield f"{where}: exactly one of exact/prefix/suffix/all/any/not/cesql, not {sorted(expr)}"
        return
    (dialect, arg), = expr.items()
    if dialect in ("exact", "prefix", "suffix"):
        if not arg:
            yield f"{where}.{dialect} is empty"
        for key, value in arg.items():
            if not ATTRIBUTE.match(key):
                yield f"{where}.{dialect}: attribute {key!r} does not match ^[a-z][a-z0-9]*$"
            if not value:
                yield f"{where}.{dialect}.{key} is empty: the broker cannot build the filter"
    elif dialect in ("all", "any"):
        if not arg:
            yield f"{where}.{dialect} is empty"
        for i, sub in enumerate(arg):
            yield from filter_errors(sub, f"{where}.{dialect}[{i}]")
    elif dialect == "not":
        yield from filter_errors(arg, f"{where}.not")


@rule(TRIGGER, quotes=("`filter.attributes` keys and `filters[*].exact|prefix|suffix` keys match `^[a-z][a-z0-9]*$`",
                       "each element exactly one dialect of exact/prefix/suffix/all/any/not/cesql",
                       "Empty values pass the webhook but fail filter construction"))
def trigger_filters(trigger, cluster):
    for key in trigger["spec"].get("filter", {}).get("attributes", {}):
        if not ATTRIBUTE.match(key):
            yield f"filter.attributes: {key!r} does not match ^[a-z][a-z0-9]*$"
    for i, expr in enumerate(trigger["spec"].get("filters", [])):
        yield from filter_errors(expr, f"filters[{i}]")


@rule(TRIGGER, quotes=("`subscriber`: Destination", "ref needs apiVersion, kind, name",
                       "uri alone must be absolute"))
def trigger_subscriber(trigger, cluster):
    yield from destination(trigger["spec"].get("subscriber"), "subscriber", cluster)


@rule(TRIGGER, quotes=("`knative.dev/dependency` = JSON ObjectReference (kind, name, apiVersion, same namespace)",
                       "`eventing.knative.dev/injection` = enabled|disabled and only with broker `default`"))
def trigger_annotations(trigger, cluster):  # ev: trigger_validation.go:116-170
    ann = trigger["metadata"].get("annotations", {})
    if "knative.dev/dependency" in ann:
        try:
            dep = json.loads(ann["knative.dev/dependency"])
            ok = all(dep.get(k) for k in ("kind", "name", "apiVersion")) and dep.get("namespace") in (
                None, trigger["metadata"].get("namespace"))
        except (ValueError, AttributeError):
            ok = False
        if not ok:
            yield "knative.dev/dependency is not an ObjectReference (kind, name, apiVersion) in this namespace"
    if "eventing.knative.dev/injection" in ann and (ann["eventing.knative.dev/injection"] not in ("enabled", "disabled")
                                                    or trigger["spec"].get("broker") != "default"):
        yield "eventing.knative.dev/injection is enabled|disabled, with broker default only"


DELIVERY_PERIODS = {"timeout": "delivery-timeout", "backoffDelay": None, "retryAfterMax": "delivery-retryafter"}


@rule(TRIGGER, BROKER, quotes=("`retry` ≥ 0; `backoffPolicy` linear|exponential; `format` json|binary; "
                               "`deadLetterSink` a Destination.",
                               "`timeout` needs delivery-timeout (default **enabled**), ISO-8601 period, non-zero.",
                               "`retryAfterMax` needs delivery-retryafter",
                               "**only one fractional digit is kept**"))
def delivery(obj, cluster):  # ev: pkg/apis/duck/v1/delivery_types.go:94-155
    spec = obj["spec"].get("delivery")
    if spec is None:
        return
    if spec.get("retry", 0) < 0:
        yield f"delivery.retry {spec['retry']} is negative"
    if spec.get("backoffPolicy", "exponential") not in ("linear", "exponential"):
        yield f"delivery.backoffPolicy {spec['backoffPolicy']!r}"
    if spec.get("format", "json") not in ("json", "binary"):
        yield f"delivery.format {spec['format']!r}"
    if "deadLetterSink" in spec:
        yield from destination(spec["deadLetterSink"], "delivery.deadLetterSink", cluster)
    for key, flag in DELIVERY_PERIODS.items():
        if key not in spec:
            continue
        if flag:
            yield from cluster.needs(flag, f"delivery.{key}", eventing=True)
        parsed = iso_period(spec[key])
        if parsed is None or (key == "timeout" and parsed[0] == 0) or (key == "retryAfterMax" and parsed[0] < 0):
            yield f"delivery.{key} {spec[key]!r} is not an ISO-8601 period the webhook takes"
        elif parsed[1]:
            yield f"delivery.{key} {spec[key]!r}: Knative keeps one fractional digit of {parsed[1]}"


@rule(TRIGGER, quotes=("No upper bound on timeout; the subscriber's own timeouts (timeoutSeconds, "
                       "responseStartTimeoutSeconds) cut first.",))
def trigger_timeout_fits_the_subscriber(trigger, cluster):
    # A delivery the Service cuts first is answered 504, retried and dead-lettered, though the Trigger allowed it.
    ns, spec = trigger["metadata"].get("namespace"), trigger["spec"]
    broker = cluster.find(BROKER, spec.get("broker", ""), ns) or {"spec": {}}
    timeout = (spec.get("delivery") or broker["spec"].get("delivery") or {}).get("timeout")
    ref = spec.get("subscriber", {}).get("ref", {})
    svc = cluster.find(SERVICE, ref.get("name", ""), ns) if ref.get("kind") == "Service" else None
    if timeout and svc and iso_period(timeout) and iso_period(timeout)[0] > response_start(svc, cluster):
        yield (f"delivery.timeout {timeout} outlasts {svc['metadata']['name']}'s {response_start(svc, cluster)} s "
               "(timeoutSeconds, responseStartTimeoutSeconds): the Service cuts first")


@rule(TRIGGER, BROKER, PING, BINDING, quotes=())
def references_resolve(obj, cluster):
    """Mindspace's own: every ref to a kind these manifests hold names one they hold, in the same namespace (a
    Trigger to a misspelt Service is admitted and then never ready)."""
    spec, ns = obj["spec"], obj["metadata"].get("namespace")
    refs = [("broker", {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "name": spec["broker"]})] \
        if "broker" in spec else []
    refs += [(where, d["ref"]) for where, d in (("subscriber", spec.get("subscriber")), ("sink", spec.get("sink")),
                                                ("subject", {"ref": spec.get("subject")}),
                                                ("deadLetterSink", (spec.get("delivery") or {}).get("deadLetterSink")))
             if d and d.get("ref")]
    held = {kind(o) for o in cluster.objects}
    for where, ref in refs:
        key = f"{ref.get('apiVersion', '').split('/')[0]}/{ref.get('kind')}"
        if key in held and "name" in ref and not cluster.find(key, ref["name"], ref.get("namespace", ns)):
            yield f"{where} names {ref.get('kind')} {ref['name']!r}, which no manifest defines"


@rule(BROKER, quotes=("if absent it is defaulted from config-br-defaults", "present-but-empty is rejected"))
def broker_class(broker, cluster):  # ev: pkg/apis/eventing/v1/broker_validation.go:34-127
    ann = broker["metadata"].get("annotations", {})
    if "eventing.knative.dev/broker.class" in ann and not ann["eventing.knative.dev/broker.class"]:
        yield "eventing.knative.dev/broker.class is empty"


@rule(PING, quotes=("robfig/cron v3 with optional leading seconds field, 5 or 6 fields",
                    "dow 0..6 (7 refused)", "`@every` refused (:110-115)"))
def ping_schedule(ping, cluster):  # ev: pkg/apis/sources/v1/ping_validation.go:39-115
    yield from cron_errors(ping["spec"].get("schedule", "* * * * *"))


@rule(PING, quotes=("`timezone`: IANA name, checked as `CRON_TZ=<tz> <schedule>` via time.LoadLocation",))
def ping_timezone(ping, cluster):  # ev: ping_validation.go:45-61
    tz = ping["spec"].get("timezone")
    try:
        tz is None or zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        yield f"timezone {tz!r} is not an IANA name"


@rule(PING, quotes=("`data` xor `dataBase64`; with `contentType: application/json` the data must be a JSON "
                    "**object**",))
def ping_data(ping, cluster):  # ev: ping_validation.go:94-108
    spec = ping["spec"]
    if "data" in spec and "dataBase64" in spec:
        yield "data and dataBase64 both set"
    if spec.get("contentType") == "application/json" and ("data" in spec or "dataBase64" in spec):
        raw = spec["data"] if "data" in spec else base64.b64decode(spec["dataBase64"])
        try:
            ok = isinstance(json.loads(raw), dict)
        except ValueError:
            ok = False
        if not ok:
            yield "application/json data must be a JSON object"


@rule(PING, quotes=("`sink` Destination",))
def ping_sink(ping, cluster):
    yield from destination(ping["spec"].get("sink"), "sink", cluster)


@rule(PING, BINDING, quotes=("`ceOverrides.extensions` keys alphanumeric",
                             "uppercase passes here but Triggers cannot filter on it"))
def ce_overrides(obj, cluster):  # pkg: apis/duck/v1/source_types.go:204-237
    for key in obj["spec"].get("ceOverrides", {}).get("extensions", {}):
        if not ATTRIBUTE.match(key):
            yield f"ceOverrides extension {key!r}: lowercase letters and digits, or no Trigger can filter on it"


@rule(BINDING, quotes=("`subject` (pkg: tracker/interface.go:142-180): apiVersion, kind, name xor selector; "
                       "namespace defaulted to the binding's and must equal it.",))
def sinkbinding_subject(binding, cluster):  # ev: pkg/apis/sources/v1/sinkbinding_validation.go:26-40
    subject = binding["spec"].get("subject", {})
    if not (subject.get("apiVersion") and subject.get("kind")) or ("name" in subject) == ("selector" in subject):
        yield "subject needs apiVersion, kind, and a name or a selector"
    if subject.get("namespace") not in (None, binding["metadata"].get("namespace")):
        yield "subject is in another namespace"
    yield from destination(binding["spec"].get("sink"), "sink", cluster)


# ---- knative/monitoring, beside the functions it scrapes ----

@rule(POD_MONITOR, quotes=("Knative renames it `user-port` in the pod",))
def scrapes_the_user_port(monitor, cluster):  # S/v1/revision_helpers.go:35
    ports = {serving_port(s).get("containerPort") for s in cluster.objects if kind(s) == SERVICE}
    admitted = {p.get("port") for o in cluster.objects if o["kind"] == "NetworkPolicy"
                for rule_ in o["spec"].get("ingress", []) for p in rule_.get("ports", [])}
    for endpoint in monitor["spec"].get("podMetricsEndpoints", []):
        if endpoint.get("port") != "user-port":
            yield f"scrapes port {endpoint.get('port')!r}: Knative names the function's port user-port"
    if ports - admitted:
        yield f"no NetworkPolicy admits the scrape to the functions' port {sorted(ports - admitted)}"


# ---- the tests ----

TARGETS = [*OVERLAYS, "monitoring"]


def objects(target: str) -> tuple[list[dict], list[dict]]:
    """The objects a target renders, and those a check sees beside them (monitoring scrapes the cpu overlay)."""
    if target == "monitoring":
        mine = kustomize(ROOT / "knative" / "monitoring")
        return mine, render("cpu") + mine
    mine = render(target)
    return mine, mine


def check(target: str, cluster: Cluster | None = None) -> tuple[list[str], Cluster]:
    mine, context = objects(target)
    cluster = cluster or Cluster.load()
    cluster.objects = context
    return [v for obj in mine for v in violations(obj, cluster)], cluster


@pytest.mark.parametrize("target", TARGETS)
def test_every_rendered_object_passes_the_admission_rules(target):
    found, _ = check(target)
    assert not found, f"{target}:\n" + "\n".join(found)


@needs_rules
def test_each_rule_still_stands_in_the_reference():
    text = " ".join(RULES.read_text().split())
    gone = {name: q for name, r in CHECKS.items() for q in r.quotes if " ".join(q.split()) not in text}
    assert not gone, f"knative-validation.md no longer says what these checks encode (review them): {gone}"


def test_every_knative_kind_rendered_has_its_rules():
    checked = {k for r in CHECKS.values() for k in r.kinds}
    kinds = {kind(o) for t in TARGETS for o in objects(t)[0] if "knative.dev" in o["apiVersion"]} | {POD_MONITOR}
    assert kinds <= checked, f"no rules encoded for {kinds - checked}"


def test_the_cluster_features_are_exactly_what_the_overlays_use():
    """knative/cluster-features.yaml is the one list of flags: each there is used, each used is there, on."""
    used = set().union(*(check(t)[1].used for t in TARGETS))
    named = {(ns, flag): value for (ns, cm), data in Cluster.load().config.items() if cm == "config-features"
             for flag, value in data.items()}
    assert set(named) == used, f"named but unused: {set(named) - used}; used but not named: {used - set(named)}"
    assert all(v == "enabled" for v in named.values()), named


def test_the_gpu_overlay_is_refused_without_its_flags():
    cluster = Cluster.load()
    del cluster.config[("knative-serving", "config-features")]["kubernetes.podspec-nodeselector"]
    found, _ = check("gpu", cluster)
    assert {v.split(":")[0] for v in found} == {"Service embed", "Service transcribe"}, found
    assert not check("cpu", Cluster.load())[0]


def put(path: str, value) -> Callable[[dict], None]:
    """A change at a JSON-pointer path ("~1" for a "/" in a key); DROP deletes."""
    def mutate(obj):
        *parents, last = [p.replace("~1", "/") for p in path.split("/")]
        for p in parents:
            obj = obj[int(p)] if isinstance(obj, list) else obj.setdefault(p, {})
        if value is DROP:
            del obj[last]
        elif isinstance(obj, list):
            obj[int(last)] = value
        else:
            obj[last] = value
    return mutate


DROP = object()
POD, C0 = "spec/template/spec", "spec/template/spec/containers/0"


def bad(rule_: str, key: str, name: str, path: str, value, target: str = "cpu"):
    return rule_, target, key, name, put(path, value)


def bad_svc(rule_: str, path: str, value, name: str = "ocr"):
    return bad(rule_, SERVICE, name, path, value)


def bad_trigger(rule_: str, path: str, value, name: str = "ocr-uploaded"):
    return bad(rule_, TRIGGER, name, path, value)


def bad_ping(rule_: str, path: str, value):
    return bad(rule_, PING, "recluster-nightly", path, value)


ANN = "spec/template/metadata/annotations"
# Objects each rule must refuse: a rendered object with one change.
BAD = [
    bad_svc("service_name", "metadata/name", "Ocr"),
    bad_svc("autoscaling_on_the_template", "metadata/annotations", {"autoscaling.knative.dev/max-scale": "3"}),
    bad_svc("autoscaling_values", f"{ANN}/autoscaling.knative.dev~1window", "2s"),
    bad_svc("autoscaling_values", f"{ANN}/autoscaling.knative.dev~1min-scale", "20"),
    bad_svc("networking_annotations", f"{ANN}/networking.knative.dev~1visibility", "cluster-local"),
    bad_svc("cluster_local_but_the_api", "metadata/labels/networking.knative.dev~1visibility", DROP, name="notify"),
    bad_svc("cluster_local_but_the_api", "metadata/labels/networking.knative.dev~1visibility", "cluster-local",
            name="api"),
    bad_svc("pod_fields", f"{POD}/affinity", {}),
    bad_svc("pod_fields", f"{POD}/terminationGracePeriodSeconds", 60),
    bad_svc("automount_token", f"{POD}/automountServiceAccountToken", True),
    bad_svc("service_account_name", f"{POD}/serviceAccountName", "Mindspace_OCR"),
    bad_svc("timeout_within_the_maximum", f"{POD}/timeoutSeconds", 900),
    bad_svc("container_concurrency", f"{POD}/containerConcurrency", 1001),
    bad_svc("container_fields", f"{C0}/lifecycle", {"preStop": {"exec": {"command": ["sleep", "5"]}}}),
    bad_svc("container_fields", f"{C0}/name", "queue-proxy"),
    bad_svc("image_reference", f"{C0}/image", "Mindspace OCR"),
    bad_svc("one_serving_port", f"{C0}/ports", [{"containerPort": 8012}]),
    bad_svc("one_serving_port", f"{C0}/ports", [{"containerPort": 8080}, {"containerPort": 8081}]),
    bad_svc("env", f"{C0}/env", [{"name": "PORT", "value": "9000"}]),
    bad_svc("env", f"{C0}/env", [{"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}]),
    bad_svc("env_from", f"{C0}/envFrom", [{"configMapRef": {"name": "a"}, "secretRef": {"name": "b"}}]),
    bad_svc("resources", f"{C0}/resources/claims", [{"name": "gpu"}]),
    bad_svc("container_security", f"{C0}/securityContext/privileged", True),
    bad_svc("container_security", f"{C0}/securityContext/capabilities", {"add": ["NET_ADMIN"]}),
    bad_svc("probes", f"{C0}/readinessProbe", {"httpGet": {"path": "/readyz", "port": "web"}}),
    bad_svc("probes", f"{C0}/readinessProbe", {"httpGet": {"path": "/readyz"}, "timeoutSeconds": 2}),
    bad_svc("volumes", f"{POD}/volumes", [{"name": "tmp", "hostPath": {"path": "/tmp"}}]),
    bad_svc("volumes", f"{POD}/volumes", [{"name": "tmp", "emptyDir": {}}, {"name": "spare", "emptyDir": {}}]),
    bad_svc("volume_mounts", f"{C0}/volumeMounts", [{"name": "tmp", "mountPath": "/dev"}]),
    bad_svc("template_name", "spec/template/metadata/name", "tesseract-v2"),
    bad_svc("traffic", "spec/traffic", [{"latestRevision": True, "percent": 90}]),
    bad_svc("rollout_annotations", "metadata/annotations", {"serving.knative.dev/rollout-duration": "90.5s"}),
    bad_svc("response_start_covers_the_work", f"{POD}/responseStartTimeoutSeconds", DROP, name="transcribe"),
    bad_trigger("trigger_broker", "spec/brokerRef", {"name": "default"}),
    bad_trigger("trigger_filters", "spec/filters", [{"exact": {"Category": "pdf"}}]),
    bad_trigger("trigger_filters", "spec/filters", [{"exact": {"type": ""}}]),
    bad_trigger("trigger_filters", "spec/filters", [{"exact": {"type": "a"}, "prefix": {"source": "b"}}]),
    bad_trigger("trigger_subscriber", "spec/subscriber", {"uri": "/ocr"}),
    bad_trigger("trigger_annotations", "metadata/annotations", {"knative.dev/dependency": "ocr"}),
    bad_trigger("delivery", "spec/delivery/timeout", "600s"),
    bad_trigger("delivery", "spec/delivery/backoffDelay", "PT0.25S"),
    bad("delivery", BROKER, "default", "spec/delivery/retryAfterMax", "PT30S"),
    bad_trigger("trigger_timeout_fits_the_subscriber", "spec/delivery/timeout", "PT600S", name="embed-extracted"),
    bad_trigger("references_resolve", "spec/subscriber/ref/name", "orc"),
    bad("broker_class", BROKER, "default", "metadata/annotations/eventing.knative.dev~1broker.class", ""),
    bad_ping("ping_schedule", "spec/schedule", "0 3 * * 7"),
    bad_ping("ping_schedule", "spec/schedule", "@every 24h"),
    bad_ping("ping_timezone", "spec/timezone", "Europe/Atlantis"),
    bad_ping("ping_data", "spec/data", '"recluster"'),
    bad_ping("ping_sink", "spec/sink", {}),
    bad_ping("ce_overrides", "spec/ceOverrides/extensions", {"Task": "recluster"}),
    bad("sinkbinding_subject", BINDING, "ocr-to-broker", "spec/subject/selector", {"matchLabels": {"a": "b"}}),
    bad("scrapes_the_user_port", POD_MONITOR, "mindspace-functions", "spec/podMetricsEndpoints/0/port", "http",
        target="monitoring"),
]


@pytest.mark.parametrize("name,target,key,obj_name,mutate", BAD, ids=[f"{b[0]}-{i}" for i, b in enumerate(BAD)])
def test_each_rule_refuses_what_it_should(name, target, key, obj_name, mutate):
    mine, context = objects(target)
    obj = next(o for o in mine if kind(o) == key and o["metadata"]["name"] == obj_name)
    mutate(obj)
    cluster = Cluster.load(context)
    assert [v for v in violations(obj, cluster) if f": {name}: " in v], f"{name} let this through: {obj}"


def test_every_rule_has_an_object_it_refuses():
    assert set(CHECKS) == {b[0] for b in BAD}

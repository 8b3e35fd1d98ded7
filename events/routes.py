"""Routes as Knative declares them: the Trigger (and Broker) objects in knative/base, read here so
that the local broker and the cluster route by one source of truth."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import yaml
from pydantic import TypeAdapter

KNATIVE_BASE = Path(__file__).resolve().parent.parent / "knative" / "base"
_duration = TypeAdapter(timedelta)  # pydantic reads ISO-8601 durations such as PT0.2S


@dataclass(frozen=True)
class Delivery:
    retry: int = 10  # Knative's cluster default (config-br-defaults)
    backoff_policy: str = "exponential"
    backoff_delay: float = 0.2
    timeout: float = 300.0
    dead_letter: str | None = None  # a Service name

    def backoff(self, retries_so_far: int) -> float:
        """Knative's formula: delay*2^n (exponential) or delay*n (linear) before retry n."""
        n = retries_so_far + 1
        return self.backoff_delay * (2**n if self.backoff_policy == "exponential" else n)

    @classmethod
    def from_spec(cls, spec: dict | None, base: Delivery) -> Delivery:
        spec = spec or {}
        dls = ((spec.get("deadLetterSink") or {}).get("ref") or {}).get("name")
        return cls(
            retry=int(spec.get("retry", base.retry)),
            backoff_policy=spec.get("backoffPolicy", base.backoff_policy),
            backoff_delay=_seconds(spec.get("backoffDelay"), base.backoff_delay),
            timeout=_seconds(spec.get("timeout"), base.timeout),
            dead_letter=dls or base.dead_letter,
        )


@dataclass(frozen=True)
class Route:
    name: str
    subscriber: str  # the Knative Service the Trigger delivers to
    filters: tuple = field(default=())  # new-style dialect expressions; all must match
    delivery: Delivery = Delivery()

    def matches(self, attrs: dict) -> bool:
        return all(_match(f, attrs) for f in self.filters)


def _seconds(iso: str | None, default: float) -> float:
    return _duration.validate_python(iso).total_seconds() if iso else default


def _match(expr: dict, attrs: dict) -> bool:
    """Knative's filter dialects (exact, prefix, suffix, all, any, not); CESQL is not supported."""
    (dialect, arg), = expr.items()
    value = lambda k: attrs.get(k)  # noqa: E731
    if dialect == "exact":
        return all(value(k) == v for k, v in arg.items())
    if dialect == "prefix":
        return all(isinstance(value(k), str) and value(k).startswith(v) for k, v in arg.items())
    if dialect == "suffix":
        return all(isinstance(value(k), str) and value(k).endswith(v) for k, v in arg.items())
    if dialect == "all":
        return all(_match(e, attrs) for e in arg)
    if dialect == "any":
        return any(_match(e, attrs) for e in arg)
    if dialect == "not":
        return not _match(arg, attrs)
    raise ValueError(f"unsupported Trigger filter dialect {dialect!r}")


def manifests(base: Path = KNATIVE_BASE) -> list[dict]:
    """Every object in the kustomize base, in the order its kustomization lists them."""
    kustomization = yaml.safe_load((base / "kustomization.yaml").read_text())
    objects = []
    for name in kustomization.get("resources", []):
        objects += [d for d in yaml.safe_load_all((base / name).read_text()) if d]
    return objects


@dataclass(frozen=True)
class Ping:
    """A PingSource that sinks into the broker: the local broker ticks it on its schedule."""

    name: str
    schedule: str
    data: str
    extensions: dict


def pings(base: Path = KNATIVE_BASE) -> list[Ping]:
    return [Ping(o["metadata"]["name"], o["spec"].get("schedule", "* * * * *"), o["spec"].get("data", ""),
                 o["spec"].get("ceOverrides", {}).get("extensions", {}))
            for o in manifests(base) if o["kind"] == "PingSource"
            and o["spec"]["sink"].get("ref", {}).get("kind") == "Broker"]


def sink_bound(base: Path = KNATIVE_BASE) -> set[str]:
    """The Services a SinkBinding gives K_SINK (the broker's address): the only ones that may post to it."""
    return {o["spec"]["subject"]["name"] for o in manifests(base) if o["kind"] == "SinkBinding"
            and o["spec"]["sink"].get("ref", {}).get("kind") == "Broker"}


def load(base: Path = KNATIVE_BASE) -> list[Route]:
    objects = manifests(base)
    brokers = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Broker"}
    routes = []
    for t in (o for o in objects if o["kind"] == "Trigger"):
        spec = t["spec"]
        broker = brokers.get(spec["broker"])
        if broker is None:
            raise ValueError(f"Trigger {t['metadata']['name']} names unknown broker {spec['broker']}")
        default = Delivery.from_spec(broker.get("spec", {}).get("delivery"), Delivery())
        filters = spec.get("filters") or (
            [{"exact": spec["filter"]["attributes"]}] if spec.get("filter", {}).get("attributes") else []
        )
        routes.append(Route(
            name=t["metadata"]["name"],
            subscriber=spec["subscriber"]["ref"]["name"],
            filters=tuple(filters),
            delivery=Delivery.from_spec(spec.get("delivery"), default),
        ))
    return routes

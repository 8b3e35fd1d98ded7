"""The production overlay (issue 23): the Kafka broker with its configuration and ordered Triggers, a CloudNativePG
Cluster with pgvector, WAL archiving and nightly base backups, and a Flagger canary for every Service whose checks
are the four automated rollback triggers. Every MetricTemplate's query is rendered as Flagger renders it and run by
promtool against series written here: each check passes a healthy canary, fails one whose condition held all its
window, and passes one whose condition held for less."""
from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml
from test_manifests import render

from local.stack import function_names

promtool = shutil.which("promtool")
OBJECTS = render("production")


def of(kind: str) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in OBJECTS if o["kind"] == kind}


def test_the_broker_is_kafka_and_one_users_events_keep_their_order():
    broker = of("Broker")["default"]
    assert broker["metadata"]["annotations"]["eventing.knative.dev/broker.class"] == "Kafka"
    config = of("ConfigMap")[broker["spec"]["config"]["name"]]
    assert broker["spec"]["config"]["kind"] == "ConfigMap"
    data = config["data"]
    assert int(data["default.topic.partitions"]) > 0 and int(data["default.topic.replication.factor"]) > 0
    assert config["data"]["bootstrap.servers"]
    ordered = {name for name, t in of("Trigger").items()
               if t["metadata"].get("annotations", {}).get("kafka.eventing.knative.dev/delivery.order") == "ordered"}
    assert ordered == {"cluster-embedded", "cluster-refresh", "notify-requested"}
    from events import wire
    from events.catalogue import ClustersRefresh
    assert wire.make(ClustersRefresh(user_id="ann"), "api")["partitionkey"] == "ann"  # the record's key


def test_postgresql_is_cloudnativepg_with_pgvector_wal_archiving_and_nightly_backups():
    cluster = of("Cluster")["mindspace-db"]
    archiver = [p for p in cluster["spec"]["plugins"] if p.get("isWALArchiver")]
    store = of("ObjectStore")[archiver[0]["parameters"]["barmanObjectName"]]
    assert store["spec"]["configuration"]["destinationPath"].startswith("gs://")
    assert "standard" in cluster["spec"]["imageName"]  # the image that ships pgvector
    assert "CREATE EXTENSION IF NOT EXISTS vector" in cluster["spec"]["bootstrap"]["initdb"]["postInitApplicationSQL"]
    backup = of("ScheduledBackup")["mindspace-db-nightly"]
    assert backup["spec"]["cluster"]["name"] == "mindspace-db" and backup["spec"]["method"] == "plugin"
    assert len(backup["spec"]["schedule"].split()) == 6  # CloudNativePG's cron has seconds
    assert {e["name"] for e in of("Database")["mindspace-db-vector"]["spec"]["extensions"]} == {"vector"}
    for svc in of("Service").values():
        if svc["apiVersion"].startswith("serving.knative.dev"):
            env = {e["name"]: e for e in svc["spec"]["template"]["spec"]["containers"][0]["env"]}
            assert env["DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {"name": "mindspace-db-app", "key": "uri"}
    assert "mindspace-db-backup" not in of("CronJob")  # the WAL archive replaces the nightly dump


def seconds(duration: str) -> int:
    return sum(int(n) * {"s": 1, "m": 60, "h": 3600}[u] for n, u in re.findall(r"(\d+)([smh])", duration))


def test_every_service_has_a_canary_whose_steps_outlast_its_windows():
    canaries, templates = of("Canary"), of("MetricTemplate")
    assert set(canaries) == {"api", *function_names()}
    for name, canary in canaries.items():
        spec, analysis = canary["spec"], canary["spec"]["analysis"]
        assert spec["provider"] == "knative" and spec["targetRef"] == {
            "apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": name}
        metrics = {m["name"]: m for m in analysis["metrics"]}
        assert all(m["templateRef"]["name"] in templates for m in metrics.values()), name
        wanted = {"error-rate", "ai-quota"} if name == "api" else {"success-rate", "error-rate", "backlog"}
        assert wanted <= set(metrics), name
        # The analysis lasts long enough for its longest window to fill before promotion.
        assert seconds(analysis["interval"]) * len(analysis["stepWeights"]) >= max(
            seconds(m["interval"]) for m in metrics.values()), name
        for m in metrics.values():  # a window's samples, one a minute (30 s for the quota)
            step = 30 if m["name"] == "ai-quota" else 60
            assert int(m["templateVariables"]["samples"]) == seconds(m["interval"]) // step, (name, m["name"])
        assert analysis["threshold"] == 1 and analysis["webhooks"][0]["type"] == "rollout"
        assert "$CANARY_TOKEN" in analysis["webhooks"][0]["metadata"]["cmd"]
        assert analysis["alerts"][0]["providerRef"]["name"] in of("AlertProvider")
    expected = {"success-rate": ("min", 0.85, "10m"), "error-rate": ("max", 0.10, "5m"),
                "backlog": ("max", 500, "15m"), "ai-quota": ("max", 0.95, "2m")}
    for canary in canaries.values():
        for m in canary["spec"]["analysis"]["metrics"]:
            side, value, window = expected[m["name"]]
            assert m["thresholdRange"] == {side: value} and m["interval"] == window


# --- the queries, as Flagger runs them ------------------------------------------------------------------------

def rendered(template: str, interval: str, **variables) -> str:
    """Flagger's text/template rendering of a MetricTemplate's query (pkg/metrics/providers)."""
    values = {"namespace": "mindspace", "route": "embed-00002", "interval": interval,
              **{f"variables.{k}": v for k, v in variables.items()}}
    query = of("MetricTemplate")[template]["spec"]["query"]
    return re.sub(r"\{\{\s*([\w.]+)\s*\}\}", lambda m: values[m.group(1)], query)


def series(name: str, labels: str, values: str) -> dict:
    return {"series": f"{name}{{namespace=\"mindspace\",{labels}}}", "values": values}


CANARY = 'revision="embed-00002",stage="embed"'
OLD = 'revision="embed-00001",stage="embed"'
# (template, window, variables, threshold, side, series, {eval_time: passes?})
CASES = {
    "success": ("mindspace-success-rate", "10m", {"samples": "10"}, 0.85, "min", [
        # The canary fails half its events from minute 10 on; the old revision's failures are not its own.
        series("jobs_processed_total", f'{CANARY},outcome="ok"', "0+10x40"),
        series("jobs_processed_total", f'{CANARY},outcome="failed"', "0+0x10 0+10x30"),
        series("jobs_processed_total", f'{OLD},outcome="failed"', "0+50x40")],
        {"9m": True, "15m": True, "24m": False, "35m": False}),
    "success-too-short": ("mindspace-success-rate", "10m", {"samples": "10"}, 0.85, "min", [
        # A canary 6 minutes old, failing all along: its window is not full yet.
        series("jobs_processed_total", f'{CANARY},outcome="failed"', "_x30 0+10x6")],
        {"35m": True}),
    "quiet": ("mindspace-success-rate", "10m", {"samples": "10"}, 0.85, "min", [], {"20m": True}),
    "errors": ("mindspace-error-rate", "5m",
               {"series": "jobs_processed_total", "failed": 'outcome="failed"', "samples": "5"}, 0.10, "max", [
        # 20% failed from minute 10 on, after one bad minute at 3.
        series("jobs_processed_total", f'{CANARY},outcome="ok"', "0+8x40"),
        series("jobs_processed_total", f'{CANARY},outcome="failed"', "0 0 0 0+8x1 8+0x6 8+2x30")],
        {"8m": True, "13m": True, "20m": False}),
    "api-errors": ("mindspace-error-rate", "5m",
                   {"series": "api_request_duration_seconds_count", "failed": 'status=~"5.."', "samples": "5"},
                   0.10, "max", [
        series("api_request_duration_seconds_count", 'revision="embed-00002",status="200"', "0+90x30"),
        series("api_request_duration_seconds_count", 'revision="embed-00002",status="503"', "0+0x10 0+30x20")],
        {"9m": True, "17m": False}),
    "backlog": ("mindspace-backlog", "15m", {"stage": "embed", "samples": "15"}, 500, "max", [
        # 600 waiting from minute 5, down to 100 for a minute at 12, then 600 again.
        {"series": 'queue_length{stage="embed"}', "values": "0x4 600x6 100 600x30"}],
        {"20m": True, "27m": True, "29m": False}),
    "quota": ("mindspace-ai-quota", "2m", {"samples": "4"}, 0.95, "max", [
        {"series": 'ai_quota_tokens_per_day{namespace="mindspace",provider="gemini"}', "values": "1000x40"},
        # 20 tokens a minute, then 300 a minute from minute 11: past 95% of the day's 1000 at about minute 14,
        # and so for the whole 2-minute window from about minute 16.
        {"series": 'ai_tokens_total{namespace="mindspace",provider="gemini"}', "values": "0+20x10 200+300x30"}],
        {"10m": True, "13m": True, "17m": False, "20m": False}),
}


@pytest.mark.skipif(not promtool, reason="promtool is not installed (Debian package `prometheus`)")
@pytest.mark.parametrize("case", CASES)
def test_each_rollback_trigger_fails_only_once_its_condition_held_its_window(case, tmp_path):
    template, window, variables, threshold, side, inputs, expected = CASES[case]
    query = rendered(template, window, **variables)
    passes = f"({query}) {'>=' if side == 'min' else '<='} bool {threshold}"
    (tmp_path / "rules.yaml").write_text("groups: []\n")
    test = {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": [{
        "interval": "1m", "input_series": inputs or [{"series": "up", "values": "1x40"}],
        "promql_expr_test": [{"expr": passes, "eval_time": t, "exp_samples": [{"labels": "{}", "value": int(ok)}]}
                             for t, ok in expected.items()]}]}
    (tmp_path / "test.yaml").write_text(yaml.safe_dump(test, sort_keys=False))
    run = subprocess.run([promtool, "test", "rules", "test.yaml"], cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 0, f"{case}: {query}\n{run.stdout}{run.stderr}"
